//! File-system checks: read-only root and paths, masked paths, mounts,
//! device nodes.

use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};

use serde_json::Value;

use crate::report::Report;

fn is_readonly(path: &str) -> Option<bool> {
    nix::sys::statvfs::statvfs(path)
        .ok()
        .map(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
}

/// One line of /proc/self/mountinfo.
struct MountInfo {
    mount_point: String,
    options: Vec<String>,
    fstype: String,
    /// Optional fields: `shared:N`, `master:N`, ...
    tags: Vec<String>,
}

fn mountinfo() -> Vec<MountInfo> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let f: Vec<&str> = left.split(' ').collect();
            let fstype = right.split(' ').next()?.to_owned();
            Some(MountInfo {
                mount_point: f.get(4)?.replace("\\040", " "),
                options: f.get(5)?.split(',').map(str::to_owned).collect(),
                fstype,
                tags: f.iter().skip(6).map(|t| t.to_string()).collect(),
            })
        })
        .collect()
}

/// Runs the file-system checks.
pub fn check(spec: &Value, r: &mut Report) {
    let root_ro = spec["root"]["readonly"].as_bool().unwrap_or(false);
    r.eq("root.readonly", is_readonly("/"), Some(root_ro));
    for p in spec["linux"]["readonlyPaths"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let p = p.as_str().unwrap_or_default();
        let name = format!("readonlyPaths {p}");
        match std::fs::symlink_metadata(p) {
            Err(_) => r.skip(&name, "does not exist in this container"),
            Ok(_) => r.eq(&name, is_readonly(p), Some(true)),
        }
    }
    for p in spec["linux"]["maskedPaths"]
        .as_array()
        .into_iter()
        .flatten()
    {
        check_masked(p.as_str().unwrap_or_default(), r);
    }
    check_mounts(spec, r);
    check_devices(spec, r);
    check_dev_symlinks(r);
    check_pty(spec, r);
    check_root_propagation(spec, r);
}

/// The standard /dev symlinks runtimes create.
fn check_dev_symlinks(r: &mut Report) {
    for (link, target) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
        ("/dev/ptmx", "pts/ptmx"),
    ] {
        let got = std::fs::read_link(link).map(|t| t.display().to_string());
        r.eq(
            &format!("symlink {link}"),
            got.ok(),
            Some(target.to_owned()),
        );
    }
}

/// With a devpts mount on /dev/pts: /dev/ptmx hands out a pty whose slave
/// shows up in that /dev/pts (the container's own devpts instance).
fn check_pty(spec: &Value, r: &mut Report) {
    let has_devpts = spec["mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|m| m["destination"] == "/dev/pts" && m["type"] == "devpts");
    if !has_devpts {
        return r.skip("pty", "no devpts mount on /dev/pts in the spec");
    }
    let master = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open("/dev/ptmx")
    {
        Ok(f) => f,
        Err(e) => return r.fail("pty", format!("open /dev/ptmx: {e}")),
    };
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int to the pointer we pass.
    let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        return r.fail("pty", format!("TIOCGPTN on /dev/ptmx: {e}"));
    }
    let slave = format!("/dev/pts/{n}");
    let is_pty = std::fs::metadata(&slave)
        .map(|m| m.file_type().is_char_device() && libc::major(m.rdev()) == 136)
        .unwrap_or(false);
    r.eq("pty", (slave.clone(), is_pty), (slave, true));
}

/// `linux.rootfsPropagation` shows as the optional fields of `/`.
fn check_root_propagation(spec: &Value, r: &mut Report) {
    let Some(prop) = spec["linux"]["rootfsPropagation"].as_str() else {
        return;
    };
    let table = mountinfo();
    let Some(root) = table.iter().rev().find(|e| e.mount_point == "/") else {
        return r.fail("rootfsPropagation", "no / in mountinfo");
    };
    check_propagation("rootfsPropagation", root, prop, r);
}

/// The propagation type mountinfo shows for a mount.
fn propagation_of(m: &MountInfo) -> &'static str {
    let has = |p: &str| m.tags.iter().any(|t| t.starts_with(p));
    if has("shared:") {
        "shared"
    } else if has("master:") {
        "slave"
    } else if has("unbindable") {
        "unbindable"
    } else {
        "private"
    }
}

/// Is `option` (`rshared`, `private`, ...) the propagation of `m`?
fn check_propagation(name: &str, m: &MountInfo, option: &str, r: &mut Report) {
    let got = propagation_of(m);
    let want = option.trim_start_matches('r');
    // A slave of a private mount has no master: it looks private.
    if want == "slave" && got == "private" {
        return r.pass(name, "slave (of a private parent: shows as private)");
    }
    r.eq(name, got, want);
}

