//! The whole `vmrun boot` path: validate → VM → memory → devices → vCPUs →
//! load kernel/initrd/cmdline → run.

use std::io::Write;
use std::sync::Arc;

use super::{CleanExit, Machine, MachineError, RunError};
use crate::machine::config::{BootConfig, ConfigError};
use crate::timings::Timings;

/// Errors of a complete boot.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The configuration is invalid.
    #[error("invalid boot configuration")]
    Config(#[from] ConfigError),
    /// Building or loading the machine failed.
    #[error("cannot build the microVM")]
    Machine(#[from] MachineError),
    /// The guest failed while running.
    #[error(transparent)]
    Run(#[from] RunError),
}

/// Boots `config` with the serial console on `console`, recording phases in
/// `timings`; returns when the guest is gone.
pub fn boot(
    config: &BootConfig,
    console: Box<dyn Write + Send>,
    timings: Arc<Timings>,
) -> Result<CleanExit, BootError> {
    config.validate()?;
    let mut machine = Machine::new(&config.machine, console, timings)?;
    machine.load_linux(&config.kernel, config.initrd.as_deref(), &config.cmdline)?;
    Ok(machine.run()?)
}
