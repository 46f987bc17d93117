//! Limits: rlimits, sysctls, cgroup v2 values.

use serde_json::Value;

use crate::report::Report;

fn rlimit_resource(name: &str) -> Option<libc::__rlimit_resource_t> {
    Some(match name {
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        _ => return None,
    })
}

/// Runs the limit checks.
pub fn check(spec: &Value, r: &mut Report) {
    for rl in spec["process"]["rlimits"].as_array().into_iter().flatten() {
        let name = rl["type"].as_str().unwrap_or_default();
        let Some(res) = rlimit_resource(name) else {
            r.fail(&format!("rlimit {name}"), "unknown rlimit type");
            continue;
        };
        let mut got = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `got` is a valid, writable rlimit struct for the call.
        let rc = unsafe { libc::getrlimit(res, &mut got) };
        let want = (rl["soft"].as_u64(), rl["hard"].as_u64());
        r.eq(
            &format!("rlimit {name}"),
            (rc == 0).then_some((Some(got.rlim_cur), Some(got.rlim_max))),
            Some(want),
        );
    }
    if let Some(sysctls) = spec["linux"]["sysctl"].as_object() {
        for (key, want) in sysctls {
            let path = format!("/proc/sys/{}", key.replace('.', "/"));
            let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
            let got = std::fs::read_to_string(&path).ok().map(|s| norm(&s));
            r.eq(
                &format!("sysctl {key}"),
                got,
                Some(norm(want.as_str().unwrap_or_default())),
            );
        }
    }
    check_cgroup(spec, r);
}

/// The container's cgroup directory as seen from inside.
fn own_cgroup_dir() -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(format!("/sys/fs/cgroup{}", rel.trim_end_matches('/')))
}

fn read(dir: &str, file: &str) -> Option<String> {
    std::fs::read_to_string(format!("{dir}/{file}"))
        .ok()
        .map(|s| s.trim().to_owned())
}

/// The cpu.weight libcontainer (and runc >= 1.3) derive from cpu.shares.
fn shares_to_weight(shares: u64) -> u64 {
    if shares <= 2 {
        return 1;
    }
    if shares >= 262_144 {
        return 10_000;
    }
    let l = (shares as f64).log2();
    let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
    (10f64.powf(exponent).ceil() as u64).clamp(1, 10_000)
}

fn check_cgroup(spec: &Value, r: &mut Report) {
    let res = &spec["linux"]["resources"];
    let wants_any = ["memory", "cpu", "pids", "unified"]
        .iter()
        .any(|k| !res[k].is_null());
    if !wants_any {
        return;
    }
    let is_v2 = nix::sys::statfs::statfs("/sys/fs/cgroup")
        .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false);
    if !is_v2 {
        return r.skip(
            "cgroup",
            "SKIPPED: /sys/fs/cgroup in the container is not cgroup2 (cgroup v1 host or no cgroup mount)",
        );
    }
    let Some(dir) = own_cgroup_dir() else {
        return r.fail("cgroup", "no 0:: line in /proc/self/cgroup");
    };
    let mem = &res["memory"];
    let max_or = |v: &Value| match v.as_i64() {
        Some(-1) | None => "max".to_owned(),
        Some(n) => n.to_string(),
    };
    if !mem["limit"].is_null() {
        r.eq(
            "cgroup memory.max",
            read(&dir, "memory.max"),
            Some(max_or(&mem["limit"])),
        );
    }
    if let Some(v) = mem["reservation"].as_i64() {
        r.eq(
            "cgroup memory.low",
            read(&dir, "memory.low"),
            Some(v.to_string()),
        );
    }
    if let (Some(swap), Some(limit)) = (mem["swap"].as_i64(), mem["limit"].as_i64()) {
        let want = if swap == -1 {
            "max".to_owned()
        } else {
            (swap - limit).to_string()
        };
        r.eq(
            "cgroup memory.swap.max",
            read(&dir, "memory.swap.max"),
            Some(want),
        );
    }
    let cpu = &res["cpu"];
    if let Some(quota) = cpu["quota"].as_i64() {
        let period = cpu["period"].as_u64().unwrap_or(100_000);
        let q = if quota < 0 {
            "max".to_owned()
        } else {
            quota.to_string()
        };
        r.eq(
            "cgroup cpu.max",
            read(&dir, "cpu.max"),
            Some(format!("{q} {period}")),
        );
    }
    if let Some(shares) = cpu["shares"].as_u64() {
        r.eq(
            "cgroup cpu.weight",
            read(&dir, "cpu.weight"),
            Some(shares_to_weight(shares).to_string()),
        );
    }
    if let Some(cpus) = cpu["cpus"].as_str() {
        r.eq(
            "cgroup cpuset.cpus",
            read(&dir, "cpuset.cpus"),
            Some(cpus.to_owned()),
        );
    }
    // linux.resources.unified: cgroup v2 files written as given.
    for (file, want) in res["unified"].as_object().into_iter().flatten() {
        r.eq(
            &format!("cgroup unified {file}"),
            read(&dir, file),
            want.as_str().map(|w| w.trim().to_owned()),
        );
    }
    if !res["pids"]["limit"].is_null() {
        let want = match res["pids"]["limit"].as_i64() {
            Some(n) if n > 0 => n.to_string(),
            _ => "max".to_owned(),
        };
        r.eq("cgroup pids.max", read(&dir, "pids.max"), Some(want));
    }
}
