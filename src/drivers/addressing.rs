//! Address, link up, gateway and announcement, or DHCP (`dhcp`): the same
//! steps on every driver, from the request's addressing.
//!
//! `add_to` plans a command line's address added to an interface a run
//! made before (dual stack, a second address). It is here, not in a
//! driver: nothing is made but addressing, the same on every kind; and
//! `attach` picks it from the record before any driver plans, so that a
//! driver still refuses, as it always has, every other command line that
//! names an interface the guest has.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use rtnetlink::packet_route::route::RouteMessage;

use super::{Context, Facts};
use crate::error::{Error, Kind, Result};
use crate::family::Family;
use crate::plan::{Plan, Side, Step};
use crate::records::Interface;
use crate::request::Addressing;
use crate::sys::netlink::Link;

/// The refusals of the addressing made before the guest is looked up.
pub fn validate(addressing: &Addressing) -> Result<()> {
    match addressing {
        Addressing::Dhcp(dhcp) => super::dhcp::validate(dhcp),
        _ => Ok(()),
    }
}

/// The steps that give `dev` in the guest its addressing, and the guest's
/// default route they replace. `port` is the host side's bridge port, which
/// must forward before the announcement can get through.
pub async fn steps(
    plan: &mut Plan,
    ctx: &Context<'_>,
    dev: &str,
    port: Option<&str>,
) -> Result<Option<RouteMessage>> {
    let mut replaced = None;
    match &ctx.req.addr {
        Addressing::Static { net, gateway } => {
            let any_ipv6 = net.is_ipv6() || ctx.req.more_addresses.iter().any(|(n, _)| n.is_ipv6());
            let lacks_ipv6 = any_ipv6 && guest_lacks_ipv6(ctx)?;
            if net.is_ipv6() && lacks_ipv6 {
                plan.push(Step::Ipv6 { side: Side::Guest, dev: dev.into(), enable: true });
            }
            plan.push(Step::AddAddress { dev: dev.into(), net: *net });
            if let Some(gw) = gateway {
                replaced = delete_default(plan, ctx.inside, *gw).await?;
            }
            plan.push(Step::LinkUp { side: Side::Guest, name: dev.into() });
            if let Some(gw) = gateway {
                gateway_steps(plan, *gw, dev);
            }
            announce(plan, *net, dev, port);
            // A replay's further addresses, as `add_to` added them.
            let mut ipv6_on = net.is_ipv6() || !lacks_ipv6;
            for (net, gateway) in &ctx.req.more_addresses {
                let enable = net.is_ipv6() && !ipv6_on;
                ipv6_on |= net.is_ipv6();
                another(plan, ctx.inside, dev, *net, *gateway, enable, port).await?;
            }
        }
        Addressing::None => plan.push(Step::LinkUp { side: Side::Guest, name: dev.into() }),
        Addressing::Dhcp(dhcp) => super::dhcp::steps(plan, ctx, dhcp, dev, port)?,
    }
    Ok(replaced)
}

/// An address added to an interface a run made before, and the gateway it
/// brings (None: its family's is recorded already).
#[derive(Debug)]
pub struct Added {
    pub plan: Plan,
    /// None: the address is there already, only its gateway is new.
    pub net: Option<IpNetwork>,
    pub gateway: Option<IpAddr>,
    /// The guest's default route of the gateway's family it replaces.
    pub replaced_default: Option<RouteMessage>,
}

