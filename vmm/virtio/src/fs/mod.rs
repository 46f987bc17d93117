//! virtio-fs served in process: fuse-backend-rs's `PassthroughFs` over the
//! virtio queues, sharing one host directory read-write or read-only,
//! behind [`share_fs::ShareFs`] (the session options the passthrough leaves
//! out, and the read-only checks on each request the server parsed once).

pub mod share_fs;

use std::io;
use std::os::unix::io::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fuse_backend_rs::api::filesystem::FileSystem;
use fuse_backend_rs::api::server::Server;
use fuse_backend_rs::passthrough::{Config, PassthroughFs};
use fuse_backend_rs::transport::{Reader, VirtioFsWriter};
use tracing::debug;
use virtio_queue::QueueT;
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::epoll::{Epoll, EventSet};

use crate::activation::{ActivateError, ActiveQueue, GuestLink};
use crate::chain::{complete, pop_raw_chain};
use crate::common::VirtioCommon;
use crate::defs::{feature, TYPE_FS, VIRTIO_RING_F_INDIRECT_DESC};
use crate::device::VirtioDevice;
use crate::worker::EventHandler;
use share_fs::ShareFs;

/// Size of the hiprio and request queues.
pub const QUEUE_SIZE: u16 = 256;
/// Longest tag the config space holds.
pub const MAX_TAG_LEN: usize = 36;

/// Errors creating a virtio-fs device.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The tag is empty, too long or not UTF-8 without NULs.
    #[error("invalid virtio-fs tag {0:?}: must be 1..={MAX_TAG_LEN} bytes without NUL")]
    BadTag(String),
    /// The shared directory is not usable.
    #[error("cannot share directory {path}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// The FUSE server of a share.
pub(crate) type FsServer = Server<ShareFs<Arc<PassthroughFs>>>;

/// A virtio-fs device.
pub struct Fs {
    common: VirtioCommon,
    server: Arc<FsServer>,
    read_only: bool,
}

impl std::fmt::Debug for Fs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fs")
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

impl Fs {
    /// Shares `dir` under `tag` (the guest mounts it with
    /// `mount -t virtiofs TAG /mnt`); `read_only` refuses every change.
    pub fn new(tag: &str, dir: &Path, read_only: bool) -> Result<Self, FsError> {
        if tag.is_empty() || tag.len() > MAX_TAG_LEN || tag.contains('\0') {
            return Err(FsError::BadTag(tag.to_string()));
        }
        let fs = Arc::new(passthrough(dir)?);
        let server = Server::new(if read_only {
            ShareFs::read_only(fs)
        } else {
            ShareFs::read_write(fs)
        });
        let mut config = vec![0u8; MAX_TAG_LEN + 4];
        for (d, s) in config.iter_mut().zip(tag.bytes()) {
            *d = s;
        }
        // num_request_queues = 1 (little endian), after the tag.
        if let Some(n) = config.get_mut(MAX_TAG_LEN) {
            *n = 1;
        }
        let features = feature(VIRTIO_RING_F_INDIRECT_DESC);
        Ok(Self {
            common: VirtioCommon::new(TYPE_FS, "virtio-fs", &[QUEUE_SIZE; 2], features, config),
            server: Arc::new(server),
            read_only,
        })
    }
}

/// The passthrough file system over `dir`, its inodes imported.
pub(crate) fn passthrough(dir: &Path) -> Result<PassthroughFs, FsError> {
    let dir_err = |source| FsError::Dir {
        path: dir.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(dir).map_err(dir_err)?;
    if !meta.is_dir() {
        return Err(dir_err(io::Error::new(
            io::ErrorKind::NotADirectory,
            "not a directory",
        )));
    }
    let root_dir = dir
        .to_str()
        .ok_or_else(|| {
            dir_err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "path is not UTF-8",
            ))
        })?
        .to_string();
    let cfg = Config {
        root_dir,
        do_import: true,
        xattr: false,
        ..Default::default()
    };
    let fs = PassthroughFs::new(cfg).map_err(dir_err)?;
    fs.import().map_err(dir_err)?;
    Ok(fs)
}

impl Fs {
    /// The FUSE server (for tests and fuzz entry points driving the queue
    /// functions directly).
    pub(crate) fn server(&self) -> &FsServer {
        &self.server
    }
}

impl VirtioDevice for Fs {
    fn common(&self) -> &VirtioCommon {
        &self.common
    }

    fn common_mut(&mut self) -> &mut VirtioCommon {
        &mut self.common
    }

    fn activate(&mut self, link: GuestLink, queues: Vec<ActiveQueue>) -> Result<(), ActivateError> {
        let server = self.server.clone();
        self.common
            .activate(link, queues, |link, queues: [ActiveQueue; 2]| {
                Ok(FsWorker {
                    link,
                    queues: queues.into(),
                    server,
                })
            })
    }
}

/// The event glue of an active virtio-fs device.
struct FsWorker {
    link: GuestLink,
    queues: Vec<ActiveQueue>,
    server: Arc<FsServer>,
}

impl EventHandler for FsWorker {
    fn initial_fds(&self) -> Vec<(RawFd, u64)> {
        self.queues
            .iter()
            .enumerate()
            .map(|(i, q)| (q.notify.as_raw_fd(), i as u64))
            .collect()
    }

    fn handle_event(&mut self, token: u64, _events: EventSet, _epoll: &Epoll) {
        let Some(q) = usize::try_from(token)
            .ok()
            .and_then(|i| self.queues.get_mut(i))
        else {
            return;
        };
        let _ = q.notify.read();
        let result = process_fs_queue(&self.link.mem, &mut q.queue, &self.server);
        let queue = if token == 0 { "hiprio" } else { "requests" };
        self.link.finish_pass(queue, result);
    }
}

/// Serves every FUSE request available on `queue`. Returns the number of
/// chains given back.
///
/// Each request is read from guest memory once, by `server`: whatever
/// policy applies (a read-only share) lives in its file system, which sees
/// the values the server acts on.
pub fn process_fs_queue<F: FileSystem + Sync>(
    mem: &GuestMemoryMmap,
    queue: &mut virtio_queue::Queue,
    server: &Server<F>,
) -> Result<usize, crate::chain::ChainError> {
    let mut done = 0usize;
    for _ in 0..queue.size() {
        let Some((raw, chain)) = pop_raw_chain(mem, queue)? else {
            break;
        };
        let head = raw.head_index();
        let len = match chain {
            Err(e) => {
                debug!(error = %e, "virtio-fs: malformed descriptor chain");
                0
            }
            Ok(_) => serve(mem, raw, server),
        };
        complete(mem, queue, head, len)?;
        done += 1;
    }
    Ok(done)
}

fn serve<F: FileSystem + Sync>(
    mem: &GuestMemoryMmap,
    raw: virtio_queue::DescriptorChain<&GuestMemoryMmap>,
    server: &Server<F>,
) -> u32 {
    let reader = match Reader::from_descriptor_chain(mem, raw.clone()) {
        Ok(r) => r,
        Err(e) => {
            debug!(error = %e, "virtio-fs: bad request buffers");
            return 0;
        }
    };
    let writer = match VirtioFsWriter::new(mem, raw) {
        Ok(w) => w,
        Err(e) => {
            debug!(error = %e, "virtio-fs: bad reply buffers");
            return 0;
        }
    };
    match server.handle_message(reader, writer.into(), None, None) {
        Ok(n) => n.min(u32::MAX as usize) as u32,
        Err(e) => {
            debug!(error = %e, "virtio-fs: request failed");
            0
        }
    }
}
