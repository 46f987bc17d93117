//! The guest's own network namespace, handed to the first container that
//! asks for a fresh one.
//!
//! A microVM runs one container (or one pod), and nothing of the agent's
//! lives in the guest's root network namespace: it talks to the host over
//! vsock, which network namespaces do not scope, and keeps no INET or
//! abstract UNIX socket. What a fresh namespace would give the container
//! (`lo`, plus the NICs the host plumbed for it) is what the root one
//! holds. So, as Kata does (its runtime drops the network namespace from
//! the spec it sends the agent), the first container asking for a fresh
//! network namespace gets the root one, and the guest is spared creating
//! a namespace (in the emulated test host ~280 ms of a `vmrun run`'s
//! Create). For the container nothing differs: `lo` is brought up, its
//! NICs are configured where they already are, and its `net.*` sysctls are
//! written here before libcontainer runs (which refuses them in what it
//! takes for the runtime's own namespace).
//!
//! The root namespace is given out once: a container without a network
//! namespace (it shares the root one) or the first one claiming it uses it
//! up, and any later container asking for a fresh one gets a new one. A
//! spec with a user namespace keeps a fresh one too: a process in a new
//! user namespace cannot join a namespace owned by the initial one.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use vmrun_isolation::oci_spec::runtime::{LinuxNamespaceType, Spec};

/// Hands the guest's root network namespace out once.
#[derive(Debug)]
pub struct GuestNetns {
    /// A path libcontainer opens to join it (`None`: it is not the
    /// agent's own namespace, as in host tests: never handed out).
    path: Option<PathBuf>,
    /// Some container already lives in it.
    taken: AtomicBool,
}

/// Where a container's network namespace ends up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetnsChoice {
    /// As the spec says (a fresh one, a joined one, or none of its own).
    AsAsked,
    /// The guest's root one, in place of the fresh one the spec asked for.
    Guest,
}

impl GuestNetns {
    /// The guest namespace is `nic_netns` when that is the calling
    /// thread's own (the one `claim` is later called from).
    pub fn new(nic_netns: BorrowedFd<'_>) -> Self {
        let own = std::fs::File::open("/proc/thread-self/ns/net")
            .map_err(anyhow::Error::from)
            .and_then(|own| super::same_namespace(nic_netns, own.as_fd()));
        let path = matches!(own, Ok(true)).then(|| {
            PathBuf::from(format!(
                "/proc/{}/fd/{}",
                std::process::id(),
                nic_netns.as_raw_fd()
            ))
        });
        Self {
            path,
            taken: AtomicBool::new(false),
        }
    }

    /// Never hands a namespace out: every container gets what its spec
    /// asks for (host tests, whose own namespace is the machine's).
    pub fn disabled() -> Self {
        Self {
            path: None,
            taken: AtomicBool::new(false),
        }
    }

    /// Decides `spec`'s network namespace. For [`NetnsChoice::Guest`] the
    /// spec now joins the guest's namespace and its `net.*` sysctls are
    /// written here (and left out of the spec).
    pub fn claim(&self, spec: &mut Spec) -> Result<NetnsChoice> {
        let wanted = network_namespace(spec);
        if wanted == Wanted::Shared {
            self.taken.store(true, Ordering::SeqCst);
            return Ok(NetnsChoice::AsAsked);
        }
        let Some(path) = &self.path else {
            return Ok(NetnsChoice::AsAsked);
        };
        if wanted != Wanted::Own
            || has_user_namespace(spec)
            || self.taken.swap(true, Ordering::SeqCst)
        {
            return Ok(NetnsChoice::AsAsked);
        }
        for (key, value) in join_instead(spec, path) {
            write_sysctl(&key, &value)?;
        }
        Ok(NetnsChoice::Guest)
    }
}

/// What the spec asks of the network namespace.
#[derive(Debug, PartialEq, Eq)]
enum Wanted {
    /// A fresh one.
    Own,
    /// One at a path.
    Joined,
    /// None of its own: the agent's.
    Shared,
}

fn network_namespace(spec: &Spec) -> Wanted {
    let entry = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .and_then(|all| {
            all.iter()
                .find(|ns| ns.typ() == LinuxNamespaceType::Network)
        });
    match entry {
        None => Wanted::Shared,
        Some(ns)
            if ns
                .path()
                .as_ref()
                .is_some_and(|p| !p.as_os_str().is_empty()) =>
        {
            Wanted::Joined
        }
        Some(_) => Wanted::Own,
    }
}

fn has_user_namespace(spec: &Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|all| all.iter().any(|ns| ns.typ() == LinuxNamespaceType::User))
}

/// Points the spec's network namespace at `path` and takes its `net.*`
/// sysctls out, returned sorted by key.
fn join_instead(spec: &mut Spec, path: &std::path::Path) -> Vec<(String, String)> {
    let Some(linux) = spec.linux_mut() else {
        return Vec::new();
    };
    if let Some(all) = linux.namespaces_mut() {
        for ns in all.iter_mut() {
            if ns.typ() == LinuxNamespaceType::Network {
                ns.set_path(Some(path.to_path_buf()));
            }
        }
    }
    let Some(sysctl) = linux.sysctl_mut() else {
        return Vec::new();
    };
    let (net, rest): (HashMap<String, String>, HashMap<String, String>) =
        sysctl.drain().partition(|(key, _)| key.starts_with("net."));
    *sysctl = rest;
    let mut net: Vec<(String, String)> = net.into_iter().collect();
    net.sort();
    net
}

