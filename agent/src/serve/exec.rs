//! `Exec`: a new process in a running container (runc's `exec`), its stdio
//! over the host's ports exactly like the init's (a terminal exec's pty
//! relayed the same way), its exit watched through PID 1's reaper; and the
//! `Signal`/`Resize`/`Wait` requests that name an `exec_id`.

use std::sync::mpsc::Receiver;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use vmrun_protocol::StdioPorts;

use super::container::{self, check_id, check_name, exit_status, Container, Containers, State};
use super::control::Server;
use super::exit_cell::ExitCell;
use super::launch::launch;
use super::stdio;
use super::tty::PtyRelay;
use crate::init::reaper::ChildExit;

impl Server<'_> {
    /// Runs `process` (an OCI `process` object) in running container `id`
    /// as `exec_id`; returns its pid once it runs.
    pub(super) fn exec(
        &self,
        id: &str,
        exec_id: &str,
        process: &serde_json::Value,
        ports: &StdioPorts,
    ) -> Result<i32> {
        check_id(id)?;
        check_name("exec_id", exec_id)?;
        let process = vmrun_isolation::exec::parse_process(process)?;
        let terminal = process.terminal().unwrap_or(false);
        let context = self.with_container(id, |c| {
            c.execs.check_new(exec_id)?;
            match &c.state {
                // runc (and containerd's shim) exec into a created container.
                State::Created(created) if !c.init_exited => created.exec_context(),
                _ => c.running(id)?.exec_context(),
            }
            .map_err(anyhow::Error::from)
        })?;
        let connected = stdio::connect(self.env.stdio.as_ref(), ports)?;
        let (process_stdio, streams) = stdio::for_process(connected, terminal)?;
        let name = exec_id.to_owned();
        let mut started = launch(move || context.exec(&name, process, process_stdio))
            .with_context(|| format!("exec {exec_id:?} in container {id}"))?;
        let pid = started.pid;
        let kill_it = |err: anyhow::Error| {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            err
        };
        let tty = match (streams, started.pty_master.take()) {
            (Some(streams), Some(master)) => Some(Arc::new(
                PtyRelay::start(&format!("{id}-{exec_id}"), master, streams).map_err(kill_it)?,
            )),
            (Some(_), None) => {
                return Err(kill_it(anyhow::anyhow!(
                    "process.terminal: the container runtime gave no pty master"
                )))
            }
            (None, _) => None,
        };
        let exited = self.env.reaper.watch(Pid::from_raw(pid));
        let cell = Arc::<ExitCell>::default();
        let generation = self.with_container(id, |c| {
            Ok(c.execs.insert(exec_id, pid, Arc::clone(&cell), tty.clone()))
        })?;
        spawn_exec_watcher(
            Arc::clone(&self.containers),
            (id.to_owned(), exec_id.to_owned(), generation),
            exited,
            cell,
            tty,
        )
        .map_err(kill_it)?;
        tracing::info!(
            "exec {exec_id} in container {id} (pid {pid}{})",
            if terminal { ", terminal" } else { "" }
        );
        Ok(pid)
    }
}

/// Starts a thread that waits for an exec'd process's exit (from the
/// reaper) and publishes it — for a terminal exec only after the pty's
/// remaining output is relayed. `names` is (container id, exec id,
/// generation).
fn spawn_exec_watcher(
    containers: Containers,
    names: (String, String, u64),
    exited: Receiver<ChildExit>,
    cell: Arc<ExitCell>,
    tty: Option<Arc<PtyRelay>>,
) -> Result<()> {
    let (id, exec_id, generation) = names;
    std::thread::Builder::new()
        .name(format!("wait-{id}-{exec_id}"))
        .spawn(move || {
            let received = exited.recv();
            let with_execs = |f: &dyn Fn(&mut Container)| {
                if let Some(c) = container::lock(&containers).get_mut(&id) {
                    f(c);
                }
            };
            with_execs(&|c| c.execs.mark_exited(&exec_id, generation));
            if let Some(tty) = tty {
                tty.drain(container::TTY_DRAIN_LIMIT);
            }
            let outcome = received
                .map(exit_status)
                .map_err(|_| "the agent's child reaper stopped".to_owned());
            if let Ok(status) = &outcome {
                tracing::info!("exec {exec_id} in container {id} exited: {status:?}");
            }
            cell.set(outcome);
            with_execs(&|c| c.execs.finished(&exec_id, generation));
        })
        .context("spawning the exec's exit watcher thread")?;
    Ok(())
}

/// Sends `signal` to exec'd process `exec_id` of container `c` (`id`).
pub(super) fn signal_exec(c: &Container, id: &str, exec_id: &str, signal: i32) -> Result<()> {
    let Some(record) = c.execs.get(exec_id) else {
        bail!("exec_id: no exec {exec_id:?} in container {id:?}");
    };
    if record.exited {
        bail!("exec {exec_id:?} in container {id:?} is not running");
    }
    vmrun_isolation::signal::send(Pid::from_raw(record.pid), signal)
        .with_context(|| format!("sending signal {signal} to exec {exec_id:?} in container {id}"))
}

/// Sets the window size of exec'd process `exec_id`'s terminal.
pub(super) fn resize_exec(
    c: &Container,
    id: &str,
    exec_id: &str,
    rows: u16,
    cols: u16,
) -> Result<()> {
    let Some(record) = c.execs.get(exec_id) else {
        bail!("exec_id: no exec {exec_id:?} in container {id:?}");
    };
    let Some(tty) = &record.tty else {
        bail!("exec {exec_id:?} in container {id:?} has no terminal (process.terminal is false)");
    };
    if record.exited {
        bail!("exec {exec_id:?} in container {id:?} is not running");
    }
    tty.resize(rows, cols)
        .with_context(|| format!("resizing the terminal of exec {exec_id:?} in container {id}"))
}

/// The outcome cell of exec'd process `exec_id`, for `Wait`.
pub(super) fn exec_cell(c: &Container, id: &str, exec_id: &str) -> Result<Arc<ExitCell>> {
    match c.execs.get(exec_id) {
        Some(record) => Ok(Arc::clone(&record.exit)),
        None => bail!("exec_id: no exec {exec_id:?} in container {id:?}"),
    }
}
