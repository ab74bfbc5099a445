//! The veth port both bridge drivers make (Linux bridge and Open vSwitch),
//! and the CNI plugin too (`VethSteps`, the steps alone): a veth pair, its
//! guest side born inside the guest under its final name, its host side put
//! on the bridge by the driver's own steps, then brought up, then the
//! guest's addressing. A veth goes whole with either end, which is how a
//! detach undoes it.

use rtnetlink::packet_route::link::InfoKind;
use rtnetlink::packet_route::route::RouteMessage;

use super::{addressing, Context, Teardown};
use crate::error::{Error, Kind, Result};
use crate::mac::Mac;
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
        refuse_in_the_way(plan, ctx, local, ctr_if).await?;
        let netns = &ctx.guest.netns_arg;
        let veth = VethSteps { host: local, guest: ctr_if, mtu, mac: ctx.req.mac, netns };
        plan.steps.extend(veth.port(attach));
        addressing::steps(plan, ctx, ctr_if, kernel_port.then_some(local.as_str())).await
    }

    /// The same on a Linux bridge: the host side enslaved to `bridge`,
    /// then `port`'s own steps (its VLAN).
    pub(super) async fn on_bridge(
        &self,
        plan: &mut Plan,
        ctx: &Context<'_>,
        mtu: u32,
        bridge: &str,
        port: Vec<Step>,
    ) -> Result<Option<RouteMessage>> {
        let attach = std::iter::once(enslave(&self.local, bridge)).chain(port).collect();
        self.plan(plan, ctx, mtu, attach, true).await
    }
}

/// The steps of a veth pair whose host side is a bridge's port, for the
/// drivers and the CNI plugin alike; planning's checks are the caller's.
pub struct VethSteps<'a> {
    /// The host side's name.
    pub host: &'a str,
    /// The guest side's name, born in the guest under it.
    pub guest: &'a str,
    /// Both ends'.
    pub mtu: u32,
    /// The guest side's, else the kernel's.
    pub mac: Option<Mac>,
    /// The guest's namespace as `CreateVeth` names it.
    pub netns: &'a str,
}

impl VethSteps<'_> {
    /// The pair, its host side without IPv6 of its own, `attach` (what puts
    /// the host side on its bridge, and what the port needs before it
    /// forwards), then the host side up.
    pub fn port(&self, attach: impl IntoIterator<Item = Step>) -> Vec<Step> {
        let (host, guest) = (self.host.to_string(), self.guest.to_string());
        let (mtu, mac, netns) = (self.mtu, self.mac, self.netns.to_string());
        let mut steps = vec![
            Step::CreateVeth { host: host.clone(), guest, mtu, mac, netns },
            Step::Ipv6 { side: Side::Host, dev: host.clone(), enable: false },
        ];
        steps.extend(attach);
        steps.push(Step::LinkUp { side: Side::Host, name: host });
        steps
    }

    /// The same on a Linux bridge: the host side enslaved to `bridge`, then
    /// `port`'s own steps (its VLAN, hairpin, checks), before it is up.
    pub fn on_bridge(&self, bridge: &str, port: impl IntoIterator<Item = Step>) -> Vec<Step> {
        self.port(std::iter::once(enslave(self.host, bridge)).chain(port))
    }
}

fn enslave(port: &str, bridge: &str) -> Step {
    Step::SetMaster { link: port.into(), bridge: bridge.into() }
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

/// Before the veth pair: a leftover host side that is down deleted first,
/// as the original did; what is in the way otherwise is refused now, not
/// half-way.
async fn refuse_in_the_way(plan: &mut Plan, ctx: &Context<'_>, local: &str, ctr_if: &str) -> Result<()> {
    let stale = match ctx.host.link(local).await? {
        Some(link) if link.up => {
            return Err(Error::verbatim(Kind::Conflict, format!("Link {local} exists and is up")).on_stdout())
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

#[cfg(test)]
mod tests {
    use super::VethSteps;
    use crate::plan::Step;

    /// A bridge port's steps, in the order both the bridge driver and CNI
    /// rely on: the pair, no IPv6 on the host side, enslaved, the port's
    /// own steps, then up.
    #[test]
    fn a_bridge_port_is_enslaved_and_set_up_before_it_is_up() {
        let veth = VethSteps { host: "veth1", guest: "eth0", mtu: 1400, mac: None, netns: "/run/netns/ctr" };
        let steps = veth.on_bridge("cni0", [Step::Hairpin { port: "veth1".into() }]);
        let lines: Vec<String> = steps.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            lines,
            [
                "ip link add veth1 mtu 1400 type veth peer name eth0 mtu 1400 netns /run/netns/ctr",
                "sysctl -qw net.ipv6.conf.veth1.disable_ipv6=1",
                "ip link set veth1 master cni0",
                "ip link set veth1 type bridge_slave hairpin on",
                "ip link set veth1 up",
            ]
        );
    }
}
