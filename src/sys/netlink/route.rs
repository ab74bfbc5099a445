//! Routes: the default route and a gateway's host route of an attach,
//! the routes `mkbridge` moves, and their text for `--dry-run`.

use std::net::IpAddr;

use futures::TryStreamExt;
use ipnetwork::IpNetwork;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
};
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::RouteMessageBuilder;

use super::error::{errno, nl_error};
use super::Netlink;
use crate::error::{Error, Kind, Result};
use crate::family::Family;

impl Netlink {
    /// Every route of one family, in all tables.
    async fn dump_routes(&self, family: Family) -> Result<Vec<RouteMessage>> {
        let mut query = match family {
            Family::V4 => RouteMessageBuilder::<std::net::Ipv4Addr>::new().build(),
            Family::V6 => RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
        };
        query.header.table = RouteHeader::RT_TABLE_UNSPEC;
        self.handle
            .route()
            .get(query)
            .execute()
            .try_collect()
            .await
            .map_err(|e| nl_error(e, "listing routes"))
    }

    /// Default routes of one family in the main table, as the kernel lists them.
    pub async fn default_routes(&self, family: Family) -> Result<Vec<RouteMessage>> {
        let routes = self.dump_routes(family).await?;
        Ok(routes
            .into_iter()
            .filter(|r| {
                r.header.destination_prefix_length == 0
                    && table_of(r) == u32::from(RouteHeader::RT_TABLE_MAIN)
            })
            .collect())
    }

    /// `ip route add DST [via GW] dev INDEX`: a link-scope route without a
    /// gateway. The kernel's refusal as it is: EEXIST is an answer too.
    pub async fn add_route(
        &self,
        dst: IpNetwork,
        gw: Option<IpAddr>,
        index: u32,
    ) -> std::result::Result<(), rtnetlink::Error> {
        let mut builder = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(dst.network(), dst.prefix())
            .map_err(|e| rtnetlink::Error::InvalidNla(e.to_string()))?
            .output_interface(index)
            .protocol(RouteProtocol::Boot);
        builder = match gw {
            Some(gw) => builder.gateway(gw).map_err(|e| rtnetlink::Error::InvalidNla(e.to_string()))?,
            None => builder.scope(RouteScope::Link),
        };
        self.handle.route().add(builder.build()).execute().await
    }

