//! `vmrun pause ID`: freezes every process of the container (the guest's
//! cgroup freezer); its status becomes `paused`.

use super::{CliError, GlobalOpts};
use crate::runtime::api::{ApiError, ApiRequest};
use crate::runtime::container::Container;
use crate::runtime::state::StateRoot;

/// Arguments of `vmrun pause` and `vmrun resume`.
#[derive(Debug, Clone, clap::Args)]
pub struct IdArgs {
    /// The container id.
    #[arg(value_name = "ID")]
    pub id: String,
}

/// Sends `request` to container `id`'s VMM; a gone VMM is "container not running".
pub fn call_running(global: &GlobalOpts, id: &str, request: &ApiRequest) -> Result<(), CliError> {
    let container = Container::load(&StateRoot::new(&global.root), id)?;
    let _lock = container.dir().lock()?;
    match container.api().and_then(|mut api| api.call(request)) {
        Ok(_) => Ok(()),
        Err(ApiError::Gone | ApiError::Frame(_)) => {
            Err(CliError::Usage("container not running".into()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Runs `vmrun pause`.
pub fn run(global: &GlobalOpts, args: IdArgs) -> Result<i32, CliError> {
    call_running(global, &args.id, &ApiRequest::Pause)?;
    Ok(0)
}
