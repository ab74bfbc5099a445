//! The Linux bridge path: `pipework br* <guest> <ip>/<len>[@gw] [mac]`.

use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::common::*;

const IP: &str = "10.5.106.101/24";

/// A fresh Docker host namespace and a container, and pipework run on them.
fn connect(args: &[&str]) -> (Netns, Container) {
    let host = Netns::new("host");
    let ctr = Container::run("ctr");
    assert_success(&pipework(&host, &with_guest(args, &ctr.name)));
    (host, ctr)
}

#[test]
fn creates_a_missing_bridge_and_connects_the_container() {
    let (host, ctr) = connect(&["br1", "CTR", IP]);
    assert_connected(&host, "br1", &host_side("eth1", ctr.pid), &ctr, "eth1", IP);
    assert_eq!(host.ports("br1").len(), 1);
    assert!(ctr.default_routes(Family::V4).is_empty(), "no gateway given, no default route");
}

#[test]
fn ipv4_address_gets_its_broadcast() {
    let (_host, ctr) = connect(&["br0", "CTR", IP]);
    let addrs = ctr.addrs("eth1");
    let v4: Vec<_> = addrs.iter().filter(|a| a.family == "inet").collect();
    assert_eq!(v4.len(), 1, "{addrs:?}");
    assert_eq!(v4[0].broadcast.as_deref(), Some("10.5.106.255"));
}

#[test]
fn veth_ends_inherit_the_bridge_mtu() {
    let host = Netns::new("host");
    host.add_bridge("br0", Some(1400));
    let ctr = Container::run("ctr");
    assert_success(&pipework(&host, &["br0", &ctr.name, IP]));
    assert_eq!(host.must_link(&host_side("eth1", ctr.pid)).mtu, 1400);
    assert_eq!(ctr.must_link("eth1").mtu, 1400);
    assert_eq!(host.must_link("br0").mtu, 1400);
}

#[test]
fn existing_bridge_is_used_as_it_is() {
    let host = Netns::new("host");
    host.add_bridge("br0", None);
    let before = host.must_link("br0");
    let ctr = Container::run("ctr");
    assert_success(&pipework(&host, &["br0", &ctr.name, IP]));
    assert_connected(&host, "br0", &host_side("eth1", ctr.pid), &ctr, "eth1", IP);
    let after = host.must_link("br0");
    assert_eq!((after.ifindex, after.address), (before.ifindex, before.address), "bridge was remade");
}

#[test]
fn gateway_in_the_subnet_becomes_the_default_route() {
    let (_host, ctr) = connect(&["br0", "CTR", "10.5.106.101/24@10.5.106.1"]);
    assert_default_via(&ctr, Family::V4, "10.5.106.1", "eth1");
    let routes = ctr.routes(Family::V4);
    assert!(!routes.iter().any(|r| r.dst == "10.5.106.1"), "no host route needed: {routes:?}");
}

#[test]
fn gateway_outside_the_subnet_gets_a_host_route() {
    let (_host, ctr) = connect(&["br0", "CTR", "10.5.106.101/24@10.9.0.1"]);
    let routes = ctr.routes(Family::V4);
    let host_route = routes.iter().find(|r| r.dst == "10.9.0.1").unwrap_or_else(|| panic!("{routes:?}"));
    assert_eq!(host_route.dev.as_deref(), Some("eth1"));
    assert_eq!(host_route.scope.as_deref(), Some("link"));
    assert_eq!(host_route.gateway, None);
    assert_default_via(&ctr, Family::V4, "10.9.0.1", "eth1");
}

#[test]
fn gateway_replaces_an_existing_default_route() {
    let host = Netns::new("host");
    let ctr = Container::run("ctr");
    ctr.add_uplink("192.168.77.2/24", "192.168.77.1");
    assert_success(&pipework(&host, &["br0", &ctr.name, "10.5.106.101/24@10.5.106.1"]));
    assert_default_via(&ctr, Family::V4, "10.5.106.1", "eth1");
}

