//! The bench's root filesystem as images a container client can import: a
//! docker-archive tar (what `ctr images import` reads) of one or more
//! images over a single layer made from the rootfs, each with its own
//! name and command. Built with the host's `tar`; digests are vmrun-image's
//! SHA-256.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use vmrun_image::digest::{Algorithm, HashingReader};

/// The images' `PATH` when the bundle sets none.
pub const DEFAULT_PATH_ENV: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why the archive could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// A file operation failed.
    #[error("{what}: {path}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// On which path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `tar` failed.
    #[error("`{command}` failed: {output}")]
    Tar {
        /// The command line.
        command: String,
        /// Its stderr, or why it could not start.
        output: String,
    },
}

/// One image of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    /// Its name (`repo/name:tag`).
    pub name: String,
    /// Its command (the image config's `Cmd`).
    pub cmd: Vec<String>,
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ArchiveError {
    let path = path.to_path_buf();
    move |source| ArchiveError::Io { what, path, source }
}

fn tar(args: &[&std::ffi::OsStr]) -> Result<(), ArchiveError> {
    let command = std::iter::once("tar".into())
        .chain(args.iter().map(|a| a.to_string_lossy().into_owned()))
        .collect::<Vec<String>>()
        .join(" ");
    let out = Command::new("tar")
        .args(args)
        .output()
        .map_err(|e| ArchiveError::Tar {
            command: command.clone(),
            output: e.to_string(),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(ArchiveError::Tar {
            command,
            output: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// The hex SHA-256 of a file.
pub fn sha256_file(path: &Path) -> Result<String, ArchiveError> {
    let file = std::fs::File::open(path).map_err(io("opening", path))?;
    let mut reader = HashingReader::new(file, Algorithm::Sha256);
    reader.drain().map_err(io("reading", path))?;
    Ok(reader.finish().0.hex().to_string())
}

/// An image config (the docker-archive's `<digest>.json`).
pub fn image_config(cmd: &[String], env: &[String], layer_digest: &str) -> Value {
    json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2026-01-01T00:00:00Z",
        "config": { "Env": env, "Cmd": cmd, "WorkingDir": "/" },
        "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{layer_digest}")] },
        "history": [{ "created": "2026-01-01T00:00:00Z", "created_by": "vmrun bench: the workload's rootfs" }]
    })
}

/// One `manifest.json` entry.
pub fn manifest_entry(name: &str, config_file: &str, layer_digest: &str) -> Value {
    json!({
        "Config": config_file,
        "RepoTags": [name],
        "Layers": [format!("{layer_digest}/layer.tar")],
    })
}

/// Builds the archive of `images` over `rootfs` in `dir` (created; its
/// staging files removed after); `env` is the images' environment.
/// Returns the archive's path.
pub fn build(
    rootfs: &Path,
    env: &[String],
    images: &[ImageSpec],
    dir: &Path,
) -> Result<PathBuf, ArchiveError> {
    let staging = dir.join("archive");
    std::fs::create_dir_all(&staging).map_err(io("creating", &staging))?;
    let layer = dir.join("layer.tar");
    tar(&[
        "--numeric-owner".as_ref(),
        "--sort=name".as_ref(),
        "-C".as_ref(),
        rootfs.as_os_str(),
        "-cf".as_ref(),
        layer.as_os_str(),
        ".".as_ref(),
    ])?;
    let layer_digest = sha256_file(&layer)?;
    let layer_dir = staging.join(&layer_digest);
    std::fs::create_dir_all(&layer_dir).map_err(io("creating", &layer_dir))?;
    let layer_in = layer_dir.join("layer.tar");
    std::fs::rename(&layer, &layer_in).map_err(io("moving the layer to", &layer_in))?;
    let mut manifest = Vec::new();
    for image in images {
        let text = image_config(&image.cmd, env, &layer_digest).to_string();
        let name = format!(
            "{}.json",
            vmrun_image::digest::Digest::sha256_of(text.as_bytes()).hex()
        );
        let path = staging.join(&name);
        std::fs::write(&path, &text).map_err(io("writing", &path))?;
        manifest.push(manifest_entry(&image.name, &name, &layer_digest));
    }
    let path = staging.join("manifest.json");
    std::fs::write(&path, Value::from(manifest).to_string()).map_err(io("writing", &path))?;
    let archive = dir.join("images.tar");
    tar(&[
        "-C".as_ref(),
        staging.as_os_str(),
        "-cf".as_ref(),
        archive.as_os_str(),
        ".".as_ref(),
    ])?;
    std::fs::remove_dir_all(&staging).map_err(io("removing", &staging))?;
    Ok(archive)
}

