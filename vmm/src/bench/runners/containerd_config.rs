//! The configuration of the bench's private containerd: `config.toml`
//! (everything under its directory; the CRI plugin with a runtime handler
//! per runtime, or disabled) and the CRI pods' CNI network.

use std::path::{Path, PathBuf};

/// The snapshotter every container of the bench's containerd uses.
pub const SNAPSHOTTER: &str = "native";
/// The workload image (the bench's rootfs running the workload).
pub const WORKLOAD_IMAGE: &str = "vmrun.bench/workload:latest";
/// The CRI pods' sandbox image (the same rootfs).
pub const PAUSE_IMAGE: &str = "vmrun.bench/pause:latest";
/// Its command: sleeps until SIGTERM/SIGINT, then exits 0.
pub const PAUSE_COMMAND: [&str; 3] = [
    "sh",
    "-c",
    "trap 'exit 0' TERM INT; sleep 2147483647 & wait",
];
/// The namespace containerd's CRI plugin works in.
pub const CRI_NAMESPACE: &str = "k8s.io";
/// The shim every container runs under.
pub const SHIM: &str = "io.containerd.runc.v2";
/// The CRI pods' bridge (inside containerd's own network namespace).
pub const CRI_BRIDGE: &str = "vmrbcri0";
/// The CRI pods' subnet.
pub const CRI_SUBNET: &str = "10.89.79.0/24";

/// A CRI runtime handler: its name and the runtime binary the shim runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriHandler {
    /// The handler's name (RunPodSandbox's `runtime_handler`).
    pub name: String,
    /// `options.BinaryName`.
    pub binary: PathBuf,
    /// `pod_annotations`: the annotations passed on to the runtime.
    pub pod_annotations: Vec<String>,
}

/// A TOML basic string holding `value` (JSON's escapes are TOML's).
pub fn toml_string(value: &str) -> String {
    serde_json::Value::from(value).to_string()
}

/// containerd's config: everything under `dir`; the CRI plugin with
/// `handlers` (their roots under `dir/cri-runc-root`), or disabled when
/// there are none.
pub fn config_toml(dir: &Path, handlers: &[CriHandler]) -> String {
    let p = |sub: &str| toml_string(&dir.join(sub).display().to_string());
    let mut disabled = vec![
        "io.containerd.snapshotter.v1.aufs",
        "io.containerd.snapshotter.v1.btrfs",
        "io.containerd.snapshotter.v1.zfs",
        "io.containerd.snapshotter.v1.devmapper",
        "io.containerd.internal.v1.opt",
        "io.containerd.tracing.processor.v1.otlp",
    ];
    if handlers.is_empty() {
        disabled.push("io.containerd.grpc.v1.cri");
    }
    let disabled: Vec<String> = disabled.iter().map(|d| toml_string(d)).collect();
    let mut text = format!(
        "version = 2\nroot = {}\nstate = {}\ndisabled_plugins = [{}]\n\n[grpc]\n  address = {}\n\n[ttrpc]\n  address = {}\n\n[debug]\n  level = \"info\"\n",
        p("root"),
        p("state"),
        disabled.join(", "),
        p("containerd.sock"),
        p("containerd.sock.ttrpc"),
    );
    if handlers.is_empty() {
        return text;
    }
    let cri = "[plugins.\"io.containerd.grpc.v1.cri\"";
    text.push_str(&format!(
        "\n{cri}]\n  sandbox_image = {}\n  stream_server_address = \"127.0.0.1\"\n  stream_server_port = \"0\"\n  enable_selinux = false\n  restrict_oom_score_adj = true\n  netns_mounts_under_state_dir = true\n{cri}.containerd]\n  snapshotter = {}\n  default_runtime_name = {}\n",
        toml_string(PAUSE_IMAGE),
        toml_string(SNAPSHOTTER),
        toml_string(&handlers[0].name),
    ));
    for h in handlers {
        let key = format!("{cri}.containerd.runtimes.{}", toml_string(&h.name));
        let annotations: Vec<String> = h.pod_annotations.iter().map(|a| toml_string(a)).collect();
        text.push_str(&format!(
            "{key}]\n  runtime_type = {}\n  pod_annotations = [{}]\n{key}.options]\n  BinaryName = {}\n  Root = {}\n  SystemdCgroup = false\n",
            toml_string(SHIM),
            annotations.join(", "),
            toml_string(&h.binary.display().to_string()),
            toml_string(&dir.join("cri-runc-root").join(&h.name).display().to_string()),
        ));
    }
    text.push_str(&format!(
        "{cri}.cni]\n  bin_dir = \"/usr/lib/cni\"\n  conf_dir = {}\n  max_conf_num = 1\n",
        p("cni")
    ));
    text
}

