//! Turning an image into an OCI runtime bundle (`rootfs/` + `config.json`).

pub mod config;
mod unpack_image;

use std::fs;
use std::path::{Path, PathBuf};

pub use unpack_image::unpack_image;

use crate::digest::Digest;
use crate::error::{ImageError, Result};
use crate::fetch::FetchStats;
use crate::registry::PullOptions;
use crate::source::{resolve, ImageSource, PullPolicy};
use crate::store::{write_atomic, Store};
use crate::unpack::{safe_path::Root, UnpackLimits, UnpackStats};

/// Marker file recording which image a bundle's rootfs was unpacked from.
pub const MARKER: &str = ".vmrun-image";

/// Options for [`prepare_bundle`].
#[derive(Debug, Clone, Default)]
pub struct BundleOptions {
    /// Registry / platform options.
    pub pull: PullOptions,
    /// When to contact a registry.
    pub policy: PullPolicy,
    /// Unpack caps.
    pub limits: UnpackLimits,
}

/// What [`prepare_bundle`] produced.
#[derive(Debug, Clone)]
pub struct BundleInfo {
    /// The bundle directory.
    pub bundle_dir: PathBuf,
    /// `bundle_dir/rootfs`.
    pub rootfs: PathBuf,
    /// `bundle_dir/config.json`.
    pub config_path: PathBuf,
    /// Image name used in messages.
    pub reference: String,
    /// Digest of the image manifest.
    pub manifest_digest: Digest,
    /// Digest of the image config.
    pub config_digest: Digest,
    /// Whether an existing rootfs of the same image was reused.
    pub reused_rootfs: bool,
    /// Unpack counters (zero when reused).
    pub unpack: UnpackStats,
    /// Transfer counters.
    pub fetch: FetchStats,
}

impl std::fmt::Display for BundleInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} ({}) -> {}: {} layers, {} entries{}",
            self.reference,
            self.manifest_digest,
            self.bundle_dir.display(),
            self.unpack.layers,
            self.unpack.entries,
            if self.reused_rootfs {
                " (rootfs reused)"
            } else {
                ""
            }
        )
    }
}

fn io<'a>(op: &'static str, p: &'a Path) -> impl FnOnce(std::io::Error) -> ImageError + 'a {
    move |e| ImageError::io(op, p, e)
}

/// Make `bundle_dir` a runtime bundle for `source`: the image is fetched
/// into the store if needed, unpacked into `bundle_dir/rootfs` (reused if
/// it was unpacked from the same manifest before) and `config.json` is
/// generated, with `args_override` replacing the image's `Cmd`.
///
/// On failure nothing this call created is left behind.
pub fn prepare_bundle(
    store: &Store,
    source: &ImageSource,
    bundle_dir: &Path,
    args_override: Option<&[String]>,
    opts: &BundleOptions,
) -> Result<BundleInfo> {
    let (image, fetch_stats) = resolve(store, source, &opts.pull, opts.policy)?;
    let created_bundle = !bundle_dir.exists();
    fs::create_dir_all(bundle_dir).map_err(io("creating", bundle_dir))?;
    let rootfs = bundle_dir.join("rootfs");
    let marker = bundle_dir.join(MARKER);
    let config_path = bundle_dir.join("config.json");
    let manifest_str = image.manifest_digest.to_string();

    let reused =
        rootfs.is_dir() && fs::read_to_string(&marker).is_ok_and(|m| m.trim() == manifest_str);
    let mut unpack_stats = UnpackStats::default();
    let mut made_rootfs = false;
    let result = (|| -> Result<()> {
        if !reused {
            if rootfs.symlink_metadata().is_ok() {
                let empty = fs::read_dir(&rootfs)
                    .map(|mut d| d.next().is_none())
                    .unwrap_or(false);
                if !empty {
                    return Err(ImageError::Bundle {
                        path: bundle_dir.to_path_buf(),
                        reason:
                            "rootfs exists and was not unpacked from this image; remove it first"
                                .into(),
                    });
                }
            } else {
                fs::create_dir(&rootfs).map_err(io("creating", &rootfs))?;
            }
            made_rootfs = true;
            unpack_stats = unpack_image(store, &image, &rootfs, &opts.limits, opts.pull.quiet)?;
            write_atomic(bundle_dir, &marker, format!("{manifest_str}\n").as_bytes())?;
        }
        let root = Root::open(&rootfs).map_err(io("opening", &rootfs))?;
        let spec = config::generate(&image.reference, &image.config, &root, args_override)?;
        let json = serde_json::to_vec_pretty(&spec).map_err(|e| ImageError::Json {
            reference: image.reference.clone(),
            what: "generated config.json".into(),
            source: e,
        })?;
        write_atomic(bundle_dir, &config_path, &json)
    })();
    if let Err(e) = result {
        if created_bundle {
            let _ = fs::remove_dir_all(bundle_dir);
        } else if made_rootfs {
            let _ = fs::remove_dir_all(&rootfs);
            let _ = fs::create_dir(&rootfs);
            let _ = fs::remove_file(&marker);
        }
        return Err(e);
    }
    Ok(BundleInfo {
        bundle_dir: bundle_dir.to_path_buf(),
        rootfs,
        config_path,
        reference: image.reference.clone(),
        manifest_digest: image.manifest_digest.clone(),
        config_digest: image.config_digest.clone(),
        reused_rootfs: reused,
        unpack: unpack_stats,
        fetch: fetch_stats,
    })
}
