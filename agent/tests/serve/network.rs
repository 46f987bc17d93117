//! Protocol v5's `Create.network`: each case makes a network namespace of
//! its own standing in for the guest's root one (the agent's NIC
//! namespace), with a veth pair whose first end plays the guest's
//! virtio-net NIC (found by its MAC). Addresses are only configured and
//! read back, no traffic is sent.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkInfo, LinkMessage,
};
use netlink_packet_route::RouteNetlinkMessage;
use nix::sched::{unshare, CloneFlags};
use serde_json::Value;
use vmrun_agent::serve::network::config::MacAddr;
use vmrun_agent::serve::network::links::{self, Link};
use vmrun_agent::serve::network::rtnetlink::Rtnetlink;
use vmrun_protocol::{ExitStatus, NetInterface, NetRoute, Request, Response};

use crate::fixture::*;

/// A fresh network namespace, held by the returned descriptor.
fn fresh_netns() -> OwnedFd {
    std::thread::spawn(|| {
        unshare(CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
        OwnedFd::from(File::open("/proc/thread-self/ns/net").expect("the new netns"))
    })
    .join()
    .expect("netns thread")
}

/// Makes veth pair `name`/`peer` in `netns`, `name` with MAC `mac`, the
/// peer up (so the NIC's carrier is up once it is).
fn veth(netns: &OwnedFd, name: &str, mac: [u8; 6], peer: &str) {
    let mut nl = Rtnetlink::open_in(netns.as_fd()).expect("netlink in the test netns");
    let mut peer_message = LinkMessage::default();
    peer_message
        .attributes
        .push(LinkAttribute::IfName(peer.into()));
    let mut message = LinkMessage::default();
    message.attributes.push(LinkAttribute::IfName(name.into()));
    message
        .attributes
        .push(LinkAttribute::Address(mac.to_vec()));
    message.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_message))),
    ]));
    nl.request(
        RouteNetlinkMessage::NewLink(message),
        NLM_F_CREATE | NLM_F_EXCL,
    )
    .expect("creating a veth pair");
    let peer_link = link_named(netns, peer).expect("the veth peer");
    links::set_up(&mut nl, peer_link.index, true).expect("veth peer up");
}

/// Where an agent of these tests finds its NICs, and how it serves.
#[derive(Clone, Copy)]
enum Serving {
    /// In this process's namespace; the NICs get moved out of `netns`.
    Outside,
    /// Inside `netns` (containers without a network namespace share it).
    Inside,
    /// Inside `netns`, handing it to the first container asking for a
    /// fresh one (as the guest's root namespace).
    HandingOut,
}

/// An agent whose NIC namespace is `netns`.
fn agent_in(world: &World, name: &str, netns: &OwnedFd, serving: Serving) -> Agent {
    world.agent_with(
        name,
        Setup {
            nic_netns: Some(netns.try_clone().unwrap()),
            serve_in_nic_netns: !matches!(serving, Serving::Outside),
            hand_out_nic_netns: matches!(serving, Serving::HandingOut),
            ..Setup::default()
        },
    )
}

/// The namespace's inode number, as `readlink /proc/self/ns/net` shows it.
fn inode_of(netns: &OwnedFd) -> u64 {
    nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(netns))
        .expect("fstat the test netns")
        .st_ino
}

fn links_of(netns: &OwnedFd) -> Vec<Link> {
    let mut nl = Rtnetlink::open_in(netns.as_fd()).expect("netlink in the test netns");
    links::list(&mut nl).expect("listing links")
}

fn link_named(netns: &OwnedFd, name: &str) -> Option<Link> {
    links_of(netns).into_iter().find(|l| l.name == name)
}

fn link_with_mac(netns: &OwnedFd, mac: [u8; 6]) -> Option<Link> {
    links_of(netns)
        .into_iter()
        .find(|l| l.mac == Some(MacAddr(mac)))
}

fn mac_text(mac: [u8; 6]) -> String {
    MacAddr(mac).to_string()
}

fn eth(
    mac: [u8; 6],
    name: &str,
    mtu: u16,
    address: &str,
    routes: &[(&str, Option<&str>)],
) -> NetInterface {
    NetInterface {
        mac: mac_text(mac),
        name: name.into(),
        mtu,
        addresses: vec![address.into()],
        routes: routes
            .iter()
            .map(|(destination, gateway)| NetRoute {
                destination: (*destination).into(),
                gateway: gateway.map(str::to_owned),
            })
            .collect(),
    }
}

