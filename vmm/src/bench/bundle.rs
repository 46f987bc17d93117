//! The bundles every runtime runs: the user's (`--bundle`, an unpacked
//! `--image`) or a busybox one built here from the host's static busybox
//! and `vmrun spec`; derived into the bench's work directory with an
//! absolute `root.path` (so the rootfs is the very same directory for
//! every runtime), `process.terminal` off, no `linux.cgroupsPath` (each
//! container gets its runtime's default, named after its id) and the
//! process replaced by `--cmd` (the workload) or `sleep` (idle containers
//! for the memory and density readings).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::error::BenchError;

/// The default workload.
pub const DEFAULT_ARGS: [&str; 1] = ["true"];
/// The process of idle containers.
pub const IDLE_ARGS: [&str; 2] = ["sleep", "3600"];

/// Where the bundle comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A bundle directory (`--bundle`, or the unpacked `--image`).
    Bundle(PathBuf),
    /// A busybox bundle built from the host's static busybox.
    Busybox,
}

/// The bundles, ready to run.
#[derive(Debug, Clone)]
pub struct Workload {
    /// The workload's bundle.
    pub bundle: PathBuf,
    /// Its (shared) root filesystem.
    pub rootfs: PathBuf,
    /// The workload's process.
    pub args: Vec<String>,
    /// The same rootfs running [`IDLE_ARGS`].
    pub idle_bundle: PathBuf,
}

fn io_err(what: String) -> impl FnOnce(std::io::Error) -> BenchError {
    move |source| BenchError::Io { what, source }
}

/// ELF64 little-endian without a `PT_INTERP` program header: runs without
/// a dynamic loader (in a rootfs that has none).
pub fn elf_is_static(bytes: &[u8]) -> bool {
    let u16_at = |at: usize| {
        bytes
            .get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u64_at = |at: usize| {
        bytes
            .get(at..at + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes)
    };
    if bytes.get(..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1][..]) {
        return false;
    }
    let (Some(phoff), Some(entsize), Some(count)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    (0..usize::from(count)).all(|i| {
        let at = usize::try_from(phoff)
            .unwrap_or(usize::MAX)
            .saturating_add(i * usize::from(entsize));
        bytes.get(at..at + 4).is_some_and(|t| t != [3, 0, 0, 0])
    })
}

/// The host's static busybox: `/bin/busybox` (Debian's busybox-static) or
/// the first `busybox` on PATH.
fn static_busybox() -> Result<PathBuf, BenchError> {
    let path_dirs = std::env::var_os("PATH").unwrap_or_default();
    let candidates = std::iter::once(PathBuf::from("/bin/busybox"))
        .chain(std::env::split_paths(&path_dirs).map(|d| d.join("busybox")));
    let mut dynamic = None;
    for c in candidates {
        match std::fs::read(&c) {
            Ok(bytes) if elf_is_static(&bytes) => return Ok(c),
            Ok(_) => dynamic = Some(c),
            Err(_) => {}
        }
    }
    Err(BenchError::Bundle(match dynamic {
        Some(p) => format!(
            "{} is dynamically linked: the default workload needs a static busybox (Debian: apt-get install busybox-static), or pass --bundle/--image",
            p.display()
        ),
        None => "no busybox found for the default workload (Debian: apt-get install busybox-static), or pass --bundle/--image".into(),
    }))
}

/// Builds a busybox bundle in `dir` (`vmrun spec`'s config).
fn build_busybox(vmrun: &Path, dir: &Path) -> Result<(), BenchError> {
    let busybox = static_busybox()?;
    let root = dir.join("rootfs");
    for sub in [
        "bin", "sbin", "usr/bin", "usr/sbin", "etc", "dev", "proc", "sys", "tmp", "root", "run",
    ] {
        std::fs::create_dir_all(root.join(sub))
            .map_err(io_err(format!("creating {}", root.join(sub).display())))?;
    }
    std::fs::copy(&busybox, root.join("bin/busybox")).map_err(io_err(format!(
        "copying {} into the rootfs",
        busybox.display()
    )))?;
    let list = Command::new(&busybox)
        .arg("--list-full")
        .output()
        .map_err(io_err(format!("running {} --list-full", busybox.display())))?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let link = root.join(applet.trim());
        if applet.trim().is_empty() || applet.trim() == "bin/busybox" || link.exists() {
            continue;
        }
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent)
                .map_err(io_err(format!("creating {}", parent.display())))?;
        }
        std::os::unix::fs::symlink("/bin/busybox", &link)
            .map_err(io_err(format!("linking {}", link.display())))?;
    }
    let files = [
        ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
        ("etc/group", "root:x:0:\n"),
    ];
    for (name, text) in files {
        std::fs::write(root.join(name), text).map_err(io_err(format!("writing {name}")))?;
    }
    let spec = Command::new(vmrun)
        .arg("spec")
        .arg("--bundle")
        .arg(dir)
        .output()
        .map_err(io_err(format!("running {} spec", vmrun.display())))?;
    if !spec.status.success() {
        return Err(BenchError::Bundle(format!(
            "vmrun spec failed: {}",
            String::from_utf8_lossy(&spec.stderr).trim()
        )));
    }
    Ok(())
}

