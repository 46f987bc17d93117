//! Unpacking image layers into a rootfs, safely.
//!
//! Layers are applied in order: gzip, zstd or uncompressed tar (detected
//! from the stream's magic bytes), with whiteouts, opaque directories,
//! hardlinks, ownership, modes, xattrs where permitted and device nodes
//! when running as root. Every path is resolved inside the rootfs (see
//! [`safe_path`]); total decompressed bytes and entry count are capped.

mod entry;
pub mod safe_path;
mod sys;
mod whiteout;

use std::cell::Cell;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::rc::Rc;

use crate::digest::{Digest, HashingReader};
use crate::error::{ImageError, Result};
use crate::image::{Layer, ResolvedImage};
use crate::progress::Progress;
use crate::store::Store;

/// Why a layer could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The entry would escape the rootfs or is otherwise hostile.
    #[error("entry {path:?} rejected: {reason}")]
    Unsafe {
        /// Entry path as found in the archive.
        path: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A file system operation for an entry failed.
    #[error("entry {path:?}: {op} failed")]
    Io {
        /// Entry path.
        path: String,
        /// The failing operation.
        op: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The layer exceeds an [`UnpackLimits`] cap.
    #[error("{what} exceeds the limit of {limit}")]
    Limit {
        /// Which limit.
        what: &'static str,
        /// The limit.
        limit: u64,
    },
    /// The layer stream is not a valid (compressed) tar archive.
    #[error("reading the layer archive")]
    Read(#[source] io::Error),
    /// The layer content does not match its digest.
    #[error("{what} digest is {actual}, expected {expected}")]
    Digest {
        /// "compressed blob" or "uncompressed tar (diff_id)".
        what: &'static str,
        /// Expected digest.
        expected: String,
        /// Actual digest.
        actual: String,
    },
}

impl UnpackError {
    pub(crate) fn io(path: &str, op: &'static str, source: io::Error) -> Self {
        UnpackError::Io {
            path: path.to_string(),
            op,
            source,
        }
    }

    fn from_read(path: &str, source: io::Error) -> Self {
        if source.kind() == io::ErrorKind::FileTooLarge {
            return UnpackError::Limit {
                what: "decompressed image size",
                limit: 0,
            };
        }
        UnpackError::Io {
            path: path.to_string(),
            op: "writing file content",
            source,
        }
    }
}

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

/// Reader that fails once more than `max` bytes went through it overall.
struct CappedReader<R> {
    inner: R,
    used: Rc<Cell<u64>>,
    max: u64,
    hit: Rc<Cell<bool>>,
}

impl<R: Read> Read for CappedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let used = self.used.get() + n as u64;
        self.used.set(used);
        if used > self.max {
            self.hit.set(true);
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                "size cap reached",
            ));
        }
        Ok(n)
    }
}

/// Reader that feeds a progress bar.
struct ProgressReader<'a, R> {
    inner: R,
    progress: &'a Progress,
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.inc(n as u64);
        Ok(n)
    }
}

/// Unpack all layers of `image` into the existing directory `rootfs`.
pub fn unpack_image(
    store: &Store,
    image: &ResolvedImage,
    rootfs: &Path,
    limits: &UnpackLimits,
    quiet: bool,
) -> Result<UnpackStats> {
    let root =
        safe_path::Root::open(rootfs).map_err(|e| ImageError::io("opening rootfs", rootfs, e))?;
    let used = Rc::new(Cell::new(0u64));
    let mut stats = UnpackStats::default();
    for (i, layer) in image.layers.iter().enumerate() {
        let file = store.open_blob(&image.reference, &layer.digest)?;
        let progress = Progress::bytes(
            Some(layer.size),
            format!(
                "unpack {}/{} {:.12}",
                i + 1,
                image.layers.len(),
                layer.digest.hex()
            ),
            quiet,
        );
        let reader = ProgressReader {
            inner: file,
            progress: &progress,
        };
        apply_layer(&root, layer, reader, limits, &used, &mut stats).map_err(|source| {
            ImageError::Layer {
                reference: image.reference.clone(),
                digest: layer.digest.to_string(),
                source,
            }
        })?;
        stats.layers += 1;
    }
    stats.bytes = used.get();
    Ok(stats)
}

