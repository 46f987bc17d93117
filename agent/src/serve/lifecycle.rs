//! The container's own lifecycle: `Create` (shares mounted, the init
//! exists, stdio connected, NICs configured), `Start`, `Signal`, `Resize`,
//! `Wait` and `State`, each also for an exec'd process where the request
//! names an `exec_id`.

use std::os::fd::AsFd;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use nix::unistd::Pid;
use vmrun_isolation::oci_spec::runtime::Spec;
use vmrun_isolation::CreatedContainer;
use vmrun_protocol::{ContainerStatus, NetInterface, RootfsSource, StdioPorts};

use super::container::{self, check_id, isolation_exit, Container, State};
use super::control::{Answer, Server, MAX_CONTAINERS};
use super::launch::launch;
use super::network;
use super::stdio;
use super::tty::{PtyRelay, TerminalStreams};
use crate::marker::{self, Marker};

/// Takes the pty master from a created terminal container and starts
/// relaying it.
fn start_tty(
    id: &str,
    created: &mut CreatedContainer,
    streams: TerminalStreams,
) -> Result<Arc<PtyRelay>> {
    let master = created
        .take_pty_master()
        .ok_or_else(|| anyhow!("process.terminal: the container runtime gave no pty master"))?;
    Ok(Arc::new(PtyRelay::start(id, master, streams)?))
}

/// What a `Create` makes the container from, besides its spec.
#[derive(Debug, Clone, Copy)]
pub struct CreateSources<'r> {
    /// Where the rootfs comes from.
    pub rootfs: &'r RootfsSource,
    /// The virtio-fs tags to have mounted under `SHARES_DIR`.
    pub shares: &'r [String],
    /// The NICs to move into the container and configure.
    pub network: &'r [NetInterface],
}

/// `Create`'s switches.
#[derive(Debug, Clone, Copy)]
pub struct CreateFlags {
    /// `MS_MOVE` + `chroot` instead of `pivot_root`.
    pub no_pivot: bool,
    /// The VM ends with this container (see `Create.ends_vm`).
    pub ends_vm: bool,
}

/// `process.terminal` and `root.readonly` of a parsed spec.
fn terminal_and_readonly(spec: &Spec) -> (bool, bool) {
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let readonly = spec
        .root()
        .as_ref()
        .and_then(|root| root.readonly())
        .unwrap_or(false);
    (terminal, readonly)
}

