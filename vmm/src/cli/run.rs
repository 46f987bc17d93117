//! `vmrun run [--bundle DIR] ID` (runc's spelling) and the one-step
//! `vmrun DIR`: run an OCI bundle's process in a fresh microVM, with
//! vmrun's stdio, exiting with the process's status (128+N if killed by
//! signal N).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::{CliError, GlobalOpts};
use crate::check::{default_initrd, default_kernel, ensure_host_can_run_guests};
use crate::cmdline::DEFAULT_CMDLINE;
use crate::machine::builder::{BootError, MachineBuilder};
use crate::machine::config::{BootConfig, MachineConfig, DEFAULT_MEMORY_MIB, DEFAULT_VCPUS};
use crate::runtime::console_tail::ConsoleTail;
use crate::runtime::{run_container, signals, Bundle, ContainerRunError, RunConfig};
use crate::timings::{Phase, Timings};

/// Lines of guest console shown when a run fails.
const CONSOLE_LINES_ON_ERROR: usize = 40;

/// Arguments of `vmrun run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// The container id.
    #[arg(value_name = "ID")]
    pub id: String,
    /// The bundle directory (holding config.json and the rootfs).
    #[arg(
        short,
        long,
        default_value = ".",
        value_name = "DIR",
        conflicts_with = "image"
    )]
    pub bundle: PathBuf,
    /// Run an image instead of a bundle: it is unpacked (once, cached by
    /// manifest) into `<root>/bundles/<ID>` and run from there.
    #[command(flatten)]
    pub image: vmrun_image::cli::RunImageArgs,
    /// With `--image`: the command and arguments replacing the image's Cmd.
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
    /// Write vmrun's process id (which holds the VM) to FILE.
    #[arg(long = "pid-file", value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Detach from the container (not supported yet: vmrun runs in the foreground).
    #[arg(short, long)]
    pub detach: bool,
    /// Do not use pivot_root to jail the process inside the rootfs: use
    /// MS_MOVE + chroot (as runc). Insecure, as with runc: a process with
    /// CAP_SYS_ADMIN and CAP_SYS_CHROOT can reach the agent's root.
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Do not create a new session keyring for the container (accepted for
    /// runc compatibility: vmrun never creates one, each container has its
    /// own guest kernel and so its own keyrings).
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass N additional file descriptors (3..3+N) to the container. Host
    /// descriptors cannot cross into a microVM: only 0 is accepted.
    #[arg(long = "preserve-fds", value_name = "N", default_value_t = 0)]
    pub preserve_fds: u32,
    /// A disk image holding the root filesystem, attached over virtio-blk
    /// (instead of sharing root.path over virtio-fs). Also settable with the
    /// bundle annotation `vmrun.rootfs-image`.
    #[arg(long = "rootfs-image", value_name = "FILE")]
    pub rootfs_image: Option<PathBuf>,
    /// Guest kernel. Default: $VMRUN_KERNEL, else $VMRUN_CACHE_DIR/vmlinux.
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// Initramfs with the agent. Default: $VMRUN_INITRD, else $VMRUN_CACHE_DIR/initramfs.cpio.gz.
    #[arg(long, value_name = "PATH")]
    pub initrd: Option<PathBuf>,
    /// Number of vCPUs.
    #[arg(long, default_value_t = DEFAULT_VCPUS, value_name = "N")]
    pub cpus: u8,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = DEFAULT_MEMORY_MIB, value_name = "MIB")]
    pub memory: u64,
    /// Seconds to wait for the guest agent to answer.
    #[arg(long = "agent-timeout", default_value_t = 120, value_name = "SECS")]
    pub agent_timeout: u64,
    /// Copy the guest's serial console to FILE.
    #[arg(long = "console-log", value_name = "FILE")]
    pub console_log: Option<PathBuf>,
    /// Print the phase timings to stderr at exit.
    #[arg(long)]
    pub timings: bool,
    /// Write the phase timings as JSON to FILE at exit.
    #[arg(long = "timings-json", value_name = "FILE")]
    pub timings_json: Option<PathBuf>,
}

