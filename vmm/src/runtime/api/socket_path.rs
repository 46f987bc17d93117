//! Unix socket paths of any length: `sun_path` holds at most 107 bytes,
//! and state roots (`--root`, scratch directories, bundle paths) can be
//! longer. A socket is therefore always bound or connected through
//! `/proc/self/fd/N/NAME`, N being an `O_PATH` descriptor of its
//! directory (the trick conmon uses for its attach socket).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// A short alias of a socket path, valid while it lives.
#[derive(Debug)]
pub struct ShortPath {
    _dir: File,
    path: PathBuf,
}

impl ShortPath {
    /// The alias of `path` (its directory must exist).
    pub fn new(path: &Path) -> io::Result<Self> {
        let (dir, name) = match (path.parent(), path.file_name()) {
            (Some(dir), Some(name)) => (
                if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                },
                name,
            ),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} is not a socket path", path.display()),
                ))
            }
        };
        let dir = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(dir)?;
        let path = Path::new("/proc/self/fd")
            .join(dir.as_raw_fd().to_string())
            .join(name);
        Ok(Self { _dir: dir, path })
    }

    /// The short path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Binds a listening socket at `path`, whatever its length.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    UnixListener::bind(ShortPath::new(path)?.path())
}

/// Connects to the socket at `path`, whatever its length.
pub fn connect(path: &Path) -> io::Result<UnixStream> {
    UnixStream::connect(ShortPath::new(path)?.path())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_with_paths_longer_than_sun_path_work() {
        let tmp = tempfile::tempdir().unwrap();
        let mut dir = tmp.path().to_path_buf();
        while dir.as_os_str().len() < 150 {
            dir.push("a-rather-long-directory-name");
        }
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("vmm.sock");
        assert!(path.as_os_str().len() > 108);
        let listener = bind(&path).unwrap();
        assert!(path.exists());
        let _client = connect(&path).unwrap();
        listener.accept().unwrap();
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        assert!(connect(Path::new("/nonexistent-dir/vmm.sock")).is_err());
    }
}
