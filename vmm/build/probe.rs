//! Running a compiler or linker on a program read from its stdin, to find
//! out whether this build's toolchain takes a flag.

use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `command` with `source` on its stdin (its output discarded); true
/// when it took all of it and succeeded.
pub fn succeeds_on(command: &mut Command, source: &[u8]) -> bool {
    let Ok(mut child) = command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let written = child
        .stdin
        .take()
        .is_some_and(|mut stdin| stdin.write_all(source).is_ok());
    child.wait().is_ok_and(|s| s.success()) && written
}
