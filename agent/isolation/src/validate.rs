//! Spec validation: reject what runc would reject, with the field named, and
//! turn the fields the guest cannot honour into warnings.

use std::collections::HashSet;
use std::path::Path;

use crate::oci_spec::runtime::{
    LinuxDeviceCgroup, LinuxDeviceType, LinuxNamespaceType, LinuxSeccompAction, Spec,
};
use crate::{process_check, IsolationError};

/// Something in the spec the guest ignores on purpose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// JSON path of the field, e.g. `process.apparmorProfile`.
    pub field: String,
    /// Why it is ignored.
    pub reason: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// Checks `spec` and returns the copy to hand to the runtime plus warnings
/// for the fields that were dropped (AppArmor and SELinux: the guest kernel
/// has neither LSM).
pub fn validate(spec: &Spec) -> Result<(Spec, Vec<Warning>), IsolationError> {
    check_version(spec)?;
    check_root(spec)?;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| IsolationError::invalid("process", "missing"))?;
    process_check::check_process(process)?;
    check_mounts(spec)?;
    let namespaces = check_namespaces(spec)?;
    check_linux(spec, &namespaces)?;
    check_seccomp(spec)?;
    let (mut spec, mut warnings) = strip_lsm_fields(spec);
    warnings.extend(joined_uts_warnings(&spec));
    if let Some(linux) = spec.linux_mut() {
        if let Some(prop) = linux.rootfs_propagation().clone() {
            let flag = rootfs_propagation_flag(&prop)?;
            linux.set_rootfs_propagation(Some(flag.to_owned()));
        }
        let rules = linux
            .resources_mut()
            .as_mut()
            .and_then(|r| r.devices_mut().as_mut());
        for rule in rules.into_iter().flatten() {
            // -1 = any, as runc reads it; libcontainer's cgroup v1 writer
            // would pass "-1" on to the kernel, absent becomes "*" in both.
            if rule.major() == Some(-1) {
                rule.set_major(None);
            }
            if rule.minor() == Some(-1) {
                rule.set_minor(None);
            }
        }
    }
    Ok((spec, warnings))
}

/// libcontainer sets hostname/domainname only in a *new* uts namespace.
fn joined_uts_warnings(spec: &Spec) -> Vec<Warning> {
    let joins_uts = spec.linux().as_ref().is_some_and(|l| {
        l.namespaces()
            .iter()
            .flatten()
            .any(|n| n.typ() == LinuxNamespaceType::Uts && n.path().is_some())
    });
    let mut warnings = Vec::new();
    if joins_uts {
        for (field, set) in [
            ("hostname", spec.hostname().is_some()),
            ("domainname", spec.domainname().is_some()),
        ] {
            if set {
                warnings.push(warn(
                    field,
                    "ignored: the uts namespace is joined by path, its name is left as it is",
                ));
            }
        }
    }
    warnings
}

fn check_version(spec: &Spec) -> Result<(), IsolationError> {
    if !spec.version().starts_with("1.") {
        return Err(IsolationError::invalid(
            "ociVersion",
            format!("{:?} is not a 1.x runtime spec version", spec.version()),
        ));
    }
    Ok(())
}

fn check_root(spec: &Spec) -> Result<(), IsolationError> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| IsolationError::invalid("root", "missing"))?;
    if root.path().as_os_str().is_empty() {
        return Err(IsolationError::invalid("root.path", "empty"));
    }
    Ok(())
}

fn check_mounts(spec: &Spec) -> Result<(), IsolationError> {
    for (i, mount) in spec.mounts().iter().flatten().enumerate() {
        let dest = mount.destination();
        if !dest.is_absolute() {
            return Err(IsolationError::invalid(
                format!("mounts[{i}].destination"),
                format!("{} is not an absolute path", dest.display()),
            ));
        }
        if has_dot_dot(dest) {
            return Err(IsolationError::invalid(
                format!("mounts[{i}].destination"),
                format!("{} contains '..'", dest.display()),
            ));
        }
        let is_bind = mount
            .options()
            .iter()
            .flatten()
            .any(|o| o == "bind" || o == "rbind")
            || mount.typ().as_deref() == Some("bind");
        if is_bind && mount.source().is_none() {
            return Err(IsolationError::invalid(
                format!("mounts[{i}].source"),
                "a bind mount needs a source",
            ));
        }
    }
    Ok(())
}

fn has_dot_dot(path: &Path) -> bool {
    path.components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
}

