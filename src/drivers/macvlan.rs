//! Physical host interfaces: a macvlan child in bridge mode (`ph<pid><if>`,
//! with the parent's MTU), optionally on a VLAN `<if>.<vid>`, or with
//! `--direct-phys` the interface itself, lent to the guest. Also the two
//! other links made on the host and moved in: dummy and IPoIB children.
//!
//! The original made these links on the host under their final names, then
//! moved and renamed them in two steps; here the move and the rename are one
//! request, and a name taken on the host is refused before anything changes.

use crate::error::{Error, Result};
use crate::plan::{NewLink, Plan, Side, Step};
use crate::request::{self, check_ifname, Attach, IFNAME_MAX};
use crate::resolve::guest::Guest;
use crate::sys::netlink::{Link, Netlink};

pub async fn plan(
    req: &Attach,
    parent: &Link,
    guest: &Guest,
    host: &Netlink,
    inside: &Netlink,
) -> Result<Plan> {
    let ctr_if = req.container_if.as_deref().unwrap_or("eth1");
    let mut plan = Plan::new(guest);
    let mtu = parent.mtu;
    let mut lower = parent.name.clone();
    if let Some(tag) = &req.vlan {
        let vid = request::vlan_id(tag)?;
        let name = format!("{}.{vid}", parent.name);
        check_ifname(&name).map_err(|e| Error::new(format!("VLAN device: {e}")))?;
        match host.link(&name).await? {
            Some(vlan)
                if vlan.kind == Some(rtnetlink::packet_route::link::InfoKind::Vlan)
                    && vlan.vlan_id == Some(vid) => {}
            Some(_) => {
                return Err(Error::new(format!("{name} exists but is not a VLAN device for tag {vid}")))
            }
            None => {
                plan.push(Step::CreateLink {
                    name: name.clone(),
                    kind: NewLink::Vlan { parent: lower.clone(), vid, mtu },
                });
            }
        }
        plan.push(Step::LinkUp { side: Side::Host, name: lower });
        lower = name;
    }
    if req.direct_phys {
        plan.add_moved_in(&lower, true, req, ctr_if, guest, inside).await?;
        return Ok(plan);
    }
    let name = cut(format!("ph{}{ctr_if}", guest.nspid));
    refuse_taken(host, &name).await?;
    plan.push(Step::CreateLink { name: name.clone(), kind: NewLink::Macvlan { parent: lower.clone(), mtu } });
    plan.push(Step::LinkUp { side: Side::Host, name: lower });
    plan.add_moved_in(&name, false, req, ctr_if, guest, inside).await?;
    Ok(plan)
}

/// `du<pid><if>`, made on the host and moved in.
pub async fn plan_dummy(req: &Attach, guest: &Guest, host: &Netlink, inside: &Netlink) -> Result<Plan> {
    let ctr_if = req.container_if.as_deref().unwrap_or("eth1");
    let name = format!("du{}{ctr_if}", guest.nspid);
    check_ifname(&name).map_err(|e| Error::new(format!("{e}; choose a shorter -i")))?;
    refuse_taken(host, &name).await?;
    let mut plan = Plan::new(guest);
    plan.push(Step::CreateLink { name: name.clone(), kind: NewLink::Dummy });
    plan.add_moved_in(&name, false, req, ctr_if, guest, inside).await?;
    Ok(plan)
}

/// An IPoIB child `<if>.<pid>`, or `<if>.<pkey>.<pid>` with a partition key.
pub async fn plan_ipoib(
    req: &Attach,
    parent: &Link,
    guest: &Guest,
    host: &Netlink,
    inside: &Netlink,
) -> Result<Plan> {
    // The IPoIB driver is fussy about names: ib0 unless told otherwise.
    let ctr_if = req.container_if.as_deref().unwrap_or("ib0");
    let pkey = req.vlan.as_deref().map(request::pkey).transpose()?;
    let name = match (&req.vlan, pkey) {
        (Some(tag), Some(_)) => format!("{}.{tag}.{}", parent.name, guest.nspid),
        _ => format!("{}.{}", parent.name, guest.nspid),
    };
    check_ifname(&name).map_err(|e| Error::new(format!("IPoIB child: {e}")))?;
    refuse_taken(host, &name).await?;
    let mut plan = Plan::new(guest);
    plan.push(Step::CreateLink {
        name: name.clone(),
        kind: NewLink::Ipoib { parent: parent.name.clone(), pkey },
    });
    plan.push(Step::LinkUp { side: Side::Host, name: parent.name.clone() });
    plan.add_moved_in(&name, false, req, ctr_if, guest, inside).await?;
    Ok(plan)
}

/// The original cut `ph<pid><if>` to the kernel's 15 bytes.
fn cut(mut name: String) -> String {
    name.truncate(IFNAME_MAX);
    name
}

async fn refuse_taken(host: &Netlink, name: &str) -> Result<()> {
    match host.link(name).await? {
        Some(_) => {
            Err(Error::new(format!("{name} already exists on the host; delete it or choose another -i")))
        }
        None => Ok(()),
    }
}
