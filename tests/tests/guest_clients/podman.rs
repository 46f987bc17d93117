//! podman 4.3 + conmon with the runtime under test.

use std::time::Duration;

use vmrun_tests::clients::cni::{gateway_of, in_subnet};
use vmrun_tests::clients::podman::{PrivatePodman, RUNTIME_ENTRY, SUBNET};
use vmrun_tests::clients::{poll, run_client, PtyChild, RuntimeUnderTest, BUSYBOX_IMAGE};
use vmrun_tests::RunOutput;

use crate::{assert_kernel_of, env_dir, images, limit};

/// The clients a podman test needs.
const TOOLS: &[&str] = &["podman", "conmon", "nsenter", "ip"];

/// A private podman with the images loaded, or `None` (skipped).
fn podman_env(test: &str) -> Option<PrivatePodman> {
    let runtime = RuntimeUnderTest::for_test(test, TOOLS)?;
    let podman = PrivatePodman::new(&env_dir(test), &runtime, limit());
    podman.load_images(images());
    Some(podman)
}

/// `podman <before...> run <container flags> <after...>` as one list.
fn run_args<'a>(before: &[&'a str], flags: &'a [String], after: &[&'a str]) -> Vec<&'a str> {
    let mut args: Vec<&str> = before.to_vec();
    args.push("run");
    args.extend(flags.iter().map(String::as_str));
    args.extend_from_slice(after);
    args
}

fn code(out: &RunOutput) -> Option<i32> {
    out.status.and_then(|s| s.code())
}

/// `podman inspect --format FORMAT name`, trimmed; panics if it fails.
fn inspect(podman: &PrivatePodman, name: &str, format: &str) -> String {
    podman
        .ok(&["inspect", "--format", format, name])
        .trim()
        .to_string()
}

/// `podman --runtime <path of the runtime under test> run --rm`: stdout,
/// stderr and exit codes come back as the container made them; the
/// container ran on the runtime under test; `--rm` left nothing.
#[test]
fn podman_runtime_path_run_rm_reports_output_and_exit_codes() {
    let Some(podman) = podman_env("podman_runtime_path_run_rm_reports_output_and_exit_codes")
    else {
        return;
    };
    let bin = podman.runtime().bin.display().to_string();
    let flags = podman.container_flags();
    let run = |script: &str| {
        podman.podman(&run_args(
            &["--runtime", &bin],
            &flags,
            &["--rm", BUSYBOX_IMAGE, "sh", "-c", script],
        ))
    };

    let out = run("echo out-line; echo err-line >&2");
    assert_eq!(code(&out), Some(0), "{}", out.describe());
    assert_eq!(out.stdout, "out-line\n", "{}", out.describe());
    assert!(out.stderr.contains("err-line"), "{}", out.describe());

    let out = run("exit 7");
    assert_eq!(code(&out), Some(7), "{}", out.describe());

    let out = run("echo before; exit 255");
    assert_eq!(code(&out), Some(255), "{}", out.describe());
    assert_eq!(out.stdout, "before\n", "{}", out.describe());

    let out = run("uname -r");
    assert_eq!(code(&out), Some(0), "{}", out.describe());
    assert_kernel_of(podman.runtime(), &out.stdout, "podman --runtime run");

    // podman maps the runtime's JSON log ("no such file or directory") to 127.
    let out = podman.podman(&run_args(
        &["--runtime", &bin],
        &flags,
        &["--rm", BUSYBOX_IMAGE, "/no/such/binary"],
    ));
    assert_eq!(code(&out), Some(127), "{}", out.describe());

    let left = podman.ok(&["ps", "-a", "-q"]);
    assert_eq!(left.trim(), "", "--rm left containers behind");
}

