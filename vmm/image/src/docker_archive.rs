//! `docker save` / `podman save` archives (`manifest.json`, `repositories`,
//! config JSON and uncompressed layer tars).

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use oci_spec::image::{DescriptorBuilder, ImageManifestBuilder, MediaType};
use serde::Deserialize;

use crate::decompress::Compression;
use crate::digest::{Algorithm, Digest, HashingReader};
use crate::error::{ImageError, Result};
use crate::fetch::FetchStats;
use crate::image::{parse_config, parse_json, ResolvedImage};
use crate::progress::Progress;
use crate::store::{Store, MAX_JSON_BYTES};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveManifest {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Where a member's data lives in the (uncompressed) archive file.
#[derive(Clone)]
struct Member {
    offset: u64,
    size: u64,
    link: Option<String>,
}

fn clean(name: &str) -> String {
    name.trim_start_matches("./").to_string()
}

struct Archive<'a> {
    path: &'a Path,
    name: String,
    members: HashMap<String, Member>,
}

impl Archive<'_> {
    fn member(&self, name: &str) -> Result<Member> {
        let mut key = clean(name);
        for _ in 0..8 {
            let m = self.members.get(&key).ok_or_else(|| ImageError::NotFound {
                reference: self.name.clone(),
                what: format!("archive member {key:?}"),
            })?;
            match &m.link {
                // `docker save` may store a repeated layer as a symlink.
                Some(target) => {
                    let base = Path::new(&key).parent().unwrap_or(Path::new(""));
                    key = clean(&base.join(target).to_string_lossy());
                }
                None => return Ok(m.clone()),
            }
        }
        Err(ImageError::InvalidImage {
            reference: self.name.clone(),
            reason: format!("archive member {name:?}: symlink loop"),
        })
    }

    fn reader(&self, m: &Member) -> Result<impl Read> {
        let mut f = File::open(self.path).map_err(|e| ImageError::io("opening", self.path, e))?;
        f.seek(SeekFrom::Start(m.offset))
            .map_err(|e| ImageError::io("seeking in", self.path, e))?;
        Ok(f.take(m.size))
    }

    fn read_small(&self, name: &str) -> Result<Vec<u8>> {
        let m = self.member(name)?;
        if m.size > MAX_JSON_BYTES {
            return Err(ImageError::InvalidImage {
                reference: self.name.clone(),
                reason: format!("{name} is larger than {MAX_JSON_BYTES} bytes"),
            });
        }
        let mut data = Vec::new();
        self.reader(&m)?
            .read_to_end(&mut data)
            .map_err(|e| ImageError::io("reading", self.path, e))?;
        Ok(data)
    }
}

fn index_members(path: &Path, name: &str) -> Result<HashMap<String, Member>> {
    let f = File::open(path).map_err(|e| ImageError::io("opening", path, e))?;
    let mut ar = tar::Archive::new(f);
    let mut members = HashMap::new();
    let bad = |e: io::Error| ImageError::io("reading docker-archive", path, e);
    for e in ar.entries_with_seek().map_err(bad)? {
        let e = e.map_err(bad)?;
        let key = clean(&String::from_utf8_lossy(&e.path_bytes()));
        let link = match e.header().entry_type() {
            tar::EntryType::Symlink => e
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned()),
            _ => None,
        };
        members.insert(
            key,
            Member {
                offset: e.raw_file_position(),
                size: e.size(),
                link,
            },
        );
        if members.len() > 100_000 {
            return Err(ImageError::InvalidImage {
                reference: name.to_string(),
                reason: "too many archive members".into(),
            });
        }
    }
    Ok(members)
}

