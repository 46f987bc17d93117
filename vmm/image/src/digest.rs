//! Content digests (`sha256:<hex>`, `sha512:<hex>`) and verifying readers.

use std::fmt;
use std::io::{self, Read};
use std::str::FromStr;

use sha2::{Digest as _, Sha256, Sha512};

use crate::error::{ImageError, Result};

/// A validated content digest such as `sha256:0123…`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

/// Supported digest algorithms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256 (the default everywhere).
    Sha256,
    /// SHA-512.
    Sha512,
}

impl Algorithm {
    /// Name as used in digest strings and blob directories.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

impl Digest {
    /// Algorithm of this digest.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Lower-case hex encoded value (safe to use as a file name).
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// SHA-256 digest of `data`.
    pub fn sha256_of(data: &[u8]) -> Self {
        let mut h = Hasher::new(Algorithm::Sha256);
        h.update(data);
        h.finish()
    }

    /// Convert an `oci-spec` digest.
    pub fn from_oci(d: &oci_spec::image::Digest) -> Result<Self> {
        d.to_string().parse()
    }

    /// Convert into an `oci-spec` digest.
    pub fn to_oci(&self) -> oci_spec::image::Digest {
        // A validated sha256/sha512 digest is always accepted by oci-spec.
        oci_spec::image::Digest::from_str(&self.to_string())
            .unwrap_or_else(|_| unreachable!("validated digest rejected by oci-spec"))
    }
}

impl FromStr for Digest {
    type Err = ImageError;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: &str| ImageError::InvalidDigest {
            digest: s.to_string(),
            reason: reason.to_string(),
        };
        let (alg, hex) = s.split_once(':').ok_or_else(|| bad("missing ':'"))?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => return Err(bad("unsupported algorithm")),
        };
        if hex.len() != algorithm.hex_len()
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad(
                "encoded value must be lower-case hex of the right length",
            ));
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

/// Incremental hasher for one [`Algorithm`].
#[derive(Clone)]
pub enum Hasher {
    /// SHA-256 state.
    Sha256(Sha256),
    /// SHA-512 state.
    Sha512(Sha512),
}

impl Hasher {
    /// Start hashing with `algorithm`.
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    /// Feed bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// Finish and return the digest.
    pub fn finish(self) -> Digest {
        let (algorithm, bytes) = match self {
            Hasher::Sha256(h) => (Algorithm::Sha256, h.finalize().to_vec()),
            Hasher::Sha512(h) => (Algorithm::Sha512, h.finalize().to_vec()),
        };
        let hex = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Digest { algorithm, hex }
    }
}

/// A reader that hashes and counts everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wrap `inner`, hashing with `algorithm`.
    pub fn new(inner: R, algorithm: Algorithm) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::new(algorithm),
            count: 0,
        }
    }

    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Read the rest of the stream (so the digest covers all of it).
    pub fn drain(&mut self) -> io::Result<()> {
        io::copy(self, &mut io::sink()).map(|_| ())
    }

    /// Digest and byte count of what was read.
    pub fn finish(self) -> (Digest, u64) {
        (self.hasher.finish(), self.count)
    }

    /// The inner reader, digest and byte count.
    pub fn into_parts(self) -> (R, Digest, u64) {
        (self.inner, self.hasher.finish(), self.count)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Check that `actual` content matches `expected` digest and size.
pub fn check(
    reference: &str,
    expected: &Digest,
    expected_size: Option<u64>,
    actual: &Digest,
    actual_size: u64,
) -> Result<()> {
    if let Some(size) = expected_size {
        if size != actual_size {
            return Err(ImageError::SizeMismatch {
                reference: reference.to_string(),
                digest: expected.to_string(),
                expected: size,
                actual: actual_size,
            });
        }
    }
    if expected != actual {
        return Err(ImageError::DigestMismatch {
            reference: reference.to_string(),
            digest: expected.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_hashes() {
        let d = Digest::sha256_of(b"");
        assert_eq!(
            d.to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        assert!("sha256:../../etc".parse::<Digest>().is_err());
        assert!("md5:abcd".parse::<Digest>().is_err());
        assert!("sha256:E3B0".parse::<Digest>().is_err());
    }
}
