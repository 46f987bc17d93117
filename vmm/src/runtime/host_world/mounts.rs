//! The spec's `mounts[]` seen from a VM: a bind mount of a host path is
//! exposed in the VM's share and its `source` rewritten to the guest path
//! of that share; kernel-provided mounts (proc, sysfs, tmpfs, devpts,
//! mqueue, cgroup) stay guest-side unchanged; whatever the guest cannot
//! honour faithfully is refused naming `mounts[i]`. Of a host bind's
//! propagation options, `private`/`rprivate` and `slave`/`rslave` are
//! honoured on the host side of the share ([`BindPropagation`]; the guest
//! applies each to the container's own mount as runc does); `shared` and
//! `rshared` are refused: mounts made in the container are the guest
//! kernel's and can never propagate to the host.

use std::os::unix::fs::FileTypeExt;
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use super::shared_tree::BindPropagation;

/// Filesystem types the guest kernel provides by itself.
pub const GUEST_TYPES: [&str; 9] = [
    "proc", "sysfs", "tmpfs", "devpts", "mqueue", "cgroup", "cgroup2", "devtmpfs", "none",
];

/// Why a mount cannot be honoured.
#[derive(Debug, thiserror::Error)]
#[error("mounts[{index}]: {reason}")]
pub struct MountError {
    /// Its index in `mounts`.
    pub index: usize,
    /// What is wrong.
    pub reason: String,
}

/// A host bind mount to expose in the share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostBind {
    /// Its index in `mounts`.
    pub index: usize,
    /// The host source (absolute, as given).
    pub source: PathBuf,
    /// `ro` among its options.
    pub readonly: bool,
    /// `rbind` among its options.
    pub recursive: bool,
    /// How host mounts under the source reach the guest (the last of its
    /// propagation options).
    pub propagation: BindPropagation,
}

