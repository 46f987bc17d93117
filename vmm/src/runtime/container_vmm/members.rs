//! Pod members: containers created inside a running VM after its main
//! container (the pod's sandbox), for a member's host process (the pid
//! `create` reports for the member, see `runtime::member`).
//!
//! The session: `AddMember { id, bundle, trees }`, the member's stdio
//! descriptors and its detached host trees (rootfs and bind sources, made
//! by the client in the host's mount namespace) → the VMM mounts them in
//! the VM's share, points every namespace path of its spec at the
//! sandbox init's namespace of that type in the guest (the paths clients
//! give name the sandbox's host pid, which is this VMM: what they mean is
//! "join the sandbox"; a pid path naming a member's host pid means that
//! member's, see [`join_sandbox_namespaces`]), has the agent create it
//! (its cgroup in the guest holds its `linux.resources`), relays its stdio and
//! answers `MemberCreated`; signals and resizes from the host process
//! reach its init; `Exited` once it ended. If the host process goes away
//! first the member is killed. Either way its share entries are released.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::Value;
use vmrun_protocol::{Request, Response};

use super::execs::{follow_client, peer_pid, receive_stdio, send};
use super::slot::Slot;
use super::{
    connect_stdio, listen_stdio, lock, state_error, stdio_ports, ContainerRunError, ContainerVmm,
    HostStdio,
};
use crate::runtime::api::fd_passing::recv_fds;
use crate::runtime::api::{ApiRequest, ApiResponse};
use crate::runtime::bundle::{Bundle, HostRootfs};
use crate::runtime::host_world::shared_tree::SHARE_TAG;
use crate::runtime::host_world::{attach_member, mounts, HostWorldError};
use crate::runtime::state::{validate_id, Status};

/// Most members a VM holds at once (the agent holds 16 containers).
pub const MAX_MEMBERS: usize = 15;

/// The `/proc/PID/ns/` file of a namespace type of the OCI spec.
fn ns_file(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "network" => "net",
        "mount" => "mnt",
        "ipc" => "ipc",
        "uts" => "uts",
        "pid" => "pid",
        "user" => "user",
        "cgroup" => "cgroup",
        "time" => "time",
        _ => return None,
    })
}

/// Most trees a member's client may announce (its rootfs and binds).
const MAX_TREES: usize = 256;

/// Receives a member client's `count` detached trees, one per message.
fn receive_trees(
    conn: &UnixStream,
    count: usize,
) -> Result<Vec<std::os::fd::OwnedFd>, ContainerRunError> {
    if count > MAX_TREES {
        return Err(state_error(format!(
            "a pod member's client announced {count} host trees (at most {MAX_TREES})"
        )));
    }
    let mut trees = Vec::with_capacity(count);
    for _ in 0..count {
        let mut marker = [0u8; 1];
        let (_, fds) = recv_fds(conn, &mut marker)
            .map_err(|e| ContainerRunError::Io("receive the member's host trees", e))?;
        let [fd]: [std::os::fd::OwnedFd; 1] = fds
            .try_into()
            .map_err(|_| state_error("the member's client must send one tree per message"))?;
        trees.push(fd);
    }
    Ok(trees)
}

/// The host pid a namespace path `/proc/PID/ns/...` names, if it has
/// that form.
fn path_pid(path: &str) -> Option<i32> {
    let mut parts = path.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(""), Some("proc"), Some(pid), Some("ns")) => pid.parse().ok(),
        _ => None,
    }
}

/// Points every namespace path of `spec` at the namespace of the same type
/// of a guest process: by default the sandbox's init, `sandbox_pid` (what
/// a client means by a path naming the sandbox's host pid, i.e. this VMM:
/// "join the sandbox"); for a `/proc/PID/ns/...` path whose PID is a
/// member's host pid, that member's init in the guest, as `member` maps it
/// (containerd's `TARGET` pid namespace mode, `kubectl debug --target`).
/// So a pid namespace path joins the sandbox's pid namespace in the guest
/// (CRI's `PodPidNamespace=POD`, `podman pod create --share pid`); a
/// namespace without a path stays the member's own.
pub fn join_sandbox_namespaces(
    spec: &mut Value,
    sandbox_pid: i32,
    member: impl Fn(i32) -> Option<i32>,
) -> Result<(), ContainerRunError> {
    let Some(namespaces) = spec
        .pointer_mut("/linux/namespaces")
        .and_then(Value::as_array_mut)
    else {
        return Ok(());
    };
    for (index, ns) in namespaces.iter_mut().enumerate() {
        let Some(path) = ns
            .get("path")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
        else {
            continue;
        };
        let guest_pid = path_pid(path).and_then(&member).unwrap_or(sandbox_pid);
        let kind = ns.get("type").and_then(Value::as_str).unwrap_or("");
        let file = ns_file(kind).ok_or_else(|| {
            state_error(format!(
                "linux.namespaces[{index}].type: unknown namespace type {kind:?}"
            ))
        })?;
        ns["path"] = Value::String(format!("/proc/{guest_pid}/ns/{file}"));
    }
    Ok(())
}

