//! What a container gets from the host besides its rootfs, made to reach
//! the microVM: host bind mounts through the VM's share ([`shared_tree`],
//! [`mounts`]) and the container's host network namespace through taps
//! ([`network`]). [`HostWorld::prepare`] turns a bundle into the spec the
//! guest gets (bind sources rewritten, namespace paths dropped), the
//! rootfs source, the shares and interfaces the agent sets up, and the
//! virtio devices the VM needs.
//!
//! A `path` in `linux.namespaces` is a host path: a network namespace is
//! plumbed; any other type is refused (naming the entry), never looked up
//! in the guest, where the same path would name something else.

pub mod mounts;
pub mod network;
pub mod shared_tree;
#[cfg(test)]
pub(crate) mod test_support;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use vmrun_protocol::{NetInterface, RootfsSource, SHARES_DIR};
use vmrun_virtio::block::BlockError;
use vmrun_virtio::fs::FsError;
use vmrun_virtio::net::NetError;
use vmrun_virtio::{Block, Fs, Net, VirtioDevice};

use super::bundle::{Bundle, HostRootfs};
use mounts::MountError;
use network::{NetworkError, UnplumbGuard};
use shared_tree::{BindPropagation, SharedTree, SharedTreeError, SHARE_TAG};

/// The share's directory in the container's state directory.
pub const SHARE_DIR: &str = "shared";
/// The guest device of a virtio-blk rootfs (the only disk).
pub const ROOTFS_BLOCK_DEVICE: &str = "/dev/vda";

/// Errors making the host's world reach the VM.
#[derive(Debug, thiserror::Error)]
pub enum HostWorldError {
    /// A mount cannot be honoured.
    #[error(transparent)]
    Mount(#[from] MountError),
    /// The share could not be built.
    #[error(transparent)]
    Tree(#[from] SharedTreeError),
    /// The network namespace could not be plumbed.
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// A namespace path of another type than network.
    #[error("linux.namespaces[{0}].path: a microVM cannot join a host {1} namespace (only a network namespace path is supported)")]
    NamespacePath(usize, String),
    /// A pod member's rootfs is not a directory.
    #[error("a pod member's rootfs must be a directory (the VM's disks are fixed at boot)")]
    MemberRootfs,
    /// A member's client sent another number of trees than its spec needs.
    #[error(
        "a pod member needs {0} host trees (its rootfs and bind sources), its client sent {1}"
    )]
    MemberTrees(usize, usize),
    /// The share device could not be made.
    #[error("cannot share {0} over virtio-fs")]
    Fs(PathBuf, #[source] FsError),
    /// The rootfs image could not be opened.
    #[error("cannot use {0} as a virtio-blk disk")]
    Block(PathBuf, #[source] BlockError),
    /// A virtio-net device could not be made.
    #[error("cannot make the virtio-net device for {0}")]
    Net(String, #[source] NetError),
}

/// What `delete` must undo of the network plumbing.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkRecord {
    /// The host network namespace.
    pub ns_path: PathBuf,
    /// Its interfaces that carry the redirect qdiscs.
    pub interfaces: Vec<String>,
}

/// The prepared world (see the module docs).
pub struct HostWorld {
    /// The spec for the guest.
    pub spec: Value,
    /// Where the agent finds the rootfs.
    pub rootfs: RootfsSource,
    /// The virtio-fs tags the agent mounts.
    pub shares: Vec<String>,
    /// The interfaces the agent configures.
    pub network: Vec<NetInterface>,
    /// The VM's devices besides vsock.
    pub devices: Vec<Box<dyn VirtioDevice>>,
    /// The network plumbing, undone when dropped unless disarmed once the
    /// container exists (then its record goes to `state.json` for
    /// `delete`).
    pub plumbing: UnplumbGuard,
    /// The VM's share (pod members are exposed in it later).
    pub tree: SharedTree,
}

impl std::fmt::Debug for HostWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostWorld")
            .field("rootfs", &self.rootfs)
            .field("shares", &self.shares)
            .field("network", &self.network)
            .field("devices", &self.devices.len())
            .finish_non_exhaustive()
    }
}

