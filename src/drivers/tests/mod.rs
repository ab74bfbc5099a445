//! Each driver's plan from made-up facts (`facts::tests::Fake`): the steps
//! as the iproute2 commands `--dry-run` prints, and what the driver says
//! they make. No netlink, no root: `cargo test --lib` runs these as any
//! user.

use rtnetlink::packet_route::link::InfoKind;
use rtnetlink::packet_route::route::RouteMessage;

use super::facts::tests::Fake;
use super::{bridge, direct, dummy, ipoib, macvlan, ovs, Context, Driver, Made};
use crate::error::{Kind, Result};
use crate::family::Family;
use crate::records::{Attached, How};
use crate::request::{Addressing, Attach, GuestRef, HostIf, MacvlanMode, Tag};
use crate::resolve::guest::Guest;
use crate::sys::firewall::{Accept, Backend};
use crate::sys::netlink::Link;

mod records;

const GUEST: &str = "ip netns exec blue";

fn link(index: u32, name: &str, kind: Option<InfoKind>) -> Link {
    Link {
        index,
        name: name.into(),
        mtu: 1500,
        up: true,
        kind,
        mac: Some(format!("02:00:00:00:00:{index:02x}").parse().unwrap()),
        master: None,
        peer: None,
        peer_netnsid: None,
        infiniband: false,
        loopback: false,
        port_state: None,
        vlan_id: None,
        vlan_filtering: false,
        default_pvid: 1,
        nf_call: [false; 2],
        ipv6_disabled: None,
        macvlan_mode: None,
    }
}

/// `pipework <host> netns:blue 10.5.106.101/24`.
fn attach(host: &str) -> Attach {
    Attach {
        host: HostIf::Name(host.into()),
        direct_phys: false,
        container_if: None,
        local_if: None,
        guest: GuestRef::Netns("blue".into()),
        addr: Addressing::Static { net: "10.5.106.101/24".parse().unwrap(), gateway: None },
        mac: None,
        tag: None,
        vlan_filtering: false,
        no_firewall: false,
        more_addresses: Vec::new(),
        macvlan_mode: None,
        host_access: false,
        resolv_conf: false,
    }
}

/// The plan for guest `blue` (number 42) as commands, and what it makes.
async fn plan(driver: &dyn Driver, req: &Attach, host: &Fake, inside: &Fake) -> Result<(Vec<String>, Made)> {
    driver.validate(req)?;
    let guest = Guest::for_tests("blue", 42);
    let planned = driver.plan(&Context { req, guest: &guest, host, inside }).await?;
    let commands = planned.plan.steps.iter().map(|s| planned.plan.command(s)).collect();
    Ok((commands, planned.made))
}

fn made(name: &str, how: How, host_side: Option<&str>, attached_to: Attached, vlan: Option<u16>) -> Made {
    Made {
        name: name.into(),
        how,
        host_side: host_side.map(String::from),
        attached_to,
        vlan,
        replaced_default: None,
    }
}

fn refused(e: &crate::error::Error) -> (Kind, String) {
    (e.kind(), e.message().to_string())
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).map(|l| l.replace("GUEST", GUEST)).collect()
}

#[tokio::test]
async fn a_new_bridge_is_made_with_its_port() {
    let driver = bridge::Bridge { name: "br1".into(), existing: None };
    let (commands, made) = plan(&driver, &attach("br1"), &Fake::default(), &Fake::default()).await.unwrap();
    let want = lines(
        "
        ip link add br1 type bridge && ip link set br1 up
        ip link add veth1pl42 mtu 1500 type veth peer name eth1 mtu 1500 netns blue
        sysctl -qw net.ipv6.conf.veth1pl42.disable_ipv6=1
        ip link set veth1pl42 master br1
        ip link set veth1pl42 up
        GUEST ip -4 addr add 10.5.106.101/24 brd 10.5.106.255 dev eth1
        GUEST ip link set eth1 up
        GUEST sysctl -qw net.ipv4.conf.eth1.arp_notify=1 && ip link set eth1 address \
            $(cat /sys/class/net/eth1/address) && sysctl -qw net.ipv4.conf.eth1.arp_notify=0  # announces 10.5.106.101
        ",
    );
    assert_eq!(commands, want);
    assert_eq!(made, self::made("eth1", How::Veth, Some("veth1pl42"), Attached::Bridge("br1".into()), None));
}

