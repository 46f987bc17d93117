//! `vmrun delete [--force] ID`: removes a container and everything it
//! left (VMM, host cgroups, state), then runs its poststop hooks. A
//! created container is killed; a running or paused one only with
//! `--force`; `--force` of an unknown id succeeds, as runc's does.

use super::{CliError, GlobalOpts};
use crate::runtime::container::Container;
use crate::runtime::state::{StateError, StateRoot, Status};

/// Arguments of `vmrun delete`.
#[derive(Debug, Clone, clap::Args)]
pub struct DeleteArgs {
    /// Kill the container first if it runs.
    #[arg(short, long)]
    pub force: bool,
    /// The container id.
    #[arg(value_name = "ID")]
    pub id: String,
}

/// Runs `vmrun delete`.
pub fn run(global: &GlobalOpts, args: DeleteArgs) -> Result<i32, CliError> {
    let root = StateRoot::new(&global.root);
    let container = match Container::load(&root, &args.id) {
        Ok(container) => container,
        Err(StateError::NotFound(_)) if args.force => {
            remove_unrecorded(&root, &args.id);
            return Ok(0);
        }
        Err(e) => return Err(e.into()),
    };
    let _lock = container.dir().lock()?;
    match container.status() {
        Status::Stopped | Status::Created => {}
        status @ (Status::Running | Status::Paused) if !args.force => {
            return Err(CliError::Usage(format!(
                "cannot delete container {} that is not stopped: {status}",
                args.id
            )))
        }
        Status::Running | Status::Paused => {}
    }
    container
        .kill_vmm()
        .and_then(|()| container.destroy())
        .map_err(|e| CliError::Usage(crate::error_chain(&e)))?;
    Ok(0)
}

/// `delete --force` of an id without a state file: a `create` that died
/// half-way may have left its directory. Waits for a `create` under way
/// (it holds the lock), then removes what is still unrecorded.
fn remove_unrecorded(root: &StateRoot, id: &str) {
    if crate::runtime::state::validate_id(id).is_err() {
        return;
    }
    let dir = crate::runtime::state::ContainerDir::at(&root.path().join(id), id);
    if !dir.path().is_dir() {
        return;
    }
    if let Ok(_lock) = dir.lock() {
        if !dir.path().join(crate::runtime::state::STATE_FILE).exists() {
            let _ = dir.remove();
        }
    }
}