/// The process environment of the bundle's `config.json` (a `PATH` if it
/// has none).
pub fn bundle_env(bundle: &Path) -> Vec<String> {
    let spec: Option<Value> = std::fs::read(bundle.join("config.json"))
        .ok()
        .and_then(|raw| serde_json::from_slice(&raw).ok());
    let mut env: Vec<String> = spec
        .as_ref()
        .and_then(|s| s.pointer("/process/env"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push(DEFAULT_PATH_ENV.into());
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archive_holds_every_image_over_one_layer() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("bin")).unwrap();
        std::fs::write(rootfs.join("bin/tool"), b"#!/bin/sh\n").unwrap();
        let images = [
            ImageSpec {
                name: "vmrun.bench/workload:latest".into(),
                cmd: vec!["true".into()],
            },
            ImageSpec {
                name: "vmrun.bench/pause:latest".into(),
                cmd: vec!["sh".into(), "-c".into(), "sleep 1".into()],
            },
        ];
        let env = vec![DEFAULT_PATH_ENV.to_string()];
        let out = dir.path().join("img");
        let archive = build(&rootfs, &env, &images, &out).unwrap();
        assert!(!out.join("archive").exists(), "staging left");
        let listed = Command::new("tar")
            .arg("-tf")
            .arg(&archive)
            .output()
            .unwrap();
        let names = String::from_utf8_lossy(&listed.stdout).into_owned();
        let layers: Vec<&str> = names
            .lines()
            .filter(|l| l.ends_with("/layer.tar"))
            .collect();
        assert_eq!(layers.len(), 1, "{names}");
        let digest = layers[0]
            .trim_start_matches("./")
            .trim_end_matches("/layer.tar");
        let extract = dir.path().join("x");
        std::fs::create_dir_all(&extract).unwrap();
        let ok = Command::new("tar")
            .arg("-xf")
            .arg(&archive)
            .arg("-C")
            .arg(&extract)
            .status()
            .unwrap();
        assert!(ok.success());
        assert_eq!(sha256_file(&extract.join(layers[0])).unwrap(), digest);
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(extract.join("manifest.json")).unwrap()).unwrap();
        let tags: Vec<&str> = manifest
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["RepoTags"][0].as_str())
            .collect();
        assert_eq!(
            tags,
            ["vmrun.bench/workload:latest", "vmrun.bench/pause:latest"]
        );
        let config_file = manifest[1]["Config"].as_str().unwrap();
        let config: Value =
            serde_json::from_slice(&std::fs::read(extract.join(config_file)).unwrap()).unwrap();
        assert_eq!(config["config"]["Cmd"][2], "sleep 1");
        assert_eq!(
            config["rootfs"]["diff_ids"][0],
            format!("sha256:{digest}").as_str()
        );
        assert_eq!(
            format!("{}.json", sha256_file(&extract.join(config_file)).unwrap()),
            config_file
        );
    }

    #[test]
    fn the_bundle_env_is_kept_and_given_a_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"process": {"env": ["TERM=xterm", "PATH=/bin"]}}"#,
        )
        .unwrap();
        assert_eq!(bundle_env(dir.path()), ["TERM=xterm", "PATH=/bin"]);
        std::fs::write(dir.path().join("config.json"), r#"{"process": {}}"#).unwrap();
        assert_eq!(bundle_env(dir.path()), [DEFAULT_PATH_ENV]);
    }
}
