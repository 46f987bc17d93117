//! `vmrun bench`: vmrun against runc, crun, podman, containerd's `ctr`
//! and CRI, QEMU microvm and Firecracker on the same workload (see [`crate::bench`] for what is
//! measured and the `--json` schema).

use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;

use super::{CliError, GlobalOpts};
use crate::bench::bundle::Source;
use crate::bench::runners::RuntimeKind;
use crate::bench::{BenchConfig, BenchError};
use crate::check::{default_initrd, default_kernel};

/// A peer to compare with (`--vs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Peer {
    /// `runc run` of the bundle.
    Runc,
    /// `crun run` of the bundle.
    Crun,
    /// `podman run --rootfs` of the bundle's rootfs.
    Podman,
    /// The same with vmrun as podman's runtime (conmon drives vmrun).
    #[value(name = "podman-vmrun")]
    PodmanVmrun,
    /// `ctr run --rm` through a private containerd, vmrun as the runc v2
    /// shim's runc binary.
    #[value(name = "ctr-vmrun")]
    CtrVmrun,
    /// The same with runc.
    #[value(name = "ctr-runc")]
    CtrRunc,
    /// A pod through a private containerd's CRI plugin, runtime handler
    /// vmrun (needs `vmrun-cri`).
    #[value(name = "cri-vmrun")]
    CriVmrun,
    /// The same with the runtime handler runc.
    #[value(name = "cri-runc")]
    CriRunc,
    /// QEMU's microvm machine booting the same kernel and initramfs.
    #[value(name = "qemu-microvm")]
    QemuMicrovm,
    /// Firecracker booting the same kernel and initramfs.
    Firecracker,
}

/// A vmrun variant (`--vmrun`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Variant {
    /// `vmrun run` in the foreground (always measured: every ratio's base).
    Run,
    /// `vmrun create` + `start` + the VMM's exit + `delete`.
    Lifecycle,
    /// `vmrun boot` to the agent's ready line (the VMM peers' base).
    Boot,
}

/// Arguments of `vmrun bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// The OCI bundle to run (default: a busybox bundle built from the
    /// host's static busybox, running `true`).
    #[arg(long, value_name = "DIR", conflicts_with = "image")]
    pub bundle: Option<PathBuf>,
    /// Run an image's bundle instead (unpacked once into a scratch dir).
    #[command(flatten)]
    pub image: vmrun_image::cli::RunImageArgs,
    /// Measured runs of each runtime.
    #[arg(short = 'n', long = "runs", default_value_t = 8, value_name = "N")]
    pub runs: usize,
    /// Discarded rounds before the measured ones.
    #[arg(long, default_value_t = 1, value_name = "K")]
    pub warmup: usize,
    /// Peers to compare with, comma-separated. Missing or refusing peers
    /// are reported as such.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "PEERS")]
    pub vs: Vec<Peer>,
    /// vmrun's variants to measure (`run` always is).
    #[arg(long = "vmrun", value_enum, value_delimiter = ',', default_values = ["run", "lifecycle", "boot"], value_name = "VARIANTS")]
    pub variants: Vec<Variant>,
    /// Also start K idle containers: host memory per container, creation
    /// rate, and a check that the teardown leaves nothing.
    #[arg(long, value_name = "K")]
    pub density: Option<usize>,
    /// Skip the memory reading of one idle container.
    #[arg(long = "no-memory")]
    pub no_memory: bool,
    /// Write the results as JSON (schema vmrun-bench/1) to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Draw the phases (and the density curve) as SVG into FILE.
    #[arg(long, value_name = "FILE.svg")]
    pub chart: Option<PathBuf>,
    /// Guest kernel. Default: $VMRUN_KERNEL, else $VMRUN_CACHE_DIR/vmlinux.
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// Initramfs with the agent. Default: $VMRUN_INITRD, else $VMRUN_CACHE_DIR/initramfs.cpio.
    #[arg(long, value_name = "PATH")]
    pub initrd: Option<PathBuf>,
    /// Guest memory of every microVM (MiB).
    #[arg(long, default_value_t = 128, value_name = "MIB")]
    pub memory: u64,
    /// Milliseconds idle containers idle before their memory is read.
    #[arg(long = "settle-ms", default_value_t = 2000, value_name = "MS")]
    pub settle_ms: u64,
    /// Seconds after which any one command is killed (a failed run).
    #[arg(long, default_value_t = 300, value_name = "SECS")]
    pub timeout: u64,
    /// Scratch directory (state roots, derived bundles); a local disk or
    /// tmpfs. Default: a fresh one under $TMPDIR, removed afterwards.
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<PathBuf>,
    /// The workload's process (default: the bundle's; busybox: `true`).
    /// Takes every argument after it: put it last.
    #[arg(long, num_args = 1.., allow_hyphen_values = true, value_name = "ARG")]
    pub cmd: Option<Vec<String>>,
}

