//! Links: what pipework needs to know of one, and the requests that make,
//! move, enslave and change them.

use std::os::fd::BorrowedFd;

use futures::TryStreamExt;
use rtnetlink::packet_route::link::{
    AfSpecInet6, AfSpecUnspec, BridgePortState, BridgeStpState, InfoBridge, InfoBridgePort, InfoData,
    InfoKind, InfoMacVlan, InfoPortData, InfoVeth, InfoVlan, LinkAttribute, LinkFlags, LinkInfo,
    LinkLayerType, LinkMessage,
};
use rtnetlink::{LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth};

use super::error::{errno, nl_error};
use super::Netlink;
use crate::error::{Error, Kind, Result};
use crate::mac::Mac;
use crate::request::MacvlanMode;

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
    /// IFLA_LINK: a veth's peer (its index in the peer's namespace), a
    /// VLAN's or macvlan's parent.
    pub peer: Option<u32>,
    /// IFLA_LINK_NETNSID: set when `peer` is in another namespace.
    pub peer_netnsid: Option<i32>,
    pub infiniband: bool,
    pub loopback: bool,
    /// The STP state of a bridge port.
    pub port_state: Option<BridgePortState>,
    pub vlan_id: Option<u16>,
    /// A bridge's VLAN filtering, and the VLAN its new ports get (0: none).
    pub vlan_filtering: bool,
    pub default_pvid: u16,
    /// A bridge's own `nf_call_iptables` and `nf_call_ip6tables`: its
    /// bridged frames handed to iptables whatever br_netfilter's sysctls say.
    pub nf_call: [bool; 2],
    /// Its `net.ipv6.conf.<dev>.disable_ipv6`, when the kernel has IPv6:
    /// for a link just made, the namespace's default.
    pub ipv6_disabled: Option<bool>,
    /// A macvlan's mode, as the kernel reports it.
    pub macvlan_mode: Option<MacvlanMode>,
}

