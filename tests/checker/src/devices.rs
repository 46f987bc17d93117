//! `linux.resources.devices`: the device cgroup (cgroup v2: an eBPF
//! program; v1: `devices.allow`/`devices.deny`) lets the container open
//! exactly the device nodes the rules allow.
//!
//! For every character or block device node directly in `/dev` this opens
//! it for reading and for writing and compares the outcome with what the
//! rules say: denied = `EPERM` from the device cgroup (checked before the
//! driver is reached); allowed = anything but `EPERM` (a node without a
//! driver gives `ENXIO`, `/dev/tty` without a controlling terminal `ENXIO`).
//! Nodes the file mode already refuses (`EACCES`) say nothing about the
//! cgroup and are skipped, loudly.
//!
//! The expected verdict follows runc and youki: the spec's rules, then the
//! runtime's default rules appended (so the default devices stay usable
//! whatever the spec says); a rule of type `a` (or without a type) resets
//! the list and sets the default verdict; otherwise the last matching rule
//! wins and nothing matching means denied (cgroup v2's default; on cgroup v1
//! this needs the usual leading deny-all rule, which runc's spec has).

use std::os::unix::fs::{FileTypeExt, MetadataExt};

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use serde_json::{json, Value};

use crate::report::Report;

/// One device cgroup rule.
struct Rule {
    allow: bool,
    /// `a`, `b` or `c`.
    typ: char,
    /// `None` = any.
    major: Option<u64>,
    /// `None` = any.
    minor: Option<u64>,
    access: String,
}

impl Rule {
    fn from_json(v: &Value) -> Self {
        // A negative number (-1) means any, as in runc.
        let number = |k: &str| v[k].as_u64();
        Self {
            allow: v["allow"].as_bool().unwrap_or(false),
            typ: v["type"]
                .as_str()
                .and_then(|t| t.chars().next())
                .unwrap_or('a'),
            major: number("major"),
            minor: number("minor"),
            // No access = the rule matches nothing (youki drops it).
            access: v["access"].as_str().unwrap_or_default().to_owned(),
        }
    }

    fn matches(&self, typ: char, major: u64, minor: u64, access: char) -> bool {
        self.typ == typ
            && self.major.is_none_or(|m| m == major)
            && self.minor.is_none_or(|m| m == minor)
            && self.access.contains(access)
    }
}

/// The rules runc and youki append after the spec's.
fn default_rules() -> Vec<Rule> {
    let mut rules: Vec<Rule> = [
        json!({"allow": true, "type": "c", "access": "m"}),
        json!({"allow": true, "type": "b", "access": "m"}),
        json!({"allow": true, "type": "c", "major": 5, "minor": 1, "access": "rwm"}),
        json!({"allow": true, "type": "c", "major": 136, "access": "rwm"}),
        json!({"allow": true, "type": "c", "major": 5, "minor": 2, "access": "rwm"}),
        json!({"allow": true, "type": "c", "major": 10, "minor": 200, "access": "rwm"}),
    ]
    .iter()
    .map(Rule::from_json)
    .collect();
    // null, zero, full, tty, urandom, random
    for (major, minor) in [(1, 3), (1, 5), (1, 7), (5, 0), (1, 9), (1, 8)] {
        rules.push(Rule::from_json(&json!({
            "allow": true, "type": "c", "major": major, "minor": minor, "access": "rwm"
        })));
    }
    rules
}

/// Does the rule list allow `access` (`r` or `w`) to the device?
fn allowed(rules: &[Rule], typ: char, major: u64, minor: u64, access: char) -> bool {
    let mut default = false;
    let mut active: Vec<&Rule> = Vec::new();
    for rule in rules {
        if rule.typ == 'a' {
            default = rule.allow;
            active.clear();
        } else if !rule.access.is_empty() {
            active.push(rule);
        }
    }
    active
        .iter()
        .rev()
        .find(|r| r.matches(typ, major, minor, access))
        .map_or(default, |r| r.allow)
}

/// Runs the device cgroup checks.
pub fn check(spec: &Value, r: &mut Report) {
    let mut rules: Vec<Rule> = spec["linux"]["resources"]["devices"]
        .as_array()
        .into_iter()
        .flatten()
        .map(Rule::from_json)
        .collect();
    rules.extend(default_rules());
    let Ok(entries) = std::fs::read_dir("/dev") else {
        r.fail("device cgroup", "cannot list /dev");
        return;
    };
    let mut nodes: Vec<_> = entries
        .flatten()
        .filter_map(|e| {
            let meta = std::fs::symlink_metadata(e.path()).ok()?;
            let ft = meta.file_type();
            let typ = if ft.is_char_device() {
                'c'
            } else if ft.is_block_device() {
                'b'
            } else {
                return None;
            };
            Some((e.path(), typ, meta.rdev()))
        })
        .collect();
    nodes.sort();
    for (path, typ, rdev) in nodes {
        let (major, minor) = (u64::from(libc::major(rdev)), u64::from(libc::minor(rdev)));
        for (access, flag) in [('r', OFlag::O_RDONLY), ('w', OFlag::O_WRONLY)] {
            let name = format!(
                "device cgroup {} {typ} {major}:{minor} {access}",
                path.display()
            );
            let want_allowed = allowed(&rules, typ, major, minor, access);
            let flags = flag | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
            let got = open(&path, flags, Mode::empty()).map(|fd| {
                let _ = nix::unistd::close(fd);
            });
            match got {
                Err(Errno::EACCES) => {
                    r.skip(&name, "the file mode refuses it (EACCES) before the cgroup");
                }
                Err(Errno::EPERM) if !want_allowed => r.pass(&name, "denied (EPERM)"),
                Err(Errno::EPERM) => r.fail(&name, "expected allowed, got EPERM"),
                Ok(()) if want_allowed => r.pass(&name, "allowed (opened)"),
                Err(e) if want_allowed => r.pass(&name, format!("allowed (driver said {e})")),
                Ok(()) => r.fail(&name, "expected EPERM, but it opened"),
                Err(e) => r.fail(&name, format!("expected EPERM, got {e}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(spec: Value) -> Vec<Rule> {
        let mut v: Vec<Rule> = spec
            .as_array()
            .unwrap()
            .iter()
            .map(Rule::from_json)
            .collect();
        v.extend(default_rules());
        v
    }

    #[test]
    fn deny_all_keeps_the_defaults() {
        let r = rules(json!([{"allow": false, "access": "rwm"}]));
        assert!(allowed(&r, 'c', 1, 3, 'w'));
        assert!(!allowed(&r, 'c', 1, 11, 'w'));
        assert!(!allowed(&r, 'b', 8, 0, 'r'));
    }

    #[test]
    fn specific_rules_and_wildcards() {
        let r = rules(json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 120, "minor": 1, "access": "r"},
            {"allow": true, "type": "b", "major": 120, "minor": -1, "access": "rw"}
        ]));
        assert!(allowed(&r, 'c', 120, 1, 'r'));
        assert!(!allowed(&r, 'c', 120, 1, 'w'));
        assert!(allowed(&r, 'b', 120, 7, 'w'));
        assert!(!allowed(&r, 'c', 120, 7, 'r'));
    }

    #[test]
    fn a_spec_cannot_deny_a_default_device() {
        let r = rules(json!([{"allow": false, "type": "c", "major": 1, "minor": 3}]));
        assert!(allowed(&r, 'c', 1, 3, 'r'));
    }
}
