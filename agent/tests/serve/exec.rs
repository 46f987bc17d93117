//! `Exec`: processes run in a running container, with their own stdio,
//! terminal, status and signals; what they inherit from the container.

use std::io::{Read, Write};

use serde_json::{json, Value};
use vmrun_protocol::{ContainerStatus, ControlClient, ExitStatus, Request, Response, StdioPorts};

use crate::fixture::*;

const PATH: &str = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";

fn exec(id: &str, exec_id: &str, process: Value, stdio: StdioPorts) -> Request {
    Request::Exec {
        id: id.into(),
        exec_id: exec_id.into(),
        process,
        stdio,
    }
}

/// An OCI process object running `args` as root in `/`.
fn process(args: &[&str]) -> Value {
    json!({"args": args, "cwd": "/", "env": [PATH]})
}

fn expect_exec_started(client: &ControlClient, request: Request) -> i32 {
    match client.call(request) {
        Ok(Response::ExecStarted { pid }) if pid > 0 => pid,
        other => panic!("exec did not answer ExecStarted with a pid: {other:?}"),
    }
}

fn wait_exec(id: &str, exec_id: &str) -> Request {
    Request::Wait {
        id: id.into(),
        exec_id: Some(exec_id.into()),
    }
}

fn signal_exec(id: &str, exec_id: &str, signal: i32) -> Request {
    Request::Signal {
        id: id.into(),
        signal,
        all: false,
        exec_id: Some(exec_id.into()),
    }
}

fn exited(status: ExitStatus) -> Response {
    Response::Exited { status }
}

/// The `Name:\tvalue` lines of `/proc/PID/status` (host side).
fn status_line(pid: i32, name: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("{name} missing"))
        .to_owned()
}

/// Creates and starts `id` running `sleep 1000`; returns the init's pid
/// and its stdio (collect it after the container ends).
fn sleeping_container(
    world: &World,
    client: &ControlClient,
    id: &str,
    spec: Value,
) -> (i32, HostStdio) {
    let stdio = HostStdio::listen(world, None);
    let pid = expect_created(client.call(create(id, spec, &stdio)));
    assert_eq!(client.call(start(id)).unwrap(), started());
    (pid, stdio)
}

pub fn exec_runs_in_the_container_with_its_own_stdio_and_status(world: &World) {
    let mut agent = world.agent("exec");
    let client = agent.client();
    let (init, init_stdio) =
        sleeping_container(world, &client, "box", world.spec(&["sleep", "1000"]));

    // Own args, env, cwd, user; the container's uts namespace; separate
    // stdout and stderr; its own exit code.
    let stdio = HostStdio::listen(world, None);
    let script = "echo out:$FOO; pwd; id -u; hostname; echo err >&2; exit 3";
    let mut first = process(&["sh", "-c", script]);
    first["env"] = json!([PATH, "FOO=bar"]);
    first["cwd"] = json!("/tmp");
    first["user"] = json!({"uid": 65534, "gid": 65534});
    expect_exec_started(&client, exec("box", "e1", first, stdio.ports.clone()));
    let (out, err) = stdio.collect();
    assert_eq!(out, "out:bar\n/tmp\n65534\nvmrun\n");
    assert_eq!(err, "err\n");
    for _ in 0..2 {
        assert_eq!(
            client.call(wait_exec("box", "e1")).unwrap(),
            exited(ExitStatus::Code(3))
        );
    }

    // Without capabilities/noNewPrivileges of its own it gets the
    // container's, not root's full set.
    let stdio = HostStdio::listen(world, None);
    let probe = process(&["grep", "-E", "^(CapEff|NoNewPrivs):", "/proc/self/status"]);
    expect_exec_started(&client, exec("box", "caps", probe, stdio.ports.clone()));
    let (out, _) = stdio.collect();
    let init_caps = status_line(init, "CapEff:");
    assert!(
        out.lines().any(|l| l == init_caps),
        "{out:?} vs {init_caps:?}"
    );
    assert!(out.lines().any(|l| l == "NoNewPrivs:\t1"), "{out:?}");

    // Stdin and its EOF.
    let stdio = HostStdio::listen(world, Some(b"piped\n".to_vec()));
    expect_exec_started(
        &client,
        exec("box", "cat", process(&["cat"]), stdio.ports.clone()),
    );
    assert_eq!(stdio.collect(), ("piped\n".into(), String::new()));
    assert_eq!(
        client.call(wait_exec("box", "cat")).unwrap(),
        exited(ExitStatus::Code(0))
    );

    // Killed by a signal sent to it by exec id: 128+N.
    let sleeper = expect_exec_started(
        &client,
        exec(
            "box",
            "nap",
            process(&["sleep", "1000"]),
            StdioPorts::default(),
        ),
    );
    assert_ne!(sleeper, init);
    assert_eq!(
        client.call(signal_exec("box", "nap", 15)).unwrap(),
        Response::Ok
    );
    let Response::Exited { status } = client.call(wait_exec("box", "nap")).unwrap() else {
        panic!("wait did not answer Exited");
    };
    assert_eq!(status, ExitStatus::Signal(15));
    assert_eq!(status.as_shell_status(), 143);
    let message = agent_error(client.call(signal_exec("box", "nap", 15)));
    assert!(message.contains("not running"), "{message}");
    // The container itself still runs.
    assert_eq!(client.call(signal("box", 9)).unwrap(), Response::Ok);
    assert_eq!(
        client.call(wait("box")).unwrap(),
        exited(ExitStatus::Signal(9))
    );
    let _ = init_stdio.collect();
    assert_eq!(client.call(Request::Shutdown).unwrap(), Response::Ok);
    agent.end().unwrap();
}

