//! The Linux-bridge path: a veth pair, host side on the bridge, guest side
//! created inside the guest under its final name.

use rtnetlink::packet_route::link::InfoKind;

use crate::error::{Error, Result};
use crate::plan::{Plan, Side, Step};
use crate::request::{check_ifname, Attach};
use crate::resolve::guest::Guest;
use crate::sys::netlink::{Link, Netlink};

/// An empty bridge's MTU, which a bridge made by this run starts with.
const NEW_BRIDGE_MTU: u32 = 1500;

/// Checks everything and lists the steps; changes nothing.
pub async fn plan(
    req: &Attach,
    bridge: &str,
    existing: Option<&Link>,
    guest: &Guest,
    host: &Netlink,
    inside: &Netlink,
) -> Result<Plan> {
    let ctr_if = req.container_if.as_deref().unwrap_or("eth1");
    let local = match &req.local_if {
        Some(name) => name.clone(),
        None => format!("v{ctr_if}pl{}", guest.nspid),
    };
    check_ifname(&local).map_err(|e| Error::new(format!("{e}; choose a shorter host-side name with -l")))?;

    let mut plan = Plan::new(guest);
    let mtu = match existing {
        Some(link) => link.mtu,
        None => {
            plan.push(Step::CreateBridge { name: bridge.into() });
            NEW_BRIDGE_MTU
        }
    };

    let stale = match host.link(&local).await? {
        Some(link) if link.up => return Err(Error::stdout(format!("Link {local} exists and is up"))),
        // The original deleted whatever had that name; a veth is all we delete.
        Some(link) if link.kind != Some(InfoKind::Veth) => {
            return Err(Error::new(format!("{local} exists and is not a veth; refusing to delete it")))
        }
        Some(_) => {
            plan.push(Step::DeleteStale { name: local.clone() });
            true
        }
        None => false,
    };
    // A leftover down veth may be the peer of the guest's interface, which
    // goes with it; anything else in the way is refused now, not half-way.
    if let Some(taken) = inside.link(ctr_if).await? {
        if !(stale && taken.kind == Some(InfoKind::Veth)) {
            return Err(Error::new(format!("interface {ctr_if} already exists in {}", guest.label)));
        }
    }

    let netns = guest.netns_arg.clone();
    plan.push(Step::CreateVeth { host: local.clone(), guest: ctr_if.into(), mtu, mac: req.mac, netns });
    plan.push(Step::Ipv6 { side: Side::Host, dev: local.clone(), enable: false });
    plan.push(Step::SetMaster { link: local.clone(), bridge: bridge.into() });
    plan.push(Step::LinkUp { side: Side::Host, name: local.clone() });
    plan.add_addressing(&req.addr, ctr_if, Some(&local), inside, guest.netns()).await?;
    Ok(plan)
}