/// Writes sysctl `key` (dots or slashes between its parts) as runc does.
fn write_sysctl(key: &str, value: &str) -> Result<()> {
    // Every dot becomes a slash, so no `..` can survive into the path.
    let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
    std::fs::write(&path, value)
        .with_context(|| format!("linux.sysctl.{key}: writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmrun_isolation::spec::parse_spec;

    fn spec(namespaces: &str, sysctl: &str) -> Spec {
        parse_spec(
            format!(
                r#"{{"ociVersion":"1.0.2","root":{{"path":"rootfs"}},
                "linux":{{"namespaces":[{namespaces}],"sysctl":{{{sysctl}}}}}}}"#
            )
            .as_bytes(),
        )
        .expect("spec")
    }

    fn netns_path(spec: &Spec) -> Option<PathBuf> {
        spec.linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_ref())
            .and_then(|all| {
                all.iter()
                    .find(|ns| ns.typ() == LinuxNamespaceType::Network)
            })
            .and_then(|ns| ns.path().clone())
    }

    fn handed_out(path: &str) -> GuestNetns {
        GuestNetns {
            path: Some(PathBuf::from(path)),
            taken: AtomicBool::new(false),
        }
    }

    #[test]
    fn what_the_spec_asks_for() {
        assert_eq!(
            network_namespace(&spec(r#"{"type":"network"}"#, "")),
            Wanted::Own
        );
        assert_eq!(
            network_namespace(&spec(r#"{"type":"network","path":""}"#, "")),
            Wanted::Own
        );
        assert_eq!(
            network_namespace(&spec(r#"{"type":"network","path":"/proc/7/ns/net"}"#, "")),
            Wanted::Joined
        );
        assert_eq!(
            network_namespace(&spec(r#"{"type":"pid"}"#, "")),
            Wanted::Shared
        );
    }

    #[test]
    fn joining_takes_the_net_sysctls_out_and_keeps_the_rest() {
        let mut s = spec(
            r#"{"type":"network"},{"type":"ipc"}"#,
            r#""net.ipv4.ping_group_range":"0 0","kernel.msgmax":"8192","net/core/somaxconn":"1024""#,
        );
        let net = join_instead(&mut s, std::path::Path::new("/proc/1/fd/5"));
        assert_eq!(
            net,
            vec![("net.ipv4.ping_group_range".to_string(), "0 0".to_string())],
            "only net.-prefixed keys move (a slash key stays for libcontainer)"
        );
        assert_eq!(netns_path(&s), Some(PathBuf::from("/proc/1/fd/5")));
        let left = s
            .linux()
            .as_ref()
            .and_then(|l| l.sysctl().clone())
            .unwrap_or_default();
        assert_eq!(left.len(), 2);
        assert!(left.contains_key("kernel.msgmax"));
    }

    #[test]
    fn handed_out_once_and_never_with_a_user_namespace_or_a_path() {
        let guest = handed_out("/proc/1/fd/5");
        let mut user = spec(r#"{"type":"network"},{"type":"user"}"#, "");
        assert_eq!(guest.claim(&mut user).expect("claim"), NetnsChoice::AsAsked);
        assert_eq!(netns_path(&user), None);
        let mut joined = spec(r#"{"type":"network","path":"/proc/9/ns/net"}"#, "");
        assert_eq!(
            guest.claim(&mut joined).expect("claim"),
            NetnsChoice::AsAsked
        );
        assert_eq!(netns_path(&joined), Some(PathBuf::from("/proc/9/ns/net")));

        let mut first = spec(r#"{"type":"network"}"#, "");
        assert_eq!(guest.claim(&mut first).expect("claim"), NetnsChoice::Guest);
        assert_eq!(netns_path(&first), Some(PathBuf::from("/proc/1/fd/5")));
        let mut second = spec(r#"{"type":"network"}"#, "");
        assert_eq!(
            guest.claim(&mut second).expect("claim"),
            NetnsChoice::AsAsked
        );
        assert_eq!(
            netns_path(&second),
            None,
            "the second one gets a fresh namespace"
        );
    }

    #[test]
    fn a_container_sharing_it_uses_it_up() {
        let guest = handed_out("/proc/1/fd/5");
        let mut host_network = spec(r#"{"type":"pid"}"#, "");
        assert_eq!(
            guest.claim(&mut host_network).expect("claim"),
            NetnsChoice::AsAsked
        );
        let mut fresh = spec(r#"{"type":"network"}"#, "");
        assert_eq!(
            guest.claim(&mut fresh).expect("claim"),
            NetnsChoice::AsAsked
        );
        assert_eq!(netns_path(&fresh), None);
    }

    #[test]
    fn not_the_agents_own_namespace_is_never_handed_out() {
        let guest = GuestNetns::disabled();
        let mut fresh = spec(r#"{"type":"network"}"#, "");
        assert_eq!(
            guest.claim(&mut fresh).expect("claim"),
            NetnsChoice::AsAsked
        );
        assert_eq!(netns_path(&fresh), None);
    }
}
