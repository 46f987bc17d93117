//! Command lines the parser refuses, reported as runc reports them: the
//! message on stderr, the reason as an error line in the `--log` file
//! (containerd's shim and podman read the log for it) and exit status 1
//! (clap's own is 2). Help and version requests print and exit 0.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::error::ErrorKind;

use super::LogFormat;

/// The exit status of a usage error (runc's).
pub const USAGE_EXIT_CODE: i32 = 1;

/// The `--log FILE` and `--log-format F` of an argument list the parser
/// refused (found by hand, as the parse failed; anything after `--` is
/// the container's).
pub fn log_flags(args: &[OsString]) -> (Option<PathBuf>, LogFormat) {
    let mut log = None;
    let mut format = LogFormat::Text;
    let mut iter = args.iter().skip(1);
    while let Some(arg) = iter.next() {
        let Some(text) = arg.to_str() else { continue };
        if text == "--" {
            break;
        }
        let (name, inline) = match text.split_once('=') {
            Some((name, value)) => (name, Some(OsString::from(value))),
            None => (text, None),
        };
        let value = || inline.clone().or_else(|| iter.clone().next().cloned());
        match name {
            "--log" => {
                log = value().map(PathBuf::from);
                if inline.is_none() {
                    iter.next();
                }
            }
            "--log-format" => {
                if value().is_some_and(|v| v == "json") {
                    format = LogFormat::Json;
                }
                if inline.is_none() {
                    iter.next();
                }
            }
            _ => {}
        }
    }
    (log, format)
}

/// The one-line reason of a parse error (`error: ` and the usage dropped).
pub fn reason(err: &clap::Error) -> String {
    let text = err.render().to_string();
    let first = text.lines().next().unwrap_or("").trim();
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}

/// Reports `err` for the command line `args`; the exit status.
pub fn report(err: &clap::Error, args: &[OsString]) -> i32 {
    match err.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            0
        }
        _ => {
            let (log, format) = log_flags(args);
            if let Some(path) = log {
                if super::logging::init_to(Some(&path), format, false).is_ok() {
                    super::logging::log_fatal(&reason(err));
                }
            }
            let _ = err.print();
            USAGE_EXIT_CODE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn log_flags_are_found_in_both_spellings() {
        let (log, format) = log_flags(&args(&[
            "vmrun",
            "--log",
            "/x/log.json",
            "--log-format=json",
            "create",
            "--bogus",
        ]));
        assert_eq!(log, Some(PathBuf::from("/x/log.json")));
        assert_eq!(format, LogFormat::Json);
        let (log, format) = log_flags(&args(&["vmrun", "--log=/y", "kill", "--", "--log", "z"]));
        assert_eq!(log, Some(PathBuf::from("/y")));
        assert_eq!(format, LogFormat::Text);
    }

    #[test]
    fn an_unknown_flag_is_a_one_line_reason() {
        let argv = args(&["vmrun", "create", "--bogus", "id"]);
        let err = super::super::Cli::try_parse_from(&argv).expect_err("--bogus is refused");
        let reason = reason(&err);
        assert!(reason.contains("--bogus"), "{reason}");
        assert!(
            !reason.contains('\n') && !reason.starts_with("error:"),
            "{reason}"
        );
        assert_ne!(err.kind(), ErrorKind::DisplayHelp);
    }
}
