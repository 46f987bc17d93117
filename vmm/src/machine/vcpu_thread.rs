//! The per-vCPU thread: run, dispatch I/O to the buses, turn fatal exits into
//! a [`VmExit`], and stop when told to (a kick signal interrupts `KVM_RUN`).

use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use vmm_sys_util::signal::{register_signal_handler, Killable, SIGRTMIN};
use vmrun_virtio::LogLimit;

use crate::devices::bus::Bus;
use crate::exit::{ExitState, VmExit};
use crate::timings::{Phase, Timings};
use crate::vstate::vcpu::{IoHandler, Vcpu, VcpuEvent};

/// KVM_SYSTEM_EVENT types.
const SYSTEM_EVENT_SHUTDOWN: u32 = 1;
const SYSTEM_EVENT_RESET: u32 = 2;
const SYSTEM_EVENT_CRASH: u32 = 3;

/// The signal that interrupts a vCPU thread's `KVM_RUN`.
pub fn kick_signal() -> i32 {
    SIGRTMIN()
}

extern "C" fn on_kick(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // Nothing to do: delivery alone makes KVM_RUN return EINTR.
}

/// Installs the (empty) kick handler once per process.
pub fn install_kick_handler() -> Result<(), std::io::Error> {
    static RESULT: OnceLock<i32> = OnceLock::new();
    let errno = *RESULT.get_or_init(|| match register_signal_handler(kick_signal(), on_kick) {
        Ok(()) => 0,
        Err(e) => e.errno(),
    });
    if errno == 0 {
        Ok(())
    } else {
        Err(std::io::Error::from_raw_os_error(errno))
    }
}

/// Routes vCPU I/O to the port and MMIO buses; unclaimed accesses are
/// logged (through one [`LogLimit`]) and ignored.
pub struct BusIo {
    pio: Arc<Bus>,
    mmio: Arc<Bus>,
    unclaimed: LogLimit,
}

impl BusIo {
    /// An I/O router over the two buses.
    pub fn new(pio: Arc<Bus>, mmio: Arc<Bus>) -> Self {
        Self {
            pio,
            mmio,
            unclaimed: LogLimit::new(),
        }
    }

    fn log_unclaimed(&self, kind: &str, addr: u64, len: usize) {
        if let Some(suppressed) = self.unclaimed.admit() {
            tracing::debug!(
                suppressed,
                "unclaimed {kind} access at {addr:#x} ({len} bytes)"
            );
        }
    }
}

impl IoHandler for BusIo {
    fn pio_read(&self, port: u16, data: &mut [u8]) {
        if !self.pio.read(u64::from(port), data) {
            data.fill(0xff);
            self.log_unclaimed("port read", u64::from(port), data.len());
        }
    }

    fn pio_write(&self, port: u16, data: &[u8]) {
        if !self.pio.write(u64::from(port), data) {
            self.log_unclaimed("port write", u64::from(port), data.len());
        }
    }

    fn mmio_read(&self, addr: u64, data: &mut [u8]) {
        if !self.mmio.read(addr, data) {
            data.fill(0);
            self.log_unclaimed("MMIO read", addr, data.len());
        }
    }

    fn mmio_write(&self, addr: u64, data: &[u8]) {
        if !self.mmio.write(addr, data) {
            self.log_unclaimed("MMIO write", addr, data.len());
        }
    }
}

/// What a vCPU thread shares with the rest of the machine.
#[derive(Clone)]
pub struct VcpuContext {
    /// Port/MMIO routing.
    pub io: Arc<BusIo>,
    /// Where fatal exits go and the stop flag.
    pub exit: Arc<ExitState>,
    /// Phase timestamps.
    pub timings: Arc<Timings>,
    /// Number of vCPUs (for "all halted").
    pub vcpu_count: usize,
}

/// Runs `vcpu` until the VM stops.
pub fn run_vcpu(mut vcpu: Vcpu, ctx: VcpuContext) {
    let cpu = vcpu.id();
    if cpu == 0 {
        ctx.timings.record(Phase::FirstKvmRun);
    }
    while !ctx.exit.should_stop() {
        let fatal = match vcpu.run_once(ctx.io.as_ref()) {
            Ok(VcpuEvent::Io) | Ok(VcpuEvent::Interrupted) => None,
            Ok(VcpuEvent::Halted) => {
                tracing::debug!(cpu, "vCPU halted");
                ctx.exit.vcpu_halted(ctx.vcpu_count);
                break;
            }
            Ok(VcpuEvent::Shutdown) => Some(VmExit::TripleFault { cpu }),
            Ok(VcpuEvent::InternalError { suberror }) => {
                Some(VmExit::InternalError { cpu, suberror })
            }
            Ok(VcpuEvent::FailEntry { reason }) => Some(VmExit::FailEntry { cpu, reason }),
            Ok(VcpuEvent::SystemEvent { kind }) => match kind {
                SYSTEM_EVENT_SHUTDOWN | SYSTEM_EVENT_RESET => Some(VmExit::Reset),
                SYSTEM_EVENT_CRASH => Some(VmExit::GuestCrash { cpu }),
                other => {
                    tracing::debug!(cpu, "ignored KVM system event {other}");
                    None
                }
            },
            Ok(VcpuEvent::Other(desc)) => {
                tracing::debug!(cpu, "ignored vCPU exit {desc}");
                None
            }
            Err(e) => Some(VmExit::VcpuFailed {
                cpu,
                error: crate::error_chain(&e),
            }),
        };
        if let Some(exit) = fatal {
            if matches!(
                exit,
                VmExit::TripleFault { .. }
                    | VmExit::InternalError { .. }
                    | VmExit::FailEntry { .. }
            ) {
                tracing::error!(cpu, "vCPU state at {exit:?}: {}", vcpu.describe_state());
            }
            ctx.exit.report(exit);
            break;
        }
    }
    // Leave KVM_RUN alone from now on even if this thread is resumed.
    vcpu.set_immediate_exit(true);
}

/// Kicks every still-running vCPU thread until all have finished, then joins
/// them. Returns how many threads panicked.
pub fn stop_vcpus(handles: Vec<JoinHandle<()>>) -> usize {
    let signal = kick_signal();
    // A thread may be between its stop-flag check and KVM_RUN when kicked,
    // so keep kicking until it is out.
    while handles.iter().any(|h| !h.is_finished()) {
        for h in handles.iter().filter(|h| !h.is_finished()) {
            let _ = h.kill(signal);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    handles.into_iter().filter_map(|h| h.join().err()).count()
}
