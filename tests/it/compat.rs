//! Command lines written for the original script, run unchanged from the
//! shell scripts in compat/, then checked through `ip -j`.

use crate::common::*;

/// Runs `compat/<script>` with PIPEWORK, HOSTNS and CTR set, plus `extra`
/// variables; it must succeed.
fn run_script(script: &str, host: &Netns, ctr: &Container, extra: &[(&str, &str)]) {
    let path = format!("{}/compat/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("bash")
        .arg(&path)
        .env("PIPEWORK", PIPEWORK)
        .env("HOSTNS", &host.name)
        .env(STATE_DIR_ENV, host.state_dir())
        .env("CTR", &ctr.name)
        .envs(extra.iter().copied())
        .env_remove("FAILPOINTS")
        .env_remove("PIPEWORK_FAIL_AT")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("cannot run bash");
    assert!(
        out.status.success(),
        "{script} failed: {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn xcat_runbook() {
    let host = Netns::new("host");
    // The runbook's `docker create` (see the script's header), then `docker start`.
    let ctr = Container::create("xcatmn", XCATMN_CREATE, &["/bin/sh"]);
    run_script("xcat-runbook.sh", &host, &ctr, &[]);

    assert_eq!(ctr.cidrs("eth1", Family::V4), vec!["10.5.106.101/24"]);
    assert_default_via(&ctr, Family::V4, "10.5.106.1", "eth1");
    assert_eq!(host.must_link(&host_side("eth1", ctr.pid)).master.as_deref(), Some("br0"));
    // dockerhost1 owns 10.5.106.1 on br0 and reaches xcatmn.
    assert!(host.ping("10.5.106.101"), "the Docker host cannot ping xcatmn");
    // What the runbook's docker flags promised is still there.
    assert_eq!(ctr.inspect("{{.Config.Hostname}}"), "xcatmn");
}

#[test]
fn bridge_examples() {
    let host = Netns::new("host");
    let ctr = Container::run("ctr");
    run_script("bridge-examples.sh", &host, &ctr, &[]);

    let pid = ctr.pid;
    for (ctr_if, host_if, cidr) in [
        ("eth1", host_side("eth1", pid), "192.168.1.10/24"),
        ("eth2", host_side("eth2", pid), "192.168.2.10/24"),
        ("eth3", "vethweb".to_owned(), "192.168.3.10/24"),
        ("eth4", host_side("eth4", pid), "192.168.4.10/24"),
        ("eth5", host_side("eth5", pid), "192.168.5.10/24"),
    ] {
        assert_eq!(host.must_link(&host_if).master.as_deref(), Some("br1"), "{host_if}");
        assert!(ctr.must_link(ctr_if).is_up(), "{ctr_if}");
        assert_eq!(ctr.cidrs(ctr_if, Family::V4), vec![cidr.to_owned()], "{ctr_if}");
    }
    assert_default_via(&ctr, Family::V4, "192.168.1.254", "eth1");
    assert_eq!(ctr.must_link("eth4").address, "02:72:6c:cd:9b:8d");
    assert_eq!(ctr.must_link("eth5").address, "02:12:34:56:78:9a");
    assert_eq!(host.must_link(&host_side("eth6", pid)).master.as_deref(), Some("br1"));
    assert!(ctr.addrs("eth6").is_empty(), "0/0 assigns nothing");
    assert_eq!(host.ports("br1").len(), 6);
}

/// The runbook's `docker create` options for xcatmn (see compat/xcat-runbook.sh).
const XCATMN_CREATE: &[&str] = &[
    "-it",
    "--dns=10.5.106.1",
    "--dns-search=clusters.com",
    "--hostname=xcatmn",
    "--add-host=xcatmn:10.5.106.101",
    "--add-host=c910f05c01bc06:10.5.106.1",
];

#[test]
fn xcat_full_runbook_from_an_unbridged_host() {
    let host = Netns::new("host");
    // dockerhost1 before the runbook: eth0 faces the nodes and carries the default route.
    let node = host.add_node(&["10.5.106.1/24"], &["10.5.106.20/24"]);
    host.ip(&["route", "add", "default", "via", "10.5.106.254", "dev", "eth0"]);
    // Created only: starting it is a step of the runbook, in the script.
    let mut ctr = Container::created("xcatmn", XCATMN_CREATE, &["/bin/sh"]);
    run_script("xcat-full-runbook.sh", &host, &ctr, &[("NODENS", &node.name)]);
    ctr.pid = ctr.inspect("{{.State.Pid}}").parse().expect("pid");

    assert_eq!(host.must_link("eth0").master.as_deref(), Some("br0"));
    assert_eq!(host.cidrs("br0", Family::V4), vec!["10.5.106.1/24"]);
    assert_default_via(&host, Family::V4, "10.5.106.254", "br0");
    assert_eq!(host.must_link(&host_side("eth1", ctr.pid)).master.as_deref(), Some("br0"));
    assert_default_via(&ctr, Family::V4, "10.5.106.1", "eth1");
    assert!(node.ping("10.5.106.101"), "the node cannot ping xcatmn over br0");
    assert!(node.ping("10.5.106.1"), "the node cannot ping dockerhost1");
    assert!(ctr.ping("10.5.106.20"), "xcatmn cannot ping the node");
}

#[test]
fn physical_examples() {
    let host = Netns::new("host");
    // eth0 faces the LAN; the script picks it by this MAC once.
    let lan = host.add_lan("eth0", "10.5.0.1/24");
    host.ip(&["link", "set", "eth0", "address", "02:aa:bb:cc:dd:01"]);
    // eth9, a spare NIC for --direct-phys; its peer stays on the host.
    host.ip(&["link", "add", "eth9", "type", "veth", "peer", "name", "eth9p"]);
    host.ip(&["link", "set", "eth9p", "up"]);
    let eth9_mac = host.must_link("eth9").address;
    let ctr = Container::run("ctr");
    run_script("physical-examples.sh", &host, &ctr, &[]);

    let macvlans =
        [("eth1", "10.5.0.5/24"), ("eth2", "10.5.0.6/24"), ("eth3", "10.5.0.7/24"), ("eth4", "10.5.0.8/24")];
    for (ctr_if, cidr) in macvlans {
        assert_macvlan_on(&host, "eth0", &ctr, ctr_if, cidr);
    }
    assert_default_via(&ctr, Family::V4, "10.5.0.1", "eth1");
    assert_eq!(ctr.must_link("eth3").address, "02:72:6c:cd:9b:8d");
    let eth5 = ctr.must_link("eth5");
    assert_eq!((eth5.kind.as_deref(), eth5.address.as_str()), (Some("veth"), eth9_mac.as_str()), "{eth5:?}");
    assert!(eth5.is_up(), "{eth5:?}");
    assert_eq!(ctr.cidrs("eth5", Family::V4), vec!["10.9.0.5/24"]);
    assert!(host.link("eth9").is_none(), "eth9 is still on the host");
    // The macvlans were made on the host as ph<pid><if>, and all moved in.
    let left: Vec<_> = host.links().into_iter().filter(|l| l.ifname.starts_with("ph")).collect();
    assert!(left.is_empty(), "left on the host: {left:?}");
    for (_, cidr) in macvlans {
        let ip = cidr.split('/').next().unwrap_or_default();
        assert!(lan.ping(ip), "the LAN cannot ping the container at {ip}");
    }
}

/// The passthrough lines of the contract: `ip route`, `ip rule` and `tc`
/// arguments after the guest, applied inside it.
#[test]
fn passthrough_examples() {
    let host = Netns::new("host");
    let ctr = Container::run("ctr");
    run_script("passthrough-examples.sh", &host, &ctr, &[]);

    let routes = ctr.ip_j(&["route", "show", "table", "all"]);
    let route_to = |dst: &str| routes.as_array().unwrap().iter().find(|r| r["dst"] == dst).cloned();
    let static_route = route_to("10.20.0.0/16").expect("route 10.20.0.0/16");
    assert_eq!(
        (static_route["gateway"].as_str(), static_route["dev"].as_str()),
        (Some("10.5.106.254"), Some("eth1"))
    );
    let in_table = route_to("192.168.50.0/24").expect("route in table 100");
    assert_eq!(in_table["table"].as_str(), Some("100"));
    let rules = ctr.ip_j(&["rule", "show"]);
    let rule = rules
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["src"] == "10.5.106.101")
        .expect("rule from 10.5.106.101");
    assert_eq!(rule["table"].as_str(), Some("100"));
    let qdisc = ctr.nsenter(&["tc", "qdisc", "show", "dev", "eth1"]);
    assert!(stdout(&qdisc).contains("qdisc tbf"), "{}", stdout(&qdisc));
}