/// An IPv4 default route of the guest.
fn default_route() -> RouteMessage {
    let mut route = RouteMessage::default();
    route.header.address_family = rtnetlink::packet_route::AddressFamily::Inet;
    route
}

#[tokio::test]
async fn an_existing_bridge_on_a_vlan_with_its_forward_rule_and_a_gateway() {
    let mut br = link(5, "br0", Some(InfoKind::Bridge));
    (br.mtu, br.vlan_filtering) = (9000, true);
    let host = Fake {
        links: vec![br],
        forward_missing: vec![Accept { family: Family::V4, backend: Backend::Nft, chain: "FORWARD".into() }],
        ..Fake::default()
    };
    let inside = Fake { defaults: vec![(Family::V4, default_route())], ..Fake::default() };
    let mut req = attach("br0");
    req.tag = Some(Tag("100".into()));
    req.container_if = Some("eth2".into());
    req.addr = Addressing::Static {
        net: "10.5.106.101/24".parse().unwrap(),
        gateway: Some("10.5.106.1".parse().unwrap()),
    };
    let driver = bridge::Bridge { name: "br0".into(), existing: host.links.first().cloned() };
    let (commands, made) = plan(&driver, &req, &host, &inside).await.unwrap();
    assert_eq!(
        commands,
        lines(
            "
        iptables -I FORWARD 1 -i br0 -o br0 -j ACCEPT
        ip link add veth2pl42 mtu 9000 type veth peer name eth2 mtu 9000 netns blue
        sysctl -qw net.ipv6.conf.veth2pl42.disable_ipv6=1
        ip link set veth2pl42 master br0
        bridge vlan add dev veth2pl42 vid 100 pvid untagged && bridge vlan del dev \
            veth2pl42 vid 1
        ip link set veth2pl42 up
        GUEST ip -4 addr add 10.5.106.101/24 brd 10.5.106.255 dev eth2
        GUEST ip -4 route del default
        GUEST ip link set eth2 up
        GUEST ip -4 route get 10.5.106.1 || ip -4 route add 10.5.106.1/32 dev eth2
        GUEST ip -4 route replace default via 10.5.106.1 dev eth2
        GUEST sysctl -qw net.ipv4.conf.eth2.arp_notify=1 && ip link set eth2 address \
            $(cat /sys/class/net/eth2/address) && sysctl -qw \
            net.ipv4.conf.eth2.arp_notify=0  # announces 10.5.106.101
        ",
        )
    );
    let mut want =
        self::made("eth2", How::Veth, Some("veth2pl42"), Attached::Bridge("br0".into()), Some(100));
    want.replaced_default = Some(default_route());
    assert_eq!(made, want);
}

#[tokio::test]
async fn a_vlan_on_a_bridge_that_does_not_filter_is_refused_before_planning() {
    let mut req = attach("br0");
    req.tag = Some(Tag("100".into()));
    let existing = Some(link(5, "br0", Some(InfoKind::Bridge)));
    let driver = bridge::Bridge { name: "br0".into(), existing };
    let e = plan(&driver, &req, &Fake::default(), &Fake::default()).await.unwrap_err();
    assert_eq!(e.kind(), Kind::Unsupported);
    assert!(e.message().starts_with("bridge br0 does not filter VLANs; add --vlan-filtering"), "{e}");
}

