//! Test-only front end for the image verbs, wired exactly the way the
//! `vmrun` binary is meant to wire them (see `vmrun_image::cli`).

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use vmrun_image::cli::{self, StoreArgs};

#[derive(Parser)]
#[command(name = "vmrun-image-cli", about = "vmrun image verbs (test front end)")]
struct Cli {
    #[command(flatten)]
    store: StoreArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Pull an image from a registry into the store
    Pull(cli::PullArgs),
    /// List images in the store
    Images(cli::ImagesArgs),
    /// Remove images from the store
    Rmi(cli::RmiArgs),
    /// Image operations
    #[command(subcommand)]
    Image(ImageCommand),
    /// Prepare the bundle `vmrun run --image` would run (no VM is started)
    Run(RunArgs),
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Unpack an image into a runtime bundle
    Unpack(cli::UnpackArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    image: cli::RunImageArgs,
    /// Bundle directory (vmrun uses --bundle / its state dir)
    #[arg(long, short)]
    bundle: PathBuf,
    /// Container id
    id: String,
    /// Command replacing the image's Cmd
    #[arg(last = true)]
    args: Vec<String>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let store = cli.store.open()?;
    match cli.command {
        Command::Pull(a) => print!("{}", cli::run_pull(&a, &store)?),
        Command::Images(a) => print!("{}", cli::run_images(&a, &store)?),
        Command::Rmi(a) => print!("{}", cli::run_rmi(&a, &store)?),
        Command::Image(ImageCommand::Unpack(a)) => print!("{}", cli::run_image_unpack(&a, &store)?),
        Command::Run(a) => match cli::run_image(&a.image, &store, &a.bundle, &a.args)? {
            Some(info) => print!("{}: {info}", a.id),
            None => anyhow::bail!("--image is required here"),
        },
    }
    Ok(())
}