enum Decoder<R: BufRead> {
    Plain(R),
    Gzip(flate2::bufread::MultiGzDecoder<R>),
    Zstd(zstd::Decoder<'static, R>),
}

impl<R: BufRead> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(r) => r.read(buf),
            Decoder::Zstd(r) => r.read(buf),
        }
    }
}

impl<R: BufRead> Decoder<R> {
    fn into_inner(self) -> R {
        match self {
            Decoder::Plain(r) => r,
            Decoder::Gzip(r) => r.into_inner(),
            Decoder::Zstd(r) => r.finish(),
        }
    }
}

/// Apply one layer blob (read from `blob`) to `root`.
pub fn apply_layer<R: Read>(
    root: &safe_path::Root,
    layer: &Layer,
    blob: R,
    limits: &UnpackLimits,
    used: &Rc<Cell<u64>>,
    stats: &mut UnpackStats,
) -> Result<(), UnpackError> {
    let mut compressed = BufReader::new(HashingReader::new(blob, layer.digest.algorithm()));
    let magic = compressed.fill_buf().map_err(UnpackError::Read)?;
    let decoder = if magic.starts_with(&[0x1f, 0x8b]) {
        Decoder::Gzip(flate2::bufread::MultiGzDecoder::new(compressed))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Decoder::Zstd(zstd::Decoder::with_buffer(compressed).map_err(UnpackError::Read)?)
    } else {
        Decoder::Plain(compressed)
    };
    let hit = Rc::new(Cell::new(false));
    let capped = CappedReader {
        inner: decoder,
        used: used.clone(),
        max: limits.max_bytes,
        hit: hit.clone(),
    };
    let diff = HashingReader::new(capped, layer.diff_id.algorithm());
    let mut archive = tar::Archive::new(diff);
    let limit_err = || UnpackError::Limit {
        what: "decompressed image size",
        limit: limits.max_bytes,
    };
    let budget = limits.max_bytes.saturating_sub(stats.written);
    let mut applier = entry::LayerApplier::new(root, budget, limits.max_bytes);
    let entries = archive.entries().map_err(UnpackError::Read)?;
    for e in entries {
        let mut e = match e {
            Ok(e) => e,
            Err(_) if hit.get() => return Err(limit_err()),
            Err(err) => return Err(UnpackError::Read(err)),
        };
        stats.entries += 1;
        if stats.entries > limits.max_entries {
            return Err(UnpackError::Limit {
                what: "number of archive entries",
                limit: limits.max_entries,
            });
        }
        match applier.apply(&mut e) {
            Err(_) if hit.get() => return Err(limit_err()),
            other => other?,
        }
    }
    stats.written += applier.written();
    applier.finish()?;
    let mut diff = archive.into_inner();
    if let Err(err) = diff.drain() {
        return Err(if hit.get() {
            limit_err()
        } else {
            UnpackError::Read(err)
        });
    }
    let (capped, diff_digest, _) = diff.into_parts();
    check_digest("uncompressed tar (diff_id)", &layer.diff_id, &diff_digest)?;
    // Back down to the compressed stream: read trailing bytes, check the blob.
    let mut compressed = capped.inner.into_inner();
    io::copy(&mut compressed, &mut io::sink()).map_err(UnpackError::Read)?;
    let (blob_digest, size) = compressed.into_inner().finish();
    check_digest("compressed blob", &layer.digest, &blob_digest)?;
    if size != layer.size {
        return Err(UnpackError::Digest {
            what: "blob size",
            expected: layer.size.to_string(),
            actual: size.to_string(),
        });
    }
    Ok(())
}

fn check_digest(what: &'static str, expected: &Digest, actual: &Digest) -> Result<(), UnpackError> {
    if expected == actual {
        Ok(())
    } else {
        Err(UnpackError::Digest {
            what,
            expected: expected.to_string(),
            actual: actual.to_string(),
        })
    }
}
