//! Which runtime the clients drive: vmrun (the default) or runc
//! (`VMRUN_CLIENTS_RUNTIME=runc`, to validate the harness on any host).

use std::path::{Path, PathBuf};

use crate::guest_env::guest_ready;

/// Selects the runtime: `vmrun` (default) or `runc`.
pub const RUNTIME_ENV: &str = "VMRUN_CLIENTS_RUNTIME";

/// The runtime binary the clients are pointed at.
#[derive(Debug, Clone)]
pub struct RuntimeUnderTest {
    /// `vmrun` or `runc`, for messages.
    pub name: &'static str,
    /// Its absolute path (what podman and containerd are given).
    pub bin: PathBuf,
}

impl RuntimeUnderTest {
    /// The runtime for the test named `test`, or `None` after a loud
    /// `SKIPPED:` line: vmrun needs a host that runs guests (a failure
    /// instead under `VMRUN_REQUIRE_GUEST=1`); runc runs anywhere. Panics
    /// if a client the test needs (`tools`) is not installed.
    pub fn for_test(test: &str, tools: &[&str]) -> Option<Self> {
        let chosen = match std::env::var(RUNTIME_ENV).as_deref() {
            Ok("runc") => Self {
                name: "runc",
                bin: find_in_path("runc")
                    .unwrap_or_else(|| panic!("{test}: runc is not installed")),
            },
            Ok("vmrun") | Err(_) => {
                guest_ready(test)?;
                let bin = crate::vmrun_bin();
                Self {
                    name: "vmrun",
                    bin: std::fs::canonicalize(&bin)
                        .unwrap_or_else(|e| panic!("{}: {e}", bin.display())),
                }
            }
            Ok(other) => panic!("{RUNTIME_ENV}={other}: want `vmrun` or `runc`"),
        };
        for tool in tools {
            assert!(
                find_in_path(tool).is_some(),
                "{test} needs `{tool}`: apt-get install {}",
                package_of(tool)
            );
        }
        Some(chosen)
    }

    /// True when the runtime is vmrun (the default).
    pub fn is_vmrun(&self) -> bool {
        self.name == "vmrun"
    }
}

/// The Debian package that installs `tool`.
fn package_of(tool: &str) -> &str {
    match tool {
        "ctr" | "containerd" | "containerd-shim-runc-v2" => "containerd",
        "nsenter" => "util-linux",
        "ip" => "iproute2",
        other => other,
    }
}

/// `name` found in `$PATH` (or the sbin directories root has).
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sh_is_found_and_a_made_up_tool_is_not() {
        assert!(find_in_path("sh").is_some());
        assert!(find_in_path("no-such-tool-vmrun-xyz").is_none());
    }
}
