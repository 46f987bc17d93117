//! `vmrun ps [--format table|json] ID [PS-ARGS...]`: the container's
//! processes. JSON lists host pids only, as clients kill and match them:
//! the VMM (standing for the init) and each exec session's host process.
//! The table shows those host processes as `ps` prints them (runc's
//! behaviour), then the processes inside the microVM, labelled as guest pids.

use std::process::Command;

use super::list::{tabulate, TableFormat};
use super::{CliError, GlobalOpts};
use crate::runtime::api::{ApiError, ApiRequest, ApiResponse};
use crate::runtime::container::Container;
use crate::runtime::state::StateRoot;

/// Arguments of `vmrun ps`.
#[derive(Debug, Clone, clap::Args)]
pub struct PsArgs {
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = TableFormat::Table)]
    pub format: TableFormat,
    /// The container id.
    #[arg(value_name = "ID")]
    pub id: String,
    /// Options for ps(1) (table format; default -ef).
    #[arg(
        value_name = "PS-ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub ps_args: Vec<String>,
}

/// The lines of `ps ARGS` whose PID column holds one of `pids` (with the header).
fn host_ps(args: &[String], pids: &[i32]) -> Result<String, CliError> {
    let args: Vec<String> = if args.is_empty() {
        vec!["-ef".into()]
    } else {
        args.to_vec()
    };
    let output = Command::new("ps")
        .args(&args)
        .output()
        .map_err(|e| CliError::Usage(format!("cannot run ps: {e}")))?;
    if !output.status.success() {
        return Err(CliError::Usage(format!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let pid_column = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| CliError::Usage("ps output has no PID column".into()))?;
    let mut out = format!("{header}\n");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(pid_column)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

/// Runs `vmrun ps`.
pub fn run(global: &GlobalOpts, args: PsArgs) -> Result<i32, CliError> {
    let container = Container::load(&StateRoot::new(&global.root), &args.id)?;
    let (host_pids, guest) = match container
        .api()
        .and_then(|mut api| api.call(&ApiRequest::Processes))
    {
        Ok(ApiResponse::Processes { host_pids, guest }) => (host_pids, guest),
        Ok(other) => return Err(ApiError::Unexpected(other).into()),
        Err(ApiError::Gone | ApiError::Frame(_)) => {
            return Err(CliError::Usage("container not running".into()))
        }
        Err(e) => return Err(e.into()),
    };
    match args.format {
        TableFormat::Json => {
            let text = serde_json::to_string(&host_pids)
                .map_err(|e| CliError::Write("(stdout)".into(), e.into()))?;
            println!("{text}");
        }
        TableFormat::Table => {
            print!("{}", host_ps(&args.ps_args, &host_pids)?);
            println!();
            println!("inside the microVM (guest pids, not host pids):");
            let mut rows = vec![["GUEST PID", "PPID", "UID", "CMD"]
                .map(String::from)
                .to_vec()];
            for p in guest {
                rows.push(vec![
                    p.pid.to_string(),
                    p.ppid.to_string(),
                    p.uid.to_string(),
                    p.cmd,
                ]);
            }
            print!("{}", tabulate(&rows));
        }
    }
    Ok(0)
}