fn create_with_network(
    id: &str,
    spec: Value,
    stdio: &HostStdio,
    nics: Vec<NetInterface>,
) -> Request {
    let mut request = create(id, spec, stdio);
    if let Request::Create { network, .. } = &mut request {
        *network = nics;
    }
    request
}

/// What the container sees of its network, printed by busybox.
const SHOW_NETWORK: &str = "cat /sys/class/net/$IF/mtu /sys/class/net/$IF/address; \
                            ip -4 addr show dev $IF; ip route; ip link show lo";

fn run_created(client: &vmrun_protocol::ControlClient, id: &str, stdio: HostStdio) -> String {
    assert_eq!(client.call(start(id)).unwrap(), started());
    let (out, err) = stdio.collect();
    let Response::Exited { status } = client.call(wait(id)).unwrap() else {
        panic!("wait did not answer Exited");
    };
    println!("  {id}: {status:?} stdout={out:?} stderr={err:?}");
    assert_eq!(status, ExitStatus::Code(0), "{err}");
    out
}

pub fn nics_move_into_the_container_and_are_configured(world: &World) {
    let netns = fresh_netns();
    let mac = [0x02, 0, 0, 0, 0xaa, 0x01];
    veth(&netns, "vx0", mac, "vp0");
    let mut agent = agent_in(world, "net-move", &netns, Serving::Outside);
    let client = agent.client();
    let nic = eth(
        mac,
        "eth0",
        1400,
        "10.88.0.5/24",
        &[("0.0.0.0/0", Some("10.88.0.1")), ("10.99.0.0/16", None)],
    );
    let mut spec = world.spec(&["sh", "-c", SHOW_NETWORK]);
    spec["process"]["env"]
        .as_array_mut()
        .unwrap()
        .push("IF=eth0".into());
    let stdio = HostStdio::listen(world, None);
    expect_created(client.call(create_with_network("net", spec, &stdio, vec![nic])));
    // Created: the NIC has left the NIC namespace; the peer stayed.
    assert_eq!(link_with_mac(&netns, mac), None);
    assert!(link_named(&netns, "vp0").is_some());
    let out = run_created(&client, "net", stdio);
    for expected in [
        "1400\n",
        &format!("{}\n", mac_text(mac)),
        ": eth0@",
        "<BROADCAST,MULTICAST,UP,LOWER_UP",
        " mtu 1400 ",
        "inet 10.88.0.5/24 ",
        "default via 10.88.0.1 dev eth0",
        "10.88.0.0/24 dev eth0 scope link",
        "10.99.0.0/16 dev eth0 scope link",
        "1: lo: <LOOPBACK,UP,LOWER_UP>",
    ] {
        assert!(out.contains(expected), "{expected:?} missing from:\n{out}");
    }
    drop(client);
    expect_connection_lost(agent);
}

/// Runs `readlink /proc/self/ns/net; ip -o link show lo` in a container
/// without interfaces, its agent serving in a fresh namespace as `serving`
/// says; the output, and the inode of that namespace.
fn loopback_in_a_container(world: &World, agent_name: &str, serving: Serving) -> (String, u64) {
    let netns = fresh_netns();
    let inode = inode_of(&netns);
    let mut agent = agent_in(world, agent_name, &netns, serving);
    let client = agent.client();
    let spec = world.spec(&["sh", "-c", "readlink /proc/self/ns/net; ip -o link show lo"]);
    let stdio = HostStdio::listen(world, None);
    expect_created(client.call(create_with_network("lo", spec, &stdio, vec![])));
    let out = run_created(&client, "lo", stdio);
    drop(client);
    expect_connection_lost(agent);
    (out, inode)
}

/// As with runc, a container's fresh network namespace has `lo` up even
/// without any interface plumbed.
pub fn a_fresh_network_namespace_has_loopback_up(world: &World) {
    let (out, _) = loopback_in_a_container(world, "net-lo", Serving::Outside);
    assert!(out.contains("1: lo: <LOOPBACK,UP,LOWER_UP>"), "{out}");
}

