//! `vmrun state ID`: runc's state JSON (ociVersion, id, pid, status,
//! bundle, rootfs, created, owner, annotations); `stopped` with pid 0 once
//! the container's VMM is gone, however it went.

use super::{CliError, GlobalOpts};
use crate::runtime::container::Container;
use crate::runtime::state::StateRoot;

/// Arguments of `vmrun state`.
#[derive(Debug, Clone, clap::Args)]
pub struct StateArgs {
    /// The container id.
    #[arg(value_name = "ID")]
    pub id: String,
}

/// Runs `vmrun state`.
pub fn run(global: &GlobalOpts, args: StateArgs) -> Result<i32, CliError> {
    let container = Container::load(&StateRoot::new(&global.root), &args.id)?;
    let printed = container.record().printed(container.status());
    let text = serde_json::to_string_pretty(&printed)
        .map_err(|e| CliError::Write("(stdout)".into(), e.into()))?;
    println!("{text}");
    Ok(0)
}
