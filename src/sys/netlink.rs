//! A netlink connection bound to one network namespace, with the few
//! operations pipework needs. Every error says what was being done, since
//! rtnetlink drops the kernel's extended-ACK text.

use std::net::IpAddr;
use std::os::fd::{BorrowedFd, FromRawFd, IntoRawFd};

use futures::{StreamExt, TryStreamExt};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, TokioSocket};
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressMessage, AddressScope};
use rtnetlink::packet_route::link::{
    BridgePortState, InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoVeth, LinkAttribute, LinkFlags,
    LinkInfo, LinkLayerType, LinkMessage,
};
use rtnetlink::packet_route::link::{BridgeStpState, InfoVlan, MacVlanMode};
use rtnetlink::packet_route::route::{RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::{
    Handle, LinkBridge, LinkDummy, LinkIpoib, LinkMacVlan, LinkMessageBuilder, LinkUnspec, LinkVeth,
    LinkVlan, RouteMessageBuilder,
};

use crate::error::{errno_text, Error, KernelReply, Kind, Result};
use crate::family::Family;
use crate::mac::Mac;

/// What pipework needs to know of a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mtu: u32,
    pub up: bool,
    pub kind: Option<InfoKind>,
    pub mac: Option<Mac>,
    pub master: Option<u32>,
    pub infiniband: bool,
    pub loopback: bool,
    /// The STP state of a bridge port.
    pub port_state: Option<BridgePortState>,
    pub vlan_id: Option<u16>,
}

impl Link {
    fn from_message(msg: LinkMessage) -> Link {
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            mtu: 0,
            up: msg.header.flags.contains(LinkFlags::Up),
            kind: None,
            mac: None,
            master: None,
            infiniband: msg.header.link_layer_type == LinkLayerType::Infiniband,
            loopback: msg.header.link_layer_type == LinkLayerType::Loopback,
            port_state: None,
            vlan_id: None,
        };
        for attr in msg.attributes {
            match attr {
                LinkAttribute::IfName(name) => link.name = name,
                LinkAttribute::Mtu(mtu) => link.mtu = mtu,
                LinkAttribute::Controller(master) => link.master = Some(master),
                LinkAttribute::Address(a) if a.len() == 6 => link.mac = Some(Mac(a.try_into().unwrap())),
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        match info {
                            LinkInfo::Kind(kind) => link.kind = Some(kind),
                            LinkInfo::Data(InfoData::Vlan(vlan)) => {
                                link.vlan_id = vlan.into_iter().find_map(|v| match v {
                                    InfoVlan::Id(id) => Some(id),
                                    _ => None,
                                })
                            }
                            LinkInfo::PortData(InfoPortData::BridgePort(port)) => {
                                link.port_state = port.into_iter().find_map(|p| match p {
                                    InfoBridgePort::State(state) => Some(state),
                                    _ => None,
                                })
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        link
    }

    pub fn is_bridge(&self) -> bool {
        self.kind == Some(InfoKind::Bridge)
    }
}

/// The errno behind a netlink failure, if the kernel gave one.
pub fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(m.raw_code().abs()),
        _ => None,
    }
}

/// NLMSGERR_ATTR_MSG: the kernel's own explanation of a refusal.
const NLMSGERR_ATTR_MSG: u16 = 1;

/// The kernel's extended-ACK text, which rtnetlink leaves in the error's
/// payload: with capped ACKs (see `from_socket`) that is the request's
/// 16-byte header, then attributes.
pub fn kernel_message(e: &rtnetlink::Error) -> Option<String> {
    let rtnetlink::Error::NetlinkError(m) = e else { return None };
    let mut rest = m.header.get(16..)?;
    while rest.len() >= 4 {
        let len = u16::from_ne_bytes([rest[0], rest[1]]) as usize;
        let kind = u16::from_ne_bytes([rest[2], rest[3]]) & 0x3fff;
        if len < 4 || len > rest.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = rest[4..len].split(|b| *b == 0).next().unwrap_or_default();
            let text = String::from_utf8_lossy(text).into_owned();
            return (!text.is_empty()).then_some(text);
        }
        rest = rest.get((len + 3) & !3..).unwrap_or_default();
    }
    None
}

