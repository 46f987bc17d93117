//! Error types of the image crate.

use std::io;
use std::path::PathBuf;

use crate::unpack::UnpackError;

/// Result alias used throughout the crate.
pub type Result<T, E = ImageError> = std::result::Result<T, E>;

/// Everything that can go wrong turning an image into a bundle.
///
/// Messages name the image reference, the blob digest and the failing step;
/// the underlying cause is available through [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A file system operation on a local path failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done ("reading", "creating", ...).
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// An image reference or source string could not be parsed.
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference {
        /// The string given by the user.
        reference: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A digest string is malformed or uses an unsupported algorithm.
    #[error("invalid digest {digest:?}: {reason}")]
    InvalidDigest {
        /// The digest string.
        digest: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A blob's content does not hash to the digest that names it.
    #[error("{reference}: blob {digest} has content digest {actual}; refusing to use it")]
    DigestMismatch {
        /// Image reference the blob belongs to.
        reference: String,
        /// The expected digest.
        digest: String,
        /// The digest of the content actually read.
        actual: String,
    },
    /// A blob's size differs from its descriptor.
    #[error("{reference}: blob {digest} is {actual} bytes, descriptor says {expected}; refusing to use it")]
    SizeMismatch {
        /// Image reference the blob belongs to.
        reference: String,
        /// The blob digest.
        digest: String,
        /// Size from the descriptor.
        expected: u64,
        /// Size actually read (may be a lower bound when reading stopped early).
        actual: u64,
    },
    /// A JSON document (manifest, index, config, ...) is invalid.
    #[error("{reference}: invalid {what}")]
    Json {
        /// Image reference.
        reference: String,
        /// Which document.
        what: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// Something the reference points to does not exist.
    #[error("{reference}: {what} not found")]
    NotFound {
        /// Image reference.
        reference: String,
        /// What is missing.
        what: String,
    },
    /// The image is not available for the requested platform.
    #[error("{reference}: no image for platform {platform} (available: {available})")]
    NoMatchingPlatform {
        /// Image reference.
        reference: String,
        /// The wanted platform.
        platform: String,
        /// Platforms found in the index.
        available: String,
    },
    /// A media type that this crate cannot handle.
    #[error("{reference}: unsupported media type {media_type:?} for {what}")]
    UnsupportedMediaType {
        /// Image reference.
        reference: String,
        /// The media type.
        media_type: String,
        /// What had that media type.
        what: String,
    },
    /// The image content is structurally invalid (e.g. layer/diff_id count mismatch).
    #[error("{reference}: {reason}")]
    InvalidImage {
        /// Image reference.
        reference: String,
        /// What is wrong.
        reason: String,
    },
    /// The registry answered with an error status.
    #[error("{reference}: registry returned HTTP {status} for {url}: {message}")]
    RegistryStatus {
        /// Image reference.
        reference: String,
        /// Request URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// Body excerpt or error summary.
        message: String,
    },
    /// The registry could not be reached or the transfer broke.
    #[error("{reference}: request to {url} failed: {cause}")]
    RegistryTransport {
        /// Image reference.
        reference: String,
        /// Request URL.
        url: String,
        /// What went wrong (kind and innermost message, without the URL).
        cause: String,
    },
    /// Reading a registry response body failed.
    #[error("{reference}: reading response from {url}")]
    RegistryRead {
        /// Image reference.
        reference: String,
        /// Request URL.
        url: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Authentication with the registry failed.
    #[error("{reference}: authentication with {registry} failed: {reason}")]
    Auth {
        /// Image reference.
        reference: String,
        /// Registry host.
        registry: String,
        /// What went wrong.
        reason: String,
    },
    /// Plain HTTP to a non-loopback registry without `--insecure`.
    #[error("{registry}: refusing plain HTTP to a non-loopback registry without --insecure")]
    InsecureRefused {
        /// Registry host.
        registry: String,
    },
    /// Setting up TLS failed.
    #[error("setting up TLS")]
    Tls(#[source] rustls::Error),
    /// A layer could not be applied to the rootfs.
    #[error("{reference}: layer {digest}")]
    Layer {
        /// Image reference.
        reference: String,
        /// Layer digest.
        digest: String,
        /// The cause.
        #[source]
        source: LayerError,
    },
    /// The runtime configuration could not be generated.
    #[error("{reference}: generating config.json: {field}: {reason}")]
    Config {
        /// Image reference.
        reference: String,
        /// The image config field involved (User, WorkingDir, ...).
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The bundle directory is not usable.
    #[error("bundle {path}: {reason}")]
    Bundle {
        /// The bundle directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The requested image is not in the local store.
    #[error("image {reference} is not in the local store {store}")]
    NotInStore {
        /// The reference.
        reference: String,
        /// The store root.
        store: PathBuf,
    },
}

/// Why one layer blob could not be applied to the rootfs.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// The unpacker rejected or failed on the layer's tar stream.
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    /// The compressed blob could not be read or its compression set up.
    #[error("reading the compressed layer blob")]
    Read(#[source] io::Error),
    /// The content differs from what the manifest and config say.
    #[error("{what} is {actual}, expected {expected}")]
    Mismatch {
        /// "compressed blob digest", "blob size" or "uncompressed tar (diff_id) digest".
        what: &'static str,
        /// The value from the manifest or config.
        expected: String,
        /// The value of the content read.
        actual: String,
    },
}

impl ImageError {
    /// Build an [`ImageError::Io`] for `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        ImageError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
