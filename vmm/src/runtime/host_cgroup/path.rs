//! `linux.cgroupsPath` → the path below each hierarchy's root, as runc
//! reads it: a cgroupfs path (absolute from the hierarchy's root, or
//! relative to the caller's own cgroup; cleaned so `..` cannot climb out),
//! or with `--systemd-cgroup` `slice:prefix:name` → `<slice path>/<prefix>-
//! <name>.scope` (a `name` ending in `.slice` is used as is).

use std::path::PathBuf;

use super::error::HostCgroupError;

/// Where the container's cgroup is, below a hierarchy's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum CgroupPath {
    /// From the hierarchy's root (`/a/b`), never the root itself.
    Absolute(PathBuf),
    /// Below the caller's own cgroup in that hierarchy (`a/b`), never the
    /// caller's cgroup itself.
    Relative(PathBuf),
}

/// Parses `linux.cgroupsPath` (`systemd`: the `--systemd-cgroup` form).
pub(super) fn parse(cgroups_path: &str, systemd: bool) -> Result<CgroupPath, HostCgroupError> {
    let invalid = |reason: &str| HostCgroupError::InvalidPath {
        path: cgroups_path.to_owned(),
        reason: reason.to_owned(),
    };
    if cgroups_path.is_empty() {
        return Err(invalid(
            "empty (the caller picks the default, see default_cgroups_path)",
        ));
    }
    if systemd {
        let parts: Vec<&str> = cgroups_path.split(':').collect();
        let [slice, prefix, name] = parts[..] else {
            return Err(invalid(
                "expected cgroupsPath to be of format \"slice:prefix:name\" for systemd cgroups",
            ));
        };
        if name.is_empty() || name.contains('/') || prefix.contains('/') {
            return Err(invalid("the unit name must be non-empty and without '/'"));
        }
        let slice = if slice.is_empty() {
            "system.slice"
        } else {
            slice
        };
        let parent = expand_slice(slice).ok_or_else(|| invalid("invalid slice name"))?;
        let unit = if name.ends_with(".slice") {
            name.to_owned()
        } else {
            format!("{prefix}-{name}.scope")
        };
        return Ok(CgroupPath::Absolute(PathBuf::from(parent).join(unit)));
    }
    let absolute = cgroups_path.starts_with('/');
    let cleaned = clean(cgroups_path);
    if cleaned.is_empty() {
        return Err(invalid(if absolute {
            "names the root cgroup"
        } else {
            "names the caller's own cgroup"
        }));
    }
    Ok(if absolute {
        CgroupPath::Absolute(PathBuf::from(format!("/{cleaned}")))
    } else {
        CgroupPath::Relative(PathBuf::from(cleaned))
    })
}

/// Lexically cleans `path` as if it were absolute (runc's `CleanPath`):
/// `.` and empty components go, `..` removes the previous component and
/// stops at the top. Returns the components joined by `/`, no leading `/`.
fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

/// systemd's slice → path: `a-b-c.slice` → `/a.slice/a-b.slice/a-b-c.slice`,
/// `-.slice` → `/` (runc's `ExpandSlice`). `None` if not a valid slice
/// name.
fn expand_slice(slice: &str) -> Option<String> {
    const SUFFIX: &str = ".slice";
    let name = slice.strip_suffix(SUFFIX)?;
    if slice.contains('/') {
        return None;
    }
    if name == "-" {
        return Some("/".to_owned());
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for component in name.split('-') {
        if component.is_empty() {
            return None;
        }
        path.push_str(&format!("/{prefix}{component}{SUFFIX}"));
        prefix.push_str(component);
        prefix.push('-');
    }
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn abs(p: &str) -> CgroupPath {
        CgroupPath::Absolute(PathBuf::from(p))
    }

    #[test]
    fn cgroupfs_paths_are_cleaned_like_runc() {
        assert_eq!(parse("/a/b/c", false).unwrap(), abs("/a/b/c"));
        assert_eq!(parse("/a/../../b//./c/", false).unwrap(), abs("/b/c"));
        assert_eq!(
            parse("../../x/y", false).unwrap(),
            CgroupPath::Relative(PathBuf::from("x/y"))
        );
        assert_eq!(
            parse("kubepods/pod1/c1", false).unwrap(),
            CgroupPath::Relative(PathBuf::from("kubepods/pod1/c1"))
        );
        // Colons mean nothing without --systemd-cgroup.
        assert_eq!(parse("/a:b:c", false).unwrap(), abs("/a:b:c"));
    }

    #[test]
    fn the_root_and_the_callers_own_cgroup_are_refused() {
        for (path, why) in [
            ("/", "root cgroup"),
            ("/a/..", "root cgroup"),
            (".", "own cgroup"),
            ("a/../..", "own cgroup"),
            ("", "empty"),
        ] {
            let err = parse(path, false).unwrap_err().to_string();
            assert!(err.contains(why), "{path:?}: {err}");
            assert!(err.contains("linux.cgroupsPath"), "{err}");
        }
    }

    #[test]
    fn systemd_paths_map_to_scopes_in_slices() {
        assert_eq!(
            parse("system.slice:docker:abc", true).unwrap(),
            abs("/system.slice/docker-abc.scope")
        );
        assert_eq!(
            parse("machine-libpod_pod_1.slice:libpod:c1", true).unwrap(),
            abs("/machine.slice/machine-libpod_pod_1.slice/libpod-c1.scope")
        );
        assert_eq!(
            parse("a-b-c.slice:p:n", true).unwrap(),
            abs("/a.slice/a-b.slice/a-b-c.slice/p-n.scope")
        );
        assert_eq!(
            parse(":vmrun:c1", true).unwrap(),
            abs("/system.slice/vmrun-c1.scope")
        );
        assert_eq!(parse("-.slice:p:n", true).unwrap(), abs("/p-n.scope"));
        assert_eq!(
            parse("user.slice:p:child.slice", true).unwrap(),
            abs("/user.slice/child.slice")
        );
    }

    #[test]
    fn bad_systemd_paths_are_refused_with_the_reason() {
        for (path, why) in [
            ("/a/b", "slice:prefix:name"),
            ("a:b", "slice:prefix:name"),
            ("a:b:c:d", "slice:prefix:name"),
            ("system:p:n", "invalid slice name"),
            ("a--b.slice:p:n", "invalid slice name"),
            ("-a.slice:p:n", "invalid slice name"),
            ("a/b.slice:p:n", "invalid slice name"),
            (".slice:p:n", "invalid slice name"),
            ("system.slice:p:", "unit name"),
            ("system.slice:p:a/b", "unit name"),
        ] {
            let err = parse(path, true).unwrap_err().to_string();
            assert!(err.contains(why), "{path:?}: {err}");
        }
    }
}
