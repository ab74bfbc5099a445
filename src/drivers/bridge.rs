//! The Linux-bridge driver: a veth port (`veth_port`) enslaved to the
//! bridge, which is made if absent; with `@VLAN`, the port untagged on that
//! VLAN, VLAN filtering on for a bridge made here or on request.

use futures::future::BoxFuture;

use super::veth_port::{refuse_direct_phys, VethPort, NEW_BRIDGE_MTU};
use super::{Context, Driver, Facts, Made, Planned};
use crate::error::{Error, Kind, Result};
use crate::plan::Step;
use crate::records::{Attached, How};
use crate::request::{Attach, Tag};
use crate::sys::netlink::Link;
use crate::sys::output;

/// An existing Linux bridge, or a `br*` name to create.
pub struct Bridge {
    pub name: String,
    pub existing: Option<Link>,
}

impl Driver for Bridge {
    fn validate(&self, req: &Attach) -> Result<()> {
        if let Some(tag) = &req.tag {
            tag.vlan_id()?;
        } else if req.vlan_filtering {
            return Err(Error::new(Kind::Usage, "--vlan-filtering goes with @VLAN"));
        }
        // Filtering changes every port of the bridge: on one that has
        // ports already, only on the operator's request.
        if req.tag.is_some() && !req.vlan_filtering && self.lacks_filtering() {
            let name = &self.name;
            return Err(Error::new(
                Kind::Unsupported,
                format!(
                    "bridge {name} does not filter VLANs; add --vlan-filtering to turn it on \
                     (`ip link set {name} type bridge vlan_filtering 1`: this changes every port)"
                ),
            ));
        }
        refuse_direct_phys(req, &self.name)
    }

    fn plan<'a>(&'a self, ctx: &'a Context<'a>) -> BoxFuture<'a, Result<Planned>> {
        Box::pin(self.steps(ctx))
    }
}

impl Bridge {
    /// An existing bridge whose VLAN filtering is off.
    fn lacks_filtering(&self) -> bool {
        self.existing.as_ref().is_some_and(|b| !b.vlan_filtering)
    }

    async fn steps(&self, ctx: &Context<'_>) -> Result<Planned> {
        let vlan = ctx.req.tag.as_ref().map(Tag::vlan_id).transpose()?;
        let port = VethPort::named(ctx)?;
        let mut plan = ctx.new_plan();
        let mtu = match &self.existing {
            Some(link) => {
                if ctx.req.vlan_filtering && self.lacks_filtering() {
                    plan.push(Step::VlanFiltering { bridge: self.name.clone() });
                }
                link.mtu
            }
            None => {
                plan.push(Step::CreateBridge { name: self.name.clone(), mtu: None });
                if vlan.is_some() {
                    plan.push(Step::VlanFiltering { bridge: self.name.clone() });
                }
                NEW_BRIDGE_MTU
            }
        };
        let own = self.existing.as_ref().map_or([false; 2], |b| b.nf_call);
        plan.steps.extend(let_through(ctx.host, &self.name, own, ctx.req.no_firewall)?);
        let mut on_port = Vec::new();
        if let Some(vid) = vlan {
            // The VLAN the bridge gives every new port: 1 unless changed.
            let default = self.existing.as_ref().map_or(1, |b| b.default_pvid);
            let drop = (default != 0 && default != vid).then_some(default);
            on_port.push(Step::PortVlan { port: port.local.clone(), vid, drop });
        }
        let replaced_default = port.on_bridge(&mut plan, ctx, mtu, &self.name, on_port).await?;
        let made = Made {
            name: port.ctr_if,
            how: How::Veth,
            host_side: Some(port.local),
            attached_to: Attached::Bridge(self.name.clone()),
            vlan,
            replaced_default,
        };
        Ok(Planned { plan, made })
    }
}

/// The step that lets `bridge`'s own traffic (frames it forwards to
/// itself) through a FORWARD hook that would drop it, if a rule is
/// missing (`own`: the bridge's own `nf_call_*`). With `--no-firewall`,
/// none: stderr says what is dropped and the command that would let it
/// through.
pub fn let_through(
    host: &dyn Facts,
    bridge: &str,
    own: [bool; 2],
    no_firewall: bool,
) -> Result<Option<Step>> {
    let missing = host.forward_missing(bridge, own)?;
    if missing.is_empty() {
        return Ok(None);
    }
    if no_firewall {
        for rule in &missing {
            output::warning(format!(
                "the FORWARD hook drops the traffic {bridge} forwards between its ports \
                 (br_netfilter, policy DROP); --no-firewall leaves it so; to let it through: {}",
                rule.command(bridge)
            ));
        }
        return Ok(None);
    }
    Ok(Some(Step::ForwardAccept { bridge: bridge.to_string(), rules: missing }))
}
