//! A 100 MiB transfer each way between the host and a container, through
//! the container's network namespace (a podman-style bridge + veth made by
//! the test; in the VM: tap ↔ veth redirect, virtio-net), in a real guest.
//! The test asserts that every byte arrives intact (a checksum of a
//! pseudo-random stream host → container, a byte count and content check
//! container → host) and prints the throughput of each direction. The
//! throughput is a measurement, never asserted: in the nested test host
//! every guest instruction is emulated, so only its order of magnitude
//! and comparisons within one run mean anything.
//!
//! Guest tests skip loudly (or fail under `VMRUN_REQUIRE_GUEST=1`) where
//! guests cannot run.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::json;
use vmrun_tests::bundle::edit_config;
use vmrun_tests::runtimes::{code, Runtime};
use vmrun_tests::scratch::GuestScratch;
use vmrun_tests::test_network::{join_netns, TestNetwork};
use vmrun_tests::{guest_ready, run_ok};

static SCRATCH: GuestScratch = GuestScratch::new("vmrun-guest-transfer", "64m");

/// Bytes moved each way.
const TRANSFER_BYTES: u64 = 100 << 20;
/// Size of the writes and reads on the host side.
const CHUNK: usize = 64 << 10;
/// Hang guard of the whole run: a transfer under full emulation is slow,
/// and progress lines keep the test host's stall watchdog quiet meanwhile.
const RUN_LIMIT: Duration = Duration::from_secs(1200);
/// Hang guard of one host-side socket operation.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(300);

/// A progress line straight to fd 2 (libtest captures `eprintln!`): the
/// test host's watchdog takes a long silence for a freeze.
fn progress(line: &str) {
    let _ = writeln!(std::io::stderr(), "guest_net_transfer: {line}");
}

/// The host → container payload: a xorshift64 stream, so a lost, repeated
/// or reordered chunk changes the checksum.
struct Payload {
    state: u64,
    left: u64,
}

impl Payload {
    fn new() -> Self {
        Self {
            state: 0x9e37_79b9_7f4a_7c15,
            left: TRANSFER_BYTES,
        }
    }

    /// The next chunk, empty at the end.
    fn next_chunk(&mut self, buf: &mut Vec<u8>) {
        buf.clear();
        let n = self.left.min(CHUNK as u64) as usize;
        while buf.len() < n {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            buf.extend_from_slice(&self.state.to_le_bytes());
        }
        buf.truncate(n);
        self.left -= n as u64;
    }
}

/// The payload's md5, as busybox's `md5sum` prints it (computed by the
/// host's `md5sum` over the same stream).
fn payload_md5() -> String {
    let mut child = Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run md5sum");
    {
        let mut stdin = child.stdin.take().expect("md5sum stdin");
        let (mut payload, mut buf) = (Payload::new(), Vec::with_capacity(CHUNK));
        loop {
            payload.next_chunk(&mut buf);
            if buf.is_empty() {
                break;
            }
            stdin.write_all(&buf).expect("feed md5sum");
        }
    }
    let out = child.wait_with_output().expect("md5sum");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .next()
        .expect("md5sum output")
        .to_string()
}

/// Seconds and MiB/s of one direction, for the report.
fn rate(bytes: u64, took: Duration) -> String {
    let secs = took.as_secs_f64().max(1e-9);
    format!(
        "{:.1} s, {:.1} MiB/s",
        secs,
        bytes as f64 / (1 << 20) as f64 / secs
    )
}

fn accept(listener: &TcpListener) -> TcpStream {
    let (conn, _) = listener.accept().expect("accept");
    conn.set_read_timeout(Some(SOCKET_TIMEOUT))
        .expect("timeout");
    conn.set_write_timeout(Some(SOCKET_TIMEOUT))
        .expect("timeout");
    conn
}

/// Serves the payload to one HTTP GET; returns the time from the request
/// to the last byte handed to the socket.
fn serve_payload(listener: TcpListener) -> JoinHandle<Result<Duration, String>> {
    std::thread::spawn(move || {
        let mut conn = accept(&listener);
        let mut request = Vec::new();
        let mut byte = [0u8; 1];
        while !request.ends_with(b"\r\n\r\n") {
            match conn.read(&mut byte) {
                Ok(1) => request.push(byte[0]),
                other => return Err(format!("reading the request: {other:?}")),
            }
        }
        let start = Instant::now();
        write!(
            conn,
            "HTTP/1.0 200 OK\r\nContent-Length: {TRANSFER_BYTES}\r\n\r\n"
        )
        .map_err(|e| format!("writing the header: {e}"))?;
        let (mut payload, mut buf) = (Payload::new(), Vec::with_capacity(CHUNK));
        let mut sent = 0u64;
        loop {
            payload.next_chunk(&mut buf);
            if buf.is_empty() {
                break;
            }
            conn.write_all(&buf)
                .map_err(|e| format!("writing after {sent} bytes: {e}"))?;
            sent += buf.len() as u64;
            if sent.is_multiple_of(10 << 20) {
                progress(&format!("host -> container: {} MiB", sent >> 20));
            }
        }
        let took = start.elapsed();
        let _ = conn.shutdown(std::net::Shutdown::Write);
        Ok(took)
    })
}