/// As runc (and containerd's shim for a created task): a process can be
/// exec'd into a created container; the container stays created, and its
/// own process runs once it is started. Not while it is paused.
pub fn exec_into_a_created_container_leaves_it_created(world: &World) {
    let mut agent = world.agent("exec-created");
    let client = agent.client();
    let init_stdio = HostStdio::listen(world, None);
    let spec = world.spec(&["sh", "-c", "echo init-ran"]);
    let pid = expect_created(client.call(create("made", spec, &init_stdio)));

    let stdio = HostStdio::listen(world, None);
    let probe = process(&["sh", "-c", "hostname; readlink /proc/self/ns/pid"]);
    expect_exec_started(&client, exec("made", "e", probe, stdio.ports.clone()));
    let (out, err) = stdio.collect();
    let init_pidns = std::fs::read_link(format!("/proc/{pid}/ns/pid")).expect("init's pid ns");
    assert_eq!(
        (out.as_str(), err.as_str()),
        (format!("vmrun\n{}\n", init_pidns.display()).as_str(), "")
    );
    assert_eq!(
        client.call(wait_exec("made", "e")).unwrap(),
        exited(ExitStatus::Code(0))
    );
    assert_eq!(state_of(&client, "made"), (ContainerStatus::Created, pid));
    // The exec's view of the state is gone.
    let views = world.state_dir("exec-created").join("v");
    let left: Vec<_> = std::fs::read_dir(&views)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");

    // Paused: refused.
    assert_eq!(
        client.call(Request::Pause { id: "made".into() }).unwrap(),
        Response::Ok
    );
    let paused = exec("made", "p", process(&["true"]), StdioPorts::default());
    let message = agent_error(client.call(paused));
    assert!(message.contains("paused"), "{message}");
    assert_eq!(
        client.call(Request::Resume { id: "made".into() }).unwrap(),
        Response::Ok
    );

    // Its own process runs once started.
    assert_eq!(client.call(start("made")).unwrap(), started());
    assert_eq!(
        client.call(wait("made")).unwrap(),
        exited(ExitStatus::Code(0))
    );
    assert_eq!(init_stdio.collect(), ("init-ran\n".into(), String::new()));
    assert_eq!(client.call(Request::Shutdown).unwrap(), Response::Ok);
    agent.end().unwrap();
}

