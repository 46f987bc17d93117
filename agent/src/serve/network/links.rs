//! The rtnetlink operations on links, addresses and routes the agent
//! needs (what `ip link set`, `ip addr add` and `ip route add` send).

use std::net::IpAddr;
use std::os::fd::{AsRawFd, BorrowedFd};

use anyhow::Result;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::route::{
    RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::config::{Cidr, MacAddr, RouteConfig};
use super::rtnetlink::Rtnetlink;

/// A link as a dump reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Its interface index.
    pub index: u32,
    /// Its name.
    pub name: String,
    /// Its MAC address (`None` for links without a 6-byte one, e.g. `lo`
    /// reports zeros, tunnels none).
    pub mac: Option<MacAddr>,
    /// Its MTU.
    pub mtu: u32,
}

/// Every link of the socket's network namespace.
pub fn list(nl: &mut Rtnetlink) -> Result<Vec<Link>> {
    let answers = nl.dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))?;
    Ok(answers
        .into_iter()
        .filter_map(|answer| match answer {
            RouteNetlinkMessage::NewLink(link) => Some(link_of(link)),
            _ => None,
        })
        .collect())
}

fn link_of(message: LinkMessage) -> Link {
    let mut link = Link {
        index: message.header.index,
        name: String::new(),
        mac: None,
        mtu: 0,
    };
    for attribute in message.attributes {
        match attribute {
            LinkAttribute::IfName(name) => link.name = name,
            LinkAttribute::Mtu(mtu) => link.mtu = mtu,
            LinkAttribute::Address(bytes) => {
                link.mac = <[u8; 6]>::try_from(bytes.as_slice()).ok().map(MacAddr)
            }
            _ => {}
        }
    }
    link
}

fn set_link(nl: &mut Rtnetlink, index: u32, change: impl FnOnce(&mut LinkMessage)) -> Result<()> {
    let mut message = LinkMessage::default();
    message.header.index = index;
    change(&mut message);
    nl.request(RouteNetlinkMessage::SetLink(message), 0)
}

/// Moves link `index` into the network namespace `netns`, named `name`
/// there (the name is taken in the same step, so a link of that name
/// already there does not get in the way of the move).
pub fn move_to(nl: &mut Rtnetlink, index: u32, netns: BorrowedFd<'_>, name: &str) -> Result<()> {
    set_link(nl, index, |m| {
        m.attributes.push(LinkAttribute::NetNsFd(netns.as_raw_fd()));
        m.attributes.push(LinkAttribute::IfName(name.to_owned()));
    })
}

/// Renames link `index` (it must be down).
pub fn rename(nl: &mut Rtnetlink, index: u32, name: &str) -> Result<()> {
    set_link(nl, index, |m| {
        m.attributes.push(LinkAttribute::IfName(name.to_owned()))
    })
}

/// Sets link `index`'s MTU.
pub fn set_mtu(nl: &mut Rtnetlink, index: u32, mtu: u32) -> Result<()> {
    set_link(nl, index, |m| m.attributes.push(LinkAttribute::Mtu(mtu)))
}

/// Brings link `index` up or down.
pub fn set_up(nl: &mut Rtnetlink, index: u32, up: bool) -> Result<()> {
    set_link(nl, index, |m| {
        m.header.change_mask = LinkFlags::Up;
        if up {
            m.header.flags = LinkFlags::Up;
        }
    })
}

fn family(addr: IpAddr) -> AddressFamily {
    match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn address_message(index: u32, cidr: Cidr) -> AddressMessage {
    let mut message = AddressMessage::default();
    message.header.family = family(cidr.addr);
    message.header.prefix_len = cidr.prefix;
    message.header.index = index;
    message.attributes.push(AddressAttribute::Local(cidr.addr));
    message
        .attributes
        .push(AddressAttribute::Address(cidr.addr));
    message
}

/// Adds `cidr` to link `index` (its prefix route comes with it).
pub fn add_address(nl: &mut Rtnetlink, index: u32, cidr: Cidr) -> Result<()> {
    nl.request(
        RouteNetlinkMessage::NewAddress(address_message(index, cidr)),
        NLM_F_CREATE | NLM_F_EXCL,
    )
}

/// Removes `cidr` from link `index`.
pub fn remove_address(nl: &mut Rtnetlink, index: u32, cidr: Cidr) -> Result<()> {
    nl.request(
        RouteNetlinkMessage::DelAddress(address_message(index, cidr)),
        0,
    )
}

/// Adds `route` through link `index` to the main table (as `ip route add`
/// does: protocol boot; scope link without a gateway).
pub fn add_route(nl: &mut Rtnetlink, index: u32, route: RouteConfig) -> Result<()> {
    let destination = route.destination;
    let mut message = RouteMessage::default();
    message.header = RouteHeader {
        address_family: family(destination.addr),
        destination_prefix_length: destination.prefix,
        table: RouteHeader::RT_TABLE_MAIN,
        protocol: RouteProtocol::Boot,
        scope: match route.gateway {
            Some(_) => RouteScope::Universe,
            None => RouteScope::Link,
        },
        kind: RouteType::Unicast,
        ..RouteHeader::default()
    };
    if destination.prefix > 0 {
        message
            .attributes
            .push(RouteAttribute::Destination(destination.addr.into()));
    }
    if let Some(gateway) = route.gateway {
        message
            .attributes
            .push(RouteAttribute::Gateway(gateway.into()));
    }
    message.attributes.push(RouteAttribute::Oif(index));
    nl.request(
        RouteNetlinkMessage::NewRoute(message),
        NLM_F_CREATE | NLM_F_EXCL,
    )
}
