//! Registry image references (`[registry/]repository[:tag][@digest]`).

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;
use crate::error::{ImageError, Result};

/// The registry used when a reference names none (Docker Hub).
pub const DEFAULT_REGISTRY: &str = "docker.io";
const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";

/// A parsed, normalized registry reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Registry host (with port), e.g. `docker.io`, `127.0.0.1:5000`.
    pub registry: String,
    /// Repository path, e.g. `library/busybox`.
    pub repository: String,
    /// Tag, if any (`latest` is implied when neither tag nor digest is given).
    pub tag: Option<String>,
    /// Digest, if pinned.
    pub digest: Option<Digest>,
}

impl Reference {
    /// Host to talk the Distribution API to (`registry-1.docker.io` for Docker Hub).
    pub fn api_host(&self) -> &str {
        if self.registry == DEFAULT_REGISTRY {
            DOCKER_HUB_API_HOST
        } else {
            &self.registry
        }
    }

    /// Tag or digest used in the manifest URL.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// True if the registry host is a loopback address.
    pub fn is_loopback(&self) -> bool {
        let host = match self.registry.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => self.registry.as_str(),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .map(|ip| ip.is_loopback())
                .unwrap_or(false)
    }
}

fn valid_component(c: &str) -> bool {
    !c.is_empty()
        && c.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
        && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && c.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}

fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && t.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl FromStr for Reference {
    type Err = ImageError;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: &str| ImageError::InvalidReference {
            reference: s.to_string(),
            reason: reason.to_string(),
        };
        let s_trim = s.strip_prefix("docker://").unwrap_or(s);
        let (name, digest) = match s_trim.split_once('@') {
            Some((n, d)) => (n, Some(d.parse::<Digest>()?)),
            None => (s_trim, None),
        };
        // A tag is after the last ':' that follows the last '/'.
        let last_slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (
                &name[..last_slash + i],
                Some(name[last_slash + i + 1..].to_string()),
            ),
            None => (name, None),
        };
        if let Some(t) = &tag {
            if !valid_tag(t) {
                return Err(bad("invalid tag"));
            }
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
        };
        let repository = if registry == DEFAULT_REGISTRY && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if repository.is_empty() || !repository.split('/').all(valid_component) {
            return Err(bad(
                "repository must be lower-case [a-z0-9._-] path components",
            ));
        }
        if registry.is_empty() || registry.contains(|c: char| c.is_whitespace() || c == '/') {
            return Err(bad("invalid registry host"));
        }
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        match (&self.tag, &self.digest) {
            (Some(t), _) => write!(f, ":{t}")?,
            (None, None) => write!(f, ":latest")?,
            _ => {}
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_docker_hub_names() {
        let r: Reference = "busybox".parse().unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        let r: Reference = "127.0.0.1:5000/a/b:v1".parse().unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "a/b");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert!(r.is_loopback());
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let r: Reference = format!("quay.io/x/y@{d}").parse().unwrap();
        assert_eq!(r.manifest_reference(), d);
        assert!(!r.is_loopback());
        assert!("Upper/Case".parse::<Reference>().is_err());
        assert!("a/../b".parse::<Reference>().is_err());
        assert!("a:bad tag".parse::<Reference>().is_err());
    }
}
