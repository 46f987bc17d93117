//! The unpacker's own error type.

use std::io;

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
    /// The layer exceeds an [`UnpackLimits`](super::UnpackLimits) cap.
    #[error("{what} exceeds the limit of {limit}")]
    Limit {
        /// Which limit.
        what: &'static str,
        /// The limit.
        limit: u64,
    },
    /// The layer stream is not a valid tar archive (or could not be read).
    #[error("reading the layer archive")]
    Read(#[source] io::Error),
}

impl UnpackError {
    pub(super) fn io(path: &str, op: &'static str, source: io::Error) -> Self {
        UnpackError::Io {
            path: path.to_string(),
            op,
            source,
        }
    }

    pub(super) fn from_read(path: &str, source: io::Error) -> Self {
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