/// Reads what the container sends: exactly the transfer's size of zero
/// bytes. Returns the time from the first byte to the last.
fn sink_upload(listener: TcpListener) -> JoinHandle<Result<Duration, String>> {
    std::thread::spawn(move || {
        let mut conn = accept(&listener);
        let mut buf = vec![0u8; CHUNK];
        let mut got = 0u64;
        let mut start = None;
        while got < TRANSFER_BYTES {
            let n = conn
                .read(&mut buf)
                .map_err(|e| format!("reading after {got} bytes: {e}"))?;
            if n == 0 {
                return Err(format!("the upload ended after {got} bytes"));
            }
            start.get_or_insert_with(Instant::now);
            if let Some(at) = buf[..n].iter().position(|&b| b != 0) {
                return Err(format!(
                    "byte {} of the upload is not zero",
                    got + at as u64
                ));
            }
            let before = got >> 20;
            got += n as u64;
            if (got >> 20) / 10 > before / 10 {
                progress(&format!("container -> host: {} MiB", got >> 20));
            }
        }
        let took = start.map(|s| s.elapsed()).unwrap_or_default();
        // More than was sent is an error too. Closing our side ends the
        // container's `nc` whether or not it stops at the end of its input.
        let _ = conn.shutdown(std::net::Shutdown::Write);
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => Ok(took),
            Ok(n) => Err(format!("{n} bytes beyond the transfer's size")),
        }
    })
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn bundle(name: &str, script: &str, netns: &Path) -> PathBuf {
    let dir = SCRATCH.dir().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(SCRATCH.base_bundle())
            .arg(&dir),
        "copying the bundle (cp -a)",
    );
    edit_config(&dir, |spec| {
        spec["process"]["args"] = json!(["sh", "-c", script]);
        join_netns(spec, netns);
    });
    dir
}

#[test]
fn a_100_mib_transfer_each_way_arrives_intact() {
    let test = "a_100_mib_transfer_each_way_arrives_intact";
    let Some(g) = guest_ready(test) else {
        return;
    };
    let rt = Runtime::vmrun(&SCRATCH.dir().join("root"), &g.kernel, &g.initrd, RUN_LIMIT);
    let expected_md5 = payload_md5();
    let net = TestNetwork::new("t3", 93, 1500);
    let host = net.host_addr();
    let download = TcpListener::bind((host.as_str(), 0)).expect("bind");
    let upload = TcpListener::bind((host.as_str(), 0)).expect("bind");
    let down_port = download.local_addr().expect("addr").port();
    let up_port = upload.local_addr().expect("addr").port();
    let blocks = TRANSFER_BYTES / CHUNK as u64;
    let script = format!(
        "wget -q -O - http://{host}:{down_port}/payload | md5sum; \
         dd if=/dev/zero bs={CHUNK} count={blocks} 2>/dev/null | nc {host} {up_port}; \
         echo upload-exit=$?"
    );
    let b = bundle("transfer", &script, &net.path());
    let server = serve_payload(download);
    let sink = sink_upload(upload);
    let out = rt.call("run", &["--bundle", s(&b), "transfer"]);
    assert_eq!(code(&out), Some(0), "{}", out.describe());
    let down = server.join().expect("server thread");
    let up = sink.join().expect("sink thread");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        [format!("{expected_md5}  -").as_str(), "upload-exit=0"],
        "host -> container: the checksum differs\n{}",
        out.describe()
    );
    let down = down.unwrap_or_else(|e| panic!("host -> container: {e}\n{}", out.describe()));
    let up = up.unwrap_or_else(|e| panic!("container -> host: {e}\n{}", out.describe()));
    progress(&format!(
        "100 MiB host -> container: {}; container -> host: {} \
         (inside the test host these are emulated times: compare, never quote as hardware)",
        rate(TRANSFER_BYTES, down),
        rate(TRANSFER_BYTES, up)
    ));
}