/// The CNI network of the CRI pods: a bridge and host-local IPAM, state
/// under `ipam_dir`; no masquerading, no port maps (no iptables).
pub fn cni_conflist(ipam_dir: &Path) -> serde_json::Value {
    let gateway = CRI_SUBNET.replace(".0/24", ".1");
    serde_json::json!({
        "cniVersion": "0.4.0",
        "name": "vmrun-bench",
        "plugins": [{
            "type": "bridge", "bridge": CRI_BRIDGE, "isGateway": true, "ipMasq": false,
            "ipam": {
                "type": "host-local", "dataDir": ipam_dir,
                "routes": [{ "dst": "0.0.0.0/0" }],
                "ranges": [[{ "subnet": CRI_SUBNET, "gateway": gateway }]]
            }
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The TOML's `key = value` lines under the table `table` (exact header).
    fn table<'a>(text: &'a str, header: &str) -> Vec<&'a str> {
        text.lines()
            .skip_while(|l| l.trim() != header)
            .skip(1)
            .take_while(|l| !l.trim_start().starts_with('['))
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect()
    }

    #[test]
    fn the_ctr_config_keeps_everything_under_its_dir_and_turns_cri_off() {
        let text = config_toml(Path::new("/w/ctd-ctr"), &[]);
        assert!(text.starts_with("version = 2\n"), "{text}");
        assert!(text.contains("root = \"/w/ctd-ctr/root\"\n"), "{text}");
        assert!(text.contains("state = \"/w/ctd-ctr/state\"\n"), "{text}");
        assert_eq!(
            table(&text, "[grpc]"),
            ["address = \"/w/ctd-ctr/containerd.sock\""]
        );
        assert_eq!(
            table(&text, "[ttrpc]"),
            ["address = \"/w/ctd-ctr/containerd.sock.ttrpc\""]
        );
        let disabled = text
            .lines()
            .find(|l| l.starts_with("disabled_plugins"))
            .unwrap();
        for plugin in [
            "io.containerd.grpc.v1.cri",
            "io.containerd.snapshotter.v1.btrfs",
            "io.containerd.internal.v1.opt",
        ] {
            assert!(disabled.contains(&format!("\"{plugin}\"")), "{disabled}");
        }
        assert!(!text.contains("[plugins"), "{text}");
        // No path of the machine's own containerd anywhere.
        assert!(!text.contains("/run/containerd"), "{text}");
        assert!(!text.contains("/var/lib/containerd"), "{text}");
    }

    #[test]
    fn the_cri_config_has_a_handler_per_runtime() {
        let handlers = [
            CriHandler {
                name: "vmrun".into(),
                binary: "/opt/x/vmrun".into(),
                pod_annotations: vec!["io.katacontainers.config.hypervisor.default_memory".into()],
            },
            CriHandler {
                name: "runc".into(),
                binary: "/usr/sbin/runc".into(),
                pod_annotations: Vec::new(),
            },
        ];
        let text = config_toml(Path::new("/w/ctd-cri"), &handlers);
        let disabled = text
            .lines()
            .find(|l| l.starts_with("disabled_plugins"))
            .unwrap();
        assert!(!disabled.contains("grpc.v1.cri"), "{disabled}");
        let cri = "[plugins.\"io.containerd.grpc.v1.cri\"";
        let top = table(&text, &format!("{cri}]"));
        assert!(
            top.contains(&"sandbox_image = \"vmrun.bench/pause:latest\""),
            "{text}"
        );
        assert!(
            top.contains(&"netns_mounts_under_state_dir = true"),
            "{text}"
        );
        let containerd = table(&text, &format!("{cri}.containerd]"));
        assert!(containerd.contains(&"snapshotter = \"native\""), "{text}");
        assert!(
            containerd.contains(&"default_runtime_name = \"vmrun\""),
            "{text}"
        );
        let vmrun = format!("{cri}.containerd.runtimes.\"vmrun\"");
        assert_eq!(
            table(&text, &format!("{vmrun}]")),
            [
                "runtime_type = \"io.containerd.runc.v2\"",
                "pod_annotations = [\"io.katacontainers.config.hypervisor.default_memory\"]"
            ]
        );
        assert_eq!(
            table(&text, &format!("{vmrun}.options]")),
            [
                "BinaryName = \"/opt/x/vmrun\"",
                "Root = \"/w/ctd-cri/cri-runc-root/vmrun\"",
                "SystemdCgroup = false"
            ]
        );
        let runc = table(
            &text,
            &format!("{cri}.containerd.runtimes.\"runc\".options]"),
        );
        assert_eq!(runc[0], "BinaryName = \"/usr/sbin/runc\"");
        assert!(table(&text, &format!("{cri}.cni]")).contains(&"conf_dir = \"/w/ctd-cri/cni\""));
    }

    #[test]
    fn toml_strings_are_escaped_and_the_network_is_a_private_bridge() {
        assert_eq!(toml_string(r#"a"b\c"#), r#""a\"b\\c""#);
        let net = cni_conflist(Path::new("/w/ipam"));
        let bridge = &net["plugins"][0];
        assert_eq!(bridge["bridge"], CRI_BRIDGE);
        assert_eq!(bridge["ipMasq"], false);
        assert_eq!(bridge["ipam"]["dataDir"], "/w/ipam");
        assert_eq!(bridge["ipam"]["ranges"][0][0]["gateway"], "10.89.79.1");
        assert_eq!(net["plugins"].as_array().map(Vec::len), Some(1));
    }
}
