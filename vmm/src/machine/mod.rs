//! A microVM: KVM VM + guest memory + devices + vCPUs, and its run loop.
//!
//! Machines are made by [`builder::MachineBuilder`] (the one path for
//! `vmrun boot`, containers and tests: it validates the configuration once,
//! creates the hardware, attaches the virtio devices and loads the guest).
//! [`Machine::attach_virtio`] is the one place devices are wired in (see
//! [`mmio_devices`]); hand-made guests write code into [`Machine::memory`]
//! and call [`Machine::set_boot_entry`]; [`Machine::run`] starts one thread
//! per vCPU and returns when the guest resets, halts or fails.

pub mod builder;
pub mod config;
pub mod file_mapping;
pub mod heap_trim;
pub mod kernel;
pub mod malloc_arenas;
pub mod mmio_devices;
pub mod vcpu_thread;

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

use vmrun_virtio::panic_guard;
use vmrun_virtio::VirtioDevice;

use crate::arch::x86_64::layout::{
    I8042_PORT_BASE, I8042_PORT_SIZE, SERIAL_IRQ, SERIAL_PORT_BASE, SERIAL_PORT_SIZE,
};
use crate::arch::x86_64::memory_map::ram_regions;
use crate::arch::x86_64::regs::BootEntry;
use crate::cmdline::{build_cmdline, CmdlineError};
use crate::devices::boot_timer::BootTimer;
use crate::devices::bus::{Bus, BusError};
use crate::devices::cmos::{CmosPlaceholder, CMOS_PORT_BASE, CMOS_PORT_SIZE};
use crate::devices::console::{ConsoleWriter, PanicSlot};
use crate::devices::i8042::I8042;
use crate::devices::serial::SerialDevice;
use crate::exit::{ExitState, VmExit};
use crate::seccomp::ThreadKind;
use crate::timings::{Phase, Timings};
use crate::vstate::memory::{create_guest_memory, MemoryError};
use crate::vstate::vcpu::{Vcpu, VcpuError};
use crate::vstate::vm::{Vm, VmError};
use config::MachineConfig;
use kernel::KernelError;
use mmio_devices::{AttachError, MmioDeviceManager, MmioSlot};
use vcpu_thread::{install_kick_handler, run_vcpu, stop_vcpus, BusIo, VcpuContext};

pub use config::BootConfig;

