//! Checks read from /proc/self/status: capability sets, no_new_privs,
//! seccomp mode, umask.

use serde_json::Value;

use crate::report::Report;

/// Capability names by bit number (linux/capability.h).
const CAPS: [&str; 41] = [
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

/// The value of `Key:` in /proc/self/status.
pub fn status_field(status: &str, key: &str) -> Option<String> {
    status.lines().find_map(|l| {
        l.strip_prefix(key)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(|v| v.trim().to_owned())
    })
}

/// The mask of the named caps, limited to those the kernel knows.
fn mask_of(names: &[Value], last_cap: u32) -> Result<u64, String> {
    let mut mask = 0u64;
    for n in names {
        let name = n.as_str().unwrap_or_default();
        let bit = CAPS
            .iter()
            .position(|c| *c == name)
            .ok_or_else(|| format!("unknown capability {name}"))?;
        if bit as u32 <= last_cap {
            mask |= 1 << bit;
        }
    }
    Ok(mask)
}

/// Runs the status-based checks.
pub fn check(spec: &Value, r: &mut Report) {
    let status = match std::fs::read_to_string("/proc/self/status") {
        Ok(s) => s,
        Err(e) => return r.fail("proc_status", format!("cannot read /proc/self/status: {e}")),
    };
    let process = &spec["process"];
    let last_cap: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40);
    let set_mask = |set: &str| {
        let names = process["capabilities"][set]
            .as_array()
            .cloned()
            .unwrap_or_default();
        mask_of(&names, last_cap)
    };
    let masks = [
        "bounding",
        "effective",
        "inheritable",
        "permitted",
        "ambient",
    ]
    .map(set_mask);
    if let Some(Err(e)) = masks.iter().find(|m| m.is_err()) {
        return r.fail("capabilities", e);
    }
    let [bnd, _eff, inh, prm, amb] = masks.map(|m| m.unwrap_or(0));
    // What the kernel makes of the sets the runtime installed when the
    // process execs a binary without file capabilities (capabilities(7)):
    // ambient survives only if also permitted and inheritable; root gets
    // inheritable | bounding in permitted and effective; others get ambient.
    let amb = amb & prm & inh;
    let root = process["user"]["uid"].as_u64().unwrap_or(0) == 0;
    let after_exec = if root { inh | bnd | amb } else { amb };
    for (key, want, set) in [
        ("CapBnd", bnd, "bounding"),
        ("CapEff", after_exec, "effective"),
        ("CapInh", inh, "inheritable"),
        ("CapPrm", after_exec, "permitted"),
        ("CapAmb", amb, "ambient"),
    ] {
        let name = format!("capabilities.{set}");
        let got = status_field(&status, key).and_then(|v| u64::from_str_radix(&v, 16).ok());
        r.eq(
            &name,
            got.map(|g| format!("{g:016x}")),
            Some(format!("{want:016x}")),
        );
    }
    let nnp = process["noNewPrivileges"].as_bool().unwrap_or(false);
    r.eq(
        "noNewPrivileges",
        status_field(&status, "NoNewPrivs"),
        Some(if nnp { "1" } else { "0" }.to_owned()),
    );
    let has_seccomp = !spec["linux"]["seccomp"].is_null();
    r.eq(
        "seccomp.mode",
        status_field(&status, "Seccomp"),
        Some(if has_seccomp { "2" } else { "0" }.to_owned()),
    );
    if let Some(umask) = process["user"]["umask"].as_u64() {
        r.eq(
            "umask",
            status_field(&status, "Umask"),
            Some(format!("{umask:04o}")),
        );
    } else {
        r.skip("umask", "process.user.umask not set in the spec");
    }
}
