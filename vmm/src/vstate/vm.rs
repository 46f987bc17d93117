//! The KVM VM: creation, memory slots, in-kernel irqchip and PIT, irqfd and
//! ioeventfd registration.

use kvm_bindings::{kvm_pit_config, kvm_userspace_memory_region, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::{Cap, IoEventAddress, Kvm, VmFd};
use vm_memory::{Address, GuestMemory, GuestMemoryMmap, GuestMemoryRegion, MemoryRegionAddress};
use vmm_sys_util::eventfd::EventFd;

use crate::arch::x86_64::layout::{KVM_IDENTITY_MAP_ADDRESS, KVM_TSS_ADDRESS};

/// Errors of VM-level KVM operations.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// `/dev/kvm` could not be opened.
    #[error("cannot open /dev/kvm")]
    OpenKvm(#[source] kvm_ioctls::Error),
    /// The KVM API version is not the stable one (12).
    #[error("unsupported KVM API version {0} (need 12)")]
    ApiVersion(i32),
    /// A capability the VMM relies on is missing.
    #[error("KVM lacks the required capability {0:?}")]
    MissingCap(Cap),
    /// KVM_CREATE_VM failed.
    #[error("cannot create the KVM VM")]
    CreateVm(#[source] kvm_ioctls::Error),
    /// KVM_SET_TSS_ADDR failed.
    #[error("cannot set the TSS address")]
    SetTss(#[source] kvm_ioctls::Error),
    /// KVM_SET_IDENTITY_MAP_ADDR failed.
    #[error("cannot set the identity map address")]
    SetIdentityMap(#[source] kvm_ioctls::Error),
    /// KVM_CREATE_IRQCHIP failed.
    #[error("cannot create the in-kernel irqchip")]
    CreateIrqchip(#[source] kvm_ioctls::Error),
    /// KVM_CREATE_PIT2 failed.
    #[error("cannot create the in-kernel PIT")]
    CreatePit(#[source] kvm_ioctls::Error),
    /// KVM_SET_USER_MEMORY_REGION failed.
    #[error("cannot register guest memory slot {slot} at {guest_addr:#x}")]
    SetMemoryRegion {
        /// Memory slot number.
        slot: u32,
        /// Guest physical start of the region.
        guest_addr: u64,
        /// The KVM error.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// The thread registering guest memory panicked (a VMM bug).
    #[error("the thread registering guest memory panicked")]
    RegistrationPanicked,
    /// A guest memory region has no host mapping.
    #[error("guest memory region at {0:#x} has no host address")]
    NoHostAddress(u64),
    /// KVM_IRQFD failed.
    #[error("cannot register an irqfd for GSI {gsi}")]
    Irqfd {
        /// The interrupt line.
        gsi: u32,
        /// The KVM error.
        #[source]
        source: kvm_ioctls::Error,
    },
    /// KVM_IOEVENTFD failed.
    #[error("cannot register an ioeventfd at {addr:?}")]
    Ioeventfd {
        /// The trapped address.
        addr: IoEventAddress,
        /// The KVM error.
        #[source]
        source: kvm_ioctls::Error,
    },
}

/// A KVM virtual machine (no vCPUs yet).
#[derive(Debug)]
pub struct Vm {
    kvm: Kvm,
    fd: VmFd,
    irqchip: bool,
}

impl Vm {
    /// Opens `/dev/kvm`, checks the API and creates an empty VM.
    pub fn new() -> Result<Self, VmError> {
        let kvm = Kvm::new().map_err(VmError::OpenKvm)?;
        let version = kvm.get_api_version();
        if version != 12 {
            return Err(VmError::ApiVersion(version));
        }
        for cap in [
            Cap::UserMemory,
            Cap::Irqfd,
            Cap::Ioeventfd,
            Cap::ImmediateExit,
        ] {
            if !kvm.check_extension(cap) {
                return Err(VmError::MissingCap(cap));
            }
        }
        let fd = kvm.create_vm().map_err(VmError::CreateVm)?;
        Ok(Self {
            kvm,
            fd,
            irqchip: false,
        })
    }

    /// The `/dev/kvm` handle (for system-wide queries such as supported CPUID).
    pub fn kvm(&self) -> &Kvm {
        &self.kvm
    }

    /// The VM file descriptor, for device code that needs raw VM ioctls.
    pub fn fd(&self) -> &VmFd {
        &self.fd
    }

    /// Whether [`Vm::setup_irqchip`] ran (LAPIC, IOAPIC, PIC and PIT are in KVM).
    pub fn has_irqchip(&self) -> bool {
        self.irqchip
    }

    /// Sets the TSS and identity-map pages (inside the MMIO hole), then
    /// creates the in-kernel IOAPIC/PIC/LAPICs and the PIT.
    pub fn setup_irqchip(&mut self) -> Result<(), VmError> {
        if !self.kvm.check_extension(Cap::Irqchip) {
            return Err(VmError::MissingCap(Cap::Irqchip));
        }
        self.fd
            .set_tss_address(KVM_TSS_ADDRESS as usize)
            .map_err(VmError::SetTss)?;
        if self.kvm.check_extension(Cap::SetIdentityMapAddr) {
            self.fd
                .set_identity_map_address(KVM_IDENTITY_MAP_ADDRESS)
                .map_err(VmError::SetIdentityMap)?;
        }
        self.fd.create_irq_chip().map_err(VmError::CreateIrqchip)?;
        let pit = kvm_pit_config {
            flags: KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        };
        self.fd.create_pit2(pit).map_err(VmError::CreatePit)?;
        self.irqchip = true;
        Ok(())
    }

    /// Registers every region of `memory` as a KVM memory slot.
    pub fn register_memory(&self, memory: &GuestMemoryMmap) -> Result<(), VmError> {
        for (slot, region) in memory.iter().enumerate() {
            let slot = slot as u32;
            let guest_addr = region.start_addr().raw_value();
            let host = region
                .get_host_address(MemoryRegionAddress(0))
                .map_err(|_| VmError::NoHostAddress(guest_addr))?;
            let desc = kvm_userspace_memory_region {
                slot,
                flags: 0,
                guest_phys_addr: guest_addr,
                memory_size: region.len(),
                userspace_addr: host as u64,
            };
            // SAFETY: `host` is the start of a live mapping of `region.len()`
            // bytes owned by `memory`; the caller keeps `memory` alive as long
            // as the VM (the machine owns both), and slots never overlap
            // because vm-memory rejects overlapping regions.
            unsafe { self.fd.set_user_memory_region(desc) }.map_err(|source| {
                VmError::SetMemoryRegion {
                    slot,
                    guest_addr,
                    source,
                }
            })?;
        }
        Ok(())
    }

    /// Makes a write to `evt` raise interrupt line `gsi` (needs the irqchip).
    pub fn register_irqfd(&self, evt: &EventFd, gsi: u32) -> Result<(), VmError> {
        self.fd
            .register_irqfd(evt, gsi)
            .map_err(|source| VmError::Irqfd { gsi, source })
    }

    /// Makes a guest write to `addr` signal `evt` inside KVM, without a
    /// VM exit to user space; `datamatch` restricts it to one written value.
    pub fn register_ioevent(
        &self,
        evt: &EventFd,
        addr: IoEventAddress,
        datamatch: Option<u32>,
    ) -> Result<(), VmError> {
        let result = match datamatch {
            Some(value) => self.fd.register_ioevent(evt, &addr, value),
            None => self
                .fd
                .register_ioevent(evt, &addr, kvm_ioctls::NoDatamatch),
        };
        result.map_err(|source| VmError::Ioeventfd { addr, source })
    }
}
