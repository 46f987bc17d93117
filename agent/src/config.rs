//! What the host asks the agent to do.
//!
//! The VMM passes settings as `key=value` words on the kernel command line;
//! the kernel hands words it does not know (and that contain no dot) to init
//! as environment variables, so the agent reads them from its environment.

use anyhow::{bail, Result};
use tracing::Level;

/// Environment variable selecting the [`Action`].
pub const ACTION_VAR: &str = "vmrun_action";
/// Environment variable selecting the log level (`error`, `warn`, `info`,
/// `debug`, `trace`); absent: [`Action::default_log_level`].
pub const LOG_VAR: &str = "vmrun_log";

/// What the agent does once PID-1 set-up is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Print the ready line, then sync and reboot (ends the VM cleanly).
    /// The default when `vmrun_action` is absent.
    Ready,
    /// Same as [`Action::Ready`]: without ACPI the only clean way out of the
    /// VM is the reset line, which the VMM treats as a clean exit.
    Poweroff,
    /// Serve the host's control connection on vsock (run containers),
    /// then end the VM.
    Serve,
    /// Panic deliberately after the ready line, to exercise the path that
    /// turns an agent panic into the end of the VM (tests use it).
    Panic,
}

impl Action {
    /// Every accepted `vmrun_action` value, for error messages.
    pub const NAMES: &'static [&'static str] = &["ready", "poweroff", "serve", "panic"];

    /// The `vmrun_action` value that selects this action.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Poweroff => "poweroff",
            Self::Serve => "serve",
            Self::Panic => "panic",
        }
    }

    /// The log level when `vmrun_log` is absent. Serving containers: `warn`,
    /// so a container's life prints nothing on the console unless
    /// something is wrong. Every console byte costs the guest VM exits (two
    /// or more per byte on the 8250 UART), and the host learns what an
    /// `info` line would say from the protocol; `vmrun --debug` asks for
    /// `debug`. Otherwise `info`.
    pub fn default_log_level(self) -> Level {
        match self {
            Self::Serve => Level::WARN,
            Self::Ready | Self::Poweroff | Self::Panic => Level::INFO,
        }
    }

    /// Parses a `vmrun_action` value; `None` (absent) means [`Action::Ready`].
    pub fn parse(value: Option<&str>) -> Result<Self> {
        Ok(match value {
            None | Some("ready") => Self::Ready,
            Some("poweroff") => Self::Poweroff,
            Some("serve") => Self::Serve,
            Some("panic") => Self::Panic,
            Some(other) => bail!(
                "unknown {ACTION_VAR}={other:?} (expected one of: {})",
                Self::NAMES.join(", ")
            ),
        })
    }
}

/// Parses a `vmrun_log` value; `None` (absent) means `default`.
pub fn parse_log_level(value: Option<&str>, default: Level) -> Result<Level> {
    Ok(match value {
        None => default,
        Some("info") => Level::INFO,
        Some("error") => Level::ERROR,
        Some("warn") => Level::WARN,
        Some("debug") => Level::DEBUG,
        Some("trace") => Level::TRACE,
        Some(other) => {
            bail!("unknown {LOG_VAR}={other:?} (expected error, warn, info, debug or trace)")
        }
    })
}

/// The agent's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    /// What to do after set-up.
    pub action: Action,
    /// Most verbose level that is logged.
    pub log_level: Level,
}

impl AgentConfig {
    /// Reads the settings from environment variables (`std::env::vars()`).
    pub fn from_env(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self> {
        let mut action = None;
        let mut log = None;
        for (key, value) in vars {
            match key.as_str() {
                ACTION_VAR => action = Some(value),
                LOG_VAR => log = Some(value),
                _ => {}
            }
        }
        let action = Action::parse(action.as_deref())?;
        Ok(Self {
            action,
            log_level: parse_log_level(log.as_deref(), action.default_log_level())?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn action_defaults_to_ready() {
        let config = AgentConfig::from_env(vars(&[("HOME", "/"), ("TERM", "linux")])).unwrap();
        assert_eq!(config.action, Action::Ready);
        assert_eq!(config.log_level, Level::INFO);
    }

    #[test]
    fn parses_every_known_action() {
        assert_eq!(Action::parse(Some("ready")).unwrap(), Action::Ready);
        assert_eq!(Action::parse(Some("poweroff")).unwrap(), Action::Poweroff);
        assert_eq!(Action::parse(Some("serve")).unwrap(), Action::Serve);
        assert_eq!(Action::parse(Some("panic")).unwrap(), Action::Panic);
        for name in Action::NAMES {
            let action = Action::parse(Some(name)).unwrap();
            assert_eq!(action.name(), *name);
        }
    }

    #[test]
    fn unknown_action_names_the_variable_and_value() {
        let err = AgentConfig::from_env(vars(&[("vmrun_action", "dance")])).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("vmrun_action=\"dance\""), "{msg}");
        assert!(msg.contains("ready, poweroff, serve, panic"), "{msg}");
        // Case matters: the kernel passes the word through unchanged.
        assert!(Action::parse(Some("Ready")).is_err());
        assert!(Action::parse(Some("")).is_err());
    }

    #[test]
    fn reads_action_and_log_level_from_env() {
        let config = AgentConfig::from_env(vars(&[
            ("vmrun_log", "debug"),
            ("vmrun_action", "poweroff"),
        ]))
        .unwrap();
        assert_eq!(config.action, Action::Poweroff);
        assert_eq!(config.log_level, Level::DEBUG);
    }

    #[test]
    fn serving_logs_warnings_unless_told_otherwise() {
        let serve = AgentConfig::from_env(vars(&[("vmrun_action", "serve")])).unwrap();
        assert_eq!(serve.log_level, Level::WARN);
        let debug =
            AgentConfig::from_env(vars(&[("vmrun_action", "serve"), ("vmrun_log", "debug")]))
                .unwrap();
        assert_eq!(debug.log_level, Level::DEBUG);
        let info = AgentConfig::from_env(vars(&[("vmrun_action", "serve"), ("vmrun_log", "info")]))
            .unwrap();
        assert_eq!(info.log_level, Level::INFO);
    }

    #[test]
    fn unknown_log_level_is_an_error() {
        let err = AgentConfig::from_env(vars(&[("vmrun_log", "loud")])).unwrap_err();
        assert!(err.to_string().contains("vmrun_log=\"loud\""));
    }
}
