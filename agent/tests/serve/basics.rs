//! The cases that came with protocol v1-v3: running a container to its
//! end, stdio, signals, terminals, bad input, and the ways a serve loop
//! ends.

use std::io::{Read, Write};
use std::sync::Arc;

use serde_json::json;
use vmrun_agent::serve::control::ServeEnd;
use vmrun_protocol::frame::encode;
use vmrun_protocol::{
    read_frame, write_frame, Envelope, ExitStatus, Request, Response, RootfsSource, StdioPorts,
    PROTOCOL_VERSION,
};

use crate::fixture::*;

pub fn echo_reaches_stdout_and_stderr_stays_separate(world: &World) {
    let mut agent = world.agent("echo");
    let client = agent.client();
    let (status, out, err) = run(
        world,
        &client,
        "echo",
        &["sh", "-c", "echo hello from the container; echo oops >&2"],
        None,
    );
    assert_eq!(status, ExitStatus::Code(0));
    assert_eq!(out, "hello from the container\n");
    assert_eq!(err, "oops\n");
    drop(client);
    // No Shutdown: the dropped connection ends the serve loop.
    assert_eq!(agent.end().unwrap(), ServeEnd::ConnectionLost);
}

pub fn ignored_lsm_fields_come_back_as_warnings(world: &World) {
    let mut agent = world.agent("lsm");
    let client = agent.client();
    let mut spec = world.spec(&["true"]);
    spec["process"]["apparmorProfile"] = json!("containers-default-0.50.1");
    spec["process"]["selinuxLabel"] = json!("system_u:system_r:container_t:s0");
    let stdio = HostStdio::listen(world, None);
    expect_created(client.call(create("lsm", spec, &stdio)));
    let Response::Started { warnings } = client.call(start("lsm")).unwrap() else {
        panic!("start did not answer Started");
    };
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0].starts_with("process.apparmorProfile: "),
        "{warnings:?}"
    );
    assert!(
        warnings[1].starts_with("process.selinuxLabel: "),
        "{warnings:?}"
    );
    stdio.collect();
    let Response::Exited { status } = client.call(wait("lsm")).unwrap() else {
        panic!("wait did not answer Exited");
    };
    assert_eq!(status, ExitStatus::Code(0));
    drop(client);
    expect_connection_lost(agent);
}

pub fn container_starts_with_default_signals_and_leaves_no_state(world: &World) {
    let mut agent = world.agent("signals");
    let client = agent.client();
    let (status, out, _) = run(
        world,
        &client,
        "sigmask",
        &["sh", "-c", "grep -E '^Sig(Blk|Ign)' /proc/self/status"],
        None,
    );
    assert_eq!(status, ExitStatus::Code(0));
    // The agent blocks SIGCHLD (reaper) and Rust ignores SIGPIPE: neither
    // may leak into the container.
    let mask = |name: &str| -> u64 {
        let line = out.lines().find(|l| l.starts_with(name)).expect(name);
        let hex = line.rsplit('\t').next().unwrap_or_default();
        u64::from_str_radix(hex, 16).expect("hex mask")
    };
    assert_eq!(mask("SigBlk:"), 0, "blocked signals leaked: {out}");
    let bit = |signal: i32| 1u64 << (signal - 1);
    assert_eq!(
        mask("SigIgn:") & bit(libc::SIGPIPE),
        0,
        "SIGPIPE ignored: {out}"
    );
    assert_eq!(
        mask("SigIgn:") & bit(libc::SIGCHLD),
        0,
        "SIGCHLD ignored: {out}"
    );
    let own = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let own: Vec<&str> = own.lines().filter(|l| l.starts_with("Sig")).collect();
    println!("  (this test process: {own:?})");
    let state = world.scratch.path().join("state-signals");
    for leftover in ["state/sigmask", "bundles/sigmask"] {
        assert!(!state.join(leftover).exists(), "{leftover} left behind");
    }
    drop(client);
    expect_connection_lost(agent);
}

pub fn exit_codes_come_back(world: &World) {
    let mut agent = world.agent("codes");
    let client = agent.client();
    for code in [0, 1, 42] {
        let id = format!("exit-{code}");
        let script = format!("exit {code}");
        let (status, _, _) = run(world, &client, &id, &["sh", "-c", &script], None);
        assert_eq!(status, ExitStatus::Code(code));
        // Asking again gives the same answer.
        assert_eq!(
            client.call(wait(&id)).unwrap(),
            Response::Exited {
                status: ExitStatus::Code(code)
            }
        );
    }
    drop(client);
    expect_connection_lost(agent);
}

