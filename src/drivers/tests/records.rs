//! What records meet of the kinds: the host side's default name, the
//! words on disk, a guest link recognised; a replay's plan and an address
//! added to an interface made before.

use super::*;

#[test]
fn the_default_host_side_name_is_recognised_for_any_pid() {
    use crate::drivers::veth_port::{default_name, is_default_name};
    assert_eq!(default_name("eth1", 4242), "veth1pl4242");
    assert!(is_default_name(&default_name("eth1", 7), "eth1"));
    assert!(!is_default_name("veth1pl", "eth1"));
    assert!(!is_default_name("veth1pl42x", "eth1"));
    assert!(!is_default_name("veth1pl42", "eth2"));
    assert!(!is_default_name("myveth", "eth1"));
}

#[test]
fn a_lent_interface_is_moved_on_disk_as_before() {
    assert_eq!(serde_json::to_string(&How::Lent).unwrap(), "\"moved\"");
    assert_eq!(serde_json::from_str::<How>("\"moved\"").unwrap(), How::Lent);
    assert_eq!(How::Lent.word(), "moved");
}

#[test]
fn a_guest_link_is_recognised_by_its_kind_and_recorded_mac() {
    let veth = link(7, "eth1", Some(InfoKind::Veth));
    let mac = veth.mac.unwrap();
    let other: crate::mac::Mac = "02:00:00:00:00:99".parse().unwrap();
    assert!(How::Veth.recognises(&veth, mac));
    assert!(!How::Veth.recognises(&veth, other));
    assert!(!How::Macvlan.recognises(&veth, mac));
    // An IPoIB child's address is not kept; a lent interface is any link.
    assert!(How::Ipoib.recognises(&link(8, "ib0", Some(InfoKind::Ipoib)), other));
    assert!(How::Lent.recognises(&veth, other));
}

/// A replay of an interface given both families and a second IPv4: every
/// address, each family's gateway with its first, IPv6 turned on once.
#[tokio::test]
async fn a_replay_plans_every_address_and_each_gateway() {
    let mut req = attach("dummy0");
    req.addr = Addressing::Static {
        net: "10.0.0.2/24".parse().unwrap(),
        gateway: Some("10.0.0.1".parse().unwrap()),
    };
    req.more_addresses = vec![
        ("2001:db8::2/64".parse().unwrap(), Some("2001:db8::1".parse().unwrap())),
        ("10.0.0.3/24".parse().unwrap(), None),
    ];
    let inside = Fake { ipv6_off: true, ..Fake::default() };
    let (commands, _) = plan(&dummy::Dummy, &req, &Fake::default(), &inside).await.unwrap();
    assert_eq!(
        commands[2..],
        lines(
            "
        GUEST ip -4 addr add 10.0.0.2/24 brd 10.0.0.255 dev eth1
        GUEST ip link set eth1 up
        GUEST ip -4 route get 10.0.0.1 || ip -4 route add 10.0.0.1/32 dev eth1
        GUEST ip -4 route replace default via 10.0.0.1 dev eth1
        GUEST sysctl -qw net.ipv4.conf.eth1.arp_notify=1 && ip link set eth1 address $(cat /sys/class/net/eth1/address) && sysctl -qw net.ipv4.conf.eth1.arp_notify=0  # announces 10.0.0.2
        GUEST sysctl -qw net.ipv6.conf.eth1.disable_ipv6=0
        GUEST ip -6 addr add 2001:db8::2/64 dev eth1
        GUEST ip -6 route get 2001:db8::1 || ip -6 route add 2001:db8::1/128 dev eth1
        GUEST ip -6 route replace default via 2001:db8::1 dev eth1
        GUEST ip -4 addr add 10.0.0.3/24 brd 10.0.0.255 dev eth1
        GUEST sysctl -qw net.ipv4.conf.eth1.arp_notify=1 && ip link set eth1 address $(cat /sys/class/net/eth1/address) && sysctl -qw net.ipv4.conf.eth1.arp_notify=0  # announces 10.0.0.3
        ",
        )
    );
}

/// An address added to an interface made before: its steps alone; the
/// same again is nothing; another gateway of a family is refused.
#[tokio::test]
async fn an_address_added_to_an_interface_made_before() {
    use crate::drivers::addressing::add_to;
    let iface: crate::records::Interface = serde_json::from_value(serde_json::json!({
        "name": "eth1", "ifindex": 7, "how": "veth", "host_side": "veth1pl42",
        "attached_to": {"bridge": "br0"}, "mac": "02:00:00:00:00:07", "mtu": 1500,
        "addresses": ["10.0.0.2/24"], "gateway": "10.0.0.1",
    }))
    .unwrap();
    let eth1 = Link { ipv6_disabled: Some(true), ..link(7, "eth1", Some(InfoKind::Veth)) };
    let guest = Guest::for_tests("blue", 42);
    let (host, inside) = (Fake::default(), Fake::default());
    let planned = async |addr: &str| {
        let (net, gateway) = match addr.split_once('@') {
            Some((net, gw)) => (net.parse().unwrap(), Some(gw.parse().unwrap())),
            None => (addr.parse().unwrap(), None),
        };
        let req = Attach { addr: Addressing::Static { net, gateway }, ..attach("br0") };
        let added =
            add_to(&Context { req: &req, guest: &guest, host: &host, inside: &inside }, &iface, &eth1)
                .await?;
        Ok::<_, crate::error::Error>(
            added.map(|a| a.plan.steps.iter().map(|s| a.plan.command(s)).collect::<Vec<_>>()),
        )
    };
    assert_eq!(
        planned("2001:db8::2/64@2001:db8::1").await.unwrap().unwrap(),
        lines(
            "
        GUEST sysctl -qw net.ipv6.conf.eth1.disable_ipv6=0
        GUEST ip -6 addr add 2001:db8::2/64 dev eth1
        GUEST ip -6 route get 2001:db8::1 || ip -6 route add 2001:db8::1/128 dev eth1
        GUEST ip -6 route replace default via 2001:db8::1 dev eth1
        ",
        )
    );
    assert_eq!(planned("10.0.0.2/24@10.0.0.1").await.unwrap(), None);
    let e = planned("10.0.0.3/24@10.0.0.254").await.unwrap_err();
    assert_eq!(refused(&e), (Kind::Conflict, "eth1 of blue has the IPv4 gateway 10.0.0.1 already".into()));
}