pub fn nics_are_configured_in_place_without_a_network_namespace(world: &World) {
    let netns = fresh_netns();
    let mac = [0x02, 0, 0, 0, 0xaa, 0x02];
    veth(&netns, "vx1", mac, "vp1");
    let mut agent = agent_in(world, "net-in-place", &netns, Serving::Inside);
    let client = agent.client();
    // Calico's shape: the gateway is reachable only through a route listed
    // after the default route that needs it.
    let nic = eth(
        mac,
        "eth7",
        1280,
        "10.77.0.9/32",
        &[("0.0.0.0/0", Some("169.254.1.1")), ("169.254.1.1/32", None)],
    );
    let mut spec = world.spec(&["sh", "-c", SHOW_NETWORK]);
    spec["process"]["env"]
        .as_array_mut()
        .unwrap()
        .push("IF=eth7".into());
    if let Some(namespaces) = spec["linux"]["namespaces"].as_array_mut() {
        namespaces.retain(|ns| ns["type"] != "network");
    }
    let stdio = HostStdio::listen(world, None);
    expect_created(client.call(create_with_network("inplace", spec, &stdio, vec![nic])));
    // Configured where it is: renamed, with its MTU.
    let renamed = link_named(&netns, "eth7").expect("eth7 in the NIC namespace");
    assert_eq!((renamed.mac, renamed.mtu), (Some(MacAddr(mac)), 1280));
    let out = run_created(&client, "inplace", stdio);
    for expected in [
        "1280\n",
        "inet 10.77.0.9/32 ",
        "default via 169.254.1.1 dev eth7",
        "169.254.1.1 dev eth7 scope link",
        "1: lo: <LOOPBACK,UP,LOWER_UP>",
    ] {
        assert!(out.contains(expected), "{expected:?} missing from:\n{out}");
    }
    drop(client);
    expect_connection_lost(agent);
}

/// The NIC namespace, standing in for the guest's root one, is handed to
/// the first container asking for a fresh namespace: its NIC configured in
/// place, `lo` up, its `net.*` sysctl written; the next container asking
/// gets a fresh namespace of its own.
pub fn the_guest_namespace_goes_to_the_first_fresh_one(world: &World) {
    let netns = fresh_netns();
    let inode = inode_of(&netns);
    let mac = [0x02, 0, 0, 0, 0xaa, 0x04];
    veth(&netns, "vx4", mac, "vp4");
    let mut agent = agent_in(world, "net-handed-out", &netns, Serving::HandingOut);
    let client = agent.client();
    let show = "readlink /proc/self/ns/net; cat /proc/sys/net/ipv4/ping_group_range; \
                ip -o link show";
    let nic = eth(mac, "eth3", 1400, "10.66.0.3/24", &[]);
    let mut spec = world.spec(&["sh", "-c", show]);
    spec["linux"]["sysctl"] = serde_json::json!({"net.ipv4.ping_group_range": "0 7"});
    assert!(
        spec["linux"]["namespaces"].as_array().is_some_and(|all| all
            .iter()
            .any(|ns| ns["type"] == "network" && ns.get("path").is_none())),
        "the test spec asks for a fresh network namespace"
    );
    let stdio = HostStdio::listen(world, None);
    expect_created(client.call(create_with_network(
        "first",
        spec.clone(),
        &stdio,
        vec![nic],
    )));
    let out = run_created(&client, "first", stdio);
    for expected in [
        format!("net:[{inode}]\n"),
        "0\t7\n".to_string(),
        "lo: <LOOPBACK,UP,LOWER_UP>".to_string(),
        "eth3: <BROADCAST,MULTICAST,UP,LOWER_UP>".to_string(),
    ] {
        assert!(out.contains(&expected), "{expected:?} missing from:\n{out}");
    }
    let stdio = HostStdio::listen(world, None);
    expect_created(client.call(create_with_network("second", spec, &stdio, vec![])));
    let out = run_created(&client, "second", stdio);
    assert!(
        out.starts_with("net:[") && !out.contains(&format!("net:[{inode}]")),
        "the second container has a namespace of its own:\n{out}"
    );
    assert!(out.contains("lo: <LOOPBACK,UP,LOWER_UP>"), "{out}");
    assert!(!out.contains("eth3"), "{out}");
    drop(client);
    expect_connection_lost(agent);
}

/// The guest's namespace handed to a container without NICs: its `lo`
/// (down in a fresh namespace, as in a booted guest) is brought up by the
/// agent in its own namespace.
pub fn the_guest_namespace_without_nics_gets_loopback_up(world: &World) {
    let (out, inode) = loopback_in_a_container(world, "net-handed-out-lo", Serving::HandingOut);
    assert!(out.contains(&format!("net:[{inode}]\n")), "{out}");
    assert!(out.contains("1: lo: <LOOPBACK,UP,LOWER_UP>"), "{out}");
}

