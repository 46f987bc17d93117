//! clap front-ends of the image verbs, for the `vmrun` binary to embed.
//!
//! Each verb has an `Args` struct and a `run_*` function returning a
//! report whose `Display` is the text to print on stdout.

use std::fmt;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use crate::bundle::{prepare_bundle, BundleInfo, BundleOptions};
use crate::error::{ImageError, Result};
use crate::platform::Platform;
use crate::reference::Reference;
use crate::registry::{self, Credentials, PullOptions, PullReport};
use crate::source::{ImageSource, PullPolicy};
use crate::store::{GcReport, Store, StoredImage};
use crate::unpack::UnpackLimits;

/// Where the image store lives (`--image-store`, `$VMRUN_IMAGE_STORE`).
#[derive(Debug, Clone, Args, Default)]
pub struct StoreArgs {
    /// Image store directory [default: $VMRUN_IMAGE_STORE or /var/lib/vmrun/images]
    #[arg(long = "image-store", value_name = "DIR", global = true)]
    pub image_store: Option<PathBuf>,
}

impl StoreArgs {
    /// Open the selected store.
    pub fn open(&self) -> Result<Store> {
        Store::open(self.image_store.clone().unwrap_or_else(Store::default_root))
    }
}

/// Registry and platform options shared by `pull`, `image unpack` and `run --image`.
#[derive(Debug, Clone, Args, Default)]
pub struct RegistryArgs {
    /// Platform to pick from multi-arch images (OS/ARCH[/VARIANT])
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", default_value = "linux/amd64")]
    pub platform: String,
    /// Credentials USER:PASSWORD for the registry
    #[arg(long, value_name = "USER:PASSWORD")]
    pub creds: Option<String>,
    /// Auth file (containers auth.json / docker config.json format)
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// Allow plain HTTP and unverified TLS for a non-loopback registry
    #[arg(long)]
    pub insecure: bool,
}

impl RegistryArgs {
    /// Convert to [`PullOptions`].
    pub fn pull_options(&self, quiet: bool) -> Result<PullOptions> {
        let credentials = match &self.creds {
            Some(c) => Some(
                Credentials::parse(c).ok_or_else(|| ImageError::InvalidReference {
                    reference: "--creds".into(),
                    reason: "expected USER:PASSWORD".into(),
                })?,
            ),
            None => None,
        };
        Ok(PullOptions {
            platform: if self.platform.is_empty() {
                Platform::default()
            } else {
                self.platform.parse()?
            },
            insecure: self.insecure,
            credentials,
            authfile: self.authfile.clone(),
            quiet,
        })
    }
}

/// `vmrun pull REF`
#[derive(Debug, Clone, Args)]
pub struct PullArgs {
    /// Image reference.
    #[arg(help = "Image reference ([REGISTRY/]REPO[:TAG][@DIGEST])")]
    pub reference: String,
    /// Registry options
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// No progress output
    #[arg(short, long)]
    pub quiet: bool,
}

impl fmt::Display for PullReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} {}", self.reference, self.image.manifest_digest)?;
        writeln!(
            f,
            "fetched {} blobs ({} bytes), reused {}",
            self.stats.blobs_fetched, self.stats.bytes_fetched, self.stats.blobs_reused
        )
    }
}

/// Run `pull`.
pub fn run_pull(args: &PullArgs, store: &Store) -> Result<PullReport> {
    let reference: Reference = args.reference.parse()?;
    registry::pull(store, &reference, &args.registry.pull_options(args.quiet)?)
}

/// Output format of `images`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum ImagesFormat {
    /// Aligned table.
    #[default]
    Table,
    /// JSON array.
    Json,
}

/// `vmrun images`
#[derive(Debug, Clone, Args, Default)]
pub struct ImagesArgs {
    /// Only print names
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not truncate digests
    #[arg(long)]
    pub no_trunc: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t)]
    pub format: ImagesFormat,
}

/// Output of `images`.
#[derive(Debug, Clone)]
pub struct ImagesReport {
    /// Stored images.
    pub images: Vec<StoredImage>,
    /// How to print.
    pub args: ImagesArgs,
}

fn human(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < units.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

impl fmt::Display for ImagesReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.args.format == ImagesFormat::Json {
            let v: Vec<serde_json::Value> = self
                .images
                .iter()
                .map(|i| {
                    serde_json::json!({
                        "name": i.name,
                        "digest": i.manifest.digest().to_string(),
                        "size": i.size,
                    })
                })
                .collect();
            return writeln!(f, "{}", serde_json::Value::Array(v));
        }
        if self.args.quiet {
            return self
                .images
                .iter()
                .try_for_each(|i| writeln!(f, "{}", i.name));
        }
        let width = self
            .images
            .iter()
            .map(|i| i.name.len())
            .max()
            .unwrap_or(0)
            .max(4);
        writeln!(f, "{:width$}  {:19}  SIZE", "NAME", "DIGEST")?;
        for i in &self.images {
            let d = i.manifest.digest().to_string();
            let shown = if self.args.no_trunc {
                d
            } else {
                d.chars().take(19).collect()
            };
            writeln!(f, "{:width$}  {:19}  {}", i.name, shown, human(i.size))?;
        }
        Ok(())
    }
}

