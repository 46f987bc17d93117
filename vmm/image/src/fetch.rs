//! Copying an image from any source into the store: index → platform
//! manifest → config → layers, skipping blobs the store already has and
//! verifying everything else on the way in.

use std::io::Read;

use oci_spec::image::Descriptor;

use crate::digest::Digest;
use crate::error::{ImageError, Result};
use crate::image::{classify, parse_index, parse_manifest, DocKind, ResolvedImage};
use crate::platform::Platform;
use crate::progress::Progress;
use crate::store::Store;

/// What a blob is, for sources that serve manifests differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobKind {
    /// A manifest or index.
    Manifest,
    /// A config or layer.
    Blob,
}

/// A place blobs can be read from (untrusted: everything is verified).
pub trait BlobSource {
    /// Name used in messages.
    fn name(&self) -> &str;
    /// Open the blob `digest` for reading.
    fn open(&self, kind: BlobKind, digest: &Digest) -> Result<Box<dyn Read + '_>>;
}

/// Transfer counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FetchStats {
    /// Blobs copied into the store.
    pub blobs_fetched: usize,
    /// Bytes copied into the store.
    pub bytes_fetched: u64,
    /// Blobs already present and reused.
    pub blobs_reused: usize,
}

/// Maximum nesting of indexes.
const MAX_INDEX_DEPTH: usize = 4;

fn ensure_blob(
    store: &Store,
    src: &dyn BlobSource,
    kind: BlobKind,
    desc: &Descriptor,
    quiet: bool,
    stats: &mut FetchStats,
) -> Result<Digest> {
    let d = Digest::from_oci(desc.digest())?;
    if store.has_blob(&d) {
        stats.blobs_reused += 1;
        return Ok(d);
    }
    let progress = if kind == BlobKind::Blob {
        Progress::bytes(Some(desc.size()), format!("copy {:.12}", d.hex()), quiet)
    } else {
        Progress::hidden()
    };
    let reader = src.open(kind, &d)?;
    let n = store.put_blob(src.name(), &d, Some(desc.size()), reader, &progress)?;
    stats.blobs_fetched += 1;
    stats.bytes_fetched += n;
    Ok(d)
}

/// Copy the image `desc` points at (manifest or index) from `src` into the
/// store, selecting `platform` in indexes. Returns the image and the
/// descriptor of its platform manifest.
pub fn fetch(
    store: &Store,
    src: &dyn BlobSource,
    desc: &Descriptor,
    platform: &Platform,
    quiet: bool,
) -> Result<(ResolvedImage, Descriptor, FetchStats)> {
    let mut stats = FetchStats::default();
    let mut desc = desc.clone();
    for _ in 0..MAX_INDEX_DEPTH {
        let d = ensure_blob(store, src, BlobKind::Manifest, &desc, quiet, &mut stats)?;
        let body = store.read_blob(src.name(), &d, Some(desc.size()))?;
        let mt = desc.media_type().to_string();
        match classify(src.name(), Some(&mt), &body)? {
            DocKind::Index => {
                let index = parse_index(src.name(), &body)?;
                desc = platform.select(src.name(), &index)?.clone();
            }
            DocKind::Manifest => {
                let m = parse_manifest(src.name(), &body)?;
                ensure_blob(store, src, BlobKind::Blob, m.config(), quiet, &mut stats)?;
                let img = store.image_from_manifest(src.name(), d, body.len() as u64, &m)?;
                for l in m.layers() {
                    ensure_blob(store, src, BlobKind::Blob, l, quiet, &mut stats)?;
                }
                if desc.platform().is_none() {
                    let p = oci_spec::image::PlatformBuilder::default()
                        .os(img.config.os().clone())
                        .architecture(img.config.architecture().clone())
                        .build()
                        .ok();
                    desc.set_platform(p);
                }
                return Ok((img, desc, stats));
            }
        }
    }
    Err(ImageError::InvalidImage {
        reference: src.name().to_string(),
        reason: format!("indexes nested deeper than {MAX_INDEX_DEPTH}"),
    })
}
