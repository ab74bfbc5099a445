//! CHECK: the kernel, the record and prevResult must agree; STATUS: whether
//! an ADD could succeed now.

use std::net::IpAddr;

use rtnetlink::packet_route::link::InfoKind;

use super::add::open_netns;
use super::config::NetConf;
use super::env::{Command, Env};
use super::error::{CniError, CniResult, Code};
use super::ipam::Ipam;
use super::records;
use super::result::{CniOutput, Interface};
use crate::records::{Attached, Store};
use crate::sys::netlink::{address_ip, Netlink};

fn failed(msg: impl Into<String>) -> CniError {
    CniError::new(Code::Internal, msg)
}

pub async fn check(env: &Env, conf: &NetConf) -> CniResult<()> {
    let prev = conf
        .prev_result
        .as_ref()
        .ok_or_else(|| CniError::new(Code::InvalidConfig, "CHECK needs prevResult, which is missing"))?;
    let record = records::load(&Store::from_env(), &env.container_id)?;
    let (iface, cni) = records::of_network(record.as_ref(), &env.ifname, &conf.name).ok_or_else(|| {
        CniError::new(
            Code::UnknownContainer,
            format!("no attachment recorded for container {} interface {}", env.container_id, env.ifname),
        )
    })?;
    let (Attached::Bridge(bridge_name), Some(host_veth)) = (&iface.attached_to, &iface.host_side) else {
        return Err(failed(format!("the record of {} names no bridge port", env.ifname)));
    };
    let named = |name: &str| prev.interfaces.iter().position(|i| i.name == name);
    let (Some(_), Some(_), Some(ctr_index)) = (named(bridge_name), named(host_veth), named(&env.ifname))
    else {
        return Err(failed(format!(
            "prevResult does not list this attachment's interfaces ({bridge_name}, {host_veth}, {})",
            env.ifname
        )));
    };
    let recorded = CniOutput::parse(&cni.result, "the attachment's record")?;
    if let Some(name) = &conf.ipam {
        Ipam::find(name, &env.path)?.call(Command::Check, env, &conf.raw)?;
    }

    let host = Netlink::here()?;
    let bridge = host.link(bridge_name).await?;
    if !bridge.as_ref().is_some_and(|b| b.kind == Some(InfoKind::Bridge)) {
        return Err(failed(format!("bridge {bridge_name} is missing or not a bridge")));
    }
    match host.link(host_veth).await? {
        Some(v) if v.kind == Some(InfoKind::Veth) && v.master == bridge.map(|b| b.index) => {}
        _ => return Err(failed(format!("{host_veth} is missing or not a port of {bridge_name}"))),
    }

    let netns = open_netns(&env.netns).await?;
    let inside = Netlink::inside(netns.netns())?;
    let ctr = inside
        .require(&env.ifname)
        .await
        .map_err(|_| failed(format!("{} is missing in the container", env.ifname)))?;
    let expected: &Interface = &prev.interfaces[ctr_index];
    let mac = ctr.mac.map(|m| m.to_string()).unwrap_or_default();
    if !expected.mac.is_empty() && !expected.mac.eq_ignore_ascii_case(&mac) {
        return Err(failed(format!("{} has MAC {mac}, prevResult says {}", env.ifname, expected.mac)));
    }
    let present: Vec<(IpAddr, u8)> = inside
        .global_addresses(ctr.index)
        .await?
        .iter()
        .map(|a| (address_ip(a), a.header.prefix_len))
        .collect();
    let ours = prev.ips.iter().filter(|ip| ip.interface == Some(ctr_index));
    for ip in ours.chain(recorded.ips.iter()) {
        if !present.contains(&(ip.address.ip(), ip.address.prefix())) {
            return Err(failed(format!("{} lacks its address {}", env.ifname, ip.address)));
        }
    }
    for route in &recorded.routes {
        if !inside.has_route(route.dst, route.gw).await? {
            let via = route.gw.map(|g| format!(" via {g}")).unwrap_or_default();
            return Err(failed(format!("{} lacks its route to {}{via}", env.ifname, route.dst)));
        }
    }
    match ctr.mac {
        Some(mac) => super::netfilter::check(env, conf, &recorded, host_veth, mac),
        None => Ok(()),
    }
}

/// Ready when the IPAM plugin is there (and, if it speaks 1.1.0, says so),
/// nf_tables answers if rules are asked for, and the bridge, if it exists,
/// is a bridge.
pub async fn status(env: &Env, conf: &NetConf) -> CniResult<()> {
    let unavailable = |e: CniError| CniError::new(Code::NotAvailable, e.msg).with_details(e.details);
    if let Some(name) = &conf.ipam {
        let ipam = Ipam::find(name, &env.path).map_err(unavailable)?;
        if ipam.versions(env).map_err(unavailable)?.iter().any(|v| v == "1.1.0") {
            ipam.call(Command::Status, env, &conf.raw)?;
        }
    }
    super::netfilter::ready(conf).map_err(unavailable)?;
    let host = Netlink::here().map_err(|e| unavailable(e.into()))?;
    match host.link(&conf.bridge).await? {
        Some(link) if link.kind != Some(InfoKind::Bridge) => {
            Err(CniError::new(Code::NotAvailable, format!("\"{}\" exists but is not a bridge", conf.bridge)))
        }
        _ => Ok(()),
    }
}
