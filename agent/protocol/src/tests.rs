//! Round-trips and hostile input for framing, messages and the handshake.

use std::io::Cursor;
use std::os::unix::net::UnixStream;

use crate::frame::{encode, read_frame, write_frame, FrameError, MAX_FRAME_LEN};
use crate::handshake::{call, client_handshake, server_handshake, ProtocolError};
use crate::messages::*;

fn all_requests() -> Vec<Request> {
    vec![
        Request::Hello { version: 1 },
        Request::Create {
            id: "c1".into(),
            spec: serde_json::json!({"ociVersion": "1.0.2", "process": {"args": ["/bin/sh"]}}),
            rootfs: RootfsSource::VirtioFs {
                tag: "rootfs".into(),
                path: None,
            },
            stdio: StdioPorts {
                stdin: Some(2000),
                stdout: Some(2001),
                stderr: None,
            },
            no_pivot: false,
            shares: vec![],
            network: vec![],
            ends_vm: false,
        },
        Request::Create {
            id: "c3".into(),
            spec: serde_json::json!({}),
            rootfs: RootfsSource::VirtioFs {
                tag: "vmrun".into(),
                path: Some("c3/rootfs".into()),
            },
            stdio: StdioPorts::default(),
            no_pivot: false,
            shares: vec!["vmrun".into()],
            network: vec![NetInterface {
                mac: "02:00:00:00:00:01".into(),
                name: "eth0".into(),
                mtu: 1500,
                addresses: vec!["10.88.0.5/16".into()],
                routes: vec![NetRoute {
                    destination: "0.0.0.0/0".into(),
                    gateway: Some("10.88.0.1".into()),
                }],
            }],
            ends_vm: false,
        },
        Request::Create {
            id: "c2".into(),
            spec: serde_json::Value::Null,
            rootfs: RootfsSource::Block {
                device: "/dev/vda".into(),
                fstype: "ext4".into(),
            },
            stdio: StdioPorts::default(),
            no_pivot: true,
            shares: vec![],
            network: vec![],
            ends_vm: true,
        },
        Request::Start { id: "c1".into() },
        Request::Signal {
            id: "c1".into(),
            signal: 15,
            all: false,
            exec_id: None,
        },
        Request::Signal {
            id: "c1".into(),
            signal: 9,
            all: true,
            exec_id: Some("e1".into()),
        },
        Request::Resize {
            id: "c1".into(),
            rows: 24,
            cols: 80,
            exec_id: None,
        },
        Request::Resize {
            id: "c1".into(),
            rows: u16::MAX,
            cols: 0,
            exec_id: Some("e1".into()),
        },
        Request::Wait {
            id: "c1".into(),
            exec_id: None,
        },
        Request::Wait {
            id: "c1".into(),
            exec_id: Some("e1".into()),
        },
        Request::Exec {
            id: "c1".into(),
            exec_id: "e1".into(),
            process: serde_json::json!({"args": ["/bin/true"], "cwd": "/"}),
            stdio: StdioPorts::default(),
        },
        Request::Pause { id: "c1".into() },
        Request::Resume { id: "c1".into() },
        Request::Update {
            id: "c1".into(),
            resources: serde_json::json!({"memory": {"limit": 1048576}}),
        },
        Request::Stats { id: "c1".into() },
        Request::Processes { id: "c1".into() },
        Request::State { id: "c1".into() },
        Request::Shutdown,
    ]
}

fn all_responses() -> Vec<Response> {
    vec![
        Response::Hello { version: 1 },
        Response::Ok,
        Response::Started { warnings: vec![] },
        Response::Started {
            warnings: vec!["process.apparmorProfile: ignored".into()],
        },
        Response::Exited {
            status: ExitStatus::Code(42),
        },
        Response::Exited {
            status: ExitStatus::Signal(9),
        },
        Response::Error {
            message: "no such container".into(),
        },
        Response::Created { pid: 7 },
        Response::ExecStarted { pid: 8 },
        Response::Stats {
            stats: serde_json::json!({"pids": {"current": 2}}),
        },
        Response::Processes {
            processes: vec![GuestProcess {
                pid: 7,
                ppid: 1,
                uid: 0,
                cmd: "sleep 10".into(),
            }],
        },
        Response::State {
            status: ContainerStatus::Paused,
            pid: 7,
        },
    ]
}

