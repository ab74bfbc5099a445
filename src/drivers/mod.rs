//! The drivers: how a guest is connected, one a kind of host interface.
//! `for_host` picks the driver from what the host interface is; each one
//! refuses what it cannot do (`validate`, before the guest is looked up),
//! then lists its steps (`plan`), changing nothing. The addressing steps
//! (`addressing`) are the same for all of them.
//!
//! Undoing an attachment from a record of it (detach, watch) is the next
//! method of `Driver`, with the records: a driver then plans its teardown
//! from what the record says it made.

pub mod addressing;
pub mod bridge;
pub mod direct;
pub mod dummy;
pub mod ipoib;
pub mod macvlan;
pub mod ovs;

use futures::future::BoxFuture;

use crate::error::{Error, Kind, Result};
use crate::plan::{Plan, Step};
use crate::request::Attach;
use crate::resolve::guest::Guest;
use crate::resolve::host::HostKind;
use crate::sys::netlink::Netlink;

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
