//! Pulling images from registries (Distribution API v2).

pub mod auth;
pub mod client;
mod tls;

use std::path::PathBuf;

use oci_spec::image::{DescriptorBuilder, MediaType};

use crate::digest::{self, Hasher};
use crate::error::{ImageError, Result};
use crate::fetch::{fetch, FetchStats};
use crate::image::{
    classify, DocKind, ResolvedImage, DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST,
};
use crate::platform::Platform;
use crate::reference::Reference;
use crate::store::Store;

pub use auth::Credentials;
pub use client::{Client, ClientOptions};

/// Options for [`pull`].
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Platform to select from multi-arch images.
    pub platform: Platform,
    /// Allow plain HTTP / unverified TLS to a non-loopback registry.
    pub insecure: bool,
    /// Explicit credentials (otherwise looked up in `authfile` & co.).
    pub credentials: Option<Credentials>,
    /// Auth file to read credentials from.
    pub authfile: Option<PathBuf>,
    /// No progress bars.
    pub quiet: bool,
}

/// Result of a pull.
#[derive(Debug, Clone)]
pub struct PullReport {
    /// Normalized reference, as stored.
    pub reference: String,
    /// The pulled image.
    pub image: ResolvedImage,
    /// Transfer counters (excluding the top-level manifest lookup).
    pub stats: FetchStats,
}

/// Pull `reference` into the store and tag it there.
pub fn pull(store: &Store, reference: &Reference, opts: &PullOptions) -> Result<PullReport> {
    let name = reference.to_string();
    let credentials = opts
        .credentials
        .clone()
        .or_else(|| auth::lookup_credentials(&reference.registry, opts.authfile.as_deref()));
    let client = Client::new(
        reference,
        &ClientOptions {
            insecure: opts.insecure,
            credentials,
        },
    )?;
    let (body, content_type) = client.manifest(&reference.manifest_reference())?;
    let algorithm = reference
        .digest
        .as_ref()
        .map(|d| d.algorithm())
        .unwrap_or(digest::Algorithm::Sha256);
    let mut h = Hasher::new(algorithm);
    h.update(&body);
    let actual = h.finish();
    if let Some(pinned) = &reference.digest {
        digest::check(&name, pinned, None, &actual, body.len() as u64)?;
    }
    let media_type = match classify(&name, content_type.as_deref(), &body)? {
        DocKind::Index => match content_type.as_deref() {
            Some(DOCKER_LIST) => MediaType::Other(DOCKER_LIST.into()),
            _ => MediaType::Other(OCI_INDEX.into()),
        },
        DocKind::Manifest => match content_type.as_deref() {
            Some(DOCKER_MANIFEST) => MediaType::Other(DOCKER_MANIFEST.into()),
            _ => MediaType::Other(OCI_MANIFEST.into()),
        },
    };
    if !store.has_blob(&actual) {
        store.put_blob(
            &name,
            &actual,
            Some(body.len() as u64),
            body.as_slice(),
            &crate::progress::Progress::hidden(),
        )?;
    }
    let desc = DescriptorBuilder::default()
        .media_type(media_type)
        .size(body.len() as u64)
        .digest(actual.to_oci())
        .build()
        .map_err(|e| ImageError::InvalidImage {
            reference: name.clone(),
            reason: format!("building descriptor: {e}"),
        })?;
    let (image, manifest_desc, stats) = fetch(store, &client, &desc, &opts.platform, opts.quiet)?;
    store.tag(&name, &manifest_desc)?;
    Ok(PullReport {
        reference: name,
        image,
        stats,
    })
}
