//! Image documents (index, manifest, config) parsed from bytes, and a
//! resolved single-platform image: manifest, config and layer list.
//!
//! Nothing here reads files or the store: the parsers take the untrusted
//! bytes and return typed documents or an [`ImageError`].

use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};

use crate::digest::Digest;
use crate::error::{ImageError, Result};

/// OCI image manifest media type.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index media type.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker v2 schema 2 manifest media type.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker v2 schema 2 manifest list media type.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// What a manifest-like document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocKind {
    /// Single-platform image manifest.
    Manifest,
    /// Multi-platform index / manifest list.
    Index,
}

/// Classify a manifest document by media type: the one it came with, else
/// its own `mediaType` field, else its shape. A generic type
/// (`application/json`, `text/plain`, empty) says nothing either way.
pub fn classify(reference: &str, media_type: Option<&str>, body: &[u8]) -> Result<DocKind> {
    if let Some(kind) = kind_of_media_type(reference, media_type)? {
        return Ok(kind);
    }
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| ImageError::Json {
        reference: reference.to_string(),
        what: "manifest".into(),
        source: e,
    })?;
    let own = v.get("mediaType").and_then(|m| m.as_str());
    if let Some(kind) = kind_of_media_type(reference, own)? {
        return Ok(kind);
    }
    if v.get("manifests").is_some() {
        Ok(DocKind::Index)
    } else if v.get("layers").is_some() {
        Ok(DocKind::Manifest)
    } else {
        Err(ImageError::UnsupportedMediaType {
            reference: reference.to_string(),
            media_type: "unknown (schema 1?)".into(),
            what: "manifest".into(),
        })
    }
}

/// The kind a manifest media type names; `None` for none or a generic
/// one; an error for any other type.
fn kind_of_media_type(reference: &str, media_type: Option<&str>) -> Result<Option<DocKind>> {
    match media_type.map(|m| m.split(';').next().unwrap_or("").trim()) {
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => Ok(Some(DocKind::Manifest)),
        Some(OCI_INDEX | DOCKER_LIST) => Ok(Some(DocKind::Index)),
        Some(m) if !m.is_empty() && m != "application/json" && m != "text/plain" => {
            Err(ImageError::UnsupportedMediaType {
                reference: reference.to_string(),
                media_type: m.to_string(),
                what: "manifest".into(),
            })
        }
        _ => Ok(None),
    }
}

/// Parse a JSON document, naming it in errors.
pub fn parse_json<T: serde::de::DeserializeOwned>(
    reference: &str,
    what: &str,
    body: &[u8],
) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| ImageError::Json {
        reference: reference.to_string(),
        what: what.to_string(),
        source: e,
    })
}

/// Parse an index / manifest list.
pub fn parse_index(reference: &str, body: &[u8]) -> Result<ImageIndex> {
    parse_json(reference, "image index", body)
}

/// Parse an image manifest.
pub fn parse_manifest(reference: &str, body: &[u8]) -> Result<ImageManifest> {
    parse_json(reference, "image manifest", body)
}

/// Parse an image config.
pub fn parse_config(reference: &str, body: &[u8]) -> Result<ImageConfiguration> {
    parse_json(reference, "image config", body)
}

/// One layer of an image.
#[derive(Debug, Clone)]
pub struct Layer {
    /// Digest of the blob as stored (compressed).
    pub digest: Digest,
    /// Size of the blob.
    pub size: u64,
    /// Media type as given in the manifest.
    pub media_type: String,
    /// Digest of the uncompressed tar (from the config's `rootfs.diff_ids`).
    pub diff_id: Digest,
}

/// A single-platform image whose manifest and config are in the store.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// Name used in messages.
    pub reference: String,
    /// Digest of the manifest.
    pub manifest_digest: Digest,
    /// Size of the manifest.
    pub manifest_size: u64,
    /// Digest of the image config.
    pub config_digest: Digest,
    /// Size of the config blob.
    pub config_size: u64,
    /// The parsed image config.
    pub config: ImageConfiguration,
    /// Layers, lowest first.
    pub layers: Vec<Layer>,
}

