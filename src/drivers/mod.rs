//! The drivers: how a guest is connected, one a kind of host interface.
//! `for_host` picks the driver from what the host interface is; each one
//! refuses what it cannot do (`validate`, before the guest is looked up),
//! then lists its steps and says what they make (`plan`), changing
//! nothing, from what it reads of the system through `facts`. The
//! addressing steps (`addressing`) are the same for all of them.
//!
//! Everything else about a kind of attachment is in `kinds` (what it leaves
//! on the host, how it is recognised and undone, how it is asked for again),
//! `verify` (`check`'s differences, `show`'s live or stale) and `replay`.
//! Undoing goes by the record, not by a `Driver` (the host interface it was
//! made from may be gone): `teardown`, and `detach` for a whole guest;
//! `mkbridge` plans a host interface into a bridge.

pub mod addressing;
pub mod bridge;
pub mod detach;
pub mod dhcp;
pub mod direct;
pub mod dummy;
pub mod facts;
pub mod ipoib;
pub mod kinds;
pub mod macvlan;
pub mod mkbridge;
pub mod ovs;
pub mod replay;
#[cfg(test)]
mod tests;
pub mod verify;
pub mod veth_port;

use futures::future::BoxFuture;
use rtnetlink::packet_route::link::InfoKind;
use rtnetlink::packet_route::route::RouteMessage;

pub use facts::Facts;

use crate::error::{Error, Kind, Result};
use crate::plan::{Plan, Step};
use crate::records::{Attached, How, Interface, LinkId, Record};
use crate::request::Attach;
use crate::resolve::guest::Guest;
use crate::resolve::host::HostKind;
use crate::sys::netlink::{Link, Netlink};
use crate::sys::output;

/// Everything a driver plans with: the request, the guest it names, and
/// what each side holds (the host's and the guest's netlink connections in
/// a run).
pub struct Context<'a> {
    pub req: &'a Attach,
    pub guest: &'a Guest,
    pub host: &'a dyn Facts,
    pub inside: &'a dyn Facts,
}

impl Context<'_> {
    /// The interface name in the guest: `-i`, else the driver's default.
    pub fn guest_if<'s>(&'s self, default: &'s str) -> &'s str {
        self.req.container_if.as_deref().unwrap_or(default)
    }

    /// An empty plan whose guest-side steps are shown entering this guest.
    pub fn new_plan(&self) -> Plan {
        Plan::new(&self.guest.enter)
    }
}

/// What a plan makes, as its record keeps it: a draft of the record's
/// `Interface`. What the kernel chooses (MAC, MTU, index, the host side's
/// identity) is read back once the plan is applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Made {
    /// The interface in the guest.
    pub name: String,
    pub how: How,
    pub host_side: Option<String>,
    pub attached_to: Attached,
    /// The VLAN (an IPoIB child's partition key).
    pub vlan: Option<u16>,
    /// The guest's default route the plan deletes for its gateway's.
    pub replaced_default: Option<RouteMessage>,
}

/// A driver's plan, and what it makes.
#[derive(Debug)]
pub struct Planned {
    pub plan: Plan,
    pub made: Made,
}

pub trait Driver {
    /// The refusals that need only the request and the host interface,
    /// made before the guest is looked up, as the original made them.
    fn validate(&self, _req: &Attach) -> Result<()> {
        Ok(())
    }

    /// The interface name in the guest without `-i`.
    fn default_if(&self) -> &'static str {
        "eth1"
    }

    /// Checks everything against the system and lists the steps, with what
    /// they make; changes nothing.
    fn plan<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Planned>>;
}

/// The driver for a host interface of this kind.
pub fn for_host(kind: HostKind, req: &Attach) -> Result<Box<dyn Driver>> {
    if req.vlan_filtering && !matches!(kind, HostKind::LinuxBridge { .. }) {
        return Err(Error::new(Kind::Usage, "--vlan-filtering applies to a Linux bridge"));
    }
    macvlan::refuse_without_macvlan(req, matches!(kind, HostKind::Physical(_)) && !req.direct_phys)?;
    Ok(match kind {
        HostKind::LinuxBridge { name, existing } => Box::new(bridge::Bridge { name, existing }),
        HostKind::Physical(link) if req.direct_phys => Box::new(direct::Direct { link }),
        HostKind::Physical(link) => Box::new(macvlan::Macvlan { parent: link }),
        HostKind::Dummy { .. } => Box::new(dummy::Dummy),
        HostKind::IpoIb(link) => Box::new(ipoib::Ipoib { parent: link }),
        HostKind::OpenVswitch { name, existing } => Box::new(ovs::Ovs { name, existing }),
    })
}

