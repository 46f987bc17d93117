//! Checks `linux.namespaces[].path` before the container is created: the
//! path must open, be a namespace file (nsfs), and hold a namespace of the
//! entry's type. libcontainer would otherwise fail deep in the container's
//! init with a bare errno (ENOENT, EINVAL, EACCES) that names no field.

use std::os::fd::AsRawFd;
use std::path::Path;

use crate::oci_spec::runtime::{LinuxNamespaceType, Spec};
use crate::IsolationError;

/// `NS_GET_NSTYPE` from linux/nsfs.h: `_IO(0xb7, 0x3)`.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// The `CLONE_NEW*` flag of a namespace type (what `NS_GET_NSTYPE` returns).
fn clone_flag(typ: LinuxNamespaceType) -> libc::c_int {
    match typ {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => 0x80, // CLONE_NEWTIME
    }
}

/// The spec's name of the namespace type with this `CLONE_NEW*` flag.
fn type_name(flag: libc::c_int) -> String {
    [
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Cgroup,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::User,
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Time,
    ]
    .into_iter()
    .find(|t| clone_flag(*t) == flag)
    .map_or_else(|| format!("unknown ({flag:#x})"), spec_name)
}

/// The type as `config.json` spells it.
fn spec_name(typ: LinuxNamespaceType) -> String {
    match typ {
        LinuxNamespaceType::Mount => "mount".into(),
        LinuxNamespaceType::Network => "network".into(),
        other => other.to_string(),
    }
}

/// Every `linux.namespaces[i].path` must be a namespace file of the
/// entry's type; errors name `linux.namespaces[i].path`.
pub fn check_namespace_paths(spec: &Spec) -> Result<(), IsolationError> {
    let Some(linux) = spec.linux() else {
        return Ok(());
    };
    for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
        if let Some(path) = ns.path() {
            check_one(path, ns.typ()).map_err(|reason| {
                IsolationError::invalid(format!("linux.namespaces[{i}].path"), reason)
            })?;
        }
    }
    Ok(())
}

fn check_one(path: &Path, typ: LinuxNamespaceType) -> Result<(), String> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| format!("{shown}: cannot open: {e}"))?;
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the fd.
    let got = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE as _) };
    if got < 0 {
        let e = std::io::Error::last_os_error();
        return Err(match e.raw_os_error() {
            Some(libc::ENOTTY) | Some(libc::EINVAL) => {
                format!("{shown} is not a namespace file (like /proc/PID/ns/TYPE)")
            }
            _ => format!("{shown}: cannot read its namespace type: {e}"),
        });
    }
    let want = clone_flag(typ);
    if got != want {
        return Err(format!(
            "{shown} is a {} namespace, not {}",
            type_name(got),
            spec_name(typ)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse_spec;

    fn spec_joining(typ: &str, path: &str) -> Spec {
        let json = format!(
            r#"{{"ociVersion":"1.0.2","root":{{"path":"rootfs"}},
            "linux":{{"namespaces":[{{"type":"pid"}},{{"type":"{typ}","path":"{path}"}}]}}}}"#
        );
        parse_spec(json.as_bytes()).unwrap()
    }

    fn err(typ: &str, path: &str) -> String {
        check_namespace_paths(&spec_joining(typ, path))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn own_namespaces_of_the_right_type_are_fine() {
        for (typ, file) in [
            ("network", "net"),
            ("uts", "uts"),
            ("ipc", "ipc"),
            ("mount", "mnt"),
        ] {
            check_namespace_paths(&spec_joining(typ, &format!("/proc/self/ns/{file}")))
                .unwrap_or_else(|e| panic!("{typ}: {e}"));
        }
    }

    #[test]
    fn missing_path_is_refused_naming_the_field() {
        let e = err("network", "/proc/self/ns/nope");
        assert!(e.contains("linux.namespaces[1].path"), "{e}");
        assert!(e.contains("cannot open"), "{e}");
    }

    #[test]
    fn a_plain_file_is_not_a_namespace() {
        let e = err("network", "/proc/self/status");
        assert!(e.contains("linux.namespaces[1].path"), "{e}");
        assert!(e.contains("not a namespace file"), "{e}");
    }

    #[test]
    fn a_namespace_of_another_type_is_refused() {
        let e = err("network", "/proc/self/ns/uts");
        assert!(e.contains("linux.namespaces[1].path"), "{e}");
        assert!(e.contains("is a uts namespace, not network"), "{e}");
    }
}