/// The `linux.namespaces` entries that have a `path`: (index, type, path).
fn namespace_paths(spec: &Value) -> Vec<(usize, String, PathBuf)> {
    spec.pointer("/linux/namespaces")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, ns)| {
            let path = ns.get("path")?.as_str().filter(|p| !p.is_empty())?;
            let kind = ns.get("type").and_then(Value::as_str).unwrap_or("?");
            Some((i, kind.to_string(), PathBuf::from(path)))
        })
        .collect()
}

/// Checks what needs no side effect: mounts and namespace paths.
pub fn check(spec: &Value) -> Result<(), HostWorldError> {
    for (index, kind, _) in namespace_paths(spec) {
        if kind != "network" {
            return Err(HostWorldError::NamespacePath(index, kind));
        }
    }
    mounts::host_binds(spec)?;
    Ok(())
}

impl HostWorld {
    /// Prepares container `id` of `bundle`, its share under `state_dir`.
    /// The calling process must be in its private mount namespace
    /// ([`shared_tree::enter_private_mount_namespace`]).
    pub fn prepare(id: &str, bundle: &Bundle, state_dir: &Path) -> Result<Self, HostWorldError> {
        let mut spec = bundle.spec.clone();
        check(&spec)?;
        // Declared before the taps: on an error below they are closed, then
        // the qdiscs removed.
        let mut plumbing = UnplumbGuard::default();
        let mut plumbed = Vec::new();
        for (index, _, path) in namespace_paths(&spec) {
            plumbed = network::plumb(index, &path)?;
            plumbing = UnplumbGuard::new(Some(NetworkRecord {
                ns_path: path,
                interfaces: plumbed.iter().map(|p| p.interface.name.clone()).collect(),
            }));
            if let Some(entry) = spec.pointer_mut(&format!("/linux/namespaces/{index}")) {
                // A fresh namespace in the guest, holding the plumbed NICs.
                entry.as_object_mut().map(|e| e.remove("path"));
            }
        }
        let tree = SharedTree::create(&state_dir.join(SHARE_DIR))?;
        expose_binds(&tree, id, &mut spec)?;
        let mut devices: Vec<Box<dyn VirtioDevice>> = Vec::new();
        let rootfs = match &bundle.rootfs {
            HostRootfs::Dir(dir) => expose_rootfs(&tree, id, dir)?,
            HostRootfs::Image { path, fstype } => {
                let block = Block::open(path, bundle.readonly)
                    .map_err(|e| HostWorldError::Block(path.clone(), e))?;
                devices.push(Box::new(block));
                RootfsSource::Block {
                    device: ROOTFS_BLOCK_DEVICE.into(),
                    fstype: fstype.clone(),
                }
            }
        };
        let fs = Fs::new(SHARE_TAG, tree.root(), false)
            .map_err(|e| HostWorldError::Fs(tree.root().to_path_buf(), e))?;
        devices.push(Box::new(fs));
        let mut network = Vec::new();
        for p in plumbed {
            let net = Net::new(p.tap, p.mac, p.interface.mtu)
                .map_err(|e| HostWorldError::Net(p.interface.name.clone(), e))?;
            devices.push(Box::new(net));
            network.push(p.interface);
        }
        Ok(Self {
            spec,
            rootfs,
            shares: vec![SHARE_TAG.into()],
            network,
            devices,
            plumbing,
            tree,
        })
    }
}

/// Exposes each host bind source of `spec` in `tree` under container
/// `id`, rewriting the sources to the guest's view of the share.
pub fn expose_binds(tree: &SharedTree, id: &str, spec: &mut Value) -> Result<(), HostWorldError> {
    for bind in mounts::host_binds(spec)? {
        let rel = tree.bind(
            &mounts::share_path(id, bind.index),
            &bind.source,
            bind.readonly,
            bind.recursive,
            bind.propagation,
        )?;
        mounts::rewrite_source(spec, bind.index, &guest_path(&rel));
    }
    Ok(())
}

