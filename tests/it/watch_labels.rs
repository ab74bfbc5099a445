//! `pipework watch` and the trust boundary of labels: a label is input from
//! whoever may run a container, so it plumbs only into host interfaces the
//! operator allowed (`--allow`), never with what reaches past the container
//! (`--direct-phys`, `-l`, `--vlan-filtering`, host DHCP clients), and never
//! into a network namespace the container shares; records stay trusted.
//! The hostile labels run under a watcher without `--allow`, then under one
//! that allows what they name: snapshots of the host and the containers,
//! and the exact log lines, are the oracles.

use crate::common::*;

/// A host of the test's own: br0 (an existing bridge), eth0 (the "NIC" a
/// label would take) and eth9 (found by its MAC), veths standing in for
/// NICs (this kernel has no dummy).
fn hostile_host() -> Netns {
    let host = Netns::new("host");
    host.add_bridge("br0", None);
    host.ip(&["link", "add", "eth0", "type", "veth", "peer", "name", "eth0p"]);
    host.ip(&["link", "add", "eth9", "address", ETH9_MAC, "type", "veth", "peer", "name", "eth9p"]);
    for link in ["eth0", "eth0p", "eth9", "eth9p"] {
        host.ip(&["link", "set", link, "up"]);
    }
    host
}

const ETH9_MAC: &str = "02:00:00:00:e9:09";

/// Waits for the warning watch logs about container `name`: exactly `what`.
#[track_caller]
fn said(w: &Watcher, name: &str, what: &str) {
    let said = format!("{name}: {what}");
    let line = w.wait_log(&said, SETTLE);
    assert!(line.contains("WARN") && line.ends_with(&said), "{line:?} is not the warning {said:?}");
}

#[test]
fn hostile_labels_change_nothing_with_or_without_allow() {
    let host = hostile_host();
    let scope = unique("hl");
    let marker = TempDir::new("hl");
    let script = marker.join("x.sh");
    let ran = marker.join("ran");
    std::fs::write(&script, format!("#!/bin/sh\ntouch {ran}\n")).unwrap();
    run(&["chmod", "755", &script]);
    let udhcpc = format!("br0 'udhcpc:-s {script} -n'");
    let mac = format!("mac:{ETH9_MAC} 10.9.0.7/24");
    let label = format!("{SCOPE}={scope}");
    // Made before any watcher: each one's catch-up is over at "caught up".
    let c = Container::run_with(
        "hl",
        &[
            "--label",
            &label,
            "--label",
            "pipework.eth1=eth0 --direct-phys 0/0",
            "--label",
            &format!("pipework.eth2={udhcpc}"),
            "--label",
            "pipework.eth3=br9 10.9.0.3/24",
            "--label",
            "pipework.eth4=br0 -l vhl4 10.5.0.4/24",
            "--label",
            "pipework.eth5=br0 10.5.0.5/24",
            "--label",
            "pipework.eth6=br0 --vlan-filtering 10.5.0.6/24 @10",
            "--label",
            &format!("pipework.eth7={mac}"),
        ],
    );
    let victim = Container::run_with("hv", &["--label", &label]);
    let mut sharer = Container { name: owned_name("hs"), pid: 0 };
    let net = format!("container:{}", victim.name);
    let plumb = "pipework.eth1=br0 10.5.0.9/24";
    run(&[
        "docker",
        "run",
        "-d",
        "--name",
        &sharer.name,
        "--network",
        &net,
        "--label",
        &label,
        "--label",
        plumb,
    ]
    .into_iter()
    .chain([IMAGE, "/bin/sleep", "1000000"])
    .collect::<Vec<_>>());
    sharer.pid = sharer.inspect("{{.State.Pid}}").parse().unwrap();
    assert_eq!(sharer.inspect("{{.HostConfig.NetworkMode}}"), format!("container:{}", container_id(&victim)));
    let (host_before, c_before, victim_before) = (host.snapshot(), c.snapshot(), victim.snapshot());
    let host_links = |host: &Netns| host.links().into_iter().map(|l| l.ifname).collect::<Vec<_>>();
    let links_before = host_links(&host);

    let never = |n: u8, value: &str, word: &str, why: &str| {
        format!("label pipework.eth{n}={value} refused: {word} is never taken from a label: {why}")
    };
    let dhcp = "host DHCP clients take options that name files, scripts and programs; labels use dhcp, \
                the native client";
    let hostile = [
        never(1, "eth0 --direct-phys 0/0", "--direct-phys", "it moves a host interface into the container"),
        never(2, &udhcpc, "udhcpc", dhcp),
        never(4, "br0 -l vhl4 10.5.0.4/24", "-l", "it names an interface of the host"),
        never(
            6,
            "br0 --vlan-filtering 10.5.0.6/24 @10",
            "--vlan-filtering",
            "it changes every port of a host bridge",
        ),
    ];
    let sharing = format!(
        "labels ignored: NetworkMode container:{}: it does not own its network namespace, and labels plumb \
         only a container's own",
        container_id(&victim)
    );

    // No --allow: no label is plumbed; one line says how to allow those
    // that only need it.
    let w = Watcher::start(&host, &scope, &[]);
    for line in &hostile {
        said(&w, &c.name, line);
    }
    said(
        &w,
        &c.name,
        "labels pipework.eth3, pipework.eth5, pipework.eth7 ignored: labels may plumb only host interfaces \
         allowed with --allow; restart watch with --allow br9 --allow br0 --allow eth9",
    );
    said(&w, &sharer.name, &sharing);
    assert!(!w.log().contains(": plumbed"), "{}", w.log());
    assert_unchanged("host", &host_before, || host.snapshot());
    assert_unchanged("container", &c_before, || c.snapshot());
    assert_unchanged("victim", &victim_before, || victim.snapshot());
    drop(w);

    // Every host interface they name allowed but br9 and eth9: the allowed
    // bridge's label plumbs, the hostile ones still change nothing.
    let w = Watcher::allowing(&host, &scope, &["br0", "eth0"], &[]);
    for line in &hostile {
        said(&w, &c.name, line);
    }
    let not_allowed = "is not allowed: labels may plumb only host interfaces allowed with --allow";
    said(
        &w,
        &c.name,
        &format!("label pipework.eth3=br9 10.9.0.3/24 refused: host interface br9 {not_allowed}"),
    );
    said(&w, &c.name, &format!("label pipework.eth7={mac} refused: host interface eth9 {not_allowed}"));
    said(&w, &sharer.name, &sharing);
    w.wait_log(&format!("{}: plumbed eth5 in", c.name), SETTLE);
    assert_eq!(c.cidrs("eth5", Family::V4), ["10.5.0.5/24"]);
    let names: Vec<String> = c.links().into_iter().map(|l| l.ifname).collect();
    assert_eq!(names, ["lo", "eth5"], "the container's links");
    let ports: Vec<String> = host.ports("br0").into_iter().map(|l| l.ifname).collect();
    assert_eq!(ports, [host_side("eth5", c.pid)], "br0's ports");
    // The host as it was, but for eth5's host side.
    let mut links = links_before.clone();
    links.push(host_side("eth5", c.pid));
    assert_eq!(host_links(&host), links);
    assert!(host.link("eth0").is_some_and(|l| l.kind.as_deref() == Some("veth")), "eth0 left the host");
    assert_unchanged("victim", &victim_before, || victim.snapshot());
    assert!(!std::path::Path::new(&ran).exists(), "the label's script ran");
    assert_ne!(link_info_data(&host, "br0")["vlan_filtering"], 1, "br0's VLAN filtering was turned on");
}

