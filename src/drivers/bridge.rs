//! The Linux-bridge driver: a veth pair, host side on the bridge, guest side
//! created inside the guest under its final name; with `@VLAN`, the port
//! untagged on that VLAN. The veth part is shared with the Open vSwitch
//! driver.

use futures::future::BoxFuture;
use rtnetlink::packet_route::link::InfoKind;

use super::{addressing, made_by_pipework, Context, Driver, Teardown};
use crate::error::{Error, Kind, Result};
use crate::plan::{Plan, Side, Step};
use crate::request::{check_ifname, Attach, Tag};
use crate::sys::netlink::Link;

/// An empty bridge's MTU, which a bridge made by this run starts with.
pub(super) const NEW_BRIDGE_MTU: u32 = 1500;

/// An existing Linux bridge, or a `br*` name to create.
pub struct Bridge {
    pub name: String,
    pub existing: Option<Link>,
}

impl Driver for Bridge {
    fn validate(&self, req: &Attach) -> Result<()> {
        if let Some(tag) = &req.tag {
            tag.vlan_id()?;
            // Filtering changes every port of the bridge: on one that has
            // ports already, the operator turns it on, not pipework.
            if self.existing.as_ref().is_some_and(|b| !b.vlan_filtering) {
                let name = &self.name;
                return Err(Error::new(
                    Kind::Unsupported,
                    format!(
                        "bridge {name} does not filter VLANs; turn it on with \
                         `ip link set {name} type bridge vlan_filtering 1` (this changes every port)"
                    ),
                ));
            }
        }
        refuse_direct_phys(req, &self.name)
    }

    fn plan<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Plan>> {
        Box::pin(self.steps(ctx))
    }
}

impl Bridge {
    async fn steps(&self, ctx: &Context<'_>) -> Result<Plan> {
        let vlan = ctx.req.tag.as_ref().map(Tag::vlan_id).transpose()?;
        let ctr_if = ctx.guest_if("eth1");
        let local = local_name(ctx, ctr_if)?;
        let mut plan = ctx.new_plan();
        let mtu = match &self.existing {
            Some(link) => link.mtu,
            None => {
                plan.push(Step::CreateBridge { name: self.name.clone(), mtu: None });
                if vlan.is_some() {
                    plan.push(Step::VlanFiltering { bridge: self.name.clone() });
                }
                NEW_BRIDGE_MTU
            }
        };
        veth(&mut plan, ctx, &local, ctr_if, mtu).await?;
        plan.push(Step::SetMaster { link: local.clone(), bridge: self.name.clone() });
        if let Some(vid) = vlan {
            // The VLAN the bridge gives every new port: 1 unless changed.
            let default = self.existing.as_ref().map_or(1, |b| b.default_pvid);
            let drop = (default != 0 && default != vid).then_some(default);
            plan.push(Step::PortVlan { port: local.clone(), vid, drop });
        }
        plan.push(Step::LinkUp { side: Side::Host, name: local.clone() });
        addressing::steps(&mut plan, ctx, ctr_if, Some(&local)).await?;
        Ok(plan)
    }
}

/// `--direct-phys` with a bridge of either kind.
pub(super) fn refuse_direct_phys(req: &Attach, bridge: &str) -> Result<()> {
    match req.direct_phys {
        true => Err(Error::new(
            Kind::Usage,
            format!("--direct-phys moves a physical interface; {bridge} is a bridge"),
        )),
        false => Ok(()),
    }
}

/// The veth's host side: `-l`, else the original's `v<ctr_if>pl<N>`.
pub(super) fn local_name(ctx: &Context<'_>, ctr_if: &str) -> Result<String> {
    let local = match &ctx.req.local_if {
        Some(name) => name.clone(),
        None => format!("v{ctr_if}pl{}", ctx.guest.name_number),
    };
    check_ifname(&local)
        .map_err(|e| Error::new(Kind::Usage, format!("{e}; choose a shorter host-side name with -l")))?;
    Ok(local)
}

/// The veth pair, its guest side made inside the guest under its final
/// name, a leftover host side that is down deleted first, as the original
/// did; what is in the way otherwise is refused now, not half-way.
pub(super) async fn veth(
    plan: &mut Plan,
    ctx: &Context<'_>,
    local: &str,
    ctr_if: &str,
    mtu: u32,
) -> Result<()> {
    let stale = match ctx.host.link(local).await? {
        Some(link) if link.up => {
            return Err(Error::original(Kind::Conflict, format!("Link {local} exists and is up")).on_stdout())
        }
        // The original deleted whatever had that name; a veth is all we delete.
        Some(link) if link.kind != Some(InfoKind::Veth) => {
            return Err(Error::new(
                Kind::Conflict,
                format!("{local} exists and is not a veth; refusing to delete it"),
            ))
        }
        Some(_) => {
            plan.push(Step::DeleteStale { name: local.into() });
            true
        }
        None => false,
    };
    // A leftover down veth may be the peer of the guest's interface, which
    // goes with it.
    if let Some(taken) = ctx.inside.link(ctr_if).await? {
        if !(stale && taken.kind == Some(InfoKind::Veth)) {
            return Err(Error::new(
                Kind::Conflict,
                format!("interface {ctr_if} already exists in {}", ctx.guest.label),
            ));
        }
    }
    let netns = ctx.guest.netns_arg.clone();
    let mac = ctx.req.mac;
    plan.push(Step::CreateVeth { host: local.into(), guest: ctr_if.into(), mtu, mac, netns });
    plan.push(Step::Ipv6 { side: Side::Host, dev: local.into(), enable: false });
    Ok(())
}

/// A veth goes whole with either end: the host side, ours by name, else
/// the guest's end if the host side is gone already.
pub async fn teardown(t: &Teardown<'_>, last: &mut Vec<Step>) -> Result<()> {
    let host_side = t.iface.host_side.as_deref().unwrap_or_default();
    if !host_side.is_empty() && t.host.link(host_side).await?.is_some() {
        last.push(Step::DeleteLink { side: Side::Host, name: host_side.to_string() });
    } else if t.in_guest().await?.is_some_and(|l| made_by_pipework(&l)) {
        last.push(Step::DeleteLink { side: Side::Guest, name: t.iface.name.clone() });
    }
    Ok(())
}
