//! The world every serve test case runs in: the busybox bundle, serve
//! loops over socketpairs, "host ports" as unix sockets, and helpers to
//! build requests and read answers.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use serde_json::{json, Value};
use vmrun_agent::init::reaper::Reaper;
use vmrun_agent::serve::control::{serve, ServeEnd};
use vmrun_agent::serve::rootfs::{GuestRootfs, HostDirRootfs, RootfsProvider};
use vmrun_agent::serve::shares::{HostDirMounter, Shares};
use vmrun_agent::serve::transport::{SocketStream, StdioConnector};
use vmrun_agent::serve::{GuestNetns, ServeEnv};
use vmrun_isolation::RunOptions;
use vmrun_protocol::{
    ContainerStatus, ControlClient, ExitStatus, ProtocolError, Request, Response, RootfsSource,
    StdioPorts,
};

/// The virtio-fs tag the busybox rootfs is served under.
pub const TAG: &str = "busybox";

/// Test fixture shared by every case.
pub struct World {
    pub reaper: Reaper,
    pub scratch: tempfile::TempDir,
    pub rootfs: PathBuf,
    pub config: Value,
}

/// "Host ports": unix sockets named by port in the scratch dir.
struct UnixConnector {
    dir: PathBuf,
}

impl StdioConnector for UnixConnector {
    fn connect(&self, port: u32) -> std::io::Result<OwnedFd> {
        Ok(UnixStream::connect(self.dir.join(format!("port-{port}.sock")))?.into())
    }
}

/// A running serve loop and the host's end of its control connection.
pub struct Agent {
    pub host: Option<UnixStream>,
    serving: JoinHandle<anyhow::Result<ServeEnd>>,
}

impl Agent {
    /// A handshaken client (takes the host end).
    pub fn client(&mut self) -> ControlClient {
        ControlClient::connect(self.host.take().expect("host end")).expect("handshake")
    }

    pub fn end(self) -> anyhow::Result<ServeEnd> {
        self.serving.join().expect("serve thread panicked")
    }
}

static NEXT_PORT: AtomicU32 = AtomicU32::new(5000);

/// The host side of one process's stdio.
pub struct HostStdio {
    pub ports: StdioPorts,
    stdin: Option<JoinHandle<()>>,
    pub stdout: Option<UnixListener>,
    stderr: JoinHandle<Vec<u8>>,
}

impl HostStdio {
    /// Listens on three ports; `input` is written to stdin and then closed.
    pub fn listen(world: &World, input: Option<Vec<u8>>) -> Self {
        let (in_port, in_listener) = world.bind_port();
        let (out_port, out_listener) = world.bind_port();
        let (err_port, err_listener) = world.bind_port();
        let stdin = input.map(|data| {
            std::thread::spawn(move || {
                let (mut conn, _) = in_listener.accept().expect("accept stdin");
                conn.write_all(&data).expect("write stdin");
                // Dropping the connection is the EOF the process must see.
            })
        });
        let stderr = std::thread::spawn(move || read_all(&err_listener));
        Self {
            ports: StdioPorts {
                stdin: stdin.as_ref().map(|_| in_port),
                stdout: Some(out_port),
                stderr: Some(err_port),
            },
            stdin,
            stdout: Some(out_listener),
            stderr,
        }
    }

    /// Reads stdout and stderr to EOF.
    pub fn collect(mut self) -> (String, String) {
        let stdout = read_all(&self.stdout.take().expect("stdout listener"));
        if let Some(stdin) = self.stdin {
            stdin.join().expect("stdin thread");
        }
        let stderr = self.stderr.join().expect("stderr thread");
        (
            String::from_utf8_lossy(&stdout).into_owned(),
            String::from_utf8_lossy(&stderr).into_owned(),
        )
    }
}

/// Accepts one connection on `listener` and reads it to EOF.
pub fn read_all(listener: &UnixListener) -> Vec<u8> {
    let (mut conn, _) = listener.accept().expect("accept");
    let mut data = Vec::new();
    conn.read_to_end(&mut data).expect("read to EOF");
    data
}

/// Reads `from` byte by byte until what was read contains `marker`
/// (appending to `seen`); panics if the stream ends first.
pub fn read_until(from: &mut impl Read, seen: &mut Vec<u8>, marker: &str) {
    let mut byte = [0u8; 1];
    while !String::from_utf8_lossy(seen).contains(marker) {
        match from.read(&mut byte) {
            Ok(1) => seen.push(byte[0]),
            _ => panic!(
                "stream ended before {marker:?}: {:?}",
                String::from_utf8_lossy(seen)
            ),
        }
    }
}

/// How a test's agent differs from the plain one (busybox served as
/// [`TAG`] from its host directory, the test process's network namespace).
#[derive(Default)]
pub struct Setup {
    /// Share tags and the host directories bind-mounted as them, below
    /// [`World::shares_base`]. With shares, the rootfs is mounted as in the
    /// guest ([`GuestRootfs`] below [`World::rootfs_base`]): [`TAG`] alone
    /// no longer works, a directory within a share does.
    pub shares: Vec<(String, PathBuf)>,
    /// The namespace NICs are looked up in (default: this process's).
    pub nic_netns: Option<OwnedFd>,
    /// The serve loop runs inside `nic_netns`, so containers without a
    /// network namespace of their own share it.
    pub serve_in_nic_netns: bool,
    /// With `serve_in_nic_netns`: `nic_netns` plays the guest's root
    /// namespace, handed to the first container asking for a fresh one.
    pub hand_out_nic_netns: bool,
}

impl World {
    pub fn agent(&self, name: &str) -> Agent {
        self.agent_with(name, Setup::default())
    }

