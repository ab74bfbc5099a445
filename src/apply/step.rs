//! One step applied over netlink, returning its undo (`revert` takes it back).

use std::collections::HashMap;

use ipnetwork::IpNetwork;
use rtnetlink::packet_route::route::RouteAttribute;
use rtnetlink::packet_route::RouteNetlinkMessage;

use super::announce::announce;
use super::{dhcp, forward, ovs, Target};
use crate::dhcp::{agent, host, log as agent_log, resolv_conf};
use crate::error::{failed, Error, Kind, Result};
use crate::family::Family;
use crate::iproute2::RuleOp;
use crate::plan::{NewLink, Side, Step, Undo};
use crate::sys::netlink::{address_ip, errno, nl_error, requests, Link, Netlink};
use crate::sys::nftables::{rules, Hook, Nftables, Tag};
use crate::sys::sysctl::Sysctl;

/// Links this run made in or moved into the guest, by the name the plan
/// gives them, and the ifindex each got: learned right after the create or
/// move, then used by every later step and undo. A guest with CAP_NET_ADMIN
/// in its own namespace may rename a link and plant another under its name.
#[derive(Default)]
pub struct GuestLinks(HashMap<String, u32>);

impl GuestLinks {
    /// Notes what `name` is in the guest right after this run put it there.
    async fn learn(&mut self, guest: &Netlink, name: &str) -> Result<Link> {
        let link = guest.require(name).await?;
        self.0.insert(name.to_string(), link.index);
        Ok(link)
    }

    /// The ifindex `name` got in the guest, if this run made or moved it.
    pub(super) fn learned(&self, name: &str) -> Option<u32> {
        self.0.get(name).copied()
    }

    /// The link the plan calls `name` on `side`, by its learned ifindex
    /// whatever it is called now; other links (the host's) by name.
    pub(super) async fn get(&self, t: &Target<'_>, side: Side, name: &str) -> Result<Link> {
        match (side, self.0.get(name)) {
            (Side::Guest, Some(&index)) => t.guest.link_by_index(index).await?.ok_or_else(|| {
                Error::new(Kind::NotFound, format!("link {name} (ifindex {index}) is gone from the guest"))
            }),
            _ => t.side(side).require(name).await,
        }
    }

    /// The ifindex of that link, for a step that needs nothing else: a
    /// learned guest link's without asking the kernel again (on a link gone
    /// since, the step itself fails with ENODEV, as it would after a lookup).
    pub(super) async fn index(&self, t: &Target<'_>, side: Side, name: &str) -> Result<u32> {
        match (side, self.0.get(name)) {
            (Side::Guest, Some(&index)) => Ok(index),
            _ => Ok(t.side(side).require(name).await?.index),
        }
    }
}

