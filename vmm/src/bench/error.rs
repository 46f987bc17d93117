//! Why `vmrun bench` could not produce a result.

use std::path::PathBuf;

/// Errors of the bench (a peer that fails is a result, not an error).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Bad flags.
    #[error("{0}")]
    Usage(String),
    /// A host operation failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The workload's bundle cannot be made or used.
    #[error("the workload bundle: {0}")]
    Bundle(String),
    /// vmrun itself cannot run the workload: there is nothing to compare.
    #[error("vmrun cannot run the workload ({variant}): {reason}")]
    VmrunRefused {
        /// The vmrun variant.
        variant: String,
        /// Its error.
        reason: String,
    },
    /// A result file could not be written.
    #[error("cannot write {0}")]
    Write(PathBuf, #[source] std::io::Error),
    /// The chart could not be drawn.
    #[error("cannot draw the chart {0}: {1}")]
    Chart(PathBuf, String),
}