/// `Create.ends_vm`: the exit is reported with what is left in the
/// container's cgroup killed, but without libcontainer's teardown (the VM
/// is about to end).
pub fn a_container_ending_the_vm_exits_without_teardown(world: &World) {
    let mut agent = world.agent("ends-vm");
    let client = agent.client();
    // No pid namespace: the background sleep outlives the init unless the
    // agent kills the cgroup.
    let script = "sleep 300 </dev/null >/dev/null 2>&1 & echo $!; exit 7";
    let mut spec = world.spec(&["sh", "-c", script]);
    if let Some(namespaces) = spec["linux"]["namespaces"].as_array_mut() {
        namespaces.retain(|ns| ns["type"] != "pid");
    }
    let stdio = HostStdio::listen(world, None);
    let mut request = create("last", spec, &stdio);
    if let Request::Create { ends_vm, .. } = &mut request {
        *ends_vm = true;
    }
    expect_created(client.call(request));
    assert_eq!(client.call(start("last")).unwrap(), started());
    let (out, err) = stdio.collect();
    let Response::Exited { status } = client.call(wait("last")).unwrap() else {
        panic!("wait did not answer Exited");
    };
    assert_eq!(status, ExitStatus::Code(7), "{err}");
    let sleeper: i32 = out.trim().parse().expect("the sleep's pid");
    let gone = (0..100).any(|_| {
        let stat = std::fs::read_to_string(format!("/proc/{sleeper}/stat")).unwrap_or_default();
        // Gone, or a zombie waiting for whoever inherited it.
        let dead = stat
            .rsplit_once(')')
            .is_none_or(|(_, rest)| rest.trim_start().starts_with('Z'));
        if !dead {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        dead
    });
    assert!(
        gone,
        "the container's leftover process {sleeper} still runs"
    );
    let state = world.scratch.path().join("state-ends-vm");
    assert!(
        state.join("state/last").exists(),
        "libcontainer's state was torn down although the VM ends with the container"
    );
    drop(client);
    expect_connection_lost(agent);
}

pub fn killed_by_a_signal(world: &World) {
    let mut agent = world.agent("killed");
    let client = agent.client();
    // The init of a pid namespace cannot SIGKILL itself: leave it out, so
    // the process really dies of its own signal.
    let mut spec = world.spec(&["sh", "-c", "kill -9 $$"]);
    if let Some(namespaces) = spec["linux"]["namespaces"].as_array_mut() {
        namespaces.retain(|ns| ns["type"] != "pid");
    }
    let stdio = HostStdio::listen(world, None);
    expect_created(client.call(create("killed", spec, &stdio)));
    assert_eq!(client.call(start("killed")).unwrap(), started());
    assert_eq!(stdio.collect(), (String::new(), String::new()));
    let Response::Exited { status } = client.call(wait("killed")).unwrap() else {
        panic!("wait did not answer Exited");
    };
    assert_eq!(status, ExitStatus::Signal(9));
    assert_eq!(status.as_shell_status(), 137);
    drop(client);
    expect_connection_lost(agent);
}

pub fn stdin_bytes_and_eof_reach_the_process(world: &World) {
    let mut agent = world.agent("cat");
    let client = agent.client();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let stdio = HostStdio::listen(world, Some(data.clone()));
    let spec = world.spec(&["cat"]);
    expect_created(client.call(create("cat", spec, &stdio)));
    assert_eq!(client.call(start("cat")).unwrap(), started());
    let mut stdout = stdio.stdout.as_ref().expect("listener").accept().unwrap().0;
    let mut echoed = Vec::new();
    stdout.read_to_end(&mut echoed).unwrap();
    assert_eq!(echoed.len(), data.len());
    assert!(echoed == data, "cat returned different bytes");
    // cat only exits (0) after EOF on its stdin.
    assert_eq!(
        client.call(wait("cat")).unwrap(),
        Response::Exited {
            status: ExitStatus::Code(0)
        }
    );
    drop(client);
    expect_connection_lost(agent);
}

pub fn signal_requests_reach_the_process_while_wait_is_pending(world: &World) {
    let mut agent = world.agent("signal");
    let client = Arc::new(agent.client());
    let stdio = HostStdio::listen(world, None);
    let script = "trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 1; done";
    let spec = world.spec(&["sh", "-c", script]);
    expect_created(client.call(create("trap", spec, &stdio)));
    assert_eq!(client.call(start("trap")).unwrap(), started());
    let waiter = {
        let client = Arc::clone(&client);
        std::thread::spawn(move || client.call(wait("trap")))
    };
    let mut stdout = stdio.stdout.as_ref().expect("listener").accept().unwrap().0;
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !seen.ends_with(b"ready\n") {
        assert_eq!(stdout.read(&mut byte).unwrap(), 1, "stdout ended early");
        seen.push(byte[0]);
    }
    let sigterm = signal("trap", 15);
    assert_eq!(client.call(sigterm).unwrap(), Response::Ok);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "got TERM\n");
    assert_eq!(
        waiter.join().unwrap().unwrap(),
        Response::Exited {
            status: ExitStatus::Code(7)
        }
    );

    // SIGKILL through a Signal request: killed by signal 9.
    let stdio = HostStdio::listen(world, None);
    let spec = world.spec(&["sleep", "1000"]);
    expect_created(client.call(create("sleeper", spec, &stdio)));
    assert_eq!(client.call(start("sleeper")).unwrap(), started());
    let kill = signal("sleeper", 9);
    assert_eq!(client.call(kill).unwrap(), Response::Ok);
    assert_eq!(
        client.call(wait("sleeper")).unwrap(),
        Response::Exited {
            status: ExitStatus::Signal(9)
        }
    );
    let _ = stdio.collect();
    drop(client);
    expect_connection_lost(agent);
}