impl Link {
    pub(super) fn from_message(msg: LinkMessage) -> Link {
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            mtu: 0,
            up: msg.header.flags.contains(LinkFlags::Up),
            kind: None,
            mac: None,
            master: None,
            peer: None,
            peer_netnsid: None,
            infiniband: msg.header.link_layer_type == LinkLayerType::Infiniband,
            loopback: msg.header.link_layer_type == LinkLayerType::Loopback,
            port_state: None,
            vlan_id: None,
            vlan_filtering: false,
            default_pvid: 1,
            nf_call: [false; 2],
            ipv6_disabled: None,
            macvlan_mode: None,
        };
        for attr in msg.attributes {
            match attr {
                LinkAttribute::IfName(name) => link.name = name,
                LinkAttribute::Mtu(mtu) => link.mtu = mtu,
                LinkAttribute::Controller(master) => link.master = Some(master),
                LinkAttribute::Link(peer) => link.peer = Some(peer),
                LinkAttribute::LinkNetNsId(id) => link.peer_netnsid = Some(id),
                LinkAttribute::Address(a) if a.len() == 6 => link.mac = Some(Mac(a.try_into().unwrap())),
                LinkAttribute::AfSpecUnspec(families) => link.read_settings(families),
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
                            LinkInfo::Data(InfoData::MacVlan(options)) => {
                                link.macvlan_mode = options.into_iter().find_map(|o| match o {
                                    InfoMacVlan::Mode(mode) => requests::mode_of(mode),
                                    _ => None,
                                })
                            }
                            LinkInfo::Data(InfoData::Bridge(bridge)) => {
                                for option in bridge {
                                    match option {
                                        InfoBridge::VlanFiltering(on) => link.vlan_filtering = on,
                                        InfoBridge::VlanDefaultPvid(vid) => link.default_pvid = vid,
                                        InfoBridge::NfCallIpTables(on) => link.nf_call[0] = on,
                                        InfoBridge::NfCallIp6Tables(on) => link.nf_call[1] = on,
                                        _ => {}
                                    }
                                }
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

    /// `net.ipv6.conf.<dev>.*`, which every link message carries.
    fn read_settings(&mut self, families: Vec<AfSpecUnspec>) {
        for family in families {
            if let AfSpecUnspec::Inet6(settings) = family {
                for setting in settings {
                    if let AfSpecInet6::DevConf(conf) = setting {
                        self.ipv6_disabled = Some(conf.disable_ipv6 != 0);
                    }
                }
            }
        }
    }

    pub fn is_bridge(&self) -> bool {
        self.kind == Some(InfoKind::Bridge)
    }

    /// Its kind as `ip -d link` words it (`veth`, `bridge`), for records
    /// and messages.
    pub fn kind_word(&self) -> String {
        self.kind.as_ref().map_or("unknown kind".to_string(), |k| format!("{k:?}").to_lowercase())
    }
}

impl Netlink {
    pub async fn link(&self, name: &str) -> Result<Option<Link>> {
        let mut links = self.handle.link().get().match_name(name.to_string()).execute();
        match links.try_next().await {
            Ok(found) => Ok(found.map(Link::from_message)),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(nl_error(e, format!("looking up link {name}"))),
        }
    }

    /// The link with ifindex `index`, whatever it is called now.
    pub async fn link_by_index(&self, index: u32) -> Result<Option<Link>> {
        let mut links = self.handle.link().get().match_index(index).execute();
        match links.try_next().await {
            Ok(found) => Ok(found.map(Link::from_message)),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(nl_error(e, format!("looking up link {index}"))),
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

    /// A bridge, down; its MTU left to the kernel (1500) when not given.
    pub async fn add_bridge(
        &self,
        name: &str,
        mtu: Option<u32>,
    ) -> std::result::Result<(), rtnetlink::Error> {
        let mut bridge = LinkBridge::new(name);
        if let Some(mtu) = mtu {
            bridge = bridge.mtu(mtu);
        }
        self.handle.link().add(bridge.build()).execute().await
    }

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

    /// `ip link set`: one change to a link, acknowledged or refused.
    async fn set(&self, msg: LinkMessage, what: impl std::fmt::Display) -> Result<()> {
        self.handle.link().set(msg).execute().await.map_err(|e| nl_error(e, what))
    }

    pub async fn set_master(&self, index: u32, master: u32) -> Result<()> {
        self.set(LinkUnspec::new_with_index(index).controller(master).build(), "attaching to the bridge")
            .await
    }

    pub async fn set_nomaster(&self, index: u32) -> Result<()> {
        self.set(LinkUnspec::new_with_index(index).nocontroller().build(), "leaving the bridge").await
    }

    pub async fn set_up(&self, index: u32) -> Result<()> {
        self.set(LinkUnspec::new_with_index(index).up().build(), "bringing the link up").await
    }

    pub async fn set_down(&self, index: u32) -> Result<()> {
        self.set(LinkUnspec::new_with_index(index).down().build(), "bringing the link down").await
    }

    /// `ip link set <index> mtu <mtu>`.
    pub async fn set_mtu(&self, index: u32, mtu: u32) -> Result<()> {
        self.set(LinkUnspec::new_with_index(index).mtu(mtu).build(), format!("setting MTU {mtu}")).await
    }

    /// `ip link set <index> address <mac>`. Set to the address it already
    /// has, this still raises NETDEV_CHANGEADDR, which `arp_notify` answers
    /// with a gratuitous ARP.
    pub async fn set_address(&self, index: u32, mac: Mac) -> Result<()> {
        let msg = LinkUnspec::new_with_index(index).address(mac.0.to_vec()).build();
        self.set(msg, format!("setting address {mac}")).await
    }

    pub async fn set_promisc(&self, index: u32) -> Result<()> {
        self.set(LinkUnspec::new_with_index(index).promiscuous(true).build(), "setting promiscuous mode")
            .await
    }

    /// `ip link set PORT type bridge_slave hairpin on`: a bridge port's
    /// setting, which RTM_NEWLINK carries, not RTM_SETLINK.
    pub async fn set_hairpin(&self, index: u32) -> Result<()> {
        let msg = LinkBridgePort::new(index).hairpin(true).build();
        self.handle.link().set_port(msg).execute().await.map_err(|e| nl_error(e, "setting hairpin mode"))
    }

    pub async fn del_link(&self, index: u32) -> std::result::Result<(), rtnetlink::Error> {
        self.handle.link().del(index).execute().await
    }
}

/// The link requests of the physical, dummy and IPoIB paths, built apart
/// from sending so that they can be checked without the kernel support.
pub mod requests {
    use rtnetlink::packet_route::link::{LinkMessage, MacVlanMode};
    use rtnetlink::{LinkDummy, LinkIpoib, LinkMacVlan, LinkVlan};

    use crate::request::MacvlanMode;

    /// `ip link add link <parent> name <name> mtu <mtu> type vlan id <vid>`
    pub fn vlan(name: &str, parent: u32, vid: u16, mtu: u32) -> LinkMessage {
        LinkVlan::new(name, parent, vid).mtu(mtu).build()
    }

    /// `ip link add link <parent> name <name> mtu <mtu> type macvlan mode <mode>`
    pub fn macvlan(name: &str, parent: u32, mtu: u32, mode: MacvlanMode) -> LinkMessage {
        let mode = match mode {
            MacvlanMode::Bridge => MacVlanMode::Bridge,
            MacvlanMode::Vepa => MacVlanMode::Vepa,
            MacvlanMode::Private => MacVlanMode::Private,
            MacvlanMode::Passthru => MacVlanMode::Passthrough,
        };
        LinkMacVlan::new(name, parent, mode).mtu(mtu).build()
    }

    /// IFLA_MACVLAN_MODE read back; source mode is none pipework makes.
    pub(super) fn mode_of(mode: MacVlanMode) -> Option<MacvlanMode> {
        match mode {
            MacVlanMode::Bridge => Some(MacvlanMode::Bridge),
            MacVlanMode::Vepa => Some(MacvlanMode::Vepa),
            MacVlanMode::Private => Some(MacvlanMode::Private),
            MacVlanMode::Passthrough => Some(MacvlanMode::Passthru),
            _ => None,
        }
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
mod tests {
    use super::requests;
    use crate::request::MacvlanMode;
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
    fn macvlan_request_carries_its_mode() {
        let msg = requests::macvlan("ph42eth1", 3, 9000, MacvlanMode::Bridge);
        assert!(infos(&msg).contains(&LinkInfo::Kind(InfoKind::MacVlan)));
        assert!(infos(&msg)
            .contains(&LinkInfo::Data(InfoData::MacVlan(vec![InfoMacVlan::Mode(MacVlanMode::Bridge)]))));
        assert!(has(&msg, LinkAttribute::Link(3)) && has(&msg, LinkAttribute::Mtu(9000)));
        let vepa = requests::macvlan("ph42eth1", 3, 9000, MacvlanMode::Passthru);
        assert!(infos(&vepa)
            .contains(&LinkInfo::Data(InfoData::MacVlan(vec![InfoMacVlan::Mode(MacVlanMode::Passthrough)]))));
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
}