/// "what: reason", with the reasons an operator can act on spelled out and
/// the kernel's own words when it gave some.
pub fn nl_error(e: rtnetlink::Error, what: impl std::fmt::Display) -> Error {
    let reply = KernelReply { errno: errno(&e), text: kernel_message(&e) };
    if let Some(text) = &reply.text {
        return Error::kernel(format!("{what}: {text}"), reply);
    }
    let reason = match reply.errno {
        Some(libc::EOPNOTSUPP) => "the kernel does not support this link type".to_string(),
        Some(libc::ERANGE) => "name too long for the kernel (15 bytes at most)".to_string(),
        Some(code) => errno_text(code),
        None => e.to_string(),
    };
    Error::kernel(format!("{what}: {reason}"), reply)
}

#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// A connection in the namespace this process runs in.
    pub fn here() -> Result<Netlink> {
        let socket =
            Socket::new(NETLINK_ROUTE).map_err(|e| Error::from(e).context("opening a netlink socket"))?;
        Ok(Netlink::from_socket(socket))
    }

    /// A connection inside the namespace `ns`, opened on a thread of its own.
    pub fn inside(ns: BorrowedFd<'_>) -> Result<Netlink> {
        let socket = crate::sys::netns::within(ns, || Socket::new(NETLINK_ROUTE))?;
        Ok(Netlink::from_socket(socket))
    }

    fn from_socket(socket: Socket) -> Netlink {
        // Capped ACKs with extended ACK: the kernel's explanation of a
        // refusal comes back right after the request's header.
        if socket.set_cap_ack(true).is_ok() {
            let _ = socket.set_ext_ack(true);
        }
        // SAFETY: the fd comes straight from a socket we own and give up here.
        let socket = unsafe { TokioSocket::from_raw_fd(socket.into_raw_fd()) };
        let (connection, handle, _) = rtnetlink::from_socket(socket);
        tokio::spawn(connection);
        Netlink { handle }
    }

    pub async fn link(&self, name: &str) -> Result<Option<Link>> {
        let mut links = self.handle.link().get().match_name(name.to_string()).execute();
        match links.try_next().await {
            Ok(found) => Ok(found.map(Link::from_message)),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(nl_error(e, format!("looking up link {name}"))),
        }
    }

    pub async fn links(&self) -> Result<Vec<Link>> {
        let msgs: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|e| nl_error(e, "listing links"))?;
        Ok(msgs.into_iter().map(Link::from_message).collect())
    }

    /// Looks a link up by name and fails if it is gone.
    pub async fn require(&self, name: &str) -> Result<Link> {
        self.link(name)
            .await?
            .ok_or_else(|| Error::new(Kind::NotFound, format!("link {name} does not exist")))
    }

    pub async fn add_bridge(&self, name: &str) -> std::result::Result<(), rtnetlink::Error> {
        self.handle.link().add(LinkBridge::new(name).build()).execute().await
    }

    /// A veth pair whose peer is born inside `peer_ns` under its final name,
    /// which is atomic: no moment exists where it sits in the host namespace.
    pub async fn add_veth(
        &self,
        name: &str,
        peer: &str,
        mtu: u32,
        peer_mac: Option<Mac>,
        peer_ns: BorrowedFd<'_>,
    ) -> Result<()> {
        use std::os::fd::AsRawFd;
        let mut peer_msg = LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer.to_string())
            .mtu(mtu)
            .setns_by_fd(peer_ns.as_raw_fd());
        if let Some(mac) = peer_mac {
            peer_msg = peer_msg.address(mac.0.to_vec());
        }
        let msg = LinkVeth::new(name, peer)
            .mtu(mtu)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg.build())))
            .build();
        self.handle.link().add(msg).execute().await.map_err(|e| match errno(&e) {
            Some(libc::EEXIST) => Error::new(
                Kind::Conflict,
                format!("creating veth {name}/{peer}: an interface of that name already exists"),
            ),
            _ => nl_error(e, format!("creating veth {name}/{peer}")),
        })
    }

    /// `ip link add` of a prepared request (see `requests`).
    /// One request as built, acknowledged or refused: for the passthrough,
    /// which builds its own messages.
    pub async fn talk(
        &self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> std::result::Result<(), rtnetlink::Error> {
        use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_REQUEST};
        let mut req = NetlinkMessage::from(msg);
        req.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        let mut answers = self.handle.clone().request(req)?;
        while let Some(answer) = answers.next().await {
            if let NetlinkPayload::Error(e) = answer.payload {
                if e.code.is_some() {
                    return Err(rtnetlink::Error::NetlinkError(e));
                }
            }
        }
        Ok(())
    }

    pub async fn add_link(&self, msg: LinkMessage) -> std::result::Result<(), rtnetlink::Error> {
        self.handle.link().add(msg).execute().await
    }

    /// Moves a link into the namespace `ns` and names it `name` there, in one
    /// request: it never exists there under another name.
    pub async fn move_to(&self, index: u32, ns: BorrowedFd<'_>, name: &str) -> Result<()> {
        use std::os::fd::AsRawFd;
        let msg =
            LinkUnspec::new_with_index(index).setns_by_fd(ns.as_raw_fd()).name(name.to_string()).build();
        self.handle.link().set(msg).execute().await.map_err(|e| match errno(&e) {
            Some(libc::EEXIST) => {
                Error::new(Kind::Conflict, format!("an interface named {name} already exists there"))
            }
            _ => nl_error(e, format!("moving the link to {name}")),
        })
    }

    pub async fn set_master(&self, index: u32, master: u32) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).controller(master).build();
        self.handle.link().set(msg).execute().await.map_err(|e| nl_error(e, "attaching to the bridge"))
    }

    pub async fn set_up(&self, index: u32) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).up().build();
        self.handle.link().set(msg).execute().await.map_err(|e| nl_error(e, "bringing the link up"))
    }

    pub async fn del_link(&self, index: u32) -> std::result::Result<(), rtnetlink::Error> {
        self.handle.link().del(index).execute().await
    }

    /// `ip addr add`; rtnetlink sets the IPv4 broadcast address itself.
    pub async fn add_address(&self, index: u32, ip: IpAddr, prefix: u8) -> Result<()> {
        self.handle
            .address()
            .add(index, ip, prefix)
            .execute()
            .await
            .map_err(|e| nl_error(e, format!("adding address {ip}/{prefix}")))
    }

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

    /// `ip link set <index> address <mac>`. Set to the address it already
    /// has, this still raises NETDEV_CHANGEADDR, which `arp_notify` answers
    /// with a gratuitous ARP.
    pub async fn set_address(&self, index: u32, mac: Mac) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).address(mac.0.to_vec()).build();
        self.handle.link().set(msg).execute().await.map_err(|e| nl_error(e, format!("setting address {mac}")))
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

