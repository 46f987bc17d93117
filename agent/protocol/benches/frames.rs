//! Frame encode/decode of host↔agent messages: a tiny `Hello` and a
//! `Create` carrying a runc-sized spec (`cargo bench -p vmrun-protocol`).
// criterion_group!/criterion_main! expand to undocumented items.
#![allow(missing_docs)]

use std::io::Cursor;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use vmrun_protocol::frame::{decode, encode};
use vmrun_protocol::{
    read_frame, write_frame, Envelope, Request, RootfsSource, StdioPorts, PROTOCOL_VERSION,
};

/// A spec of the size `runc spec` writes (~2.5 KiB of JSON).
fn spec() -> serde_json::Value {
    let caps: Vec<String> = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mounts: Vec<serde_json::Value> = ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"]
        .iter()
        .map(|d| serde_json::json!({"destination": d, "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}))
        .collect();
    serde_json::json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": false, "user": {"uid": 0, "gid": 0}, "args": ["sh", "-c", "echo hello"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps, "ambient": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "runc",
        "mounts": mounts,
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

fn messages() -> Vec<(&'static str, Envelope<Request>)> {
    vec![
        (
            "hello",
            Envelope {
                id: 1,
                body: Request::Hello {
                    version: PROTOCOL_VERSION,
                },
            },
        ),
        (
            "create",
            Envelope {
                id: 2,
                body: Request::Create {
                    id: "bench-container".into(),
                    spec: spec(),
                    rootfs: RootfsSource::VirtioFs {
                        tag: "vmrun".into(),
                        path: Some("rootfs".into()),
                    },
                    stdio: StdioPorts {
                        stdin: Some(2000),
                        stdout: Some(2001),
                        stderr: Some(2002),
                    },
                    no_pivot: false,
                    shares: vec!["vmrun".into()],
                    network: Vec::new(),
                    ends_vm: false,
                },
            },
        ),
    ]
}

fn frames(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame");
    for (name, msg) in messages() {
        let frame = encode(&msg).expect("encode");
        group.throughput(Throughput::Bytes(frame.len() as u64));
        group.bench_with_input(BenchmarkId::new("encode", name), &msg, |b, msg| {
            b.iter(|| encode(std::hint::black_box(msg)).expect("encode"))
        });
        group.bench_with_input(BenchmarkId::new("decode", name), &frame, |b, frame| {
            b.iter(|| {
                decode::<Envelope<Request>>(std::hint::black_box(&frame[4..])).expect("decode")
            })
        });
        group.bench_with_input(BenchmarkId::new("write+read", name), &msg, |b, msg| {
            let mut buf = Vec::with_capacity(frame.len());
            b.iter(|| {
                buf.clear();
                write_frame(&mut buf, msg).expect("write");
                let back: Envelope<Request> = read_frame(&mut Cursor::new(&buf)).expect("read");
                back
            })
        });
    }
    group.finish();
}

criterion_group!(benches, frames);
criterion_main!(benches);
