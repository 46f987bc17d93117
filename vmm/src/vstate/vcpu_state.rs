//! A one-line description of a vCPU's architectural state, for the log when
//! the guest dies (triple fault, KVM internal error, failed entry): enough
//! to map the faulting RIP to a guest kernel symbol and see the paging and
//! exception state, without a debugger.

use kvm_bindings::{kvm_regs, kvm_sregs, kvm_vcpu_events};
use kvm_ioctls::VcpuFd;

/// Reads the registers, special registers and pending events of `fd` and
/// describes them; parts KVM refuses to return are named as unreadable.
pub fn describe(fd: &VcpuFd) -> String {
    let regs = fd
        .get_regs()
        .map(|r| describe_regs(&r))
        .unwrap_or_else(|e| format!("regs unreadable ({e})"));
    let sregs = fd
        .get_sregs()
        .map(|s| describe_sregs(&s))
        .unwrap_or_else(|e| format!("sregs unreadable ({e})"));
    let events = fd
        .get_vcpu_events()
        .map(|e| describe_events(&e))
        .unwrap_or_else(|e| format!("events unreadable ({e})"));
    format!("{regs} {sregs} {events}")
}

/// General-purpose registers that matter for a post-mortem.
pub fn describe_regs(r: &kvm_regs) -> String {
    format!(
        "rip={:#x} rsp={:#x} rbp={:#x} rflags={:#x} rax={:#x} rbx={:#x} rcx={:#x} rdx={:#x} rsi={:#x} rdi={:#x}",
        r.rip, r.rsp, r.rbp, r.rflags, r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi
    )
}

/// Control registers, EFER, code/stack segments and descriptor tables.
pub fn describe_sregs(s: &kvm_sregs) -> String {
    format!(
        "cr0={:#x} cr2={:#x} cr3={:#x} cr4={:#x} efer={:#x} cs={:#x}(dpl{} l{}) ss={:#x} gdt={:#x}/{:#x} idt={:#x}/{:#x} tr={:#x}",
        s.cr0,
        s.cr2,
        s.cr3,
        s.cr4,
        s.efer,
        s.cs.selector,
        s.cs.dpl,
        s.cs.l,
        s.ss.selector,
        s.gdt.base,
        s.gdt.limit,
        s.idt.base,
        s.idt.limit,
        s.tr.selector
    )
}

/// The exception/interrupt/NMI KVM had pending or injected.
pub fn describe_events(e: &kvm_vcpu_events) -> String {
    let ex = &e.exception;
    let exception = if ex.injected != 0 || ex.pending != 0 {
        format!(
            "exception={} (injected {} pending {} error code {:#x})",
            ex.nr,
            ex.injected,
            ex.pending,
            if ex.has_error_code != 0 {
                ex.error_code
            } else {
                0
            }
        )
    } else {
        "no exception".to_string()
    };
    let irq = &e.interrupt;
    let interrupt = if irq.injected != 0 {
        format!("interrupt={} injected", irq.nr)
    } else {
        "no interrupt".to_string()
    };
    format!(
        "{exception}, {interrupt}, nmi injected {} pending {} masked {}, shadow {}",
        e.nmi.injected, e.nmi.pending, e.nmi.masked, irq.shadow
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regs_name_rip_and_flags_in_hex() {
        let r = kvm_regs {
            rip: 0xffff_ffff_8100_0000,
            rflags: 0x2,
            ..Default::default()
        };
        let text = describe_regs(&r);
        assert!(text.starts_with("rip=0xffffffff81000000 "), "{text}");
        assert!(text.contains("rflags=0x2 "), "{text}");
    }

    #[test]
    fn events_describe_a_pending_page_fault_with_its_error_code() {
        let mut e = kvm_vcpu_events::default();
        e.exception.nr = 14;
        e.exception.pending = 1;
        e.exception.has_error_code = 1;
        e.exception.error_code = 0x2;
        let text = describe_events(&e);
        assert!(
            text.starts_with("exception=14 (injected 0 pending 1 error code 0x2)"),
            "{text}"
        );
        assert!(
            describe_events(&kvm_vcpu_events::default()).starts_with("no exception, no interrupt"),
            "quiet events"
        );
    }
}
