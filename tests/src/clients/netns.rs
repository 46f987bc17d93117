//! A network namespace of the test's own, where clients, bridges,
//! iptables rules and published ports live (never the machine's own
//! network). Processes enter it with `nsenter --net`, which changes
//! nothing else: mounts (the netns files CNI bind-mounts) stay shared.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::process::run_ok;

/// A named network namespace (`ip netns add`) with `lo` up; deleted on drop.
#[derive(Debug)]
pub struct PrivateNet {
    name: String,
}

impl PrivateNet {
    /// Creates `vmrt-<tag>-<pid>-<n>`. Panics if `ip netns` fails.
    pub fn create(tag: &str) -> Self {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let name = format!("vmrt-{tag}-{}-{n}", std::process::id());
        run_ok(
            Command::new("ip").args(["netns", "add", &name]),
            "ip netns add",
        );
        let net = Self { name };
        run_ok(
            Command::new("ip").args(["-n", &net.name, "link", "set", "lo", "up"]),
            "ip link set lo up in the test's netns",
        );
        net
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its bind-mounted file (`/run/netns/<name>`).
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// `program args...` to run inside the namespace.
    pub fn command(&self, program: &str, args: &[&str]) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net={}", self.path().display()))
            .arg("--")
            .arg(program)
            .args(args);
        command
    }
}

impl Drop for PrivateNet {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