/// The containers.conf `[engine.runtimes]` entry as the default runtime:
/// `run -d`, `inspect` and `ps` while it runs, `logs`, `exec` (output,
/// exit code, the same filesystem), `stop` delivering SIGTERM (the exit
/// code of the container's trap), `ps -a` after, `rm`.
#[test]
fn podman_runtime_entry_detached_logs_exec_stop_rm() {
    let Some(podman) = podman_env("podman_runtime_entry_detached_logs_exec_stop_rm") else {
        return;
    };
    let flags = podman.container_flags();
    let script =
        "trap 'echo got-term; exit 42' TERM; echo started; while :; do sleep 1 & wait $!; done";
    let out = podman.podman(&run_args(
        &[],
        &flags,
        &["-d", "--name", "web", BUSYBOX_IMAGE, "sh", "-c", script],
    ));
    assert_eq!(code(&out), Some(0), "{}", out.describe());
    let id = out.stdout.trim().to_string();
    assert_eq!(id.len(), 64, "run -d prints the id: {}", out.describe());

    assert_eq!(inspect(&podman, "web", "{{.OCIRuntime}}"), RUNTIME_ENTRY);
    assert_eq!(
        inspect(&podman, "web", "{{.State.Status}} {{.State.Running}}"),
        "running true"
    );
    let pid: i64 = inspect(&podman, "web", "{{.State.Pid}}")
        .parse()
        .expect("a pid");
    assert!(pid > 0, "State.Pid {pid}");
    let ps = podman.ok(&["ps", "--format", "{{.ID}} {{.Names}} {{.Status}}"]);
    assert!(
        ps.lines()
            .any(|l| l.starts_with(&id[..12]) && l.contains(" web Up")),
        "podman ps:\n{ps}"
    );

    let logs = poll(limit(), || {
        let out = podman.podman(&["logs", "web"]);
        out.stdout.contains("started").then_some(out)
    });
    assert!(logs.is_some(), "podman logs never showed `started`");

    let out = podman.podman(&[
        "exec",
        "web",
        "sh",
        "-c",
        // A failed write shows the container's mounts (in the assertion).
        "echo from-exec; echo shared > /tmp/mark || { grep ' / ' /proc/self/mountinfo; exit 9; }; exit 5",
    ]);
    assert_eq!(code(&out), Some(5), "{}", out.describe());
    assert_eq!(out.stdout, "from-exec\n", "{}", out.describe());
    let out = podman.podman(&["exec", "web", "cat", "/tmp/mark"]);
    assert_eq!(
        (code(&out), out.stdout.as_str()),
        (Some(0), "shared\n"),
        "{}",
        out.describe()
    );
    let out = podman.podman(&["exec", "web", "uname", "-r"]);
    assert_kernel_of(podman.runtime(), &out.stdout, "podman exec");

    let out = podman.podman(&["stop", "-t", "60", "web"]);
    assert_eq!(code(&out), Some(0), "{}", out.describe());
    assert_eq!(
        inspect(&podman, "web", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 42"
    );
    let logs = podman.ok(&["logs", "web"]);
    assert_eq!(logs, "started\ngot-term\n");
    let ps = podman.ok(&["ps", "-q"]);
    assert_eq!(ps.trim(), "", "a stopped container is not listed by ps");
    let ps = podman.ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.contains("web Exited (42)"), "podman ps -a:\n{ps}");

    let out = podman.podman(&["rm", "web"]);
    assert_eq!(code(&out), Some(0), "{}", out.describe());
    let out = podman.podman(&["inspect", "web"]);
    assert_ne!(code(&out), Some(0), "inspect after rm: {}", out.describe());
}

/// `podman kill`: a caught signal reaches the container's process (which
/// keeps running), the default SIGKILL ends it with 137.
#[test]
fn podman_kill_delivers_signals() {
    let Some(podman) = podman_env("podman_kill_delivers_signals") else {
        return;
    };
    let flags = podman.container_flags();
    let script = "trap 'echo got-usr1' USR1; echo ready; while :; do sleep 1 & wait $!; done";
    let out = podman.podman(&run_args(
        &[],
        &flags,
        &["-d", "--name", "k", BUSYBOX_IMAGE, "sh", "-c", script],
    ));
    assert_eq!(code(&out), Some(0), "{}", out.describe());
    assert!(poll(limit(), || podman
        .ok(&["logs", "k"])
        .contains("ready")
        .then_some(()))
    .is_some());

    let out = podman.podman(&["kill", "--signal", "USR1", "k"]);
    assert_eq!(code(&out), Some(0), "{}", out.describe());
    let seen = poll(limit(), || {
        podman.ok(&["logs", "k"]).contains("got-usr1").then_some(())
    });
    assert!(
        seen.is_some(),
        "SIGUSR1 never reached the trap: {}",
        podman.ok(&["logs", "k"])
    );
    assert_eq!(inspect(&podman, "k", "{{.State.Status}}"), "running");

    let out = podman.podman(&["kill", "k"]);
    assert_eq!(code(&out), Some(0), "{}", out.describe());
    let state = poll(limit(), || {
        let s = inspect(&podman, "k", "{{.State.Status}} {{.State.ExitCode}}");
        s.starts_with("exited").then_some(s)
    });
    assert_eq!(state.as_deref(), Some("exited 137"));
}

