//! Address, link up, gateway and announcement, or DHCP (`dhcp`): the same
//! steps on every driver, from the request's addressing.

use std::net::IpAddr;

use rtnetlink::packet_route::route::RouteMessage;

use super::Context;
use crate::error::Result;
use crate::family::Family;
use crate::plan::{Plan, Side, Step};
use crate::request::Addressing;

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
            if net.is_ipv6() && guest_lacks_ipv6(ctx)? {
                plan.push(Step::Ipv6 { side: Side::Guest, dev: dev.into(), enable: true });
            }
            plan.push(Step::AddAddress { dev: dev.into(), net: *net });
            if let Some(gw) = gateway {
                let family = Family::of(*gw);
                if let Some(route) = ctx.inside.default_routes(family).await?.into_iter().next() {
                    plan.push(Step::DeleteDefault { family, route: Box::new(route.clone()) });
                    replaced = Some(route);
                }
            }
            plan.push(Step::LinkUp { side: Side::Guest, name: dev.into() });
            if let Some(gw) = gateway {
                plan.push(Step::GatewayRoute { gateway: *gw, dev: dev.into() });
                plan.push(Step::ReplaceDefault { gateway: *gw, dev: dev.into() });
            }
            // IPv6 neighbours learn from the kernel's own DAD and NA.
            if let IpAddr::V4(ip) = net.ip() {
                plan.push(Step::Announce { dev: dev.into(), ip, port: port.map(String::from) });
            }
        }
        Addressing::None => plan.push(Step::LinkUp { side: Side::Guest, name: dev.into() }),
        Addressing::Dhcp(dhcp) => super::dhcp::steps(plan, ctx, dhcp, dev, port)?,
    }
    Ok(replaced)
}

/// Whether interfaces made in the guest start with IPv6 disabled (Docker's
/// `--net=none` containers).
fn guest_lacks_ipv6(ctx: &Context<'_>) -> Result<bool> {
    ctx.inside.ipv6_off_by_default(Some(ctx.guest.netns()))
}
