//! Loading and validating an OCI bundle (`config.json` + rootfs) before any
//! VM exists, so that bad input fails fast with an error naming the field or
//! path and nothing is left behind.

use std::fs::File;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::spec_check::{check_spec, FieldProblem};

/// Bundle annotation naming a disk image (relative to the bundle) to use as
/// the root filesystem over virtio-blk instead of sharing `root.path`.
pub const ROOTFS_IMAGE_ANNOTATION: &str = "vmrun.rootfs-image";
/// Bundle annotation naming the filesystem type of the rootfs image
/// (default [`DEFAULT_IMAGE_FSTYPE`]).
pub const ROOTFS_FSTYPE_ANNOTATION: &str = "vmrun.rootfs-fstype";
/// Filesystem type assumed for a rootfs image.
pub const DEFAULT_IMAGE_FSTYPE: &str = "ext4";

/// Why a bundle cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The bundle directory is missing or not a directory.
    #[error("bundle {0} is not a directory")]
    NotADirectory(PathBuf),
    /// `config.json` is missing.
    #[error("{0} does not exist (an OCI bundle needs a config.json)")]
    NoConfig(PathBuf),
    /// `config.json` could not be read.
    #[error("cannot read {0}")]
    ReadConfig(PathBuf, #[source] std::io::Error),
    /// `config.json` is not valid JSON.
    #[error("{0} is not valid JSON")]
    ParseConfig(PathBuf, #[source] serde_json::Error),
    /// A field of `config.json` is missing or has the wrong type/value.
    #[error("{path}: {field} {problem}")]
    Field {
        /// The config.json path.
        path: PathBuf,
        /// The field, dotted (`process.args`).
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// A field the VM could not run as given (NUL bytes, wrong types,
    /// values out of range).
    #[error("{path}: {problem}")]
    Spec {
        /// The config.json path.
        path: PathBuf,
        /// The field and what is wrong with it.
        problem: FieldProblem,
    },
    /// The root filesystem directory does not exist.
    #[error("root.path: the rootfs directory {0} does not exist or is not a directory")]
    NoRootfs(PathBuf),
    /// The rootfs image cannot be opened.
    #[error("cannot read the rootfs image {0}")]
    Image(PathBuf, #[source] std::io::Error),
}

/// Where the container's root filesystem comes from on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostRootfs {
    /// A directory shared with virtio-fs.
    Dir(PathBuf),
    /// A disk image attached with virtio-blk.
    Image {
        /// The image file.
        path: PathBuf,
        /// Its filesystem type (for the guest's mount).
        fstype: String,
    },
}

/// A validated bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The bundle directory (absolute).
    pub dir: PathBuf,
    /// `config.json` as parsed (sent to the agent unchanged).
    pub spec: Value,
    /// The root filesystem.
    pub rootfs: HostRootfs,
    /// `root.readonly`.
    pub readonly: bool,
}

fn field_error(path: &Path, field: &'static str, problem: impl Into<String>) -> BundleError {
    BundleError::Field {
        path: path.to_path_buf(),
        field,
        problem: problem.into(),
    }
}

impl Bundle {
    /// Loads `dir/config.json` and checks what the VM needs: a `process`
    /// with non-empty `args`, a `root.path` directory (unless `image`, or
    /// the `vmrun.rootfs-image` annotation, names a readable disk image).
    pub fn load(dir: &Path, image: Option<&Path>) -> Result<Self, BundleError> {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        if !dir.is_dir() {
            return Err(BundleError::NotADirectory(dir));
        }
        let config = dir.join("config.json");
        let text = match std::fs::read_to_string(&config) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BundleError::NoConfig(config))
            }
            Err(e) => return Err(BundleError::ReadConfig(config, e)),
        };
        let spec: Value =
            serde_json::from_str(&text).map_err(|e| BundleError::ParseConfig(config.clone(), e))?;
        if !spec.is_object() {
            return Err(field_error(&config, "(top level)", "is not a JSON object"));
        }
        check_process(&config, &spec)?;
        check_spec(&spec).map_err(|problem| BundleError::Spec {
            path: config.clone(),
            problem,
        })?;
        let root = spec.get("root");
        let readonly = match root.and_then(|r| r.get("readonly")) {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(field_error(&config, "root.readonly", "is not a boolean")),
        };
        let annotated = spec
            .get("annotations")
            .and_then(|a| a.get(ROOTFS_IMAGE_ANNOTATION))
            .and_then(Value::as_str)
            .map(|p| dir.join(p));
        let rootfs = match image.map(Path::to_path_buf).or(annotated) {
            Some(path) => {
                File::open(&path).map_err(|e| BundleError::Image(path.clone(), e))?;
                if !path.is_file() {
                    return Err(BundleError::Image(
                        path,
                        std::io::Error::other("not a regular file"),
                    ));
                }
                let fstype = spec
                    .get("annotations")
                    .and_then(|a| a.get(ROOTFS_FSTYPE_ANNOTATION))
                    .and_then(Value::as_str)
                    .unwrap_or(DEFAULT_IMAGE_FSTYPE)
                    .to_string();
                HostRootfs::Image { path, fstype }
            }
            None => {
                let root_path = root
                    .and_then(|r| r.get("path"))
                    .ok_or_else(|| field_error(&config, "root.path", "is missing"))?
                    .as_str()
                    .ok_or_else(|| field_error(&config, "root.path", "is not a string"))?;
                if root_path.is_empty() {
                    return Err(field_error(&config, "root.path", "is empty"));
                }
                let path = dir.join(root_path);
                if !path.is_dir() {
                    return Err(BundleError::NoRootfs(path));
                }
                HostRootfs::Dir(path)
            }
        };
        Ok(Self {
            dir,
            spec,
            rootfs,
            readonly,
        })
    }
}

