//! Protocol v4's runc lifecycle: `Create` makes the init (State
//! `created`), `Start`, `State`, `Pause`/`Resume`, `Stats`, `Update`,
//! `Processes` and `Signal` with `all`.

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use vmrun_protocol::{
    ContainerStatus, ControlClient, ExitStatus, GuestProcess, Request, Response, StdioPorts,
};

use crate::fixture::*;

fn processes_of(client: &ControlClient, id: &str) -> Vec<GuestProcess> {
    match client.call(Request::Processes { id: id.into() }).unwrap() {
        Response::Processes { processes } => processes,
        other => panic!("processes did not answer Processes: {other:?}"),
    }
}

fn stats_of(client: &ControlClient, id: &str) -> Value {
    match client.call(Request::Stats { id: id.into() }).unwrap() {
        Response::Stats { stats } => stats,
        other => panic!("stats did not answer Stats: {other:?}"),
    }
}

fn update(id: &str, resources: Value) -> Request {
    Request::Update {
        id: id.into(),
        resources,
    }
}

fn exited(status: ExitStatus) -> Response {
    Response::Exited { status }
}

/// The counter a looping container writes to its /tmp (the rootfs is a
/// directory of this host); empty while it is being rewritten.
fn read_counter(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Polls until `path` holds something other than `before` (no deadline:
/// a process that never writes makes the test hang, not pass).
fn await_change(path: &Path, before: &str) -> String {
    loop {
        let now = read_counter(path);
        if !now.is_empty() && now != before {
            return now;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn created_container_has_its_init_and_state(world: &World) {
    let mut agent = world.agent("created");
    let client = agent.client();
    let stdio = HostStdio::listen(world, None);
    let spec = world.spec(&["sh", "-c", "echo started; exit 5"]);
    let pid = expect_created(client.call(create("made", spec.clone(), &stdio)));
    assert_eq!(state_of(&client, "made"), (ContainerStatus::Created, pid));
    // The init exists (a process of this host) and is in the cgroup.
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    let listed = processes_of(&client, "made");
    assert_eq!(listed.first().map(|p| p.pid), Some(pid), "{listed:?}");
    assert_eq!(client.call(start("made")).unwrap(), started());
    let (out, err) = stdio.collect();
    assert_eq!((out.as_str(), err.as_str()), ("started\n", ""));
    assert_eq!(
        client.call(wait("made")).unwrap(),
        exited(ExitStatus::Code(5))
    );
    assert_eq!(state_of(&client, "made"), (ContainerStatus::Stopped, 0));

    // A created container can be killed before it ever runs.
    let stdio = HostStdio::listen(world, None);
    expect_created(client.call(create("unrun", spec, &stdio)));
    assert_eq!(client.call(signal("unrun", 9)).unwrap(), Response::Ok);
    assert_eq!(
        client.call(wait("unrun")).unwrap(),
        exited(ExitStatus::Signal(9))
    );
    assert_eq!(state_of(&client, "unrun"), (ContainerStatus::Stopped, 0));
    let message = agent_error(client.call(start("unrun")));
    assert!(message.contains("stopped"), "{message}");
    assert_eq!(stdio.collect(), (String::new(), String::new()));
    assert_eq!(client.call(Request::Shutdown).unwrap(), Response::Ok);
    agent.end().unwrap();
}

/// As runc, the program is found in `PATH` once, at create: a program of
/// the same name put earlier in `PATH` before `start` does not run
/// instead. A program missing at create fails it, naming the program.
pub fn the_program_is_found_at_create(world: &World) {
    let (first, second) = (
        world.rootfs.join("path-first"),
        world.rootfs.join("path-second"),
    );
    for (dir, word) in [(&first, None), (&second, Some("second"))] {
        std::fs::create_dir_all(dir).unwrap();
        if let Some(word) = word {
            write_script(&dir.join("prog"), word);
        }
    }
    let mut agent = world.agent("findonce");
    let client = agent.client();
    let mut spec = world.spec(&["prog"]);
    spec["process"]["env"] = json!(["PATH=/path-first:/path-second"]);
    let stdio = HostStdio::listen(world, None);
    expect_created(client.call(create("found", spec.clone(), &stdio)));
    write_script(&first.join("prog"), "first");
    assert_eq!(client.call(start("found")).unwrap(), started());
    let (out, err) = stdio.collect();
    assert_eq!((out.as_str(), err.as_str()), ("second\n", ""));
    assert_eq!(
        client.call(wait("found")).unwrap(),
        exited(ExitStatus::Code(0))
    );

    spec["process"]["args"] = json!(["no-such-program"]);
    let stdio = HostStdio::listen(world, None);
    let message = agent_error(client.call(create("missing", spec, &stdio)));
    assert!(
        message.contains("'no-such-program' not found in $PATH"),
        "{message}"
    );
    drop(stdio);
    assert_eq!(client.call(Request::Shutdown).unwrap(), Response::Ok);
    agent.end().unwrap();
    for dir in [first, second] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// An executable shell script at `path` that prints `word`.
fn write_script(path: &Path, word: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\necho {word}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

pub fn pause_resume_stats_update_processes_and_kill_all(world: &World) {
    let mut agent = world.agent("lifecycle");
    let client = agent.client();
    let counter = world.rootfs.join("tmp/lifecycle-count");
    let _ = std::fs::remove_file(&counter);
    let mut spec = world.spec(&[
        "sh",
        "-c",
        "i=0; while :; do i=$((i+1)); echo $i > /tmp/lifecycle-count; usleep 2000; done",
    ]);
    // No pid namespace: killing the init alone would leave an exec'd
    // process running; only `all` reaches it.
    if let Some(namespaces) = spec["linux"]["namespaces"].as_array_mut() {
        namespaces.retain(|ns| ns["type"] != "pid");
    }
    let stdio = HostStdio::listen(world, None);
    let pid = expect_created(client.call(create("loop", spec, &stdio)));
    assert_eq!(client.call(start("loop")).unwrap(), started());
    await_change(&counter, "");
    assert_eq!(state_of(&client, "loop"), (ContainerStatus::Running, pid));
    let listed = processes_of(&client, "loop");
    let init = listed.first().expect("the init is listed");
    assert_eq!(init.pid, pid);
    assert_eq!(init.uid, 0);
    assert!(init.cmd.starts_with("sh -c i=0;"), "{listed:?}");

    // Paused: frozen, the counter stands still.
    assert_eq!(
        client.call(Request::Pause { id: "loop".into() }).unwrap(),
        Response::Ok
    );
    assert_eq!(state_of(&client, "loop"), (ContainerStatus::Paused, pid));
    let frozen = read_counter(&counter);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        read_counter(&counter),
        frozen,
        "a paused container made progress"
    );
    let exec_while_paused = Request::Exec {
        id: "loop".into(),
        exec_id: "no".into(),
        process: json!({"args": ["true"], "cwd": "/"}),
        stdio: StdioPorts::default(),
    };
    let message = agent_error(client.call(exec_while_paused));
    assert!(message.contains("paused"), "{message}");
    assert_eq!(
        client.call(Request::Resume { id: "loop".into() }).unwrap(),
        Response::Ok
    );
    assert_eq!(state_of(&client, "loop"), (ContainerStatus::Running, pid));
    await_change(&counter, &frozen);

    // Stats in runc's shape.
    let stats = stats_of(&client, "loop");
    println!("  stats: {stats}");
    let number = |pointer: &str| -> u64 {
        stats
            .pointer(pointer)
            .and_then(Value::as_u64)
            .unwrap_or_else(|| panic!("{pointer} missing in {stats}"))
    };
    assert!(number("/cpu/usage/total") > 0);
    assert!(number("/memory/usage/usage") > 0);
    assert!(number("/memory/usage/limit") > 0);
    assert!(number("/pids/current") >= 1);
    for key in ["cpu", "memory", "pids", "blkio", "hugetlb"] {
        assert!(stats.get(key).is_some(), "{key} missing in {stats}");
    }

    // Update: new limits show; what cannot be applied is refused by name.
    let limits = json!({"memory": {"limit": 67108864}, "pids": {"limit": 99}});
    assert_eq!(client.call(update("loop", limits)).unwrap(), Response::Ok);
    let stats = stats_of(&client, "loop");
    assert_eq!(stats.pointer("/memory/usage/limit"), Some(&json!(67108864)));
    assert_eq!(stats.pointer("/pids/limit"), Some(&json!(99)));
    for (resources, field) in [
        (
            json!({"memory": {"swappiness": 10}}),
            "resources.memory.swappiness",
        ),
        (
            json!({"devices": [{"allow": true, "access": "rwm"}]}),
            "resources.devices",
        ),
        (
            json!({"memory": {"limit": "lots"}}),
            "resources.memory.limit",
        ),
        (json!({"network": {"classID": 1}}), "resources.network"),
    ] {
        let message = agent_error(client.call(update("loop", resources)));
        assert!(message.contains(field), "{field}: {message}");
    }

    // kill --all reaches the exec'd process too.
    let bystander = Request::Exec {
        id: "loop".into(),
        exec_id: "bystander".into(),
        process: json!({"args": ["sleep", "1000"], "cwd": "/",
                        "env": ["PATH=/bin:/usr/bin"]}),
        stdio: StdioPorts::default(),
    };
    let Response::ExecStarted { pid: exec_pid } = client.call(bystander).unwrap() else {
        panic!("exec did not answer ExecStarted");
    };
    let listed = processes_of(&client, "loop");
    assert_eq!(listed.first().map(|p| p.pid), Some(pid));
    let sleeper = listed.iter().find(|p| p.pid == exec_pid);
    assert_eq!(
        sleeper.map(|p| p.cmd.as_str()),
        Some("sleep 1000"),
        "{listed:?}"
    );
    let kill_all = Request::Signal {
        id: "loop".into(),
        signal: 9,
        all: true,
        exec_id: None,
    };
    assert_eq!(client.call(kill_all).unwrap(), Response::Ok);
    assert_eq!(
        client.call(wait("loop")).unwrap(),
        exited(ExitStatus::Signal(9))
    );
    let wait_bystander = Request::Wait {
        id: "loop".into(),
        exec_id: Some("bystander".into()),
    };
    assert_eq!(
        client.call(wait_bystander).unwrap(),
        exited(ExitStatus::Signal(9))
    );
    assert_eq!(state_of(&client, "loop"), (ContainerStatus::Stopped, 0));
    let _ = stdio.collect();
    assert_eq!(client.call(Request::Shutdown).unwrap(), Response::Ok);
    agent.end().unwrap();
}

/// Whether `pid`'s freezer cgroup is frozen: cgroup v2's `cgroup.events`
/// says `frozen 1`, or cgroup v1's `freezer.state` says `FROZEN`.
fn is_frozen(pid: i32) -> bool {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("its cgroups");
    for line in cgroups.lines() {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next(), fields.next(), fields.next());
        let (Some(controllers), Some(path)) = (controllers, path) else {
            continue;
        };
        let path = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == "freezer") {
            let state = Path::new("/sys/fs/cgroup/freezer")
                .join(path)
                .join("freezer.state");
            return std::fs::read_to_string(state).is_ok_and(|s| s.trim() == "FROZEN");
        }
        if controllers.is_empty() {
            let events = Path::new("/sys/fs/cgroup").join(path).join("cgroup.events");
            if let Ok(events) = std::fs::read_to_string(events) {
                if events.lines().any(|l| l.starts_with("frozen ")) {
                    return events.lines().any(|l| l == "frozen 1");
                }
            }
        }
    }
    panic!("no freezer cgroup for pid {pid}:\n{cgroups}");
}

pub fn lifecycle_requests_in_the_wrong_state_are_refused(world: &World) {
    let mut agent = world.agent("states");
    let client = agent.client();
    let pause = || Request::Pause { id: "s".into() };
    let resume = || Request::Resume { id: "s".into() };
    let stdio = HostStdio::listen(world, None);
    let pid = expect_created(client.call(create("s", world.spec(&["sleep", "1000"]), &stdio)));
    // As runc: a created container can be paused; it cannot be started
    // until it is resumed, and then it is created again.
    assert!(agent_error(client.call(resume())).contains("not paused"));
    assert!(
        !is_frozen(pid),
        "a created container's init is frozen before pause"
    );
    assert_eq!(client.call(pause()).unwrap(), Response::Ok);
    assert_eq!(state_of(&client, "s"), (ContainerStatus::Paused, pid));
    assert!(is_frozen(pid), "pause did not freeze the created container");
    assert!(agent_error(client.call(pause())).contains("already paused"));
    let message = agent_error(client.call(start("s")));
    assert!(
        message.contains("cannot start a container in the paused state"),
        "{message}"
    );
    assert_eq!(state_of(&client, "s"), (ContainerStatus::Paused, pid));
    assert_eq!(client.call(resume()).unwrap(), Response::Ok);
    assert_eq!(state_of(&client, "s"), (ContainerStatus::Created, pid));
    assert!(!is_frozen(pid), "resume did not thaw the created container");
    assert_eq!(client.call(start("s")).unwrap(), started());
    assert_eq!(state_of(&client, "s"), (ContainerStatus::Running, pid));
    assert!(agent_error(client.call(resume())).contains("not paused"));
    assert_eq!(client.call(pause()).unwrap(), Response::Ok);
    assert!(agent_error(client.call(pause())).contains("already paused"));
    // SIGKILL reaches a paused container.
    assert_eq!(client.call(signal("s", 9)).unwrap(), Response::Ok);
    assert_eq!(
        client.call(wait("s")).unwrap(),
        exited(ExitStatus::Signal(9))
    );
    let _ = stdio.collect();

    let stopped = [
        Request::Stats { id: "s".into() },
        Request::Processes { id: "s".into() },
        update("s", json!({"pids": {"limit": 5}})),
    ];
    for request in stopped {
        let message = agent_error(client.call(request));
        assert!(message.contains("stopped"), "{message}");
    }
    for request in [pause(), resume(), signal("s", 15)] {
        let message = agent_error(client.call(request));
        assert!(message.contains("not running"), "{message}");
    }
    for request in [
        state("nobody"),
        Request::Stats {
            id: "nobody".into(),
        },
    ] {
        let message = agent_error(client.call(request));
        assert!(message.contains("no container \"nobody\""), "{message}");
    }
    let both = Request::Signal {
        id: "s".into(),
        signal: 9,
        all: true,
        exec_id: Some("e".into()),
    };
    let message = agent_error(client.call(both));
    assert!(message.starts_with("exec_id:"), "{message}");

    // SIGKILL ends a container paused before it was started.
    let stdio = HostStdio::listen(world, None);
    expect_created(client.call(create("p", world.spec(&["sleep", "1000"]), &stdio)));
    let pause_p = Request::Pause { id: "p".into() };
    assert_eq!(client.call(pause_p).unwrap(), Response::Ok);
    assert_eq!(client.call(signal("p", 9)).unwrap(), Response::Ok);
    assert_eq!(
        client.call(wait("p")).unwrap(),
        exited(ExitStatus::Signal(9))
    );
    assert_eq!(state_of(&client, "p"), (ContainerStatus::Stopped, 0));
    let _ = stdio.collect();
    drop(client);
    expect_connection_lost(agent);
}
