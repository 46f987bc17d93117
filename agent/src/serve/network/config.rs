//! `Create.network` checked before anything is touched: every field parsed
//! into a [`NicConfig`], errors naming the field
//! (`network[0].addresses[1]: ...`).

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use anyhow::{anyhow, bail, Result};
use vmrun_protocol::{NetInterface, NetRoute};

/// Longest interface name the kernel takes (`IFNAMSIZ` - 1).
pub const MAX_IFNAME_LEN: usize = 15;
/// Smallest MTU accepted: IPv4's minimum datagram size (RFC 791).
pub const MIN_MTU: u16 = 68;

/// An Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// Parses `aa:bb:cc:dd:ee:ff` (hex digits in either case).
    pub fn parse(text: &str) -> Option<Self> {
        let mut bytes = [0u8; 6];
        let mut parts = text.split(':');
        for byte in &mut bytes {
            let part = parts.next()?;
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            *byte = u8::from_str_radix(part, 16).ok()?;
        }
        parts.next().is_none().then_some(Self(bytes))
    }

    /// Not all zeros (`lo` has that) and not a multicast address.
    pub fn is_unicast(&self) -> bool {
        self.0 != [0; 6] && self.0[0] & 1 == 0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// An address with a prefix length (`10.88.0.5/16`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The address.
    pub addr: IpAddr,
    /// The prefix length (at most 32 for IPv4, 128 for IPv6).
    pub prefix: u8,
}

impl Cidr {
    /// Parses `ADDRESS/PREFIX`.
    pub fn parse(text: &str) -> Result<Self> {
        let (addr, prefix) = text
            .split_once('/')
            .ok_or_else(|| anyhow!("{text:?} is not in CIDR form (ADDRESS/PREFIX)"))?;
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| anyhow!("{addr:?} is not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = (!prefix.is_empty()
            && prefix.len() <= 3
            && prefix.bytes().all(|b| b.is_ascii_digit()))
        .then(|| prefix.parse::<u8>().ok())
        .flatten()
        .filter(|p| *p <= max)
        .ok_or_else(|| anyhow!("prefix length {prefix:?} is not a number from 0 to {max}"))?;
        Ok(Self { addr, prefix })
    }

    /// Are the bits after the prefix zero (a network, not a host in it)?
    pub fn is_network(&self) -> bool {
        match self.addr {
            IpAddr::V4(v4) => {
                let host_bits = u32::MAX.checked_shr(self.prefix.into()).unwrap_or(0);
                u32::from(v4) & host_bits == 0
            }
            IpAddr::V6(v6) => {
                let host_bits = u128::MAX.checked_shr(self.prefix.into()).unwrap_or(0);
                u128::from(v6) & host_bits == 0
            }
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A route to add through an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteConfig {
    /// Where to (`0.0.0.0/0`: the default route).
    pub destination: Cidr,
    /// The next hop; `None`: the destination is on the link.
    pub gateway: Option<IpAddr>,
}

impl fmt::Display for RouteConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.destination)?;
        if let Some(gateway) = self.gateway {
            write!(f, " via {gateway}")?;
        }
        Ok(())
    }
}

/// One checked entry of `Create.network`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicConfig {
    /// Its field in the request (`network[0]`), for errors.
    pub field: String,
    /// The guest NIC's MAC address.
    pub mac: MacAddr,
    /// Its name in the container.
    pub name: String,
    /// Its MTU.
    pub mtu: u16,
    /// Its addresses, in order.
    pub addresses: Vec<Cidr>,
    /// Its routes, in the order to add them.
    pub routes: Vec<RouteConfig>,
}

/// Checks every entry of `Create.network`: MACs and names well-formed and
/// unique, MTU at least [`MIN_MTU`], addresses in CIDR form, route
/// destinations networks (no host bits) with a gateway of their family.
pub fn check(interfaces: &[NetInterface]) -> Result<Vec<NicConfig>> {
    let mut macs = HashMap::new();
    let mut names = HashMap::new();
    let mut configs = Vec::with_capacity(interfaces.len());
    for (i, nic) in interfaces.iter().enumerate() {
        let field = format!("network[{i}]");
        let mac = MacAddr::parse(&nic.mac).ok_or_else(|| {
            anyhow!(
                "{field}.mac: {:?} is not a MAC address (aa:bb:cc:dd:ee:ff)",
                nic.mac
            )
        })?;
        if !mac.is_unicast() {
            bail!("{field}.mac: {mac} is not a unicast MAC address");
        }
        if let Some(first) = macs.insert(mac, i) {
            bail!("{field}.mac: {mac} is also network[{first}]'s");
        }
        check_ifname(&format!("{field}.name"), &nic.name)?;
        if let Some(first) = names.insert(nic.name.as_str(), i) {
            bail!("{field}.name: {:?} is also network[{first}]'s", nic.name);
        }
        if nic.mtu < MIN_MTU {
            bail!("{field}.mtu: {} is below the minimum of {MIN_MTU}", nic.mtu);
        }
        let addresses = nic
            .addresses
            .iter()
            .enumerate()
            .map(|(j, text)| {
                Cidr::parse(text).map_err(|err| anyhow!("{field}.addresses[{j}]: {err}"))
            })
            .collect::<Result<Vec<_>>>()?;
        let routes = nic
            .routes
            .iter()
            .enumerate()
            .map(|(j, route)| check_route(&format!("{field}.routes[{j}]"), route))
            .collect::<Result<Vec<_>>>()?;
        configs.push(NicConfig {
            field,
            mac,
            name: nic.name.clone(),
            mtu: nic.mtu,
            addresses,
            routes,
        });
    }
    Ok(configs)
}

