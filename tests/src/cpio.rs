//! A writer of uncompressed `newc` cpio archives (the initramfs format the
//! kernel unpacks), for initramfs images a test makes itself.

/// One archive entry.
#[derive(Debug, Clone)]
pub enum Entry<'a> {
    /// A directory.
    Dir {
        /// Path inside the archive (no leading `/`).
        path: &'a str,
    },
    /// A regular file.
    File {
        /// Path inside the archive (no leading `/`).
        path: &'a str,
        /// Permission bits.
        mode: u32,
        /// Contents.
        data: &'a [u8],
    },
    /// A character device node.
    CharDevice {
        /// Path inside the archive (no leading `/`).
        path: &'a str,
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
}

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFCHR: u32 = 0o020_000;

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn header(out: &mut Vec<u8>, ino: u32, mode: u32, rdev: (u32, u32), name: &str, data: &[u8]) {
    let size = u32::try_from(data.len()).expect("an entry under 4 GiB");
    let name_size = u32::try_from(name.len() + 1).expect("a short name");
    let fields = [
        ino, mode, 0, 0, 1, 0, size, 0, 0, rdev.0, rdev.1, name_size, 0,
    ];
    out.extend_from_slice(b"070701");
    for field in fields {
        out.extend_from_slice(format!("{field:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

/// The archive holding `entries` in order, ended by its trailer.
pub fn newc_archive(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for (ino, entry) in (1u32..).zip(entries) {
        match entry {
            Entry::Dir { path } => header(&mut out, ino, S_IFDIR | 0o755, (0, 0), path, &[]),
            Entry::File { path, mode, data } => {
                header(&mut out, ino, S_IFREG | mode, (0, 0), path, data)
            }
            Entry::CharDevice { path, major, minor } => {
                header(&mut out, ino, S_IFCHR | 0o600, (*major, *minor), path, &[])
            }
        }
    }
    header(&mut out, 0, 0, (0, 0), "TRAILER!!!", &[]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpio_reads_back_what_was_written() {
        let archive = newc_archive(&[
            Entry::Dir { path: "bin" },
            Entry::File {
                path: "bin/hello",
                mode: 0o755,
                data: b"#!/bin/sh\necho hi\n",
            },
            Entry::CharDevice {
                path: "console",
                major: 5,
                minor: 1,
            },
        ]);
        assert!(archive.len().is_multiple_of(4));
        let dir = tempfile::tempdir().expect("temp dir");
        let listed = std::process::Command::new("cpio")
            .args(["-t", "-v", "--quiet"])
            .current_dir(dir.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().expect("stdin").write_all(&archive)?;
                child.wait_with_output()
            });
        let Ok(listed) = listed else {
            eprintln!("no cpio binary here; only the framing was checked");
            return;
        };
        assert!(listed.status.success(), "{listed:?}");
        let text = String::from_utf8_lossy(&listed.stdout);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("drwxr-xr-x") && lines[0].ends_with(" bin"));
        assert!(lines[1].starts_with("-rwxr-xr-x") && lines[1].contains(" 18 "));
        assert!(lines[1].ends_with(" bin/hello"));
        assert!(lines[2].starts_with("crw-------") && lines[2].contains("5,"));
    }
}
