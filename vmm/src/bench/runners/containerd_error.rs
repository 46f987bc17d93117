//! Why the bench's private containerd could not be had (a peer that
//! reports it is `refused`, with this as its reason), and running its
//! set-up commands.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::image_archive::ArchiveError;
use crate::bench::process::{run_timed, Capture};

/// Why the private containerd could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ContainerdError {
    /// A file or process operation failed.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A program it needs is not installed.
    #[error("`{0}` is not on PATH")]
    Missing(&'static str),
    /// The socket path would not fit a sockaddr_un.
    #[error("the socket path {0} is too long: use a shorter --workdir")]
    SocketTooLong(PathBuf),
    /// The image archive could not be built.
    #[error("building the image archive of the rootfs")]
    Archive(#[source] ArchiveError),
    /// A command of the set-up failed.
    #[error("`{command}` failed: {output}")]
    Command {
        /// The command.
        command: String,
        /// Its error output.
        output: String,
    },
    /// containerd exited before it answered.
    #[error("containerd exited ({status}) before it answered; its log ends:\n{log}")]
    Exited {
        /// How it ended.
        status: String,
        /// The end of its log.
        log: String,
    },
    /// containerd did not answer in time.
    #[error("containerd did not answer `ctr version` within {secs} s; its log ends:\n{log}")]
    NotUp {
        /// How long it was given.
        secs: u64,
        /// The end of its log.
        log: String,
    },
}

/// `Io` with `what`.
pub(crate) fn io_err(what: String) -> impl FnOnce(std::io::Error) -> ContainerdError {
    move |source| ContainerdError::Io { what, source }
}

/// Runs a set-up command; its failure as an error.
pub(crate) fn setup(command: &mut Command, limit: Duration) -> Result<(), ContainerdError> {
    let described = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let t = run_timed(command, &Capture::Pipes, None, limit)
        .map_err(io_err(format!("cannot start `{described}`")))?;
    if t.success() {
        return Ok(());
    }
    Err(ContainerdError::Command {
        output: t.failure("it"),
        command: described,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_setup_command_is_named_with_its_message() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo 'Cannot create namespace' >&2; exit 3"]);
        let e = setup(&mut command, Duration::from_secs(30)).unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("`sh -c echo"), "{text}");
        assert!(text.contains("Cannot create namespace"), "{text}");
        assert!(setup(&mut Command::new("true"), Duration::from_secs(30)).is_ok());
        let missing = ContainerdError::Missing("containerd").to_string();
        assert_eq!(missing, "`containerd` is not on PATH");
    }
}
