//! ADD: the reference bridge plugin's attachment, as one pipework plan.
//! IPAM first; then every check, then the plan is applied as a transaction;
//! if anything fails after IPAM allocated, IPAM DEL gives the address back.

use std::fs::File;
use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd};

use ipnetwork::IpNetwork;
use rtnetlink::packet_route::link::InfoKind;

use super::config::NetConf;
use super::env::{Command, Env};
use super::error::{CniError, CniResult, Code};
use super::ipam::Ipam;
use super::result::{CniOutput, Interface, IpConfig, Route};
use super::store::{Record, Store};
use super::version::LATEST;
use crate::apply::{apply, Target};
use crate::netlink::{address_ip, Netlink};
use crate::plan::{Plan, Side, Step};
use crate::request::Family;

/// The container side is `ips[].interface` 2: bridge, host veth, container.
const CONTAINER_INDEX: usize = 2;

pub async fn add(env: &Env, conf: &NetConf) -> CniResult<CniOutput> {
    if conf.hairpin && conf.promisc {
        return Err(CniError::new(
            Code::InvalidConfig,
            "cannot set hairpin mode and promiscuous mode at the same time",
        ));
    }
    if let Some(vid) = conf.vlan {
        return Err(CniError::new(Code::UnsupportedField, format!("unsupported field \"vlan\": {vid}"))
            .with_details("VLAN filtering on the Linux bridge is not in this version of pipework"));
    }
    let netns = open_netns(&env.netns)?;
    let host = Netlink::here()?;
    let inside = Netlink::inside(netns.as_fd())?;
    if inside.link(&env.ifname).await?.is_some() {
        return Err(CniError::new(
            Code::Internal,
            format!("container interface {} already exists", env.ifname),
        ));
    }
    let ipam = conf.ipam.as_deref().map(|name| Ipam::find(name, &env.path)).transpose()?;
    let allocated = match &ipam {
        Some(ipam) => {
            tracing::info!("IPAM ADD: {}", ipam.program.display());
            let got = ipam.add(env, &conf.raw)?;
            tracing::info!("IPAM ADD done");
            if got.ips.is_empty() {
                return Err(release(
                    ipam,
                    env,
                    conf,
                    CniError::new(Code::Internal, "IPAM plugin returned missing IP config"),
                ));
            }
            got
        }
        None => CniOutput::default(),
    };
    match attach(env, conf, &netns, &host, &inside, allocated).await {
        Ok(out) => Ok(out),
        Err(e) => Err(match &ipam {
            Some(ipam) => release(ipam, env, conf, e),
            None => e,
        }),
    }
}

/// IPAM DEL after a failed ADD; its own failure is added to the error.
fn release(ipam: &Ipam, env: &Env, conf: &NetConf, e: CniError) -> CniError {
    match ipam.call(Command::Del, env, &conf.raw) {
        Ok(()) => e,
        Err(del) => {
            let details = format!("{}; releasing the address failed too: {del}", e.details);
            e.with_details(details.trim_start_matches("; ").to_string())
        }
    }
}

pub fn open_netns(path: &str) -> CniResult<File> {
    File::open(path).map_err(|e| {
        CniError::new(Code::UnknownContainer, format!("failed to open netns \"{path}\""))
            .with_details(e.to_string())
    })
}

async fn attach(
    env: &Env,
    conf: &NetConf,
    netns: &File,
    host: &Netlink,
    inside: &Netlink,
    allocated: CniOutput,
) -> CniResult<CniOutput> {
    let mut out = allocated;
    let gateways = gateways(conf, &mut out);
    let host_veth = veth_name()?;
    let plan = plan(env, conf, &host_veth, &out, &gateways, host, netns.as_fd()).await?;
    let own = crate::netns::current()?;
    apply(&plan, &Target { host, guest: inside, host_ns: own.as_fd(), guest_ns: netns.as_fd() }).await?;

    // The bridge's MAC may have changed with its first port.
    let (bridge, veth, ctr) = (
        host.require(&conf.bridge).await?,
        host.require(&host_veth).await?,
        inside.require(&env.ifname).await?,
    );
    let interface = |name: &str, link: &crate::netlink::Link, sandbox: &str| Interface {
        name: name.to_string(),
        mac: link.mac.map(|m| m.to_string()).unwrap_or_default(),
        sandbox: sandbox.to_string(),
        mtu: Some(link.mtu),
        ..Interface::default()
    };
    let ours = CniOutput {
        interfaces: vec![
            interface(&conf.bridge, &bridge, ""),
            interface(&host_veth, &veth, ""),
            interface(&env.ifname, &ctr, &env.netns),
        ],
        dns: if conf.dns.is_empty() { out.dns.clone() } else { conf.dns.clone() },
        ..out
    };
    let record = Record {
        container_id: env.container_id.clone(),
        ifname: env.ifname.clone(),
        network: conf.name.clone(),
        netns: env.netns.clone(),
        bridge: conf.bridge.clone(),
        host_veth,
        config: serde_json::from_slice(&conf.raw).unwrap_or_default(),
        result: ours.to_json(LATEST),
    };
    if let Err(e) = Store::open().save(&record) {
        undo_links(host, &record.host_veth).await;
        return Err(e);
    }
    Ok(match &conf.prev_result {
        Some(prev) => prev.clone().chain(ours),
        None => ours,
    })
}

