//! The steps of a CNI bridge attachment, in two plans: the links, which
//! are made while the IPAM plugin runs, then the addressing, which needs
//! its answer. Everything that does not need it is in the first: the
//! container side comes up there, so that its bridge port forwards by the
//! time the address is announced. Planning looks at the system but changes
//! nothing.

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use rtnetlink::packet_route::address::AddressMessage;
use rtnetlink::packet_route::link::InfoKind;

use super::config::NetConf;
use super::env::Env;
use super::error::{CniError, CniResult, Code};
use super::result::{CniOutput, IpConfig, Route};
use crate::drivers::veth_port::VethSteps;
use crate::family::Family;
use crate::plan::{Plan, Side, Step};
use crate::sys::netlink::{address_ip, Netlink};

/// The container side is `ips[].interface` 2: bridge, host veth, container.
pub const CONTAINER_INDEX: usize = 2;

fn empty_plan(env: &Env) -> Plan {
    Plan { steps: Vec::new(), enter: format!("nsenter --net={}", env.netns) }
}

/// The bridge (made if absent, reused if present: also when a concurrent
/// run made it, or deleted it as its rollback, since this plan looked),
/// and the veth pair on it, the container side born in the container.
pub async fn links(env: &Env, conf: &NetConf, host_veth: &str, host: &Netlink) -> CniResult<Plan> {
    let mut plan = empty_plan(env);
    let (br, ifname) = (conf.bridge.as_str(), env.ifname.as_str());
    let existing = host.link(br).await?;
    if existing.as_ref().is_some_and(|link| link.kind != Some(InfoKind::Bridge)) {
        return Err(CniError::new(
            Code::InvalidConfig,
            format!("\"{br}\" already exists but is not a bridge"),
        ));
    }
    plan.push(Step::CreateBridge { name: br.into(), mtu: conf.mtu });
    // As the reference: a bridge it makes for a VLAN filters VLANs; one
    // that exists is left as it is.
    if existing.is_none() && conf.vlan.is_some() {
        plan.push(Step::VlanFiltering { bridge: br.into() });
    }
    if conf.promisc {
        plan.push(Step::Promisc { name: br.into() });
    }
    let dev = br.to_string();
    plan.push(Step::Sysctl { side: Side::Host, family: Family::V6, dev, key: "accept_ra", value: "0" });
    // The port's own steps, before it is up: a gateway's MAC must not
    // change as ports come and go (a new bridge keeps its first port's);
    // the port untagged on the VLAN, its PVID (bridge 1.1.1 keeps the
    // bridge's default VLAN on it too).
    let mut port = Vec::new();
    if existing.is_none() && conf.is_gateway {
        port.push(Step::PinMac { name: br.into() });
    }
    if conf.hairpin {
        port.push(Step::Hairpin { port: host_veth.into() });
    }
    port.extend(super::netfilter::mac_check(env, conf, host_veth));
    if let Some(vid) = conf.vlan {
        port.push(Step::PortVlan { port: host_veth.into(), vid, drop: None });
    }
    let mtu = conf.mtu.unwrap_or(1500);
    let veth = VethSteps { host: host_veth, guest: ifname, mtu, mac: conf.mac, netns: &env.netns };
    plan.steps.extend(veth.on_bridge(br, port));
    // As the reference: DAD off on every layer-3 attachment unless asked
    // for; before the link comes up, which starts it.
    if conf.ipam.is_some() && !conf.enable_dad {
        let (family, dev) = (Family::V6, ifname.to_string());
        plan.push(Step::Sysctl { side: Side::Guest, family, dev, key: "accept_dad", value: "0" });
    }
    plan.push(Step::LinkUp { side: Side::Guest, name: ifname.into() });
    Ok(plan)
}

/// What the IPAM result asks for: gateway addresses on the bridge, the
/// container's addresses and routes, forwarding (the announcement follows:
/// `add`).
/// `v6_off`: the container's IPv6 is off by default, read beforehand.
pub fn addressing(
    env: &Env,
    conf: &NetConf,
    out: &CniOutput,
    gateways: &[IpNetwork],
    bridge_addrs: &[AddressMessage],
    v6_off: bool,
) -> CniResult<Plan> {
    let mut plan = empty_plan(env);
    let ifname = env.ifname.as_str();
    bridge_addresses(&mut plan, conf, bridge_addrs, gateways)?;
    let has_v6 = out.ips.iter().any(|ip| ip.address.is_ipv6());
    if has_v6 && v6_off {
        plan.push(Step::Ipv6 { side: Side::Guest, dev: ifname.into(), enable: true });
    }
    for ip in &out.ips {
        plan.push(Step::AddAddress { dev: ifname.into(), net: ip.address });
    }
    for route in &out.routes {
        let gw = route.gw.or_else(|| family_gateway(&out.ips, route.dst.is_ipv4()));
        plan.push(Step::AddRoute { dst: route.dst, gw, dev: ifname.into() });
    }
    // net.ipv4.conf.all.forwarding is net.ipv4.ip_forward.
    for family in [Family::V4, Family::V6] {
        if gateways.iter().any(|g| Family::of(g.ip()) == family) {
            let dev = "all".to_string();
            plan.push(Step::Sysctl { side: Side::Host, family, dev, key: "forwarding", value: "1" });
        }
    }
    plan.steps.extend(super::netfilter::masquerade(env, conf, out));
    Ok(plan)
}

/// The reference's gateway rules: every IP is the container's; with
/// `isGateway`, an IP without a gateway gets its subnet's first address;
/// with `isDefaultGateway`, a default route per family unless IPAM set one.
/// Returns the addresses the bridge takes (gateway with the IP's prefix).
pub fn gateways(conf: &NetConf, out: &mut CniOutput) -> Vec<IpNetwork> {
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
pub fn veth_name() -> CniResult<String> {
    let mut bytes = [0u8; 4];
    // SAFETY: getrandom writes at most bytes.len() bytes into the buffer.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != bytes.len() as isize {
        return Err(CniError::new(Code::Io, "no random bytes for the host interface's name"));
    }
    Ok(format!("veth{:02x}{:02x}{:02x}{:02x}", bytes[0], bytes[1], bytes[2], bytes[3]))
}

/// The gateway of the first IP of that family, for a route without one.
fn family_gateway(ips: &[IpConfig], v4: bool) -> Option<IpAddr> {
    ips.iter().filter(|ip| ip.address.is_ipv4() == v4).find_map(|ip| ip.gateway)
}

/// The bridge's gateway addresses, as the reference's `ensureAddr` makes
/// them: an address already there is kept; another IPv4 address, or an
/// overlapping IPv6 one, is refused unless `forceAddress`, which replaces
/// it. `present` is the bridge's addresses as read while IPAM ran (the step
/// looks again before it adds one: a concurrent ADD may have added it).
fn bridge_addresses(
    plan: &mut Plan,
    conf: &NetConf,
    present: &[AddressMessage],
    gateways: &[IpNetwork],
) -> CniResult<()> {
    for net in gateways {
        let mine = |a: &&rtnetlink::packet_route::address::AddressMessage| {
            address_ip(a) == net.ip() && a.header.prefix_len == net.prefix()
        };
        if present.iter().any(|a| mine(&a)) {
            continue;
        }
        for other in present {
            let ip = address_ip(other);
            let theirs = IpNetwork::new(ip, other.header.prefix_len)
                .map_err(|e| crate::error::Error::new(crate::error::Kind::Internal, e))?;
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
