//! Smoke tests of the test environment itself: dnsmasq, Open vSwitch and
//! Podman with CNI work here, driven by independent tools only (busybox
//! udhcpc, dhclient, dhcpcd, ping, ovs-vsctl, the reference CNI plugins).
//! The DHCP, OVS and CNI tests build on these fixtures; a failure here says
//! the machine, not pipework, is at fault.

use std::time::Duration;

use crate::common::*;

/// A client namespace cabled to a fresh dnsmasq: (server, client, ifname).
/// The interface is named uniquely: dhcpcd keeps per-interface files under
/// /run/dhcpcd, shared by every namespace.
fn dhcp_client(config: DhcpConfig) -> (DhcpServer, Netns, String) {
    let server = config.start();
    let client = Netns::new("dhcl");
    let ifname = unique("dc");
    server.plug(&client, &ifname);
    client.ip(&["link", "set", &ifname, "up"]);
    (server, client, ifname)
}

#[test]
fn udhcpc_gets_a_lease_with_mtu_and_classless_routes_from_dnsmasq() {
    let config = DhcpConfig::new("br0", "10.77.0.1/24", "10.77.0.100", "10.77.0.150")
        .lease("2m")
        .mtu(1400)
        .route("10.20.0.0/16", "10.77.0.254")
        .route("0.0.0.0/0", "10.77.0.1")
        .host("02:00:00:77:00:50", "10.77.0.50");
    let (server, client, ifname) = dhcp_client(config);
    client.ip(&["link", "set", &ifname, "address", "02:00:00:77:00:50"]);
    let name = unique("smoke");

    let hostname = format!("hostname:{name}");
    let udhcpc = ["udhcpc", "-i", &ifname, "-f", "-q", "-n", "-t", "5", "-T", "1", "-x", &hostname];
    let out = client.exec_private_resolv(&[&udhcpc[..], &["-O", "mtu", "-O", "staticroutes"]].concat());
    assert!(out.status.success(), "udhcpc: {}{}", stdout(&out), stderr(&out));

    assert_eq!(server.wait_ack(&name, Duration::from_secs(5)), "10.77.0.50");
    let log = server.log();
    assert!(log.contains("lease-time  2m"), "{log}");
    assert!(log.contains("option: 26 mtu  1400"), "{log}");
    assert!(log.contains("option:121 classless-static-route"), "{log}");
    let leases = server.leases();
    assert!(
        leases.iter().any(|l| l.ip == "10.77.0.50" && l.mac == "02:00:00:77:00:50" && l.hostname == name),
        "{leases:?}"
    );
    // Debian's default.script configured the address, the MTU and the router.
    assert_eq!(client.cidrs(&ifname, Family::V4), vec!["10.77.0.50/24".to_owned()]);
    assert_eq!(client.must_link(&ifname).mtu, 1400);
    assert_default_via(&client, Family::V4, "10.77.0.1", &ifname);
}

#[test]
fn dhclient_gets_a_lease_from_dnsmasq() {
    let config = DhcpConfig::new("br0", "10.78.0.1/24", "10.78.0.100", "10.78.0.150");
    let (server, client, ifname) = dhcp_client(config);
    let files = TempDir::new("dhcl");
    let (pid, lease) = (files.join("dhclient.pid"), files.join("dhclient.leases"));
    // No script: dhclient-script would write the machine's /etc/resolv.conf.
    let dhclient = ["dhclient", "-1", "-4", "-sf", "/bin/true", "-pf", &pid, "-lf", &lease, &ifname];
    let out = client.exec_private_resolv(&dhclient);
    assert!(out.status.success(), "dhclient: {}{}", stdout(&out), stderr(&out));
    // -1 leaves it running to renew: stop it (its pid file is ours).
    let _ = client.exec_private_resolv(&[
        "dhclient",
        "-x",
        "-sf",
        "/bin/true",
        "-pf",
        &pid,
        "-lf",
        &lease,
        &ifname,
    ]);

    let line = server.wait_log(&["DHCPACK(br0)", "10.78.0.1"], Duration::from_secs(5));
    let ip = line.split_whitespace().skip_while(|w| !w.starts_with("DHCPACK(")).nth(1).expect("address");
    let leased = std::fs::read_to_string(&lease).expect("dhclient's lease file");
    assert!(leased.contains(&format!("fixed-address {ip};")), "{leased}");
}

