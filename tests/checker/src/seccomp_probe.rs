//! Seccomp: a syscall the profile answers with SCMP_ACT_ERRNO must fail with
//! the configured errno.

use serde_json::Value;

use crate::report::Report;

/// Calls `name` with harmless arguments; returns `Err(errno)` or `Ok(ret)`.
/// `None` for syscalls this prober does not know how to call safely.
fn probe(name: &str) -> Option<Result<i64, i32>> {
    let path = c"/vmrun-checker-seccomp-probe/x";
    let root = c"/";
    // SAFETY: each call passes valid NUL-terminated paths / plain integers;
    // none of them can touch memory we do not own.
    let rc = unsafe {
        match name {
            "mkdir" => libc::syscall(libc::SYS_mkdir, path.as_ptr(), 0o755),
            "mkdirat" => libc::syscall(libc::SYS_mkdirat, libc::AT_FDCWD, path.as_ptr(), 0o755),
            "chdir" => libc::syscall(libc::SYS_chdir, root.as_ptr()),
            "personality" => libc::syscall(libc::SYS_personality, 0xffff_ffffu64),
            "getppid" => libc::syscall(libc::SYS_getppid),
            "sync" => libc::syscall(libc::SYS_sync),
            _ => return None,
        }
    };
    Some(if rc == -1 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(rc)
    })
}

/// The argument filter matching the `personality(0xffffffff)` probe.
fn personality_query_args() -> Value {
    serde_json::json!([{"index": 0, "value": 0xffff_ffffu64, "op": "SCMP_CMP_EQ"}])
}

/// Runs the seccomp probes.
pub fn check(spec: &Value, r: &mut Report) {
    let seccomp = &spec["linux"]["seccomp"];
    for rule in seccomp["syscalls"].as_array().into_iter().flatten() {
        if rule["action"].as_str() != Some("SCMP_ACT_ERRNO") {
            continue;
        }
        // Rules with arguments: only the one our personality probe matches.
        if !rule["args"].is_null() && rule["args"] != personality_query_args() {
            continue;
        }
        let errno = rule["errnoRet"].as_i64().unwrap_or(libc::EPERM as i64) as i32;
        for name in rule["names"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap_or_default();
            match probe(name) {
                None => r.skip(&format!("seccomp {name}"), "no safe probe for this syscall"),
                Some(got) => r.eq(&format!("seccomp {name} errno"), got, Err(errno)),
            }
        }
    }
}