/// An interface name the kernel accepts (`dev_valid_name`), other than
/// `lo`, which every network namespace has.
fn check_ifname(field: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_IFNAME_LEN
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if !ok {
        bail!(
            "{field}: {name:?} must be 1 to {MAX_IFNAME_LEN} bytes without '/', ':' or \
             whitespace (not . or ..)"
        );
    }
    if name == "lo" {
        bail!("{field}: \"lo\" is the loopback device's name");
    }
    Ok(())
}

fn check_route(field: &str, route: &NetRoute) -> Result<RouteConfig> {
    let destination =
        Cidr::parse(&route.destination).map_err(|err| anyhow!("{field}.destination: {err}"))?;
    if !destination.is_network() {
        bail!("{field}.destination: {destination} has bits set after the prefix");
    }
    let gateway = match &route.gateway {
        None => None,
        Some(text) => {
            let gateway: IpAddr = text
                .parse()
                .map_err(|_| anyhow!("{field}.gateway: {text:?} is not an IP address"))?;
            if gateway.is_ipv4() != destination.addr.is_ipv4() {
                bail!("{field}.gateway: {gateway} is not of the destination's address family");
            }
            if gateway.is_unspecified() {
                bail!("{field}.gateway: {gateway} is not a next hop");
            }
            Some(gateway)
        }
    };
    Ok(RouteConfig {
        destination,
        gateway,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nic(mac: &str, name: &str) -> NetInterface {
        NetInterface {
            mac: mac.into(),
            name: name.into(),
            mtu: 1500,
            addresses: vec!["10.88.0.5/16".into()],
            routes: vec![NetRoute {
                destination: "0.0.0.0/0".into(),
                gateway: Some("10.88.0.1".into()),
            }],
        }
    }

    fn error(interfaces: &[NetInterface]) -> String {
        check(interfaces).unwrap_err().to_string()
    }

    #[test]
    fn a_good_interface_is_parsed() {
        let configs = check(&[nic("02:00:0A:58:00:05", "eth0")]).unwrap();
        assert_eq!(configs.len(), 1);
        let config = &configs[0];
        assert_eq!(config.field, "network[0]");
        assert_eq!(config.mac.to_string(), "02:00:0a:58:00:05");
        assert_eq!(config.addresses[0].to_string(), "10.88.0.5/16");
        assert_eq!(config.routes[0].to_string(), "0.0.0.0/0 via 10.88.0.1");
        assert!(check(&[]).unwrap().is_empty());
    }

    /// Changes one field of a good second interface.
    type Change = fn(&mut NetInterface);

    #[test]
    fn every_bad_field_is_named() {
        let good = nic("02:00:00:00:00:01", "eth0");
        let cases: &[(&str, Change)] = &[
            ("network[1].mac: ", |n| n.mac = "02:00:00:00:00".into()),
            ("network[1].mac: ", |n| n.mac = "02:00:00:00:00:0g".into()),
            ("network[1].mac: ", |n| n.mac = "02:00:00:00:00:01".into()),
            ("network[1].mac: ", |n| n.mac = "00:00:00:00:00:00".into()),
            ("network[1].mac: ", |n| n.mac = "01:00:5e:00:00:01".into()),
            ("network[1].name: ", |n| n.name = "eth0".into()),
            ("network[1].name: ", |n| n.name = "lo".into()),
            ("network[1].name: ", |n| n.name = "a/b".into()),
            ("network[1].name: ", |n| n.name = "x".repeat(16)),
            ("network[1].name: ", |n| n.name = String::new()),
            ("network[1].mtu: ", |n| n.mtu = 67),
            ("network[1].addresses[1]: ", |n| {
                n.addresses.push("10.0.0.1".into())
            }),
            ("network[1].addresses[1]: ", |n| {
                n.addresses.push("10.0.0.256/8".into())
            }),
            ("network[1].addresses[1]: ", |n| {
                n.addresses.push("10.0.0.1/33".into())
            }),
            ("network[1].addresses[1]: ", |n| {
                n.addresses.push("10.0.0.1/+8".into())
            }),
            ("network[1].routes[0].destination: ", |n| {
                n.routes[0].destination = "10.88.0.1/16".into()
            }),
            ("network[1].routes[0].destination: ", |n| {
                n.routes[0].destination = "default".into()
            }),
            ("network[1].routes[0].gateway: ", |n| {
                n.routes[0].gateway = Some("fe80::1".into())
            }),
            ("network[1].routes[0].gateway: ", |n| {
                n.routes[0].gateway = Some("gw".into())
            }),
            ("network[1].routes[0].gateway: ", |n| {
                n.routes[0].gateway = Some("0.0.0.0".into())
            }),
        ];
        for (field, change) in cases {
            let mut bad = nic("02:00:00:00:00:02", "eth1");
            change(&mut bad);
            let err = error(&[good.clone(), bad]);
            assert!(err.starts_with(field), "{field}: {err}");
        }
    }

    #[test]
    fn cidrs_know_their_host_bits() {
        let cidr = |text: &str| Cidr::parse(text).unwrap();
        assert!(cidr("0.0.0.0/0").is_network());
        assert!(cidr("10.88.0.0/16").is_network());
        assert!(!cidr("10.88.0.1/16").is_network());
        assert!(cidr("10.88.0.1/32").is_network());
        assert!(cidr("fd00::/8").is_network());
        assert!(!cidr("fd00::1/64").is_network());
        assert_eq!(cidr("fd00::1/128").prefix, 128);
        assert!(Cidr::parse("fd00::1/129").is_err());
    }
}
