//! The host's world inside the microVM, in real guests: bind mounts from
//! the host (files and directories, ro and rw, writes to an rw directory
//! and an rw file landing on the host, host-side changes seen inside,
//! symlinked sources, a container trying to leave the bound tree) and
//! networking through a podman-style network namespace made by the test
//! (`vmrun_tests::test_network`): the container gets the address, MTU and
//! routes, fetches a page from a server on the host side of the bridge,
//! and the host reaches a server in the container. A namespace path of
//! another type is refused with nothing left. (A 100 MiB transfer each
//! way: `guest_net_transfer.rs`.)
//!
//! Guest tests skip loudly (or fail under `VMRUN_REQUIRE_GUEST=1`) where
//! guests cannot run.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use vmrun_tests::bundle::edit_config;
use vmrun_tests::runtimes::{code, Runtime};
use vmrun_tests::scratch::GuestScratch;
use vmrun_tests::test_network::{join_netns, TestNetwork};
use vmrun_tests::{boot_timeout, guest_ready, run_ok, RunOutput};

static SCRATCH: GuestScratch = GuestScratch::new("vmrun-guest-world", "256m");

fn scratch() -> &'static Path {
    SCRATCH.dir()
}

fn base_bundle() -> &'static Path {
    SCRATCH.base_bundle()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// A copy of the busybox bundle running `script` with `sh -c`, edited.
fn bundle(name: &str, script: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let dir = scratch().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    run_ok(
        Command::new("cp").arg("-a").arg(base_bundle()).arg(&dir),
        "copying the bundle (cp -a)",
    );
    edit_config(&dir, |spec| {
        spec["process"]["args"] = json!(["sh", "-c", script]);
        edit(spec);
    });
    dir
}

fn vmrun(test: &str) -> Option<Runtime> {
    let g = guest_ready(test)?;
    Some(Runtime::vmrun(
        &scratch().join(test).join("root"),
        &g.kernel,
        &g.initrd,
        boot_timeout(),
    ))
}

fn run(rt: &Runtime, bundle: &Path, id: &str) -> RunOutput {
    rt.call("run", &["--bundle", s(bundle), id])
}

fn add_mount(spec: &mut serde_json::Value, mount: serde_json::Value) {
    spec["mounts"]
        .as_array_mut()
        .expect("the bundle has mounts")
        .push(mount);
}

#[test]
fn host_binds_files_and_directories_ro_and_rw() {
    let Some(rt) = vmrun("host_binds_files_and_directories_ro_and_rw") else {
        return;
    };
    let host = scratch().join("bind-sources");
    let data = host.join("data");
    std::fs::create_dir_all(&data).expect("dir");
    std::fs::write(data.join("from-host"), "host wrote this\n").expect("write");
    let resolv = host.join("resolv.conf");
    std::fs::write(&resolv, "nameserver 10.99.0.1\nsearch vmrun.test\n").expect("write");
    // A symlinked source: resolved on the host.
    let link = host.join("resolv-link");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&resolv, &link).expect("symlink");
    // An rw file bind: the write must land in the host's file itself.
    let app_conf = host.join("app.conf");
    std::fs::write(&app_conf, "set on the host\n").expect("write");
    let ro_dir = host.join("ro");
    std::fs::create_dir_all(&ro_dir).expect("dir");
    std::fs::write(ro_dir.join("keep"), "read only\n").expect("write");
    let script = "cat /etc/resolv.conf; cat /data/from-host; \
                  echo from-guest > /data/written; \
                  cat /ro/keep; \
                  if echo x > /ro/new 2>/dev/null; then echo ro-WRITABLE; else echo ro-refused; fi; \
                  if echo x > /etc/resolv.conf 2>/dev/null; then echo file-WRITABLE; else echo file-refused; fi; \
                  echo appended-in-guest >> /etc/app.conf && cat /etc/app.conf";
    let b = bundle("binds", script, |spec| {
        add_mount(
            spec,
            json!({"destination": "/data", "type": "bind", "source": data, "options": ["rbind", "rw"]}),
        );
        add_mount(
            spec,
            json!({"destination": "/ro", "type": "bind", "source": ro_dir, "options": ["rbind", "ro"]}),
        );
        add_mount(
            spec,
            json!({"destination": "/etc/resolv.conf", "type": "bind", "source": link, "options": ["bind", "ro"]}),
        );
        add_mount(
            spec,
            json!({"destination": "/etc/app.conf", "type": "bind", "source": app_conf, "options": ["bind", "rw"]}),
        );
    });
    let out = run(&rt, &b, "binds");
    assert_eq!(code(&out), Some(0), "{}", out.describe());
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "nameserver 10.99.0.1",
            "search vmrun.test",
            "host wrote this",
            "read only",
            "ro-refused",
            "file-refused",
            "set on the host",
            "appended-in-guest"
        ],
        "{}",
        out.describe()
    );
    assert_eq!(
        std::fs::read_to_string(data.join("written")).expect("the write landed on the host"),
        "from-guest\n"
    );
    assert!(!ro_dir.join("new").exists());
    assert_eq!(
        std::fs::read_to_string(&app_conf).expect("the rw file bind's write landed on the host"),
        "set on the host\nappended-in-guest\n"
    );
}