#[test]
fn dash_i_names_the_container_side() {
    let (host, ctr) = connect(&["br0", "-i", "eth2", "CTR", IP]);
    assert_connected(&host, "br0", &host_side("eth2", ctr.pid), &ctr, "eth2", IP);
    assert!(ctr.link("eth1").is_none());
}

#[test]
fn dash_l_names_the_host_side() {
    let (host, ctr) = connect(&["br0", "-l", "vhostweb", "CTR", IP]);
    assert_connected(&host, "br0", "vhostweb", &ctr, "eth1", IP);
    assert!(host.link(&host_side("eth1", ctr.pid)).is_none());
}

#[test]
fn dash_i_and_dash_l_together() {
    let (host, ctr) = connect(&["br0", "-i", "eth3", "-l", "vhostdb", "CTR", IP]);
    assert_connected(&host, "br0", "vhostdb", &ctr, "eth3", IP);
}

#[test]
fn ipv6_address_and_default_route() {
    let host = Netns::new("host");
    let ctr = Container::run_with("ctr", DOCKER_IPV6);
    assert_success(&pipework(&host, &["br0", "-a", "6", &ctr.name, "2001:db8::10/64@2001:db8::1"]));
    assert_connected(&host, "br0", &host_side("eth1", ctr.pid), &ctr, "eth1", "2001:db8::10/64");
    assert_default_via(&ctr, Family::V6, "2001:db8::1", "eth1");
}

#[test]
fn ipv6_unreachable_gateway_gets_a_128_host_route() {
    let host = Netns::new("host");
    let ctr = Container::run_with("ctr", DOCKER_IPV6);
    assert_success(&pipework(&host, &["br0", "-a", "inet6", &ctr.name, "2001:db8::10/64@2001:db9::1"]));
    let routes = ctr.routes(Family::V6);
    // `ip -j` shows a /128 destination without its length; the original's /32 would show as such.
    let host_route = routes.iter().find(|r| r.dst == "2001:db9::1").unwrap_or_else(|| panic!("{routes:?}"));
    assert_eq!(host_route.dev.as_deref(), Some("eth1"));
    assert_default_via(&ctr, Family::V6, "2001:db9::1", "eth1");
}

#[test]
fn zero_address_connects_without_an_address() {
    let (host, ctr) = connect(&["br0", "CTR", "0/0"]);
    let h = host.must_link(&host_side("eth1", ctr.pid));
    assert_eq!(h.master.as_deref(), Some("br0"));
    let eth1 = ctr.must_link("eth1");
    assert!(eth1.is_up(), "{eth1:?}");
    assert_eq!(ctr.addrs("eth1"), vec![], "0/0 assigns nothing");
    assert!(ctr.default_routes(Family::V4).is_empty());
}

#[test]
fn literal_mac_is_set() {
    let (_host, ctr) = connect(&["br0", "CTR", IP, "02:12:34:56:78:9A"]);
    assert_eq!(ctr.must_link("eth1").address, "02:12:34:56:78:9a");
}

#[test]
fn u_form_mac_matches_the_original() {
    let (_host, ctr) = connect(&["br0", "CTR", IP, "U:myhost.foo.com"]);
    assert_eq!(ctr.must_link("eth1").address, "02:72:6c:cd:9b:8d");
}