/// Exposes container `id`'s rootfs directory `dir` in `tree`. Writable
/// even for `root.readonly`, as runc's rootfs is: mount points are made
/// in it before the container runtime in the guest remounts the
/// container's `/` read-only.
pub fn expose_rootfs(
    tree: &SharedTree,
    id: &str,
    dir: &Path,
) -> Result<RootfsSource, HostWorldError> {
    let rel = tree.bind(
        &mounts::rootfs_share_path(id),
        dir,
        false,
        true,
        BindPropagation::Private,
    )?;
    Ok(RootfsSource::VirtioFs {
        tag: SHARE_TAG.into(),
        path: Some(rel.display().to_string()),
    })
}

/// The host trees a pod member needs in its sandbox's VM, made by the
/// member's client (in the host's mount namespace) for the sandbox's VMM
/// (in its own, made before the member's rootfs was mounted): detached
/// copies of the rootfs directory, then of each host bind source of the
/// spec in order (see [`attach_member`]).
pub fn member_trees(bundle: &Bundle) -> Result<Vec<OwnedFd>, HostWorldError> {
    let HostRootfs::Dir(rootfs) = &bundle.rootfs else {
        return Err(HostWorldError::MemberRootfs);
    };
    let mut trees = vec![shared_tree::detached_tree(rootfs, true)?];
    for bind in mounts::host_binds(&bundle.spec)? {
        trees.push(shared_tree::detached_tree(&bind.source, bind.recursive)?);
    }
    Ok(trees)
}

/// Mounts a member's trees from [`member_trees`] in `tree` under its id,
/// rewriting its bind sources to the guest's view; its rootfs source.
pub fn attach_member(
    tree: &SharedTree,
    id: &str,
    spec: &mut Value,
    trees: Vec<OwnedFd>,
) -> Result<RootfsSource, HostWorldError> {
    let binds = mounts::host_binds(spec)?;
    if trees.len() != binds.len() + 1 {
        return Err(HostWorldError::MemberTrees(binds.len() + 1, trees.len()));
    }
    let mut trees = trees.into_iter();
    let rootfs_tree = trees.next().ok_or(HostWorldError::MemberTrees(1, 0))?;
    for (bind, fd) in binds.iter().zip(trees) {
        let rel = tree.attach(
            &mounts::share_path(id, bind.index),
            fd,
            &bind.source.display().to_string(),
            bind.readonly,
            bind.propagation,
        )?;
        mounts::rewrite_source(spec, bind.index, &guest_path(&rel));
    }
    let rel = tree.attach(
        &mounts::rootfs_share_path(id),
        rootfs_tree,
        "the member's rootfs",
        false,
        BindPropagation::Private,
    )?;
    Ok(RootfsSource::VirtioFs {
        tag: SHARE_TAG.into(),
        path: Some(rel.display().to_string()),
    })
}

/// Where the guest sees `rel` of the share.
fn guest_path(rel: &Path) -> PathBuf {
    Path::new(SHARES_DIR).join(SHARE_TAG).join(rel)
}

#[cfg(test)]
mod tests {
    use super::test_support::{bundle_in, can_plumb, TestNetns};
    use super::*;

    #[test]
    fn a_prepare_that_fails_after_plumbing_leaves_no_qdisc() {
        if !can_plumb("a_prepare_that_fails_after_plumbing_leaves_no_qdisc") {
            return;
        }
        let net = TestNetns::new();
        let dir = tempfile::tempdir().unwrap();
        let bundle = bundle_in(dir.path(), &net.path());
        // The share cannot be made under a file: fails once plumbed.
        let state_dir = dir.path().join("state");
        std::fs::write(&state_dir, "").unwrap();
        let err = HostWorld::prepare("c1", &bundle, &state_dir).unwrap_err();
        assert!(matches!(err, HostWorldError::Tree(_)), "{err}");
        assert!(!net.has_ingress(), "eth0 {:?}", net.qdiscs("eth0"));
        let links = net.links_once_gone("vmtap");
        assert!(!links.iter().any(|l| l.starts_with("vmtap")), "{links:?}");
    }
}