fn check_namespaces(spec: &Spec) -> Result<HashSet<LinuxNamespaceType>, IsolationError> {
    let mut types = HashSet::new();
    let Some(linux) = spec.linux() else {
        return Ok(types);
    };
    for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
        if !types.insert(ns.typ()) {
            return Err(IsolationError::invalid(
                format!("linux.namespaces[{i}].type"),
                format!("{:?} namespace given twice", ns.typ()),
            ));
        }
        if let Some(path) = ns.path() {
            if !path.is_absolute() {
                return Err(IsolationError::invalid(
                    format!("linux.namespaces[{i}].path"),
                    format!("{} is not an absolute path", path.display()),
                ));
            }
        }
    }
    Ok(types)
}

fn check_linux(spec: &Spec, ns: &HashSet<LinuxNamespaceType>) -> Result<(), IsolationError> {
    let has_userns = ns.contains(&LinuxNamespaceType::User);
    if spec.hostname().is_some() && !ns.contains(&LinuxNamespaceType::Uts) {
        return Err(IsolationError::invalid(
            "hostname",
            "setting a hostname needs a uts namespace in linux.namespaces",
        ));
    }
    if spec.domainname().is_some() && !ns.contains(&LinuxNamespaceType::Uts) {
        return Err(IsolationError::invalid(
            "domainname",
            "setting a domainname needs a uts namespace in linux.namespaces",
        ));
    }
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    for (field, maps) in [
        ("linux.uidMappings", linux.uid_mappings()),
        ("linux.gidMappings", linux.gid_mappings()),
    ] {
        let Some(maps) = maps else { continue };
        if !maps.is_empty() && !has_userns {
            return Err(IsolationError::invalid(
                field,
                "id mappings given without a user namespace in linux.namespaces",
            ));
        }
        for (i, m) in maps.iter().enumerate() {
            if m.size() == 0 {
                return Err(IsolationError::invalid(
                    format!("{field}[{i}].size"),
                    "is 0",
                ));
            }
        }
    }
    for (field, paths) in [
        ("linux.maskedPaths", linux.masked_paths()),
        ("linux.readonlyPaths", linux.readonly_paths()),
    ] {
        for (i, p) in paths.iter().flatten().enumerate() {
            if !p.starts_with('/') || has_dot_dot(Path::new(p)) {
                return Err(IsolationError::invalid(
                    format!("{field}[{i}]"),
                    format!("{p} is not an absolute path without '..'"),
                ));
            }
        }
    }
    for (i, dev) in linux.devices().iter().flatten().enumerate() {
        let path = dev.path();
        if !path.starts_with("/dev/") || has_dot_dot(path) {
            return Err(IsolationError::invalid(
                format!("linux.devices[{i}].path"),
                format!("{} is not a path under /dev", path.display()),
            ));
        }
    }
    let device_rules = linux
        .resources()
        .as_ref()
        .and_then(|r| r.devices().as_ref());
    for (i, rule) in device_rules.into_iter().flatten().enumerate() {
        check_device_rule(&format!("linux.resources.devices[{i}]"), rule)?;
    }
    if let Some(prop) = linux.rootfs_propagation() {
        rootfs_propagation_flag(prop)?;
    }
    for key in linux.sysctl().iter().flat_map(|s| s.keys()) {
        check_sysctl(key, ns)?;
    }
    Ok(())
}

/// The largest major and minor numbers Linux has (12 and 20 bits).
const MAX_MAJOR: i64 = (1 << 12) - 1;
const MAX_MINOR: i64 = (1 << 20) - 1;

/// One `linux.resources.devices` rule, as the cgroup v2 eBPF device
/// controller will compile it: type `a`, `b` or `c` (absent = `a`), access
/// made of `r`, `w`, `m`, and major/minor that are Linux device numbers
/// (absent or -1 = any).
fn check_device_rule(field: &str, rule: &LinuxDeviceCgroup) -> Result<(), IsolationError> {
    if let Some(typ @ (LinuxDeviceType::U | LinuxDeviceType::P)) = rule.typ() {
        return Err(IsolationError::invalid(
            format!("{field}.type"),
            format!(
                "{:?} is not a device cgroup type (a = all, b = block, c = char)",
                typ.as_str()
            ),
        ));
    }
    if let Some(access) = rule.access() {
        if let Some(bad) = access.chars().find(|c| !"rwm".contains(*c)) {
            return Err(IsolationError::invalid(
                format!("{field}.access"),
                format!(
                    "{access:?} has {bad:?}; only r (read), w (write) and m (mknod) are allowed"
                ),
            ));
        }
    }
    for (name, value, max) in [
        ("major", rule.major(), MAX_MAJOR),
        ("minor", rule.minor(), MAX_MINOR),
    ] {
        if let Some(n) = value {
            if !(-1..=max).contains(&n) {
                return Err(IsolationError::invalid(
                    format!("{field}.{name}"),
                    format!("{n} is not a Linux device {name} number (0..={max}, or -1 for any)"),
                ));
            }
        }
    }
    Ok(())
}

