//! `vmrun spec [--bundle DIR] [--rootless]`: writes runc 1.1.5's default
//! `config.json` (`runc spec`), byte for byte: the same fields in the same
//! order, tab-indented, no trailing newline; refused when the file exists.
//! As runc, the cgroup namespace is added when the host is cgroup v2
//! (unified), and `--rootless` maps the caller's euid/egid to root in a
//! user namespace, drops the network namespace, binds /sys, strips
//! `gid=`/`uid=` mount options and the cgroup settings.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::CliError;

/// The spec version `runc spec` 1.1.5 writes.
const OCI_VERSION: &str = "1.0.2-dev";

/// Arguments of `vmrun spec`.
#[derive(Debug, Clone, clap::Args)]
pub struct SpecArgs {
    /// Write config.json into this directory (default: the current one).
    #[arg(short, long, value_name = "DIR")]
    pub bundle: Option<PathBuf>,
    /// A spec for a rootless container (user namespace, caller's ids).
    #[arg(long)]
    pub rootless: bool,
}

/// Writes the default `config.json`; exit code 0.
pub fn run(args: SpecArgs) -> Result<i32, CliError> {
    let dir = args.bundle.unwrap_or_else(|| PathBuf::from("."));
    let spec = if args.rootless {
        rootless_spec(host_is_cgroup2_unified(), rootless_ids())
    } else {
        default_spec(host_is_cgroup2_unified())
    };
    write_spec(&dir, &spec)?;
    Ok(0)
}

/// Writes `spec` as `dir/config.json`, refusing (with runc's message) to
/// replace an existing file (or to follow a symlink there).
fn write_spec(dir: &Path, spec: &Spec) -> Result<(), CliError> {
    let path = dir.join("config.json");
    let text = to_runc_json(spec).map_err(|e| CliError::Write(path.clone(), e.into()))?;
    let mut file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            return Err(CliError::Usage(
                "File config.json exists. Remove it first".to_owned(),
            ))
        }
        Err(e) => return Err(CliError::Write(path, e)),
    };
    std::io::Write::write_all(&mut file, text.as_bytes()).map_err(|e| CliError::Write(path, e))
}