/// Errors building a machine.
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    /// A VM-level KVM operation failed.
    #[error("KVM VM set-up failed")]
    Vm(#[from] VmError),
    /// Guest memory could not be created.
    #[error("guest memory set-up failed")]
    Memory(#[from] MemoryError),
    /// A vCPU could not be created or configured.
    #[error("vCPU set-up failed")]
    Vcpu(#[from] VcpuError),
    /// A device could not be mounted.
    #[error("cannot mount a device on the {0} bus")]
    Bus(&'static str, #[source] BusError),
    /// An EventFd could not be created.
    #[error("cannot create an eventfd")]
    EventFd(#[source] std::io::Error),
    /// The kernel command line is invalid.
    #[error("invalid kernel command line")]
    Cmdline(#[from] CmdlineError),
    /// A virtio device could not be attached.
    #[error("cannot attach a virtio device")]
    Attach(#[from] AttachError),
    /// The kernel, initrd or boot structures could not be loaded.
    #[error("cannot load the guest")]
    Kernel(#[from] KernelError),
}

/// Why [`Machine::run`] failed: the guest died or KVM failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RunError {
    /// A `Kernel panic - not syncing:` line was printed on the console.
    #[error("guest kernel panicked: {0}")]
    GuestPanicked(String),
    /// KVM_EXIT_SHUTDOWN.
    #[error("guest triple-faulted (vCPU {cpu})")]
    TripleFault {
        /// The vCPU.
        cpu: u8,
    },
    /// KVM_EXIT_INTERNAL_ERROR.
    #[error("KVM internal error on vCPU {cpu}: suberror {suberror}{}", if *.suberror == 1 { " (instruction emulation failure)" } else { "" })]
    KvmInternalError {
        /// The vCPU.
        cpu: u8,
        /// KVM's sub-error code.
        suberror: u32,
    },
    /// KVM_EXIT_FAIL_ENTRY.
    #[error(
        "KVM could not enter the guest on vCPU {cpu}: hardware entry failure reason {reason:#x}"
    )]
    FailEntry {
        /// The vCPU.
        cpu: u8,
        /// Hardware reason.
        reason: u64,
    },
    /// KVM reported a guest crash event.
    #[error("guest crashed (KVM crash event on vCPU {cpu})")]
    GuestCrash {
        /// The vCPU.
        cpu: u8,
    },
    /// A vCPU ioctl failed.
    #[error("vCPU {cpu} failed: {error}")]
    VcpuFailed {
        /// The vCPU.
        cpu: u8,
        /// The error chain.
        error: String,
    },
    /// The kick signal handler could not be installed.
    #[error("cannot install the vCPU kick signal handler: {0}")]
    KickHandler(String),
    /// A vCPU thread could not be spawned.
    #[error("cannot spawn the thread of vCPU {cpu}: {error}")]
    SpawnThread {
        /// The vCPU.
        cpu: u8,
        /// The OS error.
        error: String,
    },
    /// A vCPU thread panicked (a VMM bug).
    #[error("{0} vCPU thread(s) panicked")]
    ThreadPanicked(usize),
    /// A vCPU thread panicked; the VM was stopped.
    #[error("vCPU {cpu} thread panicked: {message}")]
    VcpuPanicked {
        /// The vCPU.
        cpu: u8,
        /// The panic message.
        message: String,
    },
}

/// How a guest ended cleanly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanExit {
    /// The guest reset/powered off the machine (i8042 reset line).
    Reset,
    /// Every vCPU halted (only without an in-kernel irqchip).
    AllVcpusHalted,
    /// The host stopped the VM ([`VmExit::Stopped`]).
    Stopped,
}

/// What [`Machine::create`] builds besides the VM and its memory.
struct DevicesAndVcpus {
    exit: Arc<ExitState>,
    panic: PanicSlot,
    pio: Arc<Bus>,
    mmio: Arc<Bus>,
    serial: Arc<Mutex<SerialDevice>>,
    vcpus: Vec<Vcpu>,
}

/// A built microVM, ready to be loaded and run.
pub struct Machine {
    config: MachineConfig,
    vm: Vm,
    memory: GuestMemoryMmap,
    vcpus: Vec<Vcpu>,
    pio: Arc<Bus>,
    mmio: Arc<Bus>,
    exit: Arc<ExitState>,
    timings: Arc<Timings>,
    panic: PanicSlot,
    serial: Arc<Mutex<SerialDevice>>,
    virtio: MmioDeviceManager,
}

impl std::fmt::Debug for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Machine")
            .field("config", &self.config)
            .field("pio", &self.pio)
            .field("mmio", &self.mmio)
            .finish_non_exhaustive()
    }
}

impl Machine {
    /// Creates the VM, its memory, the legacy devices (serial to `console`,
    /// i8042, boot timer) and the vCPUs. `config` was validated by the
    /// [`builder::MachineBuilder`], the only caller.
    fn create(
        config: &MachineConfig,
        console: Box<dyn Write + Send>,
        timings: Arc<Timings>,
    ) -> Result<Self, MachineError> {
        let mut vm = Vm::new()?;
        timings.record(Phase::VmCreated);
        if config.irqchip {
            vm.setup_irqchip()?;
        }
        let memory = create_guest_memory(&ram_regions(config.memory_bytes()))?;
        // Registering guest RAM with KVM waits for an SRCU grace period
        // (~5 ms of the ~9 ms to the first KVM_RUN on this project's own
        // /dev/kvm): it runs on a thread of its own while this one sets up
        // the devices and vCPUs, which need no memory slot.
        let (registered, devices) = std::thread::scope(|scope| {
            let registration = std::thread::Builder::new()
                .name("memslots".into())
                .spawn_scoped(scope, || vm.register_memory(&memory));
            let devices = Self::create_devices_and_vcpus(config, &vm, console, &timings);
            let registered = match registration {
                Ok(thread) => thread.join().unwrap_or(Err(VmError::RegistrationPanicked)),
                // No thread: register here, in turn.
                Err(_) => vm.register_memory(&memory),
            };
            (registered, devices)
        });
        registered?;
        let DevicesAndVcpus {
            exit,
            panic,
            pio,
            mmio,
            serial,
            vcpus,
        } = devices?;
        Ok(Self {
            config: config.clone(),
            vm,
            memory,
            vcpus,
            pio,
            mmio,
            exit,
            timings,
            panic,
            serial,
            virtio: MmioDeviceManager::default(),
        })
    }

    /// The legacy devices (serial to `console`, i8042, CMOS placeholder,
    /// boot timer) on a fresh pio bus, an empty mmio bus, and the vCPUs.
    fn create_devices_and_vcpus(
        config: &MachineConfig,
        vm: &Vm,
        console: Box<dyn Write + Send>,
        timings: &Arc<Timings>,
    ) -> Result<DevicesAndVcpus, MachineError> {
        let exit = Arc::new(ExitState::new());
        let panic = PanicSlot::default();
        let pio = Arc::new(Bus::new("pio"));
        let mmio = Arc::new(Bus::new("mmio"));

        let serial_evt = EventFd::new(libc::EFD_NONBLOCK).map_err(MachineError::EventFd)?;
        if vm.has_irqchip() {
            vm.register_irqfd(&serial_evt, SERIAL_IRQ)?;
        }
        let serial = Arc::new(Mutex::new(SerialDevice::new(
            serial_evt,
            ConsoleWriter::new(console, panic.clone()),
        )));
        let mount = |base: u16, len: u16, dev| {
            pio.insert(u64::from(base), u64::from(len), dev)
                .map_err(|e| MachineError::Bus("pio", e))
        };
        mount(SERIAL_PORT_BASE, SERIAL_PORT_SIZE, serial.clone())?;
        mount(
            I8042_PORT_BASE,
            I8042_PORT_SIZE,
            Arc::new(Mutex::new(I8042::new(exit.clone()))),
        )?;
        mount(
            CMOS_PORT_BASE,
            CMOS_PORT_SIZE,
            Arc::new(Mutex::new(CmosPlaceholder::default())),
        )?;
        mount(
            vmrun_protocol::marker::PORT,
            1,
            Arc::new(Mutex::new(BootTimer::new(timings.clone()))),
        )?;

        let mut vcpus = Vec::with_capacity(usize::from(config.vcpus));
        for id in 0..config.vcpus {
            let vcpu = Vcpu::new(vm, id)?;
            vcpu.configure(vm, config.vcpus)?;
            vcpus.push(vcpu);
        }
        Ok(DevicesAndVcpus {
            exit,
            panic,
            pio,
            mmio,
            serial,
            vcpus,
        })
    }

    /// Guest memory (for loaders and hand-made guests).
    pub fn memory(&self) -> &GuestMemoryMmap {
        &self.memory
    }

    /// The VM, for irqfd/ioeventfd registration by devices.
    pub fn vm(&self) -> &Vm {
        &self.vm
    }

    /// The port-I/O bus.
    pub fn pio_bus(&self) -> &Arc<Bus> {
        &self.pio
    }

    /// The MMIO bus: virtio-mmio transports are mounted here.
    pub fn mmio_bus(&self) -> &Arc<Bus> {
        &self.mmio
    }

    /// The serial device (to feed console input).
    pub fn serial(&self) -> &Arc<Mutex<SerialDevice>> {
        &self.serial
    }

    /// The exit state (devices that end the VM report here).
    pub fn exit_state(&self) -> &Arc<ExitState> {
        &self.exit
    }

    /// The phase timestamps.
    pub fn timings(&self) -> &Arc<Timings> {
        &self.timings
    }

    /// Attaches a virtio device: next MMIO window and IRQ, ioeventfds,
    /// irqfd, bus mount, command-line word (see [`mmio_devices`]). Devices
    /// attached after [`Machine::load_linux`] are not announced to the guest.
    pub fn attach_virtio(
        &mut self,
        device: Box<dyn VirtioDevice>,
    ) -> Result<MmioSlot, MachineError> {
        Ok(self
            .virtio
            .attach_virtio(&self.vm, &self.memory, &self.mmio, device)?)
    }

    /// The attached virtio devices' slots, in attachment order.
    pub fn virtio_slots(&self) -> &[MmioSlot] {
        self.virtio.slots()
    }

    /// Loads a Linux kernel, initrd and command line (`cmdline` plus one
    /// `virtio_mmio.device=` per attached device) and points the vCPUs at
    /// the kernel's entry.
    pub fn load_linux(
        &mut self,
        kernel: &Path,
        initrd: Option<&Path>,
        cmdline: &str,
    ) -> Result<BootEntry, MachineError> {
        let cmdline = build_cmdline(cmdline, &self.virtio.cmdline_entries())?;
        let entry = kernel::load_linux(
            &self.memory,
            self.config.memory_bytes(),
            self.config.vcpus,
            kernel,
            initrd,
            &cmdline,
        )?;
        self.set_boot_entry(&entry)?;
        self.timings.record(Phase::KernelLoaded);
        Ok(entry)
    }

    /// Points every vCPU at `entry`. With the in-kernel irqchip only vCPU 0
    /// runs from there; the others wait for the guest's INIT/SIPI.
    pub fn set_boot_entry(&self, entry: &BootEntry) -> Result<(), MachineError> {
        for vcpu in &self.vcpus {
            vcpu.set_boot_entry(&self.memory, entry)?;
        }
        Ok(())
    }

    /// Runs the guest until it resets, halts or fails; stops every vCPU
    /// thread before returning.
    pub fn run(self) -> Result<CleanExit, RunError> {
        install_kick_handler().map_err(|e| RunError::KickHandler(e.to_string()))?;
        crate::seccomp::filter_device_workers();
        let ctx = VcpuContext {
            io: Arc::new(BusIo::new(self.pio.clone(), self.mmio.clone())),
            exit: self.exit.clone(),
            timings: self.timings.clone(),
            vcpu_count: self.vcpus.len(),
        };
        let mut handles = Vec::with_capacity(self.vcpus.len());
        let mut spawn_error = None;
        for vcpu in self.vcpus {
            let cpu = vcpu.id();
            let ctx = ctx.clone();
            match std::thread::Builder::new()
                .stack_size(vmrun_virtio::worker::THREAD_STACK_SIZE)
                .name(format!("vcpu{cpu}"))
                .spawn(move || {
                    let exit = ctx.exit.clone();
                    // Before the first guest instruction.
                    if let Err(e) = crate::seccomp::install(ThreadKind::Vcpu) {
                        exit.report(VmExit::VcpuFailed {
                            cpu,
                            error: crate::error_chain(&e),
                        });
                        return;
                    }
                    // A panic here (a VMM bug the guest may trigger) stops
                    // the VM with an error instead of leaving it waiting
                    // for an exit this thread would never report.
                    if let Err(message) = panic_guard::catch(|| run_vcpu(vcpu, ctx)) {
                        exit.report(VmExit::VcpuPanicked { cpu, message });
                    }
                }) {
                Ok(h) => handles.push(h),
                Err(e) => {
                    spawn_error = Some(RunError::SpawnThread {
                        cpu,
                        error: e.to_string(),
                    });
                    self.exit.report(VmExit::VcpuFailed {
                        cpu,
                        error: e.to_string(),
                    });
                    break;
                }
            }
        }
        // The set-up is done: its freed heap need not stay resident while
        // the guest runs.
        heap_trim::release_free_heap();
        let exit = self.exit.wait();
        let panicked = stop_vcpus(handles);
        self.timings.record(Phase::Exit);
        if let Ok(mut serial) = self.serial.lock() {
            serial.flush_output();
        }
        tracing::debug!(?exit, "VM stopped");
        if let Some(e) = spawn_error {
            return Err(e);
        }
        if panicked > 0 {
            return Err(RunError::ThreadPanicked(panicked));
        }
        let panic_line = self.panic.lock().unwrap_or_else(|p| p.into_inner()).clone();
        classify(exit, panic_line)
    }
}

/// Maps the VM exit (and a kernel panic line, if one was printed) to the
/// run's outcome: a panic line wins over the reset/triple fault it caused.
pub fn classify(exit: VmExit, panic_line: Option<String>) -> Result<CleanExit, RunError> {
    match (exit, panic_line) {
        (VmExit::Reset | VmExit::AllVcpusHalted | VmExit::TripleFault { .. }, Some(msg)) => {
            Err(RunError::GuestPanicked(msg))
        }
        (VmExit::Reset, None) => Ok(CleanExit::Reset),
        (VmExit::AllVcpusHalted, None) => Ok(CleanExit::AllVcpusHalted),
        (VmExit::Stopped, _) => Ok(CleanExit::Stopped),
        (VmExit::TripleFault { cpu }, None) => Err(RunError::TripleFault { cpu }),
        (VmExit::InternalError { cpu, suberror }, _) => {
            Err(RunError::KvmInternalError { cpu, suberror })
        }
        (VmExit::FailEntry { cpu, reason }, _) => Err(RunError::FailEntry { cpu, reason }),
        (VmExit::GuestCrash { cpu }, Some(msg)) => {
            tracing::debug!(cpu, "crash event after panic");
            Err(RunError::GuestPanicked(msg))
        }
        (VmExit::GuestCrash { cpu }, None) => Err(RunError::GuestCrash { cpu }),
        (VmExit::VcpuFailed { cpu, error }, _) => Err(RunError::VcpuFailed { cpu, error }),
        (VmExit::VcpuPanicked { cpu, message }, _) => Err(RunError::VcpuPanicked { cpu, message }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_line_turns_reset_into_error() {
        assert_eq!(classify(VmExit::Reset, None), Ok(CleanExit::Reset));
        let err = classify(VmExit::Reset, Some("Attempted to kill init!".into())).unwrap_err();
        assert_eq!(
            err.to_string(),
            "guest kernel panicked: Attempted to kill init!"
        );
        let err = classify(VmExit::TripleFault { cpu: 1 }, None).unwrap_err();
        assert_eq!(err.to_string(), "guest triple-faulted (vCPU 1)");
        let err = classify(
            VmExit::InternalError {
                cpu: 0,
                suberror: 1,
            },
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("emulation failure"), "{err}");
        let err = classify(
            VmExit::VcpuPanicked {
                cpu: 1,
                message: "index out of bounds".into(),
            },
            Some("a panic line loses to the VMM's own failure".into()),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "vCPU 1 thread panicked: index out of bounds"
        );
    }

    #[test]
    fn a_panicking_vcpu_thread_reports_its_exit() {
        // What each vCPU thread runs around `run_vcpu`.
        let exit = Arc::new(ExitState::new());
        let state = exit.clone();
        std::thread::spawn(move || {
            if let Err(message) = panic_guard::catch(|| -> () { panic!("bad exit {}", 9) }) {
                state.report(VmExit::VcpuPanicked { cpu: 0, message });
            }
        })
        .join()
        .unwrap();
        assert_eq!(
            exit.wait(),
            VmExit::VcpuPanicked {
                cpu: 0,
                message: "bad exit 9".into()
            }
        );
    }
}
