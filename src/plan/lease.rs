//! A DHCP lease made into configuration: plan steps, so that a failure
//! rolls them back and the agent applies a new lease the same way.

use std::net::{IpAddr, Ipv4Addr};

use ipnetwork::{IpNetwork, Ipv4Network};
use rtnetlink::packet_route::route::RouteMessage;

use super::Step;
use crate::dhcp::wire::Lease;
use crate::error::{Error, Kind, Result};
use crate::family::Family;

/// The steps that configure `dev` from a lease: the address with its prefix
/// (and so its broadcast), the MTU, then the routes. With classless static
/// routes the router option is ignored (RFC 3442); the default route, from
/// either, takes the original's gateway sequence. `default` is the guest's
/// current default route, which that sequence deletes.
pub fn steps(lease: &Lease, dev: &str, mtu_now: u32, default: Option<RouteMessage>) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    let net = Ipv4Network::new(lease.address, lease.prefix).map_err(|_| {
        Error::new(Kind::Io, format!("the DHCP server gave an invalid prefix /{}", lease.prefix))
    })?;
    steps.push(Step::AddAddress { dev: dev.into(), net: IpNetwork::V4(net) });
    if let Some(mtu) = lease.mtu.map(u32::from).filter(|m| *m != mtu_now) {
        steps.push(Step::SetMtu { dev: dev.into(), mtu });
    }
    let (gateway, routes): (Option<Ipv4Addr>, Vec<_>) = if lease.routes.is_empty() {
        (lease.routers.first().copied(), Vec::new())
    } else {
        let default = lease.routes.iter().find(|(_, len, _)| *len == 0).map(|(_, _, gw)| *gw);
        (default, lease.routes.iter().filter(|(_, len, _)| *len != 0).collect())
    };
    if let Some(gw) = gateway {
        if let Some(route) = default {
            steps.push(Step::DeleteDefault { family: Family::V4, route: Box::new(route) });
        }
        steps.push(Step::GatewayRoute { gateway: IpAddr::V4(gw), dev: dev.into() });
        steps.push(Step::ReplaceDefault { gateway: IpAddr::V4(gw), dev: dev.into() });
    }
    for (dest, len, gw) in routes {
        let dst = Ipv4Network::new(*dest, *len)
            .map_err(|_| Error::new(Kind::Io, "the DHCP server gave an invalid route"))?;
        let gw = (*gw != Ipv4Addr::UNSPECIFIED).then_some(IpAddr::V4(*gw));
        steps.push(Step::AddRoute { dst: IpNetwork::V4(dst), gw, dev: dev.into() });
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease() -> Lease {
        Lease { routers: vec![Ipv4Addr::new(10, 9, 0, 1)], mtu: Some(1400), ..Lease::sample() }
    }

    fn shown(steps: &[Step]) -> Vec<String> {
        steps.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn router_mtu_and_address() {
        let steps = steps(&lease(), "eth1", 1500, None).unwrap();
        assert_eq!(
            shown(&steps),
            [
                "ip -4 addr add 10.9.0.50/24 brd 10.9.0.255 dev eth1",
                "ip link set dev eth1 mtu 1400",
                "ip -4 route get 10.9.0.1 || ip -4 route add 10.9.0.1/32 dev eth1",
                "ip -4 route replace default via 10.9.0.1 dev eth1",
            ]
        );
    }

    #[test]
    fn classless_routes_override_the_router() {
        let mut l = lease();
        l.mtu = None;
        l.routes = vec![
            (Ipv4Addr::new(192, 168, 50, 0), 24, Ipv4Addr::new(10, 9, 0, 254)),
            (Ipv4Addr::UNSPECIFIED, 0, Ipv4Addr::new(10, 9, 0, 2)),
            (Ipv4Addr::new(10, 20, 0, 0), 16, Ipv4Addr::UNSPECIFIED),
        ];
        let steps = steps(&l, "eth1", 1500, None).unwrap();
        assert_eq!(
            shown(&steps)[1..],
            [
                "ip -4 route get 10.9.0.2 || ip -4 route add 10.9.0.2/32 dev eth1",
                "ip -4 route replace default via 10.9.0.2 dev eth1",
                "ip route add 192.168.50.0/24 via 10.9.0.254 dev eth1",
                "ip route add 10.20.0.0/16 dev eth1 scope link",
            ]
        );
    }
}
