//! `vmrun kill [--all] ID [SIGNAL]`: sends a signal (number, name or
//! SIG-name, any case; default SIGTERM) to the container's init, or with
//! `--all` to every process of the container.

use super::{CliError, GlobalOpts};
use crate::runtime::api::{ApiError, ApiRequest};
use crate::runtime::container::Container;
use crate::runtime::state::StateRoot;

/// Arguments of `vmrun kill`.
#[derive(Debug, Clone, clap::Args)]
pub struct KillArgs {
    /// Send the signal to every process of the container.
    #[arg(short, long)]
    pub all: bool,
    /// The container id.
    #[arg(value_name = "ID")]
    pub id: String,
    /// The signal (default SIGTERM).
    #[arg(value_name = "SIGNAL", default_value = "SIGTERM")]
    pub signal: String,
}

/// Signal names without their `SIG` prefix, and numbers.
const SIGNALS: [(&str, i32); 34] = [
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGIOT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("POLL", libc::SIGPOLL),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];
/// Highest signal number (SIGRTMAX on Linux).
const MAX_SIGNAL: i32 = 64;
/// SIGRTMIN as the kernel numbers it (glibc reserves 32 and 33 for itself
/// but a container may use them).
const RTMIN: i32 = 34;

/// Parses a signal as runc does: a number, or a name with or without
/// `SIG`, in any case (`9`, `KILL`, `sigkill`, `RTMIN+2`).
pub fn parse_signal(raw: &str) -> Result<i32, CliError> {
    let unknown = || CliError::Usage(format!("unknown signal {raw:?}"));
    if let Ok(n) = raw.parse::<i32>() {
        return if (1..=MAX_SIGNAL).contains(&n) {
            Ok(n)
        } else {
            Err(unknown())
        };
    }
    let upper = raw.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some((_, n)) = SIGNALS.iter().find(|(known, _)| *known == name) {
        return Ok(*n);
    }
    let realtime = |base: i32, rest: &str, sign: i32| -> Option<i32> {
        let offset: i32 = if rest.is_empty() {
            0
        } else {
            rest.parse().ok()?
        };
        let n = base + sign * offset;
        (RTMIN..=MAX_SIGNAL).contains(&n).then_some(n)
    };
    let parsed = if let Some(rest) = name.strip_prefix("RTMIN") {
        realtime(RTMIN, rest.strip_prefix('+').unwrap_or(rest), 1)
    } else if let Some(rest) = name.strip_prefix("RTMAX") {
        realtime(MAX_SIGNAL, rest.strip_prefix('-').unwrap_or(rest), -1)
    } else {
        None
    };
    parsed.ok_or_else(unknown)
}

/// Runs `vmrun kill`.
pub fn run(global: &GlobalOpts, args: KillArgs) -> Result<i32, CliError> {
    let signal = parse_signal(&args.signal)?;
    let container = Container::load(&StateRoot::new(&global.root), &args.id)?;
    let request = ApiRequest::Kill {
        signal,
        all: args.all,
    };
    match container.api().and_then(|mut api| api.call(&request)) {
        Ok(_) => Ok(0),
        Err(ApiError::Gone | ApiError::Frame(_)) => {
            Err(CliError::Usage("container not running".into()))
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_like_runc() {
        for (raw, want) in [
            ("9", 9),
            ("KILL", 9),
            ("SIGKILL", 9),
            ("sigterm", 15),
            ("term", 15),
            ("HUP", 1),
            ("SIGUSR1", 10),
            ("winch", 28),
            ("RTMIN", 34),
            ("RTMIN+3", 37),
            ("SIGRTMAX", 64),
            ("RTMAX-1", 63),
            ("64", 64),
        ] {
            assert_eq!(parse_signal(raw).unwrap(), want, "{raw}");
        }
        for bad in ["", "0", "65", "-1", "NOPE", "SIG", "RTMIN+40", "KILL9"] {
            let err = parse_signal(bad).unwrap_err();
            assert!(err.to_string().contains("unknown signal"), "{bad}: {err}");
        }
    }
}
