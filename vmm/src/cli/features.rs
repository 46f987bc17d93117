//! `vmrun features` (the runtime-spec `features.md` document, as `runc
//! features` prints it: 4-space indent, trailing newline) and the
//! `--version` text.
//!
//! Only what vmrun really does is claimed. Containers are set up in the
//! guest by youki's libcontainer 0.7 (cgroup v2, libseccomp 2.5), so:
//! namespaces are the ones libcontainer creates and the guest kernel has
//! (time included); mount options are the flags libcontainer maps (others
//! go to the filesystem as data); seccomp has every action but
//! `SCMP_ACT_NOTIFY` (vmrun runs no seccomp agent), and the filter flags
//! libseccomp 2.5 can set; every hook phase runs (on the host: see
//! `runtime::hooks`); AppArmor, SELinux
//! and Intel RDT are off (the guest kernel has none). On the host, vmrun
//! joins cgroup v1 or v2 hierarchies, and maps `--systemd-cgroup`'s
//! `slice:prefix:name` paths itself (without asking systemd, so no
//! per-user systemd instance either).

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;

use super::CliError;
use crate::runtime::hooks::HookPhase;

/// The newest runtime-spec version vmrun accepts.
pub const SPEC_VERSION: &str = "1.1.0";

/// The oldest runtime-spec version vmrun accepts.
const OCI_VERSION_MIN: &str = "1.0.0";

/// What follows the program name in `vmrun --version` (clap prints
/// `vmrun <this>`); see [`version_text`].
pub const CLAP_VERSION: &str = concat!("version ", env!("CARGO_PKG_VERSION"), "\nspec: 1.1.0");

/// `vmrun --version`, shaped like runc's (`runc version X` then
/// `spec: Y`; go-runc reads the lines by prefix):
/// `vmrun version 0.1.0\nspec: 1.1.0\n`.
pub fn version_text() -> String {
    format!("vmrun {CLAP_VERSION}\n")
}

/// Arguments of `vmrun features` (none).
#[derive(Debug, Clone, clap::Args)]
pub struct FeaturesArgs {}

/// Prints the features document on stdout; exit code 0.
pub fn run(_args: FeaturesArgs) -> Result<i32, CliError> {
    let stdout = std::io::stdout();
    write_features(&mut stdout.lock())
        .map_err(|e| CliError::Write(std::path::PathBuf::from("<stdout>"), e))?;
    Ok(0)
}

/// Writes the features document to `out`.
pub fn write_features(out: &mut impl Write) -> std::io::Result<()> {
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut *out, formatter);
    features().serialize(&mut serializer)?;
    out.write_all(b"\n")
}