/// `spec` with an absolute root, no terminal, no cgroupsPath and `args`.
pub fn derive_spec(mut spec: Value, rootfs: &Path, args: &[String]) -> Value {
    spec["root"]["path"] = Value::String(rootfs.display().to_string());
    spec["process"]["terminal"] = Value::Bool(false);
    spec["process"]["args"] = Value::from(args.to_vec());
    if let Some(linux) = spec.get_mut("linux").and_then(Value::as_object_mut) {
        linux.remove("cgroupsPath");
    }
    spec
}

fn write_bundle(dir: &Path, spec: &Value) -> Result<(), BenchError> {
    std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
    let text = serde_json::to_string_pretty(spec).map_err(|e| BenchError::Bundle(e.to_string()))?;
    std::fs::write(dir.join("config.json"), text)
        .map_err(io_err(format!("writing {}/config.json", dir.display())))
}

/// Makes the workload's bundles under `workdir/bundles`.
pub fn prepare(
    source: &Source,
    cmd: Option<&[String]>,
    vmrun: &Path,
    workdir: &Path,
) -> Result<Workload, BenchError> {
    let origin = match source {
        Source::Bundle(dir) => dir.clone(),
        Source::Busybox => {
            let dir = workdir.join("busybox");
            if !dir.join("config.json").is_file() {
                build_busybox(vmrun, &dir)?;
            }
            dir
        }
    };
    let config_path = origin.join("config.json");
    let text = std::fs::read_to_string(&config_path)
        .map_err(io_err(format!("reading {}", config_path.display())))?;
    let spec: Value = serde_json::from_str(&text)
        .map_err(|e| BenchError::Bundle(format!("{} is not JSON: {e}", config_path.display())))?;
    let root = spec
        .pointer("/root/path")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            BenchError::Bundle(format!("{}: root.path is missing", config_path.display()))
        })?;
    let rootfs = origin.join(root);
    let rootfs = rootfs
        .canonicalize()
        .map_err(io_err(format!("the rootfs {}", rootfs.display())))?;
    let args: Vec<String> = match cmd {
        Some(cmd) => cmd.to_vec(),
        None if matches!(source, Source::Busybox) => {
            DEFAULT_ARGS.iter().map(|s| s.to_string()).collect()
        }
        None => spec
            .pointer("/process/args")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
    };
    if args.is_empty() {
        return Err(BenchError::Bundle(format!(
            "{}: process.args is empty and no --cmd was given",
            config_path.display()
        )));
    }
    let bundle = workdir.join("bundles/workload");
    write_bundle(&bundle, &derive_spec(spec.clone(), &rootfs, &args))?;
    let idle: Vec<String> = IDLE_ARGS.iter().map(|s| s.to_string()).collect();
    let idle_bundle = workdir.join("bundles/idle");
    write_bundle(&idle_bundle, &derive_spec(spec, &rootfs, &idle))?;
    Ok(Workload {
        bundle,
        rootfs,
        args,
        idle_bundle,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf(interp: bool) -> Vec<u8> {
        let mut b = vec![0u8; 0x40 + 2 * 56];
        b[..6].copy_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1]);
        b[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&2u16.to_le_bytes());
        b[0x40] = 1; // PT_LOAD
        b[0x40 + 56] = if interp { 3 } else { 1 };
        b
    }

    #[test]
    fn static_elves_have_no_interpreter() {
        assert!(elf_is_static(&elf(false)));
        assert!(!elf_is_static(&elf(true)));
        assert!(!elf_is_static(b"#!/bin/sh\n"));
        let mut truncated = elf(false);
        truncated.truncate(0x50);
        assert!(!elf_is_static(&truncated));
    }

    #[test]
    fn derived_specs_share_the_absolute_rootfs() {
        let spec = serde_json::json!({
            "process": {"terminal": true, "args": ["sh"]},
            "root": {"path": "rootfs", "readonly": true},
            "linux": {"cgroupsPath": "/fixed", "namespaces": []}
        });
        let d = derive_spec(spec, Path::new("/b/rootfs"), &["echo".into(), "hi".into()]);
        assert_eq!(d["root"]["path"], "/b/rootfs");
        assert_eq!(d["root"]["readonly"], true);
        assert_eq!(d["process"]["terminal"], false);
        assert_eq!(d["process"]["args"], serde_json::json!(["echo", "hi"]));
        assert!(d["linux"].get("cgroupsPath").is_none());
        assert!(d["linux"].get("namespaces").is_some());
    }

    #[test]
    fn a_given_bundle_is_derived_with_its_own_args_or_the_cmd() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("rootfs")).unwrap();
        std::fs::write(
            src.join("config.json"),
            r#"{"process":{"args":["/bin/app","-x"]},"root":{"path":"rootfs"}}"#,
        )
        .unwrap();
        let work = dir.path().join("work");
        let w = prepare(
            &Source::Bundle(src.clone()),
            None,
            Path::new("/nonexistent"),
            &work,
        )
        .unwrap();
        assert_eq!(w.args, ["/bin/app", "-x"]);
        assert_eq!(w.rootfs, src.join("rootfs").canonicalize().unwrap());
        let idle: Value = serde_json::from_str(
            &std::fs::read_to_string(w.idle_bundle.join("config.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(idle["process"]["args"], serde_json::json!(IDLE_ARGS));
        let cmd = ["echo".to_string()];
        let w = prepare(
            &Source::Bundle(src),
            Some(&cmd),
            Path::new("/nonexistent"),
            &work,
        )
        .unwrap();
        assert_eq!(w.args, ["echo"]);
    }
}
