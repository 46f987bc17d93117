//! CNI network configurations for the clients: a bridge network whose
//! bridge, subnet and IPAM state are the test's own.

use std::path::Path;

use serde_json::{json, Value};

/// A bridge network (`bridge` + `host-local` IPAM + `portmap`, and for
/// podman `firewall` + `tuning` as its default network has): a `/24`
/// `subnet` such as `10.89.7.0/24` whose `.1` is the gateway on the host
/// side, IPAM state under `ipam_dir`.
pub fn bridge_conflist(
    name: &str,
    bridge: &str,
    subnet: &str,
    ipam_dir: &Path,
    podman: bool,
) -> Value {
    let gateway = gateway_of(subnet);
    let mut plugins = vec![
        json!({
            "type": "bridge",
            "bridge": bridge,
            "isGateway": true,
            "ipMasq": true,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "dataDir": ipam_dir,
                "routes": [{ "dst": "0.0.0.0/0" }],
                "ranges": [[{ "subnet": subnet, "gateway": gateway }]]
            }
        }),
        json!({ "type": "portmap", "capabilities": { "portMappings": true } }),
    ];
    if podman {
        plugins.push(json!({ "type": "firewall" }));
        plugins.push(json!({ "type": "tuning" }));
    }
    json!({ "cniVersion": "0.4.0", "name": name, "plugins": plugins })
}

/// The `.1` address of a `/24` written `a.b.c.0/24`.
pub fn gateway_of(subnet: &str) -> String {
    let net = subnet.split('/').next().unwrap_or(subnet);
    let prefix = net.rsplit_once('.').map_or(net, |(p, _)| p);
    format!("{prefix}.1")
}

/// True if `ip` (dotted quad) lies in the `/24` `subnet`.
pub fn in_subnet(ip: &str, subnet: &str) -> bool {
    let prefix = gateway_of(subnet);
    let prefix = prefix.trim_end_matches('1');
    ip.starts_with(prefix) && ip.len() > prefix.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_is_the_first_address() {
        assert_eq!(gateway_of("10.89.7.0/24"), "10.89.7.1");
        assert!(in_subnet("10.89.7.23", "10.89.7.0/24"));
        assert!(!in_subnet("10.89.8.23", "10.89.7.0/24"));
        assert!(!in_subnet("10.89.7.", "10.89.7.0/24"));
    }

    #[test]
    fn podman_gets_firewall_and_tuning_too() {
        let dir = Path::new("/x");
        let plain = bridge_conflist("n", "b0", "10.89.7.0/24", dir, false);
        let full = bridge_conflist("n", "b0", "10.89.7.0/24", dir, true);
        assert_eq!(plain["plugins"].as_array().map(Vec::len), Some(2));
        assert_eq!(full["plugins"][3]["type"], "tuning");
        assert_eq!(
            full["plugins"][0]["ipam"]["ranges"][0][0]["gateway"],
            "10.89.7.1"
        );
    }
}
