//! cgroup v2 root set-up: every controller the kernel offers is enabled for
//! the root's children, so containers' cgroups can use them.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Where the cgroup2 hierarchy is mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The `+name` words that enable each controller listed in a
/// `cgroup.controllers` file.
pub fn enable_requests(controllers: &str) -> Vec<String> {
    controllers
        .split_whitespace()
        .map(|name| format!("+{name}"))
        .collect()
}

/// Enables every available controller in `root/cgroup.subtree_control`,
/// one at a time so one refusal does not hide the others. Errors name the
/// controllers that could not be enabled.
pub fn enable_all_controllers(root: &str) -> Result<()> {
    let root = Path::new(root);
    let available = root.join("cgroup.controllers");
    let controllers = fs::read_to_string(&available)
        .with_context(|| format!("reading {}", available.display()))?;
    let control = root.join("cgroup.subtree_control");
    let mut failed = Vec::new();
    for request in enable_requests(&controllers) {
        if let Err(err) = fs::write(&control, &request) {
            failed.push(format!("{request} ({err})"));
        }
    }
    if !failed.is_empty() {
        bail!("writing {}: {}", control.display(), failed.join(", "));
    }
    tracing::debug!("cgroup controllers enabled: {}", controllers.trim());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_one_request_per_controller() {
        assert_eq!(
            enable_requests("cpuset cpu io memory hugetlb pids\n"),
            ["+cpuset", "+cpu", "+io", "+memory", "+hugetlb", "+pids"]
        );
        assert!(enable_requests("\n").is_empty());
    }

    #[test]
    fn a_missing_hierarchy_is_an_error_naming_the_file() {
        let err = enable_all_controllers("/nonexistent/cgroup").unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent/cgroup/cgroup.controllers"));
    }
}
