//! Checks of an OCI `process` object, shared by the container's init
//! (`config.json`) and processes exec'd into a running container.

use std::collections::HashSet;

use crate::console::console_size;
use crate::oci_spec::runtime::Process;
use crate::validate::Warning;
use crate::IsolationError;

/// Why AppArmor and SELinux fields are dropped.
pub(crate) const NO_LSM: &str = "ignored: the guest kernel has no AppArmor or SELinux";

/// Checks the `process` object of a spec or of an exec: arguments, cwd,
/// environment, umask, rlimits, oomScoreAdj and the console size; errors
/// name the field as `process.<field>`.
pub fn check_process(process: &Process) -> Result<(), IsolationError> {
    match process.args() {
        Some(args) if !args.is_empty() && !args[0].is_empty() => {}
        _ => return Err(IsolationError::invalid("process.args", "empty")),
    }
    let cwd = process.cwd();
    if !cwd.is_absolute() {
        return Err(IsolationError::invalid(
            "process.cwd",
            format!("{} is not an absolute path", cwd.display()),
        ));
    }
    // CVE-2024-21626: a cwd through /proc/self/fd can reach a leaked host
    // directory. No container has a reason to start in /proc.
    if cwd.starts_with("/proc") {
        return Err(IsolationError::invalid(
            "process.cwd",
            format!("{} is inside /proc", cwd.display()),
        ));
    }
    if process.terminal().unwrap_or(false) {
        console_size(process)?;
    }
    if let Some(env) = process.env() {
        for (i, var) in env.iter().enumerate() {
            if !var.contains('=') || var.starts_with('=') {
                return Err(IsolationError::invalid(
                    format!("process.env[{i}]"),
                    format!("{var:?} is not NAME=value"),
                ));
            }
        }
    }
    if let Some(umask) = process.user().umask() {
        if umask > 0o777 {
            return Err(IsolationError::invalid(
                "process.user.umask",
                format!("{umask:#o} has bits outside 0777"),
            ));
        }
    }
    if let Some(rlimits) = process.rlimits() {
        let mut seen = HashSet::new();
        for (i, rl) in rlimits.iter().enumerate() {
            if rl.soft() > rl.hard() {
                return Err(IsolationError::invalid(
                    format!("process.rlimits[{i}]"),
                    format!(
                        "{:?} soft limit {} is above hard limit {}",
                        rl.typ(),
                        rl.soft(),
                        rl.hard()
                    ),
                ));
            }
            if !seen.insert(format!("{:?}", rl.typ())) {
                return Err(IsolationError::invalid(
                    format!("process.rlimits[{i}].type"),
                    format!("{:?} given twice", rl.typ()),
                ));
            }
        }
    }
    if let Some(adj) = process.oom_score_adj() {
        if !(-1000..=1000).contains(&adj) {
            return Err(IsolationError::invalid(
                "process.oomScoreAdj",
                format!("{adj} is outside -1000..=1000"),
            ));
        }
    }
    Ok(())
}

/// Drops the AppArmor profile and SELinux label (the guest kernel has
/// neither LSM) and returns a warning for each one that was set.
pub fn strip_lsm_fields(process: &mut Process) -> Vec<Warning> {
    let mut warnings = Vec::new();
    if process.apparmor_profile().is_some() {
        process.set_apparmor_profile(None);
        warnings.push(Warning {
            field: "process.apparmorProfile".into(),
            reason: NO_LSM.into(),
        });
    }
    if process.selinux_label().is_some() {
        process.set_selinux_label(None);
        warnings.push(Warning {
            field: "process.selinuxLabel".into(),
            reason: NO_LSM.into(),
        });
    }
    warnings
}

/// Makes `process` mean to libcontainer what it means to runc:
/// - `noNewPrivileges: false` becomes absent. libcontainer 0.7 takes any
///   present value as "no_new_privs is set" when it orders seccomp after
///   the capability drop, so with `false` the filter can no longer be
///   installed (it needs CAP_SYS_ADMIN or no_new_privs) and the container
///   fails to start; runc installs it before the drop, as libcontainer
///   does when the field is absent.
/// - An ambient capability that is not also inheritable and permitted is
///   dropped: the kernel refuses to raise it (`PR_CAP_AMBIENT_RAISE`,
///   EPERM), so the process never has it either way. runc's default spec
///   (and `vmrun spec`) lists ambient capabilities without inheritable
///   ones and runc passes over them quietly; libcontainer tries each and
///   logs a warning per capability on the guest console.
pub fn normalize_for_libcontainer(process: &mut Process) {
    if process.no_new_privileges() == Some(false) {
        process.set_no_new_privileges(None);
    }
    if let Some(mut caps) = process.capabilities().clone() {
        if let Some(ambient) = caps.ambient().clone() {
            let raisable = |cap: &_| {
                let holds =
                    |set: &Option<_>| set.as_ref().is_some_and(|s: &HashSet<_>| s.contains(cap));
                holds(caps.inheritable()) && holds(caps.permitted())
            };
            let kept: HashSet<_> = ambient
                .iter()
                .filter(|cap| raisable(cap))
                .copied()
                .collect();
            if kept.len() != ambient.len() {
                caps.set_ambient(Some(kept));
                process.set_capabilities(Some(caps));
            }
        }
    }
}