/// What `mkbridge` moves: addresses and routes, as the kernel lists them.
impl Netlink {
    /// A bridge made in one request, down, with the given MAC, MTU and STP.
    /// `forward_delay` is in seconds; the kernel counts hundredths.
    pub async fn add_bridge_with(
        &self,
        name: &str,
        mac: Mac,
        mtu: u32,
        stp: bool,
        forward_delay: Option<u32>,
    ) -> std::result::Result<(), rtnetlink::Error> {
        let mut bridge = LinkBridge::new(name).stp_state(if stp {
            BridgeStpState::KernelStp
        } else {
            BridgeStpState::Disabled
        });
        if let Some(secs) = forward_delay {
            bridge = bridge.forward_delay(secs * 100);
        }
        let msg = bridge.address(mac.0.to_vec()).mtu(mtu).build();
        self.handle.link().add(msg).execute().await
    }

    pub async fn set_nomaster(&self, index: u32) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).nocontroller().build();
        self.handle.link().set(msg).execute().await.map_err(|e| nl_error(e, "leaving the bridge"))
    }

    pub async fn set_down(&self, index: u32) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).down().build();
        self.handle.link().set(msg).execute().await.map_err(|e| nl_error(e, "bringing the link down"))
    }

    /// The global (not link-local, not host) addresses of a link.
    pub async fn global_addresses(&self, index: u32) -> Result<Vec<AddressMessage>> {
        let all: Vec<AddressMessage> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .map_err(|e| nl_error(e, "listing addresses"))?;
        Ok(all
            .into_iter()
            .filter(|a| a.header.index == index && a.header.scope == AddressScope::Universe)
            .collect())
    }

    /// Adds an address as listed, on link `index`; no DAD for an address
    /// already in use on this host. Returns the address as added: without
    /// the old link's label, which the kernel would match on deletion.
    pub async fn add_address_msg(&self, mut addr: AddressMessage, index: u32) -> Result<AddressMessage> {
        addr.header.index = index;
        addr.attributes.retain(|a| !matches!(a, AddressAttribute::CacheInfo(_) | AddressAttribute::Label(_)));
        let mut flags = AddressFlags::empty();
        for a in &addr.attributes {
            if let AddressAttribute::Flags(f) = a {
                flags = *f;
            }
        }
        addr.attributes.retain(|a| !matches!(a, AddressAttribute::Flags(_)));
        addr.attributes.push(AddressAttribute::Flags(flags | AddressFlags::Nodad));
        let mut request = self.handle.address().add(index, address_ip(&addr), addr.header.prefix_len);
        *request.message_mut() = addr.clone();
        request.execute().await.map_err(|e| nl_error(e, "adding address"))?;
        Ok(addr)
    }

    pub async fn del_address_msg(&self, addr: AddressMessage) -> std::result::Result<(), rtnetlink::Error> {
        self.handle.address().del(addr).execute().await
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

    /// `ip route replace`: the route keeps its key and gets these attributes.
    pub async fn replace_route(&self, mut route: RouteMessage) -> Result<()> {
        route.attributes.retain(|a| !matches!(a, RouteAttribute::CacheInfo(_)));
        self.handle.route().add(route).replace().execute().await.map_err(|e| nl_error(e, "replacing route"))
    }
}

