//! Connecting a guest: classify the host interface, refuse what cannot be
//! done, find the guest, plan, then print or apply the plan.

use std::os::fd::AsFd;

use crate::apply::{apply, Target};
use crate::drivers::macvlan as physical;
use crate::error::{Error, Result};
use crate::request::{Addressing, Attach};
use crate::resolve::guest;
use crate::resolve::host::{classify, HostKind};
use crate::sys::netlink::Netlink;

pub async fn attach(req: &Attach, dry_run: bool) -> Result<()> {
    let host = Netlink::here()?;
    let kind = classify(&host, &req.host).await?;
    refuse(req, &kind)?;
    let guest = guest::resolve(&req.guest).await?;
    if guest.is_here()? {
        return Err(Error::new(format!(
            "{} shares this network namespace (a --net=host container?): there is nothing to connect",
            guest.label
        )));
    }
    let inside = Netlink::inside(guest.netns())?;
    let plan = match &kind {
        HostKind::LinuxBridge { name, existing } => {
            crate::drivers::bridge::plan(req, name, existing.as_ref(), &guest, &host, &inside).await?
        }
        HostKind::Physical(link) => physical::plan(req, link, &guest, &host, &inside).await?,
        HostKind::Dummy { .. } => physical::plan_dummy(req, &guest, &host, &inside).await?,
        HostKind::IpoIb(link) => physical::plan_ipoib(req, link, &guest, &host, &inside).await?,
        HostKind::OpenVswitch { name } => return Err(not_yet(format!("Open vSwitch bridge {name}"))),
    };
    if dry_run {
        plan.print();
        return Ok(());
    }
    let own = crate::sys::netns::current()?;
    apply(&plan, &Target { host: &host, guest: &inside, host_ns: own.as_fd(), guest_ns: guest.netns() }).await
}

/// The original's refusals, and what this version does not do yet; before
/// the guest is looked up, as the original had them.
fn refuse(req: &Attach, kind: &HostKind) -> Result<()> {
    match kind {
        HostKind::LinuxBridge { .. } if req.vlan.is_some() => {
            Err(Error::plain("VLAN configuration currently unsupported for Linux bridge."))
        }
        HostKind::IpoIb(_) if req.mac.is_some() => {
            Err(Error::plain("MACADDR configuration unsupported for IPoIB interfaces."))
        }
        HostKind::LinuxBridge { name, .. } if req.direct_phys => {
            Err(Error::new(format!("--direct-phys moves a physical interface; {name} is a bridge")))
        }
        _ => match &req.addr {
            Addressing::Dhcp(dhcp) => Err(not_yet(format!("DHCP ({})", dhcp.client.program()))),
            _ => Ok(()),
        },
    }
}

fn not_yet(what: String) -> Error {
    Error::new(format!("{what}: not supported by this version of pipework yet"))
}
