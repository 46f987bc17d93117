//! `vmrun boot`: boot any kernel + initramfs like a plain microVM monitor.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use super::{CliError, GlobalOpts};
use crate::check::{default_initrd, default_kernel, ensure_host_can_run_guests};
use crate::cmdline::DEFAULT_CMDLINE;
use crate::machine::builder::{BootError, MachineBuilder};
use crate::machine::config::{BootConfig, MachineConfig, DEFAULT_MEMORY_MIB, DEFAULT_VCPUS};
use crate::timings::{Phase, Timings};

/// Arguments of `vmrun boot`.
#[derive(Debug, Clone, clap::Args)]
pub struct BootArgs {
    /// Kernel image: ELF vmlinux with a PVH note (or a bzImage).
    /// Default: $VMRUN_KERNEL, else $VMRUN_CACHE_DIR/vmlinux (/var/cache/vmrun/vmlinux).
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// Initramfs. Default: $VMRUN_INITRD, else $VMRUN_CACHE_DIR/initramfs.cpio.
    #[arg(long, value_name = "PATH")]
    pub initrd: Option<PathBuf>,
    /// Boot without any initramfs.
    #[arg(long, conflicts_with = "initrd")]
    pub no_initrd: bool,
    /// Kernel command line.
    #[arg(long, default_value = DEFAULT_CMDLINE, value_name = "STR")]
    pub cmdline: String,
    /// Number of vCPUs.
    #[arg(long, default_value_t = DEFAULT_VCPUS, value_name = "N")]
    pub cpus: u8,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = DEFAULT_MEMORY_MIB, value_name = "MIB")]
    pub memory: u64,
    /// Print the boot phase timings to stderr at exit.
    #[arg(long)]
    pub timings: bool,
    /// Write the boot phase timings as JSON to FILE at exit.
    #[arg(long = "timings-json", value_name = "FILE")]
    pub timings_json: Option<PathBuf>,
    /// Write the guest's serial console to FILE instead of stdout.
    #[arg(long = "serial-log", value_name = "FILE")]
    pub serial_log: Option<PathBuf>,
}

impl BootArgs {
    /// The boot configuration these arguments describe (defaults resolved).
    pub fn boot_config(&self) -> BootConfig {
        BootConfig {
            machine: MachineConfig {
                vcpus: self.cpus,
                memory_mib: self.memory,
                irqchip: true,
            },
            kernel: self.kernel.clone().unwrap_or_else(default_kernel),
            initrd: if self.no_initrd {
                None
            } else {
                Some(self.initrd.clone().unwrap_or_else(default_initrd))
            },
            cmdline: self.cmdline.clone(),
        }
    }
}

/// Fails with a build hint when a default artifact (not given on the
/// command line) does not exist yet.
fn check_defaults_built(args: &BootArgs, config: &BootConfig) -> Result<(), CliError> {
    if args.kernel.is_none() && !config.kernel.exists() {
        return Err(CliError::NotBuilt {
            what: "kernel",
            path: config.kernel.clone(),
            script: "kernel-config/build.sh",
            flag: "kernel",
        });
    }
    match &config.initrd {
        Some(path) if args.initrd.is_none() && !path.exists() => Err(CliError::NotBuilt {
            what: "initramfs",
            path: path.clone(),
            script: "rootfs/build-initramfs.sh",
            flag: "initrd",
        }),
        _ => Ok(()),
    }
}

/// Runs `vmrun boot`.
pub fn run(_global: &GlobalOpts, args: BootArgs) -> Result<i32, CliError> {
    let timings = Arc::new(Timings::default());
    // Bad input is reported by name first, whatever host this is.
    let config = args.boot_config();
    check_defaults_built(&args, &config)?;
    let builder = MachineBuilder::for_boot(config).map_err(BootError::from)?;
    ensure_host_can_run_guests()?;
    let console: Box<dyn Write + Send> = match &args.serial_log {
        Some(path) => Box::new(File::create(path).map_err(|e| CliError::Write(path.clone(), e))?),
        None => Box::new(std::io::stdout()),
    };
    let result = builder
        .console(console)
        .timings(timings.clone())
        .build()
        .map_err(BootError::from)
        .and_then(|machine| Ok(machine.run()?));
    timings.record(Phase::Exit);
    super::report_timings(args.timings, args.timings_json.as_deref(), &timings)?;
    let exit = result?;
    tracing::info!(?exit, "guest exited cleanly");
    Ok(0)
}