fn check_process(config: &Path, spec: &Value) -> Result<(), BundleError> {
    let process = spec
        .get("process")
        .ok_or_else(|| field_error(config, "process", "is missing"))?;
    if !process.is_object() {
        return Err(field_error(config, "process", "is not an object"));
    }
    let args = process
        .get("args")
        .ok_or_else(|| field_error(config, "process.args", "is missing"))?
        .as_array()
        .ok_or_else(|| field_error(config, "process.args", "is not an array"))?;
    if args.is_empty() {
        return Err(field_error(
            config,
            "process.args",
            "is empty (nothing to run)",
        ));
    }
    if !args.iter().all(Value::is_string) {
        return Err(field_error(
            config,
            "process.args",
            "has a non-string entry",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle(config: &str, with_rootfs: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), config).unwrap();
        if with_rootfs {
            std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        }
        dir
    }

    const GOOD: &str = r#"{"ociVersion":"1.0.2","process":{"args":["echo","hi"],"cwd":"/","user":{"uid":0,"gid":0}},"root":{"path":"rootfs","readonly":true}}"#;

    #[test]
    fn a_good_bundle_loads() {
        let dir = bundle(GOOD, true);
        let b = Bundle::load(dir.path(), None).unwrap();
        assert!(b.readonly);
        assert_eq!(b.rootfs, HostRootfs::Dir(dir.path().join("rootfs")));
        assert_eq!(b.spec["process"]["args"][1], "hi");
    }

    #[test]
    fn errors_name_the_field_or_path() {
        let empty = tempfile::tempdir().unwrap();
        let err = Bundle::load(empty.path(), None).unwrap_err().to_string();
        assert!(err.contains("config.json does not exist"), "{err}");

        let dir = bundle("{not json", true);
        let err = Bundle::load(dir.path(), None).unwrap_err().to_string();
        assert!(err.contains("is not valid JSON"), "{err}");

        let dir = bundle(r#"{"process":{"args":[]},"root":{"path":"rootfs"}}"#, true);
        let err = Bundle::load(dir.path(), None).unwrap_err().to_string();
        assert!(err.contains("process.args is empty"), "{err}");

        let dir = bundle(r#"{"root":{"path":"rootfs"}}"#, true);
        let err = Bundle::load(dir.path(), None).unwrap_err().to_string();
        assert!(err.contains("process is missing"), "{err}");

        let dir = bundle(GOOD, false);
        let err = Bundle::load(dir.path(), None).unwrap_err().to_string();
        assert!(err.contains("root.path") && err.contains("rootfs"), "{err}");

        let dir = bundle(GOOD, true);
        let missing = dir.path().join("disk.img");
        let err = Bundle::load(dir.path(), Some(&missing))
            .unwrap_err()
            .to_string();
        assert!(err.contains("disk.img"), "{err}");

        let err = Bundle::load(&dir.path().join("nope"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a directory"), "{err}");

        let dir = bundle(
            r#"{"process":{"args":["echo","a\u0000b"],"cwd":"/"},"root":{"path":"rootfs"}}"#,
            true,
        );
        let err = Bundle::load(dir.path(), None).unwrap_err().to_string();
        assert!(
            err.contains("config.json: process.args[1]: contains a NUL byte"),
            "{err}"
        );
    }

    #[test]
    fn an_image_replaces_the_rootfs_dir() {
        let dir = bundle(
            r#"{"ociVersion":"1.0.2","process":{"args":["sh"],"cwd":"/","user":{"uid":0,"gid":0}},"root":{"path":"gone"}}"#,
            false,
        );
        let image = dir.path().join("disk.img");
        std::fs::write(&image, [0u8; 512]).unwrap();
        let b = Bundle::load(dir.path(), Some(&image)).unwrap();
        assert_eq!(
            b.rootfs,
            HostRootfs::Image {
                path: image,
                fstype: "ext4".into()
            }
        );
        assert!(!b.readonly);
    }
}