impl ContainerVmm {
    /// Runs a member session on `conn` (see the module docs); returns when
    /// it is over.
    pub fn member_session(
        self: &Arc<Self>,
        mut conn: UnixStream,
        id: &str,
        bundle: &Path,
        no_pivot: bool,
        trees: usize,
    ) {
        if let Err(e) = self.run_member(&mut conn, id, bundle, no_pivot, trees) {
            send(
                &mut conn,
                &ApiResponse::Error {
                    message: crate::error_chain(&e),
                },
            );
        }
    }

    fn run_member(
        self: &Arc<Self>,
        conn: &mut UnixStream,
        id: &str,
        bundle_dir: &Path,
        no_pivot: bool,
        tree_count: usize,
    ) -> Result<(), ContainerRunError> {
        let fds = receive_stdio(conn)?;
        let trees = receive_trees(conn, tree_count)?;
        validate_id(id)?;
        if self.slot(Some(id)).is_ok() {
            return Err(state_error("container with given ID already exists"));
        }
        if lock(&self.members).len() >= MAX_MEMBERS {
            return Err(state_error(format!(
                "this pod's VM already holds {MAX_MEMBERS} members"
            )));
        }
        if self.main.status() == Status::Stopped {
            return Err(state_error("the pod's sandbox is not running"));
        }
        let bundle = Bundle::load(bundle_dir, None)?;
        if !matches!(bundle.rootfs, HostRootfs::Dir(_)) {
            return Err(HostWorldError::MemberRootfs.into());
        }
        let mut spec = bundle.spec.clone();
        mounts::host_binds(&spec).map_err(HostWorldError::from)?;
        let running_members: Vec<(i32, i32)> = lock(&self.members)
            .values()
            .filter(|m| m.status() != Status::Stopped)
            .map(|m| (m.host_pid, m.guest_pid))
            .collect();
        join_sandbox_namespaces(&mut spec, self.main.guest_pid, |host_pid| {
            running_members
                .iter()
                .find(|(host, _)| *host == host_pid)
                .map(|(_, guest)| *guest)
        })?;
        let release = || {
            if let Err(e) = self.tree.release(Path::new(id)) {
                tracing::warn!("releasing member {id}'s share: {}", crate::error_chain(&e));
            }
        };
        let exposed = attach_member(&self.tree, id, &mut spec, trees);
        let rootfs = match exposed {
            Ok(rootfs) => rootfs,
            Err(e) => {
                release();
                return Err(e.into());
            }
        };
        let ports = self.take_ports();
        let listeners = listen_stdio(&self.host, ports)?;
        crate::runtime::hooks::remove_from_guest_spec(&mut spec);
        let create = Request::Create {
            id: id.to_owned(),
            spec,
            rootfs,
            stdio: stdio_ports(ports),
            no_pivot,
            shares: vec![SHARE_TAG.into()],
            network: Vec::new(),
            ends_vm: false,
        };
        let created = match self.call("Create", create) {
            Ok(Response::Created { pid }) => Ok(pid),
            Ok(Response::Error { message }) => Err(state_error(message)),
            Ok(other) => Err(ContainerRunError::Unexpected("Create", other)),
            Err(e) => Err(e),
        };
        let guest_pid = match created {
            Ok(pid) => pid,
            Err(e) => {
                for port in ports {
                    self.host.unlisten(port);
                }
                release();
                return Err(e);
            }
        };
        let output = connect_stdio(&self.host, ports, listeners, HostStdio::from_fds(fds))?;
        let slot = Arc::new(Slot::created(
            id,
            output,
            None,
            None,
            peer_pid(conn),
            guest_pid,
        ));
        lock(&self.members).insert(id.to_owned(), Arc::clone(&slot));
        send(conn, &ApiResponse::MemberCreated { guest_pid });
        tracing::debug!(member = id, guest_pid, "pod member created");

        let finished = Arc::new(AtomicBool::new(false));
        let reader = conn
            .try_clone()
            .map_err(|e| ContainerRunError::Io("duplicate the member connection", e))?;
        let (this, done, target) = (Arc::clone(self), Arc::clone(&finished), Arc::clone(&slot));
        std::thread::Builder::new()
            .stack_size(vmrun_virtio::worker::THREAD_STACK_SIZE)
            .name("member-client".into())
            .spawn(move || {
                follow_client(
                    reader,
                    &done,
                    |request| this.forward_to_member(&target, request),
                    || {
                        tracing::debug!(member = %target.id, "the member's host process went away: killing it");
                        let _ = this.kill(&target, libc::SIGKILL, true);
                    },
                )
            })
            .map_err(|e| ContainerRunError::Io("start the member client thread", e))?;

        let outcome = self.wait_for(&slot);
        finished.store(true, Ordering::SeqCst);
        lock(&self.members).remove(id);
        release();
        let status = outcome?;
        send(conn, &ApiResponse::Exited { status });
        let _ = conn.shutdown(std::net::Shutdown::Both);
        Ok(())
    }