pub fn bad_requests_get_errors_naming_the_field(world: &World) {
    let mut agent = world.agent("errors");
    let client = agent.client();
    let stdio = HostStdio::listen(world, None);

    let message = agent_error(client.call(create("empty", world.spec(&[]), &stdio)));
    assert!(message.contains("process.args"), "{message}");

    let mut missing_rootfs = create("norootfs", world.spec(&["true"]), &stdio);
    if let Request::Create { rootfs, .. } = &mut missing_rootfs {
        *rootfs = RootfsSource::VirtioFs {
            tag: "no-such-share".into(),
            path: None,
        };
    }
    let message = agent_error(client.call(missing_rootfs));
    assert!(
        message.contains("rootfs") && message.contains("no-such-share"),
        "{message}"
    );

    let message = agent_error(client.call(create("../escape", world.spec(&["true"]), &stdio)));
    assert!(message.starts_with("id:"), "{message}");

    let mut bad_spec = world.spec(&["true"]);
    bad_spec["linux"]["namespaces"] = json!([{"type": "time-travel"}]);
    let message = agent_error(client.call(create("badspec", bad_spec, &stdio)));
    assert!(message.contains("linux.namespaces[0].type"), "{message}");

    let mut terminal = world.spec(&["true"]);
    terminal["process"]["terminal"] = json!(true);
    terminal["process"]["consoleSize"] = json!({"height": 70000, "width": 80});
    let message = agent_error(client.call(create("bigtty", terminal, &stdio)));
    assert!(message.contains("process.consoleSize.height"), "{message}");

    // A stdio port nobody listens on.
    let mut no_listener = create("nolistener", world.spec(&["true"]), &stdio);
    if let Request::Create { stdio, .. } = &mut no_listener {
        stdio.stdout = Some(1);
    }
    let message = agent_error(client.call(no_listener));
    assert!(message.contains("stdio.stdout"), "{message}");

    for request in [start("nobody"), wait("nobody")] {
        let message = agent_error(client.call(request));
        assert!(message.contains("no container \"nobody\""), "{message}");
    }

    // Signals: invalid number; container not started yet; started twice.
    expect_created(client.call(create("later", world.spec(&["true"]), &stdio)));
    let bad_signal = signal("later", 999);
    assert!(agent_error(client.call(bad_signal)).contains("signal: 999"));
    // Since protocol v4 the created container's init exists and can be
    // signalled (runc allows `kill` on a created container); the init of
    // a pid namespace ignores SIGTERM from outside, so it still starts.
    assert_eq!(client.call(signal("later", 15)).unwrap(), Response::Ok);
    let dup = agent_error(client.call(create("later", world.spec(&["true"]), &stdio)));
    assert!(dup.contains("already exists"), "{dup}");
    assert_eq!(client.call(start("later")).unwrap(), started());
    assert!(agent_error(client.call(start("later"))).contains("already started"));
    assert_eq!(
        client.call(wait("later")).unwrap(),
        Response::Exited {
            status: ExitStatus::Code(0)
        }
    );
    let hello_again = Request::Hello {
        version: PROTOCOL_VERSION,
    };
    assert!(agent_error(client.call(hello_again)).contains("handshake"));
    let _ = stdio.collect();
    drop(client);
    expect_connection_lost(agent);
}

