//! Logging set-up from runc's global flags (`--log FILE`, `--log-format
//! text|json`, `--debug`; `RUST_LOG` overrides the level).
//!
//! With `--log`, every line has runc's (logrus's) shape, because callers
//! parse it: containerd's shim takes the `msg` of the last
//! `"level":"error"` line of `log.json`, podman reads `{level,time,msg}`.
//!
//! - json: `{"level":"error","msg":"...","time":"2026-12-04T10:00:00Z"}`,
//!   exactly those three keys (an event's other fields are appended to
//!   `msg` as ` key=value`);
//! - text: `time="2026-12-04T10:00:00Z" level=error msg="..." key=value`.
//!
//! Levels are logrus's names (`trace`, `debug`, `info`, `warning`, `error`),
//! times RFC 3339 in UTC. Without `--log`, text goes to stderr in tracing's
//! own format (colours only on a terminal) and json in the logrus shape.
//! [`log_fatal`] appends the command's final error to the `--log` file, as
//! runc does before it exits.

use std::fmt::{self, Write as _};
use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Write as _};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use chrono::{SecondsFormat, Utc};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use super::{CliError, GlobalOpts, LogFormat};

/// The `--log` file and its format, kept for [`log_fatal`].
struct LogFile {
    file: Arc<File>,
    format: LogFormat,
}

static LOG_FILE: OnceLock<LogFile> = OnceLock::new();

/// Installs the global tracing subscriber from the global flags
/// (idempotent: later calls are no-ops).
pub fn init(global: &GlobalOpts) -> Result<(), CliError> {
    init_to(global.log.as_deref(), global.log_format, global.debug)
}

/// Installs the global tracing subscriber writing to `path` (appending;
/// `None` = stderr) in `format`, at debug level if `debug`. For processes
/// that outlive the command that started them (the per-container VMM):
/// they pass the same `--log` file on. Idempotent: once a subscriber is
/// installed, later calls change nothing.
pub fn init_to(path: Option<&Path>, format: LogFormat, debug: bool) -> Result<(), CliError> {
    let default = if debug { "debug" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = match (path, format) {
        (Some(path), format) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| CliError::Log(path.to_path_buf(), e))?;
            let file = Arc::new(file);
            let installed = builder
                .event_format(LogrusFormat { format })
                .with_writer(Arc::clone(&file))
                .try_init();
            if installed.is_ok() && LOG_FILE.set(LogFile { file, format }).is_ok() {
                if let Some(log) = LOG_FILE.get() {
                    crate::fatal_log::register(crate::fatal_log::FatalLog {
                        fd: std::os::fd::AsRawFd::as_raw_fd(&*log.file),
                        json: log.format == LogFormat::Json,
                        append_error: log_fatal,
                    });
                }
            }
            installed
        }
        (None, LogFormat::Json) => builder
            .event_format(LogrusFormat {
                format: LogFormat::Json,
            })
            .with_writer(std::io::stderr)
            .try_init(),
        // Colours only for a terminal: a pipe or file gets plain text.
        (None, LogFormat::Text) => builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .try_init(),
    };
    // Already initialised (e.g. by a test harness): keep the existing one.
    let _ = result;
    Ok(())
}

/// Appends `message` as an error line to the `--log` file (no-op without
/// `--log`). The binary calls it with the command's final error before it
/// prints `vmrun: error: ...` on stderr, as runc writes both.
pub fn log_fatal(message: &str) {
    if let Some(log) = LOG_FILE.get() {
        // Best effort: the same error still goes to stderr.
        let _ = append_error(log, message);
    }
}

/// Appends one error line to `log` in a single write (O_APPEND: lines from
/// several processes sharing the file do not interleave).
fn append_error(log: &LogFile, message: &str) -> std::io::Result<()> {
    let line = logrus_line(log.format, Level::ERROR, message, &[], &now_rfc3339());
    (&*log.file).write_all(line.as_bytes())
}

