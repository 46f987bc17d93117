//! Everything that talks to KVM through `kvm-ioctls`: the VM, its memory
//! slots and its vCPUs. The rest of the crate never issues KVM ioctls itself.

pub mod huge_page_hole;
pub mod memory;
pub mod vcpu;
pub mod vcpu_state;
pub mod vm;