    /// A member host process's signal or resize, for `slot`'s init.
    fn forward_to_member(&self, slot: &Slot, request: ApiRequest) {
        match request {
            ApiRequest::SessionSignal { signal } => {
                if let Err(e) = self.kill(slot, signal, false) {
                    tracing::debug!("member {}: cannot forward signal {signal}: {e}", slot.id);
                }
            }
            ApiRequest::SessionResize { rows, cols } => {
                let resize = Request::Resize {
                    id: slot.id.clone(),
                    rows,
                    cols,
                    exec_id: None,
                };
                if let Err(e) = self.client.call(resize) {
                    tracing::debug!("member {}: cannot resize: {e}", slot.id);
                }
            }
            other => tracing::debug!("member session: ignoring {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn namespace_paths_are_pointed_at_the_sandbox_in_the_guest() {
        let mut spec = json!({"linux": {"namespaces": [
            {"type": "pid"},
            {"type": "network", "path": "/proc/4242/ns/net"},
            {"type": "ipc", "path": "/proc/4242/ns/ipc"},
            {"type": "uts", "path": "/var/run/netns/whatever"},
            {"type": "mount"}
        ]}});
        join_sandbox_namespaces(&mut spec, 17, |_| None).unwrap();
        let ns = &spec["linux"]["namespaces"];
        assert!(ns[0].get("path").is_none(), "a pid namespace of its own");
        assert_eq!(ns[1]["path"], "/proc/17/ns/net");
        assert_eq!(ns[2]["path"], "/proc/17/ns/ipc");
        assert_eq!(ns[3]["path"], "/proc/17/ns/uts");
        assert!(ns[4].get("path").is_none());
        let mut bad = json!({"linux": {"namespaces": [{"type": "bogus", "path": "/x"}]}});
        let err = join_sandbox_namespaces(&mut bad, 1, |_| None).unwrap_err();
        assert!(
            err.to_string().contains("linux.namespaces[0].type"),
            "{err}"
        );
    }

    #[test]
    fn a_pid_namespace_path_joins_the_sandboxs_or_a_targeted_members() {
        // CRI's PodPidNamespace=POD (podman's --share pid): the sandbox's.
        let mut spec = json!({"linux": {"namespaces": [
            {"type": "pid", "path": "/proc/4242/ns/pid"},
            {"type": "network", "path": "/proc/4242/ns/net"}
        ]}});
        let members = |host_pid: i32| (host_pid == 5000).then_some(23);
        join_sandbox_namespaces(&mut spec, 17, members).unwrap();
        assert_eq!(spec["linux"]["namespaces"][0]["path"], "/proc/17/ns/pid");
        // containerd's TARGET mode names a member's host pid: that
        // member's init in the guest; the rest stays the sandbox's.
        let mut spec = json!({"linux": {"namespaces": [
            {"type": "pid", "path": "/proc/5000/ns/pid"},
            {"type": "network", "path": "/proc/4242/ns/net"}
        ]}});
        join_sandbox_namespaces(&mut spec, 17, members).unwrap();
        assert_eq!(spec["linux"]["namespaces"][0]["path"], "/proc/23/ns/pid");
        assert_eq!(spec["linux"]["namespaces"][1]["path"], "/proc/17/ns/net");
        assert_eq!(path_pid("/proc/12/ns/pid"), Some(12));
        assert_eq!(path_pid("/proc/self/ns/pid"), None);
        assert_eq!(path_pid("/run/netns/x"), None);
    }
}
