//! Container state under `--root` (default `/run/vmrun`), one directory per
//! container id:
//!
//! ```text
//! <root>/<id>/state.json   what `create` recorded (record.rs), written atomically
//! <root>/<id>/lock         flock'd by every verb that changes the container
//! <root>/<id>/vmm.sock     the VMM's control socket (runtime::api)
//! ```
//!
//! The directory is made with an exclusive `mkdir`, so of two concurrent
//! `create`s of one id exactly one wins. A container's status is not
//! stored: it is asked of its VMM, and a VMM that is gone (checked by pid
//! and start time, [`liveness`]) means `stopped`.

pub mod liveness;
pub mod record;
pub mod remove;

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub use liveness::ProcessIdentity;
pub use record::{ContainerRecord, PrintedState, SandboxRef, Status};

/// The state file's name.
pub const STATE_FILE: &str = "state.json";
/// The lock file's name.
pub const LOCK_FILE: &str = "lock";
/// The VMM control socket's name.
pub const API_SOCKET: &str = "vmm.sock";

/// State-directory errors; the messages are runc's where clients match them.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// `create` of an id that exists (runc's `ErrExist`).
    #[error("container with given ID already exists")]
    Exists,
    /// No container with this id (podman and the shim match "does not exist").
    #[error("container {0} does not exist")]
    NotFound(String),
    /// The id cannot be used as a container id.
    #[error("invalid container id {0:?}: use 1-128 letters, digits, '-', '_' or '.', not starting with '.'")]
    InvalidId(String),
    /// A state file or directory could not be read or written.
    #[error("{0}: {1}")]
    Io(PathBuf, #[source] io::Error),
    /// `state.json` is not what `create` writes.
    #[error("{0} is corrupt")]
    Corrupt(PathBuf, #[source] serde_json::Error),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StateError + '_ {
    move |e| StateError::Io(path.to_path_buf(), e)
}

/// Checks that `id` is a usable container id: 1-128 of `[A-Za-z0-9_.-]`,
/// not starting with `.` (it names a directory under `--root`).
pub fn validate_id(id: &str) -> Result<(), StateError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StateError::InvalidId(id.to_owned()))
    }
}

/// The `--root` directory.
#[derive(Debug, Clone)]
pub struct StateRoot {
    root: PathBuf,
}

impl StateRoot {
    /// The state root at `root` (made on first `create`).
    pub fn new(root: &Path) -> Self {
        Self {
            root: std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf()),
        }
    }

    /// The root directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Makes the directory of a new container `id`; fails with
    /// [`StateError::Exists`] if there is one (also when another `create`
    /// of the same id is under way).
    pub fn create(&self, id: &str) -> Result<ContainerDir, StateError> {
        validate_id(id)?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(&self.root)
            .map_err(io_err(&self.root))?;
        let dir = self.root.join(id);
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => Ok(ContainerDir {
                id: id.to_owned(),
                dir,
            }),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(StateError::Exists),
            Err(e) => Err(StateError::Io(dir, e)),
        }
    }

    /// The directory of the existing container `id`.
    pub fn open(&self, id: &str) -> Result<ContainerDir, StateError> {
        validate_id(id).map_err(|_| StateError::NotFound(id.to_owned()))?;
        let dir = self.root.join(id);
        if dir.join(STATE_FILE).is_file() {
            Ok(ContainerDir {
                id: id.to_owned(),
                dir,
            })
        } else {
            Err(StateError::NotFound(id.to_owned()))
        }
    }

    /// The ids of every container with a state file, sorted.
    pub fn ids(&self) -> Result<Vec<String>, StateError> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StateError::Io(self.root.clone(), e)),
        };
        let mut ids: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| entry.file_name().into_string().ok())
            .filter(|id| validate_id(id).is_ok() && self.root.join(id).join(STATE_FILE).is_file())
            .collect();
        ids.sort();
        Ok(ids)
    }
}

/// One container's state directory.
#[derive(Debug, Clone)]
pub struct ContainerDir {
    id: String,
    dir: PathBuf,
}

/// An exclusive lock on a container; released when dropped.
#[derive(Debug)]
pub struct ContainerLock {
    _file: File,
}

impl ContainerDir {
    /// The directory `dir` of container `id` (made by `StateRoot::create`).
    pub fn at(dir: &Path, id: &str) -> Self {
        Self {
            id: id.to_owned(),
            dir: dir.to_path_buf(),
        }
    }

    /// The container id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The VMM's control socket.
    pub fn api_socket(&self) -> PathBuf {
        self.dir.join(API_SOCKET)
    }

