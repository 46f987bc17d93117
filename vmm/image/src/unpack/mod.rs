//! Applying layer tarballs onto a rootfs, safely.
//!
//! This module is a leaf of the crate: it knows tar streams, paths and
//! system calls, not images, manifests, digests or the store. An
//! [`Unpacker`] applies uncompressed tar streams in order (lowest layer
//! first): whiteouts, opaque directories, hardlinks, ownership, modes,
//! xattrs where permitted and device nodes when running as root. Every path
//! is resolved inside the rootfs (see [`safe_path`]); tar bytes, entries
//! and written file bytes are capped over all layers ([`UnpackLimits`]).

mod entry;
mod error;
pub mod safe_path;
mod sys;
mod whiteout;

use std::cell::Cell;
use std::io::{self, Read};
use std::path::Path;

pub use error::UnpackError;
use safe_path::Root;

/// Caps protecting against decompression and tar bombs.
#[derive(Debug, Clone, Copy)]
pub struct UnpackLimits {
    /// Maximum total decompressed tar bytes over all layers.
    pub max_bytes: u64,
    /// Maximum number of tar entries over all layers.
    pub max_entries: u64,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        UnpackLimits {
            max_bytes: 32 << 30,
            max_entries: 2_000_000,
        }
    }
}

/// Counters of a finished unpack.
#[derive(Debug, Default, Clone, Copy)]
pub struct UnpackStats {
    /// Layers applied.
    pub layers: usize,
    /// Tar entries processed.
    pub entries: u64,
    /// Decompressed tar bytes read.
    pub bytes: u64,
    /// File content bytes written.
    pub written: u64,
}

/// Reader that fails once more than `max` bytes went through it overall
/// (`used` starts at what earlier layers read), setting `hit`.
struct CappedReader<'a, R> {
    inner: R,
    used: u64,
    max: u64,
    hit: &'a Cell<bool>,
}

impl<R: Read> Read for CappedReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.used += n as u64;
        if self.used > self.max {
            self.hit.set(true);
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                "size cap reached",
            ));
        }
        Ok(n)
    }
}

/// Applies the layers of one rootfs, lowest first, within [`UnpackLimits`]
/// counted over all of them.
pub struct Unpacker {
    root: Root,
    limits: UnpackLimits,
    stats: UnpackStats,
}

impl Unpacker {
    /// Unpack into the existing directory `rootfs`.
    pub fn new(rootfs: &Path, limits: UnpackLimits) -> io::Result<Self> {
        Ok(Unpacker {
            root: Root::open(rootfs)?,
            limits,
            stats: UnpackStats::default(),
        })
    }

    /// Counters over the layers applied so far.
    pub fn stats(&self) -> UnpackStats {
        self.stats
    }

    /// Apply the next layer, an uncompressed tar stream. The stream is read
    /// to its end, so a hashing reader around it sees all of it.
    pub fn apply_layer(&mut self, tar: impl Read) -> Result<(), UnpackError> {
        let hit = Cell::new(false);
        let capped = CappedReader {
            inner: tar,
            used: self.stats.bytes,
            max: self.limits.max_bytes,
            hit: &hit,
        };
        let mut archive = tar::Archive::new(capped);
        let max_bytes = self.limits.max_bytes;
        let limit_err = || UnpackError::Limit {
            what: "decompressed image size",
            limit: max_bytes,
        };
        let budget = max_bytes.saturating_sub(self.stats.written);
        let mut applier = entry::LayerApplier::new(&self.root, budget, max_bytes);
        let entries = archive.entries().map_err(UnpackError::Read)?;
        for e in entries {
            let mut e = match e {
                Ok(e) => e,
                Err(_) if hit.get() => return Err(limit_err()),
                Err(err) => return Err(UnpackError::Read(err)),
            };
            self.stats.entries += 1;
            if self.stats.entries > self.limits.max_entries {
                return Err(UnpackError::Limit {
                    what: "number of archive entries",
                    limit: self.limits.max_entries,
                });
            }
            match applier.apply(&mut e) {
                Err(_) if hit.get() => return Err(limit_err()),
                other => other?,
            }
        }
        self.stats.written += applier.written();
        applier.finish()?;
        // The end-of-archive blocks and any padding after them.
        let mut capped = archive.into_inner();
        if let Err(err) = io::copy(&mut capped, &mut io::sink()) {
            return Err(if hit.get() {
                limit_err()
            } else {
                UnpackError::Read(err)
            });
        }
        self.stats.bytes = capped.used;
        self.stats.layers += 1;
        Ok(())
    }
}
