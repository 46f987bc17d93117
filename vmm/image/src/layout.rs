//! OCI image layout directories (`oci-layout`, `index.json`, `blobs/`).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageIndex};

use crate::digest::Digest;
use crate::error::{ImageError, Result};
use crate::fetch::{fetch, BlobKind, BlobSource, FetchStats};
use crate::image::{parse_index, ResolvedImage};
use crate::platform::Platform;
use crate::store::{Store, MAX_JSON_BYTES, REF_NAME_ANNOTATION};

/// An OCI layout directory as a blob source.
pub struct Layout {
    dir: PathBuf,
    name: String,
}

impl Layout {
    /// Open the layout at `dir`; `name` is used in messages.
    pub fn open(dir: &Path, name: String) -> Result<Self> {
        let marker = dir.join("oci-layout");
        let data = read_small(&marker)?;
        let v: serde_json::Value = serde_json::from_slice(&data).map_err(|e| ImageError::Json {
            reference: name.clone(),
            what: "oci-layout".into(),
            source: e,
        })?;
        match v.get("imageLayoutVersion").and_then(|v| v.as_str()) {
            Some(ver) if ver.starts_with("1.") => {}
            other => {
                return Err(ImageError::InvalidImage {
                    reference: name,
                    reason: format!("unsupported imageLayoutVersion {other:?}"),
                })
            }
        }
        Ok(Layout {
            dir: dir.to_path_buf(),
            name,
        })
    }

    /// The parsed top-level `index.json`.
    pub fn index(&self) -> Result<ImageIndex> {
        let data = read_small(&self.dir.join("index.json"))?;
        parse_index(&self.name, &data)
    }

    /// Pick the top-level descriptor for `tag` (a ref name or a digest).
    pub fn find(&self, tag: Option<&str>, platform: &Platform) -> Result<Descriptor> {
        let index = self.index()?;
        let ref_name = |d: &Descriptor| {
            d.annotations()
                .as_ref()
                .and_then(|a| a.get(REF_NAME_ANNOTATION))
                .cloned()
        };
        let candidates: Vec<&Descriptor> = match tag {
            Some(t) if t.contains(':') && t.parse::<Digest>().is_ok() => index
                .manifests()
                .iter()
                .filter(|d| d.digest().to_string() == t)
                .collect(),
            Some(t) => index
                .manifests()
                .iter()
                .filter(|d| ref_name(d).as_deref() == Some(t))
                .collect(),
            None => index.manifests().iter().collect(),
        };
        match candidates.as_slice() {
            [] => Err(ImageError::NotFound {
                reference: self.name.clone(),
                what: match tag {
                    Some(t) => format!("tag {t:?} in index.json"),
                    None => "any manifest in index.json".into(),
                },
            }),
            [one] => Ok((*one).clone()),
            many if many.iter().all(|d| d.platform().is_some()) => {
                let mut sub = index.clone();
                sub.set_manifests(many.iter().map(|d| (*d).clone()).collect());
                platform.select(&self.name, &sub).cloned()
            }
            many => Err(ImageError::InvalidImage {
                reference: self.name.clone(),
                reason: format!(
                    "{} manifests match; name one of the tags: {}",
                    many.len(),
                    many.iter()
                        .filter_map(|d| ref_name(d))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
        }
    }
}

fn read_small(path: &Path) -> Result<Vec<u8>> {
    let f = File::open(path).map_err(|e| ImageError::io("opening", path, e))?;
    let mut data = Vec::new();
    f.take(MAX_JSON_BYTES)
        .read_to_end(&mut data)
        .map_err(|e| ImageError::io("reading", path, e))?;
    Ok(data)
}

impl BlobSource for Layout {
    fn name(&self) -> &str {
        &self.name
    }

    fn open(&self, _kind: BlobKind, digest: &Digest) -> Result<Box<dyn Read + '_>> {
        let path = self
            .dir
            .join("blobs")
            .join(digest.algorithm().name())
            .join(digest.hex());
        let f = File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ImageError::NotFound {
                reference: self.name.clone(),
                what: format!("blob {digest}"),
            },
            _ => ImageError::io("opening", &path, e),
        })?;
        Ok(Box::new(f))
    }
}

/// Import `tag` (or the only image) of the layout at `dir` into the store.
pub fn import(
    store: &Store,
    dir: &Path,
    tag: Option<&str>,
    platform: &Platform,
    quiet: bool,
) -> Result<(ResolvedImage, FetchStats)> {
    let name = match tag {
        Some(t) => format!("oci:{}:{t}", dir.display()),
        None => format!("oci:{}", dir.display()),
    };
    let layout = Layout::open(dir, name)?;
    let desc = layout.find(tag, platform)?;
    let (img, _, stats) = fetch(store, &layout, &desc, platform, quiet)?;
    Ok((img, stats))
}
