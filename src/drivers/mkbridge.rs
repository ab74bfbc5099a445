//! The plan of `pipework mkbridge BRIDGE IFACE`: the runbook's hand-written
//! mkbridge script as one transaction. IFACE becomes a port of BRIDGE, and
//! BRIDGE takes over IFACE's MAC, MTU, global addresses and routes, in an
//! order that keeps the host reachable: the addresses go on the bridge
//! first, the routes are replaced in place, and IFACE lets go of its
//! addresses last.

use ipnetwork::IpNetwork;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};

use super::bridge::let_through;
use crate::error::{Error, Kind, Result};
use crate::plan::{Plan, Side, Step};
use crate::request::Mkbridge;
use crate::sys::netlink::{address_ip, route_text, Netlink};

/// Checks everything and lists the steps; changes nothing. An empty plan
/// means the host is converted already.
pub async fn plan(req: &Mkbridge, host: &Netlink) -> Result<Plan> {
    let (bridge, name) = (&req.bridge, &req.iface);
    if bridge == name {
        return Err(Error::new(Kind::Usage, format!("the bridge and the interface are both {name}")));
    }
    let iface = host
        .link(name)
        .await?
        .ok_or_else(|| Error::new(Kind::NotFound, format!("interface {name} does not exist")))?;
    if iface.loopback {
        return Err(Error::new(Kind::Usage, format!("{name} is a loopback interface and cannot be bridged")));
    }
    if iface.is_bridge() {
        return Err(Error::new(Kind::Usage, format!("{name} is a bridge itself")));
    }
    let Some(mac) = iface.mac else {
        return Err(Error::new(
            Kind::Unsupported,
            format!("{name} has no Ethernet address and cannot be bridged"),
        ));
    };
    let existing = host.link(bridge).await?;
    if let Some(b) = &existing {
        if !b.is_bridge() {
            return Err(Error::new(Kind::Conflict, format!("{bridge} exists and is not a bridge")));
        }
    }
    if let Some(master) = iface.master {
        if existing.as_ref().map(|b| b.index) != Some(master) {
            let other = host.links().await?.into_iter().find(|l| l.index == master);
            let other = other.map(|l| l.name).unwrap_or_else(|| format!("link {master}"));
            return Err(Error::new(Kind::Conflict, format!("{name} is already a port of {other}")));
        }
    }

    let addresses = host.global_addresses(iface.index).await?;
    let routes = host.routes_via(iface.index).await?;
    let mut plan = Plan::on_host();
    if existing.is_none() {
        // The runbook's `brctl setfd br0 0`; with STP on, the kernel's default.
        let forward_delay = req.forward_delay.or((!req.stp).then_some(0));
        plan.push(Step::MakeBridge {
            name: bridge.clone(),
            mac,
            mtu: iface.mtu,
            stp: req.stp,
            forward_delay,
        });
    }
    for addr in &addresses {
        let text = address_text(addr);
        plan.push(Step::CopyAddress { to: bridge.clone(), addr: Box::new(addr.clone()), text });
    }
    plan.push(Step::LinkUp { side: Side::Host, name: bridge.clone() });
    if iface.master.is_none() {
        plan.push(Step::SetMaster { link: name.clone(), bridge: bridge.clone() });
    }
    for route in routes {
        let text = route_text(&route);
        plan.push(Step::MoveRoute { route: Box::new(route), to: bridge.clone(), text });
    }
    for addr in addresses {
        let text = address_text(&addr);
        plan.push(Step::DeleteAddress { dev: name.clone(), addr: Box::new(addr), text });
    }
    // Converted already: the bridge is up and owns everything.
    let only_up = plan.steps.len() == 1 && existing.as_ref().is_some_and(|b| b.up);
    if only_up {
        plan.steps.clear();
    }
    // Before IFACE's frames start crossing the bridge.
    let own = existing.as_ref().map_or([false; 2], |b| b.nf_call);
    if let Some(step) = let_through(host, bridge, own, req.no_firewall)? {
        plan.steps.insert(usize::from(existing.is_none()), step);
    }
    Ok(plan)
}

/// `10.5.106.1/24 brd 10.5.106.255`, as `ip addr` takes it.
fn address_text(addr: &AddressMessage) -> String {
    let ip = address_ip(addr);
    let mut text = IpNetwork::new(ip, addr.header.prefix_len)
        .map(|n| format!("{ip}/{}", n.prefix()))
        .unwrap_or_default();
    for a in &addr.attributes {
        if let AddressAttribute::Broadcast(b) = a {
            text += &format!(" brd {b}");
        }
    }
    text
}
