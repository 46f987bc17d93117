//! A private containerd 1.6: its own root, state, socket and config (the
//! CRI plugin with a runtime handler `vmrun` = the runtime under test
//! through the runc v2 shim, the `native` snapshotter, CNI's bridge from
//! /usr/lib/cni with a conf dir of its own), running inside a
//! [`PrivateNet`]; `ctr` pointed at it; torn down on drop.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::clients::cni::bridge_conflist;
use crate::clients::command::{poll, run_client};
use crate::clients::cri::CriClient;
use crate::clients::leftovers::{kill_processes_mentioning, remove_cgroup_tree, unmount_below};
use crate::clients::netns::PrivateNet;
use crate::clients::runtime_choice::RuntimeUnderTest;
use crate::clients::toml_text::toml_string;
use crate::process::RunOutput;

/// The CRI runtime handler that names the runtime under test.
pub const CRI_HANDLER: &str = "vmrun";
/// The containerd namespace the CRI plugin works in.
pub const CRI_NAMESPACE: &str = "k8s.io";
/// The snapshotter (plain copies: works on ext4, tmpfs and overlays alike).
pub const SNAPSHOTTER: &str = "native";
/// The CRI pods' network (inside the test's own netns).
pub const CRI_SUBNET: &str = "10.89.78.0/24";
/// The CRI pods' bridge.
pub const CRI_BRIDGE: &str = "vmrtcri0";

/// A running private containerd.
#[derive(Debug)]
pub struct PrivateContainerd {
    dir: PathBuf,
    runtime: RuntimeUnderTest,
    daemon: Child,
    namespace: String,
    limit: Duration,
    net: PrivateNet,
}

impl PrivateContainerd {
    /// Writes the configuration under `dir` (created) and starts containerd
    /// with the runtime under test; returns once it answers `ctr version`.
    /// `limit` is the hang guard of every client call. Panics if it does
    /// not come up (a set-up error, with its log).
    pub fn start(dir: &Path, runtime: &RuntimeUnderTest, limit: Duration) -> Self {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        for sub in [
            "root",
            "state",
            "cni",
            "ipam",
            "runc-root",
            "cri-runc-root",
            "fifo",
            "pod-logs",
        ] {
            std::fs::create_dir_all(dir.join(sub)).expect("create a containerd dir");
        }
        let net = PrivateNet::create("ctd");
        let conflist =
            bridge_conflist("vmrt-cri", CRI_BRIDGE, CRI_SUBNET, &dir.join("ipam"), false);
        std::fs::write(dir.join("cni/10-vmrt-cri.conflist"), conflist.to_string())
            .expect("write the CNI conf");
        std::fs::write(dir.join("config.toml"), config_toml(dir, runtime))
            .expect("write config.toml");
        let log = File::create(dir.join("containerd.log")).expect("create containerd.log");
        let daemon = net
            .command(
                "containerd",
                &["--config", &dir.join("config.toml").display().to_string()],
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup the log"))
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let containerd = Self {
            dir: dir.to_path_buf(),
            runtime: runtime.clone(),
            daemon,
            namespace: format!("vmrt-{}-{n}", std::process::id()),
            limit,
            net,
        };
        let up = poll(Duration::from_secs(60), || {
            (containerd.socket().exists() && containerd.ctr(&["version"]).success()).then_some(())
        });
        assert!(
            up.is_some(),
            "containerd did not come up:\n{}",
            containerd.log()
        );
        containerd
    }

    /// containerd's gRPC socket (the CRI endpoint too).
    pub fn socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    /// The namespace `ctr` works in (cgroups of `ctr run` go under it).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The network namespace containerd (and so CNI's bridge) lives in.
    pub fn net(&self) -> &PrivateNet {
        &self.net
    }

    /// The runtime under test.
    pub fn runtime(&self) -> &RuntimeUnderTest {
        &self.runtime
    }

    /// Where CRI containers' logs go (the pods' `log_directory`).
    pub fn pod_log_dir(&self) -> PathBuf {
        self.dir.join("pod-logs")
    }

    /// The cgroup parent for CRI pods (removed at teardown).
    pub fn cri_cgroup_parent(&self) -> String {
        format!("/{}-cri", self.namespace)
    }

    /// `ctr --address SOCKET -n NAMESPACE args...`.
    pub fn ctr_command(&self, namespace: &str, args: &[&str]) -> Command {
        let mut command = Command::new("ctr");
        command
            .arg("--address")
            .arg(self.socket())
            .args(["-n", namespace])
            .args(args);
        command
    }

    /// `ctr args...` in the test's namespace.
    pub fn ctr(&self, args: &[&str]) -> RunOutput {
        self.ctr_in(&self.namespace, args)
    }

    /// `ctr args...` in `namespace`.
    pub fn ctr_in(&self, namespace: &str, args: &[&str]) -> RunOutput {
        run_client(&mut self.ctr_command(namespace, args), self.limit)
    }

    /// The flags `ctr run` needs here: the snapshotter, the runtime under
    /// test as the runc binary, its root and the fifo dir under `dir`.
    pub fn run_flags(&self) -> Vec<String> {
        vec![
            "--snapshotter".into(),
            SNAPSHOTTER.into(),
            "--runc-binary".into(),
            self.runtime.bin.display().to_string(),
            "--runc-root".into(),
            self.dir.join("runc-root").display().to_string(),
            "--fifo-dir".into(),
            self.dir.join("fifo").display().to_string(),
        ]
    }

    /// The flags `ctr task exec` needs here (the fifo dir).
    pub fn exec_flags(&self) -> Vec<String> {
        vec![
            "--fifo-dir".into(),
            self.dir.join("fifo").display().to_string(),
        ]
    }

    /// `ctr images import` of `archive` into `namespace`, unpacked for the
    /// snapshotter. Panics on failure (a set-up error).
    pub fn import_images(&self, namespace: &str, archive: &Path) {
        let archive = archive.display().to_string();
        let out = self.ctr_in(
            namespace,
            &["images", "import", "--snapshotter", SNAPSHOTTER, &archive],
        );
        assert!(out.success(), "ctr images import:\n{}", out.describe());
    }

    /// The end of containerd's log, for messages.
    pub fn log(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(80)..].join("\n")
    }

