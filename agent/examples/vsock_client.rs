//! A minimal host side for `vmrun_action=serve`, to check the agent in a
//! real guest without vmrun's VMM (e.g. QEMU with `vhost-vsock-device`).
//!
//! ```text
//! vsock_client CID CONFIG_JSON ROOTFS_DEVICE FSTYPE
//! ```
//!
//! Listens on host vsock ports for the container's stdout/stderr (stdin is
//! this process's stdin), connects to the agent's control port (retrying
//! while the guest boots), runs the spec with its rootfs on the guest block
//! device, copies the output through, shuts the guest down and exits with
//! the container's status (128+N for signal N).

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::sys::socket::{
    accept4, bind, connect, listen, socket, AddressFamily, Backlog, SockFlag, SockType, VsockAddr,
};
use vmrun_agent::serve::transport::SocketStream;
use vmrun_protocol::{
    call, client_handshake, Request, Response, RootfsSource, StdioPorts, CONTROL_PORT,
};

const STDIN_PORT: u32 = 20_000;
const STDOUT_PORT: u32 = 20_001;
const STDERR_PORT: u32 = 20_002;

fn vsock() -> Result<OwnedFd> {
    Ok(socket(
        AddressFamily::Vsock,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?)
}

fn listen_on(port: u32) -> Result<OwnedFd> {
    let fd = vsock()?;
    bind(fd.as_raw_fd(), &VsockAddr::new(libc::VMADDR_CID_ANY, port))
        .with_context(|| format!("binding host vsock port {port}"))?;
    listen(&fd, Backlog::new(1)?)?;
    Ok(fd)
}

fn accept_one(listener: &OwnedFd) -> Result<SocketStream> {
    let raw = accept4(listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC)?;
    // SAFETY: accept4 just returned this descriptor; nothing else owns it.
    Ok(SocketStream::new(unsafe { OwnedFd::from_raw_fd(raw) }))
}

fn connect_control(cid: u32, patience: Duration) -> Result<SocketStream> {
    let deadline = Instant::now() + patience;
    loop {
        let fd = vsock()?;
        match connect(fd.as_raw_fd(), &VsockAddr::new(cid, CONTROL_PORT)) {
            Ok(()) => return Ok(SocketStream::new(fd)),
            Err(errno) if Instant::now() < deadline => {
                if errno != Errno::ECONNRESET {
                    eprintln!("vsock_client: connect: {errno}; retrying");
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(errno) => bail!("connecting to CID {cid} port {CONTROL_PORT}: {errno}"),
        }
    }
}

fn pump(listener: OwnedFd, mut to: impl Write + Send + 'static) -> JoinHandle<Result<()>> {
    std::thread::spawn(move || {
        let mut from = accept_one(&listener)?;
        std::io::copy(&mut from, &mut to)?;
        to.flush()?;
        Ok(())
    })
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [cid, config, device, fstype] = args.as_slice() else {
        bail!("usage: vsock_client CID CONFIG_JSON ROOTFS_DEVICE FSTYPE");
    };
    let cid: u32 = cid.parse().context("CID")?;
    let spec: serde_json::Value = serde_json::from_slice(
        &std::fs::read(config).with_context(|| format!("reading {config}"))?,
    )
    .with_context(|| format!("parsing {config}"))?;

    let stdin_listener = listen_on(STDIN_PORT)?;
    let stdout = pump(listen_on(STDOUT_PORT)?, std::io::stdout());
    let stderr = pump(listen_on(STDERR_PORT)?, std::io::stderr());

    let mut control = connect_control(cid, Duration::from_secs(180))?;
    client_handshake(&mut control).context("handshake")?;
    eprintln!("vsock_client: connected and handshaken");
    let create = Request::Create {
        id: "demo".into(),
        spec,
        rootfs: RootfsSource::Block {
            device: device.clone(),
            fstype: fstype.clone(),
        },
        stdio: StdioPorts {
            stdin: Some(STDIN_PORT),
            stdout: Some(STDOUT_PORT),
            stderr: Some(STDERR_PORT),
        },
        no_pivot: false,
        shares: vec![],
        network: vec![],
        ends_vm: false,
    };
    let created = call(&mut control, 1, create).context("create")?;
    eprintln!("vsock_client: {created:?}");
    let stdin = std::thread::spawn(move || -> Result<()> {
        let mut to = accept_one(&stdin_listener)?;
        let mut input = Vec::new();
        std::io::stdin().read_to_end(&mut input)?;
        to.write_all(&input)?;
        to.shutdown(); // EOF for the container
        Ok(())
    });
    call(&mut control, 2, Request::Start { id: "demo".into() }).context("start")?;
    let wait = Request::Wait {
        id: "demo".into(),
        exec_id: None,
    };
    let answer = call(&mut control, 3, wait).context("wait")?;
    for (name, pump) in [("stdout", stdout), ("stderr", stderr)] {
        if let Ok(Err(err)) = pump.join() {
            eprintln!("vsock_client: {name}: {err:#}");
        }
    }
    drop(stdin);
    let Response::Exited { status } = answer else {
        bail!("unexpected answer to wait: {answer:?}");
    };
    eprintln!("vsock_client: container exited: {status:?}");
    call(&mut control, 4, Request::Shutdown).context("shutdown")?;
    std::process::exit(status.as_shell_status());
}