#[tokio::test]
async fn a_macvlan_child_of_a_physical_interface() {
    let eth0 = link(2, "eth0", None);
    let driver = macvlan::Macvlan { parent: eth0.clone() };
    let mut req = attach("eth0");
    req.mac = Some("02:42:ac:11:00:09".parse().unwrap());
    let host = Fake { links: vec![eth0], ..Fake::default() };
    let (commands, made) = plan(&driver, &req, &host, &Fake::default()).await.unwrap();
    assert_eq!(
        commands,
        lines(
            "
        ip link add link eth0 dev ph42eth1 mtu 1500 type macvlan mode bridge
        ip link set eth0 up
        ip link set dev ph42eth1 netns blue name eth1
        GUEST ip link set dev eth1 address 02:42:ac:11:00:09
        GUEST ip -4 addr add 10.5.106.101/24 brd 10.5.106.255 dev eth1
        GUEST ip link set eth1 up
        GUEST sysctl -qw net.ipv4.conf.eth1.arp_notify=1 && ip link set eth1 address \
            $(cat /sys/class/net/eth1/address) && sysctl -qw \
            net.ipv4.conf.eth1.arp_notify=0  # announces 10.5.106.101
        ",
        )
    );
    assert_eq!(made, self::made("eth1", How::Macvlan, Some("eth0"), Attached::Parent("eth0".into()), None));
}

#[tokio::test]
async fn a_macvlan_in_the_mode_asked() {
    let eth0 = link(2, "eth0", None);
    let driver = macvlan::Macvlan { parent: eth0.clone() };
    let mut req = attach("eth0");
    req.macvlan_mode = Some(MacvlanMode::Vepa);
    let host = Fake { links: vec![eth0], ..Fake::default() };
    let (commands, _) = plan(&driver, &req, &host, &Fake::default()).await.unwrap();
    assert_eq!(commands[0], "ip link add link eth0 dev ph42eth1 mtu 1500 type macvlan mode vepa");
}

/// With a shim on eth0 already (a bridge-mode macvlan on it, down), an
/// IPv6 guest's plan brings it up and routes its /128 there.
#[tokio::test]
async fn host_access_on_a_shim_there_already() {
    let eth0 = link(2, "eth0", None);
    let shim = Link {
        peer: Some(2),
        up: false,
        macvlan_mode: Some(MacvlanMode::Bridge),
        ..link(7, "pwh-eth0", Some(InfoKind::MacVlan))
    };
    let driver = macvlan::Macvlan { parent: eth0.clone() };
    let mut req = attach("eth0");
    req.host_access = true;
    req.addr = Addressing::Static { net: "2001:db8::10/64".parse().unwrap(), gateway: None };
    let host = Fake { links: vec![eth0, shim.clone()], ..Fake::default() };
    let (commands, _) = plan(&driver, &req, &host, &Fake::default()).await.unwrap();
    let tail = lines(
        "
        ip link set pwh-eth0 up
        ip route add 2001:db8::10/128 dev pwh-eth0
        ",
    );
    assert_eq!(commands[commands.len() - 2..], tail[..], "{commands:#?}");
    assert!(!commands.iter().any(|c| c.contains("dev pwh-eth0 mtu")), "{commands:#?}");

    // A link of the shim's name that is no bridge-mode macvlan on eth0.
    for other in [
        Link { macvlan_mode: Some(MacvlanMode::Private), ..shim.clone() },
        Link { peer: Some(3), ..shim.clone() },
        link(7, "pwh-eth0", Some(InfoKind::Veth)),
    ] {
        let host = Fake { links: vec![link(2, "eth0", None), other], ..Fake::default() };
        let e = plan(&driver, &req, &host, &Fake::default()).await.unwrap_err();
        assert_eq!(e.kind(), Kind::Conflict, "{e}");
        assert!(e
            .message()
            .starts_with("pwh-eth0 exists on the host but is not a bridge-mode macvlan on eth0"));
    }
}