    /// Every task and container of `namespace` killed and deleted.
    fn remove_tasks(&self, namespace: &str) {
        let tasks = self.ctr_in(namespace, &["task", "ls", "-q"]);
        for id in tasks.stdout.split_whitespace() {
            let _ = self.ctr_in(namespace, &["task", "kill", "-a", "-s", "SIGKILL", id]);
            let _ = self.ctr_in(namespace, &["task", "delete", "-f", id]);
        }
        let containers = self.ctr_in(namespace, &["containers", "ls", "-q"]);
        for id in containers.stdout.split_whitespace() {
            let _ = self.ctr_in(namespace, &["containers", "rm", id]);
        }
    }

    /// Containers the runtime still knows under `root` deleted by force.
    fn remove_runtime_state(&self, root: &Path) {
        let mut roots = vec![root.to_path_buf()];
        if let Ok(entries) = std::fs::read_dir(root) {
            roots.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
        }
        for root in roots {
            let root = root.display().to_string();
            let listed = run_client(
                Command::new(&self.runtime.bin).args(["--root", &root, "list", "-q"]),
                self.limit,
            );
            for id in listed.stdout.split_whitespace() {
                let _ = run_client(
                    Command::new(&self.runtime.bin)
                        .args(["--root", &root, "delete", "--force", id]),
                    self.limit,
                );
            }
        }
    }
}

impl Drop for PrivateContainerd {
    fn drop(&mut self) {
        if let Some(cri) = CriClient::find(&self.socket(), self.limit) {
            cri.remove_all_pods();
        }
        let namespace = self.namespace.clone();
        self.remove_tasks(&namespace);
        self.remove_tasks(CRI_NAMESPACE);
        // SAFETY: kill(2) on our own child's pid, no memory involved.
        unsafe { libc::kill(self.daemon.id() as i32, libc::SIGTERM) };
        let stopped = poll(Duration::from_secs(20), || {
            self.daemon.try_wait().ok().flatten()
        });
        if stopped.is_none() {
            let _ = self.daemon.kill();
            let _ = self.daemon.wait();
        }
        let dir = self.dir.display().to_string();
        kill_processes_mentioning(&dir);
        self.remove_runtime_state(&self.dir.join("runc-root"));
        self.remove_runtime_state(&self.dir.join("cri-runc-root"));
        kill_processes_mentioning(&dir);
        unmount_below(&self.dir);
        remove_cgroup_tree(&self.namespace);
        remove_cgroup_tree(&self.cri_cgroup_parent());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// containerd's config: everything under `dir`, the CRI plugin with the
/// `vmrun` handler. `restrict_oom_score_adj`: these hosts refuse a lower
/// oom_score_adj than the caller's (the sandbox asks for -998).
fn config_toml(dir: &Path, runtime: &RuntimeUnderTest) -> String {
    let p = |sub: &str| toml_string(&dir.join(sub).display().to_string());
    format!(
        r#"version = 2
root = {root}
state = {state}
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.internal.v1.opt", "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = {socket}

[ttrpc]
  address = {ttrpc}

[debug]
  level = "info"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = {pause}
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = {snapshotter}
    default_runtime_name = {handler}
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{handler_key}]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{handler_key}.options]
        BinaryName = {binary}
        Root = {cri_runc_root}
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = {cni}
"#,
        root = p("root"),
        state = p("state"),
        socket = p("containerd.sock"),
        ttrpc = p("containerd.sock.ttrpc"),
        pause = toml_string(crate::clients::images::PAUSE_IMAGE),
        snapshotter = toml_string(SNAPSHOTTER),
        handler = toml_string(CRI_HANDLER),
        handler_key = CRI_HANDLER,
        binary = toml_string(&runtime.bin.display().to_string()),
        cri_runc_root = p("cri-runc-root"),
        cni = p("cni"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_points_the_handler_at_the_runtime_under_test() {
        let runtime = RuntimeUnderTest {
            name: "vmrun",
            bin: PathBuf::from("/opt/x/vmrun"),
        };
        let text = config_toml(Path::new("/tmp/t"), &runtime);
        assert!(text.contains(r#"BinaryName = "/opt/x/vmrun""#), "{text}");
        assert!(
            text.contains(r#"address = "/tmp/t/containerd.sock""#),
            "{text}"
        );
        assert!(text.contains(r#"runtimes.vmrun.options]"#), "{text}");
        assert!(text.contains(r#"snapshotter = "native""#), "{text}");
    }
}