#[test]
fn an_allowed_bridge_that_does_not_exist_is_made_as_an_attach_makes_it() {
    let host = Netns::new("host");
    let w = Watcher::allowing(&host, &unique("ab"), &["br7"], &[]);
    let c = watched_container(&w, "ab", &["--label", "pipework.eth1=br7 10.7.0.6/24@10.7.0.1"]);
    w.wait_log(&format!("{}: plumbed eth1 in", c.name), SETTLE);
    assert_connected(&host, "br7", &host_side("eth1", c.pid), &c, "eth1", "10.7.0.6/24");
    assert_default_via(&c, Family::V4, "10.7.0.1", "eth1");
}

/// Records are written by the operator's own commands: re-applied without
/// any `--allow`, `-l` and all, beside a label that is not.
#[test]
fn records_are_trusted_where_labels_are_not() {
    let host = Netns::new("host");
    host.add_bridge("br0", None);
    let w = Watcher::start(&host, &unique("rt"), &[]);
    let mut c = watched_container(&w, "rt", &["--label", "pipework.eth2=br0 10.5.0.2/24"]);
    said(
        &w,
        &c.name,
        "label pipework.eth2 ignored: labels may plumb only host interfaces allowed with --allow; \
         restart watch with --allow br0",
    );
    assert_success(&pipework(&host, &["br0", "-l", "vrt1", &c.name, "10.5.0.1/24"]));
    restart_container(&mut c);
    w.wait_log(&format!("{}: plumbed eth1 in", c.name), SETTLE);
    assert_connected(&host, "br0", "vrt1", &c, "eth1", "10.5.0.1/24");
    assert!(c.link("eth2").is_none(), "the label was plumbed");
    let ignored = w.log().lines().filter(|l| l.contains("label pipework.eth2 ignored")).count();
    assert_eq!(ignored, 2, "once a start:\n{}", w.log());
}