/// `podman run -it` from a real terminal: the container sees a tty of the
/// terminal's size, takes what is typed and its exit code comes back.
#[test]
fn podman_run_it_through_a_pty() {
    let Some(podman) = podman_env("podman_run_it_through_a_pty") else {
        return;
    };
    let flags = podman.container_flags();
    let args = run_args(
        &[],
        &flags,
        &["-it", "--rm", "--env", "PS1=prompt# ", BUSYBOX_IMAGE, "sh"],
    );
    let mut term = PtyChild::spawn(podman.command(&args)).expect("podman on a pty");
    assert!(
        term.wait_for("prompt# ", limit()),
        "no prompt from `{}`:\n{}",
        term.command(),
        term.screen()
    );
    term.type_text("tty; stty size; echo sum=$((6*7))\n");
    assert!(
        term.wait_for("sum=42", limit()),
        "typed command not run:\n{}",
        term.screen()
    );
    term.type_text("exit 3\n");
    let (status, screen) = term.finish(limit());
    assert_eq!(status.and_then(|s| s.code()), Some(3), "{screen}");
    assert!(screen.contains("/dev/pts/0"), "tty inside:\n{screen}");
    assert!(
        screen.contains("24 80"),
        "the terminal's size inside:\n{screen}"
    );
}

/// `--network none`: the container has loopback only.
#[test]
fn podman_network_none_has_only_loopback() {
    let Some(podman) = podman_env("podman_network_none_has_only_loopback") else {
        return;
    };
    let flags = podman.container_flags();
    let out = podman.podman(&run_args(
        &[],
        &flags,
        &[
            "--rm",
            "--network",
            "none",
            BUSYBOX_IMAGE,
            "sh",
            "-c",
            "ls /sys/class/net; ip -o -4 addr",
        ],
    ));
    assert_eq!(code(&out), Some(0), "{}", out.describe());
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some("lo"), "{}", out.describe());
    let rest: Vec<&str> = lines.collect();
    assert_eq!(rest.len(), 1, "only lo's address: {}", out.describe());
    assert!(rest[0].contains("inet 127.0.0.1/8"), "{}", out.describe());
}

/// Networking through the container's netns. The default
/// CNI bridge network: the container's eth0 has the address podman
/// reports, from the network's subnet, a default route via the bridge;
/// a published port is reached from the host (the test's netns) on
/// 127.0.0.1, and the container's address directly.
#[test]
fn podman_bridge_network_and_published_port() {
    let Some(podman) = podman_env("podman_bridge_network_and_published_port") else {
        return;
    };
    let flags = podman.container_flags();
    let server = "trap 'exit 0' TERM; while :; do \
                  printf 'HTTP/1.0 200 OK\\r\\n\\r\\nhello-from-container\\n' | nc -l -p 8080 & wait $!; done";
    let out = podman.podman(&run_args(
        &[],
        &flags,
        &[
            "-d",
            "--name",
            "web",
            "-p",
            "127.0.0.1:18080:8080",
            BUSYBOX_IMAGE,
            "sh",
            "-c",
            server,
        ],
    ));
    assert_eq!(code(&out), Some(0), "{}", out.describe());

    let ip = inspect(&podman, "web", "{{.NetworkSettings.IPAddress}}");
    assert!(in_subnet(&ip, SUBNET), "IPAddress {ip:?} not in {SUBNET}");
    let out = podman.podman(&[
        "exec",
        "web",
        "sh",
        "-c",
        "ip -o -4 addr show eth0; ip route",
    ]);
    assert_eq!(code(&out), Some(0), "{}", out.describe());
    assert!(
        out.stdout.contains(&format!("inet {ip}/24")),
        "eth0 inside:\n{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains(&format!("default via {}", gateway_of(SUBNET))),
        "routes inside:\n{}",
        out.stdout
    );

    for (addr, port) in [("127.0.0.1", "18080"), (ip.as_str(), "8080")] {
        let reply = poll(limit(), || {
            let out = http_get(&podman, addr, port);
            out.stdout.contains("hello-from-container").then_some(out)
        });
        assert!(
            reply.is_some(),
            "no answer on {addr}:{port} from the host side; last try:\n{}",
            http_get(&podman, addr, port).describe()
        );
    }
}

/// A GET to `addr:port` from the test's netns with busybox's nc.
fn http_get(podman: &PrivatePodman, addr: &str, port: &str) -> RunOutput {
    let script =
        format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | /bin/busybox nc -w 5 {addr} {port}");
    run_client(
        &mut podman.net().command("/bin/sh", &["-c", &script]),
        Duration::from_secs(30),
    )
}