pub async fn run(step: &Step, t: &Target<'_>, links: &mut GuestLinks) -> Result<Option<Undo>> {
    let nl = t.side(step.side());
    let side = step.side();
    match step {
        Step::CreateBridge { name, mtu } => create_bridge(t.host, name, *mtu).await,
        Step::Promisc { name } => {
            t.host.set_promisc(t.host.require(name).await?.index).await?;
            Ok(None)
        }
        Step::PinMac { name } => {
            let link = t.host.require(name).await?;
            if let Some(mac) = link.mac {
                t.host.set_address(link.index, mac).await?;
            }
            Ok(None)
        }
        Step::Hairpin { port } => {
            t.host.set_hairpin(t.host.require(port).await?.index).await?;
            Ok(None)
        }
        Step::Sysctl { side, family, dev, key, value } => {
            let (ns, dev) = match side {
                Side::Host => (None, dev.clone()),
                Side::Guest => (Some(t.guest_ns), links.get(t, Side::Guest, dev).await?.name),
            };
            Sysctl::conf(ns, *family, &dev, key)?.write(value)?;
            Ok(None)
        }
        Step::HostAddress { dev, net } => host_address(t.host, dev, *net).await,
        Step::AddRoute { dst, gw, dev } => {
            match t.guest.add_route(*dst, *gw, links.index(t, side, dev).await?).await {
                Err(e) if errno(&e) != Some(libc::EEXIST) => {
                    Err(nl_error(e, format!("adding route to {dst}")))
                }
                _ => Ok(None),
            }
        }
        Step::DeleteStale { name } => {
            let link = t.host.require(name).await?;
            t.host.del_link(link.index).await.map_err(|e| nl_error(e, format!("deleting {name}")))?;
            Ok(None)
        }
        Step::CreateVeth { host, guest, mtu, mac, .. } => {
            t.host.add_veth(host, guest, *mtu, *mac, t.guest_ns).await?;
            let index = t.host.require(host).await?.index;
            links.learn(t.guest, guest).await?;
            Ok(Some(Undo::DeleteLink { side: Side::Host, name: host.clone(), index }))
        }
        Step::SetMaster { link, bridge } => {
            let (link, bridge) = (t.host.require(link).await?, t.host.require(bridge).await?);
            t.host.set_master(link.index, bridge.index).await?;
            Ok(Some(Undo::NoMaster { name: link.name, bridge: bridge.name, bridge_mac: bridge.mac }))
        }
        Step::LinkUp { side, name } => {
            let link = links.get(t, *side, name).await?;
            if link.up {
                return Ok(None);
            }
            nl.set_up(link.index).await?;
            Ok(Some(Undo::LinkDown { side: *side, name: name.clone(), index: link.index }))
        }
        Step::MakeBridge { name, mac, mtu, stp, forward_delay } => {
            t.host
                .add_bridge_with(name, *mac, *mtu, *stp, *forward_delay)
                .await
                .map_err(|e| nl_error(e, format!("creating bridge {name}")))?;
            let index = t.host.require(name).await?.index;
            Ok(Some(Undo::DeleteLink { side: Side::Host, name: name.clone(), index }))
        }
        Step::CopyAddress { to, addr, .. } => {
            let link = t.host.require(to).await?;
            let added = t.host.add_address_msg((**addr).clone(), link.index).await?;
            Ok(Some(Undo::DeleteAddress { side: Side::Host, addr: Box::new(added) }))
        }
        Step::DeleteAddress { dev, addr, text } => {
            t.host
                .del_address_msg((**addr).clone())
                .await
                .map_err(|e| nl_error(e, format!("deleting {text}")))?;
            Ok(Some(Undo::AddAddress { dev: dev.clone(), addr: addr.clone() }))
        }
        Step::MoveRoute { route, to, .. } => {
            let link = t.host.require(to).await?;
            let mut moved = (**route).clone();
            for a in &mut moved.attributes {
                if let RouteAttribute::Oif(i) = a {
                    *i = link.index;
                }
            }
            t.host.replace_route(moved).await?;
            Ok(Some(Undo::ReplaceRoute { side: Side::Host, route: route.clone() }))
        }
        Step::AddAddress { dev, net } => {
            nl.add_address(links.index(t, side, dev).await?, net.ip(), net.prefix()).await?;
            Ok(None)
        }
        Step::AddAnotherAddress { dev, net } => {
            let index = links.index(t, side, dev).await?;
            nl.add_address(index, net.ip(), net.prefix()).await?;
            let mut present = nl.global_addresses(index).await?.into_iter();
            let added = present.find(|a| address_ip(a) == net.ip() && a.header.prefix_len == net.prefix());
            Ok(added.map(|addr| Undo::DeleteAddress { side, addr: Box::new(addr) }))
        }
        Step::DeleteDefault { route, .. } => {
            nl.del_route((**route).clone()).await?;
            Ok(Some(Undo::RestoreRoute { route: route.clone() }))
        }
        Step::GatewayRoute { gateway, dev } => {
            if nl.reachable(*gateway).await? {
                return Ok(None);
            }
            let route = nl.add_host_route(*gateway, links.index(t, side, dev).await?).await?;
            Ok(Some(Undo::DeleteRoute { route: Box::new(route) }))
        }
        Step::HostRoute { ip, dev } => {
            let index = t.host.require(dev).await?.index;
            if t.host.host_route(*ip, index).await?.is_some() {
                return Ok(None);
            }
            let route = t.host.add_host_route(*ip, index).await?;
            Ok(Some(Undo::DeleteHostRoute { route: Box::new(route) }))
        }
        Step::DeleteHostRoute { ip, dev } => {
            let Some(link) = t.host.link(dev).await? else { return Ok(None) };
            if let Some(route) = t.host.host_route(*ip, link.index).await? {
                t.host.del_route(route).await?;
            }
            Ok(None)
        }
        Step::ReplaceDefault { gateway, dev } => {
            let route = nl.replace_default(*gateway, links.index(t, side, dev).await?).await?;
            Ok(Some(Undo::DeleteRoute { route: Box::new(route) }))
        }
        Step::CreateLink { name, kind } => {
            let mut parent = 0;
            if let Some(name) = kind.parent() {
                parent = t.host.require(name).await?.index;
            }
            let msg = match kind {
                NewLink::Vlan { vid, mtu, .. } => requests::vlan(name, parent, *vid, *mtu),
                NewLink::Macvlan { mtu, mode, .. } => requests::macvlan(name, parent, *mtu, *mode),
                NewLink::Dummy => requests::dummy(name),
                NewLink::Ipoib { pkey, .. } => requests::ipoib(name, parent, *pkey),
            };
            t.host.add_link(msg).await.map_err(|e| match errno(&e) {
                Some(libc::EOPNOTSUPP) => Error::new(Kind::Unsupported, kind.missing()),
                Some(libc::EEXIST) => {
                    Error::new(Kind::Conflict, format!("{name} already exists on the host"))
                }
                _ => nl_error(e, format!("creating {name}")),
            })?;
            let index = t.host.require(name).await?.index;
            Ok(Some(Undo::DeleteLink { side: Side::Host, name: name.clone(), index }))
        }
        Step::MoveToGuest { name, to, give_back, .. } => {
            let link = t.host.require(name).await?;
            t.host.move_to(link.index, t.guest_ns, to).await?;
            let moved = links.learn(t.guest, to).await?;
            Ok(Some(match give_back {
                true => Undo::MoveBack {
                    guest_name: to.clone(),
                    guest_index: moved.index,
                    host_name: name.clone(),
                    was_up: link.up,
                },
                false => Undo::DeleteLink { side: Side::Guest, name: to.clone(), index: moved.index },
            }))
        }
        Step::SetMac { dev, mac } => {
            let link = links.get(t, side, dev).await?;
            t.guest.set_address(link.index, *mac).await?;
            Ok(link.mac.map(|old| Undo::SetMac { side, name: dev.clone(), index: link.index, mac: old }))
        }
        Step::Ipv6 { side, dev, enable } => {
            // A sysctl is reached by name only: the link's name now.
            let link = links.get(t, *side, dev).await?;
            let ns = (*side == Side::Guest).then_some(t.guest_ns);
            let mut conf = Sysctl::conf(ns, Family::V6, &link.name, "disable_ipv6")?;
            let want = if *enable { "0" } else { "1" };
            if conf.read()?.trim() == want {
                return Ok(None);
            }
            conf.write(want)?;
            // Undone for a link that stays (an address added to one made before).
            Ok(Some(Undo::Ipv6 { side: *side, index: link.index, enable: !enable }))
        }
        Step::Dhcp { .. } => Err(Error::new(Kind::Internal, "a DHCP step runs only as part of a plan")),
        Step::SetMtu { dev, mtu } => {
            let link = links.get(t, side, dev).await?;
            nl.set_mtu(link.index, *mtu).await?;
            Ok(Some(Undo::SetMtu { side, index: link.index, dev: dev.clone(), mtu: link.mtu }))
        }
        Step::StartAgent { dev, setup, lease, socket } => {
            dhcp::start_agent(dev, setup, lease, socket.as_deref(), t).map(Some)
        }
        Step::ForgetLease { agent, file } => {
            if let Some(agent) = agent.filter(|a| a.running(file)) {
                agent::stop(agent.pid);
            }
            for path in std::iter::once(file.clone()).chain(agent_log::files(file)) {
                match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(failed("removing", &path, e))
                    }
                    _ => {}
                }
            }
            Ok(None)
        }
        Step::ResolvConf { dev, guest, lease, saved } => dhcp::write_resolv_conf(dev, *guest, lease, saved),
        Step::RestoreResolvConf { guest, saved } => {
            resolv_conf::restore(*guest, saved)?;
            Ok(None)
        }
        Step::HostDhcp { dhcp, argv, guest, resolv } => {
            // Waited for without holding this thread, where the watch
            // service has other containers' work to do meanwhile.
            host::run(t.guest_ns, dhcp, argv, guest, resolv).await?;
            Ok(None)
        }
        Step::VlanFiltering { bridge } => {
            let link = t.host.require(bridge).await?;
            t.host.set_vlan_filtering(link.index, true).await?;
            let undo = Undo::NoVlanFiltering { name: bridge.clone(), index: link.index };
            Ok((!link.vlan_filtering).then_some(undo))
        }
        Step::PortVlan { port, vid, drop } => {
            let index = t.host.require(port).await?.index;
            t.host.port_vlan(index, *vid, true).await?;
            if let Some(old) = drop {
                t.host.port_vlan(index, *old, false).await?;
            }
            Ok(None)
        }
        Step::OvsAddBridge { name } => Ok(ovs::add_bridge(name)
            .await?
            .map(|uuid| Undo::OvsDelBridgeIfUnused { uuid, name: name.clone() })),
        Step::OvsDelPorts { ports, .. } => {
            ovs::del_ports(ports).await?;
            Ok(None)
        }
        Step::OvsAddPort { bridge, port, replacing } => {
            let uuid = ovs::add_port(bridge, port, replacing.as_deref()).await?;
            Ok(Some(Undo::OvsDelPort { uuid, name: port.name.clone() }))
        }
        Step::DeleteLink { name, .. } => {
            let Some(link) = nl.link(name).await? else { return Ok(None) };
            match nl.del_link(link.index).await {
                // Gone meanwhile (its peer was deleted): what the step wants.
                Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
                Err(e) => Err(nl_error(e, format!("deleting {name}"))),
                Ok(()) => Ok(None),
            }
        }
        Step::GiveBack { name, to, .. } => {
            let link = t.guest.require(name).await?;
            t.guest.move_to(link.index, t.host_ns, to).await?;
            Ok(Some(Undo::MoveIn { host_name: to.clone(), guest_name: name.clone() }))
        }
        Step::RestoreDefault { gateway, dev } => {
            let before = t.guest.default_routes(Family::of(*gateway)).await?.into_iter().next();
            t.guest.replace_default(*gateway, t.guest.require(dev).await?.index).await?;
            Ok(before.map(|route| Undo::ReplaceRoute { side: Side::Guest, route: Box::new(route) }))
        }
        Step::DeleteRule { rule, text } => {
            let mut del = (**rule).clone();
            del.op = RuleOp::Delete;
            match t.guest.talk(RouteNetlinkMessage::DelRule(del.message()), del.flags()).await {
                Ok(()) => Ok(Some(Undo::AddRule { rule: rule.clone() })),
                // Deleted meanwhile by someone else: what the step wants.
                Err(e) if errno(&e) == Some(libc::ENOENT) => Ok(None),
                Err(e) => Err(nl_error(e, format!("deleting rule {text}"))),
            }
        }
        Step::Masquerade { addresses, tag } => {
            let made: Vec<_> = addresses.iter().filter_map(|a| rules::masquerade(*a)).collect();
            Nftables::here()?.add(Hook::Masquerade, tag, &made)?;
            Ok(Some(Undo::DropRules { hook: Hook::Masquerade, tag: tag.clone() }))
        }
        Step::MacCheck { port, dev, tag } => {
            let mac = links.get(t, Side::Guest, dev).await?.mac.ok_or_else(|| {
                Error::new(Kind::Unsupported, format!("{dev} has no MAC address to check frames against"))
            })?;
            Nftables::here()?.add(Hook::MacCheck, tag, &[rules::mac_check(port, mac)])?;
            Ok(Some(Undo::DropRules { hook: Hook::MacCheck, tag: tag.clone() }))
        }
        Step::DropRules { hook, tag } => {
            Nftables::here()?.remove(*hook, |comment| tag.marks(comment))?;
            Ok(None)
        }
        Step::CollectRules { hook, network, valid } => {
            let stale =
                |comment: &str| Tag::of_network(network, comment) && !valid.iter().any(|t| t.marks(comment));
            Nftables::here()?.remove(*hook, stale)?;
            Ok(None)
        }
        Step::ForwardAccept { bridge, rules } => {
            let added = forward::accept(bridge, rules)?;
            Ok((!added.is_empty()).then(|| Undo::ForwardRemove { bridge: bridge.clone(), rules: added }))
        }
        Step::ForwardRemove { bridge, rules } => {
            let removed = forward::remove(bridge, rules)?;
            Ok((!removed.is_empty()).then(|| Undo::ForwardAccept { bridge: bridge.clone(), rules: removed }))
        }
        Step::Announce { dev, ip, port } => {
            // Like the original's `arping ... || true`: a nudge, not a requirement.
            if let Err(e) = announce(t, links.get(t, side, dev).await?, port.as_deref()).await {
                tracing::warn!("{ip} not announced: {e}");
            }
            Ok(None)
        }
    }
}