/// Formats tracing events as logrus lines (see the module docs).
struct LogrusFormat {
    format: LogFormat,
}

impl<S, N> FormatEvent<S, N> for LogrusFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = EventFields::default();
        event.record(&mut fields);
        let level = *event.metadata().level();
        let line = logrus_line(
            self.format,
            level,
            &fields.message,
            &fields.others,
            &now_rfc3339(),
        );
        writer.write_str(&line)
    }
}

/// One complete line (with its newline) in logrus's shape. json: `fields`
/// are appended to `msg` as ` key=value`; text: they follow `msg=` as
/// separate `key=value` pairs, as logrus writes fields.
fn logrus_line(
    format: LogFormat,
    level: Level,
    message: &str,
    fields: &[(String, String)],
    time: &str,
) -> String {
    let level = logrus_level(level);
    match format {
        LogFormat::Json => {
            let mut msg = message.to_owned();
            for (key, value) in fields {
                if !msg.is_empty() {
                    msg.push(' ');
                }
                let _ = write!(msg, "{key}={value}");
            }
            let msg = msg.as_str();
            // Struct field order = key order: logrus sorts keys, and
            // level < msg < time.
            #[derive(serde::Serialize)]
            struct Line<'a> {
                level: &'a str,
                msg: &'a str,
                time: &'a str,
            }
            let json = serde_json::to_string(&Line { level, msg, time })
                .unwrap_or_else(|_| String::from("{}"));
            json + "\n"
        }
        LogFormat::Text => {
            let mut line = format!("time={} level={level} msg={}", quote(time), quote(message));
            for (key, value) in fields {
                let _ = write!(line, " {key}={}", quote(value));
            }
            line + "\n"
        }
    }
}

/// logrus's level names.
fn logrus_level(level: Level) -> &'static str {
    match level {
        Level::TRACE => "trace",
        Level::DEBUG => "debug",
        Level::INFO => "info",
        Level::WARN => "warning",
        Level::ERROR => "error",
    }
}

fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A value as logrus's text formatter writes it: bare if it only holds
/// `[A-Za-z0-9-._/@^+]`, else quoted like Go's `%q`.
fn quote(value: &str) -> String {
    let bare = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._/@^+".contains(c));
    if bare {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() && (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An event's `message` and its other fields, in order.
#[derive(Default)]
struct EventFields {
    message: String,
    others: Vec<(String, String)>,
}

impl Visit for EventFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.others
                .push((field.name().to_owned(), value.to_owned()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.others
                .push((field.name().to_owned(), format!("{value:?}")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::fmt::MakeWriter;

    /// Collects what a subscriber writes, for inspection.
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// Runs `emit` under a logrus-format subscriber at debug level and
    /// returns what it wrote.
    fn capture(format: LogFormat, emit: impl FnOnce()) -> String {
        let out = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new("debug"))
            .event_format(LogrusFormat { format })
            .with_writer(out.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        out.text()
    }

    fn assert_rfc3339_utc(time: &str) {
        let parsed = chrono::DateTime::parse_from_rfc3339(time)
            .unwrap_or_else(|e| panic!("time {time:?} is not RFC 3339: {e}"));
        assert_eq!(parsed.offset().local_minus_utc(), 0, "{time}");
        assert!(time.ends_with('Z'), "{time}");
    }

    /// Parses one JSON line and checks it has exactly runc's keys, all
    /// strings; returns (level, msg).
    fn parse_logrus_json(line: &str) -> (String, String) {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"));
        let object = value.as_object().expect("a JSON object");
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["level", "msg", "time"], "{line}");
        let field = |k: &str| {
            object[k]
                .as_str()
                .unwrap_or_else(|| panic!("{k} is not a string in {line}"))
                .to_owned()
        };
        assert_rfc3339_utc(&field("time"));
        (field("level"), field("msg"))
    }

    #[test]
    fn json_lines_have_exactly_level_msg_time() {
        let text = capture(LogFormat::Json, || {
            tracing::error!("container init failed: \"quoted\"\nsecond line");
            tracing::warn!(id = "c1", code = 7, "cannot kill");
            tracing::info!("hello");
            tracing::debug!("details");
            tracing::trace!("not shown at debug level");
        });
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        let parsed: Vec<(String, String)> = lines.iter().map(|l| parse_logrus_json(l)).collect();
        assert_eq!(
            parsed,
            [
                (
                    "error".into(),
                    "container init failed: \"quoted\"\nsecond line".into()
                ),
                ("warning".into(), "cannot kill id=c1 code=7".into()),
                ("info".into(), "hello".into()),
                ("debug".into(), "details".into()),
            ]
        );
        // Key order as logrus writes it (sorted), one object per line.
        assert!(
            lines[0].starts_with(r#"{"level":"error","msg":"#),
            "{}",
            lines[0]
        );
        assert!(lines[0].contains(r#"","time":""#), "{}", lines[0]);
    }

    #[test]
    fn text_lines_are_logrus_like() {
        let text = capture(LogFormat::Text, || {
            tracing::error!("File config.json exists. Remove it first");
            tracing::info!(path = "/run/x y", "plain");
            tracing::warn!("bare-word");
        });
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        let rest = lines[0].strip_prefix("time=\"").expect(lines[0]);
        let (time, rest) = rest.split_once('"').expect(lines[0]);
        assert_rfc3339_utc(time);
        assert_eq!(
            rest,
            r#" level=error msg="File config.json exists. Remove it first""#
        );
        assert!(
            lines[1].ends_with(r#" level=info msg=plain path="/run/x y""#),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].ends_with(" level=warning msg=bare-word"),
            "{}",
            lines[2]
        );
    }

    #[test]
    fn lines_have_the_exact_bytes() {
        let time = "2026-12-04T10:00:00Z";
        let fields = [("id".to_owned(), "a b".to_owned())];
        assert_eq!(
            logrus_line(LogFormat::Json, Level::ERROR, "boom \"x\"", &[], time),
            "{\"level\":\"error\",\"msg\":\"boom \\\"x\\\"\",\"time\":\"2026-12-04T10:00:00Z\"}\n"
        );
        assert_eq!(
            logrus_line(LogFormat::Json, Level::WARN, "", &fields, time),
            "{\"level\":\"warning\",\"msg\":\"id=a b\",\"time\":\"2026-12-04T10:00:00Z\"}\n"
        );
        assert_eq!(
            logrus_line(LogFormat::Text, Level::ERROR, "boom", &fields, time),
            "time=\"2026-12-04T10:00:00Z\" level=error msg=boom id=\"a b\"\n"
        );
    }

    #[test]
    fn fatal_errors_are_appended_to_the_log_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.json");
        std::fs::write(
            &path,
            "{\"level\":\"info\",\"msg\":\"earlier\",\"time\":\"2026-01-01T00:00:00Z\"}\n",
        )
        .unwrap();
        let file = OpenOptions::new().append(true).open(&path).unwrap();
        let log = LogFile {
            file: Arc::new(file),
            format: LogFormat::Json,
        };
        append_error(&log, "container \"c1\" does not exist").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(parse_logrus_json(lines[0]).1, "earlier");
        assert_eq!(
            parse_logrus_json(lines[1]),
            ("error".into(), "container \"c1\" does not exist".into())
        );
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn quoting_follows_go() {
        assert_eq!(quote("abc-1.2_x/y@z^+"), "abc-1.2_x/y@z^+");
        assert_eq!(quote(""), "");
        assert_eq!(quote("a b"), "\"a b\"");
        assert_eq!(quote("a\"b\\c\nd\te\u{1b}"), "\"a\\\"b\\\\c\\nd\\te\\x1b\"");
        assert_eq!(quote("µs"), "\"µs\"");
    }
}
