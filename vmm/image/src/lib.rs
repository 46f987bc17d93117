//! OCI images (layout, docker-archive, registry) turned into runtime bundles.
//!
//! The entry points are [`prepare_bundle`] (used by `vmrun run --image`)
//! and the [`cli`] module (one clap `Args` struct and one `run_*` function
//! per `vmrun` image verb). Images are kept in a content-addressed
//! [`Store`] that verifies every blob coming from outside.
//!
//! # Module dependency order
//!
//! Each module uses only modules listed before it (no import cycles):
//!
//! 1. leaves, without `crate::` imports: [`unpack`] (layer tar streams
//!    onto a rootfs, with its own [`unpack::UnpackError`]), [`decompress`],
//!    [`progress`], [`user`];
//! 2. [`error`] (wraps `UnpackError` as a source);
//! 3. [`digest`], [`platform`], [`mod@reference`];
//! 4. [`image`]: index, manifest and config parsed from bytes;
//! 5. [`store`]: blobs, names, reading images back;
//! 6. [`fetch`], then the sources built on it: [`layout`],
//!    [`docker_archive`], [`registry`]; then [`source`];
//! 7. [`bundle`], with [`bundle::unpack_image()`] (store → decompress →
//!    unpacker, verified) and [`bundle::config`] (`config.json`);
//! 8. [`cli`].
//!
//! Untrusted input enters through plain functions over bytes and readers:
//! [`image::classify`], [`image::parse_index`], [`image::parse_manifest`],
//! [`image::parse_config`], [`decompress::Decompressor::new`] and
//! [`unpack::Unpacker::apply_layer`].

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
