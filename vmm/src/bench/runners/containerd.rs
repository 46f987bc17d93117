//! A private containerd for the `ctr-*` and `cri-*` peers, started by the
//! bench itself, never the machine's: its own `config.toml`, root, state,
//! sockets, fifo directory and runtime roots under the bench's work
//! directory, the `native` snapshotter (plain copies: works on ext4, tmpfs
//! and overlays alike), the plugins it does not need disabled, and the
//! bench's rootfs imported once as images ([`image_archive`]). The `ctr`
//! flavour has the CRI plugin off; the `cri` flavour has it on, with a
//! runtime handler per runtime (`runtime_type = "io.containerd.runc.v2"`,
//! `options.BinaryName`), CNI's bridge with a conf dir of its own, and
//! runs in a network namespace of its own (`ip netns add`, entered with
//! `nsenter --net`), where the bridge lives.
//!
//! Torn down on drop: pods and tasks removed, containerd stopped (SIGTERM,
//! then SIGKILL), leftover shims and VMMs killed, containers the runtimes
//! still know deleted, mounts below its directory detached, its cgroups
//! and network namespace removed, its directory deleted.
//!
//! [`image_archive`]: super::image_archive
//! The configuration: [`super::containerd_config`].

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::containerd_config::{
    cni_conflist, config_toml, CriHandler, CRI_NAMESPACE, PAUSE_COMMAND, PAUSE_IMAGE, SNAPSHOTTER,
    WORKLOAD_IMAGE,
};
use super::containerd_error::{io_err, setup, ContainerdError};
use super::image_archive::{self, bundle_env, ImageSpec};
use super::scrub::{
    delete_runtime_state, kill_processes_mentioning, remove_cgroup_tree, unmount_below,
};
use super::{which, Context};
use crate::bench::process::{run_timed, wait_child, Capture};

/// Where the runc v2 shims put their sockets (`s/<hash>`), whatever the
/// daemon's configuration says.
const SHIM_SOCKETS: &str = "/run/containerd";
/// Longest socket path (sockaddr_un holds 108 bytes with the NUL).
const MAX_SOCKET_PATH: usize = 100;

/// Which containerd: CRI off (`ctr` peers) or on (`cri` peers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// CRI plugin disabled, driven with `ctr`.
    Ctr,
    /// CRI plugin on, in a network namespace of its own.
    Cri,
}

/// A running private containerd (see the module docs).
#[derive(Debug)]
pub struct PrivateContainerd {
    dir: PathBuf,
    flavour: Flavour,
    daemon: Option<Child>,
    netns: Option<String>,
    namespace: String,
    ctr: PathBuf,
    /// Runtime binaries and the runtime roots they were given.
    runtimes: Vec<(PathBuf, PathBuf)>,
    /// The CRI client, to remove pods at the end.
    cri_client: Option<PathBuf>,
    /// Whether [`SHIM_SOCKETS`] was there before the daemon started.
    shim_dir_existed: bool,
    limit: Duration,
}

