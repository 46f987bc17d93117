//! A process's stdio (the container's init or an exec'd process): the
//! connections to the host's ports, or a pty's relay streams.

use std::os::fd::OwnedFd;

use anyhow::{Context, Result};
use vmrun_isolation::Stdio;
use vmrun_protocol::StdioPorts;

use super::transport::StdioConnector;
use super::tty::TerminalStreams;

/// Opens `/dev/null` (close-on-exec) for a stream the host did not connect.
pub fn dev_null() -> Result<OwnedFd> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .context("opening /dev/null")?;
    Ok(OwnedFd::from(file))
}

/// Connects to each of the host's `ports` (`None` → /dev/null); an error
/// names the field (`stdio.stdout: connecting to the host's port 5001`).
pub fn connect(connector: &dyn StdioConnector, ports: &StdioPorts) -> Result<Stdio> {
    let open = |name: &str, port: Option<u32>| match port {
        Some(port) => connector
            .connect(port)
            .with_context(|| format!("stdio.{name}: connecting to the host's port {port}")),
        None => dev_null(),
    };
    Ok(Stdio {
        stdin: open("stdin", ports.stdin)?,
        stdout: open("stdout", ports.stdout)?,
        stderr: open("stderr", ports.stderr)?,
    })
}

/// The stdio as the process gets it: for a terminal (`process.terminal`),
/// keeps stdin and stdout for the pty relay, closes stderr at once (the
/// host sees EOF: a terminal has no separate stderr) and gives the
/// container runtime /dev/null placeholders (the pty slave becomes fd 0-2).
pub fn for_process(stdio: Stdio, terminal: bool) -> Result<(Stdio, Option<TerminalStreams>)> {
    if !terminal {
        return Ok((stdio, None));
    }
    let Stdio {
        stdin,
        stdout,
        stderr,
    } = stdio;
    drop(stderr);
    let placeholders = Stdio {
        stdin: dev_null()?,
        stdout: dev_null()?,
        stderr: dev_null()?,
    };
    Ok((placeholders, Some(TerminalStreams { stdin, stdout })))
}
