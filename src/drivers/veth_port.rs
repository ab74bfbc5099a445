//! The veth port both bridge drivers make (Linux bridge and Open vSwitch):
//! a veth pair, its guest side born inside the guest under its final name,
//! its host side put on the bridge by the driver's own steps, then brought
//! up, then the guest's addressing. A veth goes whole with either end, which
//! is how a detach undoes it.

use rtnetlink::packet_route::link::InfoKind;
use rtnetlink::packet_route::route::RouteMessage;

use super::{addressing, Context, Teardown};
use crate::error::{Error, Kind, Result};
use crate::plan::{Plan, Side, Step};
use crate::request::{check_ifname, Attach};

/// An empty bridge's MTU, which a bridge made by this run starts with.
pub(super) const NEW_BRIDGE_MTU: u32 = 1500;

/// The two ends' names: the interface in the guest (`-i`, else eth1) and
/// the host side (`-l`, else the original's `v<ctr_if>pl<N>`).
pub(super) struct VethPort {
    pub ctr_if: String,
    pub local: String,
}

impl VethPort {
    pub(super) fn named(ctx: &Context<'_>) -> Result<VethPort> {
        let ctr_if = ctx.guest_if("eth1").to_string();
        let local = match &ctx.req.local_if {
            Some(name) => name.clone(),
            None => default_name(&ctr_if, ctx.guest.name_number),
        };
        check_ifname(&local)
            .map_err(|e| Error::new(Kind::Usage, format!("{e}; choose a shorter host-side name with -l")))?;
        Ok(VethPort { ctr_if, local })
    }

    /// The port's steps after the bridge's own: the veth with `mtu` on both
    /// ends, `attach` (what puts the host side on the bridge), the host side
    /// up, the addressing (the default route it replaces). `kernel_port`: a
    /// Linux bridge's port, which must forward before the announcement (or
    /// DHCP) can get through.
    pub(super) async fn plan(
        &self,
        plan: &mut Plan,
        ctx: &Context<'_>,
        mtu: u32,
        attach: Vec<Step>,
        kernel_port: bool,
    ) -> Result<Option<RouteMessage>> {
        let (local, ctr_if) = (&self.local, &self.ctr_if);
        veth(plan, ctx, local, ctr_if, mtu).await?;
        plan.steps.extend(attach);
        plan.push(Step::LinkUp { side: Side::Host, name: local.clone() });
        addressing::steps(plan, ctx, ctr_if, kernel_port.then_some(local.as_str())).await
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

/// The veth pair, its guest side made inside the guest under its final
/// name, a leftover host side that is down deleted first, as the original
/// did; what is in the way otherwise is refused now, not half-way.
async fn veth(plan: &mut Plan, ctx: &Context<'_>, local: &str, ctr_if: &str, mtu: u32) -> Result<()> {
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

/// A veth goes whole with either end: the host side, if it is still the
/// one made, else the guest's end if that is.
pub async fn teardown(t: &Teardown<'_>, last: &mut Vec<Step>) -> Result<()> {
    if let Some(link) = t.host_side().await? {
        last.push(Step::DeleteLink { side: Side::Host, name: link.name });
    } else if t.in_guest().await?.is_some() {
        last.push(Step::DeleteLink { side: Side::Guest, name: t.iface.name.clone() });
    }
    Ok(())
}

/// The host side's name unless `-l` says otherwise, the original's
/// `v<IF>pl<N>` (`N` the guest's name number, its PID).
pub fn default_name(ctr_if: &str, number: u64) -> String {
    format!("v{ctr_if}pl{number}")
}

/// Whether `host_side` is the default name of `ctr_if`'s host side for
/// some guest (any PID).
pub fn is_default_name(host_side: &str, ctr_if: &str) -> bool {
    host_side
        .strip_prefix('v')
        .and_then(|rest| rest.strip_prefix(ctr_if))
        .and_then(|rest| rest.strip_prefix("pl"))
        .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}
