//! Platform selection in multi-architecture indexes / manifest lists.

use std::fmt;
use std::str::FromStr;

use oci_spec::image::{Descriptor, ImageIndex};

use crate::error::{ImageError, Result};

/// A wanted platform: `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// Architecture in GOARCH spelling, e.g. `amd64`.
    pub architecture: String,
    /// Optional variant, e.g. `v8`.
    pub variant: Option<String>,
}

impl Default for Platform {
    /// `linux/amd64`, the only host platform vmrun runs guests on.
    fn default() -> Self {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }
}

fn normalize_arch(arch: &str) -> &str {
    match arch {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        "i386" | "i686" => "386",
        other => other,
    }
}

/// Variant normalization per the image-spec / containerd rules.
fn normalize_variant(arch: &str, variant: Option<&str>) -> Option<String> {
    match (arch, variant) {
        ("arm64", None | Some("v8") | Some("8")) => Some("v8".into()),
        ("arm", None | Some("7")) => Some("v7".into()),
        ("arm", Some(v)) if v.bytes().all(|b| b.is_ascii_digit()) => Some(format!("v{v}")),
        ("amd64", None | Some("v1")) => None,
        (_, v) => v.filter(|v| !v.is_empty()).map(str::to_string),
    }
}

impl Platform {
    /// Whether a descriptor's platform matches this one.
    pub fn matches(&self, os: &str, arch: &str, variant: Option<&str>) -> bool {
        let arch = normalize_arch(arch);
        let want_arch = normalize_arch(&self.architecture);
        if os != self.os || arch != want_arch {
            return false;
        }
        match &self.variant {
            // No variant requested: take the normalized default variant.
            None => normalize_variant(arch, variant) == normalize_variant(want_arch, None),
            Some(v) => normalize_variant(arch, variant) == normalize_variant(want_arch, Some(v)),
        }
    }

    /// Pick the manifest for this platform from an index.
    pub fn select<'a>(&self, reference: &str, index: &'a ImageIndex) -> Result<&'a Descriptor> {
        let found = index.manifests().iter().find(|d| match d.platform() {
            Some(p) => self.matches(
                &p.os().to_string(),
                &p.architecture().to_string(),
                p.variant().as_deref(),
            ),
            None => false,
        });
        found.ok_or_else(|| ImageError::NoMatchingPlatform {
            reference: reference.to_string(),
            platform: self.to_string(),
            available: available(index),
        })
    }
}

fn available(index: &ImageIndex) -> String {
    let list: Vec<String> = index
        .manifests()
        .iter()
        .filter_map(|d| d.platform().as_ref())
        .map(|p| {
            let mut s = format!("{}/{}", p.os(), p.architecture());
            if let Some(v) = p.variant() {
                s.push('/');
                s.push_str(v);
            }
            s
        })
        .collect();
    if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    }
}

impl FromStr for Platform {
    type Err = ImageError;

    fn from_str(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split('/').collect();
        let bad = || ImageError::InvalidReference {
            reference: s.to_string(),
            reason: "platform must be OS/ARCH[/VARIANT]".into(),
        };
        if parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        match parts.as_slice() {
            [os, arch] => Ok(Platform {
                os: os.to_string(),
                architecture: normalize_arch(arch).to_string(),
                variant: None,
            }),
            [os, arch, variant] => Ok(Platform {
                os: os.to_string(),
                architecture: normalize_arch(arch).to_string(),
                variant: Some(variant.to_string()),
            }),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_rules() {
        let p: Platform = "linux/arm64".parse().unwrap();
        assert!(p.matches("linux", "arm64", Some("v8")));
        assert!(p.matches("linux", "arm64", None));
        assert!(!p.matches("linux", "amd64", None));
        let p: Platform = "linux/arm/v6".parse().unwrap();
        assert!(p.matches("linux", "arm", Some("v6")));
        assert!(!p.matches("linux", "arm", Some("v7")));
        let p = Platform::default();
        assert!(p.matches("linux", "amd64", None));
        assert!(p.matches("linux", "x86_64", None));
        assert!(!p.matches("windows", "amd64", None));
        assert!("linux".parse::<Platform>().is_err());
    }
}