/// An address on a host link, unless it is there already; a concurrent
/// run may add the same one first, and then it is theirs.
async fn host_address(host: &Netlink, dev: &str, net: IpNetwork) -> Result<Option<Undo>> {
    let link = host.require(dev).await?;
    let find = || async {
        let present = host.global_addresses(link.index).await?;
        Ok::<_, Error>(
            present.into_iter().find(|a| address_ip(a) == net.ip() && a.header.prefix_len == net.prefix()),
        )
    };
    if find().await?.is_some() {
        return Ok(None);
    }
    if let Err(e) = host.add_address(link.index, net.ip(), net.prefix()).await {
        return match find().await? {
            Some(_) => Ok(None),
            None => Err(e),
        };
    }
    Ok(find().await?.map(|addr| Undo::DeleteAddress { side: Side::Host, addr: Box::new(addr) }))
}

/// Creates and brings up a bridge. If another run created it first, the
/// bridge is reused and this run will not delete it.
async fn create_bridge(host: &Netlink, name: &str, mtu: Option<u32>) -> Result<Option<Undo>> {
    let created = match host.add_bridge(name, mtu).await {
        Ok(()) => true,
        Err(e) if errno(&e) == Some(libc::EEXIST) => false,
        Err(e) => return Err(nl_error(e, format!("creating bridge {name}"))),
    };
    let bridge = host.require(name).await?;
    if !bridge.is_bridge() {
        return Err(Error::new(Kind::Conflict, format!("{name} appeared meanwhile and is not a bridge")));
    }
    if created {
        host.set_up(bridge.index).await?;
    }
    Ok(created.then(|| Undo::DeleteBridgeIfUnused { name: name.to_string() }))
}