/// Raw frames on the control socket, below `ControlClient`.
pub fn malformed_frames_get_errors_or_close_the_connection(world: &World) {
    let mut agent = world.agent("malformed");
    let mut host = agent.host.take().unwrap();
    vmrun_protocol::client_handshake(&mut host).unwrap();

    let garbage = b"{ this is not json";
    let mut frame = (garbage.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(garbage);
    host.write_all(&frame).unwrap();
    let answer: Envelope<Response> = read_frame(&mut host).unwrap();
    assert_eq!(answer.id, 0);
    assert!(matches!(&answer.body, Response::Error { message } if message.contains("malformed")));

    let unknown = encode(&json!({"id": 7, "body": {"type": "format_disk"}})).unwrap();
    host.write_all(&unknown).unwrap();
    let answer: Envelope<Response> = read_frame(&mut host).unwrap();
    assert_eq!(answer.id, 7);
    assert!(matches!(answer.body, Response::Error { .. }), "{answer:?}");

    // A request still works after the garbage.
    write_frame(
        &mut host,
        &Envelope {
            id: 8,
            body: wait("nobody"),
        },
    )
    .unwrap();
    let answer: Envelope<Response> = read_frame(&mut host).unwrap();
    assert_eq!(answer.id, 8);

    // A length over the limit cannot be resynchronised: the agent closes.
    host.write_all(&u32::MAX.to_le_bytes()).unwrap();
    let mut rest = Vec::new();
    host.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "unexpected bytes after a bad length");
    assert_eq!(agent.end().unwrap(), ServeEnd::ConnectionLost);
}

pub fn version_mismatch_is_refused(world: &World) {
    let mut agent = world.agent("version");
    let mut host = agent.host.take().unwrap();
    let hello = Envelope {
        id: 0,
        body: Request::Hello {
            version: PROTOCOL_VERSION + 1,
        },
    };
    write_frame(&mut host, &hello).unwrap();
    let answer: Envelope<Response> = read_frame(&mut host).unwrap();
    assert!(
        matches!(&answer.body, Response::Error { message } if message.contains("version mismatch")),
        "{answer:?}"
    );
    let err = agent.end().unwrap_err();
    assert!(format!("{err:#}").contains("version mismatch"), "{err:#}");
}

pub fn lost_connection_kills_the_container(world: &World) {
    let mut agent = world.agent("lost");
    let client = agent.client();
    let stdio = HostStdio::listen(world, None);
    let spec = world.spec(&["sleep", "1000"]);
    expect_created(client.call(create("orphan", spec, &stdio)));
    assert_eq!(client.call(start("orphan")).unwrap(), started());
    drop(client);
    assert_eq!(agent.end().unwrap(), ServeEnd::ConnectionLost);
    // The process is gone: its stdio connections are closed.
    let (out, err) = stdio.collect();
    assert_eq!((out.as_str(), err.as_str()), ("", ""));
}

pub fn shutdown_kills_and_answers(world: &World) {
    let mut agent = world.agent("shutdown");
    let client = agent.client();
    let stdio = HostStdio::listen(world, None);
    let spec = world.spec(&["sleep", "1000"]);
    expect_created(client.call(create("doomed", spec, &stdio)));
    assert_eq!(client.call(start("doomed")).unwrap(), started());
    let never_started = HostStdio::listen(world, None);
    let spec = world.spec(&["true"]);
    expect_created(client.call(create("unstarted", spec, &never_started)));
    assert_eq!(client.call(Request::Shutdown).unwrap(), Response::Ok);
    assert_eq!(agent.end().unwrap(), ServeEnd::Shutdown);
    // Both containers' stdio connections are closed: killed / never run.
    assert_eq!(stdio.collect(), (String::new(), String::new()));
    assert_eq!(never_started.collect(), (String::new(), String::new()));
    drop(client);
}

