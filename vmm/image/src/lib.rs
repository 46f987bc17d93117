//! OCI images (layout, docker-archive, registry) turned into runtime bundles.
//!
//! The entry points are [`prepare_bundle`] (used by `vmrun run --image`)
//! and the [`cli`] module (one clap `Args` struct and one `run_*` function
//! per `vmrun` image verb). Images are kept in a content-addressed
//! [`Store`] that verifies every blob coming from outside.

pub mod bundle;
pub mod cli;
pub mod decompress;
pub mod digest;
pub mod docker_archive;
pub mod error;
pub mod fetch;
pub mod image;
pub mod layout;
pub mod platform;
pub mod progress;
pub mod reference;
pub mod registry;
pub mod source;
pub mod store;
pub mod unpack;
pub mod user;

pub use bundle::{prepare_bundle, BundleInfo, BundleOptions};
pub use error::{ImageError, Result};
pub use platform::Platform;
pub use reference::Reference;
pub use source::{ImageSource, PullPolicy};
pub use store::Store;
pub use unpack::UnpackLimits;
