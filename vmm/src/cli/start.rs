//! `vmrun start ID`: runs the startContainer hooks, the created
//! container's process, and once it runs, the poststart hooks. Spec fields
//! the guest ignored are logged as warnings (to `--log`, or stderr), never
//! written to the container's stdio.

use super::{CliError, GlobalOpts};
use crate::runtime::api::{ApiRequest, ApiResponse};
use crate::runtime::container::Container;
use crate::runtime::hooks::{run_phase, run_phase_warning, HookPhase};
use crate::runtime::state::{StateRoot, Status};

/// Arguments of `vmrun start`.
#[derive(Debug, Clone, clap::Args)]
pub struct StartArgs {
    /// The container id.
    #[arg(value_name = "ID")]
    pub id: String,
}

/// Starts container `id`.
pub fn start_container(global: &GlobalOpts, id: &str) -> Result<(), CliError> {
    let container = Container::load(&StateRoot::new(&global.root), id)?;
    let _lock = container.dir().lock()?;
    match container.status() {
        Status::Created => {}
        Status::Stopped => {
            return Err(CliError::Usage(
                "cannot start a container that has stopped".into(),
            ))
        }
        Status::Running => {
            return Err(CliError::Usage(
                "cannot start an already running container".into(),
            ))
        }
        Status::Paused => {
            return Err(CliError::Usage(
                "cannot start a container in the paused state".into(),
            ))
        }
    }
    let (hooks, state) = (container.record().hooks(), container.record().hook_state());
    if let Err(e) = run_phase(HookPhase::StartContainer, &hooks, &state) {
        // The spec: a failed startContainer hook stops the container.
        if let Err(kill) = container.kill_vmm() {
            tracing::warn!("{}", crate::error_chain(&kill));
        }
        return Err(CliError::Usage(crate::error_chain(&e)));
    }
    match container.api()?.call(&ApiRequest::Start)? {
        ApiResponse::Started { warnings } => {
            for warning in warnings {
                tracing::warn!("{warning}");
            }
            run_phase_warning(HookPhase::Poststart, &hooks, &state);
            Ok(())
        }
        other => Err(crate::runtime::api::ApiError::Unexpected(other).into()),
    }
}

/// Runs `vmrun start`.
pub fn run(global: &GlobalOpts, args: StartArgs) -> Result<i32, CliError> {
    start_container(global, &args.id)?;
    Ok(0)
}
