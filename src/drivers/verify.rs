//! Records against the kernel, kind by kind: `check`'s differences (each
//! one line, "missing address 10.5.106.101/24 on eth1 of xcatmn", with a
//! stable word for scripts) and `show`'s live or stale.

use std::net::IpAddr;
use std::path::Path;

use serde::Serialize;

use super::kinds::HostSide;
use super::macvlan;
use crate::dhcp::agent::AgentId;
use crate::error::{Error, Result};
use crate::family::Family;
use crate::records::{Attached, CniRecord, Finder, HostNs, Interface, Record, Store};
use crate::sys::firewall;
use crate::sys::netlink::{address_ip, route_via, Link, Netlink, PortVlan};
use crate::sys::nftables::{rules, Nftables, Tag};
use crate::sys::ovsdb::Ovsdb;

#[derive(Debug, Serialize)]
pub struct Difference {
    pub guest: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// A stable word for scripts: guest-gone, interface-missing, mac, mtu,
    /// down, address, default-route, dhcp-agent, host-side, master,
    /// vlan-filtering, vlan, ovs-port, nft-rule, firewall, broken-record,
    /// macvlan-mode, host-access, interrupted.
    pub kind: &'static str,
    pub message: String,
}

/// What differs between `record` and the kernel: the host's (`host`) and
/// the guest's as it is now (`inside`, None when it is gone or not running).
pub async fn differences(
    record: &Record,
    host: &Netlink,
    inside: Option<&Netlink>,
) -> Result<Vec<Difference>> {
    let guest = record.guest_name();
    let mut out = Vec::new();
    let mut say = |iface: Option<&Interface>, kind: &'static str, message: String| {
        let interface = iface.map(|i| i.name.clone());
        out.push(Difference { guest: guest.to_string(), interface, kind, message });
    };
    if inside.is_none() {
        say(None, "guest-gone", format!("{guest} is gone or not running"));
    }
    for iface in &record.interfaces {
        let name = &iface.name;
        if let Some(inside) = inside {
            match inside.link(name).await? {
                None => say(Some(iface), "interface-missing", format!("{name} missing in {guest}")),
                Some(link) => {
                    if link.mac != Some(iface.mac) {
                        let mac = link.mac.map_or("none".to_string(), |m| m.to_string());
                        say(
                            Some(iface),
                            "mac",
                            format!("MAC {mac} on {name} of {guest}, recorded {}", iface.mac),
                        );
                    }
                    if link.mtu != iface.mtu {
                        let text = format!("MTU {} on {name} of {guest}, recorded {}", link.mtu, iface.mtu);
                        say(Some(iface), "mtu", text);
                    }
                    if !link.up {
                        say(Some(iface), "down", format!("{name} of {guest} is down"));
                    }
                    if let Some(text) = macvlan::mode_differs(iface, &link, guest) {
                        say(Some(iface), "macvlan-mode", text);
                    }
                    let have: Vec<(IpAddr, u8)> = inside
                        .global_addresses(link.index)
                        .await?
                        .iter()
                        .map(|a| (address_ip(a), a.header.prefix_len))
                        .collect();
                    for net in &iface.addresses {
                        if !have.contains(&(net.ip(), net.prefix())) {
                            say(
                                Some(iface),
                                "address",
                                format!("missing address {net} on {name} of {guest}"),
                            );
                        }
                    }
                    for (gw, _) in iface.gateways() {
                        if let Some(text) = default_route(inside, gw, link.index, name).await? {
                            say(Some(iface), "default-route", format!("default route of {guest}: {text}"));
                        }
                    }
                }
            }
        }
        let agent = iface.dhcp.as_ref().and_then(|d| Some((AgentId::recorded(d)?, d.lease_file.as_deref()?)));
        if let Some((agent, file)) = agent {
            let pid = agent.pid;
            if !agent.running(Path::new(file)) {
                say(
                    Some(iface),
                    "dhcp-agent",
                    format!("DHCP agent {pid} of {name} of {guest} is not running"),
                );
            }
        }
        if let Attached::Ovs { bridge, port } = &iface.attached_to {
            if let Some(text) = ovs_port(bridge, port, iface.vlan).await {
                say(Some(iface), "ovs-port", text);
            }
        }
        for (kind, text) in macvlan::verify_host_access(host, iface, guest).await? {
            say(Some(iface), kind, text);
        }
        if let (Some(cni), Finder::Cni { container_id, .. }) = (&iface.cni, &record.guest.find) {
            for text in nft_rules(container_id, iface, cni, guest) {
                say(Some(iface), "nft-rule", text);
            }
        }
        let role = iface.how.host_side();
        if role != HostSide::Nothing {
            let side = iface.host_side.as_deref().unwrap_or_default();
            match host_side(host, iface).await? {
                None if role == HostSide::Peer => {
                    say(Some(iface), "host-side", format!("host side {side} gone"))
                }
                None => say(Some(iface), "host-side", format!("parent {side} of {name} of {guest} gone")),
                Some(link) => {
                    if let Attached::Bridge(bridge) = &iface.attached_to {
                        for (kind, text) in bridge_port(host, &link, bridge, side, iface.vlan).await? {
                            say(Some(iface), kind, text);
                        }
                        let ours = iface.cni.is_none() && !iface.no_firewall;
                        if ours && HostNs::current()?.id == record.host.id {
                            let what = format!("{bridge} (of {name} of {guest})");
                            let texts = match forward_rules(record, host, bridge).await {
                                Ok(missing) => missing
                                    .iter()
                                    .map(|m| {
                                        format!(
                                            "the FORWARD hook drops what {what} forwards between its ports: \
                                             missing `{m}`"
                                        )
                                    })
                                    .collect(),
                                // As for nf_tables rules: nothing verified is a difference.
                                Err(e) => {
                                    vec![format!("FORWARD rules of {what} unverified: {}", e.message())]
                                }
                            };
                            for text in texts {
                                say(Some(iface), "firewall", text);
                            }
                        }
                    }
                    if role == HostSide::Peer && !link.up {
                        say(Some(iface), "down", format!("host side {side} is down"));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// The rules `bridge`'s own traffic needs through the FORWARD hook, and
/// those pipework recorded for it, that are not there: the command that
/// makes each.
async fn forward_rules(record: &Record, host: &Netlink, bridge: &str) -> Result<Vec<String>> {
    let own = host.link(bridge).await?.map_or([false; 2], |b| b.nf_call);
    let mut wanted = firewall::needed(own)?;
    if let Some(kept) = Store::from_env().bridge(record.host.id, bridge)? {
        wanted.extend(kept.accept.into_iter().filter(|r| !wanted.contains(r)).collect::<Vec<_>>());
    }
    let mut out = Vec::new();
    for rule in wanted {
        if !rule.present_in_either(bridge)? {
            out.push(rule.command(bridge));
        }
    }
    Ok(out)
}

/// What is wrong with host side `side` (`port`) as a port of `bridge`, by
/// kind: it must have that bridge as its master; with a recorded VLAN the
/// bridge must filter VLANs and the port have that VLAN as its PVID,
/// untagged, as the attach's `PortVlan` step made it.
async fn bridge_port(
    host: &Netlink,
    port: &Link,
    bridge: &str,
    side: &str,
    vlan: Option<u16>,
) -> Result<Vec<(&'static str, String)>> {
    let Some(found) = host.link(bridge).await? else {
        return Ok(vec![("master", format!("bridge {bridge} of {side} gone"))]);
    };
    let master = match port.master {
        Some(index) => host.link_by_index(index).await?,
        None => None,
    };
    let wrong = match master {
        None => Some(format!("host side {side} has no master, recorded {bridge}")),
        Some(m) if m.index != found.index => {
            Some(format!("wrong master {} of host side {side}, recorded {bridge}", m.name))
        }
        Some(_) => None,
    };
    let mut out: Vec<_> = wrong.map(|w| ("master", w)).into_iter().collect();
    let Some(vid) = vlan else { return Ok(out) };
    if !found.vlan_filtering {
        let text = format!("bridge {bridge} does not filter VLANs, recorded {side} on VLAN {vid}");
        out.push(("vlan-filtering", text));
    } else if out.is_empty() {
        let have = host.port_vlans(port.index).await?;
        out.extend(port_vlan(&have, side, vid).into_iter().map(|t| ("vlan", t)));
    }
    Ok(out)
}

/// What is wrong with a port's VLANs `have` against recorded VLAN `vid`:
/// it must be the port's PVID and leave the port untagged.
fn port_vlan(have: &[PortVlan], side: &str, vid: u16) -> Vec<String> {
    let Some(on) = have.iter().find(|v| v.vid == vid) else {
        return vec![format!("host side {side} is not on VLAN {vid}")];
    };
    let mut out = Vec::new();
    if !on.pvid {
        let pvid = have.iter().find(|v| v.pvid).map_or("no PVID".to_string(), |v| format!("PVID {}", v.vid));
        out.push(format!("host side {side} has {pvid}, recorded VLAN {vid}"));
    }
    if !on.untagged {
        out.push(format!("host side {side} sends VLAN {vid} tagged, recorded untagged"));
    }
    out
}

/// The nf_tables rules a CNI attachment's ADD made (`ipMasq`,
/// `macspoofchk`, as its configuration on record asks) that the kernel
/// lacks, compared as CNI CHECK compares them. nf_tables that cannot be
/// asked is a difference too: nothing is verified.
fn nft_rules(container_id: &str, iface: &Interface, cni: &CniRecord, guest: &str) -> Vec<String> {
    let port = iface.host_side.as_deref().unwrap_or_default();
    let flags = cni.flags();
    let wanted =
        rules::of_attachment(flags.ip_masq, flags.mac_spoof_check, &iface.addresses, port, iface.mac);
    if wanted.is_empty() {
        return Vec::new();
    }
    let tag = Tag::new(&cni.network, container_id, &iface.name);
    let name = &iface.name;
    match Nftables::here().and_then(|mut nft| nft.missing(&tag, &wanted)) {
        Err(e) => {
            let why = e.message();
            vec![format!("nf_tables rules of {name} of {guest} unverified: {why}")]
        }
        Ok(missing) => missing
            .iter()
            .map(|r| format!("missing rule \"{}\" in {} for {name} of {guest}", r.text, r.hook.name()))
            .collect(),
    }
}

/// What is wrong with a recorded Open vSwitch port, if anything: it must be
/// on `bridge`, with the recorded VLAN as its tag (none without one). A
/// database that cannot be asked is a difference too: nothing is verified.
async fn ovs_port(bridge: &str, port: &str, vlan: Option<u16>) -> Option<String> {
    let found = async {
        let mut db = Ovsdb::connect().await?;
        let Some(row) = db.port(port).await? else { return Ok(None) };
        let on = db.bridge_of_port(&row.uuid).await?.map(|b| b.name);
        Ok::<_, Error>(on.map(|on| (on, row.tag)))
    };
    let tag = |t: Option<u16>| t.map_or("none".to_string(), |t| t.to_string());
    match found.await {
        Err(e) => {
            let why = e.message();
            Some(format!("port {port} of Open vSwitch bridge {bridge} unverified: {why}"))
        }
        Ok(None) => Some(format!("port {port} missing from Open vSwitch bridge {bridge}")),
        Ok(Some((on, _))) if on != bridge => {
            Some(format!("port {port} on Open vSwitch bridge {on}, recorded {bridge}"))
        }
        Ok(Some((_, now))) if now != vlan => Some(format!(
            "tag {} on port {port} of Open vSwitch bridge {bridge}, recorded {}",
            tag(now),
            tag(vlan)
        )),
        Ok(Some(_)) => None,
    }
}

/// What is wrong with the guest's default route of `gw`'s family, if
/// anything: it must go via `gw` on link `index`.
async fn default_route(inside: &Netlink, gw: IpAddr, index: u32, dev: &str) -> Result<Option<String>> {
    let routes = inside.default_routes(Family::of(gw)).await?;
    let recorded = format!("recorded via {gw} dev {dev}");
    if routes.iter().any(|r| route_via(r) == (Some(gw), Some(index))) {
        return Ok(None);
    }
    let Some(route) = routes.first() else {
        return Ok(Some(format!("none, {recorded}")));
    };
    let (now_gw, now_dev) = route_via(route);
    let mut text = String::new();
    if let Some(g) = now_gw {
        text += &format!("via {g} ");
    }
    if let Some(index) = now_dev {
        let name = inside.link_by_index(index).await?.map(|l| l.name);
        text += &format!("dev {} ", name.unwrap_or_else(|| index.to_string()));
    }
    Ok(Some(format!("{text}, {recorded}").replace(" ,", ",")))
}

/// The link the host side of `iface` names, if the host has it.
async fn host_side(host: &Netlink, iface: &Interface) -> Result<Option<Link>> {
    match &iface.host_side {
        Some(name) => host.link(name).await,
        None => Ok(None),
    }
}

/// Whether an interface is all there: in the guest, and its host side on
/// the host (the veth peer, the parent).
pub async fn is_live(iface: &Interface, inside: Option<&Netlink>, host: &Netlink) -> Result<bool> {
    let Some(inside) = inside else { return Ok(false) };
    if inside.link(&iface.name).await?.is_none() {
        return Ok(false);
    }
    Ok(match iface.how.host_side() {
        HostSide::Peer | HostSide::Parent => host_side(host, iface).await?.is_some(),
        HostSide::Nothing => true,
    })
}

#[cfg(test)]
mod tests {
    use super::port_vlan;
    use crate::sys::netlink::PortVlan;

    #[test]
    fn a_port_must_have_its_vlan_as_pvid_untagged() {
        let vlan = |vid, pvid, untagged| PortVlan { vid, pvid, untagged };
        let diff = |have: &[PortVlan]| port_vlan(have, "veth1", 100);
        assert!(diff(&[vlan(1, false, true), vlan(100, true, true)]).is_empty());
        assert_eq!(diff(&[vlan(1, true, true)]), ["host side veth1 is not on VLAN 100"]);
        assert_eq!(diff(&[]), ["host side veth1 is not on VLAN 100"]);
        assert_eq!(
            diff(&[vlan(100, false, true), vlan(200, true, true)]),
            ["host side veth1 has PVID 200, recorded VLAN 100"]
        );
        assert_eq!(
            diff(&[vlan(100, false, false)]),
            [
                "host side veth1 has no PVID, recorded VLAN 100",
                "host side veth1 sends VLAN 100 tagged, recorded untagged"
            ]
        );
    }
}
