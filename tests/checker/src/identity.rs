//! Identity checks: hostname, ids, groups, cwd, env, fds, oom_score_adj,
//! pid namespace, id mappings.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::report::Report;

fn uts() -> nix::sys::utsname::UtsName {
    nix::sys::utsname::uname().expect("uname cannot fail")
}

/// Runs the identity checks.
pub fn check(spec: &Value, preserved_fds: u32, r: &mut Report) {
    let u = uts();
    if let Some(h) = spec["hostname"].as_str() {
        r.eq(
            "hostname",
            u.nodename().to_string_lossy().into_owned(),
            h.to_owned(),
        );
    }
    if let Some(d) = spec["domainname"].as_str() {
        r.eq(
            "domainname",
            u.domainname().to_string_lossy().into_owned(),
            d.to_owned(),
        );
    }
    let user = &spec["process"]["user"];
    let uid = user["uid"].as_u64().unwrap_or(0) as u32;
    let gid = user["gid"].as_u64().unwrap_or(0) as u32;
    r.eq("user.uid", nix::unistd::getuid().as_raw(), uid);
    r.eq("user.euid", nix::unistd::geteuid().as_raw(), uid);
    r.eq("user.gid", nix::unistd::getgid().as_raw(), gid);
    r.eq("user.egid", nix::unistd::getegid().as_raw(), gid);
    let want: BTreeSet<u32> = user["additionalGids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|g| g.as_u64().map(|g| g as u32))
        .filter(|g| *g != gid)
        .collect();
    let got: BTreeSet<u32> = nix::unistd::getgroups()
        .unwrap_or_default()
        .into_iter()
        .map(|g| g.as_raw())
        .filter(|g| *g != gid)
        .collect();
    r.eq("user.additionalGids", got, want);

    if let Some(cwd) = spec["process"]["cwd"].as_str() {
        let got = std::env::current_dir().map(|p| p.display().to_string());
        r.eq("cwd", got.ok(), Some(cwd.to_owned()));
    }
    for var in spec["process"]["env"].as_array().into_iter().flatten() {
        let Some((k, v)) = var.as_str().and_then(|s| s.split_once('=')) else {
            continue;
        };
        r.eq(
            &format!("env.{k}"),
            std::env::var(k).ok(),
            Some(v.to_owned()),
        );
    }
    check_fds(preserved_fds, r);
    if let Some(adj) = spec["process"]["oomScoreAdj"].as_i64() {
        let got = std::fs::read_to_string("/proc/self/oom_score_adj")
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok());
        r.eq("oomScoreAdj", got, Some(adj));
    }
    let namespaces: Vec<&str> = spec["linux"]["namespaces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|n| n["path"].is_null())
        .filter_map(|n| n["type"].as_str())
        .collect();
    if namespaces.contains(&"pid") {
        r.eq("namespace.pid (init is pid 1)", std::process::id(), 1);
    }
    if namespaces.contains(&"network") {
        let ifaces = std::fs::read_to_string("/proc/net/dev").map(|s| {
            s.lines()
                .skip(2)
                .filter_map(|l| l.split(':').next().map(|n| n.trim().to_owned()))
                .collect::<Vec<_>>()
        });
        r.eq(
            "namespace.network (only lo)",
            ifaces.ok(),
            Some(vec!["lo".to_owned()]),
        );
    }
    // Joined namespaces: annotation vmrun.checker/ns-<type> = expected inode.
    if let Some(ann) = spec["annotations"].as_object() {
        for (k, v) in ann {
            let Some(ns) = k.strip_prefix("vmrun.checker/ns-") else {
                continue;
            };
            use std::os::unix::fs::MetadataExt;
            let got = std::fs::metadata(format!("/proc/self/ns/{ns}")).map(|m| m.ino());
            r.eq(
                &format!("namespace.{ns} joined by path"),
                got.ok().map(|i| i.to_string()),
                v.as_str().map(str::to_owned),
            );
        }
    }
    if let Some(dir) = spec["annotations"]["vmrun.checker/reference-ns-dir"].as_str() {
        check_namespaces_against(spec, dir, r);
    }
    for (key, file) in [("uidMappings", "uid_map"), ("gidMappings", "gid_map")] {
        let Some(maps) = spec["linux"][key].as_array() else {
            continue;
        };
        let want: Vec<[u64; 3]> = maps
            .iter()
            .map(|m| {
                [
                    m["containerID"].as_u64().unwrap_or(0),
                    m["hostID"].as_u64().unwrap_or(0),
                    m["size"].as_u64().unwrap_or(0),
                ]
            })
            .collect();
        let got: Option<Vec<[u64; 3]>> = std::fs::read_to_string(format!("/proc/self/{file}"))
            .ok()
            .map(|s| {
                s.lines()
                    .filter_map(|l| {
                        let v: Vec<u64> = l
                            .split_whitespace()
                            .filter_map(|x| x.parse().ok())
                            .collect();
                        (v.len() == 3).then(|| [v[0], v[1], v[2]])
                    })
                    .collect()
            });
        r.eq(&format!("linux.{key}"), got, Some(want));
    }
}

/// Only 0-2 plus the preserved fds may be open.
fn check_fds(preserved: u32, r: &mut Report) {
    use std::os::fd::AsRawFd;
    let Ok(mut dir) = nix::dir::Dir::open(
        "/proc/self/fd",
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
        nix::sys::stat::Mode::empty(),
    ) else {
        return r.fail("fds", "cannot open /proc/self/fd");
    };
    let own = dir.as_raw_fd();
    let mut fds: Vec<i32> = dir
        .iter()
        .filter_map(|e| e.ok()?.file_name().to_str().ok()?.parse().ok())
        .filter(|fd| *fd != own)
        .collect();
    fds.sort_unstable();
    let want: Vec<i32> = (0..3 + preserved as i32).collect();
    if fds == want {
        r.pass("fds", format!("open: {want:?}"));
    } else {
        let shown: Vec<String> = fds
            .iter()
            .map(|fd| {
                let target = std::fs::read_link(format!("/proc/self/fd/{fd}"))
                    .map(|t| t.display().to_string())
                    .unwrap_or_default();
                format!("{fd}->{target}")
            })
            .collect();
        r.fail("fds", format!("expected {want:?}, got {shown:?}"));
    }
}

/// The spec's namespace types and their file names in /proc/PID/ns.
const NS_FILES: [(&str, &str); 8] = [
    ("pid", "pid"),
    ("network", "net"),
    ("mount", "mnt"),
    ("ipc", "ipc"),
    ("uts", "uts"),
    ("user", "user"),
    ("cgroup", "cgroup"),
    ("time", "time"),
];

/// Annotation `vmrun.checker/reference-ns-dir` = DIR: DIR is a bind mount of the
/// `/proc/PID/ns` directory of a reference process (the agent in a guest:
/// `/proc/1/ns`), and every namespace of this process is compared with the
/// reference's by inode: a type in `linux.namespaces` with a `path` (joined:
/// the test joins the reference's) must be the same namespace, a type
/// without one (created fresh) must differ, and a type the spec does not
/// list must be the runtime's own, i.e. the reference's too.
///
/// Reading another process's ns links needs ptrace read access to it
/// (CAP_SYS_PTRACE when it holds capabilities the container lacks).
fn check_namespaces_against(spec: &Value, dir: &str, r: &mut Report) {
    use std::os::unix::fs::MetadataExt;
    let listed = spec["linux"]["namespaces"].as_array();
    for (typ, file) in NS_FILES {
        let name = format!("namespace.{typ} vs {dir}/{file}");
        let entry = listed
            .into_iter()
            .flatten()
            .find(|n| n["type"].as_str() == Some(typ));
        let ino = |p: &str| std::fs::metadata(p).map(|m| (m.dev(), m.ino()));
        let own = match ino(&format!("/proc/self/ns/{file}")) {
            Ok(i) => i,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                r.skip(&name, "the kernel has no such namespace");
                continue;
            }
            Err(e) => {
                r.fail(&name, format!("stat /proc/self/ns/{file}: {e}"));
                continue;
            }
        };
        let reference = match ino(&format!("{dir}/{file}")) {
            Ok(i) => i,
            Err(e) => {
                r.fail(&name, format!("stat {dir}/{file}: {e}"));
                continue;
            }
        };
        let (want_same, why) = match entry {
            Some(n) if !n["path"].is_null() => (true, "joined by path"),
            Some(_) => (false, "created fresh"),
            None => (true, "not in the spec: the runtime's own"),
        };
        let same = own == reference;
        let detail = format!("{why}: own inode {}, reference {}", own.1, reference.1);
        if same == want_same {
            r.pass(&name, detail);
        } else {
            r.fail(
                &name,
                format!(
                    "{detail}: expected {}",
                    if want_same {
                        "the same"
                    } else {
                        "a different one"
                    }
                ),
            );
        }
    }
}