#[test]
fn a_host_side_change_is_seen_inside() {
    let Some(rt) = vmrun("a_host_side_change_is_seen_inside") else {
        return;
    };
    let data = scratch().join("live");
    std::fs::create_dir_all(&data).expect("dir");
    let _ = std::fs::remove_file(data.join("later"));
    let script = "i=0; while [ $i -lt 600 ]; do \
                    if [ -f /data/later ]; then cat /data/later; exit 0; fi; \
                    sleep 0.2; i=$((i+1)); done; echo never-seen; exit 1";
    let b = bundle("live", script, |spec| {
        add_mount(
            spec,
            json!({"destination": "/data", "type": "bind", "source": data, "options": ["rbind", "rw"]}),
        );
    });
    let dir = scratch().join("live-run");
    std::fs::create_dir_all(&dir).expect("dir");
    let mut child = rt.spawn(
        "run",
        &["--bundle", s(&b), "live"],
        &dir.join("out"),
        &dir.join("err"),
    );
    assert_eq!(rt.wait_status("live", "running", boot_timeout()), "running");
    std::fs::write(data.join("later"), "written on the host later\n").expect("write");
    let status = vmrun_tests::wait_until(&mut child, Instant::now() + boot_timeout());
    let out = std::fs::read_to_string(dir.join("out")).unwrap_or_default();
    let err = std::fs::read_to_string(dir.join("err")).unwrap_or_default();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{out}\n{err}");
    assert_eq!(out, "written on the host later\n");
}

#[test]
fn the_container_cannot_leave_the_bound_tree() {
    let Some(rt) = vmrun("the_container_cannot_leave_the_bound_tree") else {
        return;
    };
    let outside = scratch().join("outside");
    std::fs::create_dir_all(&outside).expect("dir");
    let secret = outside.join("secret");
    std::fs::write(&secret, "HOST-SECRET\n").expect("write");
    let bound = outside.join("bound");
    std::fs::create_dir_all(bound.join("sub")).expect("dir");
    // The guest knows the host paths and tries every way up and around.
    let script = format!(
        "cat /data/../secret /data/sub/../../secret 2>/dev/null; \
         ln -s {secret} /data/abs-link; cat /data/abs-link 2>/dev/null; \
         ln -s ../secret /data/rel-link; cat /data/rel-link 2>/dev/null; \
         ln -s ../../../../../../../../.. /data/up; cat /data/up{secret} 2>/dev/null; \
         mv /data/sub /data/renamed && ls /data/renamed/../../..; echo done",
        secret = s(&secret)
    );
    let b = bundle("escape", &script, |spec| {
        add_mount(
            spec,
            json!({"destination": "/data", "type": "bind", "source": bound, "options": ["rbind", "rw"]}),
        );
    });
    let out = run(&rt, &b, "escape");
    assert_eq!(code(&out), Some(0), "{}", out.describe());
    assert!(
        !out.stdout.contains("HOST-SECRET"),
        "the host file leaked: {}",
        out.describe()
    );
    assert!(out.stdout.contains("done"), "{}", out.describe());
    // A rename by the guest stays inside the bound tree; the links it made
    // are links on the host, never followed on the guest's behalf.
    assert!(
        bound.join("renamed").is_dir(),
        "the rename did not land in the bound tree"
    );
    assert!(std::fs::symlink_metadata(bound.join("abs-link"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "HOST-SECRET\n");
}

/// A one-page HTTP server on `addr`, answering `body` to every request.
fn serve_page(addr: &str, body: &'static str) -> u16 {
    let listener = TcpListener::bind((addr, 0)).expect("bind the page server");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut conn = conn;
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf);
            let _ = write!(
                conn,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn the_container_gets_the_netns_address_routes_mtu_and_reaches_the_host() {
    let test = "the_container_gets_the_netns_address_routes_mtu_and_reaches_the_host";
    let Some(rt) = vmrun(test) else {
        return;
    };
    let net = TestNetwork::new("t1", 91, 1400);
    let port = serve_page(&net.host_addr(), "page-from-the-host");
    // Names as a client gives them: a bound /etc/hosts (and resolv.conf,
    // whose server does not exist: the hosts file answers first).
    let names = scratch().join("net-out-names");
    std::fs::create_dir_all(&names).expect("mkdir");
    let hosts = names.join("hosts");
    std::fs::write(
        &hosts,
        format!(
            "127.0.0.1 localhost\n{} pages.vmrun.test\n",
            net.host_addr()
        ),
    )
    .expect("write hosts");
    let resolv = names.join("resolv.conf");
    std::fs::write(
        &resolv,
        "nameserver 10.99.91.53\noptions timeout:1 attempts:1\n",
    )
    .expect("write resolv.conf");
    let script = format!(
        "ip -4 -o addr show dev eth0 | awk '{{print $4}}'; \
         ip route | grep default; cat /sys/class/net/eth0/mtu; \
         printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc pages.vmrun.test {port} | tail -n 1 | sed 's/^/by-name: /'; echo; \
         printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc {host} {port} | tail -n 1",
        host = net.host_addr()
    );
    let b = bundle("net-out", &script, |spec| {
        join_netns(spec, &net.path());
        add_mount(
            spec,
            json!({"destination": "/etc/hosts", "type": "bind", "source": hosts, "options": ["rbind", "ro"]}),
        );
        add_mount(
            spec,
            json!({"destination": "/etc/resolv.conf", "type": "bind", "source": resolv, "options": ["rbind", "ro"]}),
        );
    });
    let out = run(&rt, &b, "net-out");
    assert_eq!(code(&out), Some(0), "{}", out.describe());
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some(format!("{}/24", net.guest_addr()).as_str()),
        "{}",
        out.describe()
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("default via {}", net.host_addr()))),
        "{}",
        out.describe()
    );
    assert!(lines.contains(&"1400"), "{}", out.describe());
    assert!(
        lines.contains(&"by-name: page-from-the-host"),
        "the name in the bound /etc/hosts did not resolve: {}",
        out.describe()
    );
    assert_eq!(
        lines.last().copied(),
        Some("page-from-the-host"),
        "{}",
        out.describe()
    );
    // Nothing of the plumbing is left once the container is gone.
    let qdiscs = Command::new("ip")
        .args([
            "netns",
            "exec",
            net.name(),
            "tc",
            "qdisc",
            "show",
            "dev",
            "eth0",
            "ingress",
        ])
        .output()
        .expect("tc");
    assert!(
        String::from_utf8_lossy(&qdiscs.stdout).trim().is_empty(),
        "ingress qdisc left: {}",
        String::from_utf8_lossy(&qdiscs.stdout)
    );
    let links = Command::new("ip")
        .args(["-n", net.name(), "-o", "link"])
        .output()
        .expect("ip");
    assert!(
        !String::from_utf8_lossy(&links.stdout).contains("vmtap"),
        "a tap is left: {}",
        String::from_utf8_lossy(&links.stdout)
    );
}

