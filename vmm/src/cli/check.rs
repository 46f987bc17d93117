//! `vmrun check`: can this host run microVMs?

use super::{CliError, GlobalOpts};
use crate::check::HostReport;

/// Arguments of `vmrun check` (none yet).
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {}

/// Prints the host report; exit code 0 if guests can run here, 1 if not.
pub fn run(_global: &GlobalOpts, _args: CheckArgs) -> Result<i32, CliError> {
    let report = HostReport::gather();
    println!("{report}");
    Ok(if report.can_run_guests() { 0 } else { 1 })
}