/// The document (runtime-spec `features.md` field names and order).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Features {
    oci_version_min: &'static str,
    oci_version_max: &'static str,
    hooks: Vec<&'static str>,
    mount_options: Vec<&'static str>,
    linux: Linux,
    annotations: BTreeMap<&'static str, &'static str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Linux {
    namespaces: Vec<&'static str>,
    capabilities: Vec<&'static str>,
    cgroup: Cgroup,
    seccomp: Seccomp,
    apparmor: Enabled,
    selinux: Enabled,
    intel_rdt: Enabled,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Cgroup {
    v1: bool,
    v2: bool,
    systemd: bool,
    systemd_user: bool,
    rdma: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Seccomp {
    enabled: bool,
    actions: Vec<&'static str>,
    operators: Vec<&'static str>,
    archs: Vec<&'static str>,
    known_flags: Vec<&'static str>,
    supported_flags: Vec<&'static str>,
}

#[derive(Debug, Serialize)]
struct Enabled {
    enabled: bool,
}

/// Mount option flags libcontainer 0.7 maps (`MountOption`,
/// `MountRecursive`), sorted.
const MOUNT_OPTIONS: &[&str] = &[
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "private",
    "ratime",
    "rbind",
    "rdev",
    "rdiratime",
    "relatime",
    "remount",
    "rexec",
    "rnoatime",
    "rnodev",
    "rnodiratime",
    "rnoexec",
    "rnorelatime",
    "rnostrictatime",
    "rnosuid",
    "rnosymfollow",
    "ro",
    "rprivate",
    "rrelatime",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "rstrictatime",
    "rsuid",
    "rsymfollow",
    "runbindable",
    "rw",
    "shared",
    "slave",
    "strictatime",
    "suid",
    "sync",
    "unbindable",
];

/// Every capability of the guest kernel (6.1), in number order.
const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

fn features() -> Features {
    Features {
        oci_version_min: OCI_VERSION_MIN,
        oci_version_max: SPEC_VERSION,
        hooks: HookPhase::ALL.iter().map(|phase| phase.name()).collect(),
        mount_options: MOUNT_OPTIONS.to_vec(),
        linux: Linux {
            namespaces: vec![
                "cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts",
            ],
            capabilities: CAPABILITIES.to_vec(),
            cgroup: Cgroup {
                v1: true,
                v2: true,
                systemd: true,
                systemd_user: false,
                rdma: false,
            },
            seccomp: Seccomp {
                enabled: true,
                actions: vec![
                    "SCMP_ACT_ALLOW",
                    "SCMP_ACT_ERRNO",
                    "SCMP_ACT_KILL",
                    "SCMP_ACT_KILL_PROCESS",
                    "SCMP_ACT_KILL_THREAD",
                    "SCMP_ACT_LOG",
                    "SCMP_ACT_TRACE",
                    "SCMP_ACT_TRAP",
                ],
                operators: vec![
                    "SCMP_CMP_EQ",
                    "SCMP_CMP_GE",
                    "SCMP_CMP_GT",
                    "SCMP_CMP_LE",
                    "SCMP_CMP_LT",
                    "SCMP_CMP_MASKED_EQ",
                    "SCMP_CMP_NE",
                ],
                // The architectures libseccomp 2.5 knows (a filter may
                // name foreign ones; the guest runs x86_64/x86/x32 code).
                archs: vec![
                    "SCMP_ARCH_AARCH64",
                    "SCMP_ARCH_ARM",
                    "SCMP_ARCH_MIPS",
                    "SCMP_ARCH_MIPS64",
                    "SCMP_ARCH_MIPS64N32",
                    "SCMP_ARCH_MIPSEL",
                    "SCMP_ARCH_MIPSEL64",
                    "SCMP_ARCH_MIPSEL64N32",
                    "SCMP_ARCH_PARISC",
                    "SCMP_ARCH_PARISC64",
                    "SCMP_ARCH_PPC",
                    "SCMP_ARCH_PPC64",
                    "SCMP_ARCH_PPC64LE",
                    "SCMP_ARCH_RISCV64",
                    "SCMP_ARCH_S390",
                    "SCMP_ARCH_S390X",
                    "SCMP_ARCH_X32",
                    "SCMP_ARCH_X86",
                    "SCMP_ARCH_X86_64",
                ],
                known_flags: vec![
                    "SECCOMP_FILTER_FLAG_TSYNC",
                    "SECCOMP_FILTER_FLAG_LOG",
                    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
                ],
                // WAIT_KILLABLE_RECV needs libseccomp 2.6.
                supported_flags: vec![
                    "SECCOMP_FILTER_FLAG_TSYNC",
                    "SECCOMP_FILTER_FLAG_LOG",
                    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                ],
            },
            apparmor: Enabled { enabled: false },
            selinux: Enabled { enabled: false },
            intel_rdt: Enabled { enabled: false },
        },
        annotations: BTreeMap::from([("io.github.vmrun.version", env!("CARGO_PKG_VERSION"))]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn document() -> (String, Value) {
        let mut out = Vec::new();
        write_features(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let value = serde_json::from_str(&text).unwrap();
        (text, value)
    }

    fn strings(v: &Value) -> Vec<&str> {
        v.as_array()
            .unwrap_or_else(|| panic!("not an array: {v}"))
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect()
    }

    #[test]
    fn is_pretty_printed_like_runc() {
        let (text, _) = document();
        assert!(
            text.starts_with(
                "{\n    \"ociVersionMin\": \"1.0.0\",\n    \"ociVersionMax\": \"1.1.0\",\n"
            ),
            "{text}"
        );
        assert!(text.ends_with("}\n") && !text.ends_with("}\n\n"), "{text}");
    }

    #[test]
    fn has_the_features_md_shape() {
        let (_, v) = document();
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        for key in [
            "ociVersionMin",
            "ociVersionMax",
            "hooks",
            "mountOptions",
            "linux",
            "annotations",
        ] {
            assert!(keys.iter().any(|k| *k == key), "{key} missing: {keys:?}");
        }
        let linux = &v["linux"];
        assert_eq!(
            linux["cgroup"],
            json!({"v1": true, "v2": true, "systemd": true, "systemdUser": false, "rdma": false})
        );
        for lsm in ["apparmor", "selinux", "intelRdt"] {
            assert_eq!(linux[lsm], json!({"enabled": false}), "{lsm}");
        }
        assert_eq!(linux["seccomp"]["enabled"], true);
        assert_eq!(
            v["annotations"]["io.github.vmrun.version"],
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(
            strings(&v["hooks"]),
            [
                "prestart",
                "createRuntime",
                "createContainer",
                "startContainer",
                "poststart",
                "poststop"
            ]
        );
    }

    #[test]
    fn claims_only_what_the_guest_does() {
        let (_, v) = document();
        let seccomp = &v["linux"]["seccomp"];
        assert!(!strings(&seccomp["actions"]).contains(&"SCMP_ACT_NOTIFY"));
        let supported = strings(&seccomp["supportedFlags"]);
        let known = strings(&seccomp["knownFlags"]);
        assert!(
            supported.iter().all(|f| known.contains(f)),
            "{supported:?} ⊄ {known:?}"
        );
        let options = strings(&v["mountOptions"]);
        for absent in ["tmpcopyup", "idmap", "nosymfollow"] {
            assert!(!options.contains(&absent), "{absent}");
        }
        let mut sorted = options.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(options, sorted, "mountOptions sorted, no duplicates");
        let caps = strings(&v["linux"]["capabilities"]);
        assert_eq!(
            caps.len(),
            41,
            "CAP_CHOWN (0) .. CAP_CHECKPOINT_RESTORE (40)"
        );
        assert_eq!(caps.last(), Some(&"CAP_CHECKPOINT_RESTORE"));
        assert!(strings(&v["linux"]["namespaces"]).contains(&"time"));
    }

    #[test]
    fn version_reads_like_runc() {
        let text = version_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                format!("vmrun version {}", env!("CARGO_PKG_VERSION")).as_str(),
                format!("spec: {SPEC_VERSION}").as_str()
            ]
        );
        assert!(text.ends_with('\n'));
    }
}