impl PrivateContainerd {
    /// Starts the `flavour` instance for `ctx` (its directory under the
    /// work directory) and imports the images; the handlers' runtimes are
    /// vmrun and, when installed, runc.
    pub fn start(flavour: Flavour, ctx: &Context) -> Result<Self, ContainerdError> {
        let containerd = which("containerd").ok_or(ContainerdError::Missing("containerd"))?;
        let ctr = which("ctr").ok_or(ContainerdError::Missing("ctr"))?;
        let (sub, namespace) = match flavour {
            Flavour::Ctr => ("ctd-ctr", format!("vmrb-{}", std::process::id())),
            Flavour::Cri => ("ctd-cri", CRI_NAMESPACE.to_string()),
        };
        // Absolute: containerd's config and the teardown's needle.
        let dir = std::path::absolute(ctx.workdir.join(sub)).map_err(io_err(format!(
            "the work directory {}",
            ctx.workdir.display()
        )))?;
        if dir.exists() {
            unmount_below(&dir);
            let _ = std::fs::remove_dir_all(&dir);
        }
        let mut runtimes = vec![("vmrun".to_string(), ctx.vmrun.clone())];
        runtimes.extend(ctx.runc.iter().map(|r| ("runc".to_string(), r.clone())));
        let mut me = Self {
            runtimes: runtimes
                .iter()
                .map(|(name, bin)| {
                    let root = match flavour {
                        Flavour::Ctr => dir.join("runc-root").join(name),
                        Flavour::Cri => dir.join("cri-runc-root").join(name),
                    };
                    (bin.clone(), root)
                })
                .collect(),
            dir,
            flavour,
            daemon: None,
            netns: None,
            namespace,
            ctr,
            cri_client: (flavour == Flavour::Cri)
                .then(super::cri::client_bin)
                .flatten(),
            shim_dir_existed: Path::new(SHIM_SOCKETS).exists(),
            limit: ctx.limit,
        };
        for sub in ["root", "state", "fifo", "image", "cni", "ipam", "pod-logs"] {
            let d = me.dir.join(sub);
            std::fs::create_dir_all(&d).map_err(io_err(format!("creating {}", d.display())))?;
        }
        if me.dir.join("containerd.sock.ttrpc").as_os_str().len() > MAX_SOCKET_PATH {
            return Err(ContainerdError::SocketTooLong(me.socket()));
        }
        let handlers: Vec<CriHandler> = match flavour {
            Flavour::Ctr => Vec::new(),
            Flavour::Cri => runtimes
                .iter()
                .map(|(name, bin)| CriHandler {
                    name: name.clone(),
                    binary: bin.clone(),
                    pod_annotations: vec![crate::runtime::vm_size::KATA_MEMORY.into()],
                })
                .collect(),
        };
        let config = me.dir.join("config.toml");
        std::fs::write(&config, config_toml(&me.dir, &handlers))
            .map_err(io_err(format!("writing {}", config.display())))?;
        let mut command = Command::new(&containerd);
        if flavour == Flavour::Cri {
            let conflist = me.dir.join("cni/10-vmrun-bench.conflist");
            std::fs::write(&conflist, cni_conflist(&me.dir.join("ipam")).to_string())
                .map_err(io_err(format!("writing {}", conflist.display())))?;
            let name = format!("vmrb-{}-cri", std::process::id());
            setup(Command::new("ip").args(["netns", "add", &name]), me.limit)?;
            me.netns = Some(name.clone());
            setup(
                Command::new("ip").args(["-n", &name, "link", "set", "lo", "up"]),
                me.limit,
            )?;
            command = Command::new("nsenter");
            command
                .arg(format!("--net=/run/netns/{name}"))
                .arg("--")
                .arg(&containerd);
        }
        let log_path = me.dir.join("containerd.log");
        let log =
            File::create(&log_path).map_err(io_err(format!("creating {}", log_path.display())))?;
        let log2 = log
            .try_clone()
            .map_err(io_err("duplicating the log's descriptor".into()))?;
        command
            .arg("--config")
            .arg(&config)
            // The shim passes containerd's environment on to the runtime.
            .env(crate::check::KERNEL_ENV, &ctx.kernel)
            .env(crate::check::INITRD_ENV, &ctx.initrd)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        me.daemon = Some(
            command
                .spawn()
                .map_err(io_err("cannot start containerd".into()))?,
        );
        me.wait_up()?;
        me.import(ctx)?;
        Ok(me)
    }