fn artifact(
    given: &Option<PathBuf>,
    default: PathBuf,
    what: &'static str,
    script: &'static str,
    flag: &'static str,
) -> Result<PathBuf, CliError> {
    match given {
        Some(path) => Ok(path.clone()),
        None if default.exists() => Ok(default),
        None => Err(CliError::NotBuilt {
            what,
            path: default,
            script,
            flag,
        }),
    }
}

fn kinds(args: &BenchArgs) -> (Vec<RuntimeKind>, Vec<RuntimeKind>) {
    let mut variants = vec![RuntimeKind::Vmrun];
    for v in &args.variants {
        let kind = match v {
            Variant::Run => RuntimeKind::Vmrun,
            Variant::Lifecycle => RuntimeKind::VmrunLifecycle,
            Variant::Boot => RuntimeKind::VmrunBoot,
        };
        if !variants.contains(&kind) {
            variants.push(kind);
        }
    }
    let peers = args
        .vs
        .iter()
        .map(|p| match p {
            Peer::Runc => RuntimeKind::Runc,
            Peer::Crun => RuntimeKind::Crun,
            Peer::Podman => RuntimeKind::Podman,
            Peer::PodmanVmrun => RuntimeKind::PodmanVmrun,
            Peer::CtrVmrun => RuntimeKind::CtrVmrun,
            Peer::CtrRunc => RuntimeKind::CtrRunc,
            Peer::CriVmrun => RuntimeKind::CriVmrun,
            Peer::CriRunc => RuntimeKind::CriRunc,
            Peer::QemuMicrovm => RuntimeKind::QemuMicrovm,
            Peer::Firecracker => RuntimeKind::Firecracker,
        })
        .collect();
    (variants, peers)
}

