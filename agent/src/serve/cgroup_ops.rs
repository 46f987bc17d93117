//! Requests on a container's cgroup: `Pause`/`Resume` (the freezer),
//! `Update` (limits), `Stats` (usage, in runc's `events --stats` shape)
//! and `Processes` (runc's `ps`).

use anyhow::{bail, Context, Result};
use vmrun_isolation::ContainerCgroup;
use vmrun_protocol::GuestProcess;

use super::container::{Container, State};
use super::control::Server;

/// Most processes one `Processes` answer lists (the init first): with
/// [`vmrun_isolation::processes::MAX_CMD_LEN`] this keeps the answer well
/// inside one protocol frame.
pub const MAX_PROCESSES_LISTED: usize = 1024;

/// The cgroup of a created or running container; an error once it
/// stopped (its cgroup is gone).
fn cgroup<'c>(c: &'c mut Container, id: &str) -> Result<&'c mut ContainerCgroup> {
    match &mut c.state {
        _ if c.init_exited => bail!("container {id:?} is stopped"),
        State::Created(created) => Ok(created.cgroup_mut()),
        State::Running(process) => Ok(process.cgroup_mut()),
        State::Starting => bail!("container {id:?} is starting"),
        State::Done => bail!("container {id:?} is stopped"),
    }
}

impl Server<'_> {
    /// Freezes every process of container `id`: a running one, or (as
    /// runc allows) a created one, whose init waits frozen until `Resume`.
    pub(super) fn pause(&self, id: &str) -> Result<()> {
        self.with_container(id, |c| {
            match &mut c.state {
                State::Created(created) if !c.init_exited => created.pause(),
                _ => c.running(id)?.pause(),
            }
            .with_context(|| format!("pausing container {id}"))
        })?;
        tracing::info!("paused container {id}");
        Ok(())
    }

    /// Thaws paused container `id` (running again, or created again if it
    /// was paused before `Start`).
    pub(super) fn resume(&self, id: &str) -> Result<()> {
        self.with_container(id, |c| {
            match &mut c.state {
                State::Created(created) if !c.init_exited => created.resume(),
                _ => c.running(id)?.resume(),
            }
            .with_context(|| format!("resuming container {id}"))
        })?;
        tracing::info!("resumed container {id}");
        Ok(())
    }

    /// Applies an OCI `linux.resources` update to container `id`.
    pub(super) fn update(&self, id: &str, resources: &serde_json::Value) -> Result<()> {
        let update = vmrun_isolation::resources_update::parse_resources(resources)?;
        let warnings = self.with_container(id, |c| {
            cgroup(c, id)?
                .update(&update)
                .with_context(|| format!("updating container {id}"))
        })?;
        for warning in warnings {
            tracing::warn!(container = %id, "update: {warning}");
        }
        Ok(())
    }

    /// Container `id`'s resource usage (runc's `types.Stats` as JSON).
    pub(super) fn stats(&self, id: &str) -> Result<serde_json::Value> {
        let stats = self.with_container(id, |c| {
            cgroup(c, id)?
                .stats()
                .with_context(|| format!("statistics of container {id}"))
        })?;
        serde_json::to_value(stats).context("encoding the statistics")
    }

    /// Container `id`'s processes, the init first while it runs.
    pub(super) fn processes(&self, id: &str) -> Result<Vec<GuestProcess>> {
        let listed = self.with_container(id, |c| {
            let init = c.pid;
            cgroup(c, id)?
                .processes(init, MAX_PROCESSES_LISTED)
                .with_context(|| format!("processes of container {id}"))
        })?;
        Ok(listed
            .into_iter()
            .map(|p| GuestProcess {
                pid: p.pid,
                ppid: p.ppid,
                uid: p.uid,
                cmd: p.cmd,
            })
            .collect())
    }
}