pub fn exec_with_a_terminal_gets_a_pty_and_resizes(world: &World) {
    let mut agent = world.agent("exec-tty");
    let client = agent.client();
    let (_, init_stdio) =
        sleeping_container(world, &client, "ttybox", world.spec(&["sleep", "1000"]));
    let ((in_port, stdin_l), (out_port, stdout_l), (err_port, stderr_l)) =
        (world.bind_port(), world.bind_port(), world.bind_port());
    let stderr = std::thread::spawn(move || read_all(&stderr_l));
    let mut tty = process(&[
        "sh",
        "-c",
        "tty; stty size; read line; stty size; echo got:$line; exit 4",
    ]);
    tty["terminal"] = json!(true);
    tty["consoleSize"] = json!({"height": 25, "width": 90});
    let ports = StdioPorts {
        stdin: Some(in_port),
        stdout: Some(out_port),
        stderr: Some(err_port),
    };
    expect_exec_started(&client, exec("ttybox", "t", tty, ports));
    let (mut stdin, _) = stdin_l.accept().expect("accept stdin");
    let (mut stdout, _) = stdout_l.accept().expect("accept stdout");
    let mut seen = Vec::new();
    read_until(&mut stdout, &mut seen, "25 90");
    let resize = Request::Resize {
        id: "ttybox".into(),
        rows: 50,
        cols: 132,
        exec_id: Some("t".into()),
    };
    assert_eq!(client.call(resize).unwrap(), Response::Ok);
    stdin.write_all(b"hi\n").expect("write stdin");
    drop(stdin);
    assert_eq!(
        client.call(wait_exec("ttybox", "t")).unwrap(),
        exited(ExitStatus::Code(4))
    );
    // The exit is reported only after the pty's output was relayed.
    stdout.read_to_end(&mut seen).expect("stdout to EOF");
    let out = String::from_utf8_lossy(&seen).into_owned();
    let err = String::from_utf8_lossy(&stderr.join().expect("stderr")).into_owned();
    println!("  exec tty: stdout={out:?} stderr={err:?}");
    let lines: Vec<&str> = out.lines().map(|l| l.trim_end_matches('\r')).collect();
    assert!(
        lines.first().is_some_and(|l| l.starts_with("/dev/pts/")),
        "{out:?}"
    );
    for want in ["25 90", "50 132", "got:hi"] {
        assert!(lines.contains(&want), "{want:?} missing in {out:?}");
    }
    assert_eq!(err, "", "a terminal has no separate stderr");

    // An exec without a terminal cannot be resized.
    expect_exec_started(
        &client,
        exec(
            "ttybox",
            "plain",
            process(&["sleep", "1000"]),
            StdioPorts::default(),
        ),
    );
    let message = agent_error(client.call(Request::Resize {
        id: "ttybox".into(),
        rows: 1,
        cols: 1,
        exec_id: Some("plain".into()),
    }));
    assert!(message.contains("no terminal"), "{message}");
    assert_eq!(client.call(Request::Shutdown).unwrap(), Response::Ok);
    agent.end().unwrap();
    let _ = init_stdio.collect();
}

pub fn exec_gets_the_containers_seccomp_filter_and_capabilities(world: &World) {
    let mut agent = world.agent("exec-seccomp");
    let client = agent.client();
    let mut spec = world.spec(&["sleep", "1000"]);
    // Without no_new_privs the filter needs CAP_SYS_ADMIN, which the
    // container's capabilities do not have: the hard case.
    spec["process"]["noNewPrivileges"] = json!(false);
    spec["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
    });
    let (init, init_stdio) = sleeping_container(world, &client, "filtered", spec);
    let probe_dir = world.rootfs.join("tmp/seccomp-exec-probe");
    let _ = std::fs::remove_dir(&probe_dir);
    let stdio = HostStdio::listen(world, None);
    let script = "mkdir /tmp/seccomp-exec-probe && echo made || echo refused; \
                  grep -E '^(Seccomp|CapEff|CapPrm|NoNewPrivs):' /proc/self/status";
    expect_exec_started(
        &client,
        exec(
            "filtered",
            "probe",
            process(&["sh", "-c", script]),
            stdio.ports.clone(),
        ),
    );
    let (out, err) = stdio.collect();
    println!("  seccomp exec: stdout={out:?} stderr={err:?}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"refused"), "{out:?}");
    assert!(!probe_dir.exists(), "mkdir got through the filter");
    for want in [
        "Seccomp:\t2".to_owned(),
        "NoNewPrivs:\t0".to_owned(),
        status_line(init, "CapEff:"),
        status_line(init, "CapPrm:"),
    ] {
        assert!(
            lines.contains(&want.as_str()),
            "{want:?} missing in {out:?}"
        );
    }
    assert_eq!(
        client.call(wait_exec("filtered", "probe")).unwrap(),
        exited(ExitStatus::Code(0))
    );
    assert_eq!(client.call(Request::Shutdown).unwrap(), Response::Ok);
    agent.end().unwrap();
    let _ = init_stdio.collect();
}