#[tokio::test]
async fn a_macvlan_child_on_a_vlan_device_made_for_it() {
    let eth0 = link(2, "eth0", None);
    let driver = macvlan::Macvlan { parent: eth0.clone() };
    let mut req = attach("eth0");
    req.tag = Some(Tag("10".into()));
    let host = Fake { links: vec![eth0], ..Fake::default() };
    let (commands, made) = plan(&driver, &req, &host, &Fake::default()).await.unwrap();
    assert_eq!(
        commands,
        lines(
            "
        ip link add link eth0 name eth0.10 mtu 1500 type vlan id 10
        ip link set eth0 up
        ip link add link eth0.10 dev ph42eth1 mtu 1500 type macvlan mode bridge
        ip link set eth0.10 up
        ip link set dev ph42eth1 netns blue name eth1
        GUEST ip -4 addr add 10.5.106.101/24 brd 10.5.106.255 dev eth1
        GUEST ip link set eth1 up
        GUEST sysctl -qw net.ipv4.conf.eth1.arp_notify=1 && ip link set eth1 address \
            $(cat /sys/class/net/eth1/address) && sysctl -qw \
            net.ipv4.conf.eth1.arp_notify=0  # announces 10.5.106.101
        ",
        )
    );
    assert_eq!(
        made,
        self::made("eth1", How::Macvlan, Some("eth0.10"), Attached::Parent("eth0".into()), Some(10))
    );
}

#[tokio::test]
async fn a_name_taken_by_another_kind_of_link_is_refused() {
    let eth0 = link(2, "eth0", None);
    let driver = macvlan::Macvlan { parent: eth0.clone() };
    let mut req = attach("eth0");
    req.tag = Some(Tag("10".into()));
    let host = Fake { links: vec![eth0, link(3, "eth0.10", Some(InfoKind::Dummy))], ..Fake::default() };
    let e = plan(&driver, &req, &host, &Fake::default()).await.unwrap_err();
    assert_eq!(
        refused(&e),
        (Kind::Conflict, "eth0.10 exists but is not a VLAN device for tag 10".to_string())
    );
}

#[tokio::test]
async fn a_physical_interface_lent_with_direct_phys() {
    let eth0 = link(2, "eth0", None);
    let driver = direct::Direct { link: eth0.clone() };
    let mut req = attach("eth0");
    req.direct_phys = true;
    req.addr = Addressing::Static { net: "2001:db8::5/64".parse().unwrap(), gateway: None };
    let host = Fake { links: vec![eth0], ..Fake::default() };
    let inside = Fake { ipv6_off: true, ..Fake::default() };
    let (commands, made) = plan(&driver, &req, &host, &inside).await.unwrap();
    assert_eq!(
        commands,
        lines(
            "
        ip link set dev eth0 netns blue name eth1
        GUEST sysctl -qw net.ipv6.conf.eth1.disable_ipv6=0
        GUEST ip -6 addr add 2001:db8::5/64 dev eth1
        GUEST ip link set eth1 up
        ",
        )
    );
    assert_eq!(made, self::made("eth1", How::Lent, Some("eth0"), Attached::None, None));
}

#[tokio::test]
async fn a_dummy_made_on_the_host_and_moved_in() {
    let mut req = attach("dummy0");
    req.addr = Addressing::None;
    let (commands, made) = plan(&dummy::Dummy, &req, &Fake::default(), &Fake::default()).await.unwrap();
    assert_eq!(
        commands,
        lines(
            "
        ip link add dev du42eth1 type dummy
        ip link set dev du42eth1 netns blue name eth1
        GUEST ip link set eth1 up
        ",
        )
    );
    assert_eq!(made, self::made("eth1", How::Dummy, None, Attached::None, None));
}