/// Run `images`.
pub fn run_images(args: &ImagesArgs, store: &Store) -> Result<ImagesReport> {
    Ok(ImagesReport {
        images: store.list()?,
        args: args.clone(),
    })
}

/// `vmrun rmi REF...`
#[derive(Debug, Clone, Args)]
pub struct RmiArgs {
    /// Images to remove
    #[arg(required = true)]
    pub references: Vec<String>,
}

/// Output of `rmi`.
#[derive(Debug, Clone)]
pub struct RmiReport {
    /// Names removed.
    pub untagged: Vec<String>,
    /// Blob garbage collection.
    pub gc: GcReport,
}

impl fmt::Display for RmiReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for u in &self.untagged {
            writeln!(f, "Untagged: {u}")?;
        }
        writeln!(
            f,
            "Deleted {} blobs ({})",
            self.gc.blobs_removed,
            human(self.gc.bytes_freed)
        )
    }
}

fn stored_name(store: &Store, r: &str) -> Result<String> {
    if store.lookup(r)?.is_some() {
        return Ok(r.to_string());
    }
    let name = r.parse::<Reference>()?.to_string();
    match store.lookup(&name)? {
        Some(_) => Ok(name),
        None => Err(ImageError::NotInStore {
            reference: r.to_string(),
            store: store.root().to_path_buf(),
        }),
    }
}

/// Run `rmi`: untag every name (all must exist) and delete unreferenced blobs.
pub fn run_rmi(args: &RmiArgs, store: &Store) -> Result<RmiReport> {
    let names = args
        .references
        .iter()
        .map(|r| stored_name(store, r))
        .collect::<Result<Vec<_>>>()?;
    let mut untagged = Vec::new();
    for n in names {
        if store.untag(&n)? {
            untagged.push(n);
        }
    }
    Ok(RmiReport {
        untagged,
        gc: store.gc()?,
    })
}

/// Unpack limits on the command line.
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Maximum total uncompressed layer bytes
    #[arg(long, value_name = "BYTES", default_value_t = UnpackLimits::default().max_bytes)]
    pub max_size: u64,
    /// Maximum number of archive entries over all layers
    #[arg(long, value_name = "N", default_value_t = UnpackLimits::default().max_entries)]
    pub max_entries: u64,
}

/// `vmrun image unpack SOURCE BUNDLE_DIR`
#[derive(Debug, Clone, Args)]
pub struct UnpackArgs {
    /// Image source.
    #[arg(help = "oci:DIR[:TAG], docker-archive:FILE[:REF] or a registry reference")]
    pub source: String,
    /// Bundle directory to create (rootfs/ and config.json)
    pub bundle_dir: PathBuf,
    /// Registry options
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Unpack limits
    #[command(flatten)]
    pub limits: LimitArgs,
    /// When to contact the registry
    #[arg(long, value_enum, default_value_t)]
    pub pull: PullPolicy,
    /// No progress output
    #[arg(short, long)]
    pub quiet: bool,
    /// Command and arguments replacing the image's Cmd
    #[arg(last = true)]
    pub args: Vec<String>,
}

/// Run `image unpack`.
pub fn run_image_unpack(args: &UnpackArgs, store: &Store) -> Result<BundleInfo> {
    let source: ImageSource = args.source.parse()?;
    let opts = BundleOptions {
        pull: args.registry.pull_options(args.quiet)?,
        policy: args.pull,
        limits: UnpackLimits {
            max_bytes: args.limits.max_size,
            max_entries: args.limits.max_entries,
        },
    };
    let over = (!args.args.is_empty()).then_some(args.args.as_slice());
    prepare_bundle(store, &source, &args.bundle_dir, over, &opts)
}

/// The `--image SOURCE` part of `vmrun run` (flatten into the run args).
#[derive(Debug, Clone, Args, Default)]
pub struct RunImageArgs {
    /// Image to run.
    #[arg(
        long,
        value_name = "SOURCE",
        help = "Run this image (oci:DIR[:TAG], docker-archive:FILE[:REF] or a registry reference)"
    )]
    pub image: Option<String>,
    /// Registry options
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// When to contact the registry
    #[arg(long, value_enum, default_value_t)]
    pub pull: PullPolicy,
}

/// For `vmrun run --image`: prepare `bundle_dir` from the image (returns
/// `None` without `--image`). `container_args` (after `--`) replace `Cmd`.
pub fn run_image(
    args: &RunImageArgs,
    store: &Store,
    bundle_dir: &Path,
    container_args: &[String],
) -> Result<Option<BundleInfo>> {
    let Some(image) = &args.image else {
        return Ok(None);
    };
    let source: ImageSource = image.parse()?;
    let opts = BundleOptions {
        pull: args.registry.pull_options(false)?,
        policy: args.pull,
        limits: UnpackLimits::default(),
    };
    let over = (!container_args.is_empty()).then_some(container_args);
    prepare_bundle(store, &source, bundle_dir, over, &opts).map(Some)
}
