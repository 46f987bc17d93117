//! The VMM's side of its control socket (`runtime::api`): one thread
//! accepts connections, one thread per connection answers its requests
//! in order; an `Exec` request turns its connection into an exec session.

use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use vmrun_protocol::{read_frame, write_frame, FrameError};

use super::{ContainerRunError, ContainerVmm};
use crate::runtime::api::{ApiCall, ApiRequest, ApiResponse};

/// Most control connections served at once.
pub const MAX_CONNECTIONS: usize = 128;

/// The listening control socket; the socket file is removed when dropped.
#[derive(Debug)]
pub struct ApiServer {
    path: PathBuf,
}

impl ApiServer {
    /// Binds `path` (replacing a stale socket file) and serves `vmm` on it
    /// from a thread of its own.
    pub fn start(path: &Path, vmm: Arc<ContainerVmm>) -> io::Result<Self> {
        let _ = std::fs::remove_file(path);
        let listener = crate::runtime::api::socket_path::bind(path)?;
        let open = Arc::new(AtomicUsize::new(0));
        std::thread::Builder::new()
            .stack_size(vmrun_virtio::worker::THREAD_STACK_SIZE)
            .name("api-accept".into())
            .spawn(move || {
                // Its connection threads (and their exec and member
                // threads) inherit the filter.
                crate::seccomp::install_host_or_warn("api-accept");
                for conn in listener.incoming() {
                    let conn = match conn {
                        Ok(conn) => conn,
                        Err(e) => {
                            tracing::debug!("control socket accept: {e}");
                            continue;
                        }
                    };
                    if open.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                        open.fetch_sub(1, Ordering::SeqCst);
                        tracing::warn!("too many control connections: refusing one");
                        continue;
                    }
                    let vmm = Arc::clone(&vmm);
                    let count = Arc::clone(&open);
                    let spawned = std::thread::Builder::new()
                        .stack_size(vmrun_virtio::worker::THREAD_STACK_SIZE)
                        .name("api-conn".into())
                        .spawn(move || {
                            serve_connection(&vmm, conn);
                            count.fetch_sub(1, Ordering::SeqCst);
                        });
                    if let Err(e) = spawned {
                        open.fetch_sub(1, Ordering::SeqCst);
                        tracing::warn!("cannot start a control connection thread: {e}");
                    }
                }
            })?;
        Ok(Self {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn answer<T>(
    result: Result<T, ContainerRunError>,
    ok: impl FnOnce(T) -> ApiResponse,
) -> ApiResponse {
    match result {
        Ok(value) => ok(value),
        Err(e) => ApiResponse::Error {
            message: crate::error_chain(&e),
        },
    }
}

fn serve_connection(vmm: &Arc<ContainerVmm>, mut conn: UnixStream) {
    loop {
        let call: ApiCall = match read_frame(&mut conn) {
            Ok(call) => call,
            Err(FrameError::Malformed(e)) => {
                let message = format!("malformed request: {e}");
                if write_frame(&mut conn, &ApiResponse::Error { message }).is_err() {
                    return;
                }
                continue;
            }
            Err(_) => return,
        };
        if let ApiRequest::AddMember {
            id,
            bundle,
            no_pivot,
            trees,
        } = call.request
        {
            vmm.member_session(conn, &id, &bundle, no_pivot, trees);
            return;
        }
        let slot = match vmm.slot(call.container.as_deref()) {
            Ok(slot) => slot,
            Err(e) => {
                let message = crate::error_chain(&e);
                if write_frame(&mut conn, &ApiResponse::Error { message }).is_err() {
                    return;
                }
                continue;
            }
        };
        let response = match call.request {
            ApiRequest::Exec { process } => {
                vmm.exec_session(slot, conn, process);
                return;
            }
            ApiRequest::Start => answer(vmm.start(&slot), |warnings| ApiResponse::Started {
                warnings,
            }),
            ApiRequest::Kill { signal, all } => {
                answer(vmm.kill(&slot, signal, all), |()| ApiResponse::Ok)
            }
            ApiRequest::State => ApiResponse::State {
                status: slot.status(),
            },
            ApiRequest::Pause => answer(vmm.pause(&slot), |()| ApiResponse::Ok),
            ApiRequest::Resume => answer(vmm.resume(&slot), |()| ApiResponse::Ok),
            ApiRequest::Update { resources } => {
                answer(vmm.update(&slot, resources), |()| ApiResponse::Ok)
            }
            ApiRequest::Stats => answer(vmm.stats(&slot), |stats| ApiResponse::Stats { stats }),
            ApiRequest::Processes => {
                answer(vmm.guest_processes(&slot), |guest| ApiResponse::Processes {
                    host_pids: slot.host_pids(),
                    guest,
                })
            }
            ApiRequest::AddMember { .. } => ApiResponse::Error {
                message: "a member session needs its own connection".into(),
            },
            ApiRequest::SessionSignal { .. } | ApiRequest::SessionResize { .. } => {
                ApiResponse::Error {
                    message: "not in a session".into(),
                }
            }
        };
        if write_frame(&mut conn, &response).is_err() {
            return;
        }
    }
}