#[tokio::test]
async fn an_ipoib_child_with_a_partition_key() {
    let mut ib0 = link(4, "ib0", None);
    ib0.infiniband = true;
    let driver = ipoib::Ipoib { parent: ib0.clone() };
    let mut req = attach("ib0");
    req.tag = Some(Tag("8001".into()));
    let host = Fake { links: vec![ib0], ..Fake::default() };
    let (commands, made) = plan(&driver, &req, &host, &Fake::default()).await.unwrap();
    assert_eq!(
        commands,
        lines(
            "
        ip link add link ib0 name ib0.8001.42 type ipoib pkey 0x8001
        ip link set ib0 up
        ip link set dev ib0.8001.42 netns blue name ib0
        GUEST ip -4 addr add 10.5.106.101/24 brd 10.5.106.255 dev ib0
        GUEST ip link set ib0 up
        GUEST sysctl -qw net.ipv4.conf.ib0.arp_notify=1 && ip link set ib0 address \
            $(cat /sys/class/net/ib0/address) && sysctl -qw net.ipv4.conf.ib0.arp_notify=0  \
            # announces 10.5.106.101
        ",
        )
    );
    assert_eq!(
        made,
        self::made("ib0", How::Ipoib, Some("ib0"), Attached::Parent("ib0".into()), Some(0x8001))
    );
}

#[tokio::test]
async fn a_new_open_vswitch_bridge_and_its_tagged_port() {
    let driver = ovs::Ovs { name: "ovsbr0".into(), existing: None };
    let mut req = attach("ovsbr0");
    req.tag = Some(Tag("20".into()));
    let (commands, made) = plan(&driver, &req, &Fake::default(), &Fake::default()).await.unwrap();
    assert_eq!(
        commands,
        lines(
            "
        ovs-vsctl add-br ovsbr0
        ip link add veth1pl42 mtu 1500 type veth peer name eth1 mtu 1500 netns blue
        sysctl -qw net.ipv6.conf.veth1pl42.disable_ipv6=1
        ovs-vsctl add-port ovsbr0 veth1pl42 tag=20 -- set Interface veth1pl42 \
            external-ids:pipework.interface=\"veth1pl42\" \
            external-ids:pipework.bridge=\"ovsbr0\" external-ids:pipework.nspid=\"42\" \
            external-ids:pipework.vlan=\"20\"
        ip link set veth1pl42 up
        GUEST ip -4 addr add 10.5.106.101/24 brd 10.5.106.255 dev eth1
        GUEST ip link set eth1 up
        GUEST sysctl -qw net.ipv4.conf.eth1.arp_notify=1 && ip link set eth1 address \
            $(cat /sys/class/net/eth1/address) && sysctl -qw \
            net.ipv4.conf.eth1.arp_notify=0  # announces 10.5.106.101
        ",
        )
    );
    let port = Attached::Ovs { bridge: "ovsbr0".into(), port: "veth1pl42".into() };
    assert_eq!(made, self::made("eth1", How::Veth, Some("veth1pl42"), port, Some(20)));
}

#[tokio::test]
async fn what_is_in_the_way_is_refused_before_any_change() {
    let driver = bridge::Bridge { name: "br1".into(), existing: None };
    let req = attach("br1");
    // The guest has the interface already.
    let inside = Fake { links: vec![link(7, "eth1", Some(InfoKind::Veth))], ..Fake::default() };
    let e = plan(&driver, &req, &Fake::default(), &inside).await.unwrap_err();
    assert_eq!(refused(&e), (Kind::Conflict, "interface eth1 already exists in blue".to_string()));
    // The host side is taken by a link that is up.
    let host = Fake { links: vec![link(8, "veth1pl42", Some(InfoKind::Veth))], ..Fake::default() };
    let e = plan(&driver, &req, &host, &Fake::default()).await.unwrap_err();
    assert_eq!(refused(&e), (Kind::Conflict, "Link veth1pl42 exists and is up".to_string()));
    // The dummy's name on the host is taken.
    let host = Fake { links: vec![link(9, "du42eth1", Some(InfoKind::Dummy))], ..Fake::default() };
    let e = plan(&dummy::Dummy, &req, &host, &Fake::default()).await.unwrap_err();
    let taken = "du42eth1 already exists on the host; delete it or choose another -i";
    assert_eq!(refused(&e), (Kind::Conflict, taken.to_string()));
}