/// Import the image `reference` (a RepoTag or `@N`; optional when the
/// archive holds one image) from the docker-archive at `path`.
pub fn import(
    store: &Store,
    path: &Path,
    reference: Option<&str>,
    quiet: bool,
) -> Result<(ResolvedImage, FetchStats)> {
    let name = match reference {
        Some(r) => format!("docker-archive:{}:{r}", path.display()),
        None => format!("docker-archive:{}", path.display()),
    };
    let archive = Archive {
        path,
        members: index_members(path, &name)?,
        name: name.clone(),
    };
    let manifests: Vec<ArchiveManifest> = parse_json(
        &name,
        "manifest.json",
        &archive.read_small("manifest.json")?,
    )?;
    let chosen = select(&name, &manifests, reference)?;
    let mut stats = FetchStats::default();

    let config_bytes = archive.read_small(&chosen.config)?;
    let config_digest = store.put_bytes(&name, &config_bytes)?;
    let config = parse_config(&name, &config_bytes)?;
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != chosen.layers.len() {
        return Err(ImageError::InvalidImage {
            reference: name,
            reason: format!(
                "manifest.json lists {} layers but the config has {} diff_ids",
                chosen.layers.len(),
                diff_ids.len()
            ),
        });
    }
    let mut layer_descs = Vec::new();
    for (layer, diff_id) in chosen.layers.iter().zip(diff_ids) {
        let m = archive.member(layer)?;
        let mut magic = [0u8; 4];
        let got = archive
            .reader(&m)?
            .read(&mut magic)
            .map_err(|e| ImageError::io("reading", path, e))?;
        let (media_type, digest) = match Compression::detect(&magic[..got]) {
            Compression::Gzip => (MediaType::ImageLayerGzip, None),
            Compression::Zstd => (MediaType::ImageLayerZstd, None),
            // Uncompressed: the blob digest is the diff_id.
            Compression::None => (MediaType::ImageLayer, Some(diff_id.parse::<Digest>()?)),
        };
        let digest = match digest {
            Some(d) => d,
            None => {
                let mut h = HashingReader::new(archive.reader(&m)?, Algorithm::Sha256);
                h.drain().map_err(|e| ImageError::io("reading", path, e))?;
                h.finish().0
            }
        };
        if store.has_blob(&digest) {
            stats.blobs_reused += 1;
        } else {
            let progress =
                Progress::bytes(Some(m.size), format!("copy {:.12}", digest.hex()), quiet);
            stats.bytes_fetched +=
                store.put_blob(&name, &digest, Some(m.size), archive.reader(&m)?, &progress)?;
            stats.blobs_fetched += 1;
        }
        layer_descs.push(descriptor(&name, media_type, m.size, &digest)?);
    }
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(
            &name,
            MediaType::ImageConfig,
            config_bytes.len() as u64,
            &config_digest,
        )?)
        .layers(layer_descs)
        .build()
        .map_err(|e| ImageError::InvalidImage {
            reference: name.clone(),
            reason: format!("building manifest: {e}"),
        })?;
    let body = serde_json::to_vec(&manifest).map_err(|e| ImageError::Json {
        reference: name.clone(),
        what: "generated manifest".into(),
        source: e,
    })?;
    let manifest_digest = store.put_bytes(&name, &body)?;
    let img = ResolvedImage::new(&name, manifest_digest, body.len() as u64, &manifest, config)?;
    Ok((img, stats))
}

fn descriptor(
    name: &str,
    mt: MediaType,
    size: u64,
    d: &Digest,
) -> Result<oci_spec::image::Descriptor> {
    DescriptorBuilder::default()
        .media_type(mt)
        .size(size)
        .digest(d.to_oci())
        .build()
        .map_err(|e| ImageError::InvalidImage {
            reference: name.to_string(),
            reason: format!("building descriptor: {e}"),
        })
}

fn select<'a>(
    name: &str,
    manifests: &'a [ArchiveManifest],
    reference: Option<&str>,
) -> Result<&'a ArchiveManifest> {
    match reference {
        Some(r) if r.starts_with('@') => {
            let i: usize = r[1..].parse().map_err(|_| ImageError::InvalidReference {
                reference: r.to_string(),
                reason: "expected @INDEX".into(),
            })?;
            manifests.get(i).ok_or_else(|| ImageError::NotFound {
                reference: name.to_string(),
                what: format!("image #{i}"),
            })
        }
        Some(r) => {
            let want = r
                .parse::<crate::reference::Reference>()
                .ok()
                .map(|x| x.to_string());
            manifests
                .iter()
                .find(|m| {
                    m.repo_tags.iter().flatten().any(|t| {
                        t == r
                            || want.is_some()
                                && t.parse::<crate::reference::Reference>()
                                    .ok()
                                    .map(|x| x.to_string())
                                    == want
                    })
                })
                .ok_or_else(|| ImageError::NotFound {
                    reference: name.to_string(),
                    what: format!("image tagged {r:?}"),
                })
        }
        None => match manifests {
            [one] => Ok(one),
            [] => Err(ImageError::NotFound {
                reference: name.to_string(),
                what: "any image in manifest.json".into(),
            }),
            _ => Err(ImageError::InvalidImage {
                reference: name.to_string(),
                reason: "the archive holds several images; add :TAG or :@INDEX".into(),
            }),
        },
    }
}
