//! A wider readahead window for the guest's virtio-fs mounts.
//!
//! Linux gives a FUSE mount 128 KiB of readahead, and over virtio-fs each
//! readahead request is a round trip to the host (8–14 ms of the guest's
//! time in the emulated test host): starting busybox read its 1.9 MiB in
//! 16 requests. The host's server takes requests of up to 1 MiB; over its
//! 256-entry queue the guest sends at most 252 pages in one (Linux keeps
//! 4 entries of a request for its headers). A window of that size is one
//! request.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The readahead of a virtio-fs mount, in KiB: 252 pages, the largest
/// request the guest sends over the host's 256-entry queue.
pub const VIRTIOFS_READAHEAD_KIB: u32 = 252 * 4;

/// The sysfs file holding the readahead of the file system on device
/// `dev` (a FUSE mount's backing device is named `<major>:<minor>`).
fn read_ahead_file(dev: u64) -> PathBuf {
    let (major, minor) = (nix::sys::stat::major(dev), nix::sys::stat::minor(dev));
    PathBuf::from(format!("/sys/class/bdi/{major}:{minor}/read_ahead_kb"))
}

/// Sets the readahead of the virtio-fs file system mounted on
/// `mount_point` to [`VIRTIOFS_READAHEAD_KIB`]. Files opened afterwards get
/// it. A failure costs speed only: logged, not returned.
pub fn widen(mount_point: &Path) {
    let file = match std::fs::metadata(mount_point) {
        Ok(meta) => read_ahead_file(meta.dev()),
        Err(e) => {
            tracing::warn!("readahead of {}: {e}", mount_point.display());
            return;
        }
    };
    if let Err(e) = std::fs::write(&file, VIRTIOFS_READAHEAD_KIB.to_string()) {
        tracing::warn!(
            "readahead of {}: {}: {e}",
            mount_point.display(),
            file.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_named_by_the_mount_device() {
        let dev = nix::sys::stat::makedev(0, 42);
        assert_eq!(
            read_ahead_file(dev),
            Path::new("/sys/class/bdi/0:42/read_ahead_kb")
        );
        assert_eq!(VIRTIOFS_READAHEAD_KIB, 1008);
    }
}