/// Bind mounts from the host. `-v hostdir:/data` shows the
/// host's file inside and what the container writes lands on the host;
/// `:ro` refuses writes.
#[test]
fn podman_volume_from_the_host_is_shared() {
    let Some(podman) = podman_env("podman_volume_from_the_host_is_shared") else {
        return;
    };
    let flags = podman.container_flags();
    let host = podman.host_dir("data");
    std::fs::write(host.join("in.txt"), "from-host\n").expect("write in.txt");
    let volume = format!("{}:/data", host.display());
    let out = podman.podman(&run_args(
        &[],
        &flags,
        &[
            "--rm",
            "-v",
            &volume,
            BUSYBOX_IMAGE,
            "sh",
            "-c",
            "cat /data/in.txt; echo from-container > /data/out.txt",
        ],
    ));
    assert_eq!(code(&out), Some(0), "{}", out.describe());
    assert_eq!(out.stdout, "from-host\n", "{}", out.describe());
    assert_eq!(
        std::fs::read_to_string(host.join("out.txt"))
            .ok()
            .as_deref(),
        Some("from-container\n")
    );

    let read_only = format!("{volume}:ro");
    let out = podman.podman(&run_args(
        &[],
        &flags,
        &[
            "--rm",
            "-v",
            &read_only,
            BUSYBOX_IMAGE,
            "sh",
            "-c",
            "cat /data/in.txt; echo x > /data/ro.txt",
        ],
    ));
    assert_eq!(out.stdout, "from-host\n", "{}", out.describe());
    assert_ne!(
        code(&out),
        Some(0),
        "a write to a :ro volume succeeded: {}",
        out.describe()
    );
    assert!(
        !host.join("ro.txt").exists(),
        "the :ro write reached the host"
    );
}

/// Pods (one microVM per pod). Two containers of one pod talk over localhost and
/// see the same hostname; `pod ps` shows the pod running; `pod stop` and
/// `pod rm` succeed.
#[test]
fn podman_pod_members_talk_over_localhost() {
    let Some(podman) = podman_env("podman_pod_members_talk_over_localhost") else {
        return;
    };
    let mut create = vec!["pod", "create", "--name", "p1"];
    let pod_flags = podman.pod_flags();
    create.extend(pod_flags.iter().map(String::as_str));
    let out = podman.podman(&create);
    assert_eq!(code(&out), Some(0), "{}", out.describe());

    let member = podman.member_flags();
    let server =
        "trap 'exit 0' TERM; while :; do echo pong-from-srv | nc -l -p 7000 & wait $!; done";
    let out = podman.podman(&run_args(
        &[],
        &member,
        &[
            "-d",
            "--pod",
            "p1",
            "--name",
            "srv",
            BUSYBOX_IMAGE,
            "sh",
            "-c",
            server,
        ],
    ));
    assert_eq!(code(&out), Some(0), "{}", out.describe());

    let client = "for i in $(seq 120); do if echo ping | nc 127.0.0.1 7000; then hostname; exit 0; fi; sleep 1; done; exit 1";
    let out = podman.podman(&run_args(
        &[],
        &member,
        &["--rm", "--pod", "p1", BUSYBOX_IMAGE, "sh", "-c", client],
    ));
    assert_eq!(code(&out), Some(0), "{}", out.describe());
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some("pong-from-srv"), "{}", out.describe());
    let client_hostname = lines.next().unwrap_or_default().to_string();
    let srv_hostname = podman.ok(&["exec", "srv", "hostname"]);
    assert_eq!(
        client_hostname,
        srv_hostname.trim(),
        "the pod shares one UTS namespace"
    );

    let ps = podman.ok(&[
        "pod",
        "ps",
        "--format",
        "{{.Name}} {{.Status}} {{.NumberOfContainers}}",
    ]);
    assert_eq!(ps.trim(), "p1 Running 2", "podman pod ps");
    let out = podman.podman(&["pod", "stop", "p1"]);
    assert_eq!(code(&out), Some(0), "{}", out.describe());
    assert_eq!(inspect(&podman, "srv", "{{.State.Status}}"), "exited");
    let out = podman.podman(&["pod", "rm", "p1"]);
    assert_eq!(code(&out), Some(0), "{}", out.describe());
    assert_eq!(podman.ok(&["pod", "ps", "-q"]).trim(), "");
    assert_eq!(podman.ok(&["ps", "-a", "-q"]).trim(), "");
}