    /// Whether the main table has a route to `dst`, via `gw` if given (alone
    /// or as one next hop of a multipath route), through any link: the
    /// first route to a destination wins, as in the reference CNI plugins.
    pub async fn has_route(&self, dst: IpNetwork, gw: Option<IpAddr>) -> Result<bool> {
        let want = gw.map(RouteAddress::from);
        let gateway = |attrs: &[RouteAttribute]| {
            attrs.iter().find_map(|a| match a {
                RouteAttribute::Gateway(g) => Some(g.clone()),
                _ => None,
            })
        };
        Ok(self.dump_routes(Family::of(dst.ip())).await?.iter().any(|r| {
            let to = r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Destination(d) => Some(d.clone()),
                _ => None,
            });
            let same_dst = r.header.destination_prefix_length == dst.prefix()
                && (dst.prefix() == 0 || to == Some(RouteAddress::from(dst.network())));
            let hops: Vec<Option<RouteAddress>> = r
                .attributes
                .iter()
                .filter_map(|a| match a {
                    RouteAttribute::MultiPath(hops) => Some(hops.iter().map(|h| gateway(&h.attributes))),
                    _ => None,
                })
                .flatten()
                .chain([gateway(&r.attributes)])
                .collect();
            same_dst && (want.is_none() || hops.contains(&want))
        }))
    }

    pub async fn del_route(&self, route: RouteMessage) -> Result<()> {
        self.handle.route().del(route).execute().await.map_err(|e| nl_error(e, "deleting route"))
    }

    /// Puts back a route exactly as it was listed.
    pub async fn restore_route(&self, mut route: RouteMessage) -> Result<()> {
        // Listed routes carry read-only attributes the kernel refuses on input.
        route.attributes.retain(|a| !matches!(a, RouteAttribute::CacheInfo(_)));
        self.handle.route().add(route).execute().await.map_err(|e| nl_error(e, "restoring route"))
    }

    /// True when the kernel has a route towards `ip` (`ip route get`).
    pub async fn reachable(&self, ip: IpAddr) -> Result<bool> {
        let len = if ip.is_ipv4() { 32 } else { 128 };
        let query = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(ip, len)
            .map_err(|e| Error::new(Kind::Internal, e.to_string()))?
            .build();
        match self.handle.route().get(query).execute().try_next().await {
            Ok(_) => Ok(true),
            Err(e) if matches!(errno(&e), Some(libc::ENETUNREACH | libc::EHOSTUNREACH)) => Ok(false),
            Err(e) => Err(nl_error(e, format!("looking up a route to {ip}"))),
        }
    }

    /// `ip route add <ip>/32 dev <index>` (or /128): a link-scope host route.
    /// Routes carry `proto boot`, iproute2's default, so `ip route` shows
    /// them exactly as it showed the original's. Returns the route, for undo.
    pub async fn add_host_route(&self, ip: IpAddr, index: u32) -> Result<RouteMessage> {
        let len = if ip.is_ipv4() { 32 } else { 128 };
        let route = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(ip, len)
            .map_err(|e| Error::new(Kind::Internal, e.to_string()))?
            .output_interface(index)
            .scope(RouteScope::Link)
            .protocol(RouteProtocol::Boot)
            .build();
        let request = self.handle.route().add(route.clone());
        request.execute().await.map_err(|e| nl_error(e, format!("adding host route to {ip}")))?;
        Ok(route)
    }

    /// `ip route replace default via <gw> dev <index>`. Returns the route.
    pub async fn replace_default(&self, gateway: IpAddr, index: u32) -> Result<RouteMessage> {
        let mut builder = RouteMessageBuilder::<IpAddr>::new();
        // The builder takes the gateway only once it knows the family.
        builder.get_mut().header.address_family =
            if gateway.is_ipv4() { AddressFamily::Inet } else { AddressFamily::Inet6 };
        let route = builder
            .gateway(gateway)
            .map_err(|e| Error::new(Kind::Internal, e.to_string()))?
            .output_interface(index)
            .protocol(RouteProtocol::Boot)
            .build();
        let request = self.handle.route().add(route.clone()).replace();
        request
            .execute()
            .await
            .map_err(|e| nl_error(e, format!("setting the default route via {gateway}")))?;
        Ok(route)
    }

    /// Routes through link `index` in any table, both families: not the
    /// kernel's own (they follow the addresses), not the local table's.
    pub async fn routes_via(&self, index: u32) -> Result<Vec<RouteMessage>> {
        let mut found = Vec::new();
        for family in [Family::V4, Family::V6] {
            found.extend(self.dump_routes(family).await?.into_iter().filter(|r| {
                let oif = r.attributes.iter().any(|a| matches!(a, RouteAttribute::Oif(i) if *i == index));
                oif && r.header.protocol != RouteProtocol::Kernel && table_of(r) != 255
            }));
        }
        Ok(found)
    }

    /// The main table's host route to `ip` (/32 or /128) through link
    /// `index`, as `add_host_route` makes it, if there is one.
    pub async fn host_route(&self, ip: IpAddr, index: u32) -> Result<Option<RouteMessage>> {
        let len = if ip.is_ipv4() { 32 } else { 128 };
        Ok(self.routes_via(index).await?.into_iter().find(|r| {
            let to = r
                .attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::Destination(d) if *d == RouteAddress::from(ip)));
            to && r.header.destination_prefix_length == len
                && table_of(r) == u32::from(RouteHeader::RT_TABLE_MAIN)
        }))
    }

    /// `ip route replace`: the route keeps its key and gets these attributes.
    pub async fn replace_route(&self, mut route: RouteMessage) -> Result<()> {
        route.attributes.retain(|a| !matches!(a, RouteAttribute::CacheInfo(_)));
        self.handle.route().add(route).replace().execute().await.map_err(|e| nl_error(e, "replacing route"))
    }
}

fn table_of(route: &RouteMessage) -> u32 {
    route
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(route.header.table))
}

/// A route's gateway and output link, where it has them.
pub fn route_via(route: &RouteMessage) -> (Option<IpAddr>, Option<u32>) {
    let mut out = (None, None);
    for a in &route.attributes {
        match a {
            RouteAttribute::Gateway(RouteAddress::Inet(ip)) => out.0 = Some(IpAddr::V4(*ip)),
            RouteAttribute::Gateway(RouteAddress::Inet6(ip)) => out.0 = Some(IpAddr::V6(*ip)),
            RouteAttribute::Oif(index) => out.1 = Some(*index),
            _ => {}
        }
    }
    out
}

/// A route as `ip route` would print its key parts: destination, gateway,
/// metric and table (the device is given by the caller).
pub fn route_text(route: &RouteMessage) -> String {
    let mut dst = String::from("default");
    let mut extra = String::new();
    for a in &route.attributes {
        match a {
            RouteAttribute::Destination(d) => {
                dst = format!("{}/{}", addr_text(d), route.header.destination_prefix_length)
            }
            RouteAttribute::Gateway(g) => extra += &format!(" via {}", addr_text(g)),
            RouteAttribute::Priority(m) => extra += &format!(" metric {m}"),
            _ => {}
        }
    }
    let table = table_of(route);
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
        extra += &format!(" table {table}");
    }
    let flag = if route.header.address_family == AddressFamily::Inet6 { "-6" } else { "-4" };
    format!("{flag} route replace {dst}{extra}")
}

fn addr_text(a: &rtnetlink::packet_route::route::RouteAddress) -> String {
    use rtnetlink::packet_route::route::RouteAddress;
    match a {
        RouteAddress::Inet(ip) => ip.to_string(),
        RouteAddress::Inet6(ip) => ip.to_string(),
        other => format!("{other:?}"),
    }
}