#[test]
fn second_run_from_another_bridge_while_up_is_refused_and_changes_nothing() {
    let (host, ctr) = connect(&["br0", "CTR", IP]);
    let (host_before, ctr_before) = (host.snapshot(), ctr.snapshot());
    // From br0 again it adds its address (tests/it/dual_stack.rs).
    let out = pipework(&host, &["br1", &ctr.name, "10.5.106.102/24"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("Link {} exists and is up\n", host_side("eth1", ctr.pid)));
    assert_unchanged("host", &host_before, || host.snapshot());
    assert_unchanged("container", &ctr_before, || ctr.snapshot());
}

#[test]
fn host_side_left_down_is_deleted_and_made_again() {
    let (host, ctr) = connect(&["br0", "CTR", IP]);
    let name = host_side("eth1", ctr.pid);
    let old = host.must_link(&name);
    host.ip(&["link", "set", &name, "down"]);
    assert_success(&pipework(&host, &["br0", &ctr.name, IP]));
    let new = host.must_link(&name);
    assert_ne!(new.ifindex, old.ifindex, "the link was not made again");
    assert_connected(&host, "br0", &name, &ctr, "eth1", IP);
    assert_eq!(host.ports("br0").len(), 1);
}

#[test]
fn peer_on_the_bridge_and_container_reach_each_other() {
    let host = Netns::new("host");
    host.add_bridge("br0", None);
    let peer = host.add_peer("br0", "10.5.106.1/24");
    let ctr = Container::run("ctr");
    assert_success(&pipework(&host, &["br0", &ctr.name, "10.5.106.101/24@10.5.106.1"]));
    assert!(peer.ping("10.5.106.101"), "peer cannot ping the container");
    assert!(ctr.ping("10.5.106.1"), "container cannot ping the peer");
}

/// A peer on `host`'s br0 with a stale entry for 10.5.106.101 that only an
/// announcement can correct: nothing else makes the peer ask for it.
/// Locktime 0, so the update is not dropped as following the entry's last
/// change too closely.
fn peer_with_stale_entry(host: &Netns) -> Netns {
    let peer = host.add_peer("br0", "10.5.106.1/24");
    let bogus = "02:00:00:00:00:99";
    peer.ip(&["neigh", "add", "10.5.106.101", "lladdr", bogus, "dev", "eth0", "nud", "stale"]);
    peer.ip(&["ntable", "change", "name", "arp_cache", "dev", "eth0", "locktime", "0"]);
    assert_eq!(peer_mac(&peer).as_deref(), Some(bogus));
    peer
}

/// The peer's entry for 10.5.106.101.
fn peer_mac(peer: &Netns) -> Option<String> {
    let entries = peer.ip_j(&["neigh", "show", "to", "10.5.106.101", "dev", "eth0"]);
    entries[0]["lladdr"].as_str().map(str::to_owned)
}

#[track_caller]
fn assert_peer_learns(peer: &Netns, mac: &str) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while peer_mac(peer).as_deref() != Some(mac) {
        assert!(Instant::now() < deadline, "peer still has {:?} for the guest, not {mac}", peer_mac(peer));
        sleep(Duration::from_millis(50));
    }
}

#[test]
fn gratuitous_arp_updates_a_peer_neighbour() {
    let host = Netns::new("host");
    host.add_bridge("br0", None);
    let peer = peer_with_stale_entry(&host);
    let guest = Netns::new("guest");
    assert_success(&pipework(&host, &["br0", &format!("netns:{}", guest.name), IP]));
    assert_peer_learns(&peer, &guest.must_link("eth1").address);
    // eth1 was made with the namespace's default, and must be left with it.
    assert_eq!(proc_sys(&guest, "ipv4/conf/default/arp_notify"), "0");
    assert_eq!(proc_sys(&guest, "ipv4/conf/eth1/arp_notify"), "0");
}

#[test]
fn container_created_then_started_is_found() {
    let host = Netns::new("host");
    let ctr = Container::create("ctr", &["-it", "--hostname=guest"], &["/bin/sh"]);
    assert_success(&pipework(&host, &["br0", &ctr.name, IP]));
    assert_connected(&host, "br0", &host_side("eth1", ctr.pid), &ctr, "eth1", IP);
}

#[test]
fn container_found_by_id() {
    let host = Netns::new("host");
    let ctr = Container::run("ctr");
    let id = ctr.inspect("{{.Id}}");
    assert_success(&pipework(&host, &["br0", &id[..12], IP]));
    assert_connected(&host, "br0", &host_side("eth1", ctr.pid), &ctr, "eth1", IP);
}

// ---- guests that need no Docker

/// pipework on a named-netns guest; the host side's name is the tool's choice.
fn connect_netns_guest(guest_arg: impl Fn(&Netns) -> String) {
    let host = Netns::new("host");
    let guest = Netns::new("guest");
    assert_success(&pipework(&host, &["br0", &guest_arg(&guest), IP]));
    let ports = host.ports("br0");
    assert_eq!(ports.len(), 1, "{ports:?}");
    assert_connected(&host, "br0", &ports[0].ifname, &guest, "eth1", IP);
}

