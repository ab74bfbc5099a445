//! Connecting a guest: classify the host interface, refuse what cannot be
//! done, find the guest, plan, then print or apply the plan.

use crate::apply::{apply, Target};
use crate::error::{Error, Result};
use crate::guest;
use crate::host::{classify, HostKind};
use crate::netlink::Netlink;
use crate::request::{Addressing, Attach};

pub async fn attach(req: &Attach, dry_run: bool) -> Result<()> {
    let host = Netlink::here()?;
    let kind = classify(&host, &req.host).await?;
    refuse(req, &kind)?;
    let guest = guest::resolve(&req.guest).await?;
    let inside = Netlink::inside(guest.netns())?;
    let plan = match &kind {
        HostKind::LinuxBridge { name, existing } => {
            crate::bridge::plan(req, name, existing.as_ref(), &guest, &host, &inside).await?
        }
        _ => unreachable!("refused above"),
    };
    if dry_run {
        for step in &plan.steps {
            println!("{}", plan.command(step));
        }
        return Ok(());
    }
    apply(&plan, &Target { host: &host, guest: &inside, guest_ns: guest.netns() }).await
}

/// The original's refusals, then what this version does not do yet.
fn refuse(req: &Attach, kind: &HostKind) -> Result<()> {
    match kind {
        HostKind::LinuxBridge { .. } if req.vlan.is_some() => {
            return Err(Error::plain("VLAN configuration currently unsupported for Linux bridge."))
        }
        HostKind::IpoIb(_) if req.mac.is_some() => {
            return Err(Error::plain("MACADDR configuration unsupported for IPoIB interfaces."))
        }
        _ => {}
    }
    let missing = match kind {
        HostKind::LinuxBridge { .. } if req.direct_phys => Some("--direct-phys with a bridge".to_string()),
        HostKind::LinuxBridge { .. } => None,
        HostKind::OpenVswitch { name } => Some(format!("Open vSwitch bridge {name}")),
        HostKind::IpoIb(link) => Some(format!("IPoIB interface {}", link.name)),
        HostKind::Physical(link) => {
            Some(format!("physical interface {} (macvlan, --direct-phys)", link.name))
        }
        HostKind::Dummy { name } => Some(format!("dummy interface {name}")),
    };
    if let Some(what) = missing {
        return Err(Error::new(format!("{what}: not supported by this version of pipework yet")));
    }
    if let Addressing::Dhcp(dhcp) = &req.addr {
        return Err(Error::new(format!(
            "DHCP ({}): not supported by this version of pipework yet",
            dhcp.client.program()
        )));
    }
    Ok(())
}