/// `json.MarshalIndent(spec, "", "\t")`: tab indent, no trailing newline.
fn to_runc_json(spec: &Spec) -> serde_json::Result<String> {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    spec.serialize(&mut serializer)?;
    // serde_json writes valid UTF-8.
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Whether /sys/fs/cgroup is a cgroup2 mount (runc's
/// `IsCgroup2UnifiedMode`).
fn host_is_cgroup2_unified() -> bool {
    nix::sys::statfs::statfs("/sys/fs/cgroup")
        .is_ok_and(|fs| fs.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
}

/// The caller's effective uid and gid (mapped to root with `--rootless`).
fn rootless_ids() -> (u32, u32) {
    (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    )
}

/// The spec document, with runc's field order (`specs.Spec`'s Go field
/// order, empty fields omitted).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    oci_version: &'static str,
    process: Process,
    root: Root,
    hostname: &'static str,
    mounts: Vec<Mount>,
    linux: Linux,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Process {
    terminal: bool,
    user: User,
    args: Vec<&'static str>,
    env: Vec<&'static str>,
    cwd: &'static str,
    capabilities: Capabilities,
    rlimits: Vec<Rlimit>,
    no_new_privileges: bool,
}

#[derive(Debug, Serialize)]
struct User {
    uid: u32,
    gid: u32,
}

#[derive(Debug, Serialize)]
struct Capabilities {
    bounding: Vec<&'static str>,
    effective: Vec<&'static str>,
    permitted: Vec<&'static str>,
    ambient: Vec<&'static str>,
}

#[derive(Debug, Serialize)]
struct Rlimit {
    #[serde(rename = "type")]
    kind: &'static str,
    hard: u64,
    soft: u64,
}

#[derive(Debug, Serialize)]
struct Root {
    path: &'static str,
    readonly: bool,
}

#[derive(Debug, Serialize)]
struct Mount {
    destination: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    source: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    options: Vec<&'static str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Linux {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    uid_mappings: Vec<IdMapping>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    gid_mappings: Vec<IdMapping>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resources: Option<Resources>,
    namespaces: Vec<Namespace>,
    masked_paths: Vec<&'static str>,
    readonly_paths: Vec<&'static str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct IdMapping {
    #[serde(rename = "containerID")]
    container_id: u32,
    #[serde(rename = "hostID")]
    host_id: u32,
    size: u32,
}

#[derive(Debug, Serialize)]
struct Resources {
    devices: Vec<DeviceRule>,
}

#[derive(Debug, Serialize)]
struct DeviceRule {
    allow: bool,
    access: &'static str,
}

#[derive(Debug, Serialize)]
struct Namespace {
    #[serde(rename = "type")]
    kind: &'static str,
}

/// The capabilities runc's template grants.
const DEFAULT_CAPS: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/// runc's default mounts: destination, type, source, options.
type MountRow = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
);
#[rustfmt::skip]
const DEFAULT_MOUNTS: [MountRow; 7] = [
    ("/proc", "proc", "proc", &[]),
    ("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"]),
    ("/dev/pts", "devpts", "devpts",
        &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]),
    ("/dev/shm", "tmpfs", "shm", &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
    ("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
    ("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", "ro"]),
    ("/sys/fs/cgroup", "cgroup", "cgroup", &["nosuid", "noexec", "nodev", "relatime", "ro"]),
];

/// `runc spec`'s template; `cgroup_ns` adds the cgroup namespace (runc
/// does on a cgroup v2 host).
fn default_spec(cgroup_ns: bool) -> Spec {
    let mut namespaces: Vec<Namespace> = ["pid", "network", "ipc", "uts", "mount"]
        .into_iter()
        .map(|kind| Namespace { kind })
        .collect();
    if cgroup_ns {
        namespaces.push(Namespace { kind: "cgroup" });
    }
    Spec {
        oci_version: OCI_VERSION,
        process: Process {
            terminal: true,
            user: User { uid: 0, gid: 0 },
            args: vec!["sh"],
            env: vec![
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm",
            ],
            cwd: "/",
            capabilities: Capabilities {
                bounding: DEFAULT_CAPS.to_vec(),
                effective: DEFAULT_CAPS.to_vec(),
                permitted: DEFAULT_CAPS.to_vec(),
                ambient: DEFAULT_CAPS.to_vec(),
            },
            rlimits: vec![Rlimit {
                kind: "RLIMIT_NOFILE",
                hard: 1024,
                soft: 1024,
            }],
            no_new_privileges: true,
        },
        root: Root {
            path: "rootfs",
            readonly: true,
        },
        hostname: "runc",
        mounts: DEFAULT_MOUNTS
            .iter()
            .map(|&(destination, kind, source, options)| Mount {
                destination,
                kind,
                source,
                options: options.to_vec(),
            })
            .collect(),
        linux: Linux {
            uid_mappings: Vec::new(),
            gid_mappings: Vec::new(),
            resources: Some(Resources {
                devices: vec![DeviceRule {
                    allow: false,
                    access: "rwm",
                }],
            }),
            namespaces,
            masked_paths: vec![
                "/proc/acpi",
                "/proc/asound",
                "/proc/kcore",
                "/proc/keys",
                "/proc/latency_stats",
                "/proc/timer_list",
                "/proc/timer_stats",
                "/proc/sched_debug",
                "/sys/firmware",
                "/proc/scsi",
            ],
            readonly_paths: vec![
                "/proc/bus",
                "/proc/fs",
                "/proc/irq",
                "/proc/sys",
                "/proc/sysrq-trigger",
            ],
        },
    }
}

/// runc's `ToRootless` applied to the template: `(uid, gid)` is the
/// caller's, mapped to root.
fn rootless_spec(cgroup_ns: bool, (uid, gid): (u32, u32)) -> Spec {
    let mut spec = default_spec(cgroup_ns);
    spec.linux
        .namespaces
        .retain(|ns| ns.kind != "network" && ns.kind != "user");
    spec.linux.namespaces.push(Namespace { kind: "user" });
    let map = |host_id| {
        vec![IdMapping {
            container_id: 0,
            host_id,
            size: 1,
        }]
    };
    spec.linux.uid_mappings = map(uid);
    spec.linux.gid_mappings = map(gid);
    for mount in &mut spec.mounts {
        if mount.destination == "/sys" {
            *mount = Mount {
                destination: "/sys",
                kind: "none",
                source: "/sys",
                options: vec!["rbind", "nosuid", "noexec", "nodev", "ro"],
            };
        } else {
            mount
                .options
                .retain(|o| !o.starts_with("gid=") && !o.starts_with("uid="));
        }
    }
    spec.linux.resources = None;
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(spec: &Spec) -> serde_json::Value {
        serde_json::from_str(&to_runc_json(spec).unwrap()).unwrap()
    }

    #[test]
    fn output_is_tab_indented_without_trailing_newline() {
        let text = to_runc_json(&default_spec(false)).unwrap();
        assert!(
            text.starts_with(
                "{\n\t\"ociVersion\": \"1.0.2-dev\",\n\t\"process\": {\n\t\t\"terminal\": true,"
            ),
            "{text}"
        );
        assert!(text.ends_with("\n\t}\n}"), "{text}");
    }

    #[test]
    fn template_has_runc_defaults() {
        let v = json(&default_spec(false));
        assert_eq!(v["process"]["args"], serde_json::json!(["sh"]));
        assert_eq!(
            v["process"]["user"],
            serde_json::json!({"uid": 0, "gid": 0})
        );
        assert_eq!(
            v["process"]["capabilities"]["bounding"],
            serde_json::json!(DEFAULT_CAPS)
        );
        assert_eq!(
            v["root"],
            serde_json::json!({"path": "rootfs", "readonly": true})
        );
        assert_eq!(v["hostname"], "runc");
        assert!(
            v["mounts"][0].get("options").is_none(),
            "proc has no options"
        );
        assert_eq!(
            v["linux"]["resources"]["devices"],
            serde_json::json!([{"allow": false, "access": "rwm"}])
        );
        let ns: Vec<&str> = v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert_eq!(ns, ["pid", "network", "ipc", "uts", "mount"]);
        let v2 = json(&default_spec(true));
        assert_eq!(v2["linux"]["namespaces"][5]["type"], "cgroup");
        assert!(v.get("linux").unwrap().get("uidMappings").is_none());
    }

    #[test]
    fn rootless_follows_runc_to_rootless() {
        let v = json(&rootless_spec(false, (1000, 100)));
        let ns: Vec<&str> = v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap())
            .collect();
        assert_eq!(ns, ["pid", "ipc", "uts", "mount", "user"]);
        assert_eq!(
            v["linux"]["uidMappings"],
            serde_json::json!([{"containerID": 0, "hostID": 1000, "size": 1}])
        );
        assert_eq!(
            v["linux"]["gidMappings"],
            serde_json::json!([{"containerID": 0, "hostID": 100, "size": 1}])
        );
        assert!(v["linux"].get("resources").is_none());
        let sys = &v["mounts"][5];
        assert_eq!(
            *sys,
            serde_json::json!({"destination": "/sys", "type": "none", "source": "/sys",
                "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]})
        );
        let pts = v["mounts"][2]["options"].as_array().unwrap();
        assert!(
            !pts.iter().any(|o| o.as_str().unwrap().starts_with("gid=")),
            "{pts:?}"
        );
        // Key order of the linux object as runc writes it.
        let text = to_runc_json(&rootless_spec(false, (0, 0))).unwrap();
        let at = |k: &str| text.find(k).unwrap_or_else(|| panic!("{k} missing"));
        assert!(at("\"uidMappings\"") < at("\"gidMappings\""));
        assert!(at("\"gidMappings\"") < at("\"namespaces\""));
    }

    #[test]
    fn refuses_to_replace_config_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, "mine").unwrap();
        let err = write_spec(dir.path(), &default_spec(false)).unwrap_err();
        assert_eq!(err.to_string(), "File config.json exists. Remove it first");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "mine");
    }

    #[test]
    fn writes_into_the_bundle_dir() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            run(SpecArgs {
                bundle: Some(dir.path().to_path_buf()),
                rootless: false
            })
            .unwrap(),
            0
        );
        let written = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
        assert_eq!(
            written,
            to_runc_json(&default_spec(host_is_cgroup2_unified())).unwrap()
        );
    }

    /// Straight to stderr: libtest does not capture it, so a skip is seen.
    fn skipped(why: &str) {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: matches_the_installed_runc_byte_for_byte: {why}"
        );
    }

    /// The strongest check: byte-equal to `runc spec` of the runc on this
    /// host (Debian 12 ships 1.1.5), when there is one.
    #[test]
    fn matches_the_installed_runc_byte_for_byte() {
        for rootless in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let mut cmd = std::process::Command::new("runc");
            cmd.arg("spec").current_dir(dir.path());
            if rootless {
                cmd.arg("--rootless");
            }
            let status = match cmd.status() {
                Ok(s) => s,
                Err(e) => {
                    skipped(&format!("no runc here ({e})"));
                    return;
                }
            };
            assert!(status.success());
            let version = std::process::Command::new("runc")
                .arg("--version")
                .output()
                .unwrap();
            if !String::from_utf8_lossy(&version.stdout).starts_with("runc version 1.1.") {
                skipped("the installed runc is not 1.1.x");
                return;
            }
            let theirs = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
            let spec = if rootless {
                rootless_spec(host_is_cgroup2_unified(), rootless_ids())
            } else {
                default_spec(host_is_cgroup2_unified())
            };
            assert_eq!(to_runc_json(&spec).unwrap(), theirs, "rootless={rootless}");
        }
    }
}