    /// Waits for and takes the container's lock.
    pub fn lock(&self) -> Result<ContainerLock, StateError> {
        let path = self.dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err(&path))?;
        loop {
            // SAFETY: flock on a descriptor we own; it only takes a lock.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(ContainerLock { _file: file });
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(StateError::Io(path, err));
            }
        }
    }

    /// Writes `state.json` atomically (temporary file, fsync, rename).
    pub fn write_record(&self, record: &ContainerRecord) -> Result<(), StateError> {
        let path = self.dir.join(STATE_FILE);
        let tmp = self.dir.join(format!(".{STATE_FILE}.tmp"));
        let json = serde_json::to_vec(record).map_err(|e| StateError::Corrupt(path.clone(), e))?;
        let write = || -> io::Result<()> {
            let mut file = OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(&json)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            StateError::Io(path.clone(), e)
        })
    }

    /// Reads `state.json`.
    pub fn read_record(&self) -> Result<ContainerRecord, StateError> {
        let path = self.dir.join(STATE_FILE);
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StateError::NotFound(self.id.clone()))
            }
            Err(e) => return Err(StateError::Io(path, e)),
        };
        serde_json::from_slice(&text).map_err(|e| StateError::Corrupt(path, e))
    }

    /// Removes the whole directory (what `delete` does last).
    /// Mount points inside (the VM's share, seen by a foreground `run`)
    /// are detached, never descended into.
    pub fn remove(&self) -> Result<(), StateError> {
        remove::remove_state_tree(&self.dir).map_err(|e| StateError::Io(self.dir.clone(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> ContainerRecord {
        ContainerRecord {
            oci_version: "1.0.2".into(),
            id: id.into(),
            vmm: ProcessIdentity::current().unwrap(),
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: record::now_rfc3339(),
            owner: String::new(),
            annotations: Default::default(),
            host_cgroups: vec![],
            network: None,
            sandbox: None,
            hooks: None,
        }
    }

    #[test]
    fn ids_are_checked() {
        assert!(validate_id("abc-1_2.x").is_ok());
        for bad in ["", ".hidden", "a/b", "a b", "..", &"x".repeat(129), "a\0b"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn create_is_exclusive_and_open_needs_a_state_file() {
        let tmp = tempfile::tempdir().unwrap();
        let root = StateRoot::new(&tmp.path().join("root"));
        let dir = root.create("c1").unwrap();
        assert!(matches!(root.create("c1"), Err(StateError::Exists)));
        assert_eq!(
            root.create("c1").unwrap_err().to_string(),
            "container with given ID already exists"
        );
        // Made but not recorded yet (a create under way): not listed.
        assert!(matches!(root.open("c1"), Err(StateError::NotFound(_))));
        assert!(root.ids().unwrap().is_empty());
        let written = record("c1");
        dir.write_record(&written).unwrap();
        let opened = root.open("c1").unwrap();
        assert_eq!(opened.read_record().unwrap(), written);
        assert_eq!(root.ids().unwrap(), ["c1"]);
        opened.remove().unwrap();
        assert!(!tmp.path().join("root/c1").exists());
        let err = root.open("c1").unwrap_err();
        assert_eq!(err.to_string(), "container c1 does not exist");
        assert!(matches!(root.open("../etc"), Err(StateError::NotFound(_))));
    }

    #[test]
    fn concurrent_creates_of_one_id_have_one_winner() {
        let tmp = tempfile::tempdir().unwrap();
        let root = StateRoot::new(tmp.path());
        let winners: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| root.create("same").is_ok()))
                .collect();
            handles
                .into_iter()
                .map(|h| usize::from(h.join().unwrap()))
                .sum()
        });
        assert_eq!(winners, 1);
    }

    #[test]
    fn the_lock_is_exclusive_between_holders() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateRoot::new(tmp.path()).create("c").unwrap();
        let held = dir.lock().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let other = dir.clone();
        let waiter = std::thread::spawn(move || {
            let _lock = other.lock().unwrap();
            tx.send(()).unwrap();
        });
        assert!(rx
            .recv_timeout(std::time::Duration::from_millis(200))
            .is_err());
        drop(held);
        rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        waiter.join().unwrap();
    }

    #[test]
    fn a_corrupt_state_file_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let root = StateRoot::new(tmp.path());
        let dir = root.create("c").unwrap();
        std::fs::write(dir.path().join(STATE_FILE), "{not json").unwrap();
        let err = root.open("c").unwrap().read_record().unwrap_err();
        assert!(matches!(err, StateError::Corrupt(..)), "{err}");
    }
}