#[test]
fn dhcpcd_gets_a_lease_from_dnsmasq() {
    let config = DhcpConfig::new("br0", "10.79.0.1/24", "10.79.0.100", "10.79.0.150");
    let (server, client, ifname) = dhcp_client(config);
    // -1: one lease, then exit; -B: stay in the foreground; -c: no hook
    // scripts, so the machine's resolv.conf is never touched.
    let out =
        client.exec_private_resolv(&["dhcpcd", "-1", "-4", "-B", "-t", "10", "-c", "/bin/true", &ifname]);
    assert!(out.status.success(), "dhcpcd: {}{}", stdout(&out), stderr(&out));
    let line = server.wait_log(&["DHCPACK(br0)", "10.79.0.1"], Duration::from_secs(5));
    let ip = line.split_whitespace().skip_while(|w| !w.starts_with("DHCPACK(")).nth(1).expect("address");
    assert_eq!(client.cidrs(&ifname, Family::V4), vec![format!("{ip}/24")]);
    let _ = client.exec_private_resolv(&["dhcpcd", "-x", &ifname]);
}

#[test]
fn namespaces_on_one_vlan_of_an_ovs_bridge_reach_each_other_and_not_another_vlan() {
    let host = Netns::new("ovsh");
    let ovs = Ovs::new(&host);
    let br = ovs.add_bridge();
    assert!(br.name.starts_with("ovs"), "{}", br.name);
    let rows = ovs.rows("Bridge");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["datapath_type"], "netdev");

    let peer = |cidr: &str, vlan: u16| {
        let ns = Netns::new("ovsp");
        let port = unique("op");
        host.ip(&["link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns.name]);
        host.ip(&["link", "set", &port, "up"]);
        ns.ip(&["addr", "add", cidr, "dev", "eth0"]);
        ns.ip(&["link", "set", "eth0", "up"]);
        br.add_port(&port, Some(vlan));
        (ns, port)
    };
    let (a, a_port) = peer("10.66.0.1/24", 10);
    let (b, _) = peer("10.66.0.2/24", 10);
    let (c, _) = peer("10.66.0.3/24", 20);

    assert!(a.ping("10.66.0.2"), "no ping across VLAN 10 of {}", br.name);
    assert!(!c.ping("10.66.0.2"), "VLAN 20 reached VLAN 10");
    assert!(b.ping("10.66.0.1"));

    let port = br.port(&a_port);
    assert_eq!((port.tag, port.error.as_deref()), (Some(10), None), "{port:?}");
    let tags: Vec<_> = br.ports().iter().map(|p| p.tag).collect();
    assert_eq!(tags.iter().filter(|t| **t == Some(10)).count(), 2, "{tags:?}");

    // The database snapshot sees a change, and only a change.
    let before = ovs.snapshot();
    assert_eq!(ovs.snapshot(), before);
    ovs.vsctl(&["set", "Port", &a_port, "external_ids:pipework=yes"]);
    assert_ne!(ovs.snapshot(), before);
    assert_eq!(br.port(&a_port).external_ids.get("pipework").map(String::as_str), Some("yes"));
}

#[test]
fn podman_runs_a_container_on_a_reference_bridge_cni_network_and_rm_cleans_up() {
    let host = Netns::new("podh");
    let podman = Podman::new(&host, &[CNI_PLUGINS]);
    let bridge = unique("cni");
    let network = podman.add_bridge_network(&bridge, "10.88.5.0/24");

    let ctr = podman.run("pod", &network, &[]);
    let ip = ctr.inspect(&format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}"));
    assert!(ip.starts_with("10.88.5."), "{ip}");
    assert_eq!(ctr.cidrs("eth0", Family::V4), vec![format!("{ip}/24")]);
    assert_default_via(&ctr, Family::V4, "10.88.5.1", "eth0");
    assert!(ctr.ping("10.88.5.1"), "the container does not reach its gateway");
    assert_eq!(host.ports(&bridge).len(), 1, "{:?}", host.ports(&bridge));
    assert_eq!(podman.ipam_allocations(), vec![ip.clone()]);

    let name = ctr.name.clone();
    ctr.remove();
    assert_eq!(host.ports(&bridge).len(), 0, "podman rm left a port: {:?}", host.ports(&bridge));
    assert!(podman.ipam_allocations().is_empty(), "podman rm kept the address");
    let left = podman.must(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(!left.lines().any(|n| n == name), "{left}");
}
