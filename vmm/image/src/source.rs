//! Image source strings: `oci:DIR[:TAG]`, `docker-archive:FILE[:REF]`,
//! `[docker://]REGISTRY-REFERENCE`; and getting the image into the store.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::{ImageError, Result};
use crate::fetch::FetchStats;
use crate::image::ResolvedImage;
use crate::reference::Reference;
use crate::registry::{self, PullOptions};
use crate::store::Store;
use crate::{docker_archive, layout};

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// An OCI image layout directory with an optional tag or digest.
    Layout {
        /// The layout directory.
        dir: PathBuf,
        /// `org.opencontainers.image.ref.name` or a manifest digest.
        tag: Option<String>,
    },
    /// A `docker save` / `podman save` tarball.
    DockerArchive {
        /// The archive file.
        path: PathBuf,
        /// A RepoTag or `@INDEX` selecting one image.
        reference: Option<String>,
    },
    /// A registry reference.
    Registry(Reference),
}

/// Split `PATH[:REF]` at the first `:` (as skopeo does; paths containing
/// `:` are not supported). REF may itself contain `:` and `/`
/// (`localhost/img:1`, `sha256:…`).
fn split_path_tag(rest: &str) -> (PathBuf, Option<String>) {
    match rest.split_once(':') {
        Some((p, t)) if !t.is_empty() => (PathBuf::from(p), Some(t.to_string())),
        Some((p, _)) => (PathBuf::from(p), None),
        None => (PathBuf::from(rest), None),
    }
}

impl FromStr for ImageSource {
    type Err = ImageError;

    fn from_str(s: &str) -> Result<Self> {
        let empty = || ImageError::InvalidReference {
            reference: s.to_string(),
            reason: "missing path".into(),
        };
        if let Some(rest) = s.strip_prefix("oci:") {
            let (dir, tag) = split_path_tag(rest);
            if dir.as_os_str().is_empty() {
                return Err(empty());
            }
            Ok(ImageSource::Layout { dir, tag })
        } else if let Some(rest) = s.strip_prefix("docker-archive:") {
            let (path, reference) = split_path_tag(rest);
            if path.as_os_str().is_empty() {
                return Err(empty());
            }
            Ok(ImageSource::DockerArchive { path, reference })
        } else {
            Ok(ImageSource::Registry(s.parse()?))
        }
    }
}

impl fmt::Display for ImageSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageSource::Layout { dir, tag } => {
                write!(f, "oci:{}", dir.display())?;
                tag.iter().try_for_each(|t| write!(f, ":{t}"))
            }
            ImageSource::DockerArchive { path, reference } => {
                write!(f, "docker-archive:{}", path.display())?;
                reference.iter().try_for_each(|t| write!(f, ":{t}"))
            }
            ImageSource::Registry(r) => write!(f, "{r}"),
        }
    }
}

/// When to contact a registry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum PullPolicy {
    /// Only if the image is not in the store yet.
    #[default]
    Missing,
    /// Always (refreshes the tag; unchanged layers are not downloaded).
    Always,
    /// Never: the image must be in the store.
    Never,
}

/// Get `source` into the store and return the resolved image.
pub fn resolve(
    store: &Store,
    source: &ImageSource,
    opts: &PullOptions,
    policy: PullPolicy,
) -> Result<(ResolvedImage, FetchStats)> {
    match source {
        ImageSource::Layout { dir, tag } => {
            layout::import(store, dir, tag.as_deref(), &opts.platform, opts.quiet)
        }
        ImageSource::DockerArchive { path, reference } => {
            docker_archive::import(store, path, reference.as_deref(), opts.quiet)
        }
        ImageSource::Registry(r) => {
            let name = r.to_string();
            if policy != PullPolicy::Always {
                let stored = store.lookup(&name)?.filter(|d| match d.platform() {
                    Some(p) => opts.platform.matches(
                        &p.os().to_string(),
                        &p.architecture().to_string(),
                        p.variant().as_deref(),
                    ),
                    None => true,
                });
                if let Some(desc) = stored {
                    return Ok((store.load_image(&name, &desc)?, FetchStats::default()));
                }
                if policy == PullPolicy::Never {
                    return Err(ImageError::NotInStore {
                        reference: name,
                        store: store.root().to_path_buf(),
                    });
                }
            }
            let report = registry::pull(store, r, opts)?;
            Ok((report.image, report.stats))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sources() {
        assert_eq!(
            "oci:/a/b:v1".parse::<ImageSource>().unwrap(),
            ImageSource::Layout {
                dir: "/a/b".into(),
                tag: Some("v1".into())
            }
        );
        assert_eq!(
            "oci:./dir".parse::<ImageSource>().unwrap(),
            ImageSource::Layout {
                dir: "./dir".into(),
                tag: None
            }
        );
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            format!("oci:/x:{d}").parse::<ImageSource>().unwrap(),
            ImageSource::Layout {
                dir: "/x".into(),
                tag: Some(d.into())
            }
        );
        assert!(matches!(
            "docker-archive:/t/x.tar".parse::<ImageSource>().unwrap(),
            ImageSource::DockerArchive {
                reference: None,
                ..
            }
        ));
        assert!(matches!(
            "busybox:1".parse::<ImageSource>().unwrap(),
            ImageSource::Registry(_)
        ));
        assert!("oci:".parse::<ImageSource>().is_err());
    }
}