pub fn address_ip(addr: &AddressMessage) -> IpAddr {
    let local = addr.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(ip) => Some(*ip),
        _ => None,
    });
    local
        .or_else(|| {
            addr.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            })
        })
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
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

/// The link requests of the physical, dummy and IPoIB paths, built apart
/// from sending so that they can be checked without the kernel support.
pub mod requests {
    use super::*;

    /// `ip link add link <parent> name <name> mtu <mtu> type vlan id <vid>`
    pub fn vlan(name: &str, parent: u32, vid: u16, mtu: u32) -> LinkMessage {
        LinkVlan::new(name, parent, vid).mtu(mtu).build()
    }

    /// `ip link add link <parent> name <name> mtu <mtu> type macvlan mode bridge`
    pub fn macvlan(name: &str, parent: u32, mtu: u32) -> LinkMessage {
        LinkMacVlan::new(name, parent, MacVlanMode::Bridge).mtu(mtu).build()
    }

    /// `ip link add name <name> type dummy`
    pub fn dummy(name: &str) -> LinkMessage {
        LinkDummy::new(name).build()
    }

    /// `ip link add link <parent> name <name> type ipoib [pkey <key>]`
    pub fn ipoib(name: &str, parent: u32, pkey: Option<u16>) -> LinkMessage {
        let mut link = LinkIpoib::new(name).link(parent);
        if let Some(key) = pkey {
            link = link.pkey(key);
        }
        link.build()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::{kernel_message, nl_error, requests};
    use rtnetlink::packet_core::ErrorMessage;
    use rtnetlink::packet_route::link::{
        InfoData, InfoIpoib, InfoKind, InfoMacVlan, InfoVlan, LinkAttribute, LinkInfo, LinkMessage,
        MacVlanMode,
    };

    fn infos(msg: &LinkMessage) -> Vec<LinkInfo> {
        msg.attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::LinkInfo(i) => Some(i.clone()),
                _ => None,
            })
            .unwrap_or_default()
    }

    fn has(msg: &LinkMessage, attr: LinkAttribute) -> bool {
        msg.attributes.contains(&attr)
    }

    #[test]
    fn vlan_request() {
        let msg = requests::vlan("eth0.10", 2, 10, 1400);
        assert!(infos(&msg).contains(&LinkInfo::Kind(InfoKind::Vlan)));
        assert!(infos(&msg).contains(&LinkInfo::Data(InfoData::Vlan(vec![InfoVlan::Id(10)]))));
        assert!(has(&msg, LinkAttribute::Link(2)) && has(&msg, LinkAttribute::Mtu(1400)));
        assert!(has(&msg, LinkAttribute::IfName("eth0.10".into())));
    }

    #[test]
    fn macvlan_request_is_bridge_mode() {
        let msg = requests::macvlan("ph42eth1", 3, 9000);
        assert!(infos(&msg).contains(&LinkInfo::Kind(InfoKind::MacVlan)));
        assert!(infos(&msg)
            .contains(&LinkInfo::Data(InfoData::MacVlan(vec![InfoMacVlan::Mode(MacVlanMode::Bridge)]))));
        assert!(has(&msg, LinkAttribute::Link(3)) && has(&msg, LinkAttribute::Mtu(9000)));
    }

    #[test]
    fn dummy_and_ipoib_requests() {
        assert!(infos(&requests::dummy("du42eth1")).contains(&LinkInfo::Kind(InfoKind::Dummy)));
        let msg = requests::ipoib("ib0.8001.42", 5, Some(0x8001));
        assert!(infos(&msg).contains(&LinkInfo::Kind(InfoKind::Ipoib)));
        assert!(infos(&msg).contains(&LinkInfo::Data(InfoData::Ipoib(vec![InfoIpoib::Pkey(0x8001)]))));
        assert!(has(&msg, LinkAttribute::Link(5)));
        assert!(!infos(&requests::ipoib("ib0.42", 5, None)).iter().any(|i| matches!(i, LinkInfo::Data(_))));
    }

    /// A refusal as the kernel sends it with capped, extended ACKs: the
    /// request's header, an offset attribute, then the message.
    pub(crate) fn refusal(errno: i32, message: Option<&str>) -> rtnetlink::Error {
        let mut header = vec![0u8; 16];
        header.extend_from_slice(&8u16.to_ne_bytes());
        header.extend_from_slice(&2u16.to_ne_bytes());
        header.extend_from_slice(&40u32.to_ne_bytes());
        if let Some(text) = message {
            let text = [text.as_bytes(), b"\0"].concat();
            header.extend_from_slice(&((4 + text.len()) as u16).to_ne_bytes());
            header.extend_from_slice(&1u16.to_ne_bytes());
            header.extend_from_slice(&text);
            header.resize(header.len().next_multiple_of(4), 0);
        }
        let mut error = ErrorMessage::default();
        error.code = std::num::NonZeroI32::new(-errno);
        error.header = header;
        rtnetlink::Error::NetlinkError(error)
    }

    #[test]
    fn kernel_words_come_first() {
        let e = refusal(libc::EINVAL, Some("Nexthop has invalid gateway"));
        assert_eq!(kernel_message(&e).as_deref(), Some("Nexthop has invalid gateway"));
        assert_eq!(
            nl_error(e, "adding route").message(),
            "pipework: adding route: Nexthop has invalid gateway"
        );
        let e = refusal(libc::EEXIST, None);
        assert_eq!(kernel_message(&e), None);
        assert_eq!(nl_error(e, "adding route").message(), "pipework: adding route: File exists");
    }
}
