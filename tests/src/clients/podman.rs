//! A private podman 4.3: its own storage (vfs) and run root, containers.conf
//! (cgroupfs, CNI, the runtime under test as the `[engine.runtimes]`
//! entry `vmrun`, which `runtime_supports_json` names), its own default
//! bridge network, a cgroup parent of its own; every command run inside a
//! [`PrivateNet`]. Torn down on drop.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::clients::cni::bridge_conflist;
use crate::clients::command::run_client;
use crate::clients::images::PAUSE_IMAGE;
use crate::clients::leftovers::{kill_processes_mentioning, remove_cgroup_tree, unmount_below};
use crate::clients::netns::PrivateNet;
use crate::clients::runtime_choice::RuntimeUnderTest;
use crate::clients::toml_text::toml_string;
use crate::process::RunOutput;

/// The containers.conf runtime entry that names the runtime under test.
pub const RUNTIME_ENTRY: &str = "vmrun";
/// The default network's name.
pub const NETWORK: &str = "vmrt";
/// Its bridge (inside the test's netns).
pub const BRIDGE: &str = "vmrt0";
/// Its subnet.
pub const SUBNET: &str = "10.89.77.0/24";
/// This host's limits, passed to every container: without them podman
/// asks for the caller's nofile/nproc, more than a container gets here.
pub const ULIMITS: [&str; 4] = [
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

/// A private podman environment.
#[derive(Debug)]
pub struct PrivatePodman {
    dir: PathBuf,
    runtime: RuntimeUnderTest,
    cgroup_parent: String,
    limit: Duration,
    net: PrivateNet,
}

impl PrivatePodman {
    /// Writes the configuration under `dir` (created) for the runtime under
    /// test; `limit` guards each podman command.
    pub fn new(dir: &Path, runtime: &RuntimeUnderTest, limit: Duration) -> Self {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        for sub in ["root", "runroot", "tmp", "cni", "ipam", "volumes", "xdg"] {
            std::fs::create_dir_all(dir.join(sub)).expect("create a podman dir");
        }
        let podman = Self {
            dir: dir.to_path_buf(),
            runtime: runtime.clone(),
            cgroup_parent: format!("/vmrt-podman-{}-{n}", std::process::id()),
            limit,
            net: PrivateNet::create("pm"),
        };
        let conflist = bridge_conflist(NETWORK, BRIDGE, SUBNET, &dir.join("ipam"), true);
        std::fs::write(dir.join("cni/vmrt.conflist"), conflist.to_string())
            .expect("write the CNI conf");
        std::fs::write(dir.join("containers.conf"), containers_conf(dir, runtime))
            .expect("containers.conf");
        std::fs::write(dir.join("storage.conf"), storage_conf(dir)).expect("storage.conf");
        std::fs::write(
            dir.join("registries.conf"),
            "unqualified-search-registries = []\n",
        )
        .expect("registries.conf");
        podman
    }

    /// The network namespace podman and its containers' bridge live in.
    pub fn net(&self) -> &PrivateNet {
        &self.net
    }

    /// The runtime under test.
    pub fn runtime(&self) -> &RuntimeUnderTest {
        &self.runtime
    }

    /// A new empty host directory under the environment (for `-v`).
    pub fn host_dir(&self, name: &str) -> PathBuf {
        let dir = self.dir.join("host").join(name);
        std::fs::create_dir_all(&dir).expect("create a host dir");
        dir
    }

    /// `podman <private flags> args...` inside the test's netns.
    pub fn command(&self, args: &[&str]) -> Command {
        let d = |sub: &str| self.dir.join(sub).display().to_string();
        let mut command = self.net.command("podman", &[]);
        command
            .env("CONTAINERS_CONF", d("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", d("storage.conf"))
            .env("CONTAINERS_REGISTRIES_CONF", d("registries.conf"))
            .env("TMPDIR", d("tmp"))
            .env("XDG_RUNTIME_DIR", d("xdg"))
            .args(["--root", &d("root"), "--runroot", &d("runroot")])
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "file", "--tmpdir", &d("tmp")])
            .args(["--network-config-dir", &d("cni")])
            .args(args);
        command
    }

    /// Runs `podman args...`.
    pub fn podman(&self, args: &[&str]) -> RunOutput {
        run_client(&mut self.command(args), self.limit)
    }

    /// Runs `podman args...` and panics (with its output) unless it exits 0;
    /// returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.podman(args);
        assert!(out.success(), "podman failed:\n{}", out.describe());
        out.stdout
    }

    /// Flags for a container outside a pod: [`ULIMITS`] and the cgroup parent.
    pub fn container_flags(&self) -> Vec<String> {
        let mut flags: Vec<String> = ULIMITS.iter().map(|s| s.to_string()).collect();
        flags.extend(self.pod_flags());
        flags
    }

    /// Flags for `pod create`: the cgroup parent.
    pub fn pod_flags(&self) -> Vec<String> {
        vec!["--cgroup-parent".into(), self.cgroup_parent.clone()]
    }

    /// Flags for a container in a pod (the pod gives the cgroup parent).
    pub fn member_flags(&self) -> Vec<String> {
        ULIMITS.iter().map(|s| s.to_string()).collect()
    }

    /// `podman load` of `archive`. Panics on failure (a set-up error).
    pub fn load_images(&self, archive: &Path) {
        self.ok(&["load", "-i", &archive.display().to_string()]);
    }
}

