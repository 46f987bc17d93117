//! `Create.network` (protocol v5): the guest NICs (virtio-net) the host
//! plumbed for a container, moved into the container's network namespace
//! and configured there.
//!
//! 1. [`plan`], before the container is made: every field checked
//!    ([`config::check`]), then each NIC found by its MAC among the links
//!    of the *NIC namespace* (the guest's root network namespace; host
//!    tests pass one of their own). Nothing is changed; errors name the
//!    field (`network[0].mac: no interface with MAC ...`).
//! 2. [`attach`], once the container's init exists (before `Start`): each
//!    NIC moves into the init's network namespace (`RTM_SETLINK` with
//!    `IFLA_NET_NS_FD` on `/proc/<pid>/ns/net`), taking its `name` in the
//!    same step; there it gets its MTU, is brought up, gets its addresses;
//!    then `lo` is brought up and its routes added: those without a
//!    gateway first, then those with one (a gateway must be reachable
//!    through an on-link route), each group in the given order. A container
//!    without a network namespace of its own (it shares the NIC
//!    namespace) gets its NICs configured where they are (renamed first).
//!    An error names the field (`network[0].routes[1]: adding route ...`)
//!    and every NIC is put back as it was found (best effort): moved back
//!    into the NIC namespace under its old name and MTU, or, configured in
//!    place, down, without the added addresses, old name and MTU.
//!
//! - [`config`]: the checked request; [`rtnetlink`]: the socket;
//!   [`links`]: the link, address and route requests; [`guest_netns`]:
//!   the guest's root namespace, handed to the first container asking
//!   for a fresh one (its NICs are then configured in place).

pub mod config;
pub mod guest_netns;
pub mod links;
mod loopback;
pub mod rtnetlink;

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use anyhow::{bail, Context, Result};
use nix::sys::stat::fstat;
use vmrun_protocol::NetInterface;

use config::{Cidr, NicConfig};
pub use guest_netns::{GuestNetns, NetnsChoice};
use links::Link;
use rtnetlink::Rtnetlink;

/// The checked `Create.network`, each NIC with the link found for it.
#[derive(Debug, Default)]
pub struct NicPlan {
    nics: Vec<(NicConfig, Link)>,
}

impl NicPlan {
    /// No interfaces asked for.
    pub fn is_empty(&self) -> bool {
        self.nics.is_empty()
    }
}

/// Checks `interfaces` and finds each by MAC among the links of
/// `nic_netns`; changes nothing.
pub fn plan(interfaces: &[NetInterface], nic_netns: BorrowedFd<'_>) -> Result<NicPlan> {
    let configs = config::check(interfaces)?;
    if configs.is_empty() {
        return Ok(NicPlan::default());
    }
    let mut nl = Rtnetlink::open_in(nic_netns).context("network: the guest's network namespace")?;
    let links = links::list(&mut nl).context("network: listing the guest's links")?;
    let mut nics = Vec::with_capacity(configs.len());
    for config in configs {
        let Some(link) = links.iter().find(|l| l.mac == Some(config.mac)) else {
            bail!(
                "{}.mac: no interface with MAC {} in the guest's network namespace \
                 (a NIC serves one container)",
                config.field,
                config.mac
            );
        };
        nics.push((config, link.clone()));
    }
    Ok(NicPlan { nics })
}

/// Moves every NIC of `plan` into the network namespace of process
/// `init_pid` and configures it there (in place when that is
/// `nic_netns`). On an error every NIC is put back as it was found.
/// `choice`: whether that namespace is the guest's, given for a fresh one.
pub fn attach(
    plan: &NicPlan,
    nic_netns: BorrowedFd<'_>,
    init_pid: i32,
    choice: NetnsChoice,
) -> Result<()> {
    let target = File::open(format!("/proc/{init_pid}/ns/net"))
        .context("network: opening the container's network namespace")?;
    let in_place = same_namespace(nic_netns, target.as_fd())?;
    if plan.is_empty() {
        // As runc does: a fresh network namespace gets its loopback up
        // (and so does the guest's, given in place of a fresh one).
        return if in_place && choice == NetnsChoice::AsAsked {
            Ok(())
        } else {
            loopback_up(target.as_fd())
        };
    }
    let mut attachment = Attachment {
        plan,
        nic_netns,
        target: target.as_fd(),
        nic_nl: Rtnetlink::open_in(nic_netns).context("network: the guest's network namespace")?,
        target_nl: None,
        moved: 0,
        touched: 0,
        added: Vec::new(),
    };
    let result = attachment.configure(in_place);
    if result.is_err() {
        attachment.undo();
    }
    result
}