/// The propagation options of a mount (the last one wins, as in mount(8)).
const PROPAGATION: [&str; 8] = [
    "shared",
    "rshared",
    "slave",
    "rslave",
    "private",
    "rprivate",
    "unbindable",
    "runbindable",
];

fn check_masked(p: &str, r: &mut Report) {
    let name = format!("maskedPaths {p}");
    match std::fs::metadata(p) {
        Err(_) => r.skip(&name, "does not exist in this container"),
        Ok(m) if m.is_dir() => {
            let n = std::fs::read_dir(p).map(|d| d.count()).ok();
            r.eq(&name, n, Some(0));
        }
        Ok(m) => {
            // A file is masked by binding /dev/null over it.
            let is_null = m.file_type().is_char_device() && m.rdev() == libc::makedev(1, 3);
            let content = std::fs::read(p).map(|c| c.len()).ok();
            r.eq(&name, (is_null, content), (true, Some(0)));
        }
    }
}

fn check_mounts(spec: &Value, r: &mut Report) {
    let table = mountinfo();
    for m in spec["mounts"].as_array().into_iter().flatten() {
        let dest = m["destination"].as_str().unwrap_or_default();
        let name = format!("mount {dest}");
        let Some(found) = table.iter().rev().find(|e| e.mount_point == dest) else {
            r.fail(&name, "not mounted");
            continue;
        };
        let opts: Vec<&str> = m["options"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|o| o.as_str())
            .collect();
        let is_bind = opts.iter().any(|o| *o == "bind" || *o == "rbind");
        let typ = m["type"].as_str().unwrap_or("bind");
        if typ.starts_with("cgroup") && found.fstype != "cgroup2" {
            r.skip(
                &name,
                format!(
                    "SKIPPED: cgroup v1 layout ({}), options not compared",
                    found.fstype
                ),
            );
            continue;
        }
        let mut problems = Vec::new();
        if !is_bind && typ != "bind" && !typ.starts_with("cgroup") && found.fstype != typ {
            problems.push(format!("fstype {} instead of {typ}", found.fstype));
        }
        for flag in ["ro", "nosuid", "nodev", "noexec"] {
            if opts.contains(&flag) && !found.options.iter().any(|o| o == flag) {
                problems.push(format!("missing {flag}"));
            }
        }
        if opts.contains(&"rw") && found.options.iter().any(|o| o == "ro") {
            problems.push("ro instead of rw".into());
        }
        if let Some(prop) = opts.iter().rev().find(|o| PROPAGATION.contains(o)) {
            check_propagation(&format!("{name} propagation"), found, prop, r);
        }
        if problems.is_empty() {
            r.pass(
                &name,
                format!("{} {}", found.fstype, found.options.join(",")),
            );
        } else {
            r.fail(&name, problems.join("; "));
        }
    }
}

fn check_devices(spec: &Value, r: &mut Report) {
    let defaults = [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ];
    for (path, major, minor) in defaults {
        let got = std::fs::metadata(path)
            .ok()
            .map(|m| (m.file_type().is_char_device(), m.rdev()));
        r.eq(
            &format!("device {path}"),
            got,
            Some((true, libc::makedev(major, minor))),
        );
    }
    for d in spec["linux"]["devices"].as_array().into_iter().flatten() {
        let path = d["path"].as_str().unwrap_or_default();
        let (major, minor) = (
            d["major"].as_u64().unwrap_or(0) as u32,
            d["minor"].as_u64().unwrap_or(0) as u32,
        );
        let want_char = d["type"].as_str() != Some("b");
        let got = std::fs::metadata(path).ok().map(|m| {
            let is_char = m.file_type().is_char_device();
            let mode = d["fileMode"].as_u64().map(|_| m.mode() & 0o7777);
            let ids = d["uid"].as_u64().map(|_| (m.uid(), m.gid()));
            (is_char, m.rdev(), mode, ids)
        });
        let want = (
            want_char,
            libc::makedev(major, minor),
            d["fileMode"].as_u64().map(|m| m as u32 & 0o7777),
            d["uid"]
                .as_u64()
                .map(|u| (u as u32, d["gid"].as_u64().unwrap_or(0) as u32)),
        );
        r.eq(&format!("linux.devices {path}"), got, Some(want));
    }
}
