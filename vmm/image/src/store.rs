//! Content-addressed local image store.
//!
//! The store is itself an OCI image layout: `oci-layout`, `index.json`
//! (one entry per stored name, `org.opencontainers.image.ref.name`
//! annotation) and `blobs/<alg>/<hex>`. Blobs only enter it through
//! [`Store::put_blob`], which verifies size and digest before the blob
//! becomes visible (write to `tmp/`, verify, rename).

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageIndex, ImageIndexBuilder, ImageManifest, MediaType};

use crate::digest::{self, Digest, HashingReader};
use crate::error::{ImageError, Result};
use crate::image::{classify, parse_config, parse_manifest, DocKind, ResolvedImage};
use crate::progress::Progress;

/// Environment variable that overrides the default store location.
pub const STORE_ENV: &str = "VMRUN_IMAGE_STORE";
/// Default store location.
pub const DEFAULT_STORE: &str = "/var/lib/vmrun/images";
/// Annotation carrying the stored name of an index entry.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// Largest JSON document (manifest, index, config) accepted.
pub const MAX_JSON_BYTES: u64 = 8 << 20;

/// A handle on the store directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// One named image in the store.
#[derive(Debug, Clone)]
pub struct StoredImage {
    /// Stored name (normalized reference).
    pub name: String,
    /// Descriptor of the image manifest.
    pub manifest: Descriptor,
    /// Size of manifest, config and layers (compressed, as stored).
    pub size: u64,
}

/// What [`Store::gc`] removed.
#[derive(Debug, Default, Clone)]
pub struct GcReport {
    /// Number of blobs deleted.
    pub blobs_removed: usize,
    /// Bytes freed.
    pub bytes_freed: u64,
}

struct LockGuard(File);

impl Drop for LockGuard {
    fn drop(&mut self) {
        // SAFETY: flock on a valid, owned fd; unlocking cannot violate memory safety.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

impl Store {
    /// `$VMRUN_IMAGE_STORE` or `/var/lib/vmrun/images`.
    pub fn default_root() -> PathBuf {
        std::env::var_os(STORE_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STORE))
    }

    /// Open (creating if needed) the store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        for sub in ["blobs/sha256", "blobs/sha512", "tmp"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(|e| ImageError::io("creating", &p, e))?;
        }
        let layout = root.join("oci-layout");
        if !layout.exists() {
            write_atomic(&root, &layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        let store = Store { root };
        if !store.index_path().exists() {
            store.write_index(&BTreeMap::new())?;
        }
        Ok(store)
    }

    /// The store directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    /// Path of a blob (whether or not it exists).
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(d.algorithm().name())
            .join(d.hex())
    }