/// Runs `vmrun bench`: the table on stdout, `--json`, `--chart`. Exit 1
/// when the density teardown left something behind.
pub fn run(global: &GlobalOpts, args: BenchArgs) -> Result<i32, CliError> {
    let kernel = artifact(
        &args.kernel,
        default_kernel(),
        "kernel",
        "kernel-config/build.sh",
        "kernel",
    )?;
    let initrd = artifact(
        &args.initrd,
        default_initrd(),
        "initramfs",
        "rootfs/build-initramfs.sh",
        "initrd",
    )?;
    let vmrun = std::env::current_exe().map_err(|source| BenchError::Io {
        what: "finding the vmrun binary".into(),
        source,
    })?;
    let image_dir = std::env::temp_dir().join(format!("vmrun-bench-{}-image", std::process::id()));
    let source = match (&args.bundle, &args.image.image) {
        (Some(dir), _) => Source::Bundle(dir.clone()),
        (None, Some(_)) => {
            let store = global.image_store.open()?;
            let info = vmrun_image::cli::run_image(&args.image, &store, &image_dir, &[])?;
            Source::Bundle(
                info.map(|i| i.bundle_dir)
                    .unwrap_or_else(|| image_dir.clone()),
            )
        }
        (None, None) => Source::Busybox,
    };
    let (variants, peers) = kinds(&args);
    let config = BenchConfig {
        vmrun,
        source,
        cmd: args.cmd.clone(),
        runs: args.runs,
        warmup: args.warmup,
        variants,
        peers,
        kernel,
        initrd,
        memory_mib: args.memory,
        memory: !args.no_memory,
        density: args.density,
        settle: Duration::from_millis(args.settle_ms),
        limit: Duration::from_secs(args.timeout),
        workdir: args.workdir.clone(),
        command_line: std::env::args().collect(),
    };
    let result = crate::bench::run(&config);
    let _ = std::fs::remove_dir_all(&image_dir);
    let report = result?;
    print!("{}", crate::bench::table::render(&report));
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| CliError::Write(path.clone(), e.into()))?;
        std::fs::write(path, text + "\n").map_err(|e| CliError::Write(path.clone(), e))?;
    }
    if let Some(path) = &args.chart {
        crate::bench::chart::write_chart(&report, path)?;
    }
    let clean = report.density.as_ref().is_none_or(|d| d.teardown.clean);
    Ok(if clean { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(words: &[&str]) -> BenchArgs {
        let cli = crate::cli::Cli::try_parse_from(words).unwrap();
        let crate::cli::Command::Bench(args) = cli.command else {
            panic!("not bench")
        };
        args
    }

    #[test]
    fn flags_and_defaults() {
        let a = parse(&["vmrun", "bench"]);
        assert_eq!((a.runs, a.warmup, a.memory, a.density), (8, 1, 128, None));
        assert!(a.vs.is_empty() && a.cmd.is_none() && a.bundle.is_none());
        let (variants, peers) = kinds(&a);
        assert_eq!(
            variants,
            [
                RuntimeKind::Vmrun,
                RuntimeKind::VmrunLifecycle,
                RuntimeKind::VmrunBoot
            ]
        );
        assert!(peers.is_empty());
    }

    #[test]
    fn peers_density_and_a_trailing_cmd() {
        let a = parse(&[
            "vmrun",
            "bench",
            "-n",
            "6",
            "--vs",
            "runc,crun,podman,qemu-microvm,firecracker",
            "--density",
            "5",
            "--vmrun",
            "boot",
            "--json",
            "/tmp/b.json",
            "--cmd",
            "sh",
            "-c",
            "echo hi",
        ]);
        assert_eq!(a.runs, 6);
        assert_eq!(a.density, Some(5));
        assert_eq!(a.vs.len(), 5);
        assert_eq!(
            a.cmd.as_deref(),
            Some(&["sh".to_string(), "-c".into(), "echo hi".into()][..])
        );
        let (variants, peers) = kinds(&a);
        assert_eq!(variants, [RuntimeKind::Vmrun, RuntimeKind::VmrunBoot]);
        assert_eq!(peers[3], RuntimeKind::QemuMicrovm);
    }

    #[test]
    fn containerd_peers_are_named_like_the_report() {
        let a = parse(&[
            "vmrun",
            "bench",
            "--vs",
            "ctr-vmrun,ctr-runc,cri-vmrun,cri-runc",
        ]);
        let (_, peers) = kinds(&a);
        let names: Vec<&str> = peers.iter().map(|p| p.name()).collect();
        assert_eq!(names, ["ctr-vmrun", "ctr-runc", "cri-vmrun", "cri-runc"]);
    }

    #[test]
    fn unknown_peers_and_bundle_with_image_are_refused() {
        assert!(crate::cli::Cli::try_parse_from(["vmrun", "bench", "--vs", "docker"]).is_err());
        assert!(crate::cli::Cli::try_parse_from([
            "vmrun", "bench", "--bundle", "/b", "--image", "oci:/l"
        ])
        .is_err());
    }
}
