//! `vmrun run [--bundle DIR] ID` (runc's spelling) and the one-step
//! `vmrun DIR`: run an OCI bundle's process in a fresh microVM, with
//! vmrun's stdio, exiting with the process's status (128+N if killed by
//! signal N).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::create::{create_container, write_pid_file, CreateRequest};
use super::start::start_container;
use super::vm_args::{refuse_preserved_fds, VmArgs};
use super::{CliError, GlobalOpts};
use crate::check::ensure_host_can_run_guests;
use crate::runtime::console_tail::ConsoleTail;
use crate::runtime::container::Container;
use crate::runtime::host_cgroup::VmOverhead;
use crate::runtime::host_world::shared_tree::enter_private_mount_namespace;
use crate::runtime::host_world::{self, HostWorldError};
use crate::runtime::state::{validate_id, StateRoot};
use crate::runtime::ContainerRunError;
use crate::runtime::{run_container, signals, Bundle, RunConfig};
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
    /// Write the container's pid (its VMM's) to FILE.
    #[arg(long = "pid-file", value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// Detach from the container: create and start it, then exit (the
    /// container runs on in its VMM; `vmrun delete` removes it).
    #[arg(short, long)]
    pub detach: bool,
    /// With --detach and process.terminal: the unix socket the pty master
    /// is sent to.
    #[arg(long = "console-socket", value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
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
    /// The microVM.
    #[command(flatten)]
    pub vm: VmArgs,
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
            console_socket: None,
            no_pivot: false,
            no_new_keyring: false,
            preserve_fds: 0,
            vm: VmArgs::default(),
            timings: false,
            timings_json: None,
        }
    }
}

/// Is `path` a bundle directory (a directory with a config.json)?
pub fn is_bundle_dir(path: &Path) -> bool {
    path.is_dir() && path.join("config.json").is_file()
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

/// Runs `vmrun run`; returns the container's exit status (0 at once with
/// `--detach`).
pub fn run(global: &GlobalOpts, args: RunArgs) -> Result<i32, CliError> {
    let timings = Arc::new(Timings::default());
    // Input first: bad input fails fast, before any VM (even on hosts
    // without KVM).
    validate_id(&args.id)?;
    refuse_preserved_fds(args.preserve_fds)?;
    let bundle_dir = image_bundle(global, &args)?.unwrap_or_else(|| args.bundle.clone());
    if args.detach {
        let request = CreateRequest {
            id: args.id.clone(),
            bundle: bundle_dir,
            pid_file: args.pid_file.clone(),
            console_socket: args.console_socket.clone(),
            no_pivot: args.no_pivot,
            vm: args.vm.clone(),
        };
        create_container(global, &request)?;
        if let Err(e) = start_container(global, &args.id) {
            // runc run -d leaves nothing behind when start fails.
            if let Ok(container) = Container::load(&StateRoot::new(&global.root), &args.id) {
                let _ = container.kill_vmm();
                let _ = container.destroy();
            }
            return Err(e);
        }
        return Ok(0);
    }
    if args.console_socket.is_some() {
        return Err(CliError::Usage(
            "--console-socket goes with --detach (in the foreground the container uses vmrun's own terminal)"
                .into(),
        ));
    }
    let bundle = Bundle::load(&bundle_dir, args.vm.rootfs_image())?;
    host_world::check(&bundle.spec).map_err(ContainerRunError::from)?;
    let vm = args.vm.resolve(&bundle.spec)?;
    ensure_host_can_run_guests()?;
    // While this process has one thread: its own mount namespace, where
    // the VM's share is built (nothing of it is seen on the host).
    enter_private_mount_namespace()
        .map_err(HostWorldError::from)
        .map_err(ContainerRunError::from)?;
    let console = match &args.vm.console_log {
        Some(path) => ConsoleTail::with_copy(Box::new(
            File::create(path).map_err(|e| CliError::Write(path.clone(), e))?,
        ) as Box<dyn Write + Send>),
        None => ConsoleTail::default(),
    };
    signals::block_forwarded().map_err(|e| CliError::Write("(signal mask)".into(), e))?;
    let state = StateRoot::new(&global.root).create(&args.id)?;
    if let Some(path) = &args.pid_file {
        if let Err(e) = write_pid_file(path, std::process::id()) {
            let _ = state.remove();
            return Err(e);
        }
    }
    let config = RunConfig {
        id: args.id.clone(),
        bundle,
        machine: vm.machine,
        agent_timeout: Duration::from_secs(args.vm.agent_timeout),
        console: console.clone(),
        no_pivot: args.no_pivot,
        state,
        systemd_cgroup: global.systemd_cgroup,
        overhead: VmOverhead::for_vm(vm.memory_mib, vm.vcpus),
    };
    let result = run_container(config, timings.clone());
    timings.record(Phase::Exit);
    super::report_timings(args.timings, args.timings_json.as_deref(), &timings)?;
    match result {
        Ok(status) => Ok(status.as_shell_status()),
        Err(e) => {
            if !e.before_vm() {
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
    fn bundle_dirs_are_recognised() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_bundle_dir(dir.path()));
        std::fs::write(dir.path().join("config.json"), "{}").unwrap();
        assert!(is_bundle_dir(dir.path()));
    }
}
