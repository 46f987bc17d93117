//! A podman-style test network for guest tests: a named network namespace
//! holding a veth (`eth0`) whose peer sits on a host bridge, as CNI's
//! bridge plugin makes it, and the spec edit that joins it.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::process::run_ok;

/// A podman-style network: a bridge on the host side (`10.99.N.1/24`) and
/// a named network namespace with a veth (`eth0`, `10.99.N.2/24`, default
/// route via the bridge). Removed when dropped.
pub struct TestNetwork {
    netns: String,
    bridge: String,
    host_veth: String,
    subnet: u8,
}

fn ip(args: &[&str]) {
    run_ok(
        Command::new("ip").args(args),
        &format!("ip {}", args.join(" ")),
    );
}

impl TestNetwork {
    /// Makes network `name` on subnet `10.99.<subnet>.0/24` with `mtu`
    /// (cleaning a leftover of the same name first). Panics if `ip` fails.
    pub fn new(name: &str, subnet: u8, mtu: u16) -> Self {
        let net = Self {
            netns: format!("vmrun-{name}"),
            bridge: format!("vbr-{name}"),
            host_veth: format!("vh-{name}"),
            subnet,
        };
        net.cleanup();
        let mtu = mtu.to_string();
        let gw = format!("10.99.{subnet}.1/24");
        let addr = format!("10.99.{subnet}.2/24");
        let via = format!("10.99.{subnet}.1");
        ip(&["netns", "add", &net.netns]);
        ip(&["link", "add", &net.bridge, "mtu", &mtu, "type", "bridge"]);
        ip(&["addr", "add", &gw, "dev", &net.bridge]);
        ip(&["link", "set", &net.bridge, "up"]);
        ip(&[
            "link",
            "add",
            &net.host_veth,
            "mtu",
            &mtu,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &net.netns,
        ]);
        ip(&["link", "set", &net.host_veth, "master", &net.bridge, "up"]);
        // `mtu` before `type veth` sets the host end's only.
        ip(&["-n", &net.netns, "link", "set", "eth0", "mtu", &mtu]);
        ip(&["-n", &net.netns, "addr", "add", &addr, "dev", "eth0"]);
        ip(&["-n", &net.netns, "link", "set", "eth0", "up"]);
        ip(&["-n", &net.netns, "link", "set", "lo", "up"]);
        ip(&["-n", &net.netns, "route", "add", "default", "via", &via]);
        net
    }

    /// The namespace's name (`ip -n NAME`).
    pub fn name(&self) -> &str {
        &self.netns
    }

    /// The namespace's path, for a spec's `linux.namespaces[].path`.
    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.netns)
    }

    /// The bridge's (host side's) address.
    pub fn host_addr(&self) -> String {
        format!("10.99.{}.1", self.subnet)
    }

    /// The veth's address in the namespace (the container's).
    pub fn guest_addr(&self) -> String {
        format!("10.99.{}.2", self.subnet)
    }

    fn cleanup(&self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_veth])
            .status();
    }
}

impl Drop for TestNetwork {
    fn drop(&mut self) {
        self.cleanup();
    }
}

/// Makes `spec` join the network namespace at `path` (a host path).
pub fn join_netns(spec: &mut serde_json::Value, path: &Path) {
    let namespaces = spec["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces");
    namespaces.retain(|ns| ns["type"] != "network");
    namespaces.push(json!({"type": "network", "path": path}));
}
