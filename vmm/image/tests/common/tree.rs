//! Snapshots of directory trees for file-by-file comparison.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// What is compared per path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// 'd', 'f', 'l', 'c', 'b', 'p', 's'
    pub kind: char,
    /// Permission bits incl. setuid/setgid/sticky (not for symlinks).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// sha256 of regular file content.
    pub content: Option<String>,
    /// Symlink target.
    pub link: Option<PathBuf>,
    /// Device number of device nodes.
    pub rdev: u64,
}

/// Every path below `root` (relative, root itself excluded).
pub fn snapshot(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        let md = std::fs::symlink_metadata(&p).unwrap();
        let ft = md.file_type();
        use std::os::unix::fs::FileTypeExt;
        let kind = if ft.is_dir() {
            'd'
        } else if ft.is_file() {
            'f'
        } else if ft.is_symlink() {
            'l'
        } else if ft.is_char_device() {
            'c'
        } else if ft.is_block_device() {
            'b'
        } else if ft.is_fifo() {
            'p'
        } else {
            's'
        };
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let node = Node {
            kind,
            mode: if kind == 'l' { 0 } else { md.mode() & 0o7777 },
            uid: md.uid(),
            gid: md.gid(),
            content: (kind == 'f').then(|| {
                let data = std::fs::read(&p).unwrap();
                format!("{:x}", Sha256::digest(&data))
            }),
            link: (kind == 'l').then(|| std::fs::read_link(&p).unwrap()),
            rdev: if kind == 'c' || kind == 'b' {
                md.rdev()
            } else {
                0
            },
        };
        out.insert(rel, node);
        if kind == 'd' {
            walk(root, &p, out);
        }
    }
}

/// Groups (size > 1) of regular files sharing an inode.
pub fn hardlink_groups(root: &Path) -> BTreeSet<Vec<String>> {
    let mut by_ino: HashMap<u64, Vec<String>> = HashMap::new();
    for rel in snapshot(root)
        .into_iter()
        .filter(|(_, n)| n.kind == 'f')
        .map(|(k, _)| k)
    {
        let ino = std::fs::symlink_metadata(root.join(&rel)).unwrap().ino();
        by_ino.entry(ino).or_default().push(rel);
    }
    by_ino
        .into_values()
        .filter(|v| v.len() > 1)
        .map(|mut v| {
            v.sort();
            v
        })
        .collect()
}

/// Assert both trees are equal, listing every difference.
pub fn assert_same_tree(ours: &Path, theirs: &Path, what: &str) {
    let a = snapshot(ours);
    let b = snapshot(theirs);
    let mut diffs = Vec::new();
    for (k, v) in &a {
        match b.get(k) {
            None => diffs.push(format!("only in ours: {k} {v:?}")),
            Some(w) if w != v => {
                diffs.push(format!("differs: {k}\n   ours:   {v:?}\n   theirs: {w:?}"))
            }
            _ => {}
        }
    }
    for (k, w) in &b {
        if !a.contains_key(k) {
            diffs.push(format!("only in theirs: {k} {w:?}"));
        }
    }
    let (ha, hb) = (hardlink_groups(ours), hardlink_groups(theirs));
    if ha != hb {
        diffs.push(format!(
            "hardlink groups differ:\n   ours:   {ha:?}\n   theirs: {hb:?}"
        ));
    }
    assert!(
        diffs.is_empty(),
        "{what}: {} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
    assert!(!a.is_empty(), "{what}: trees are empty");
}