#[test]
fn netns_name_guest() {
    connect_netns_guest(|ns| format!("netns:{}", ns.name));
}

#[test]
fn netns_path_guest() {
    connect_netns_guest(|ns| ns.path());
}

#[test]
fn pid_guest() {
    let host = Netns::new("host");
    let guest = Netns::new("guest");
    let proc = guest.spawn_process();
    assert_success(&pipework(&host, &["br0", &format!("pid:{}", proc.pid()), IP]));
    assert_connected(&host, "br0", &host_side("eth1", proc.pid()), &guest, "eth1", IP);
}

#[test]
fn fifty_guests_at_once_on_one_new_bridge() {
    const N: usize = 50;
    let host = Netns::new("host");
    let guests: Vec<Netns> = (0..N).map(|_| Netns::new("guest")).collect();
    let jobs: Vec<(String, String)> = guests
        .iter()
        .enumerate()
        .map(|(i, g)| (format!("netns:{}", g.name), format!("10.6.0.{}/24", i + 1)))
        .collect();
    // All 50 processes are started before any is waited for.
    let outputs: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> =
            jobs.iter().map(|(guest, ip)| s.spawn(|| pipework(&host, &["br9", guest, ip]))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (out, (guest, ip)) in outputs.iter().zip(&jobs) {
        assert!(out.status.success(), "{guest} {ip}: {}\n{}", out.status, stderr(out));
    }
    let bridges: Vec<_> = host.links().into_iter().filter(|l| l.kind.as_deref() == Some("bridge")).collect();
    assert_eq!(bridges.len(), 1, "{bridges:?}");
    assert_eq!(bridges[0].ifname, "br9");
    assert_eq!(host.ports("br9").len(), N);
    for (g, (_, ip)) in guests.iter().zip(&jobs) {
        assert_eq!(g.cidrs("eth1", Family::V4), vec![ip.clone()]);
    }
}

/// A sysctl of `ns` read from /proc: `path` below /proc/sys/net.
fn proc_sys(ns: &dyn Ns, path: &str) -> String {
    ns.must(&["cat", &format!("/proc/sys/net/{path}")]).trim().to_owned()
}

/// Dots in interface names are part of the name, not of the sysctl path:
/// the host side's disable_ipv6 is set, the announcement (arp_notify on the
/// guest side) reaches a peer, and a guest whose interfaces start without
/// IPv6 gets it on the dotted one.
#[test]
fn dotted_interface_names_get_their_sysctls() {
    let host = Netns::new("host");
    host.add_bridge("br0", None);
    let peer = peer_with_stale_entry(&host);
    let guest = Netns::new("guest");
    let target = format!("netns:{}", guest.name);
    assert_success(&pipework(&host, &["br0", "-i", "eth1.100", "-l", "my.veth", &target, IP]));
    assert_connected(&host, "br0", "my.veth", &guest, "eth1.100", IP);
    assert_eq!(proc_sys(&host, "ipv6/conf/my.veth/disable_ipv6"), "1");
    assert_peer_learns(&peer, &guest.must_link("eth1.100").address);
    assert_eq!(proc_sys(&guest, "ipv4/conf/eth1.100/arp_notify"), "0");

    let guest6 = Netns::new("guest");
    guest6.exec(&["sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6"]);
    assert_eq!(proc_sys(&guest6, "ipv6/conf/default/disable_ipv6"), "1");
    let target6 = format!("netns:{}", guest6.name);
    assert_success(&pipework(&host, &["br0", "-i", "eth2.7", "-l", "my.v6", &target6, "2001:db8::10/64"]));
    assert_eq!(proc_sys(&guest6, "ipv6/conf/eth2.7/disable_ipv6"), "0");
    assert_eq!(guest6.cidrs("eth2.7", Family::V6), vec!["2001:db8::10/64"]);
}
