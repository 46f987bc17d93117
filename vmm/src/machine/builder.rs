//! [`MachineBuilder`]: the one way a [`Machine`] is made, for `vmrun boot`,
//! for containers and for tests.
//!
//! The configuration is validated once, when the builder is made (so bad
//! input is reported by name before anything touches KVM); [`build`]
//! then creates the VM, its memory, the legacy devices and the vCPUs,
//! attaches the virtio devices in the order given, and loads the guest
//! when there is one.
//!
//! [`build`]: MachineBuilder::build

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use vmrun_virtio::VirtioDevice;

use super::config::{BootConfig, ConfigError, MachineConfig};
use super::{Machine, MachineError, RunError};
use crate::timings::Timings;

/// The Linux guest to load: kernel, initrd, command line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LinuxImage {
    kernel: PathBuf,
    initrd: Option<PathBuf>,
    cmdline: String,
}

/// A validated machine description, built into a [`Machine`] by
/// [`MachineBuilder::build`].
pub struct MachineBuilder {
    machine: MachineConfig,
    linux: Option<LinuxImage>,
    console: Box<dyn Write + Send>,
    timings: Arc<Timings>,
    virtio: Vec<Box<dyn VirtioDevice>>,
}

impl std::fmt::Debug for MachineBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MachineBuilder")
            .field("machine", &self.machine)
            .field("linux", &self.linux)
            .field("virtio_devices", &self.virtio.len())
            .finish_non_exhaustive()
    }
}

impl MachineBuilder {
    /// A machine with no guest loaded (hand-made guests write their code
    /// into memory themselves); validates `machine` against this host.
    pub fn new(machine: MachineConfig) -> Result<Self, ConfigError> {
        machine.validate()?;
        Ok(Self::unchecked(machine, None))
    }

    /// A machine that boots `config`'s kernel, initrd and command line;
    /// validates all of `config` against this host.
    pub fn for_boot(config: BootConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let linux = LinuxImage {
            kernel: config.kernel,
            initrd: config.initrd,
            cmdline: config.cmdline,
        };
        Ok(Self::unchecked(config.machine, Some(linux)))
    }

    fn unchecked(machine: MachineConfig, linux: Option<LinuxImage>) -> Self {
        Self {
            machine,
            linux,
            console: Box::new(std::io::sink()),
            timings: Arc::new(Timings::default()),
            virtio: Vec::new(),
        }
    }

    /// Where the serial console goes (default: discarded).
    pub fn console(mut self, console: Box<dyn Write + Send>) -> Self {
        self.console = console;
        self
    }

    /// Where the phase timestamps go (default: a fresh set).
    pub fn timings(mut self, timings: Arc<Timings>) -> Self {
        self.timings = timings;
        self
    }

    /// Appends `word` to the kernel command line (for a machine made with
    /// [`MachineBuilder::for_boot`]; ignored without a guest to load).
    pub fn cmdline_word(mut self, word: &str) -> Self {
        if let Some(linux) = &mut self.linux {
            linux.cmdline.push(' ');
            linux.cmdline.push_str(word);
        }
        self
    }

    /// Adds a virtio device; devices are attached in the order added.
    pub fn virtio(mut self, device: Box<dyn VirtioDevice>) -> Self {
        self.virtio.push(device);
        self
    }

    /// Creates the machine, attaches its devices and loads its guest.
    pub fn build(self) -> Result<Machine, MachineError> {
        let mut machine = Machine::create(&self.machine, self.console, self.timings)?;
        for device in self.virtio {
            machine.attach_virtio(device)?;
        }
        if let Some(linux) = &self.linux {
            machine.load_linux(&linux.kernel, linux.initrd.as_deref(), &linux.cmdline)?;
        }
        Ok(machine)
    }
}

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
