//! The standard symlinks in `/dev` that devtmpfs does not create.

use std::io::ErrorKind;
use std::os::unix::fs::symlink;

use anyhow::{Context, Result};

/// `(link, target)` pairs.
pub const DEV_LINKS: &[(&str, &str)] = &[
    ("/dev/fd", "/proc/self/fd"),
    ("/dev/stdin", "/proc/self/fd/0"),
    ("/dev/stdout", "/proc/self/fd/1"),
    ("/dev/stderr", "/proc/self/fd/2"),
];

/// Creates every link; an existing entry is left alone.
pub fn create_all(links: &[(&str, &str)]) -> Result<()> {
    for (link, target) in links {
        match symlink(target, link) {
            Ok(()) => {}
            Err(err) if err.kind() == ErrorKind::AlreadyExists => {}
            Err(err) => return Err(err).with_context(|| format!("linking {link} -> {target}")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_links_and_keeps_existing_entries() {
        let dir = std::env::temp_dir().join(format!("vmrun-agent-devlinks-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fd = dir.join("fd");
        let existing = dir.join("stdin");
        std::fs::write(&existing, b"keep").unwrap();
        let (fd_s, existing_s) = (fd.to_str().unwrap(), existing.to_str().unwrap());

        create_all(&[(fd_s, "/proc/self/fd"), (existing_s, "/proc/self/fd/0")]).unwrap();
        assert_eq!(
            std::fs::read_link(&fd).unwrap().to_str(),
            Some("/proc/self/fd")
        );
        assert_eq!(std::fs::read(&existing).unwrap(), b"keep");
        // Idempotent.
        create_all(&[(fd_s, "/proc/self/fd")]).unwrap();

        let err = create_all(&[("/nonexistent-dir/x", "/y")]).unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent-dir/x"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
