//! The `vmrun` command line: runc-style global flags and one clap struct per
//! verb (one file each). New verbs are a new file plus a [`Command`] variant.

pub mod bench;
pub mod boot;
pub mod check;
pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod features;
pub mod helper;
pub mod image;
pub mod kill;
pub mod list;
pub mod logging;
pub mod pause;
pub mod ps;
pub mod resume;
pub mod run;
pub mod spec;
pub mod start;
pub mod state;
pub mod update;
pub mod usage_error;
pub mod vm_args;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
pub use helper::helper_global_args;

/// Errors of CLI verbs (the binary prints the whole chain once).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The host cannot run guests.
    #[error(transparent)]
    Host(#[from] crate::check::HostUnsupported),
    /// The boot failed.
    #[error(transparent)]
    Boot(#[from] crate::machine::builder::BootError),
    /// A default guest artifact is not built yet.
    #[error("the default {what} {path} is not built: run {script} (or pass --{flag})")]
    NotBuilt {
        /// "kernel" or "initramfs".
        what: &'static str,
        /// The default path.
        path: PathBuf,
        /// The script that builds it.
        script: &'static str,
        /// The flag that overrides it.
        flag: &'static str,
    },
    /// A file given on the command line could not be written.
    #[error("cannot write {0}")]
    Write(PathBuf, #[source] std::io::Error),
    /// An image verb failed.
    #[error(transparent)]
    Image(#[from] vmrun_image::ImageError),
    /// The bundle cannot be run (checked before any VM starts).
    #[error(transparent)]
    Bundle(#[from] crate::runtime::BundleError),
    /// Running the container failed.
    #[error(transparent)]
    Run(#[from] crate::runtime::ContainerRunError),
    /// The container's state says no (runc's words: "container not running", ...).
    #[error(transparent)]
    State(#[from] crate::runtime::state::StateError),
    /// The container's VMM could not be started.
    #[error(transparent)]
    Launch(#[from] crate::runtime::daemon::LaunchError),
    /// The container's VMM refused or could not be reached.
    #[error(transparent)]
    Api(#[from] crate::runtime::api::ApiError),
    /// A sizing annotation the container's VM cannot be given.
    #[error(transparent)]
    VmSize(#[from] crate::runtime::vm_size::VmSizeError),
    /// Bad command-line usage.
    #[error("{0}")]
    Usage(String),
    /// Logging could not be set up.
    #[error("cannot set up logging to {0}")]
    Log(PathBuf, #[source] std::io::Error),
    /// `vmrun bench` could not produce a result.
    #[error(transparent)]
    Bench(#[from] crate::bench::BenchError),
    /// `exec` failed before its process ran or while following it:
    /// runc's "exec failed: ..." and exit status 255.
    #[error("exec failed")]
    ExecFailed(#[source] Box<CliError>),
}

impl CliError {
    /// The exit status it ends `vmrun` with: 255 for a failed `exec`, as
    /// runc's, else 1.
    pub fn exit_status(&self) -> i32 {
        match self {
            Self::ExecFailed(_) => EXEC_FAILED_STATUS,
            _ => 1,
        }
    }
}

/// runc's exit status for an `exec` that failed (not its process's).
pub const EXEC_FAILED_STATUS: i32 = 255;

/// Log output format (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The state root without `--root`.
pub const DEFAULT_ROOT: &str = "/run/vmrun";

/// Flags accepted before any verb, with runc's names.
#[derive(Debug, Clone, clap::Args)]
pub struct GlobalOpts {
    /// Root directory for container state.
    #[arg(long, global = true, default_value = DEFAULT_ROOT, value_name = "DIR")]
    pub root: PathBuf,
    /// Write logs to this file instead of stderr.
    #[arg(long, global = true, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Log format.
    #[arg(long = "log-format", global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Use systemd to manage cgroups (accepted for runc compatibility).
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// Debug-level logging.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Where images are stored (`--image-store`).
    #[command(flatten)]
    pub image_store: vmrun_image::cli::StoreArgs,
}

/// `vmrun`: runs OCI containers in KVM microVMs, with runc's interface.
#[derive(Debug, Parser)]
#[command(name = "vmrun", version = features::CLAP_VERSION, about)]
pub struct Cli {
    /// Global flags.
    #[command(flatten)]
    pub global: GlobalOpts,
    /// The verb.
    #[command(subcommand)]
    pub command: Command,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Boot a kernel + initramfs in a microVM (serial console on stdout).
    Boot(boot::BootArgs),
    /// Tell whether this host can run microVMs, and where the guest kernel
    /// and initramfs are.
    Check(check::CheckArgs),
    /// Create a container: boot its microVM, make its process wait for `start`.
    Create(create::CreateArgs),
    /// Run a created container's process.
    Start(start::StartArgs),
    /// Print a container's state as JSON.
    State(state::StateArgs),
    /// Send a signal to a container's process (default SIGTERM).
    Kill(kill::KillArgs),
    /// Delete a container and everything it left behind.
    Delete(delete::DeleteArgs),
    /// List containers.
    List(list::ListArgs),
    /// List a container's processes.
    Ps(ps::PsArgs),
    /// Run a new process in a running container.
    Exec(exec::ExecArgs),
    /// Freeze every process of a container.
    Pause(pause::IdArgs),
    /// Thaw a paused container.
    Resume(pause::IdArgs),
    /// Change a container's resource limits.
    Update(update::UpdateArgs),
    /// Print a container's resource usage (once, or every interval).
    Events(events::EventsArgs),
    /// Run an OCI bundle's process in a fresh microVM (like `runc run`).
    Run(run::RunArgs),
    /// Print what this runtime supports (runtime-spec features.md JSON).
    Features(features::FeaturesArgs),
    /// Write a default config.json (like `runc spec`).
    Spec(spec::SpecArgs),
    /// (internal) The container's VMM daemon started by `create`.
    #[command(name = "__vmm", hide = true)]
    VmmDaemon,
    /// (internal) The host process of a detached session (exec, pod member).
    #[command(name = "__session", hide = true)]
    SessionHelper,
    /// `vmrun DIR`: run the OCI bundle in DIR.
    #[command(external_subcommand)]
    External(Vec<OsString>),
    /// Pull an image from a registry into the local store.
    Pull(vmrun_image::cli::PullArgs),
    /// List the images in the local store.
    Images(vmrun_image::cli::ImagesArgs),
    /// Remove images from the local store.
    Rmi(vmrun_image::cli::RmiArgs),
    /// Image operations.
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Measure vmrun against runc, crun, podman, QEMU microvm, Firecracker.
    Bench(bench::BenchArgs),
}

/// Prints the phase table to stderr (`--timings`) and/or writes it as JSON
/// (`--timings-json FILE`), for any verb that boots a VM.
pub(crate) fn report_timings(
    table: bool,
    json: Option<&std::path::Path>,
    timings: &crate::timings::Timings,
) -> Result<(), CliError> {
    if table {
        eprint!("{}", timings.table());
    }
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&timings.report())
            .map_err(|e| CliError::Write(path.to_path_buf(), e.into()))?;
        std::fs::write(path, text + "\n").map_err(|e| CliError::Write(path.to_path_buf(), e))?;
    }
    Ok(())
}

/// Runs the parsed command; returns the process exit code.
pub fn execute(cli: Cli) -> Result<i32, CliError> {
    logging::init(&cli.global)?;
    match cli.command {
        Command::Boot(args) => boot::run(&cli.global, args),
        Command::Check(args) => check::run(&cli.global, args),
        Command::Create(args) => create::run(&cli.global, args),
        Command::Start(args) => start::run(&cli.global, args),
        Command::State(args) => state::run(&cli.global, args),
        Command::Kill(args) => kill::run(&cli.global, args),
        Command::Delete(args) => delete::run(&cli.global, args),
        Command::List(args) => list::run(&cli.global, args),
        Command::Ps(args) => ps::run(&cli.global, args),
        Command::Exec(args) => exec::run(&cli.global, args),
        Command::Pause(args) => pause::run(&cli.global, args),
        Command::Resume(args) => resume::run(&cli.global, args),
        Command::Update(args) => update::run(&cli.global, args),
        Command::Events(args) => events::run(&cli.global, args),
        Command::Run(args) => run::run(&cli.global, args),
        Command::Features(args) => features::run(args),
        Command::Spec(args) => spec::run(args),
        Command::VmmDaemon => Ok(helper::run(helper::HelperVerb::VmmDaemon)),
        Command::SessionHelper => Ok(helper::run(helper::HelperVerb::Session)),
        Command::External(words) => run::run_external(&cli.global, &words),
        Command::Pull(a) => image::run(&cli.global.image_store, image::ImageVerb::Pull(a)),
        Command::Images(a) => image::run(&cli.global.image_store, image::ImageVerb::Images(a)),
        Command::Rmi(a) => image::run(&cli.global.image_store, image::ImageVerb::Rmi(a)),
        Command::Image(c) => image::run(&cli.global.image_store, image::ImageVerb::Image(c)),
        Command::Bench(args) => bench::run(&cli.global, args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn boot_flags_parse_with_globals_anywhere() {
        let cli = Cli::try_parse_from([
            "vmrun",
            "--root",
            "/tmp/r",
            "boot",
            "--kernel",
            "/k",
            "--initrd",
            "/i",
            "--cpus",
            "2",
            "--memory",
            "256",
            "--cmdline",
            "console=ttyS0",
            "--timings",
            "--timings-json",
            "/tmp/t.json",
            "--serial-log",
            "/tmp/s.log",
            "--log-format",
            "json",
        ])
        .unwrap();
        assert_eq!(cli.global.root, PathBuf::from("/tmp/r"));
        assert_eq!(cli.global.log_format, LogFormat::Json);
        let Command::Boot(b) = cli.command else {
            panic!("not boot")
        };
        assert_eq!(b.cpus, 2);
        assert_eq!(b.memory, 256);
        assert_eq!(b.kernel.as_deref(), Some(std::path::Path::new("/k")));
        assert!(b.timings);
    }

    #[test]
    fn boot_defaults() {
        let cli = Cli::try_parse_from(["vmrun", "boot"]).unwrap();
        let Command::Boot(b) = cli.command else {
            panic!("not boot")
        };
        assert_eq!((b.cpus, b.memory), (1, 128));
        assert_eq!(b.cmdline, crate::cmdline::DEFAULT_CMDLINE);
        assert!(b.kernel.is_none() && b.initrd.is_none() && !b.timings);
    }

    #[test]
    fn bad_numbers_are_rejected_by_the_parser() {
        assert!(Cli::try_parse_from(["vmrun", "boot", "--cpus", "-1"]).is_err());
        assert!(Cli::try_parse_from(["vmrun", "boot", "--cpus", "300"]).is_err());
        assert!(Cli::try_parse_from(["vmrun", "boot", "--memory", "lots"]).is_err());
    }
}