    /// Whether the blob is present.
    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).is_file()
    }

    /// Copy a blob from an untrusted `reader` into the store, verifying
    /// that it has exactly `size` bytes (when known) and hashes to
    /// `expected`. Nothing is stored on mismatch. Returns the bytes written.
    pub fn put_blob(
        &self,
        reference: &str,
        expected: &Digest,
        size: Option<u64>,
        reader: impl Read,
        progress: &Progress,
    ) -> Result<u64> {
        let tmp_dir = self.root.join("tmp");
        let mut tmp = tempfile::NamedTempFile::new_in(&tmp_dir)
            .map_err(|e| ImageError::io("creating temporary file in", &tmp_dir, e))?;
        // Read at most one byte more than announced so oversize blobs are caught
        // without reading unbounded data.
        let limit = size.map(|s| s.saturating_add(1)).unwrap_or(u64::MAX);
        let mut hashing = HashingReader::new(reader.take(limit), expected.algorithm());
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match hashing.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(ImageError::io(
                        "reading blob for",
                        PathBuf::from(format!("{reference}@{expected}")),
                        e,
                    ))
                }
            };
            tmp.write_all(&buf[..n])
                .map_err(|e| ImageError::io("writing", tmp.path(), e))?;
            progress.inc(n as u64);
        }
        let (actual, count) = hashing.finish();
        digest::check(reference, expected, size, &actual, count)?;
        let dest = self.blob_path(expected);
        tmp.persist(&dest)
            .map_err(|e| ImageError::io("storing blob", &dest, e.error))?;
        Ok(count)
    }

    /// Store an in-memory blob and return its SHA-256 digest.
    pub fn put_bytes(&self, reference: &str, data: &[u8]) -> Result<Digest> {
        let d = Digest::sha256_of(data);
        if !self.has_blob(&d) {
            self.put_blob(
                reference,
                &d,
                Some(data.len() as u64),
                data,
                &Progress::hidden(),
            )?;
        }
        Ok(d)
    }

    /// Read a (small) blob fully, verifying digest and size.
    pub fn read_blob(&self, reference: &str, d: &Digest, size: Option<u64>) -> Result<Vec<u8>> {
        let path = self.blob_path(d);
        let file = File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ImageError::NotFound {
                reference: reference.to_string(),
                what: format!("blob {d} in the store"),
            },
            _ => ImageError::io("opening", &path, e),
        })?;
        let mut r = HashingReader::new(file.take(MAX_JSON_BYTES + 1), d.algorithm());
        let mut data = Vec::new();
        r.read_to_end(&mut data)
            .map_err(|e| ImageError::io("reading", &path, e))?;
        if data.len() as u64 > MAX_JSON_BYTES {
            return Err(ImageError::InvalidImage {
                reference: reference.to_string(),
                reason: format!("document {d} is larger than {MAX_JSON_BYTES} bytes"),
            });
        }
        let (actual, count) = r.finish();
        digest::check(reference, d, size, &actual, count)?;
        Ok(data)
    }

    /// Open a blob for streaming; the caller verifies while reading.
    pub fn open_blob(&self, reference: &str, d: &Digest) -> Result<File> {
        let path = self.blob_path(d);
        File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ImageError::NotFound {
                reference: reference.to_string(),
                what: format!("blob {d} in the store"),
            },
            _ => ImageError::io("opening", &path, e),
        })
    }

    /// Load the image whose manifest `manifest` describes, verifying the
    /// manifest and config blobs.
    pub fn load_image(&self, reference: &str, manifest: &Descriptor) -> Result<ResolvedImage> {
        let manifest_digest = Digest::from_oci(manifest.digest())?;
        let body = self.read_blob(reference, &manifest_digest, Some(manifest.size()))?;
        let mt = manifest.media_type().to_string();
        if classify(reference, Some(&mt), &body)? != DocKind::Manifest {
            return Err(ImageError::InvalidImage {
                reference: reference.to_string(),
                reason: format!("{manifest_digest} is an index, not an image manifest"),
            });
        }
        let m = parse_manifest(reference, &body)?;
        self.image_from_manifest(reference, manifest_digest, body.len() as u64, &m)
    }

    /// The image of a parsed manifest whose config blob is in the store
    /// (read and verified here).
    pub fn image_from_manifest(
        &self,
        reference: &str,
        manifest_digest: Digest,
        manifest_size: u64,
        m: &ImageManifest,
    ) -> Result<ResolvedImage> {
        let config_digest = Digest::from_oci(m.config().digest())?;
        let body = self.read_blob(reference, &config_digest, Some(m.config().size()))?;
        let config = parse_config(reference, &body)?;
        ResolvedImage::new(reference, manifest_digest, manifest_size, m, config)
    }

    fn lock(&self) -> Result<LockGuard> {
        let path = self.root.join("lock");
        let f = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| ImageError::io("opening", &path, e))?;
        // SAFETY: flock on a valid fd owned by `f`.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(ImageError::io("locking", &path, io::Error::last_os_error()));
        }
        Ok(LockGuard(f))
    }

    fn read_index(&self) -> Result<BTreeMap<String, Descriptor>> {
        let path = self.index_path();
        let data = fs::read(&path).map_err(|e| ImageError::io("reading", &path, e))?;
        let index: ImageIndex = serde_json::from_slice(&data).map_err(|e| ImageError::Json {
            reference: path.display().to_string(),
            what: "store index".into(),
            source: e,
        })?;
        let mut map = BTreeMap::new();
        for d in index.manifests() {
            if let Some(name) = d
                .annotations()
                .as_ref()
                .and_then(|a| a.get(REF_NAME_ANNOTATION))
            {
                map.insert(name.clone(), d.clone());
            }
        }
        Ok(map)
    }

    fn write_index(&self, map: &BTreeMap<String, Descriptor>) -> Result<()> {
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(map.values().cloned().collect::<Vec<_>>())
            .build()
            .map_err(|e| ImageError::InvalidImage {
                reference: self.root.display().to_string(),
                reason: format!("building store index: {e}"),
            })?;
        let data = serde_json::to_vec_pretty(&index).map_err(|e| ImageError::Json {
            reference: self.root.display().to_string(),
            what: "store index".into(),
            source: e,
        })?;
        write_atomic(&self.root, &self.index_path(), &data)
    }

    /// Record `name` → manifest descriptor (replacing an older entry).
    pub fn tag(&self, name: &str, manifest: &Descriptor) -> Result<()> {
        let _g = self.lock()?;
        let mut map = self.read_index()?;
        let mut d = manifest.clone();
        let mut ann = d.annotations().clone().unwrap_or_default();
        ann.insert(REF_NAME_ANNOTATION.to_string(), name.to_string());
        d.set_annotations(Some(ann));
        map.insert(name.to_string(), d);
        self.write_index(&map)
    }

    /// Look up a stored name.
    pub fn lookup(&self, name: &str) -> Result<Option<Descriptor>> {
        Ok(self.read_index()?.remove(name))
    }

    /// Remove a name; returns whether it existed.
    pub fn untag(&self, name: &str) -> Result<bool> {
        let _g = self.lock()?;
        let mut map = self.read_index()?;
        let existed = map.remove(name).is_some();
        if existed {
            self.write_index(&map)?;
        }
        Ok(existed)
    }

    /// All named images with their sizes.
    pub fn list(&self) -> Result<Vec<StoredImage>> {
        let map = self.read_index()?;
        let mut out = Vec::new();
        for (name, desc) in map {
            let size = match self.load_image(&name, &desc) {
                Ok(img) => img.total_size(),
                Err(e) => {
                    tracing::warn!("image {name}: {e}");
                    0
                }
            };
            out.push(StoredImage {
                name,
                manifest: desc,
                size,
            });
        }
        Ok(out)
    }

    /// Delete blobs that no stored name references.
    pub fn gc(&self) -> Result<GcReport> {
        let _g = self.lock()?;
        let mut keep = HashSet::new();
        for (name, desc) in self.read_index()? {
            let img = self.load_image(&name, &desc)?;
            keep.insert(img.manifest_digest.clone());
            keep.insert(img.config_digest.clone());
            for l in &img.layers {
                keep.insert(l.digest.clone());
            }
        }
        let mut report = GcReport::default();
        for alg in ["sha256", "sha512"] {
            let dir = self.root.join("blobs").join(alg);
            let entries = fs::read_dir(&dir).map_err(|e| ImageError::io("listing", &dir, e))?;
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                let Ok(d) = format!("{alg}:{name}").parse::<Digest>() else {
                    continue;
                };
                if keep.contains(&d) {
                    continue;
                }
                let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
                let p = entry.path();
                fs::remove_file(&p).map_err(|e| ImageError::io("removing", &p, e))?;
                report.blobs_removed += 1;
                report.bytes_freed += len;
            }
        }
        Ok(report)
    }
}

/// Write `data` to `dest` atomically (temp file in `dir`, then rename).
pub(crate) fn write_atomic(dir: &Path, dest: &Path, data: &[u8]) -> Result<()> {
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| ImageError::io("creating temp in", dir, e))?;
    tmp.write_all(data)
        .map_err(|e| ImageError::io("writing", tmp.path(), e))?;
    tmp.persist(dest)
        .map_err(|e| ImageError::io("replacing", dest, e.error))?;
    Ok(())
}