#[test]
fn every_message_round_trips() {
    let mut buf = Vec::new();
    for (i, r) in all_requests().into_iter().enumerate() {
        write_frame(
            &mut buf,
            &Envelope {
                id: i as u64,
                body: r,
            },
        )
        .unwrap();
    }
    for (i, r) in all_responses().into_iter().enumerate() {
        write_frame(
            &mut buf,
            &Envelope {
                id: i as u64,
                body: r,
            },
        )
        .unwrap();
    }
    let mut cur = Cursor::new(buf);
    for (i, want) in all_requests().into_iter().enumerate() {
        let got: Envelope<Request> = read_frame(&mut cur).unwrap();
        assert_eq!(
            got,
            Envelope {
                id: i as u64,
                body: want
            }
        );
    }
    for (i, want) in all_responses().into_iter().enumerate() {
        let got: Envelope<Response> = read_frame(&mut cur).unwrap();
        assert_eq!(
            got,
            Envelope {
                id: i as u64,
                body: want
            }
        );
    }
    assert!(matches!(
        read_frame::<_, Envelope<Request>>(&mut cur),
        Err(FrameError::Closed)
    ));
}

#[test]
fn exit_status_maps_signals_to_128_plus_n() {
    assert_eq!(ExitStatus::Code(0).as_shell_status(), 0);
    assert_eq!(ExitStatus::Code(42).as_shell_status(), 42);
    assert_eq!(ExitStatus::Signal(9).as_shell_status(), 137);
    assert_eq!(ExitStatus::Signal(i32::MAX).as_shell_status(), i32::MAX);
}

#[test]
fn truncated_frames_are_errors() {
    let frame = encode(&Envelope {
        id: 7,
        body: Request::Start { id: "x".into() },
    })
    .unwrap();
    for cut in 1..frame.len() {
        let mut cur = Cursor::new(&frame[..cut]);
        let err = read_frame::<_, Envelope<Request>>(&mut cur).unwrap_err();
        assert!(
            matches!(err, FrameError::Truncated),
            "cut at {cut}: {err:?}"
        );
    }
}

#[test]
fn oversized_and_zero_lengths_are_refused_without_allocating() {
    for len in [0u32, MAX_FRAME_LEN + 1, u32::MAX] {
        // Only the length prefix: a reader that trusted it would try to
        // allocate up to 4 GiB or wait for bytes that never come.
        let mut cur = Cursor::new(len.to_le_bytes().to_vec());
        let err = read_frame::<_, Envelope<Request>>(&mut cur).unwrap_err();
        assert!(
            matches!(err, FrameError::BadLength(l) if l == len),
            "{err:?}"
        );
    }
    let big = Request::Create {
        id: "x".repeat(MAX_FRAME_LEN as usize),
        spec: serde_json::Value::Null,
        rootfs: RootfsSource::VirtioFs {
            tag: "t".into(),
            path: None,
        },
        stdio: StdioPorts::default(),
        no_pivot: false,
        shares: vec![],
        network: vec![],
        ends_vm: false,
    };
    assert!(matches!(
        write_frame(&mut Vec::new(), &Envelope { id: 1, body: big }),
        Err(FrameError::BadLength(_))
    ));
}

/// Every payload, framed, must decode to `FrameError::Malformed`.
fn assert_all_malformed(cases: &[&[u8]]) {
    for payload in cases {
        let err = read_frame::<_, Envelope<Request>>(&mut raw_frame(payload)).unwrap_err();
        assert!(
            matches!(err, FrameError::Malformed(_)),
            "{:?}: {err:?}",
            String::from_utf8_lossy(payload)
        );
    }
}

fn raw_frame(payload: &[u8]) -> Cursor<Vec<u8>> {
    let mut v = (payload.len() as u32).to_le_bytes().to_vec();
    v.extend_from_slice(payload);
    Cursor::new(v)
}

#[test]
fn garbage_payloads_are_malformed() {
    let cases: &[&[u8]] = &[
        b"\xff\xfe\x00garbage",
        b"{",
        b"null",
        b"[]",
        br#"{"id":1}"#,
        br#"{"id":-1,"body":{"type":"shutdown"}}"#,
        br#"{"id":1,"body":{"type":"launch_missiles"}}"#,
        br#"{"id":1,"body":{"type":"start"}}"#,
        br#"{"id":1,"body":{"type":"signal","id":"c","signal":"TERM"}}"#,
        br#"{"id":1,"body":{"type":"start","id":"c","extra":true}}"#,
        br#"{"id":1,"body":{"type":"shutdown"},"extra":1}"#,
        br#"{"id":1,"body":{"type":"create","id":"c","spec":{},"rootfs":{"kind":"nfs"},"stdio":{}}}"#,
    ];
    assert_all_malformed(cases);
}

