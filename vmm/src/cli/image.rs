//! The image verbs — `pull`, `images`, `rmi`, `image unpack` — as thin
//! front ends over `vmrun-image`.

use clap::Subcommand;
use vmrun_image::cli::{self as image_cli, StoreArgs};

use super::CliError;

/// `vmrun image ...` sub-verbs.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Unpack an image into a runtime bundle (rootfs/ and config.json).
    Unpack(image_cli::UnpackArgs),
}

/// An image verb with its arguments.
#[derive(Debug)]
pub enum ImageVerb {
    /// `vmrun pull REF`.
    Pull(image_cli::PullArgs),
    /// `vmrun images`.
    Images(image_cli::ImagesArgs),
    /// `vmrun rmi REF...`.
    Rmi(image_cli::RmiArgs),
    /// `vmrun image unpack SOURCE BUNDLE_DIR`.
    Image(ImageCommand),
}

/// Runs an image verb against the selected store; prints its report.
pub fn run(store_args: &StoreArgs, verb: ImageVerb) -> Result<i32, CliError> {
    let store = store_args.open()?;
    let report = match verb {
        ImageVerb::Pull(a) => image_cli::run_pull(&a, &store)?.to_string(),
        ImageVerb::Images(a) => image_cli::run_images(&a, &store)?.to_string(),
        ImageVerb::Rmi(a) => image_cli::run_rmi(&a, &store)?.to_string(),
        ImageVerb::Image(ImageCommand::Unpack(a)) => {
            image_cli::run_image_unpack(&a, &store)?.to_string()
        }
    };
    print!("{report}");
    Ok(0)
}
