//! Stands in for the vsock worker's event loop: applies the router's
//! socket interest changes with epoll's one-shot semantics and reports
//! readiness with `poll(2)`. A change epoll would refuse (adding a token
//! twice, arming or removing a socket that is not watched, a token whose
//! fd changed) panics: the fuzzer reports it as a crash.

use std::collections::BTreeMap;
use std::os::unix::io::{AsRawFd, RawFd};

use vmrun_virtio::vsock::connection::{Interest, Readiness};
use vmrun_virtio::vsock::router::{InterestChange, Router, SocketInterest};

/// One watched socket: its fd and, while armed, what it waits for.
#[derive(Debug)]
struct Watched {
    fd: RawFd,
    armed: Option<Interest>,
}

/// The watched sockets by token (see the module docs).
#[derive(Debug, Default)]
pub struct SocketWatch {
    watched: BTreeMap<u64, Watched>,
}

impl SocketWatch {
    /// Applies every change the router made since the last call.
    pub fn apply(&mut self, router: &mut Router) {
        for change in router.take_interest_changes() {
            match change {
                InterestChange::Add(SocketInterest {
                    fd,
                    token,
                    interest,
                }) => {
                    let armed = Some(interest);
                    let old = self.watched.insert(token, Watched { fd, armed });
                    assert!(old.is_none(), "vsock: token {token} added twice");
                }
                InterestChange::Arm(socket) => {
                    let token = socket.token;
                    let Some(w) = self.watched.get_mut(&token) else {
                        panic!("vsock: arming unwatched token {token}");
                    };
                    assert_eq!(
                        w.fd, socket.fd,
                        "vsock: token {token} armed with another fd"
                    );
                    w.armed = Some(socket.interest);
                }
                InterestChange::Remove { token, stream } => {
                    let Some(w) = self.watched.remove(&token) else {
                        panic!("vsock: removing unwatched token {token}");
                    };
                    assert_eq!(
                        w.fd,
                        stream.as_raw_fd(),
                        "vsock: token {token} removed with another fd"
                    );
                }
            }
        }
    }

    /// Number of watched sockets.
    pub fn len(&self) -> usize {
        self.watched.len()
    }

    /// Whether no socket is watched.
    pub fn is_empty(&self) -> bool {
        self.watched.is_empty()
    }

    /// Tokens of the watched sockets, in order.
    pub fn tokens(&self) -> Vec<u64> {
        self.watched.keys().copied().collect()
    }

    /// Reports every armed socket that is ready now to the router (which
    /// disarms it, as a one-shot registration would), then applies the
    /// changes that caused. Returns how many sockets were reported.
    pub fn dispatch(&mut self, router: &mut Router) -> usize {
        let mut ready = Vec::new();
        for (token, w) in &mut self.watched {
            let Some(interest) = w.armed else {
                continue;
            };
            let Some(r) = poll_now(w.fd, interest) else {
                continue;
            };
            w.armed = None;
            ready.push((*token, r));
        }
        for (token, r) in &ready {
            router.on_socket_ready(*token, *r);
        }
        self.apply(router);
        ready.len()
    }
}

/// What `fd` is ready for now, as epoll would report it for `interest`
/// (hang-up and errors always count); `None` when nothing is.
fn poll_now(fd: RawFd, interest: Interest) -> Option<Readiness> {
    let mut events = libc::POLLRDHUP;
    if interest.readable {
        events |= libc::POLLIN;
    }
    if interest.writable {
        events |= libc::POLLOUT;
    }
    let mut pfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: `pfd` is one valid pollfd for the duration of the call; a
    // zero timeout never blocks.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    if n != 1 {
        return None;
    }
    let re = pfd.revents;
    let hup = re & libc::POLLHUP != 0;
    let readable = (interest.readable && re & (libc::POLLIN | libc::POLLRDHUP) != 0) || hup;
    let writable = (interest.writable && re & libc::POLLOUT != 0) || hup || re & libc::POLLERR != 0;
    (readable || writable).then_some(Readiness { readable, writable })
}
