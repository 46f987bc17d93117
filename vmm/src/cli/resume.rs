//! `vmrun resume ID`: thaws a paused container.

use super::pause::{call_running, IdArgs};
use super::{CliError, GlobalOpts};
use crate::runtime::api::ApiRequest;

/// Runs `vmrun resume`.
pub fn run(global: &GlobalOpts, args: IdArgs) -> Result<i32, CliError> {
    call_running(global, &args.id, &ApiRequest::Resume)?;
    Ok(0)
}
