//! The container's host network namespace, plumbed into the microVM the
//! way Kata and firecracker-containerd do it: for each non-loopback
//! interface of that namespace (the veth CNI or netavark put there) a tap
//! with the same MTU is opened inside the namespace, traffic is redirected
//! both ways between tap and interface (an ingress qdisc on each and a
//! match-all u32 filter with `mirred egress redirect`), the guest NIC gets
//! the interface's MAC, and the agent gives the container's interface in
//! the guest the same name, addresses and routes.
//!
//! The namespace is entered by a thread of its own (setns is per thread),
//! which opens the taps there and runs iproute2's `ip` and `tc` (children
//! inherit the thread's namespace). The taps are not persistent: they
//! vanish with the VMM's descriptors, however the VMM ends. The qdiscs
//! stay on the interfaces until [`unplumb`] (by `delete`) or until the
//! namespace is destroyed; a plumbing that fails part way removes the ones
//! it made, and one that succeeded is held by an [`UnplumbGuard`] until
//! the container exists and its record is handed over.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};
use serde_json::Value;
use vmrun_protocol::{NetInterface, NetRoute};
use vmrun_virtio::net::tap::{Tap, TapError};

use super::NetworkRecord;

/// Errors plumbing the network namespace.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The path cannot be opened.
    #[error("linux.namespaces[{0}].path: {1}: cannot open")]
    Open(usize, PathBuf, #[source] std::io::Error),
    /// The path is not a namespace file.
    #[error("linux.namespaces[{0}].path: {1} is not a namespace file")]
    NotANamespace(usize, PathBuf),
    /// The path names a namespace of another type.
    #[error("linux.namespaces[{0}].path: {1} is a {2} namespace, not network")]
    WrongType(usize, PathBuf, &'static str),
    /// The namespace could not be entered.
    #[error("cannot enter the network namespace {0}")]
    Enter(PathBuf, #[source] nix::Error),
    /// An iproute2 command failed.
    #[error("`{command}` in the container's network namespace failed: {output}")]
    Command {
        /// The command line.
        command: String,
        /// Its stderr (or why it could not run).
        output: String,
    },
    /// iproute2's JSON was not what it documents.
    #[error("cannot read `{0}`'s output")]
    Parse(String),
    /// A tap could not be opened.
    #[error("cannot open the tap {0}")]
    Tap(String, #[source] vmrun_virtio::net::tap::TapError),
    /// The host has no tun device.
    #[error("this host has no tun device (/dev/net/tun): load the tun module to give microVMs a network")]
    NoTun,
    /// The path names the VMM's own (the host's) network namespace.
    #[error("linux.namespaces[{0}].path {1}: this is the host's own network namespace; a microVM is plumbed into a namespace of the container's own (as CNI makes)")]
    HostNetns(usize, PathBuf),
    /// The helper thread died.
    #[error("the network namespace thread failed")]
    Thread,
}

/// One interface plumbed to the VM.
#[derive(Debug)]
pub struct PlumbedInterface {
    /// How the agent configures it.
    pub interface: NetInterface,
    /// The MAC as bytes (for the virtio-net device).
    pub mac: [u8; 6],
    /// The tap's descriptor (for the virtio-net device).
    pub tap: OwnedFd,
    /// The interface's IPv6 addresses, which the guest does not get.
    pub ipv6_not_passed: Vec<String>,
}

/// Prefix of the taps' names (`vmtap<N>`, unique in the namespace).
const TAP_PREFIX: &str = "vmtap";

/// Runs a command in the calling thread's network namespace; its stdout.
fn run(program: &str, args: &[&str]) -> Result<String, NetworkError> {
    let command = format!("{program} {}", args.join(" "));
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| NetworkError::Command {
            command: command.clone(),
            output: e.to_string(),
        })?;
    if !output.status.success() {
        return Err(NetworkError::Command {
            command,
            output: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs one command in the calling thread's network namespace and returns
/// its stdout: [`run`], or in tests a stand-in that makes a step fail.
type Runner = dyn FnMut(&str, &[&str]) -> Result<String, NetworkError> + Send;

/// `program args...`'s stdout (through `run`) as JSON.
fn json(run: &mut Runner, program: &str, args: &[&str]) -> Result<Value, NetworkError> {
    let text = run(program, args)?;
    serde_json::from_str(&text)
        .map_err(|_| NetworkError::Parse(format!("{program} {}", args.join(" "))))
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// The interface's addresses (CIDR) from `ip -j addr show dev X` whose
/// `addr_info` entry `keep` accepts.
fn addresses_where(addr_show: &Value, keep: impl Fn(&Value) -> bool) -> Vec<String> {
    addr_show
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|link| link["addr_info"].as_array().into_iter().flatten())
        .filter(|a| keep(a))
        .filter_map(|a| {
            Some(format!(
                "{}/{}",
                a["local"].as_str()?,
                a["prefixlen"].as_u64()?
            ))
        })
        .collect()
}

/// The interface's IPv4 addresses (CIDR) from `ip -j addr show dev X`.
pub fn addresses(addr_show: &Value) -> Vec<String> {
    addresses_where(addr_show, |a| a["family"] == "inet")
}

/// The interface's IPv6 addresses (CIDR) from `ip -j addr show dev X`
/// that the guest does not get, minus the link-local ones (the kernel
/// makes one for every interface: nothing a network configured).
pub fn ipv6_addresses(addr_show: &Value) -> Vec<String> {
    addresses_where(addr_show, |a| {
        a["family"] == "inet6" && a["scope"] != "link"
    })
}

/// The routes through an interface from `ip -j route show dev X`, minus
/// the ones the kernel makes for its addresses.
pub fn routes(route_show: &Value) -> Vec<NetRoute> {
    route_show
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["protocol"] != "kernel")
        .filter_map(|r| {
            let dst = r["dst"].as_str()?;
            Some(NetRoute {
                destination: if dst == "default" {
                    "0.0.0.0/0".into()
                } else if dst.contains('/') {
                    dst.into()
                } else {
                    format!("{dst}/32")
                },
                gateway: r["gateway"].as_str().map(String::from),
            })
        })
        .collect()
}

/// Checks that `path` holds a network namespace.
fn open_netns(index: usize, path: &Path) -> Result<File, NetworkError> {
    let file = File::open(path).map_err(|e| NetworkError::Open(index, path.to_path_buf(), e))?;
    // NS_GET_NSTYPE = _IO(0xb7, 0x3).
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    // SAFETY: NS_GET_NSTYPE takes no argument and returns the type.
    let kind = unsafe { libc::ioctl(file.as_raw_fd(), NS_GET_NSTYPE) };
    if kind < 0 {
        return Err(NetworkError::NotANamespace(index, path.to_path_buf()));
    }
    if kind != libc::CLONE_NEWNET {
        return Err(NetworkError::WrongType(
            index,
            path.to_path_buf(),
            namespace_type_name(kind),
        ));
    }
    Ok(file)
}

/// The `linux.namespaces[].type` of a `CLONE_NEW*` flag.
fn namespace_type_name(flag: libc::c_int) -> &'static str {
    match flag {
        libc::CLONE_NEWNS => "mount",
        libc::CLONE_NEWUTS => "uts",
        libc::CLONE_NEWIPC => "ipc",
        libc::CLONE_NEWPID => "pid",
        libc::CLONE_NEWUSER => "user",
        libc::CLONE_NEWCGROUP => "cgroup",
        0x80 => "time", // CLONE_NEWTIME
        _ => "unknown",
    }
}

/// Plumbs every non-loopback interface of the network namespace at `path`
/// (entry `index` of `linux.namespaces`) to a tap (see the module docs).
/// On error nothing is left in the namespace: the taps are closed and the
/// qdiscs put on its interfaces so far are removed. IPv6 addresses of an
/// interface are not passed on (the guest kernel has no IPv6): they are
/// logged as a warning naming the interface.
pub fn plumb(index: usize, path: &Path) -> Result<Vec<PlumbedInterface>, NetworkError> {
    let plumbed = plumb_with(index, path, Box::new(run))?;
    for p in &plumbed {
        warn_ipv6_not_passed(&p.interface.name, &p.ipv6_not_passed);
    }
    Ok(plumbed)
}

/// [`plumb`] with the commands run by `runner`.
fn plumb_with(
    index: usize,
    path: &Path,
    mut runner: Box<Runner>,
) -> Result<Vec<PlumbedInterface>, NetworkError> {
    let netns = open_netns(index, path)?;
    // Never plumb the host's own interfaces (a path such as /proc/1/ns/net
    // or the VMM's own): that would redirect the host's traffic into a VM.
    let own = std::fs::metadata("/proc/self/ns/net").ok();
    let given = netns.metadata().ok();
    if let (Some(own), Some(given)) = (own, given) {
        use std::os::unix::fs::MetadataExt;
        if (own.dev(), own.ino()) == (given.dev(), given.ino()) {
            return Err(NetworkError::HostNetns(index, path.to_path_buf()));
        }
    }
    let path = path.to_path_buf();
    std::thread::Builder::new()
        .name("netns".into())
        .spawn(move || {
            setns(&netns, CloneFlags::CLONE_NEWNET).map_err(|e| NetworkError::Enter(path, e))?;
            plumb_here(&mut *runner)
        })
        .map_err(|_| NetworkError::Thread)?
        .join()
        .map_err(|_| NetworkError::Thread)?
}

/// Logs the IPv6 addresses of `interface` that the guest does not get.
fn warn_ipv6_not_passed(interface: &str, addresses: &[String]) {
    if !addresses.is_empty() {
        tracing::warn!(
            "network interface {interface}: IPv6 addresses {} are not passed to the microVM \
             (its kernel has no IPv6); the container has IPv4 only",
            addresses.join(", ")
        );
    }
}

/// How long [`open_tap`] waits for a closed tap of the same name to go.
const TAP_BUSY_WAIT: Duration = Duration::from_secs(2);

/// Opens tap `name` in the calling thread's namespace. A tap closed a
/// moment ago can still be attached (TUNSETIFF: EBUSY) while a process
/// forked meanwhile holds a copy of its descriptor until its `exec` closes
/// it: that is waited out, up to [`TAP_BUSY_WAIT`].
fn open_tap(name: &str) -> Result<Tap, NetworkError> {
    let started = Instant::now();
    loop {
        match Tap::open(name) {
            Ok(tap) => return Ok(tap),
            Err(TapError::Open(io)) if io.kind() == std::io::ErrorKind::NotFound => {
                return Err(NetworkError::NoTun)
            }
            Err(TapError::SetIff { source, .. })
                if source.raw_os_error() == Some(libc::EBUSY)
                    && started.elapsed() < TAP_BUSY_WAIT =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(other) => return Err(NetworkError::Tap(name.to_string(), other)),
        }
    }
}

/// The qdiscs [`plumb_here`] put on the namespace's interfaces so far,
/// removed when dropped (an error or a panic part way) unless disarmed.
struct QdiscUndo {
    interfaces: Vec<String>,
}

impl QdiscUndo {
    /// Everything plumbed: the qdiscs stay.
    fn disarm(mut self) {
        self.interfaces.clear();
    }
}

impl Drop for QdiscUndo {
    fn drop(&mut self) {
        unplumb_here(&self.interfaces);
    }
}

/// [`plumb`], in the namespace the calling thread is in.
fn plumb_here(run: &mut Runner) -> Result<Vec<PlumbedInterface>, NetworkError> {
    let links = json(run, "ip", &["-j", "link", "show"])?;
    // Declared before the taps: on error they are closed (and their own
    // qdiscs gone with them) before the interfaces' qdiscs are removed.
    let mut undo = QdiscUndo {
        interfaces: Vec::new(),
    };
    let mut plumbed = Vec::new();
    for link in links.as_array().into_iter().flatten() {
        let (Some(name), Some(mac_text)) = (link["ifname"].as_str(), link["address"].as_str())
        else {
            continue;
        };
        if link["link_type"] != "ether" || name.starts_with(TAP_PREFIX) {
            continue;
        }
        let Some(mac) = parse_mac(mac_text) else {
            continue;
        };
        let mtu = link["mtu"]
            .as_u64()
            .and_then(|m| u16::try_from(m).ok())
            .unwrap_or(1500);
        let tap_name = format!("{TAP_PREFIX}{}", plumbed.len());
        let tap = open_tap(&tap_name)?;
        let mtu_text = mtu.to_string();
        run(
            "ip",
            &["link", "set", "dev", &tap_name, "mtu", &mtu_text, "up"],
        )?;
        // Recorded before the first `tc`: whatever it did is undone.
        undo.interfaces.push(name.to_string());
        for (from, to) in [(name, tap_name.as_str()), (tap_name.as_str(), name)] {
            run("tc", &["qdisc", "replace", "dev", from, "ingress"])?;
            run(
                "tc",
                &[
                    "filter", "add", "dev", from, "parent", "ffff:", "protocol", "all", "u32",
                    "match", "u8", "0", "0", "action", "mirred", "egress", "redirect", "dev", to,
                ],
            )?;
        }
        let addr_show = json(run, "ip", &["-j", "addr", "show", "dev", name])?;
        let interface = NetInterface {
            mac: mac_text.to_string(),
            name: name.to_string(),
            mtu,
            addresses: addresses(&addr_show),
            routes: routes(&json(run, "ip", &["-j", "route", "show", "dev", name])?),
        };
        plumbed.push(PlumbedInterface {
            interface,
            mac,
            tap: OwnedFd::from(tap),
            ipv6_not_passed: ipv6_addresses(&addr_show),
        });
    }
    undo.disarm();
    Ok(plumbed)
}

/// Removes the ingress qdiscs (and with them the redirect filters) from
/// `interfaces` of the calling thread's namespace; one already gone (with
/// its veth) is fine.
fn unplumb_here(interfaces: &[String]) {
    for name in interfaces {
        if let Err(e) = run("tc", &["qdisc", "del", "dev", name, "ingress"]) {
            tracing::debug!("{e}");
        }
    }
}

/// Removes the ingress qdiscs [`plumb`] put on `interfaces` of the
/// namespace at `path` (for `delete`; nothing to do once the namespace is
/// gone).
pub fn unplumb(path: &Path, interfaces: &[String]) -> Result<(), NetworkError> {
    let Ok(netns) = open_netns(0, path) else {
        return Ok(());
    };
    let path = path.to_path_buf();
    let interfaces = interfaces.to_vec();
    std::thread::Builder::new()
        .name("netns".into())
        .spawn(move || {
            setns(&netns, CloneFlags::CLONE_NEWNET).map_err(|e| NetworkError::Enter(path, e))?;
            unplumb_here(&interfaces);
            Ok(())
        })
        .map_err(|_| NetworkError::Thread)?
        .join()
        .map_err(|_| NetworkError::Thread)?
}

/// The network plumbing of a container, undone ([`unplumb`]) when this is
/// dropped unless [`UnplumbGuard::disarm`]ed: whoever holds it owns the
/// qdiscs until it hands them over (to `state.json`, for `delete`), so an
/// error on any path in between leaves nothing in the namespace. Never
/// dropped armed on a thread under the host seccomp filter (it runs `tc`).
#[derive(Debug, Default)]
#[must_use = "dropping the guard undoes the plumbing at once"]
pub struct UnplumbGuard(Option<NetworkRecord>);

impl UnplumbGuard {
    /// Guards `record` (nothing to do for `None`).
    pub fn new(record: Option<NetworkRecord>) -> Self {
        Self(record)
    }

    /// What is guarded.
    pub fn record(&self) -> Option<&NetworkRecord> {
        self.0.as_ref()
    }

    /// Keeps the plumbing; its record, now the caller's to undo.
    pub fn disarm(mut self) -> Option<NetworkRecord> {
        self.0.take()
    }
}

impl Drop for UnplumbGuard {
    fn drop(&mut self) {
        if let Some(net) = self.0.take() {
            if let Err(e) = unplumb(&net.ns_path, &net.interfaces) {
                tracing::warn!(
                    "cannot undo the network plumbing in {}: {}",
                    net.ns_path.display(),
                    crate::error_chain(&e)
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{can_plumb, TestNetns};
    use super::*;
    use serde_json::json;

    #[test]
    fn macs_parse() {
        assert_eq!(
            parse_mac("02:42:ac:11:00:02"),
            Some([2, 0x42, 0xac, 0x11, 0, 2])
        );
        assert_eq!(parse_mac("02:42:ac:11:00"), None);
        assert_eq!(parse_mac("02:42:ac:11:00:02:03"), None);
        assert_eq!(parse_mac("zz:42:ac:11:00:02"), None);
    }

    #[test]
    fn addresses_and_routes_from_iproute2_json() {
        let addrs = json!([{"ifname": "eth0", "addr_info": [
            {"family": "inet", "local": "10.88.0.5", "prefixlen": 16},
            {"family": "inet6", "local": "fe80::1", "prefixlen": 64}
        ]}]);
        assert_eq!(addresses(&addrs), ["10.88.0.5/16"]);
        let table = json!([
            {"dst": "default", "gateway": "10.88.0.1", "dev": "eth0"},
            {"dst": "10.88.0.0/16", "dev": "eth0", "protocol": "kernel", "scope": "link"},
            {"dst": "192.168.5.0/24", "gateway": "10.88.0.2", "dev": "eth0"},
            {"dst": "10.1.2.3", "dev": "eth0", "scope": "link"}
        ]);
        let got = routes(&table);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].destination, "0.0.0.0/0");
        assert_eq!(got[0].gateway.as_deref(), Some("10.88.0.1"));
        assert_eq!(got[1].destination, "192.168.5.0/24");
        assert_eq!(got[2].destination, "10.1.2.3/32");
        assert_eq!(got[2].gateway, None);
    }

    #[test]
    fn ipv6_addresses_not_passed_on_are_listed_and_logged() {
        let addrs = json!([{"ifname": "eth0", "addr_info": [
            {"family": "inet", "local": "10.88.0.5", "prefixlen": 16, "scope": "global"},
            {"family": "inet6", "local": "fd00::5", "prefixlen": 64, "scope": "global"},
            {"family": "inet6", "local": "fe80::1", "prefixlen": 64, "scope": "link"}
        ]}]);
        let not_passed = ipv6_addresses(&addrs);
        assert_eq!(not_passed, ["fd00::5/64"]);
        let logged = capture_warnings(|| warn_ipv6_not_passed("eth0", &not_passed));
        assert!(logged.contains("WARN"), "{logged}");
        assert!(logged.contains("eth0"), "{logged}");
        assert!(logged.contains("fd00::5/64"), "{logged}");
        assert!(logged.contains("no IPv6"), "{logged}");
        assert_eq!(capture_warnings(|| warn_ipv6_not_passed("eth0", &[])), "");
    }

    /// What `emit` logs at warning level and above (in this thread).
    fn capture_warnings(emit: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Captured {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let out = Captured::default();
        let sink = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        text
    }

    /// The commands of a plumbing, each run for real except the `fail_at`th
    /// (from 1), which fails as a refused `tc` would; counts them.
    fn failing_at(
        fail_at: usize,
        count: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    ) -> Box<Runner> {
        Box::new(move |program: &str, args: &[&str]| {
            let n = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            if n == fail_at {
                return Err(NetworkError::Command {
                    command: format!("{program} {}", args.join(" ")),
                    output: "injected failure".into(),
                });
            }
            run(program, args)
        })
    }

    #[test]
    fn a_plumbing_that_fails_at_any_step_leaves_no_qdisc_and_no_tap() {
        if !can_plumb("a_plumbing_that_fails_at_any_step_leaves_no_qdisc_and_no_tap") {
            return;
        }
        let net = TestNetns::new();
        // A full plumbing, to count its steps (and check it plumbs).
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let plumbed = plumb_with(0, &net.path(), failing_at(0, count.clone())).unwrap();
        let mut names: Vec<_> = plumbed.iter().map(|p| p.interface.name.clone()).collect();
        names.sort();
        assert_eq!(names, ["eth0", "eth1"]);
        assert!(net.has_ingress());
        drop(plumbed);
        unplumb(&net.path(), &names).unwrap();
        assert!(!net.has_ingress());
        let steps = count.load(std::sync::atomic::Ordering::SeqCst);
        // link show, then per interface: ip link set, 2 x (qdisc, filter),
        // addr show, route show.
        assert_eq!(steps, 1 + 2 * 7);
        for fail_at in 1..=steps {
            let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let err = plumb_with(0, &net.path(), failing_at(fail_at, count)).unwrap_err();
            assert!(err.to_string().contains("injected failure"), "{err}");
            assert!(
                !net.has_ingress(),
                "step {fail_at} failed and left an ingress qdisc: eth0 {:?}, eth1 {:?}",
                net.qdiscs("eth0"),
                net.qdiscs("eth1")
            );
            let links = net.links_once_gone(TAP_PREFIX);
            assert!(
                !links.iter().any(|l| l.starts_with(TAP_PREFIX)),
                "step {fail_at} failed and left a tap: {links:?}"
            );
        }
    }

    #[test]
    fn the_guard_undoes_the_plumbing_unless_disarmed() {
        if !can_plumb("the_guard_undoes_the_plumbing_unless_disarmed") {
            return;
        }
        let net = TestNetns::new();
        let record = |plumbed: &[PlumbedInterface]| NetworkRecord {
            ns_path: net.path(),
            interfaces: plumbed.iter().map(|p| p.interface.name.clone()).collect(),
        };
        let plumbed = plumb(0, &net.path()).unwrap();
        let guard = UnplumbGuard::new(Some(record(&plumbed)));
        assert_eq!(guard.record(), Some(&record(&plumbed)));
        assert!(net.has_ingress());
        drop(guard);
        assert!(!net.has_ingress(), "the dropped guard left the qdiscs");
        drop(plumbed);

        let plumbed = plumb(0, &net.path()).unwrap();
        let guard = UnplumbGuard::new(Some(record(&plumbed)));
        let kept = guard.disarm();
        assert_eq!(kept, Some(record(&plumbed)));
        assert!(net.has_ingress(), "the disarmed guard removed the qdiscs");
        let kept = kept.unwrap();
        unplumb(&kept.ns_path, &kept.interfaces).unwrap();
        assert!(!net.has_ingress());
    }

    #[test]
    fn plumbing_passes_ipv4_and_lists_the_ipv6_it_does_not() {
        if !can_plumb("plumbing_passes_ipv4_and_lists_the_ipv6_it_does_not") {
            return;
        }
        let net = TestNetns::new();
        let plumbed = plumb(0, &net.path()).unwrap();
        let _guard = UnplumbGuard::new(Some(NetworkRecord {
            ns_path: net.path(),
            interfaces: vec!["eth0".into(), "eth1".into()],
        }));
        let eth0 = plumbed.iter().find(|p| p.interface.name == "eth0").unwrap();
        assert_eq!(eth0.interface.addresses, ["10.77.0.2/24"]);
        assert_eq!(eth0.ipv6_not_passed, ["2001:db8::2/64"]);
        assert_eq!(eth0.interface.routes[0].destination, "0.0.0.0/0");
        let eth1 = plumbed.iter().find(|p| p.interface.name == "eth1").unwrap();
        assert_eq!(eth1.interface.mtu, 1400);
        assert!(
            eth1.ipv6_not_passed.is_empty(),
            "{:?}",
            eth1.ipv6_not_passed
        );
    }

    #[test]
    fn the_hosts_own_network_namespace_is_refused() {
        let err = plumb(1, Path::new("/proc/self/ns/net")).unwrap_err();
        assert!(matches!(err, NetworkError::HostNetns(1, _)), "{err}");
        assert!(
            err.to_string().contains("host's own network namespace"),
            "{err}"
        );
    }

    #[test]
    fn a_non_namespace_path_is_named() {
        let err = plumb(2, Path::new("/etc/hostname")).unwrap_err();
        assert!(
            err.to_string() == "linux.namespaces[2].path: /etc/hostname is not a namespace file",
            "{err}"
        );
        let err = plumb(0, Path::new("/proc/self/ns/uts")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "linux.namespaces[0].path: /proc/self/ns/uts is a uts namespace, not network"
        );
        let err = plumb(1, Path::new("/proc/self/ns/no-such-namespace")).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "linux.namespaces[1].path: /proc/self/ns/no-such-namespace: cannot open"
            ),
            "{err}"
        );
    }
}
