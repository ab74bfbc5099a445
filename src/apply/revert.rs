//! One undo reverted: what an applied step left for the rollback, taken
//! back by the index it recorded, never by a name looked up again.

use rtnetlink::packet_route::link::InfoKind;
use rtnetlink::packet_route::RouteNetlinkMessage;

use super::{dhcp, forward, ovs, Target};
use crate::dhcp::{agent, resolv_conf};
use crate::error::{Error, Kind, Result};
use crate::family::Family;
use crate::plan::{Side, Undo};
use crate::sys::netlink::{errno, nl_error};
use crate::sys::nftables::Nftables;
use crate::sys::sysctl::Sysctl;

pub async fn revert(undo: &Undo, t: &Target<'_>) -> Result<()> {
    match undo {
        Undo::DeleteLink { side, name, index } => {
            let nl = t.side(*side);
            if nl.link_by_index(*index).await?.is_some() {
                nl.del_link(*index).await.map_err(|e| nl_error(e, format!("deleting {name}")))?;
            }
        }
        Undo::DeleteBridgeIfUnused { name } => {
            let Some(bridge) = t.host.link(name).await? else {
                return Ok(());
            };
            let in_use = t.host.links().await?.iter().any(|l| l.master == Some(bridge.index));
            if bridge.kind == Some(InfoKind::Bridge) && !in_use {
                t.host.del_link(bridge.index).await.map_err(|e| nl_error(e, format!("deleting {name}")))?;
            }
        }
        Undo::RestoreRoute { route } => t.guest.restore_route((**route).clone()).await?,
        Undo::DeleteRoute { route } => gone_is_undone(t.guest.del_route((**route).clone()).await)?,
        Undo::DeleteHostRoute { route } => gone_is_undone(t.host.del_route((**route).clone()).await)?,
        Undo::NoMaster { name, bridge, bridge_mac } => {
            t.host.set_nomaster(t.host.require(name).await?.index).await?;
            let now = t.host.require(bridge).await?;
            if let Some(mac) = bridge_mac.filter(|m| now.mac != Some(*m)) {
                t.host.set_address(now.index, mac).await?;
            }
        }
        Undo::LinkDown { side, index, .. } => {
            let nl = t.side(*side);
            if nl.link_by_index(*index).await?.is_some() {
                nl.set_down(*index).await?;
            }
        }
        Undo::AddAddress { dev, addr } => {
            t.host.add_address_msg((**addr).clone(), t.host.require(dev).await?.index).await?;
        }
        // Gone already is fine: a link going down takes its IPv6 addresses.
        Undo::DeleteAddress { side, addr } => match t.side(*side).del_address_msg((**addr).clone()).await {
            Err(e) if !matches!(errno(&e), Some(libc::EADDRNOTAVAIL | libc::ENOENT | libc::ENODEV)) => {
                return Err(nl_error(e, "deleting the address added"));
            }
            _ => {}
        },
        Undo::MoveBack { guest_name, guest_index, host_name, was_up } => {
            if t.guest.link_by_index(*guest_index).await?.is_none() {
                return Err(Error::new(
                    Kind::NotFound,
                    format!("{guest_name} (ifindex {guest_index}) is gone from the guest"),
                ));
            }
            t.guest.move_to(*guest_index, t.host_ns, host_name).await?;
            if *was_up {
                t.host.set_up(t.host.require(host_name).await?.index).await?;
            }
        }
        Undo::SetMac { side, index, mac, .. } => t.side(*side).set_address(*index, *mac).await?,
        Undo::Ipv6 { side, index, enable } => {
            if let Some(link) = t.side(*side).link_by_index(*index).await? {
                let ns = (*side == Side::Guest).then_some(t.guest_ns);
                Sysctl::conf(ns, Family::V6, &link.name, "disable_ipv6")?.write(if *enable {
                    "0"
                } else {
                    "1"
                })?;
            }
        }
        Undo::Release { client, index, lease } => dhcp::release(client, *index, lease, t).await?,
        Undo::StopAgent { agent, .. } => agent::stop(agent.pid),
        Undo::RestoreResolvConf { guest, saved } => resolv_conf::restore(Some(*guest), saved)?,
        Undo::SetMtu { side, index, mtu, .. } => {
            let nl = t.side(*side);
            if nl.link_by_index(*index).await?.is_some() {
                nl.set_mtu(*index, *mtu).await?;
            }
        }
        Undo::ReplaceRoute { side, route } => t.side(*side).replace_route((**route).clone()).await?,
        Undo::MoveIn { host_name, guest_name } => {
            let link = t.host.require(host_name).await?;
            t.host.move_to(link.index, t.guest_ns, guest_name).await?;
        }
        Undo::AddRule { rule } => {
            let add = RouteNetlinkMessage::NewRule(rule.message());
            t.guest.talk(add, rule.flags()).await.map_err(|e| nl_error(e, "adding the rule back"))?;
        }
        Undo::DropRules { hook, tag } => {
            Nftables::here()?.remove(*hook, |comment| tag.marks(comment))?;
        }
        Undo::ForwardRemove { bridge, rules } => drop(forward::remove(bridge, rules)?),
        Undo::ForwardAccept { bridge, rules } => drop(forward::accept(bridge, rules)?),
        Undo::OvsDelPort { uuid, name } => ovs::del_port(uuid, name).await?,
        Undo::NoVlanFiltering { index, .. } => {
            if t.host.link_by_index(*index).await?.is_some() {
                t.host.set_vlan_filtering(*index, false).await?;
            }
        }
        Undo::OvsDelBridgeIfUnused { uuid, name } => ovs::del_bridge_if_unused(uuid, name).await?,
    }
    Ok(())
}

/// A route gone already is undone: the kernel takes a route away with the
/// address or link it went through (a DHCP agent stopped first drops its
/// lease's address, and the default route with it).
fn gone_is_undone(deleted: Result<()>) -> Result<()> {
    match deleted {
        Err(e) if e.kernel_reply().is_some_and(|r| matches!(r.errno, Some(libc::ESRCH | libc::ENOENT))) => {
            Ok(())
        }
        other => other,
    }
}
