//! Building OCI images (layers, configs, manifests, indexes) from scratch.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tar::{EntryType, Header};

pub const MTIME: u64 = 1_700_000_000;

/// Builds a tar stream entry by entry with raw (unchecked) names, so
/// hostile archives can be made too.
pub struct TarBuilder {
    b: tar::Builder<Vec<u8>>,
}

impl Default for TarBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl TarBuilder {
    pub fn new() -> Self {
        TarBuilder {
            b: tar::Builder::new(Vec::new()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn raw(
        &mut self,
        name: &[u8],
        kind: EntryType,
        link: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
        data: &[u8],
    ) -> &mut Self {
        let mut h = Header::new_gnu();
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name);
            old.linkname[..link.len()].copy_from_slice(link);
        }
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(MTIME);
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    /// PAX extended header applying `records` to the next entry.
    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        let mut data = Vec::new();
        for (k, v) in records {
            let body_len = 1 + k.len() + 1 + v.len() + 1;
            let mut len = body_len + 1;
            while len != body_len + len.to_string().len() {
                len = body_len + len.to_string().len();
            }
            data.extend_from_slice(format!("{len} {k}=").as_bytes());
            data.extend_from_slice(v);
            data.push(b'\n');
        }
        self.raw(
            b"PaxHeaders/next",
            EntryType::XHeader,
            b"",
            0o644,
            0,
            0,
            &data,
        )
    }

    pub fn dir(&mut self, name: &str, mode: u32) -> &mut Self {
        self.raw(name.as_bytes(), EntryType::Directory, b"", mode, 0, 0, b"")
    }

    pub fn file(&mut self, name: &str, mode: u32, data: &[u8]) -> &mut Self {
        self.raw(name.as_bytes(), EntryType::Regular, b"", mode, 0, 0, data)
    }

    pub fn file_owned(
        &mut self,
        name: &str,
        mode: u32,
        uid: u64,
        gid: u64,
        data: &[u8],
    ) -> &mut Self {
        self.raw(
            name.as_bytes(),
            EntryType::Regular,
            b"",
            mode,
            uid,
            gid,
            data,
        )
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(
            name.as_bytes(),
            EntryType::Symlink,
            target.as_bytes(),
            0o777,
            0,
            0,
            b"",
        )
    }

    /// Hardlink entry; its header mode (0755) matches the test targets, as
    /// real tar writers record the target inode's mode.
    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(
            name.as_bytes(),
            EntryType::Link,
            target.as_bytes(),
            0o755,
            0,
            0,
            b"",
        )
    }

    pub fn fifo(&mut self, name: &str) -> &mut Self {
        self.raw(name.as_bytes(), EntryType::Fifo, b"", 0o600, 0, 0, b"")
    }

    pub fn chardev(&mut self, name: &str, major: u32, minor: u32) -> &mut Self {
        let mut h = Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(EntryType::Char);
        h.set_mode(0o666);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME);
        h.set_size(0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        h.set_cksum();
        self.b.append(&h, &[][..]).unwrap();
        self
    }

    /// A file with a path longer than 100 bytes (GNU long name).
    pub fn long_file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Regular);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME);
        h.set_size(data.len() as u64);
        self.b.append_data(&mut h, name, data).unwrap();
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

/// Layer compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comp {
    None,
    Gzip,
    Zstd,
}

impl Comp {
    pub fn media_type(self) -> &'static str {
        match self {
            Comp::None => "application/vnd.oci.image.layer.v1.tar",
            Comp::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Comp::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }

    pub fn compress(self, data: &[u8]) -> Vec<u8> {
        match self {
            Comp::None => data.to_vec(),
            Comp::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Comp::Zstd => zstd::encode_all(data, 3).unwrap(),
        }
    }
}

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}

/// Writes an OCI image layout.
pub struct LayoutBuilder {
    pub dir: PathBuf,
    index: Vec<Value>,
}