/// What undoing one recorded interface is planned from: its record, and a
/// netlink connection on each side (`inside` is None for a guest that is
/// gone: only the host side is left to undo).
pub struct Teardown<'a> {
    pub record: &'a Record,
    pub iface: &'a Interface,
    /// Every interface of `record` this undo takes away, `iface` among
    /// them: what they share goes with the last of them.
    pub leaving: &'a [&'a Interface],
    pub host: &'a Netlink,
    pub inside: Option<&'a Netlink>,
}

impl Teardown<'_> {
    /// The recorded interface in the guest now, if there is one and it is
    /// still the one made (see `How::recognises`); one that is not is left
    /// alone, saying so.
    async fn in_guest(&self) -> Result<Option<Link>> {
        let Some(inside) = self.inside else { return Ok(None) };
        Ok(inside.link(&self.iface.name).await?.filter(|link| {
            let made = self.iface.how.recognises(link, self.iface.mac);
            if !made {
                output::warning(format!(
                    "{} of {} is not the link pipework made there ({}, MAC {}; recorded: {}, MAC {}): left alone",
                    self.iface.name,
                    self.record.guest_name(),
                    link.kind_word(),
                    link.mac.map_or("none".into(), |m| m.to_string()),
                    self.iface.how.word(),
                    self.iface.mac,
                ));
            }
            made
        }))
    }

    /// The host's link of the recorded host-side name, if it is the one the
    /// attach made; one that took the name since (a bridge, another veth)
    /// is left alone, saying so.
    async fn host_side(&self) -> Result<Option<Link>> {
        let Some(name) = self.iface.host_side.as_deref().filter(|n| !n.is_empty()) else { return Ok(None) };
        let Some(link) = self.host.link(name).await? else { return Ok(None) };
        if made_on_host(self.iface, &link) {
            return Ok(Some(link));
        }
        output::warning(format!(
            "{name} on the host is not the link pipework made for {} of {} (it is a {} with index {} now): left alone",
            self.iface.name,
            self.record.guest_name(),
            link.kind_word(),
            link.index,
        ));
        Ok(None)
    }
}

/// Whether `link`, the host's link of `iface`'s host-side name, is the veth
/// the attach made: a veth whose peer is in another namespace (the guest
/// side is never on the host) with the guest side's recorded index, and,
/// where the record
/// keeps it (`host_link`; records of before it was kept have only the
/// rest), the index, kind and MAC it had.
pub fn made_on_host(iface: &Interface, link: &Link) -> bool {
    let elsewhere = link.peer_netnsid.is_some() && link.peer == Some(iface.ifindex);
    let veth = link.kind == Some(InfoKind::Veth) && elsewhere;
    veth && iface.host_link.as_ref().is_none_or(|id| link_id(link).as_ref() == Some(id))
}

/// What a record keeps of a link to tell it from one that takes its name
/// later (a link without a MAC is not kept).
pub fn link_id(link: &Link) -> Option<LinkId> {
    Some(LinkId { ifindex: link.index, kind: link.kind_word(), mac: link.mac? })
}

/// The steps that undo one recorded interface: what can be undone into
/// `plan` (a lent interface given back), deletions, which nothing brings
/// back, into `last`, for the end of the plan. What is gone already needs
/// nothing; shared things (bridges, VLAN devices, parents) stay, and so
/// does a link that took a recorded name since.
pub async fn teardown(t: &Teardown<'_>, plan: &mut Plan, last: &mut Vec<Step>) -> Result<()> {
    // The lease goes first, while its link is there to release it over.
    dhcp::teardown(t, plan);
    t.iface.how.teardown(t, plan, last).await
}

pub fn not_yet(what: String) -> Error {
    Error::new(Kind::Unsupported, format!("{what}: not supported by this version of pipework yet"))
}

/// The tail of every driver that makes a link on the host (or lends the
/// host's own): into the guest under its final name, the MAC, then the
/// addressing (the default route it replaces). Refuses a name the guest
/// already has, before any change.
async fn moved_in(
    plan: &mut Plan,
    ctx: &Context<'_>,
    host_name: &str,
    give_back: bool,
    ctr_if: &str,
) -> Result<Option<RouteMessage>> {
    if ctx.inside.link(ctr_if).await?.is_some() {
        return Err(Error::new(
            Kind::Conflict,
            format!("interface {ctr_if} already exists in {}", ctx.guest.label),
        ));
    }
    let netns = ctx.guest.netns_arg.clone();
    plan.push(Step::MoveToGuest { name: host_name.into(), to: ctr_if.into(), netns, give_back });
    if let Some(mac) = ctx.req.mac {
        plan.push(Step::SetMac { dev: ctr_if.into(), mac });
    }
    addressing::steps(plan, ctx, ctr_if, None).await
}

/// Refuses a name the host has already: a link made there must not clash.
async fn refuse_taken(host: &dyn Facts, name: &str) -> Result<()> {
    match host.link(name).await? {
        Some(_) => Err(Error::new(
            Kind::Conflict,
            format!("{name} already exists on the host; delete it or choose another -i"),
        )),
        None => Ok(()),
    }
}