pub fn exec_errors_name_the_field(world: &World) {
    let mut agent = world.agent("exec-errors");
    let client = agent.client();
    let stdio = HostStdio::listen(world, None);
    let sleep = || process(&["sleep", "1000"]);
    expect_created(client.call(create("eb", world.spec(&["sleep", "1000"]), &stdio)));
    // Before start an exec runs (as runc's; see
    // exec_into_a_created_container_leaves_it_created).
    let early = exec("eb", "early", process(&["true"]), StdioPorts::default());
    expect_exec_started(&client, early);
    assert_eq!(
        client.call(wait_exec("eb", "early")).unwrap(),
        exited(ExitStatus::Code(0))
    );
    assert_eq!(client.call(start("eb")).unwrap(), started());

    let mut no_cwd = sleep();
    no_cwd.as_object_mut().unwrap().remove("cwd");
    let bad = [
        (process(&[]), "process.args"),
        (no_cwd, "process.cwd"),
        (json!("sleep 1000"), "process: must be an object"),
        (
            json!({"args": ["true"], "cwd": "/", "capabilities": {"bounding": ["CAP_FLY"]}}),
            "process.capabilities.bounding[0]",
        ),
        (json!({"args": ["true"], "cwd": "relative"}), "process.cwd"),
    ];
    for (process, field) in bad {
        let message = agent_error(client.call(exec("eb", "bad", process, StdioPorts::default())));
        assert!(message.contains(field), "{field}: {message}");
    }
    let missing = process(&["no-such-binary"]);
    let message = agent_error(client.call(exec("eb", "nobin", missing, StdioPorts::default())));
    assert!(message.contains("no-such-binary"), "{message}");
    let message = agent_error(client.call(exec("eb", "../x", sleep(), StdioPorts::default())));
    assert!(message.starts_with("exec_id:"), "{message}");
    let message = agent_error(client.call(exec("nobody", "e", sleep(), StdioPorts::default())));
    assert!(message.contains("no container \"nobody\""), "{message}");
    let unheard = StdioPorts {
        stdout: Some(1),
        ..StdioPorts::default()
    };
    let message = agent_error(client.call(exec("eb", "deaf", sleep(), unheard)));
    assert!(message.contains("stdio.stdout"), "{message}");

    // One live exec per id.
    expect_exec_started(&client, exec("eb", "dup", sleep(), StdioPorts::default()));
    let message = agent_error(client.call(exec("eb", "dup", sleep(), StdioPorts::default())));
    assert!(
        message.contains("exec_id: \"dup\" is already running"),
        "{message}"
    );

    // Unknown exec ids.
    let resize_nope = Request::Resize {
        id: "eb".into(),
        rows: 1,
        cols: 1,
        exec_id: Some("nope".into()),
    };
    for request in [
        wait_exec("eb", "nope"),
        signal_exec("eb", "nope", 9),
        resize_nope,
    ] {
        let message = agent_error(client.call(request));
        assert!(
            message.starts_with("exec_id: no exec \"nope\""),
            "{message}"
        );
    }

    // A stopped container: no exec; its execs ended with it.
    assert_eq!(client.call(signal("eb", 9)).unwrap(), Response::Ok);
    assert_eq!(
        client.call(wait("eb")).unwrap(),
        exited(ExitStatus::Signal(9))
    );
    assert_eq!(
        client.call(wait_exec("eb", "dup")).unwrap(),
        exited(ExitStatus::Signal(9))
    );
    let message = agent_error(client.call(exec("eb", "late", sleep(), StdioPorts::default())));
    assert!(message.contains("not running"), "{message}");
    let _ = stdio.collect();
    drop(client);
    expect_connection_lost(agent);
}

pub fn a_lost_connection_kills_exec_processes_too(world: &World) {
    let mut agent = world.agent("exec-lost");
    let client = agent.client();
    // No pid namespace: the exec'd process would outlive a killed init.
    let mut spec = world.spec(&["sleep", "1000"]);
    if let Some(namespaces) = spec["linux"]["namespaces"].as_array_mut() {
        namespaces.retain(|ns| ns["type"] != "pid");
    }
    let (_, init_stdio) = sleeping_container(world, &client, "lost", spec);
    let stdio = HostStdio::listen(world, None);
    let script = "echo running; exec sleep 1000";
    expect_exec_started(
        &client,
        exec(
            "lost",
            "orphan",
            process(&["sh", "-c", script]),
            stdio.ports.clone(),
        ),
    );
    let (mut stdout, _) = stdio.stdout.as_ref().expect("listener").accept().unwrap();
    let mut seen = Vec::new();
    read_until(&mut stdout, &mut seen, "running\n");
    drop(client);
    expect_connection_lost(agent);
    // The exec'd process is gone: its stdout ends.
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "");
    let _ = init_stdio.collect();
}