#[test]
fn resize_frames_decode_and_malformed_ones_are_errors() {
    let good = br#"{"id":7,"body":{"type":"resize","id":"c","rows":50,"cols":132}}"#;
    let got: Envelope<Request> = read_frame(&mut raw_frame(good)).unwrap();
    assert_eq!(
        got,
        Envelope {
            id: 7,
            body: Request::Resize {
                id: "c".into(),
                rows: 50,
                cols: 132,
                exec_id: None,
            }
        }
    );
    let cases: &[&[u8]] = &[
        // Missing fields.
        br#"{"id":1,"body":{"type":"resize","id":"c","rows":50}}"#,
        br#"{"id":1,"body":{"type":"resize","rows":50,"cols":80}}"#,
        // Out of u16 range, negative, fractional, wrong type.
        br#"{"id":1,"body":{"type":"resize","id":"c","rows":65536,"cols":80}}"#,
        br#"{"id":1,"body":{"type":"resize","id":"c","rows":-1,"cols":80}}"#,
        br#"{"id":1,"body":{"type":"resize","id":"c","rows":2.5,"cols":80}}"#,
        br#"{"id":1,"body":{"type":"resize","id":"c","rows":"24","cols":80}}"#,
        br#"{"id":1,"body":{"type":"resize","id":"c","rows":null,"cols":80}}"#,
        br#"{"id":1,"body":{"type":"resize","id":7,"rows":24,"cols":80}}"#,
        // Unknown fields, truncated JSON.
        br#"{"id":1,"body":{"type":"resize","id":"c","rows":24,"cols":80,"x":0}}"#,
        br#"{"id":1,"body":{"type":"resize","id":"c","rows":24,"cols":8"#,
    ];
    assert_all_malformed(cases);
    // A resize frame cut short is truncated, not malformed or a panic.
    let mut short = raw_frame(good).into_inner();
    short.truncate(short.len() - 5);
    assert!(matches!(
        read_frame::<_, Envelope<Request>>(&mut Cursor::new(short)),
        Err(FrameError::Truncated)
    ));
}