    fn wait_up(&mut self) -> Result<(), ContainerdError> {
        let deadline = Instant::now() + self.limit;
        loop {
            if let Some(status) = self
                .daemon
                .as_mut()
                .and_then(|d| d.try_wait().ok().flatten())
            {
                return Err(ContainerdError::Exited {
                    status: status.to_string(),
                    log: self.log_tail(),
                });
            }
            if self.socket().exists() && self.ctr_ok(&["version"]) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ContainerdError::NotUp {
                    secs: self.limit.as_secs(),
                    log: self.log_tail(),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The rootfs as the workload and pause images, imported once.
    fn import(&self, ctx: &Context) -> Result<(), ContainerdError> {
        let images = [
            ImageSpec {
                name: WORKLOAD_IMAGE.into(),
                cmd: ctx.workload.args.clone(),
            },
            ImageSpec {
                name: PAUSE_IMAGE.into(),
                cmd: PAUSE_COMMAND.map(String::from).to_vec(),
            },
        ];
        let env = bundle_env(&ctx.workload.bundle);
        let archive =
            image_archive::build(&ctx.workload.rootfs, &env, &images, &self.dir.join("image"))
                .map_err(ContainerdError::Archive)?;
        let mut command = self.ctr_command();
        command
            .args(["images", "import", "--snapshotter", SNAPSHOTTER])
            .arg(&archive);
        let imported = setup(&mut command, self.limit);
        let _ = std::fs::remove_file(&archive);
        imported
    }

    /// containerd's gRPC socket (the CRI endpoint too).
    pub fn socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    /// The containerd namespace its containers are in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The runtime root the shim gives `bin` (`--runc-root`).
    pub fn runtime_root(&self, bin: &Path) -> PathBuf {
        self.runtimes
            .iter()
            .find(|(b, _)| b == bin)
            .map(|(_, root)| root.clone())
            .unwrap_or_else(|| self.dir.join("runc-root/other"))
    }

    /// `ctr --address SOCKET -n NAMESPACE`, arguments to add.
    pub fn ctr_command(&self) -> Command {
        let mut command = Command::new(&self.ctr);
        command
            .arg("--address")
            .arg(self.socket())
            .args(["-n", &self.namespace]);
        command
    }

    fn ctr_ok(&self, args: &[&str]) -> bool {
        let mut command = self.ctr_command();
        command.args(args);
        run_timed(&mut command, &Capture::Pipes, None, self.limit).is_ok_and(|t| t.success())
    }

    fn ctr_words(&self, args: &[&str]) -> Vec<String> {
        let mut command = self.ctr_command();
        command.args(args);
        run_timed(&mut command, &Capture::Pipes, None, self.limit)
            .map(|t| t.stdout_tail.split_whitespace().map(String::from).collect())
            .unwrap_or_default()
    }

    /// The last lines of containerd's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// The pods (CRI), tasks and containers of a running daemon removed.
    fn remove_containers(&self, limit: Duration) {
        if let (Flavour::Cri, Some(client)) = (self.flavour, &self.cri_client) {
            let out = self.dir.join("cri-answer.json");
            super::cri::remove_all_pods(client, &self.socket(), limit, &out);
        }
        for id in self.ctr_words(&["task", "ls", "-q"]) {
            self.ctr_ok(&["task", "kill", "-a", "-s", "SIGKILL", &id]);
            self.ctr_ok(&["task", "delete", "-f", &id]);
        }
        for id in self.ctr_words(&["containers", "ls", "-q"]) {
            self.ctr_ok(&["containers", "rm", &id]);
        }
    }

    /// Everything down, in order (see the module docs).
    fn teardown(&mut self) {
        let limit = self.limit.min(Duration::from_secs(60));
        self.limit = limit;
        // A daemon that already exited (and was reaped) is not signalled:
        // its pid may be another process's by now.
        if let Some(mut daemon) = self.daemon.take() {
            if matches!(daemon.try_wait(), Ok(None)) {
                self.remove_containers(limit);
                if let Ok(pid) = i32::try_from(daemon.id()) {
                    // SAFETY: kill(2) of our own unreaped child; no memory
                    // involved.
                    unsafe { libc::kill(pid, libc::SIGTERM) };
                }
                if !matches!(
                    wait_child(&mut daemon, Duration::from_secs(20)),
                    Ok(Some(_))
                ) {
                    let _ = daemon.kill();
                    let _ = daemon.wait();
                }
            }
        }
        let needle = self.dir.display().to_string();
        kill_processes_mentioning(&needle);
        for (bin, root) in &self.runtimes {
            delete_runtime_state(bin, root, limit);
        }
        kill_processes_mentioning(&needle);
        unmount_below(&self.dir);
        remove_cgroup_tree(&format!("vmrb-{}", std::process::id()));
        remove_cgroup_tree(&format!("vmrb-{}-cri", std::process::id()));
        if let Some(name) = self.netns.take() {
            let _ = Command::new("ip").args(["netns", "del", &name]).status();
        }
        if !self.shim_dir_existed {
            // The shims' socket directory, when they made it (only if empty).
            let _ = std::fs::remove_dir(Path::new(SHIM_SOCKETS).join("s"));
            let _ = std::fs::remove_dir(SHIM_SOCKETS);
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!("cannot remove {}: {e}", self.dir.display());
        }
    }
}

impl Drop for PrivateContainerd {
    fn drop(&mut self) {
        self.teardown();
    }
}