/// The steps that add the command line's address to `iface`, recorded
/// and in the guest as `link`, each with its undo: the interface and what
/// it had stay as they are on a rollback. None: it has that address (and
/// that gateway) already. One gateway a family: another is refused.
pub async fn add_to(ctx: &Context<'_>, iface: &Interface, link: &Link) -> Result<Option<Added>> {
    let (name, guest) = (&iface.name, &ctx.guest.label);
    let conflict = |why: String| Error::new(Kind::Conflict, why);
    let (net, gateway) = match &ctx.req.addr {
        Addressing::None => return Ok(None),
        Addressing::Dhcp(_) => {
            return Err(conflict(format!(
                "{name} of {guest} exists already: DHCP configures only an interface it makes \
                 (detach {name} first)"
            )))
        }
        Addressing::Static { .. } if iface.dhcp.is_some() => {
            return Err(conflict(format!(
                "{name} of {guest} is configured by DHCP: no address is added to it"
            )))
        }
        Addressing::Static { net, gateway } => (*net, *gateway),
    };
    if let Some(had) = iface.addresses.iter().find(|a| a.ip() == net.ip() && a.prefix() != net.prefix()) {
        return Err(conflict(format!("{} is on {name} of {guest} already, as {had}", net.ip())));
    }
    let gateway = match (gateway, iface.gateway_of(Family::of(net.ip()))) {
        (Some(asked), Some(had)) if asked != had => {
            let family = if had.is_ipv4() { "IPv4" } else { "IPv6" };
            return Err(conflict(format!("{name} of {guest} has the {family} gateway {had} already")));
        }
        (Some(asked), None) => Some(asked),
        _ => None,
    };
    let new = (!iface.addresses.contains(&net)).then_some(net);
    if new.is_none() && gateway.is_none() {
        return Ok(None);
    }
    let mut plan = ctx.new_plan();
    let replaced_default = match new {
        Some(net) => {
            let enable = net.is_ipv6() && link.ipv6_disabled == Some(true);
            another(&mut plan, ctx.inside, name, net, gateway, enable, None).await?
        }
        None => match gateway {
            Some(gw) => {
                let replaced = delete_default(&mut plan, ctx.inside, gw).await?;
                gateway_steps(&mut plan, gw, name);
                replaced
            }
            None => None,
        },
    };
    Ok(Some(Added { plan, net: new, gateway, replaced_default }))
}

/// One more address on `dev`, which is up: its own undo, its gateway's
/// steps, its announcement; the default route its gateway replaces.
async fn another(
    plan: &mut Plan,
    inside: &dyn Facts,
    dev: &str,
    net: IpNetwork,
    gateway: Option<IpAddr>,
    enable_ipv6: bool,
    port: Option<&str>,
) -> Result<Option<RouteMessage>> {
    if enable_ipv6 {
        plan.push(Step::Ipv6 { side: Side::Guest, dev: dev.into(), enable: true });
    }
    plan.push(Step::AddAnotherAddress { dev: dev.into(), net });
    let mut replaced = None;
    if let Some(gw) = gateway {
        replaced = delete_default(plan, inside, gw).await?;
        gateway_steps(plan, gw, dev);
    }
    announce(plan, net, dev, port);
    Ok(replaced)
}

/// The guest's default route of `gw`'s family, deleted for its own.
async fn delete_default(plan: &mut Plan, inside: &dyn Facts, gw: IpAddr) -> Result<Option<RouteMessage>> {
    let family = Family::of(gw);
    let route = inside.default_routes(family).await?.into_iter().next();
    if let Some(route) = &route {
        plan.push(Step::DeleteDefault { family, route: Box::new(route.clone()) });
    }
    Ok(route)
}

fn gateway_steps(plan: &mut Plan, gw: IpAddr, dev: &str) {
    plan.push(Step::GatewayRoute { gateway: gw, dev: dev.into() });
    plan.push(Step::ReplaceDefault { gateway: gw, dev: dev.into() });
}

/// IPv6 neighbours learn from the kernel's own DAD and NA.
fn announce(plan: &mut Plan, net: IpNetwork, dev: &str, port: Option<&str>) {
    if let IpAddr::V4(ip) = net.ip() {
        plan.push(Step::Announce { dev: dev.into(), ip, port: port.map(String::from) });
    }
}

/// Whether interfaces made in the guest start with IPv6 disabled (Docker's
/// `--net=none` containers).
fn guest_lacks_ipv6(ctx: &Context<'_>) -> Result<bool> {
    ctx.inside.ipv6_off_by_default(Some(ctx.guest.netns()))
}