impl Drop for PrivatePodman {
    fn drop(&mut self) {
        let ids = self.podman(&["ps", "-aq", "--no-trunc"]).stdout;
        let _ = self.podman(&["rm", "--all", "--force", "--time", "0"]);
        let _ = self.podman(&["pod", "rm", "--all", "--force"]);
        kill_processes_mentioning(&self.dir.display().to_string());
        // podman runs the runtime without --root: its state is in the
        // runtime's default root, keyed by podman's container ids.
        for id in ids.split_whitespace() {
            let _ = run_client(
                Command::new(&self.runtime.bin).args(["delete", "--force", id]),
                self.limit,
            );
        }
        unmount_below(&self.dir);
        remove_cgroup_tree(&self.cgroup_parent);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// containers.conf for the environment under `dir`.
fn containers_conf(dir: &Path, runtime: &RuntimeUnderTest) -> String {
    let d = |sub: &str| toml_string(&dir.join(sub).display().to_string());
    format!(
        r#"[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
log_driver = "k8s-file"

[network]
network_backend = "cni"
cni_plugin_dirs = ["/usr/lib/cni"]
network_config_dir = {cni}
default_network = {network}

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = {events}
tmp_dir = {tmp}
volume_path = {volumes}
infra_image = {pause}
runtime = {entry}
runtime_supports_json = ["crun", "runc", "kata", "runsc", "krun", {entry}]

[engine.runtimes]
{entry_key} = [{bin}]
"#,
        cni = d("cni"),
        network = toml_string(NETWORK),
        events = d("events.log"),
        tmp = d("tmp"),
        volumes = d("volumes"),
        pause = toml_string(PAUSE_IMAGE),
        entry = toml_string(RUNTIME_ENTRY),
        entry_key = RUNTIME_ENTRY,
        bin = toml_string(&runtime.bin.display().to_string()),
    )
}

/// storage.conf: vfs, graphroot and runroot under `dir`.
fn storage_conf(dir: &Path) -> String {
    let d = |sub: &str| toml_string(&dir.join(sub).display().to_string());
    format!(
        "[storage]\ndriver = \"vfs\"\ngraphroot = {}\nrunroot = {}\n",
        d("root"),
        d("runroot")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_conf_names_the_runtime_entry_and_json_support() {
        let runtime = RuntimeUnderTest {
            name: "vmrun",
            bin: PathBuf::from("/opt/x/vmrun"),
        };
        let text = containers_conf(Path::new("/tmp/p"), &runtime);
        assert!(
            text.contains(
                r#"runtime_supports_json = ["crun", "runc", "kata", "runsc", "krun", "vmrun"]"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"vmrun = ["/opt/x/vmrun"]"#), "{text}");
        assert!(text.contains(r#"runtime = "vmrun""#), "{text}");
        assert!(
            text.contains(r#"network_config_dir = "/tmp/p/cni""#),
            "{text}"
        );
        assert!(storage_conf(Path::new("/tmp/p")).contains(r#"driver = "vfs""#));
    }
}