/// Configured in place, NICs may take each other's names: the guest
/// kernel named them eth0 and eth1, the container wants them the other
/// way round.
pub fn nics_configured_in_place_can_swap_names(world: &World) {
    let netns = fresh_netns();
    let (mac_a, mac_b) = ([0x02, 0, 0, 0, 0xaa, 0x05], [0x02, 0, 0, 0, 0xaa, 0x06]);
    veth(&netns, "eth0", mac_a, "pa5");
    veth(&netns, "eth1", mac_b, "pb6");
    let mut agent = agent_in(world, "net-swap", &netns, Serving::HandingOut);
    let client = agent.client();
    let nics = vec![
        eth(mac_a, "eth1", 1400, "10.55.0.2/24", &[]),
        eth(mac_b, "eth0", 1400, "10.56.0.2/24", &[]),
    ];
    let spec = world.spec(&["sh", "-c", "ip -o link show; ip -o addr show"]);
    let stdio = HostStdio::listen(world, None);
    expect_created(client.call(create_with_network("swap", spec, &stdio, nics)));
    let out = run_created(&client, "swap", stdio);
    let line = |name: &str| {
        out.lines()
            .find(|l| l.contains(&format!(" {name}@")) && l.contains("link/ether"))
            .unwrap_or_else(|| panic!("no link {name} in:\n{out}"))
            .to_string()
    };
    assert!(line("eth1").contains("02:00:00:00:aa:05"), "{out}");
    assert!(line("eth0").contains("02:00:00:00:aa:06"), "{out}");
    assert!(out.contains("eth1    inet 10.55.0.2/24"), "{out}");
    assert!(out.contains("eth0    inet 10.56.0.2/24"), "{out}");
    drop(client);
    expect_connection_lost(agent);
}

pub fn network_errors_name_the_field_and_leave_nothing(world: &World) {
    let netns = fresh_netns();
    let mac = [0x02, 0, 0, 0, 0xaa, 0x03];
    veth(&netns, "vx2", mac, "vp2");
    let mut agent = agent_in(world, "net-errors", &netns, Serving::Outside);
    let client = agent.client();
    let stdio = HostStdio::listen(world, None);
    let spec = || world.spec(&["sh", "-c", SHOW_NETWORK]);
    let good = || {
        eth(
            mac,
            "eth0",
            1400,
            "10.88.0.5/24",
            &[("0.0.0.0/0", Some("10.88.0.1"))],
        )
    };
    let try_create = |nics: Vec<NetInterface>| {
        agent_error(client.call(create_with_network("bad", spec(), &stdio, nics)))
    };

    // Refused before anything is made.
    let unknown = eth(
        [0x02, 0, 0, 0, 0xbb, 0xbb],
        "eth0",
        1400,
        "10.88.0.5/24",
        &[],
    );
    let message = try_create(vec![unknown]);
    assert!(
        message.starts_with("network[0].mac: no interface with MAC 02:00:00:00:bb:bb"),
        "{message}"
    );
    let mut bad_address = good();
    bad_address.addresses.push("10.88.0.6".into());
    let message = try_create(vec![bad_address]);
    assert!(
        message.starts_with("network[0].addresses[1]: "),
        "{message}"
    );
    let mut second = good();
    second.name = "eth1".into();
    let message = try_create(vec![good(), second]);
    assert!(message.starts_with("network[1].mac: "), "{message}");

    // Refused by the kernel once the container exists: a gateway on no
    // link. The container is gone and the NIC is back as it was found.
    let mut unreachable = good();
    unreachable.routes[0].gateway = Some("10.99.0.1".into());
    let message = try_create(vec![unreachable]);
    assert!(
        message.starts_with("network[0].routes[0]: adding route 0.0.0.0/0 via 10.99.0.1"),
        "{message}"
    );
    let message = agent_error(client.call(state("bad")));
    assert!(message.starts_with("id: "), "{message}");
    let state_dir = world.scratch.path().join("state-net-errors");
    for leftover in ["state/bad", "bundles/bad"] {
        assert!(!state_dir.join(leftover).exists(), "{leftover} left behind");
    }
    let back = link_with_mac(&netns, mac).expect("the NIC is back in its namespace");
    assert_eq!((back.name.as_str(), back.mtu), ("vx2", 1500));

    // So the same Create, corrected, works.
    let mut spec = spec();
    spec["process"]["env"]
        .as_array_mut()
        .unwrap()
        .push("IF=eth0".into());
    let ok_stdio = HostStdio::listen(world, None);
    expect_created(client.call(create_with_network("bad", spec, &ok_stdio, vec![good()])));
    let out = run_created(&client, "bad", ok_stdio);
    assert!(out.contains("default via 10.88.0.1 dev eth0"), "{out}");
    drop(client);
    expect_connection_lost(agent);
}