impl Server<'_> {
    /// Creates container `id`: its shares are mounted, its init exists (in
    /// its namespaces and cgroup, mounts made, stdio connected, NICs
    /// configured) and waits for `Start`. Returns the init's pid. An error
    /// leaves no container (shares mounted stay: they are the VM's).
    pub(super) fn create(
        &self,
        id: String,
        spec: &serde_json::Value,
        sources: CreateSources<'_>,
        ports: &StdioPorts,
        flags: CreateFlags,
    ) -> Result<i32> {
        check_id(&id)?;
        {
            let table = container::lock(&self.containers);
            if table.contains_key(&id) {
                bail!("id: a container {id:?} already exists");
            }
            if table.len() >= MAX_CONTAINERS {
                bail!("id: this agent already holds {MAX_CONTAINERS} containers");
            }
        }
        let spec_json = serde_json::to_vec(spec).context("spec: cannot re-encode")?;
        let mut spec = vmrun_isolation::spec::parse_spec(&spec_json).context("spec")?;
        vmrun_isolation::validate::validate(&spec).context("spec")?;
        let (terminal, readonly) = terminal_and_readonly(&spec);
        let nics = network::plan(sources.network, self.env.nic_netns.as_fd())?;
        let netns = self.env.guest_netns.claim(&mut spec)?;
        self.env.shares.mount_all(sources.shares)?;
        let rootfs_dir = self.env.rootfs.prepare(&id, sources.rootfs, readonly)?;
        let made = self.make_container(&id, spec, rootfs_dir.clone(), ports, terminal, flags);
        let (created, tty) = match made {
            Ok(made) => made,
            Err(err) => {
                self.env.rootfs.release(&id, &rootfs_dir);
                return Err(err);
            }
        };
        let attached = network::attach(&nics, self.env.nic_netns.as_fd(), created.pid(), netns);
        if let Err(err) = attached {
            // Dropping the created container kills its init and cleans up.
            drop(created);
            self.env.rootfs.release(&id, &rootfs_dir);
            return Err(err);
        }
        let pid = created.pid();
        let exited = self.env.reaper.watch(Pid::from_raw(pid));
        let container = Container::created(rootfs_dir.clone(), created, tty.clone());
        let cell = Arc::clone(&container.exit);
        container::lock(&self.containers).insert(id.clone(), container);
        let watching = container::spawn_exit_watcher(
            Arc::clone(&self.containers),
            id.clone(),
            exited,
            cell,
            tty,
        );
        if let Err(err) = watching {
            // Dropping the created container kills its init.
            container::lock(&self.containers).remove(&id);
            self.env.rootfs.release(&id, &rootfs_dir);
            return Err(err);
        }
        tracing::info!(
            "created container {id} (pid {pid}, rootfs {}{})",
            rootfs_dir.display(),
            if terminal { ", terminal" } else { "" }
        );
        Ok(pid)
    }

    /// Connects the stdio and creates the container through
    /// vmrun-isolation; with a terminal, starts relaying its pty.
    fn make_container(
        &self,
        id: &str,
        spec: Spec,
        rootfs_dir: std::path::PathBuf,
        ports: &StdioPorts,
        terminal: bool,
        flags: CreateFlags,
    ) -> Result<(CreatedContainer, Option<Arc<PtyRelay>>)> {
        let connected = stdio::connect(self.env.stdio.as_ref(), ports)?;
        let (process_stdio, streams) = stdio::for_process(connected, terminal)?;
        let mut opts = self.env.run_options.clone();
        opts.id = id.to_owned();
        opts.no_pivot |= flags.no_pivot;
        opts.ends_vm = flags.ends_vm;
        opts.reaped_by_caller = true;
        let mut created =
            launch(move || vmrun_isolation::create(&spec, &rootfs_dir, process_stdio, &opts))
                .with_context(|| format!("creating container {id}"))?;
        // Dropping `created` on an error kills its init.
        let tty = match streams {
            Some(streams) => Some(start_tty(id, &mut created, streams)?),
            None => None,
        };
        Ok((created, tty))
    }

    /// Starts container `id`; returns the spec fields the guest ignored.
    pub(super) fn start(&self, id: &str) -> Result<Vec<String>> {
        let (created, warnings) = self.with_container(id, |c| {
            if c.started {
                bail!("container {id:?} was already started");
            }
            if c.init_exited {
                bail!("container {id:?} is stopped (its init ended before Start)");
            }
            if matches!(&c.state, State::Created(created) if created.is_paused()) {
                // runc's words; the container stays created and paused.
                bail!("cannot start a container in the paused state");
            }
            match std::mem::replace(&mut c.state, State::Starting) {
                State::Created(created) => {
                    c.started = true;
                    Ok((created, c.warnings.clone()))
                }
                other => {
                    c.state = other;
                    bail!("container {id:?} is not in the created state");
                }
            }
        })?;
        let started = launch(move || created.start());
        let mut table = container::lock(&self.containers);
        let Some(c) = table.get_mut(id) else {
            bail!("container {id:?} was removed while starting");
        };
        match started {
            Ok(mut process) => match c.exit_while_starting.take() {
                Some(exit) => {
                    // The watcher saw the init exit meanwhile: clean up.
                    process.exited(isolation_exit(exit));
                    c.state = State::Done;
                }
                None => c.state = State::Running(Box::new(process)),
            },
            Err(err) => {
                // The failed start killed the init and cleaned up.
                let err = err.context(format!("starting container {id}"));
                c.state = State::Done;
                c.exit.set(Err(format!("{err:#}")));
                return Err(err);
            }
        }
        drop(table);
        marker::write(Marker::ContainerStarted);
        tracing::info!("started container {id}");
        Ok(warnings)
    }

    /// Sends `signal` to the init, to every process (`all`), or to the
    /// exec'd process `exec_id`. A created container's init can be
    /// signalled too (runc allows it; SIGKILL ends it unstarted).
    pub(super) fn signal(
        &self,
        id: &str,
        signal: i32,
        all: bool,
        exec_id: Option<&str>,
    ) -> Result<()> {
        if !vmrun_isolation::signal::is_signal(signal) {
            bail!("signal: {signal} is not a signal number");
        }
        if all && exec_id.is_some() {
            bail!("exec_id: cannot be combined with all (which signals every process)");
        }
        self.with_container(id, |c| {
            if let Some(exec_id) = exec_id {
                return super::exec::signal_exec(c, id, exec_id, signal);
            }
            if c.init_exited {
                bail!("container {id:?} is not running");
            }
            let sent = match &mut c.state {
                State::Created(created) if all => created.cgroup().signal_all(signal, false),
                State::Created(created) => created.signal(signal),
                State::Running(process) if all => process.signal_all(signal),
                State::Running(process) => process.signal(signal),
                State::Starting => bail!("container {id:?} is starting"),
                State::Done => bail!("container {id:?} is not running"),
            };
            sent.with_context(|| format!("sending signal {signal} to container {id}"))
        })
    }

    /// Sets the window size of the init's or `exec_id`'s terminal.
    pub(super) fn resize(
        &self,
        id: &str,
        rows: u16,
        cols: u16,
        exec_id: Option<&str>,
    ) -> Result<()> {
        self.with_container(id, |c| {
            if let Some(exec_id) = exec_id {
                return super::exec::resize_exec(c, id, exec_id, rows, cols);
            }
            match (&c.state, &c.tty) {
                (State::Created(_) | State::Starting, _) => {
                    bail!("container {id:?} is not started")
                }
                (_, None) => bail!("container {id:?} has no terminal (process.terminal is false)"),
                (State::Running(_), Some(tty)) if !c.init_exited => tty
                    .resize(rows, cols)
                    .with_context(|| format!("resizing the terminal of container {id}")),
                (State::Running(_) | State::Done, Some(_)) => {
                    bail!("container {id:?} is not running")
                }
            }
        })
    }

    /// Answers when the init (or `exec_id`) has exited.
    pub(super) fn wait(&self, request_id: u64, id: &str, exec_id: Option<&str>) -> Result<Answer> {
        let cell = self.with_container(id, |c| match exec_id {
            Some(exec_id) => super::exec::exec_cell(c, id, exec_id),
            None => Ok(Arc::clone(&c.exit)),
        })?;
        Ok(match self.responder.answer_wait(request_id, cell)? {
            Some(response) => Answer::Now(response),
            None => Answer::Later,
        })
    }

    /// Container `id`'s status and init pid.
    pub(super) fn state(&self, id: &str) -> Result<(ContainerStatus, i32)> {
        self.with_container(id, |c| Ok(c.status()))
    }
}