/// After the plan succeeded but the record could not be written: the veth
/// goes (its peer with it), so the runtime sees a clean failure.
async fn undo_links(host: &Netlink, host_veth: &str) {
    if let Ok(Some(link)) = host.link(host_veth).await {
        let _ = host.del_link(link.index).await;
    }
}

/// The reference's gateway rules: every IP is the container's; with
/// `isGateway`, an IP without a gateway gets its subnet's first address;
/// with `isDefaultGateway`, a default route per family unless IPAM set one.
/// Returns the addresses the bridge takes (gateway with the IP's prefix).
fn gateways(conf: &NetConf, out: &mut CniOutput) -> Vec<IpNetwork> {
    let mut on_bridge = Vec::new();
    for ip in &mut out.ips {
        ip.interface = Some(CONTAINER_INDEX);
        if !conf.is_gateway {
            continue;
        }
        let gw = *ip.gateway.get_or_insert_with(|| first_host(ip.address));
        if let Ok(net) = IpNetwork::new(gw, ip.address.prefix()) {
            on_bridge.push(net);
        }
    }
    if conf.is_default_gateway {
        for ip in out.ips.clone() {
            let default = default_net(ip.address.ip());
            let has_default = out.routes.iter().any(|r| r.dst == default && r.gw.is_some());
            if let (false, Some(gw)) = (has_default, ip.gateway) {
                out.routes.push(Route {
                    dst: default,
                    gw: Some(gw),
                    mtu: None,
                    advmss: None,
                    priority: None,
                    table: None,
                    scope: None,
                });
            }
        }
    }
    on_bridge
}

/// `0.0.0.0/0` or `::/0`.
fn default_net(of: IpAddr) -> IpNetwork {
    let any = match of {
        IpAddr::V4(_) => IpAddr::from([0u8; 4]),
        IpAddr::V6(_) => IpAddr::from([0u8; 16]),
    };
    IpNetwork::new(any, 0).unwrap_or(IpNetwork::from(any))
}

/// The subnet's first address: 10.1.0.0/24 -> 10.1.0.1.
fn first_host(net: IpNetwork) -> IpAddr {
    match net {
        IpNetwork::V4(n) => IpAddr::from(u32::from(n.network()).wrapping_add(1).to_be_bytes()),
        IpNetwork::V6(n) => IpAddr::from(u128::from(n.network()).wrapping_add(1).to_be_bytes()),
    }
}

/// `veth` and 8 random hex digits, as the reference names the host side.
fn veth_name() -> CniResult<String> {
    let mut bytes = [0u8; 4];
    // SAFETY: getrandom writes at most bytes.len() bytes into the buffer.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != bytes.len() as isize {
        return Err(CniError::new(Code::Io, "no random bytes for the host interface's name"));
    }
    Ok(format!("veth{:02x}{:02x}{:02x}{:02x}", bytes[0], bytes[1], bytes[2], bytes[3]))
}

