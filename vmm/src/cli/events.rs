//! `vmrun events [--stats] [--interval D] ID`: runc's event stream: one
//! `{"type":"stats","id":...,"data":{...}}` line every interval (stats from
//! the container's cgroup in the guest) until the container stops, or one
//! line with `--stats`.

use std::io::Write;
use std::time::Duration;

use serde_json::json;

use super::{CliError, GlobalOpts};
use crate::runtime::api::{ApiError, ApiRequest, ApiResponse};
use crate::runtime::container::Container;
use crate::runtime::state::{StateRoot, Status};

/// Arguments of `vmrun events`.
#[derive(Debug, Clone, clap::Args)]
pub struct EventsArgs {
    /// Print the stats once and exit.
    #[arg(long)]
    pub stats: bool,
    /// How often to print stats (Go duration: 500ms, 5s, 1m).
    #[arg(long, default_value = "5s", value_name = "DURATION", value_parser = parse_duration)]
    pub interval: Duration,
    /// The container id.
    #[arg(value_name = "ID")]
    pub id: String,
}

/// Parses a Go-style duration (`300ms`, `5s`, `1m30s`, `2h`).
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {raw:?} (e.g. 500ms, 5s, 1m)");
    let mut total = Duration::ZERO;
    let mut rest = raw.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (number, tail) = rest.split_at(digits);
        let number: f64 = number.parse().map_err(|_| bad())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let seconds = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += Duration::try_from_secs_f64(number * seconds).map_err(|_| bad())?;
        rest = tail;
    }
    if total.is_zero() {
        return Err("the interval must be positive".into());
    }
    Ok(total)
}

fn stats_line(container: &Container, id: &str) -> Result<Option<String>, CliError> {
    match container
        .api()
        .and_then(|mut api| api.call(&ApiRequest::Stats))
    {
        Ok(ApiResponse::Stats { stats }) => Ok(Some(
            json!({"type": "stats", "id": id, "data": stats}).to_string(),
        )),
        Ok(other) => Err(ApiError::Unexpected(other).into()),
        Err(ApiError::Gone | ApiError::Frame(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Runs `vmrun events`.
pub fn run(global: &GlobalOpts, args: EventsArgs) -> Result<i32, CliError> {
    let container = Container::load(&StateRoot::new(&global.root), &args.id)?;
    if container.status() == Status::Stopped {
        return Err(CliError::Usage("container not running".into()));
    }
    let mut stdout = std::io::stdout();
    loop {
        let Some(line) = stats_line(&container, &args.id)? else {
            if args.stats {
                return Err(CliError::Usage("container not running".into()));
            }
            return Ok(0);
        };
        if writeln!(stdout, "{line}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            return Ok(0);
        }
        if args.stats {
            return Ok(0);
        }
        std::thread::sleep(args.interval);
        if container.status() == Status::Stopped {
            return Ok(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("300ms").unwrap(), Duration::from_millis(300));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        for bad in ["", "5", "s", "5x", "0s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