impl LayoutBuilder {
    pub fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        LayoutBuilder {
            dir: dir.to_path_buf(),
            index: Vec::new(),
        }
    }

    pub fn blob(&self, data: &[u8]) -> (String, u64) {
        let d = sha256(data);
        std::fs::write(self.dir.join("blobs/sha256").join(&d[7..]), data).unwrap();
        (d, data.len() as u64)
    }

    /// Store layers + config + manifest; returns the manifest descriptor.
    pub fn image(&self, layers: &[(Vec<u8>, Comp)], config: Value, arch: &str) -> Value {
        let mut config = config;
        let mut descs = Vec::new();
        let mut diff_ids = Vec::new();
        for (tar, comp) in layers {
            diff_ids.push(sha256(tar));
            let (d, size) = self.blob(&comp.compress(tar));
            descs.push(json!({"mediaType": comp.media_type(), "digest": d, "size": size}));
        }
        config["architecture"] = json!(arch);
        config["os"] = json!("linux");
        config["rootfs"] = json!({"type": "layers", "diff_ids": diff_ids});
        let (cd, cs) = self.blob(&serde_json::to_vec(&config).unwrap());
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
            "layers": descs,
        });
        let (md, ms) = self.blob(&serde_json::to_vec(&manifest).unwrap());
        json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md, "size": ms,
            "platform": {"architecture": arch, "os": "linux"},
        })
    }

    /// Store an index over `manifests`; returns its descriptor.
    pub fn index(&self, manifests: Vec<Value>) -> Value {
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        });
        let (d, s) = self.blob(&serde_json::to_vec(&index).unwrap());
        json!({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": d, "size": s})
    }

    /// Add `desc` to index.json under `tag` and rewrite it.
    pub fn tag(&mut self, desc: &Value, tag: &str) {
        let mut d = desc.clone();
        d.as_object_mut().unwrap().remove("platform");
        d["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
        self.index.push(d);
        let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": self.index});
        std::fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
    }
}

/// A single-image layout from raw layer tars (for hostile cases).
pub fn simple_layout(dir: &Path, layers: &[(Vec<u8>, Comp)], tag: &str) {
    let mut b = LayoutBuilder::new(dir);
    let desc = b.image(layers, json!({"config": {"Cmd": ["/bin/true"]}}), "amd64");
    b.tag(&desc, tag);
}

pub const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n";
pub const GROUP: &str = "root:x:0:\napp:x:1000:\nwheel:x:10:app\naudio:x:29:root,app\n";

/// The layers of the reference test image: files, dirs, symlinks,
/// hardlinks, setuid, ownership, fifo, device (root only), long names;
/// then whiteouts, an opaque dir, replacements, a hardlink to a lower file.
pub fn test_layers(first: Comp) -> Vec<(Vec<u8>, Comp)> {
    let mut l1 = TarBuilder::new();
    l1.dir("etc", 0o755)
        .file("etc/passwd", 0o644, PASSWD.as_bytes())
        .file("etc/group", 0o644, GROUP.as_bytes())
        .file("etc/motd", 0o644, b"hello from layer 1\n")
        .symlink("etc/localtime", "/usr/share/zoneinfo/UTC")
        .dir("usr", 0o755)
        .dir("usr/bin", 0o755)
        .file("usr/bin/tool", 0o755, b"#!/bin/sh\necho tool\n")
        .hardlink("usr/bin/tool-link", "usr/bin/tool")
        .file("usr/bin/suid", 0o4755, b"setuid binary\n")
        .symlink("bin", "usr/bin")
        .dir("home", 0o755)
        .dir("home/app", 0o700)
        .file_owned("home/app/.profile", 0o600, 1000, 1000, b"export X=1\n")
        .dir("work", 0o1777)
        .file("delete-me", 0o644, b"gone in layer 2\n")
        .dir("delete-dir", 0o755)
        .file("delete-dir/inner", 0o644, b"inner\n")
        .dir("opaque", 0o755)
        .file("opaque/old-a", 0o644, b"a\n")
        .dir("opaque/old-sub", 0o755)
        .file("opaque/old-sub/x", 0o644, b"x\n")
        .fifo("run-fifo")
        .dir("deep", 0o755)
        .long_file(
            "deep/a-very-long-directory-name-that-goes-on/and-on-and-on-beyond-one-hundred-bytes/file.txt",
            b"long name\n",
        );
    if super::is_root() {
        l1.dir("dev", 0o755).chardev("dev/null", 1, 3);
    }
    let mut l2 = TarBuilder::new();
    l2.file(".wh.delete-me", 0o644, b"")
        .file(".wh.delete-dir", 0o644, b"")
        .dir("opaque", 0o750)
        .file("opaque/.wh..wh..opq", 0o644, b"")
        .file("opaque/new", 0o644, b"new in layer 2\n")
        .file("etc/motd", 0o600, b"replaced in layer 2\n")
        .hardlink("usr/bin/tool-link2", "usr/bin/tool")
        .symlink("etc/localtime", "/usr/share/zoneinfo/Europe/Berlin")
        .file("usr/bin/added", 0o755, b"added\n");
    vec![(l1.finish(), first), (l2.finish(), Comp::None)]
}

/// The reference image's config.
pub fn test_config() -> Value {
    json!({
        "config": {
            "Entrypoint": ["/usr/bin/tool"],
            "Cmd": ["--help"],
            "Env": ["FOO=bar", "PATH=/usr/bin:/bin"],
            "WorkingDir": "/work",
            "User": "app",
            "Labels": {"org.example.label": "yes"}
        }
    })
}

/// Build the reference layout: tag `multi` (index: amd64 + arm64),
/// `amd64` (manifest), `zstd` (same image, zstd first layer).
pub fn build_test_layout(dir: &Path) -> LayoutBuilder {
    let mut b = LayoutBuilder::new(dir);
    let amd64 = b.image(&test_layers(Comp::Gzip), test_config(), "amd64");
    let mut arm = TarBuilder::new();
    arm.file("arch-arm64", 0o644, b"arm64\n");
    let arm64 = b.image(
        &[(arm.finish(), Comp::Gzip)],
        json!({"config": {"Cmd": ["/arm"]}}),
        "arm64",
    );
    let mut arm64v = arm64.clone();
    arm64v["platform"]["variant"] = json!("v8");
    let idx = b.index(vec![arm64v, amd64.clone()]);
    b.tag(&idx, "multi");
    b.tag(&amd64, "amd64");
    let z = b.image(&test_layers(Comp::Zstd), test_config(), "amd64");
    b.tag(&z, "zstd");
    b
}
