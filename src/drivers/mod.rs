//! The drivers: how a guest is connected, one a kind of host interface.
//! `for_host` picks the driver from what the host interface is; each one
//! refuses what it cannot do (`validate`, before the guest is looked up),
//! then lists its steps (`plan`), changing nothing. The addressing steps
//! (`addressing`) are the same for all of them.
//!
//! Undoing an attachment goes by its record, not by a `Driver` (the host
//! interface it was made from may be gone): `teardown` picks each kind's
//! steps from how the record says the interface got into the guest.

pub mod addressing;
pub mod bridge;
pub mod dhcp;
pub mod direct;
pub mod dummy;
pub mod ipoib;
pub mod macvlan;
pub mod ovs;

use futures::future::BoxFuture;
use rtnetlink::packet_route::link::InfoKind;

use crate::error::{Error, Kind, Result};
use crate::plan::{Plan, Side, Step};
use crate::request::Attach;
use crate::resolve::guest::Guest;
use crate::resolve::host::HostKind;
use crate::state::{Attached, How, Interface, Record};
use crate::sys::netlink::{Link, Netlink};

/// Everything a driver plans with: the request, the guest it names, and a
/// netlink connection on each side.
pub struct Context<'a> {
    pub req: &'a Attach,
    pub guest: &'a Guest,
    pub host: &'a Netlink,
    pub inside: &'a Netlink,
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

pub trait Driver {
    /// The refusals that need only the request and the host interface,
    /// made before the guest is looked up, as the original made them.
    fn validate(&self, _req: &Attach) -> Result<()> {
        Ok(())
    }

    /// Checks everything against the system and lists the steps; changes
    /// nothing.
    fn plan<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Plan>>;
}

/// The driver for a host interface of this kind.
pub fn for_host(kind: HostKind, req: &Attach) -> Result<Box<dyn Driver>> {
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
    pub host: &'a Netlink,
    pub inside: Option<&'a Netlink>,
}

impl Teardown<'_> {
    /// The recorded interface in the guest now, if there is one.
    async fn in_guest(&self) -> Result<Option<Link>> {
        match self.inside {
            Some(nl) => nl.link(&self.iface.name).await,
            None => Ok(None),
        }
    }
}

/// The steps that undo one recorded interface: what can be undone into
/// `plan` (a lent interface given back), deletions, which nothing brings
/// back, into `last`, for the end of the plan. What is gone already needs
/// nothing; shared things (bridges, VLAN devices, parents) stay.
pub async fn teardown(t: &Teardown<'_>, plan: &mut Plan, last: &mut Vec<Step>) -> Result<()> {
    // The lease goes first, while its link is there to release it over.
    dhcp::teardown(t, plan);
    match t.iface.how {
        How::Veth => match &t.iface.attached_to {
            Attached::Ovs { bridge, port } => ovs::teardown(t, bridge, port, last).await,
            _ => bridge::teardown(t, last).await,
        },
        How::Moved => direct::teardown(t, plan).await,
        How::Macvlan | How::Dummy | How::Ipoib => delete_in_guest(t, last).await,
    }
}

/// A link made on the host and moved in: deleted in the guest, if it is
/// still of a kind pipework makes.
async fn delete_in_guest(t: &Teardown<'_>, last: &mut Vec<Step>) -> Result<()> {
    if t.in_guest().await?.is_some_and(|l| made_by_pipework(&l)) {
        last.push(Step::DeleteLink { side: Side::Guest, name: t.iface.name.clone() });
    }
    Ok(())
}

/// The kinds of link pipework makes in a guest, which a detach may delete.
pub fn made_by_pipework(link: &Link) -> bool {
    matches!(link.kind, Some(InfoKind::Veth | InfoKind::MacVlan | InfoKind::Dummy | InfoKind::Ipoib))
}

pub fn not_yet(what: String) -> Error {
    Error::new(Kind::Unsupported, format!("{what}: not supported by this version of pipework yet"))
}

/// The tail of every driver that makes a link on the host (or lends the
/// host's own): into the guest under its final name, the MAC, then the
/// addressing. Refuses a name the guest already has, before any change.
async fn moved_in(
    plan: &mut Plan,
    ctx: &Context<'_>,
    host_name: &str,
    give_back: bool,
    ctr_if: &str,
) -> Result<()> {
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
async fn refuse_taken(host: &Netlink, name: &str) -> Result<()> {
    match host.link(name).await? {
        Some(_) => Err(Error::new(
            Kind::Conflict,
            format!("{name} already exists on the host; delete it or choose another -i"),
        )),
        None => Ok(()),
    }
}
