//! A KVM vCPU: creation, boot-state configuration and one `KVM_RUN` step.

use kvm_bindings::{kvm_xcrs, CpuId, Msrs, KVM_MAX_CPUID_ENTRIES};
use kvm_ioctls::{VcpuExit, VcpuFd};
use vm_memory::GuestMemoryMmap;

use super::vm::Vm;
use crate::arch::x86_64::cpuid::{filter_cpuid, VcpuTopology};
use crate::arch::x86_64::regs::{
    boot_fpu, boot_regs, boot_sregs, write_boot_tables, BootEntry, RegsError,
};
use crate::arch::x86_64::xsave::XCR0_X87;
use crate::arch::x86_64::{lapic, msrs};

/// Errors of vCPU ioctls.
#[derive(Debug, thiserror::Error)]
pub enum VcpuError {
    /// KVM_CREATE_VCPU failed.
    #[error("cannot create vCPU {0}")]
    Create(u8, #[source] kvm_ioctls::Error),
    /// KVM_GET_SUPPORTED_CPUID failed.
    #[error("cannot read the CPUID KVM supports")]
    SupportedCpuid(#[source] kvm_ioctls::Error),
    /// Building the filtered CPUID table failed.
    #[error("cannot build the CPUID table for vCPU {0}")]
    BuildCpuid(u8),
    /// A register-setting ioctl failed.
    #[error("cannot set {what} of vCPU {id}")]
    Set {
        /// Which state (CPUID, MSRs, FPU, ...).
        what: &'static str,
        /// vCPU index.
        id: u8,
        /// The KVM error.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// KVM accepted fewer MSRs than given.
    #[error("vCPU {id} accepted only {set} of {wanted} boot MSRs")]
    PartialMsrs {
        /// vCPU index.
        id: u8,
        /// MSRs KVM accepted.
        set: usize,
        /// MSRs given.
        wanted: usize,
    },
    /// A register-reading ioctl failed.
    #[error("cannot read {what} of vCPU {id}")]
    Get {
        /// Which state.
        what: &'static str,
        /// vCPU index.
        id: u8,
        /// The KVM error.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// Writing the boot GDT/page tables failed.
    #[error("cannot prepare the boot tables")]
    BootTables(#[from] RegsError),
    /// KVM_RUN failed.
    #[error("KVM_RUN failed on vCPU {0}")]
    Run(u8, #[source] kvm_ioctls::Error),
}

/// Where a vCPU's port and MMIO accesses go. Implementations must not panic
/// on any guest-chosen address or size.
pub trait IoHandler {
    /// `in` from `port`: fill `data`.
    fn pio_read(&self, port: u16, data: &mut [u8]);
    /// `out` of `data` to `port`.
    fn pio_write(&self, port: u16, data: &[u8]);
    /// MMIO load from `addr`: fill `data`.
    fn mmio_read(&self, addr: u64, data: &mut [u8]);
    /// MMIO store of `data` to `addr`.
    fn mmio_write(&self, addr: u64, data: &[u8]);
}

/// What one `KVM_RUN` ended with, after I/O was dispatched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VcpuEvent {
    /// A port or MMIO access was handled; keep running.
    Io,
    /// `KVM_RUN` returned EINTR/EAGAIN (kicked by a signal or immediate_exit).
    Interrupted,
    /// `hlt` with no in-kernel LAPIC to wait for interrupts.
    Halted,
    /// KVM_EXIT_SHUTDOWN: the guest triple-faulted.
    Shutdown,
    /// KVM_EXIT_INTERNAL_ERROR with its sub-error code.
    InternalError {
        /// `kvm_run.internal.suberror` (1 = emulation failure).
        suberror: u32,
    },
    /// KVM_EXIT_FAIL_ENTRY: the hardware refused to enter the guest.
    FailEntry {
        /// Hardware entry failure reason.
        reason: u64,
    },
    /// KVM_EXIT_SYSTEM_EVENT (1 = shutdown, 2 = reset, 3 = crash).
    SystemEvent {
        /// Event type.
        kind: u32,
    },
    /// Any other exit, ignored (described for logs).
    Other(String),
}

/// One vCPU of a VM.
#[derive(Debug)]
pub struct Vcpu {
    id: u8,
    fd: VcpuFd,
}

impl Vcpu {
    /// Creates vCPU `id` (also its APIC id).
    pub fn new(vm: &Vm, id: u8) -> Result<Self, VcpuError> {
        let fd = vm
            .fd()
            .create_vcpu(u64::from(id))
            .map_err(|e| VcpuError::Create(id, e))?;
        Ok(Self { id, fd })
    }

    /// The vCPU index.
    pub fn id(&self) -> u8 {
        self.id
    }

    /// Sets CPUID (filtered for this vCPU), XCR0 (the XSAVE features that
    /// CPUID offers), boot MSRs, FPU and, with the in-kernel irqchip, the
    /// LAPIC's LINT0/LINT1.
    pub fn configure(&self, vm: &Vm, cpu_count: u8) -> Result<(), VcpuError> {
        let id = self.id;
        let mut cpuid = vm
            .kvm()
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(VcpuError::SupportedCpuid)?;
        let topo = VcpuTopology {
            cpu_id: id,
            cpu_count,
            tsc_deadline: vm.has_irqchip()
                && vm.kvm().check_extension(kvm_ioctls::Cap::TscDeadlineTimer),
        };
        let xcr0 = filter_cpuid(cpuid.as_mut_slice(), topo);
        let cpuid = CpuId::from_entries(cpuid.as_slice()).map_err(|_| VcpuError::BuildCpuid(id))?;
        self.fd
            .set_cpuid2(&cpuid)
            .map_err(|source| VcpuError::Set {
                what: "CPUID",
                id,
                source,
            })?;
        if xcr0 > XCR0_X87 && vm.kvm().check_extension(kvm_ioctls::Cap::Xcrs) {
            self.set_xcr0(xcr0)?;
        }

        let entries = msrs::boot_msr_entries();
        let wanted = entries.len();
        let msrs = Msrs::from_entries(&entries).map_err(|_| VcpuError::BuildCpuid(id))?;
        let set = self.fd.set_msrs(&msrs).map_err(|source| VcpuError::Set {
            what: "MSRs",
            id,
            source,
        })?;
        if set != wanted {
            return Err(VcpuError::PartialMsrs { id, set, wanted });
        }

        self.fd
            .set_fpu(&boot_fpu())
            .map_err(|source| VcpuError::Set {
                what: "FPU",
                id,
                source,
            })?;

        if vm.has_irqchip() {
            let mut state = self.fd.get_lapic().map_err(|source| VcpuError::Get {
                what: "LAPIC",
                id,
                source,
            })?;
            lapic::set_lint(&mut state);
            self.fd.set_lapic(&state).map_err(|source| VcpuError::Set {
                what: "LAPIC",
                id,
                source,
            })?;
        }
        Ok(())
    }

    /// Sets XCR0 to the XSAVE features CPUID offers (after `KVM_SET_CPUID2`,
    /// which decides what KVM accepts). KVM reports in CPUID leaf 0xD the
    /// XSAVE area size for the vCPU's current XCR0, which it tracks by
    /// intercepting the guest's XSETBV. Under a nested hypervisor that does
    /// not forward XSETBV (QEMU's TCG SVM, in the test host) KVM would keep
    /// the reset value (x87 only) and the guest would read 576 bytes where
    /// its features need more (`XSAVE consistency problem`). Starting from
    /// the offered features makes the size right from the first
    /// instruction; Linux then writes the same value itself.
    fn set_xcr0(&self, xcr0: u64) -> Result<(), VcpuError> {
        let mut xcrs = kvm_xcrs {
            nr_xcrs: 1,
            ..Default::default()
        };
        xcrs.xcrs[0].xcr = 0;
        xcrs.xcrs[0].value = xcr0;
        self.fd.set_xcrs(&xcrs).map_err(|source| VcpuError::Set {
            what: "XCR0",
            id: self.id,
            source,
        })
    }

    /// Puts the vCPU at `entry` (writing the GDT/page tables it needs).
    pub fn set_boot_entry(
        &self,
        mem: &GuestMemoryMmap,
        entry: &BootEntry,
    ) -> Result<(), VcpuError> {
        let id = self.id;
        write_boot_tables(mem, entry)?;
        let sregs = self.fd.get_sregs().map_err(|source| VcpuError::Get {
            what: "special registers",
            id,
            source,
        })?;
        self.fd
            .set_sregs(&boot_sregs(sregs, entry))
            .map_err(|source| VcpuError::Set {
                what: "special registers",
                id,
                source,
            })?;
        self.fd
            .set_regs(&boot_regs(entry))
            .map_err(|source| VcpuError::Set {
                what: "registers",
                id,
                source,
            })
    }

    /// Describes the vCPU's registers and pending events on one line (for
    /// the log when the guest dies).
    pub fn describe_state(&self) -> String {
        super::vcpu_state::describe(&self.fd)
    }

    /// Sets or clears `kvm_run.immediate_exit` (a set flag makes the next
    /// `KVM_RUN` return EINTR at once).
    pub fn set_immediate_exit(&mut self, on: bool) {
        self.fd.set_kvm_immediate_exit(u8::from(on));
    }

    /// Runs the vCPU until the next exit and dispatches port/MMIO accesses
    /// to `io`.
    pub fn run_once(&mut self, io: &dyn IoHandler) -> Result<VcpuEvent, VcpuError> {
        let event = match self.fd.run() {
            Ok(exit) => match exit {
                VcpuExit::IoOut(port, data) => {
                    io.pio_write(port, data);
                    VcpuEvent::Io
                }
                VcpuExit::IoIn(port, data) => {
                    io.pio_read(port, data);
                    VcpuEvent::Io
                }
                VcpuExit::MmioRead(addr, data) => {
                    io.mmio_read(addr, data);
                    VcpuEvent::Io
                }
                VcpuExit::MmioWrite(addr, data) => {
                    io.mmio_write(addr, data);
                    VcpuEvent::Io
                }
                VcpuExit::Hlt => VcpuEvent::Halted,
                VcpuExit::Shutdown => VcpuEvent::Shutdown,
                VcpuExit::InternalError => VcpuEvent::InternalError { suberror: 0 },
                VcpuExit::FailEntry(reason, _) => VcpuEvent::FailEntry { reason },
                VcpuExit::SystemEvent(kind, _) => VcpuEvent::SystemEvent { kind },
                VcpuExit::Intr => VcpuEvent::Interrupted,
                other => VcpuEvent::Other(format!("{other:?}")),
            },
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                return Ok(VcpuEvent::Interrupted)
            }
            Err(e) => return Err(VcpuError::Run(self.id, e)),
        };
        if let VcpuEvent::InternalError { .. } = event {
            // SAFETY: the exit reason is KVM_EXIT_INTERNAL_ERROR, so KVM
            // filled the `internal` member of the exit union.
            let suberror = unsafe { self.fd.get_kvm_run().__bindgen_anon_1.internal.suberror };
            return Ok(VcpuEvent::InternalError { suberror });
        }
        Ok(event)
    }
}