/// Maps `linux.rootfsPropagation` to the word libcontainer understands
/// (it applies every mode recursively, so `rprivate` = `private`).
fn rootfs_propagation_flag(prop: &str) -> Result<&'static str, IsolationError> {
    match prop {
        "private" | "rprivate" => Ok("private"),
        "slave" | "rslave" => Ok("slave"),
        "shared" | "rshared" => Ok("shared"),
        "unbindable" | "runbindable" => Err(IsolationError::invalid(
            "linux.rootfsPropagation",
            format!("{prop:?} is not supported (libcontainer would silently use slave)"),
        )),
        _ => Err(IsolationError::invalid(
            "linux.rootfsPropagation",
            format!("{prop:?} is not one of private, slave, shared (optionally r-prefixed)"),
        )),
    }
}

/// Only namespaced sysctls may be set, and only with their namespace (runc's rule).
fn check_sysctl(key: &str, ns: &HashSet<LinuxNamespaceType>) -> Result<(), IsolationError> {
    const IPC: [&str; 7] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
    ];
    let field = format!("linux.sysctl.{key}");
    let need = if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        LinuxNamespaceType::Ipc
    } else if key.starts_with("net.") {
        LinuxNamespaceType::Network
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        LinuxNamespaceType::Uts
    } else {
        return Err(IsolationError::invalid(
            field,
            "not a namespaced sysctl; it would change the whole guest",
        ));
    };
    if !ns.contains(&need) {
        return Err(IsolationError::invalid(
            field,
            format!("needs a {need:?} namespace in linux.namespaces"),
        ));
    }
    Ok(())
}

fn check_seccomp(spec: &Spec) -> Result<(), IsolationError> {
    let Some(seccomp) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) else {
        return Ok(());
    };
    let errno_ok = |a: LinuxSeccompAction| {
        matches!(
            a,
            LinuxSeccompAction::ScmpActErrno | LinuxSeccompAction::ScmpActTrace
        )
    };
    if seccomp.default_errno_ret().is_some() && !errno_ok(seccomp.default_action()) {
        return Err(IsolationError::invalid(
            "linux.seccomp.defaultErrnoRet",
            "only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE as defaultAction",
        ));
    }
    if seccomp.default_action() == LinuxSeccompAction::ScmpActNotify {
        return Err(IsolationError::invalid(
            "linux.seccomp.defaultAction",
            "SCMP_ACT_NOTIFY needs a seccomp agent, which vmrun does not run",
        ));
    }
    if seccomp.listener_path().is_some() {
        return Err(IsolationError::invalid(
            "linux.seccomp.listenerPath",
            "seccomp notify listeners are not supported in the guest",
        ));
    }
    for (i, sc) in seccomp.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        if sc.names().is_empty() || sc.names().iter().any(|n| n.is_empty()) {
            return Err(IsolationError::invalid(
                format!("{field}.names"),
                "empty or contains an empty name",
            ));
        }
        if sc.errno_ret().is_some() && !errno_ok(sc.action()) {
            return Err(IsolationError::invalid(
                format!("{field}.errnoRet"),
                "only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE",
            ));
        }
        if sc.action() == LinuxSeccompAction::ScmpActNotify {
            return Err(IsolationError::invalid(
                format!("{field}.action"),
                "SCMP_ACT_NOTIFY needs a seccomp agent, which vmrun does not run",
            ));
        }
        for (j, arg) in sc.args().iter().flatten().enumerate() {
            if arg.index() > 5 {
                return Err(IsolationError::invalid(
                    format!("{field}.args[{j}].index"),
                    format!("{} is above 5 (syscalls have 6 arguments)", arg.index()),
                ));
            }
        }
    }
    Ok(())
}

fn strip_lsm_fields(spec: &Spec) -> (Spec, Vec<Warning>) {
    let mut spec = spec.clone();
    let mut warnings = Vec::new();
    if let Some(process) = spec.process_mut() {
        warnings.extend(process_check::strip_lsm_fields(process));
        process_check::normalize_for_libcontainer(process);
    }
    if let Some(linux) = spec.linux_mut() {
        if linux.mount_label().is_some() {
            linux.set_mount_label(None);
            warnings.push(warn("linux.mountLabel", process_check::NO_LSM));
        }
    }
    (spec, warnings)
}

fn warn(field: &str, reason: &str) -> Warning {
    Warning {
        field: field.into(),
        reason: reason.into(),
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
