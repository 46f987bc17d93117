//! Where the signals the VMM process receives go: before the container
//! exists they end the process (and with it the VM) with 128+N; while it
//! exists they are forwarded to its init (SIGWINCH: a resize of its
//! terminal); once it exited they are ignored.

use std::sync::{Arc, Mutex};

use super::{lock, ContainerVmm};
use crate::runtime::signals::{SignalForwarder, RESIZE};

#[derive(Debug, Clone, Default)]
enum Target {
    #[default]
    NotYet,
    Container(Arc<ContainerVmm>),
    Exited,
}

/// The signal thread and where it sends signals; stops when dropped.
#[derive(Debug)]
pub struct SignalRouting {
    target: Arc<Mutex<Target>>,
    _forwarder: SignalForwarder,
}

impl SignalRouting {
    /// Starts receiving the (already blocked, see
    /// `runtime::signals::block_forwarded`) signals. `before_exit` runs
    /// when a signal arrives before the container exists, just before the
    /// process exits with 128+N (to remove half-made state).
    pub fn start(before_exit: impl Fn() + Send + 'static) -> std::io::Result<Self> {
        let target: Arc<Mutex<Target>> = Arc::default();
        let routed = Arc::clone(&target);
        let forwarder = SignalForwarder::start(move |signal| {
            let current = lock(&routed).clone();
            match current {
                Target::Container(vmm) if signal == RESIZE => vmm.resize(vmm.main()),
                _ if signal == RESIZE => {}
                Target::Container(vmm) => {
                    tracing::debug!(signal, "forwarding to the container");
                    if let Err(e) = vmm.kill(vmm.main(), signal, false) {
                        tracing::debug!("cannot forward signal {signal}: {e}");
                    }
                }
                Target::NotYet => {
                    crate::runtime::terminal::restore_host_terminal();
                    before_exit();
                    eprintln!("vmrun: signal {signal} before the container existed: stopping");
                    std::process::exit(128 + signal);
                }
                Target::Exited => {
                    tracing::debug!(signal, "the container already exited: signal ignored");
                }
            }
        })?;
        Ok(Self {
            target,
            _forwarder: forwarder,
        })
    }

    /// From now on signals go to `vmm`'s init.
    pub fn forward_to(&self, vmm: Arc<ContainerVmm>) {
        *lock(&self.target) = Target::Container(vmm);
    }

    /// From now on signals are ignored (the container exited).
    pub fn exited(&self) {
        *lock(&self.target) = Target::Exited;
    }
}