impl RunArgs {
    /// `vmrun DIR`: run the bundle in DIR with a generated id.
    pub fn for_bundle_dir(dir: &Path) -> Self {
        Self {
            id: format!("vmrun-{}", std::process::id()),
            bundle: dir.to_path_buf(),
            image: Default::default(),
            args: Vec::new(),
            pid_file: None,
            detach: false,
            no_pivot: false,
            no_new_keyring: false,
            preserve_fds: 0,
            rootfs_image: None,
            kernel: None,
            initrd: None,
            cpus: DEFAULT_VCPUS,
            memory: DEFAULT_MEMORY_MIB,
            agent_timeout: 120,
            console_log: None,
            timings: false,
            timings_json: None,
        }
    }
}

/// Is `path` a bundle directory (a directory with a config.json)?
pub fn is_bundle_dir(path: &Path) -> bool {
    path.is_dir() && path.join("config.json").is_file()
}

fn validate_id(id: &str) -> Result<(), CliError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(CliError::Usage(format!(
            "invalid container id {id:?}: use 1-128 letters, digits, '-', '_' or '.', not starting with '.'"
        )))
    }
}

fn artifact(
    given: &Option<PathBuf>,
    default: PathBuf,
    what: &'static str,
    script: &'static str,
    flag: &'static str,
) -> Result<PathBuf, CliError> {
    match given {
        Some(path) => Ok(path.clone()),
        None if default.exists() => Ok(default),
        None => Err(CliError::NotBuilt {
            what,
            path: default,
            script,
            flag,
        }),
    }
}

fn write_pid_file(path: &Path) -> Result<(), CliError> {
    let tmp = path.with_extension("vmrun-tmp");
    let write = || -> std::io::Result<()> {
        std::fs::write(&tmp, std::process::id().to_string())?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        CliError::Write(path.to_path_buf(), e)
    })
}

fn show_console_tail(console: &ConsoleTail) {
    let text = console.text();
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return;
    }
    let start = lines.len().saturating_sub(CONSOLE_LINES_ON_ERROR);
    eprintln!("vmrun: last guest console lines:");
    for line in lines.iter().skip(start) {
        eprintln!("    {line}");
    }
}

/// With `--image`: unpacks the image into `<root>/bundles/<id>` (reused
/// when it holds the same manifest) and returns that bundle directory.
fn image_bundle(global: &GlobalOpts, args: &RunArgs) -> Result<Option<PathBuf>, CliError> {
    if args.image.image.is_none() {
        if !args.args.is_empty() {
            return Err(CliError::Usage(
                "arguments after `--` replace an image's command: they need --image".into(),
            ));
        }
        return Ok(None);
    }
    let dir = global.root.join("bundles").join(&args.id);
    let store = global.image_store.open()?;
    let info = vmrun_image::cli::run_image(&args.image, &store, &dir, &args.args)?;
    Ok(info.map(|info| info.bundle_dir))
}