impl ResolvedImage {
    /// Build from a parsed manifest and its parsed config: one layer per
    /// manifest layer, with the config's diff_id, of a media type this
    /// crate can unpack.
    pub fn new(
        reference: &str,
        manifest_digest: Digest,
        manifest_size: u64,
        m: &ImageManifest,
        config: ImageConfiguration,
    ) -> Result<Self> {
        let config_digest = Digest::from_oci(m.config().digest())?;
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != m.layers().len() {
            return Err(ImageError::InvalidImage {
                reference: reference.to_string(),
                reason: format!(
                    "manifest has {} layers but config has {} diff_ids",
                    m.layers().len(),
                    diff_ids.len()
                ),
            });
        }
        let mut layers = Vec::new();
        for (d, diff) in m.layers().iter().zip(diff_ids) {
            let media_type = d.media_type().to_string();
            check_layer_media_type(reference, &media_type)?;
            layers.push(Layer {
                digest: Digest::from_oci(d.digest())?,
                size: d.size(),
                media_type,
                diff_id: diff.parse()?,
            });
        }
        Ok(ResolvedImage {
            reference: reference.to_string(),
            manifest_digest,
            manifest_size,
            config_digest,
            config_size: m.config().size(),
            config,
            layers,
        })
    }

    /// Manifest + config + layer bytes (saturating: the sizes come from
    /// an untrusted manifest).
    pub fn total_size(&self) -> u64 {
        self.layers.iter().fold(
            self.manifest_size.saturating_add(self.config_size),
            |sum, l| sum.saturating_add(l.size),
        )
    }
}

/// Reject layer media types we cannot unpack (e.g. encrypted layers).
pub fn check_layer_media_type(reference: &str, media_type: &str) -> Result<()> {
    const OK: &[&str] = &[
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
        "application/vnd.docker.image.rootfs.diff.tar",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    ];
    if OK.contains(&media_type) {
        Ok(())
    } else {
        Err(ImageError::UnsupportedMediaType {
            reference: reference.to_string(),
            media_type: media_type.to_string(),
            what: "layer".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const HEX_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn manifest(layer_size: &str) -> Vec<u8> {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}",
            "config":{{"mediaType":"application/vnd.oci.image.config.v1+json",
                       "digest":"sha256:{HEX_A}","size":10}},
            "layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar",
                        "digest":"sha256:{HEX_B}","size":{layer_size}}},
                      {{"mediaType":"application/vnd.oci.image.layer.v1.tar",
                        "digest":"sha256:{HEX_B}","size":{layer_size}}}]}}"#
        )
        .into_bytes()
    }

    #[test]
    fn a_documents_own_generic_media_type_falls_back_to_its_shape() {
        // Found by the image_documents fuzz target: a document whose own
        // `mediaType` is generic (or empty before a `;`) made classify
        // call itself with that type for ever (a stack overflow).
        for own in ["application/json", "text/plain", ";pplication/x", ""] {
            let index = format!(r#"{{"mediaType":"{own}","manifests":[]}}"#);
            let manifest = format!(r#"{{"mediaType":"{own}","layers":[]}}"#);
            for given in [None, Some("application/json"), Some("text/plain")] {
                assert_eq!(
                    classify("r", given, index.as_bytes()).unwrap(),
                    DocKind::Index,
                    "{own:?} {given:?}"
                );
                assert_eq!(
                    classify("r", given, manifest.as_bytes()).unwrap(),
                    DocKind::Manifest,
                    "{own:?} {given:?}"
                );
            }
        }
        let shapeless = br#"{"mediaType":"application/json"}"#;
        assert!(classify("r", None, shapeless).is_err());
        // The type it came with wins over its own; a foreign own type is
        // refused, naming it.
        let own_list = format!(r#"{{"mediaType":"{DOCKER_LIST}","layers":[]}}"#);
        assert_eq!(
            classify("r", Some(OCI_MANIFEST), own_list.as_bytes()).unwrap(),
            DocKind::Manifest
        );
        assert_eq!(
            classify("r", None, own_list.as_bytes()).unwrap(),
            DocKind::Index
        );
        let foreign = br#"{"mediaType":"application/x-foo","layers":[]}"#;
        let err = classify("r", None, foreign).unwrap_err().to_string();
        assert!(err.contains("application/x-foo"), "{err}");
    }

    fn resolve(layer_size: &str) -> ResolvedImage {
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux",
            "rootfs":{{"type":"layers","diff_ids":["sha256:{HEX_A}","sha256:{HEX_B}"]}}}}"#
        );
        let body = manifest(layer_size);
        let m = parse_manifest("test", &body).unwrap();
        let c = parse_config("test", config.as_bytes()).unwrap();
        ResolvedImage::new("test", Digest::sha256_of(&body), 100, &m, c).unwrap()
    }

    #[test]
    fn total_size_adds_manifest_config_and_layers() {
        assert_eq!(resolve("1000").total_size(), 100 + 10 + 2000);
    }

    /// Reproduced with the image_documents fuzz target: a manifest whose layer
    /// sizes add up past u64::MAX overflowed (a panic in debug builds).
    #[test]
    fn total_size_of_a_hostile_manifest_saturates() {
        assert_eq!(resolve("18446744073709551615").total_size(), u64::MAX);
    }
}