pub fn terminal_gets_a_pty_with_its_size_input_and_resizes(world: &World) {
    let mut agent = world.agent("terminal");
    let client = agent.client();
    let bind = || world.bind_port();
    let ((in_port, stdin_l), (out_port, stdout_l), (err_port, stderr_l)) = (bind(), bind(), bind());
    let stderr = std::thread::spawn(move || read_all(&stderr_l));
    let mut spec = world.spec(&[
        "sh",
        "-c",
        "tty; stty size; test -t 0 && test -t 1 && test -t 2 && echo all-ttys; \
         read line; stty size; echo got:$line; exit 3",
    ]);
    spec["process"]["terminal"] = json!(true);
    spec["process"]["consoleSize"] = json!({"height": 30, "width": 100});
    let request = Request::Create {
        id: "tty".into(),
        spec,
        rootfs: RootfsSource::VirtioFs {
            tag: TAG.into(),
            path: None,
        },
        stdio: StdioPorts {
            stdin: Some(in_port),
            stdout: Some(out_port),
            stderr: Some(err_port),
        },
        no_pivot: false,
        shares: vec![],
        network: vec![],
        ends_vm: false,
    };
    expect_created(client.call(request));
    let (mut stdin, _) = stdin_l.accept().expect("accept stdin");
    let (mut stdout, _) = stdout_l.accept().expect("accept stdout");
    let resize = |rows, cols| Request::Resize {
        id: "tty".into(),
        rows,
        cols,
        exec_id: None,
    };
    let message = agent_error(client.call(resize(40, 120)));
    assert!(message.contains("not started"), "{message}");
    assert_eq!(client.call(start("tty")).unwrap(), started());
    // Resize and type only once the shell waits in `read`.
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !String::from_utf8_lossy(&seen).contains("all-ttys") {
        match stdout.read(&mut byte) {
            Ok(1) => seen.push(byte[0]),
            _ => panic!("stdout ended early: {:?}", String::from_utf8_lossy(&seen)),
        }
    }
    assert_eq!(client.call(resize(40, 120)).unwrap(), Response::Ok);
    stdin.write_all(b"hello\n").expect("write stdin");
    drop(stdin);
    let Response::Exited { status } = client.call(wait("tty")).unwrap() else {
        panic!("wait did not answer Exited");
    };
    // The exit is reported only after the pty's output was relayed.
    stdout.read_to_end(&mut seen).expect("stdout to EOF");
    let out = String::from_utf8_lossy(&seen).into_owned();
    let err = String::from_utf8_lossy(&stderr.join().expect("stderr")).into_owned();
    println!("  tty: {status:?} stdout={out:?} stderr={err:?}");
    assert_eq!(status, ExitStatus::Code(3));
    let lines: Vec<&str> = out.lines().map(|l| l.trim_end_matches('\r')).collect();
    assert!(
        lines.first().is_some_and(|l| l.starts_with("/dev/pts/")),
        "{out:?}"
    );
    for want in ["30 100", "all-ttys", "40 120", "got:hello"] {
        assert!(lines.contains(&want), "{want:?} missing in {out:?}");
    }
    assert_eq!(err, "", "a terminal has no separate stderr");

    // A container without a terminal cannot be resized.
    let stdio = HostStdio::listen(world, None);
    expect_created(client.call(create("notty", world.spec(&["sleep", "1000"]), &stdio)));
    assert_eq!(client.call(start("notty")).unwrap(), started());
    let message = agent_error(client.call(Request::Resize {
        id: "notty".into(),
        rows: 1,
        cols: 1,
        exec_id: None,
    }));
    assert!(message.contains("no terminal"), "{message}");
    assert_eq!(client.call(Request::Shutdown).unwrap(), Response::Ok);
    assert_eq!(agent.end().unwrap(), ServeEnd::Shutdown);
    let _ = stdio.collect();
}