/// Runs `vmrun run`; returns the container's exit status.
pub fn run(global: &GlobalOpts, args: RunArgs) -> Result<i32, CliError> {
    let timings = Arc::new(Timings::default());
    // Input first: bad input fails fast, before any VM (even on hosts
    // without KVM).
    validate_id(&args.id)?;
    if args.detach {
        return Err(CliError::Usage(
            "--detach is not supported yet: vmrun runs the container in the foreground".into(),
        ));
    }
    if args.preserve_fds > 0 {
        return Err(CliError::Usage(format!(
            "--preserve-fds {}: host file descriptors cannot be passed into a microVM",
            args.preserve_fds
        )));
    }
    let bundle_dir = image_bundle(global, &args)?.unwrap_or_else(|| args.bundle.clone());
    let bundle = Bundle::load(&bundle_dir, args.rootfs_image.as_deref())?;
    let kernel = artifact(
        &args.kernel,
        default_kernel(),
        "kernel",
        "kernel-config/build.sh",
        "kernel",
    )?;
    let initrd = artifact(
        &args.initrd,
        default_initrd(),
        "initramfs",
        "rootfs/build-initramfs.sh",
        "initrd",
    )?;
    let machine = MachineBuilder::for_boot(BootConfig {
        machine: MachineConfig {
            vcpus: args.cpus,
            memory_mib: args.memory,
            irqchip: true,
        },
        kernel,
        initrd: Some(initrd),
        cmdline: DEFAULT_CMDLINE.to_string(),
    })
    .map_err(BootError::from)?;
    ensure_host_can_run_guests()?;
    let console = match &args.console_log {
        Some(path) => ConsoleTail::with_copy(Box::new(
            File::create(path).map_err(|e| CliError::Write(path.clone(), e))?,
        ) as Box<dyn Write + Send>),
        None => ConsoleTail::default(),
    };
    signals::block_forwarded().map_err(|e| CliError::Write("(signal mask)".into(), e))?;
    if let Some(path) = &args.pid_file {
        write_pid_file(path)?;
    }
    let config = RunConfig {
        id: args.id.clone(),
        bundle,
        machine,
        agent_timeout: Duration::from_secs(args.agent_timeout),
        console: console.clone(),
        no_pivot: args.no_pivot,
    };
    let result = run_container(config, timings.clone());
    timings.record(Phase::Exit);
    super::report_timings(args.timings, args.timings_json.as_deref(), &timings)?;
    match result {
        Ok(status) => Ok(status.as_shell_status()),
        Err(e) => {
            if !matches!(
                e,
                ContainerRunError::Machine(_)
                    | ContainerRunError::Vsock(_)
                    | ContainerRunError::Fs(..)
                    | ContainerRunError::Block(..)
            ) {
                show_console_tail(&console);
            }
            Err(e.into())
        }
    }
}

/// Runs `vmrun DIR` (an unknown verb that is a bundle directory).
pub fn run_external(global: &GlobalOpts, words: &[std::ffi::OsString]) -> Result<i32, CliError> {
    match words {
        [dir] if is_bundle_dir(Path::new(dir)) => {
            run(global, RunArgs::for_bundle_dir(Path::new(dir)))
        }
        [word, ..] if Path::new(word).is_dir() => Err(CliError::Usage(format!(
            "{} is a directory without a config.json: not an OCI bundle",
            Path::new(word).display()
        ))),
        [word, ..] => Err(CliError::Usage(format!(
            "unknown command {:?} (see vmrun --help; `vmrun DIR` runs the OCI bundle in DIR)",
            word
        ))),
        [] => Err(CliError::Usage(
            "no command given (see vmrun --help)".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_flags_parse_and_conflict_with_bundle() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from([
            "vmrun",
            "run",
            "--image",
            "oci:/l:t",
            "--platform",
            "linux/amd64",
            "c1",
            "--",
            "echo",
            "hi",
        ])
        .unwrap();
        let crate::cli::Command::Run(run) = cli.command else {
            panic!("not run")
        };
        assert_eq!(run.image.image.as_deref(), Some("oci:/l:t"));
        assert_eq!(run.args, ["echo", "hi"]);
        assert!(crate::cli::Cli::try_parse_from([
            "vmrun", "run", "--image", "oci:/l", "--bundle", "/b", "c1"
        ])
        .is_err());
    }

    #[test]
    fn args_without_image_are_refused() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from(["vmrun", "run", "c1", "--", "echo"]).unwrap();
        let crate::cli::Command::Run(run) = cli.command else {
            panic!("not run")
        };
        let err = image_bundle(&cli.global, &run).unwrap_err();
        assert!(err.to_string().contains("need --image"), "{err}");
    }

    #[test]
    fn ids_are_checked() {
        assert!(validate_id("abc-1_2.x").is_ok());
        for bad in ["", ".hidden", "a/b", "a b", &"x".repeat(129)] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bundle_dirs_are_recognised() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_bundle_dir(dir.path()));
        std::fs::write(dir.path().join("config.json"), "{}").unwrap();
        assert!(is_bundle_dir(dir.path()));
    }
}