/// Every check against the kernel, then the steps; changes nothing.
async fn plan(
    env: &Env,
    conf: &NetConf,
    host_veth: &str,
    out: &CniOutput,
    gateways: &[IpNetwork],
    host: &Netlink,
    guest_ns: BorrowedFd<'_>,
) -> CniResult<Plan> {
    let mut plan = Plan { steps: Vec::new(), enter: format!("nsenter --net={}", env.netns) };
    let (br, ifname) = (conf.bridge.as_str(), env.ifname.as_str());
    // Made if absent, reused if present: also when a concurrent run made
    // it, or deleted it as its rollback, since this plan looked.
    plan.push(Step::CreateBridge { name: br.into(), mtu: conf.mtu });
    let existing = host.link(br).await?;
    match &existing {
        Some(link) if link.kind != Some(InfoKind::Bridge) => {
            return Err(CniError::new(
                Code::InvalidConfig,
                format!("\"{br}\" already exists but is not a bridge"),
            ))
        }
        Some(link) => plan_bridge_addresses(&mut plan, conf, host, link.index, gateways).await?,
        None => {
            for net in gateways {
                plan.push(Step::HostAddress { dev: br.into(), net: *net });
            }
        }
    }
    if conf.promisc {
        plan.push(Step::Promisc { name: br.into() });
    }
    plan.push(Step::Sysctl {
        side: Side::Host,
        family: Family::V6,
        dev: br.into(),
        key: "accept_ra",
        value: "0",
    });
    let mtu = conf.mtu.unwrap_or(1500);
    let netns = env.netns.clone();
    plan.push(Step::CreateVeth { host: host_veth.into(), guest: ifname.into(), mtu, mac: conf.mac, netns });
    plan.push(Step::Ipv6 { side: Side::Host, dev: host_veth.into(), enable: false });
    plan.push(Step::SetMaster { link: host_veth.into(), bridge: br.into() });
    // A gateway's MAC must not change as ports come and go: a new bridge
    // keeps its first port's.
    if existing.is_none() && conf.is_gateway {
        plan.push(Step::PinMac { name: br.into() });
    }
    if conf.hairpin {
        plan.push(Step::Hairpin { port: host_veth.into() });
    }
    plan.push(Step::LinkUp { side: Side::Host, name: host_veth.into() });

    let has_v6 = out.ips.iter().any(|ip| ip.address.is_ipv6());
    if has_v6 && crate::plan::guest_lacks_ipv6(guest_ns)? {
        plan.push(Step::Ipv6 { side: Side::Guest, dev: ifname.into(), enable: true });
    }
    if has_v6 && !conf.enable_dad {
        let (family, dev) = (Family::V6, ifname.to_string());
        plan.push(Step::Sysctl { side: Side::Guest, family, dev, key: "accept_dad", value: "0" });
    }
    for ip in &out.ips {
        plan.push(Step::AddAddress { dev: ifname.into(), net: ip.address });
    }
    plan.push(Step::LinkUp { side: Side::Guest, name: ifname.into() });
    for route in &out.routes {
        let gw = route.gw.or_else(|| family_gateway(&out.ips, route.dst.is_ipv4()));
        plan.push(Step::AddRoute { dst: route.dst, gw, dev: ifname.into() });
    }
    if !gateways.is_empty() {
        // net.ipv4.conf.all.forwarding is net.ipv4.ip_forward.
        for family in [Family::V4, Family::V6] {
            if gateways.iter().any(|g| Family::of(g.ip()) == family) {
                let dev = "all".to_string();
                plan.push(Step::Sysctl { side: Side::Host, family, dev, key: "forwarding", value: "1" });
            }
        }
    }
    for ip in out.ips.iter().filter_map(|ip| match ip.address.ip() {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(_) => None,
    }) {
        plan.push(Step::Announce { dev: ifname.into(), ip, port: Some(host_veth.into()) });
    }
    Ok(plan)
}

/// The gateway of the first IP of that family, for a route without one.
fn family_gateway(ips: &[IpConfig], v4: bool) -> Option<IpAddr> {
    ips.iter().filter(|ip| ip.address.is_ipv4() == v4).find_map(|ip| ip.gateway)
}

/// The reference's `ensureAddr`: an address already there is kept; another
/// IPv4 address, or an overlapping IPv6 one, is refused unless
/// `forceAddress`, which replaces it.
async fn plan_bridge_addresses(
    plan: &mut Plan,
    conf: &NetConf,
    host: &Netlink,
    index: u32,
    gateways: &[IpNetwork],
) -> CniResult<()> {
    let present = host.global_addresses(index).await?;
    for net in gateways {
        let mine = |a: &&rtnetlink::packet_route::address::AddressMessage| {
            address_ip(a) == net.ip() && a.header.prefix_len == net.prefix()
        };
        if present.iter().any(|a| mine(&a)) {
            continue;
        }
        for other in &present {
            let ip = address_ip(other);
            let theirs = IpNetwork::new(ip, other.header.prefix_len).map_err(|e| crate::Error::new(e))?;
            let clash = ip.is_ipv4() == net.is_ipv4()
                && (net.is_ipv4() || theirs.contains(net.ip()) || net.contains(ip));
            if !clash {
                continue;
            }
            if !conf.force_address {
                return Err(CniError::new(
                    Code::Internal,
                    format!("\"{}\" already has an IP address different from {net}", conf.bridge),
                ));
            }
            let text = format!("{theirs}");
            plan.push(Step::DeleteAddress { dev: conf.bridge.clone(), addr: Box::new(other.clone()), text });
        }
        plan.push(Step::HostAddress { dev: conf.bridge.clone(), net: *net });
    }
    Ok(())
}