fn options(mount: &Value) -> Vec<&str> {
    mount
        .get("options")
        .and_then(Value::as_array)
        .map(|opts| opts.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn refuse(index: usize, reason: impl Into<String>) -> MountError {
    MountError {
        index,
        reason: reason.into(),
    }
}

/// Whether `mount` is a bind mount (runc: type `bind`, or a `bind`/`rbind`
/// option).
fn is_bind(mount: &Value) -> bool {
    mount.get("type").and_then(Value::as_str) == Some("bind")
        || options(mount)
            .iter()
            .any(|o| matches!(*o, "bind" | "rbind"))
}

/// The host bind mounts of `spec` (checked: an absolute existing source
/// that is a directory or a regular file after symlinks, which are
/// resolved on the host), and the refusals for mounts the guest cannot
/// honour.
pub fn host_binds(spec: &Value) -> Result<Vec<HostBind>, MountError> {
    let Some(mounts) = spec.get("mounts").and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    let mut binds = Vec::new();
    for (index, mount) in mounts.iter().enumerate() {
        let opts = options(mount);
        if let Some(opt) = opts.iter().find(|o| matches!(**o, "idmap" | "ridmap")) {
            return Err(refuse(
                index,
                format!(
                    "option {opt:?}: id-mapped mounts of host paths cannot cross into a microVM"
                ),
            ));
        }
        if !is_bind(mount) {
            let kind = mount.get("type").and_then(Value::as_str).unwrap_or("");
            if !GUEST_TYPES.contains(&kind) {
                return Err(refuse(
                    index,
                    format!(
                        "type {kind:?}: only bind mounts of host paths and the guest kernel's \
                         filesystems ({}) can be mounted in a microVM",
                        GUEST_TYPES.join(", ")
                    ),
                ));
            }
            continue;
        }
        if let Some(opt) = opts.iter().find(|o| matches!(**o, "shared" | "rshared")) {
            return Err(refuse(
                index,
                format!(
                    "option {opt:?}: mounts made in a microVM's container are the guest \
                     kernel's and cannot propagate back to the host (use \"rslave\" to see \
                     host mounts under the source, or \"rprivate\")"
                ),
            ));
        }
        let propagation = opts
            .iter()
            .rev()
            .find_map(|o| match *o {
                "slave" | "rslave" => Some(BindPropagation::Slave),
                "private" | "rprivate" => Some(BindPropagation::Private),
                _ => None,
            })
            .unwrap_or_default();
        let Some(source) = mount.get("source").and_then(Value::as_str) else {
            return Err(refuse(index, "a bind mount needs a source"));
        };
        let source = Path::new(source);
        if !source.is_absolute() {
            return Err(refuse(
                index,
                format!("source {}: must be an absolute host path", source.display()),
            ));
        }
        let meta = std::fs::metadata(source)
            .map_err(|e| refuse(index, format!("source {}: {e}", source.display())))?;
        let kind = meta.file_type();
        if kind.is_socket() || kind.is_fifo() || kind.is_block_device() || kind.is_char_device() {
            return Err(refuse(
                index,
                format!(
                    "source {}: sockets, fifos and device nodes cannot cross into a microVM",
                    source.display()
                ),
            ));
        }
        binds.push(HostBind {
            index,
            source: source.to_path_buf(),
            readonly: opts.contains(&"ro"),
            recursive: opts.contains(&"rbind"),
            propagation,
        });
    }
    Ok(binds)
}

/// A relative path within the share, for container `id`'s mount `index`.
pub fn share_path(id: &str, index: usize) -> PathBuf {
    Path::new(id).join("mounts").join(index.to_string())
}

/// The share path of container `id`'s rootfs.
pub fn rootfs_share_path(id: &str) -> PathBuf {
    Path::new(id).join("rootfs")
}

/// Points `spec.mounts[index].source` at `guest_path` (the exposed copy).
pub fn rewrite_source(spec: &mut Value, index: usize, guest_path: &Path) {
    if let Some(mount) = spec
        .get_mut("mounts")
        .and_then(Value::as_array_mut)
        .and_then(|m| m.get_mut(index))
    {
        mount["source"] = Value::String(guest_path.display().to_string());
    }
}

/// Whether `rel` stays inside its base (no `..`, not absolute).
pub fn is_contained(rel: &Path) -> bool {
    rel.components().all(|c| matches!(c, Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn binds_are_found_and_kernel_mounts_stay() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("resolv.conf");
        std::fs::write(&file, "nameserver 1.1.1.1\n").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let spec = json!({"mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/data", "type": "bind", "source": dir.path(), "options": ["rbind", "rw"]},
            {"destination": "/etc/resolv.conf", "source": link, "options": ["bind", "ro"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm"},
        ]});
        let binds = host_binds(&spec).unwrap();
        assert_eq!(binds.len(), 2);
        assert_eq!(
            (binds[0].index, binds[0].readonly, binds[0].recursive),
            (1, false, true)
        );
        assert_eq!(
            (binds[1].index, binds[1].readonly, binds[1].recursive),
            (2, true, false)
        );
    }

    #[test]
    fn what_cannot_cross_is_refused_naming_the_mount() {
        let cases = [
            (
                json!({"destination": "/x", "type": "ext4", "source": "/dev/sda1"}),
                "type \"ext4\"",
            ),
            (
                json!({"destination": "/x", "type": "bind", "source": "rel/dir"}),
                "absolute",
            ),
            (
                json!({"destination": "/x", "type": "bind", "source": "/nonexistent-src"}),
                "nonexistent-src",
            ),
            (
                json!({"destination": "/x", "type": "bind", "source": "/dev/null"}),
                "device nodes",
            ),
            (
                json!({"destination": "/x", "type": "bind", "source": "/tmp", "options": ["idmap"]}),
                "idmap",
            ),
            (
                json!({"destination": "/x", "type": "bind", "source": "/tmp",
                       "options": ["rbind", "rshared"]}),
                "option \"rshared\": mounts made in a microVM's container",
            ),
            (
                json!({"destination": "/x", "source": "/tmp", "options": ["bind", "shared", "rprivate"]}),
                "option \"shared\": mounts made in a microVM's container",
            ),
        ];
        for (mount, needle) in cases {
            let spec = json!({"mounts": [{"destination": "/proc", "type": "proc"}, mount]});
            let err = host_binds(&spec).unwrap_err();
            assert_eq!(err.index, 1);
            let text = err.to_string();
            assert!(text.starts_with("mounts[1]: "), "{text}");
            assert!(text.contains(needle), "{text}");
        }
    }

    #[test]
    fn propagation_options_of_host_binds() {
        let dir = tempfile::tempdir().unwrap();
        let bind = |options: Value| {
            let spec = json!({"mounts": [{"destination": "/x", "type": "bind",
                                          "source": dir.path(), "options": options}]});
            host_binds(&spec).map(|b| b[0].propagation)
        };
        // What podman, Docker and containerd's CRI send by default.
        for options in [
            json!(["rbind", "rprivate"]),
            json!(["rbind", "ro", "rprivate"]),
            json!(["nosuid", "noexec", "nodev", "rbind", "private"]),
            json!(["bind"]),
            json!(null),
        ] {
            assert_eq!(bind(options).unwrap(), BindPropagation::Private);
        }
        // CRI's HOST_TO_CONTAINER, Docker's bind-propagation=slave.
        for options in [json!(["rbind", "rslave"]), json!(["rbind", "ro", "slave"])] {
            assert_eq!(bind(options).unwrap(), BindPropagation::Slave);
        }
        // The last one wins, as in mount(8).
        let last = bind(json!(["rslave", "rprivate"])).unwrap();
        assert_eq!(last, BindPropagation::Private);
        let last = bind(json!(["private", "rslave"])).unwrap();
        assert_eq!(last, BindPropagation::Slave);
        // Kernel mounts stay the guest's business, shared ones too.
        let spec = json!({"mounts": [
            {"destination": "/a", "type": "tmpfs", "source": "tmpfs", "options": ["rshared"]}
        ]});
        assert_eq!(host_binds(&spec).unwrap(), []);
    }

    #[test]
    fn paths_in_the_share_and_rewriting() {
        assert_eq!(share_path("c1", 3), Path::new("c1/mounts/3"));
        assert_eq!(rootfs_share_path("c1"), Path::new("c1/rootfs"));
        let mut spec = json!({"mounts": [{"destination": "/d", "source": "/host"}]});
        rewrite_source(
            &mut spec,
            0,
            Path::new("/run/vmrun/shares/vmrun/c1/mounts/0"),
        );
        assert_eq!(
            spec["mounts"][0]["source"],
            "/run/vmrun/shares/vmrun/c1/mounts/0"
        );
        assert!(is_contained(Path::new("c1/rootfs")));
        assert!(!is_contained(Path::new("../x")));
        assert!(!is_contained(Path::new("/abs")));
    }
}