/// Brings `lo` up in the network namespace `netns`.
fn loopback_up(netns: BorrowedFd<'_>) -> Result<()> {
    let own = File::open("/proc/thread-self/ns/net")
        .context("network: opening the agent's network namespace")?;
    if same_namespace(own.as_fd(), netns)? {
        // The guest's namespace, given to a container: two ioctls here,
        // no thread to enter it and no rtnetlink dump to parse (in the
        // emulated test host those cost the first container ~20 ms).
        return loopback::up_here().context("network: bringing lo up");
    }
    let mut nl = Rtnetlink::open_in(netns).context("network: the container's network namespace")?;
    let links = links::list(&mut nl).context("network: listing the container's links")?;
    let lo = links
        .iter()
        .find(|l| l.name == "lo")
        .context("network: the container's network namespace has no lo")?;
    links::set_up(&mut nl, lo.index, true).context("network: bringing lo up")
}

/// The temporary name of the NIC with interface index `index` (at most
/// 15 bytes, as IFNAMSIZ allows: "vmrun-p" and up to 8 digits).
fn parked_name(index: u32) -> String {
    format!("vmrun-p{}", index % 100_000_000)
}

fn same_namespace(a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> Result<bool> {
    let a = fstat(a.as_raw_fd()).context("network: the guest's network namespace")?;
    let b = fstat(b.as_raw_fd()).context("network: the container's network namespace")?;
    Ok((a.st_dev, a.st_ino) == (b.st_dev, b.st_ino))
}

/// One `attach` in progress, with what it did so far (for [`Self::undo`]).
struct Attachment<'a> {
    plan: &'a NicPlan,
    nic_netns: BorrowedFd<'a>,
    target: BorrowedFd<'a>,
    nic_nl: Rtnetlink,
    /// A socket in the container's namespace; `None`: configuring in place.
    target_nl: Option<Rtnetlink>,
    /// How many NICs (from the first) were moved.
    moved: usize,
    /// How many NICs (from the first) were being configured.
    touched: usize,
    /// Addresses added: (NIC, address); only configuring in place needs
    /// them removed again (a NIC moved back loses its addresses).
    added: Vec<(usize, Cidr)>,
}