#[test]
fn the_host_reaches_a_server_in_the_container() {
    let test = "the_host_reaches_a_server_in_the_container";
    let Some(rt) = vmrun(test) else {
        return;
    };
    let net = TestNetwork::new("t2", 92, 1500);
    let script = "mkdir -p /www && echo served-from-the-guest > /www/index.html && \
                  exec httpd -f -p 8080 -h /www";
    let b = bundle("net-in", script, |spec| join_netns(spec, &net.path()));
    let out = rt.call_detached("run", &["-d", "--bundle", s(&b), "net-in"]);
    assert!(out.success(), "{}", out.describe());
    let addr = format!("{}:8080", net.guest_addr());
    let deadline = Instant::now() + boot_timeout();
    let mut page = String::new();
    while Instant::now() < deadline {
        if let Ok(mut conn) =
            TcpStream::connect_timeout(&addr.parse().expect("addr"), Duration::from_secs(5))
        {
            let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = conn.write_all(b"GET /index.html HTTP/1.0\r\n\r\n");
            page.clear();
            let _ = conn.read_to_string(&mut page);
            if page.contains("served-from-the-guest") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(rt.call("delete", &["--force", "net-in"]).success());
    assert!(
        page.contains("served-from-the-guest"),
        "no page from the guest: {page:?}"
    );
}

#[test]
fn a_namespace_path_of_another_type_is_refused_leaving_nothing() {
    let test = "a_namespace_path_of_another_type_is_refused_leaving_nothing";
    let Some(rt) = vmrun(test) else {
        return;
    };
    let b = bundle("ipc-path", "true", |spec| {
        let namespaces = spec["linux"]["namespaces"]
            .as_array_mut()
            .expect("namespaces");
        namespaces.retain(|ns| ns["type"] != "ipc");
        namespaces.push(json!({"type": "ipc", "path": "/proc/1/ns/ipc"}));
    });
    for verb in ["create", "run"] {
        let out = rt.call_detached(verb, &["--bundle", s(&b), "ipc"]);
        assert!(!out.success(), "{}", out.describe());
        assert!(
            out.stderr.contains("linux.namespaces["),
            "{}",
            out.describe()
        );
        assert!(out.stderr.contains("ipc"), "{}", out.describe());
        let left: Vec<_> = std::fs::read_dir(&rt.root)
            .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{verb} left {left:?} under the root");
    }
}
