//! Fixtures for the host-side tests of the host's world (root only; a test
//! skips loudly without what it needs): a network namespace of the test's
//! own with a veth pair, and a thread in a private mount namespace.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{json, Value};

use crate::runtime::bundle::{Bundle, HostRootfs};

/// Whether this process may make namespaces, taps and mounts (root, with
/// iproute2 and /dev/net/tun); prints why a test skips otherwise.
pub fn can_plumb(test: &str) -> bool {
    let missing = if !nix::unistd::geteuid().is_root() {
        Some("not root")
    } else if !std::path::Path::new("/dev/net/tun").exists() {
        Some("no /dev/net/tun")
    } else if Command::new("tc").arg("-V").output().is_err()
        || Command::new("ip").arg("-V").output().is_err()
    {
        Some("no iproute2 (ip, tc)")
    } else {
        None
    };
    if let Some(why) = missing {
        eprintln!("SKIPPED {test}: {why}");
    }
    missing.is_none()
}

/// Runs `program args...`; panics with its stderr if it fails.
fn run_ok(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A named network namespace (`ip netns add`) holding a veth pair `eth0`
/// (`10.77.0.2/24`, `2001:db8::2/64`, default route via `10.77.0.1`) and
/// `eth1` (MTU 1400), as CNI leaves one; deleted on drop.
#[derive(Debug)]
pub struct TestNetns {
    name: String,
}

impl TestNetns {
    /// Makes `vmrun-ut-<pid>-<n>`.
    pub fn new() -> Self {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let net = Self {
            name: format!("vmrun-ut-{}-{n}", std::process::id()),
        };
        run_ok("ip", &["netns", "add", &net.name]);
        for args in [
            &[
                "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
            ][..],
            &["link", "set", "eth1", "mtu", "1400", "up"],
            &["link", "set", "eth0", "up"],
            &["addr", "add", "10.77.0.2/24", "dev", "eth0"],
            &[
                "-6",
                "addr",
                "add",
                "2001:db8::2/64",
                "dev",
                "eth0",
                "nodad",
            ],
            &["route", "add", "default", "via", "10.77.0.1"],
        ] {
            let mut all = vec!["-n", net.name.as_str()];
            all.extend_from_slice(args);
            run_ok("ip", &all);
        }
        net
    }

    /// Its file (`/run/netns/<name>`).
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// The qdisc kinds on `dev` (`tc -j qdisc show dev X` in the namespace).
    pub fn qdiscs(&self, dev: &str) -> Vec<String> {
        let out = run_ok(
            "ip",
            &[
                "netns", "exec", &self.name, "tc", "-j", "qdisc", "show", "dev", dev,
            ],
        );
        let qdiscs: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
        qdiscs
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|q| q["kind"].as_str().map(String::from))
            .collect()
    }

    /// Whether `eth0` or `eth1` has an ingress qdisc.
    pub fn has_ingress(&self) -> bool {
        ["eth0", "eth1"]
            .iter()
            .any(|dev| self.qdiscs(dev).iter().any(|k| k == "ingress"))
    }

    /// The namespace's interface names.
    pub fn links(&self) -> Vec<String> {
        let out = run_ok("ip", &["-n", &self.name, "-j", "link", "show"]);
        let links: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
        links
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["ifname"].as_str().map(String::from))
            .collect()
    }

    /// The namespace's interface names once no name starts with `prefix`,
    /// or after 2 s. A closed tap lingers while a process that another
    /// test thread forked meanwhile still holds its descriptor (until that
    /// process's `exec` closes it).
    pub fn links_once_gone(&self, prefix: &str) -> Vec<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            let links = self.links();
            if !links.iter().any(|l| l.starts_with(prefix)) || std::time::Instant::now() > deadline
            {
                return links;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A bundle in `dir` (an empty rootfs directory) whose container joins
/// the network namespace at `netns`.
pub fn bundle_in(dir: &Path, netns: &Path) -> Bundle {
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    Bundle {
        dir: dir.to_path_buf(),
        spec: json!({
            "ociVersion": "1.0.2",
            "process": {"args": ["/bin/true"], "cwd": "/"},
            "root": {"path": "rootfs"},
            "linux": {"namespaces": [
                {"type": "mount"},
                {"type": "network", "path": netns}
            ]}
        }),
        rootfs: HostRootfs::Dir(rootfs),
        readonly: false,
    }
}

/// Runs `body` on a thread of its own in a private mount namespace (a
/// slave of this one: mounts made there never reach the host), as the VMM
/// daemon is; its result.
pub fn in_private_mount_namespace<T: Send + 'static>(
    body: impl FnOnce() -> T + Send + 'static,
) -> T {
    std::thread::spawn(move || {
        // unshare(CLONE_NEWNS) gives this thread alone (and threads it
        // starts) the new namespace.
        super::shared_tree::enter_private_mount_namespace()
            .expect("a private mount namespace for the test thread");
        body()
    })
    .join()
    .unwrap_or_else(|p| std::panic::resume_unwind(p))
}