impl Attachment<'_> {
    /// The socket in the namespace the NICs are configured in.
    fn nl(&mut self) -> &mut Rtnetlink {
        self.target_nl.as_mut().unwrap_or(&mut self.nic_nl)
    }

    fn configure(&mut self, in_place: bool) -> Result<()> {
        let plan = self.plan;
        if !in_place {
            let nl = Rtnetlink::open_in(self.target)
                .context("network: the container's network namespace")?;
            self.target_nl = Some(nl);
            for (config, link) in &plan.nics {
                links::move_to(&mut self.nic_nl, link.index, self.target, &config.name)
                    .with_context(|| {
                        format!(
                            "{}: moving {} ({}) into the container's network namespace as {:?}",
                            config.field, link.name, config.mac, config.name
                        )
                    })?;
                self.moved += 1;
            }
        }
        if in_place {
            self.park_names()?;
        }
        let here = links::list(self.nl()).context("network: listing the container's links")?;
        let mut indexes = Vec::with_capacity(plan.nics.len());
        for (k, (config, _)) in plan.nics.iter().enumerate() {
            let Some(link) = here.iter().find(|l| l.mac == Some(config.mac)) else {
                bail!(
                    "{}.mac: {} vanished from the container's network namespace",
                    config.field,
                    config.mac
                );
            };
            self.touched = k + 1;
            self.configure_link(k, config, link)?;
            indexes.push(link.index);
        }
        let lo = here
            .iter()
            .find(|l| l.name == "lo")
            .context("network: the container's network namespace has no lo")?
            .index;
        links::set_up(self.nl(), lo, true).context("network: bringing lo up")?;
        for ((config, _), index) in plan.nics.iter().zip(indexes) {
            // On-link routes first: a gateway must be reachable through one
            // (`ip route show` lists `default via 169.254.1.1` before the
            // `169.254.1.1 dev eth0` it needs); the table is the same.
            let routes = config.routes.iter().enumerate();
            let on_link = routes.clone().filter(|(_, r)| r.gateway.is_none());
            let via = routes.filter(|(_, r)| r.gateway.is_some());
            for (j, route) in on_link.chain(via) {
                links::add_route(self.nl(), index, *route).with_context(|| {
                    format!(
                        "{}.routes[{j}]: adding route {route} dev {}",
                        config.field, config.name
                    )
                })?;
            }
            tracing::info!(
                "network: {} ({}) configured: mtu {}, {} address(es), {} route(s)",
                config.name,
                config.mac,
                config.mtu,
                config.addresses.len(),
                config.routes.len()
            );
        }
        Ok(())
    }

    /// Name (in place), MTU, up, addresses.
    fn configure_link(&mut self, k: usize, config: &NicConfig, link: &Link) -> Result<()> {
        let (field, name) = (&config.field, &config.name);
        if link.name != *name {
            links::set_up(self.nl(), link.index, false)
                .and_then(|()| links::rename(self.nl(), link.index, name))
                .with_context(|| format!("{field}.name: renaming {} to {name:?}", link.name))?;
        }
        links::set_mtu(self.nl(), link.index, config.mtu.into())
            .with_context(|| format!("{field}.mtu: setting {name}'s MTU to {}", config.mtu))?;
        links::set_up(self.nl(), link.index, true)
            .with_context(|| format!("{field}: bringing {name} up"))?;
        for (j, cidr) in config.addresses.iter().enumerate() {
            links::add_address(self.nl(), link.index, *cidr)
                .with_context(|| format!("{field}.addresses[{j}]: adding {cidr} to {name}"))?;
            self.added.push((k, *cidr));
        }
        Ok(())
    }

    /// Configuring in place, first gives every NIC that is to be renamed
    /// a name of its own (`vmrun-p<ifindex>`), down: the NICs keep the
    /// names the guest kernel gave them (eth0, eth1, ...), and renaming
    /// one to another's (eth0 to "eth1") must not find that one still
    /// holding it. A NIC moved into a fresh namespace takes its name in
    /// the move and meets nobody.
    fn park_names(&mut self) -> Result<()> {
        let here = links::list(&mut self.nic_nl).context("network: listing the guest's links")?;
        for (k, (config, _)) in self.plan.nics.iter().enumerate() {
            let Some(link) = here.iter().find(|l| l.mac == Some(config.mac)) else {
                continue; // named by the check that follows
            };
            if link.name == config.name {
                continue;
            }
            self.touched = self.touched.max(k + 1);
            let parked = parked_name(link.index);
            links::set_up(&mut self.nic_nl, link.index, false)
                .and_then(|()| links::rename(&mut self.nic_nl, link.index, &parked))
                .with_context(|| {
                    format!(
                        "{}.name: renaming {} to {parked:?} first",
                        config.field, link.name
                    )
                })?;
        }
        Ok(())
    }

    /// Puts every NIC back as it was found (best effort, logged).
    fn undo(&mut self) {
        match self.target_nl.take() {
            Some(mut target_nl) => self.undo_moves(&mut target_nl),
            None => self.undo_in_place(),
        }
    }

    fn undo_moves(&mut self, target_nl: &mut Rtnetlink) {
        let here = links::list(target_nl).unwrap_or_default();
        for (config, original) in self.plan.nics.iter().take(self.moved) {
            let Some(link) = here.iter().find(|l| l.mac == Some(config.mac)) else {
                continue;
            };
            let back = links::move_to(target_nl, link.index, self.nic_netns, &original.name);
            if let Err(err) = back {
                tracing::warn!("network: moving {} back: {err:#}", config.mac);
            }
        }
        let guest = links::list(&mut self.nic_nl).unwrap_or_default();
        for (config, original) in self.plan.nics.iter().take(self.moved) {
            if let Some(link) = guest.iter().find(|l| l.mac == Some(config.mac)) {
                if link.mtu != original.mtu {
                    let _ = links::set_mtu(&mut self.nic_nl, link.index, original.mtu);
                }
            }
        }
    }

    fn undo_in_place(&mut self) {
        let nl = &mut self.nic_nl;
        // Parked first, as in `park_names`: the old names may be held by
        // each other now.
        for (_, original) in self.plan.nics.iter().take(self.touched) {
            let _ = links::set_up(nl, original.index, false)
                .and_then(|()| links::rename(nl, original.index, &parked_name(original.index)));
        }
        for (i, (_, original)) in self.plan.nics.iter().enumerate().take(self.touched) {
            let index = original.index;
            for (_, cidr) in self.added.iter().filter(|(nic, _)| *nic == i) {
                let _ = links::remove_address(nl, index, *cidr);
            }
            if let Err(err) = links::rename(nl, index, &original.name)
                .and_then(|()| links::set_mtu(nl, index, original.mtu))
            {
                tracing::warn!("network: restoring {}: {err:#}", original.name);
            }
        }
    }
}