    /// Where an agent made with shares mounts them.
    pub fn shares_base(&self, name: &str) -> PathBuf {
        self.scratch.path().join(format!("shares-{name}"))
    }

    /// Where an agent made with shares mounts container root filesystems.
    pub fn rootfs_base(&self, name: &str) -> PathBuf {
        self.scratch.path().join(format!("rootfs-{name}"))
    }

    /// The state directory of the agent made as `name`.
    pub fn state_dir(&self, name: &str) -> PathBuf {
        self.scratch.path().join(format!("state-{name}"))
    }

    pub fn agent_with(&self, name: &str, setup: Setup) -> Agent {
        let (host, guest) = UnixStream::pair().expect("socketpair");
        let state_dir = self.state_dir(name);
        let mut run_options = RunOptions::new("");
        run_options.state_dir = state_dir;
        let shares = Arc::new(Shares::new(
            self.shares_base(name),
            Box::new(HostDirMounter::new(setup.shares.clone())),
        ));
        let rootfs: Box<dyn RootfsProvider> = if setup.shares.is_empty() {
            Box::new(HostDirRootfs::new([(TAG.to_owned(), self.rootfs.clone())]))
        } else {
            Box::new(GuestRootfs::new(
                self.rootfs_base(name),
                Arc::clone(&shares),
            ))
        };
        let nic_netns = match setup.nic_netns {
            Some(netns) => netns,
            None => std::fs::File::open("/proc/self/ns/net")
                .expect("this process's network namespace")
                .into(),
        };
        let enter = setup
            .serve_in_nic_netns
            .then(|| nic_netns.try_clone().expect("dup the NIC namespace"));
        let hand_out = setup.serve_in_nic_netns && setup.hand_out_nic_netns;
        let mut env = ServeEnv {
            rootfs,
            shares,
            // This process's namespace is the machine's: never handed out.
            guest_netns: GuestNetns::disabled(),
            nic_netns,
            stdio: Box::new(UnixConnector {
                dir: self.scratch.path().to_path_buf(),
            }),
            reaper: self.reaper.clone(),
            run_options,
        };
        let serving = std::thread::spawn(move || {
            if let Some(netns) = enter {
                nix::sched::setns(netns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                    .expect("entering the NIC namespace");
            }
            if hand_out {
                env.guest_netns = GuestNetns::new(env.nic_netns.as_fd());
            }
            serve(SocketStream::new(guest.into()), &env)
        });
        Agent {
            host: Some(host),
            serving,
        }
    }

    /// A fresh "host port" and its listener.
    pub fn bind_port(&self) -> (u32, UnixListener) {
        let port = NEXT_PORT.fetch_add(1, Ordering::SeqCst);
        let path = self.scratch.path().join(format!("port-{port}.sock"));
        (port, UnixListener::bind(path).expect("bind stdio port"))
    }

    pub fn spec(&self, args: &[&str]) -> Value {
        let mut config = self.config.clone();
        config["process"]["args"] = json!(args);
        config
    }
}

pub fn create(id: &str, spec: Value, stdio: &HostStdio) -> Request {
    Request::Create {
        id: id.into(),
        spec,
        rootfs: RootfsSource::VirtioFs {
            tag: TAG.into(),
            path: None,
        },
        stdio: stdio.ports.clone(),
        no_pivot: false,
        shares: vec![],
        network: vec![],
        ends_vm: false,
    }
}

pub fn start(id: &str) -> Request {
    Request::Start { id: id.into() }
}

pub fn wait(id: &str) -> Request {
    Request::Wait {
        id: id.into(),
        exec_id: None,
    }
}

pub fn signal(id: &str, signal: i32) -> Request {
    Request::Signal {
        id: id.into(),
        signal,
        all: false,
        exec_id: None,
    }
}

pub fn state(id: &str) -> Request {
    Request::State { id: id.into() }
}

/// The status and pid `State` answers for `id`.
pub fn state_of(client: &ControlClient, id: &str) -> (ContainerStatus, i32) {
    match client.call(state(id)).unwrap() {
        Response::State { status, pid } => (status, pid),
        other => panic!("state did not answer State: {other:?}"),
    }
}

/// The init's pid from `Create`'s answer (`Created`, pid > 0).
pub fn expect_created(answer: Result<Response, ProtocolError>) -> i32 {
    match answer {
        Ok(Response::Created { pid }) if pid > 0 => pid,
        other => panic!("create did not answer Created with a pid: {other:?}"),
    }
}

/// Runs one container to completion on `client`.
pub fn run(
    world: &World,
    client: &ControlClient,
    id: &str,
    args: &[&str],
    input: Option<&[u8]>,
) -> (ExitStatus, String, String) {
    let stdio = HostStdio::listen(world, input.map(<[u8]>::to_vec));
    expect_created(client.call(create(id, world.spec(args), &stdio)));
    assert_eq!(client.call(start(id)).unwrap(), started());
    let (out, err) = stdio.collect();
    let Response::Exited { status } = client.call(wait(id)).unwrap() else {
        panic!("wait did not answer Exited");
    };
    println!("  {id}: {status:?} stdout={out:?} stderr={err:?}");
    (status, out, err)
}

/// `Start`'s answer for a spec the guest applies in full.
pub fn started() -> Response {
    Response::Started { warnings: vec![] }
}

pub fn agent_error(result: Result<Response, ProtocolError>) -> String {
    match result {
        Err(ProtocolError::Agent(message)) => message,
        other => panic!("expected an agent error, got {other:?}"),
    }
}

pub fn expect_connection_lost(agent: Agent) {
    assert_eq!(agent.end().unwrap(), ServeEnd::ConnectionLost);
}