#[test]
fn deeply_nested_json_is_rejected_not_a_stack_overflow() {
    let mut payload = br#"{"id":1,"body":{"type":"create","id":"c","spec":"#.to_vec();
    payload.extend(std::iter::repeat_n(b'[', 100_000));
    payload.extend(std::iter::repeat_n(b']', 100_000));
    payload.extend_from_slice(br#","rootfs":{"kind":"virtio_fs","tag":"t"},"stdio":{}}}"#);
    let err = read_frame::<_, Envelope<Request>>(&mut raw_frame(&payload)).unwrap_err();
    assert!(matches!(err, FrameError::Malformed(_)), "{err:?}");
}

#[test]
fn handshake_and_call_over_a_socket() {
    let (mut host, mut agent) = UnixStream::pair().unwrap();
    let agent_thread = std::thread::spawn(move || {
        server_handshake(&mut agent).unwrap();
        let req: Envelope<Request> = read_frame(&mut agent).unwrap();
        assert_eq!(
            req.body,
            Request::Wait {
                id: "c".into(),
                exec_id: None,
            }
        );
        let answer = Envelope {
            id: req.id,
            body: Response::Exited {
                status: ExitStatus::Signal(15),
            },
        };
        write_frame(&mut agent, &answer).unwrap();
    });
    client_handshake(&mut host).unwrap();
    let answer = call(
        &mut host,
        5,
        Request::Wait {
            id: "c".into(),
            exec_id: None,
        },
    )
    .unwrap();
    assert_eq!(
        answer,
        Response::Exited {
            status: ExitStatus::Signal(15)
        }
    );
    agent_thread.join().unwrap();
}

#[test]
fn wrong_version_fails_on_both_sides() {
    let (mut host, mut agent) = UnixStream::pair().unwrap();
    let agent_thread = std::thread::spawn(move || server_handshake(&mut agent));
    write_frame(
        &mut host,
        &Envelope {
            id: 0,
            body: Request::Hello { version: 99 },
        },
    )
    .unwrap();
    let answer: Envelope<Response> = read_frame(&mut host).unwrap();
    assert!(matches!(answer.body, Response::Error { ref message } if message.contains("99")));
    assert!(matches!(
        agent_thread.join().unwrap(),
        Err(ProtocolError::VersionMismatch {
            ours: PROTOCOL_VERSION,
            theirs: 99
        })
    ));

    // And the host refuses an agent speaking another version.
    let (mut host, mut agent) = UnixStream::pair().unwrap();
    let agent_thread = std::thread::spawn(move || {
        let _: Envelope<Request> = read_frame(&mut agent).unwrap();
        let answer = Envelope {
            id: 0,
            body: Response::Hello {
                version: PROTOCOL_VERSION + 1,
            },
        };
        write_frame(&mut agent, &answer).unwrap();
    });
    assert!(matches!(
        client_handshake(&mut host),
        Err(ProtocolError::VersionMismatch { ours: PROTOCOL_VERSION, theirs })
            if theirs == PROTOCOL_VERSION + 1
    ));
    agent_thread.join().unwrap();
}

#[test]
fn request_before_hello_is_refused() {
    let (mut host, mut agent) = UnixStream::pair().unwrap();
    write_frame(
        &mut host,
        &Envelope {
            id: 0,
            body: Request::Shutdown,
        },
    )
    .unwrap();
    assert!(matches!(
        server_handshake(&mut agent),
        Err(ProtocolError::Unexpected(_))
    ));
}

#[test]
fn control_client_matches_out_of_order_responses() {
    use crate::client::ControlClient;
    use std::sync::Arc;

    let (host, mut agent) = UnixStream::pair().unwrap();
    let agent_thread = std::thread::spawn(move || {
        server_handshake(&mut agent).unwrap();
        // Wait is answered last, after the Signal sent while it blocks.
        let first: Envelope<Request> = read_frame(&mut agent).unwrap();
        let second: Envelope<Request> = read_frame(&mut agent).unwrap();
        let (wait, signal) = match first.body {
            Request::Wait { .. } => (first, second),
            _ => (second, first),
        };
        assert!(matches!(wait.body, Request::Wait { .. }));
        assert!(matches!(signal.body, Request::Signal { signal: 15, .. }));
        write_frame(
            &mut agent,
            &Envelope {
                id: 999,
                body: Response::Ok,
            },
        )
        .unwrap();
        write_frame(
            &mut agent,
            &Envelope {
                id: signal.id,
                body: Response::Ok,
            },
        )
        .unwrap();
        let exited = Response::Exited {
            status: ExitStatus::Signal(15),
        };
        write_frame(
            &mut agent,
            &Envelope {
                id: wait.id,
                body: exited,
            },
        )
        .unwrap();
        // Then the agent goes away.
    });
    let client = Arc::new(ControlClient::connect(host).unwrap());
    let waiter = {
        let client = client.clone();
        std::thread::spawn(move || {
            client.call(Request::Wait {
                id: "c".into(),
                exec_id: None,
            })
        })
    };
    // Make sure Wait is registered before the Signal goes out.
    while client_pending(&client) == 0 {
        std::thread::yield_now();
    }
    let signal = client.call(Request::Signal {
        id: "c".into(),
        signal: 15,
        all: false,
        exec_id: None,
    });
    assert_eq!(signal.unwrap(), Response::Ok);
    assert_eq!(
        waiter.join().unwrap().unwrap(),
        Response::Exited {
            status: ExitStatus::Signal(15)
        }
    );
    agent_thread.join().unwrap();
    // The connection is closed now: calls fail instead of hanging.
    assert!(matches!(
        client.call(Request::Shutdown),
        Err(ProtocolError::Frame(_))
    ));
}

fn client_pending(client: &crate::client::ControlClient) -> usize {
    client.pending_requests()
}

#[test]
fn create_without_no_pivot_means_pivot_root_and_a_non_bool_is_malformed() {
    let absent = br#"{"id":1,"body":{"type":"create","id":"c","spec":null,"rootfs":{"kind":"virtio_fs","tag":"t"},"stdio":{"stdin":null,"stdout":null,"stderr":null}}}"#;
    let got: Envelope<Request> = read_frame(&mut raw_frame(absent)).unwrap();
    assert!(
        matches!(
            got.body,
            Request::Create {
                no_pivot: false,
                ends_vm: false,
                ref shares,
                ref network,
                ..
            } if shares.is_empty() && network.is_empty()
        ),
        "{got:?}"
    );
    let wrong = br#"{"id":1,"body":{"type":"create","id":"c","spec":null,"rootfs":{"kind":"virtio_fs","tag":"t"},"stdio":{"stdin":null,"stdout":null,"stderr":null},"no_pivot":"yes"}}"#;
    assert!(matches!(
        read_frame::<_, Envelope<Request>>(&mut raw_frame(wrong)),
        Err(FrameError::Malformed(_))
    ));
}

#[test]
fn create_sends_no_pivot_only_when_set() {
    let create = |no_pivot| Request::Create {
        id: "c".into(),
        spec: serde_json::Value::Null,
        rootfs: RootfsSource::VirtioFs {
            tag: "t".into(),
            path: None,
        },
        stdio: StdioPorts::default(),
        no_pivot,
        shares: vec![],
        network: vec![],
        ends_vm: false,
    };
    let plain = serde_json::to_string(&create(false)).unwrap();
    assert!(!plain.contains("no_pivot"), "{plain}");
    assert!(!plain.contains("ends_vm"), "{plain}");
    let asked = serde_json::to_string(&create(true)).unwrap();
    assert!(asked.contains(r#""no_pivot":true"#), "{asked}");
}
