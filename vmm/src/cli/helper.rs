//! The hidden verbs of the processes vmrun starts itself: `__vmm` (a
//! container's VMM daemon, started by `create`) and `__session` (a
//! detached session's host process). Their arguments have one form,
//! written by [`helper_global_args`] plus the verb, and [`parse`] reads
//! that form back without clap.
//!
//! The VMM daemon lives as long as its container, and what it executed
//! once stays mapped: the kernel maps a binary's pages up to 16 at a time,
//! so every page of code it ran (and its neighbours) counts in its RSS.
//! clap builds every verb's arguments to parse any one of them; that was
//! ~480 KiB of the ~2.4 MiB of code an idle VMM had executed. Any other
//! form (a flag spelt `--root=DIR`, another order of words) goes through
//! clap as before, to the same result.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

use super::{CliError, GlobalOpts, LogFormat};
use crate::runtime::daemon::DAEMON_VERB;
use crate::runtime::exec_client::SESSION_VERB;

/// A hidden verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelperVerb {
    /// `__vmm`: the container's VMM daemon.
    VmmDaemon,
    /// `__session`: the host process of a detached session.
    Session,
}

/// The global flags a helper vmrun starts (the VMM daemon, a detached
/// session's host process) runs with: its log goes to `--log`, else to
/// `default_log` (or nowhere) — never to the container's stderr, which is
/// the helper's own. The caller appends the verb.
pub fn helper_global_args(
    global: &GlobalOpts,
    default_log: Option<&std::path::Path>,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["--root".into(), global.root.clone().into()];
    let log = global
        .log
        .clone()
        .or_else(|| default_log.map(std::path::Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("/dev/null"));
    args.extend([
        "--log".into(),
        std::path::absolute(&log).unwrap_or(log).into(),
    ]);
    if global.log_format == LogFormat::Json {
        args.extend(["--log-format".into(), "json".into()]);
    }
    if global.debug {
        args.push("--debug".into());
    }
    if global.systemd_cgroup {
        args.push("--systemd-cgroup".into());
    }
    args
}

/// Reads `vmrun` + [`helper_global_args`]'s flags + a hidden verb (`args`
/// as `argv`, the program first); `None` for anything else.
pub fn parse(args: &[OsString]) -> Option<(GlobalOpts, HelperVerb)> {
    let (verb, flags) = args.get(1..)?.split_last()?;
    let verb = if verb == DAEMON_VERB {
        HelperVerb::VmmDaemon
    } else if verb == SESSION_VERB {
        HelperVerb::Session
    } else {
        return None;
    };
    let mut global = GlobalOpts {
        root: PathBuf::from(super::DEFAULT_ROOT),
        log: None,
        log_format: LogFormat::Text,
        systemd_cgroup: false,
        debug: false,
        image_store: vmrun_image::cli::StoreArgs { image_store: None },
    };
    let mut words = flags.iter();
    while let Some(flag) = words.next() {
        match flag.to_str()? {
            "--root" => global.root = value(words.next()?)?.into(),
            "--log" => global.log = Some(value(words.next()?)?.into()),
            "--log-format" => match words.next()?.to_str()? {
                "json" => global.log_format = LogFormat::Json,
                "text" => global.log_format = LogFormat::Text,
                _ => return None,
            },
            "--debug" => global.debug = true,
            "--systemd-cgroup" => global.systemd_cgroup = true,
            _ => return None,
        }
    }
    Some((global, verb))
}

/// A flag's value, as clap would take it (not empty, not another flag).
fn value(word: &OsStr) -> Option<&OsStr> {
    let starts_with_dash = word.as_encoded_bytes().first() == Some(&b'-');
    (!word.is_empty() && !starts_with_dash).then_some(word)
}

/// Runs a hidden verb: the process's logging, then the helper; returns
/// its exit code.
pub fn execute(global: &GlobalOpts, verb: HelperVerb) -> Result<i32, CliError> {
    super::logging::init(global)?;
    Ok(run(verb))
}

/// Runs the helper of a hidden verb (its logging already set up); returns
/// its exit code. Both ways in, this one and clap's, end here.
pub fn run(verb: HelperVerb) -> i32 {
    match verb {
        HelperVerb::VmmDaemon => crate::runtime::daemon::run_daemon(),
        HelperVerb::Session => crate::runtime::exec_client::run_detached(),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn argv(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    /// What clap makes of the same words.
    fn by_clap(args: &[OsString]) -> (GlobalOpts, HelperVerb) {
        let cli = Cli::try_parse_from(args).unwrap();
        let verb = match cli.command {
            Command::VmmDaemon => HelperVerb::VmmDaemon,
            Command::SessionHelper => HelperVerb::Session,
            other => panic!("clap parsed {other:?}"),
        };
        (cli.global, verb)
    }

    fn assert_same(a: &(GlobalOpts, HelperVerb), b: &(GlobalOpts, HelperVerb)) {
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
    }

    #[test]
    fn every_form_helper_global_args_writes_reads_back_as_clap_reads_it() {
        for (log_format, debug, systemd_cgroup, log) in [
            (LogFormat::Text, false, false, None),
            (LogFormat::Json, true, true, Some("/var/log/vmrun.log")),
            (LogFormat::Text, true, false, Some("relative.log")),
        ] {
            let global = GlobalOpts {
                root: "/run/vmrun-test".into(),
                log: log.map(PathBuf::from),
                log_format,
                systemd_cgroup,
                debug,
                image_store: vmrun_image::cli::StoreArgs { image_store: None },
            };
            for (verb, word) in [
                (HelperVerb::VmmDaemon, DAEMON_VERB),
                (HelperVerb::Session, SESSION_VERB),
            ] {
                let mut args = vec![OsString::from("vmrun")];
                args.extend(helper_global_args(
                    &global,
                    Some("/state/daemon.log".as_ref()),
                ));
                args.push(word.into());
                let ours = parse(&args).expect("the helper form is read");
                assert_eq!(ours.1, verb);
                assert_eq!(ours.0.root, global.root);
                assert!(ours.0.log.as_ref().is_some_and(|l| l.is_absolute()));
                assert_same(&ours, &by_clap(&args));
            }
        }
    }

    #[test]
    fn a_bare_hidden_verb_gets_clap_defaults() {
        let args = argv(&["vmrun", "__vmm"]);
        assert_same(&parse(&args).unwrap(), &by_clap(&args));
    }

    #[test]
    fn other_forms_are_left_to_clap() {
        for words in [
            &["vmrun"][..],
            &["vmrun", "state", "x"],
            &["vmrun", "--root=/r", "__vmm"],
            &["vmrun", "--root", "__vmm"],
            &["vmrun", "--root", "", "__vmm"],
            &["vmrun", "--log-format", "yaml", "__vmm"],
            &["vmrun", "--image-store", "/s", "__vmm"],
            &["vmrun", "__vmm", "--debug"],
            &["vmrun", "--debug", "extra", "__session"],
        ] {
            assert!(parse(&argv(words)).is_none(), "{words:?}");
        }
    }
}
