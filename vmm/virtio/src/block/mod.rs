//! virtio-blk backed by a raw image file (e.g. ext4), read-only or read-write.

pub mod request;

use std::fs::{File, OpenOptions};
use std::os::unix::io::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vmm_sys_util::epoll::{Epoll, EventSet};

use crate::activation::{ActivateError, ActiveQueue, GuestLink};
use crate::chain::process_queue;
use crate::common::VirtioCommon;
use crate::defs::{feature, TYPE_BLOCK, VIRTIO_RING_F_INDIRECT_DESC};
use crate::device::VirtioDevice;
use crate::worker::EventHandler;
use request::{Disk, ID_BYTES, SECTOR_SIZE};

/// Feature bit: `seg_max` in the config space is valid.
pub const VIRTIO_BLK_F_SEG_MAX: u32 = 2;
/// Feature bit: the device is read-only.
pub const VIRTIO_BLK_F_RO: u32 = 5;
/// Feature bit: the device supports FLUSH.
pub const VIRTIO_BLK_F_FLUSH: u32 = 9;
/// Queue size of the single request queue.
pub const QUEUE_SIZE: u16 = 256;

/// Errors opening a block device.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// Another process (another VM) holds the image.
    #[error("disk image {path} is in use by another process")]
    InUse {
        /// The image path.
        path: PathBuf,
    },
    /// The image could not be opened or inspected.
    #[error("cannot open disk image {path}")]
    Open {
        /// The image path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// A virtio-blk device.
#[derive(Debug)]
pub struct Block {
    common: VirtioCommon,
    disk: Arc<Disk>,
}

impl Block {
    /// Opens `path` as the disk; `read_only` opens it read-only and sets VIRTIO_BLK_F_RO.
    pub fn open(path: &Path, read_only: bool) -> Result<Self, BlockError> {
        let open_err = |source| BlockError::Open {
            path: path.to_path_buf(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(path)
            .map_err(open_err)?;
        lock_image(&file, read_only).map_err(|e| match e.kind() {
            std::io::ErrorKind::WouldBlock => BlockError::InUse {
                path: path.to_path_buf(),
            },
            _ => open_err(e),
        })?;
        let len = file.metadata().map_err(open_err)?.len();
        let mut id = [0u8; ID_BYTES];
        if let Some(name) = path.file_name() {
            for (d, s) in id.iter_mut().zip(name.as_encoded_bytes()) {
                *d = *s;
            }
        }
        Ok(Self::from_disk(Disk {
            file,
            sectors: len / SECTOR_SIZE,
            read_only,
            id,
        }))
    }

    /// Wraps an already open disk.
    pub fn from_disk(disk: Disk) -> Self {
        // capacity (u64), size_max (u32, not offered), seg_max (u32).
        let config = disk
            .sectors
            .to_le_bytes()
            .into_iter()
            .chain(0u32.to_le_bytes())
            .chain(u32::from(QUEUE_SIZE - 2).to_le_bytes())
            .collect();
        let mut features = feature(VIRTIO_BLK_F_FLUSH)
            | feature(VIRTIO_BLK_F_SEG_MAX)
            | feature(VIRTIO_RING_F_INDIRECT_DESC);
        if disk.read_only {
            features |= feature(VIRTIO_BLK_F_RO);
        }
        Self {
            common: VirtioCommon::new(TYPE_BLOCK, "virtio-blk", &[QUEUE_SIZE], features, config),
            disk: Arc::new(disk),
        }
    }

    /// Capacity in 512-byte sectors.
    pub fn sectors(&self) -> u64 {
        self.disk.sectors
    }
}

impl VirtioDevice for Block {
    fn common(&self) -> &VirtioCommon {
        &self.common
    }

    fn common_mut(&mut self) -> &mut VirtioCommon {
        &mut self.common
    }

    fn activate(&mut self, link: GuestLink, queues: Vec<ActiveQueue>) -> Result<(), ActivateError> {
        let disk = self.disk.clone();
        self.common.activate(link, queues, |link, [queue]| {
            Ok(BlockWorker { link, queue, disk })
        })
    }
}

/// The block device's event handling: one queue, one notification fd.
struct BlockWorker {
    link: GuestLink,
    queue: ActiveQueue,
    disk: Arc<Disk>,
}

impl BlockWorker {
    /// Serves every pending request; raises the interrupt if any completed.
    fn process(&mut self) {
        let disk = &self.disk;
        let result = process_queue(&self.link.mem, &mut self.queue.queue, |mem, chain| {
            request::execute(mem, disk, chain)
        });
        self.link.finish_pass("requests", result);
    }
}

impl EventHandler for BlockWorker {
    fn initial_fds(&self) -> Vec<(RawFd, u64)> {
        vec![(self.queue.notify.as_raw_fd(), 0)]
    }

    fn handle_event(&mut self, _token: u64, _events: EventSet, _epoll: &Epoll) {
        // Drain the counter, then serve whatever is available.
        let _ = self.queue.notify.read();
        self.process();
    }
}

/// Takes an advisory lock on the image for the life of `file`: shared for
/// read-only use, exclusive for read-write, so two VMs never write one image.
fn lock_image(file: &File, read_only: bool) -> std::io::Result<()> {
    let op = if read_only {
        libc::LOCK_SH
    } else {
        libc::LOCK_EX
    };
    // SAFETY: flock on a valid open descriptor owned by `file`.
    let rc = unsafe { libc::flock(file.as_raw_fd(), op | libc::LOCK_NB) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Opens a disk image file for tests and tools (same checks as [`Block::open`]).
pub fn open_image(path: &Path, read_only: bool) -> std::io::Result<File> {
    OpenOptions::new().read(true).write(!read_only).open(path)
}
