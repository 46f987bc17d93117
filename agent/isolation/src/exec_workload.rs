//! The last steps of an exec'd process before it runs `process.args`,
//! which libcontainer's tenant builder leaves out: the container's seccomp
//! filter (runc applies it to every process it execs into a container;
//! libcontainer 0.7 rebuilds the exec's `linux` section without it) and
//! `process.consoleSize`.
//!
//! A seccomp filter needs `no_new_privs` or CAP_SYS_ADMIN. runc installs
//! it before dropping capabilities when `noNewPrivileges` is false; the
//! executor libcontainer calls runs after the drop. So, like runc, and
//! without setting `no_new_privs` where the process did not ask for it:
//! the process is handed to libcontainer with CAP_SYS_ADMIN added to its
//! effective and permitted sets, and the executor installs the filter,
//! then drops to the capabilities the process asked for, then execs.

use std::os::fd::{BorrowedFd, OwnedFd};

use libcontainer::capabilities::drop_privileges;
use libcontainer::oci_spec::runtime::{Capability, LinuxCapabilities, LinuxSeccomp, Process, Spec};
use libcontainer::syscall::linux::LinuxSyscall;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};

use crate::console::set_window_size;
use crate::program_path::ProgramPath;

/// Finishes an exec'd process inside the container, then execs it.
#[derive(Debug, Clone)]
pub(crate) struct ExecWorkload {
    seccomp: Option<LinuxSeccomp>,
    /// The capabilities to drop to after the filter is in place, when
    /// CAP_SYS_ADMIN was added for it.
    final_capabilities: Option<LinuxCapabilities>,
    /// `process.consoleSize` (rows, cols) for the pty on fd 0.
    window: Option<(u16, u16)>,
    /// `process.args[0]`, found once (see [`ProgramPath`]).
    program: ProgramPath,
}

/// Prepares `process` for libcontainer: returns the process to hand over
/// (with CAP_SYS_ADMIN added when the filter needs it) and the executor.
pub(crate) fn prepare(
    process: &Process,
    seccomp: Option<LinuxSeccomp>,
    window: Option<(u16, u16)>,
) -> (Process, ExecWorkload) {
    let mut handed = process.clone();
    let mut final_capabilities = None;
    if seccomp.is_some() && process.no_new_privileges() != Some(true) {
        if let Some(wanted) = process.capabilities() {
            // An absent effective set is left as it is by libcontainer
            // (every permitted capability): CAP_SYS_ADMIN stays.
            let lacks_admin = wanted
                .effective()
                .as_ref()
                .is_some_and(|e| !e.contains(&Capability::SysAdmin));
            if lacks_admin {
                handed.set_capabilities(Some(with_sys_admin(wanted)));
                final_capabilities = Some(wanted.clone());
            }
        }
    }
    let workload = ExecWorkload {
        seccomp,
        final_capabilities,
        window,
        program: ProgramPath::default(),
    };
    (handed, workload)
}

/// `caps` with CAP_SYS_ADMIN in its effective and (when given) permitted
/// sets; bounding, inheritable and ambient stay as asked.
fn with_sys_admin(caps: &LinuxCapabilities) -> LinuxCapabilities {
    let mut raised = caps.clone();
    if let Some(effective) = caps.effective() {
        let mut effective = effective.clone();
        effective.insert(Capability::SysAdmin);
        raised.set_effective(Some(effective));
    }
    if let Some(permitted) = caps.permitted() {
        let mut permitted = permitted.clone();
        permitted.insert(Capability::SysAdmin);
        raised.set_permitted(Some(permitted));
    }
    raised
}

fn failed(what: &str, err: impl std::fmt::Display) -> ExecutorError {
    ExecutorError::Other(format!("{what}: {err}"))
}

impl Executor for ExecWorkload {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        if let Some((rows, cols)) = self.window {
            // SAFETY: fd 0 is open in the exec'd process (libcontainer made
            // it the pty slave); it is only borrowed for this ioctl.
            let slave = unsafe { BorrowedFd::borrow_raw(0) };
            let slave: OwnedFd = slave
                .try_clone_to_owned()
                .map_err(|e| failed("process.consoleSize", e))?;
            set_window_size(&slave, rows, cols).map_err(|e| failed("process.consoleSize", e))?;
        }
        if let Some(seccomp) = &self.seccomp {
            let notify = libcontainer::seccomp::initialize_seccomp(seccomp)
                .map_err(|e| failed("installing the container's seccomp filter", e))?;
            if let Some(fd) = notify {
                // Notify actions are refused when the spec is checked.
                let _ = nix::unistd::close(fd);
            }
        }
        if let Some(caps) = &self.final_capabilities {
            drop_privileges(caps, &LinuxSyscall)
                .map_err(|e| failed("dropping CAP_SYS_ADMIN after seccomp", e))?;
        }
        self.program.exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        self.program.validate(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(json: serde_json::Value) -> Process {
        serde_json::from_value(json).unwrap()
    }

    fn seccomp() -> LinuxSeccomp {
        serde_json::from_value(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW"})).unwrap()
    }

    fn caps(set: &[&str]) -> serde_json::Value {
        serde_json::json!({"bounding": set, "effective": set, "permitted": set})
    }

    #[test]
    fn sys_admin_is_lent_only_when_the_filter_needs_it() {
        let p = process(serde_json::json!({
            "args": ["sh"], "cwd": "/", "user": {}, "capabilities": caps(&["CAP_KILL"])
        }));
        let (handed, workload) = prepare(&p, Some(seccomp()), None);
        let handed_caps = handed.capabilities().as_ref().unwrap();
        assert!(handed_caps
            .effective()
            .as_ref()
            .unwrap()
            .contains(&Capability::SysAdmin));
        assert!(handed_caps
            .permitted()
            .as_ref()
            .unwrap()
            .contains(&Capability::SysAdmin));
        assert!(!handed_caps
            .bounding()
            .as_ref()
            .unwrap()
            .contains(&Capability::SysAdmin));
        assert_eq!(
            workload.final_capabilities.as_ref(),
            p.capabilities().as_ref()
        );

        // no_new_privs: the filter can be installed without it.
        let mut nnp = p.clone();
        nnp.set_no_new_privileges(Some(true));
        let (handed, workload) = prepare(&nnp, Some(seccomp()), None);
        assert_eq!(handed, nnp);
        assert!(workload.final_capabilities.is_none());

        // No filter: nothing to lend.
        let (handed, workload) = prepare(&p, None, None);
        assert_eq!(handed, p);
        assert!(workload.final_capabilities.is_none());

        // Already has CAP_SYS_ADMIN.
        let admin = process(serde_json::json!({
            "args": ["sh"], "cwd": "/", "user": {}, "capabilities": caps(&["CAP_SYS_ADMIN"])
        }));
        let (handed, workload) = prepare(&admin, Some(seccomp()), None);
        assert_eq!(handed, admin);
        assert!(workload.final_capabilities.is_none());
    }
}
