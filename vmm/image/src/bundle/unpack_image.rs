//! Unpacking an image from the store into a rootfs: each layer blob is
//! read from the store, decompressed, applied by the [`Unpacker`] and
//! checked against the digest and size in the manifest and the diff_id in
//! the config.

use std::fmt::Display;
use std::io::{self, BufReader, Read};
use std::path::Path;

use crate::decompress::Decompressor;
use crate::digest::HashingReader;
use crate::error::{ImageError, LayerError, Result};
use crate::image::{Layer, ResolvedImage};
use crate::progress::Progress;
use crate::store::Store;
use crate::unpack::{UnpackLimits, UnpackStats, Unpacker};

/// Unpack all layers of `image` into the existing directory `rootfs`.
pub fn unpack_image(
    store: &Store,
    image: &ResolvedImage,
    rootfs: &Path,
    limits: &UnpackLimits,
    quiet: bool,
) -> Result<UnpackStats> {
    let mut unpacker =
        Unpacker::new(rootfs, *limits).map_err(|e| ImageError::io("opening rootfs", rootfs, e))?;
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
        apply_layer_blob(&mut unpacker, layer, progress.reader(file)).map_err(|source| {
            ImageError::Layer {
                reference: image.reference.clone(),
                digest: layer.digest.to_string(),
                source,
            }
        })?;
    }
    Ok(unpacker.stats())
}

/// Apply the (possibly compressed) blob of `layer`, read from `blob`, and
/// verify it: diff_id of the tar stream, then digest and size of the blob.
fn apply_layer_blob(
    unpacker: &mut Unpacker,
    layer: &Layer,
    blob: impl Read,
) -> Result<(), LayerError> {
    let compressed = BufReader::new(HashingReader::new(blob, layer.digest.algorithm()));
    let decompressor = Decompressor::new(compressed).map_err(LayerError::Read)?;
    let mut tar = HashingReader::new(decompressor, layer.diff_id.algorithm());
    unpacker.apply_layer(&mut tar)?;
    let (decompressor, diff_digest, _) = tar.into_parts();
    if diff_digest != layer.diff_id {
        return Err(mismatch(
            "uncompressed tar (diff_id) digest",
            &layer.diff_id,
            &diff_digest,
        ));
    }
    // Back down to the compressed stream: read trailing bytes, check the blob.
    let mut compressed = decompressor.into_inner();
    io::copy(&mut compressed, &mut io::sink()).map_err(LayerError::Read)?;
    let (blob_digest, size) = compressed.into_inner().finish();
    if blob_digest != layer.digest {
        return Err(mismatch(
            "compressed blob digest",
            &layer.digest,
            &blob_digest,
        ));
    }
    if size != layer.size {
        return Err(mismatch("blob size", &layer.size, &size));
    }
    Ok(())
}

fn mismatch(what: &'static str, expected: &dyn Display, actual: &dyn Display) -> LayerError {
    LayerError::Mismatch {
        what,
        expected: expected.to_string(),
        actual: actual.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    fn tar_with_file() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, "hello", &b"hi"[..]).unwrap();
        b.into_inner().unwrap()
    }

    /// Applies `blob` as `layer` to a fresh rootfs; returns the rootfs too.
    fn apply(layer: &Layer, blob: &[u8]) -> (tempfile::TempDir, Result<(), LayerError>) {
        let dir = tempfile::tempdir().unwrap();
        let mut unpacker = Unpacker::new(dir.path(), UnpackLimits::default()).unwrap();
        let result = apply_layer_blob(&mut unpacker, layer, blob);
        (dir, result)
    }

    fn plain_layer(tar: &[u8]) -> Layer {
        let digest = Digest::sha256_of(tar);
        Layer {
            digest: digest.clone(),
            size: tar.len() as u64,
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            diff_id: digest,
        }
    }

    #[test]
    fn verified_layer_is_applied() {
        let tar = tar_with_file();
        let (dir, result) = apply(&plain_layer(&tar), &tar);
        result.unwrap();
        assert_eq!(std::fs::read(dir.path().join("hello")).unwrap(), b"hi");
    }

    #[test]
    fn content_that_differs_from_the_manifest_is_refused() {
        let tar = tar_with_file();
        let other = Digest::sha256_of(b"other");
        for (layer, want) in [
            (
                Layer {
                    diff_id: other.clone(),
                    ..plain_layer(&tar)
                },
                "uncompressed tar (diff_id) digest",
            ),
            (
                Layer {
                    digest: other,
                    ..plain_layer(&tar)
                },
                "compressed blob digest",
            ),
            (
                Layer {
                    size: tar.len() as u64 + 1,
                    ..plain_layer(&tar)
                },
                "blob size",
            ),
        ] {
            match apply(&layer, &tar).1 {
                Err(LayerError::Mismatch { what, .. }) => assert_eq!(what, want),
                other => panic!("{want}: {other:?}"),
            }
        }
    }
}
