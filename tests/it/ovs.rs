//! Open vSwitch bridges: a private ovsdb-server and ovs-vswitchd per test
//! (userspace datapath, in the test's "docker host" namespace), with
//! `ovs-vsctl --format=json` and `ip -j` as the oracles.

use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::json;

/// One container on `bridge` with `ip` (and `[mac]@vlan`), checked to succeed.
fn attach(host: &Netns, ovs: &Ovs, bridge: &str, c: &Container, ip: &str, mac_vlan: Option<&str>) {
    let mut args = vec![bridge, &c.name, ip];
    args.extend(mac_vlan);
    assert_success(&ovs.pipework(host, &args, &[]));
}

fn pings_once(c: &Container, ip: &str) -> bool {
    c.exec(&["ping", "-c", "2", "-W", "1", ip]).status.success()
}

#[test]
fn vlans_separate_guests_on_an_ovs_bridge() {
    let host = Netns::new("ovs");
    let ovs = Ovs::new(&host);
    let br = ovs.add_bridge();
    let bridge = br.name.as_str();
    let (a, b, c, d) = (Container::run("a"), Container::run("b"), Container::run("c"), Container::run("d"));
    attach(&host, &ovs, bridge, &a, "10.30.0.1/24", Some("02:12:34:56:78:9a@10"));
    attach(&host, &ovs, bridge, &b, "10.30.0.2/24", Some("@10"));
    attach(&host, &ovs, bridge, &c, "10.30.0.3/24", Some("@20"));
    attach(&host, &ovs, bridge, &d, "10.30.0.4/24", None);

    assert!(a.ping("10.30.0.2"), "VLAN 10 to VLAN 10");
    assert!(!pings_once(&a, "10.30.0.3"), "VLAN 10 reached VLAN 20");
    assert!(!pings_once(&a, "10.30.0.4"), "VLAN 10 reached the untagged port");
    assert_eq!(a.must_link("eth1").address, "02:12:34:56:78:9a");

    // The original's port: the tag on it, the external-ids on its
    // interface, pipework.interface naming the host side.
    let port = host_side("eth1", a.pid);
    assert_eq!(br.port(&port).tag, Some(10));
    let ids = &ovs.row("Interface", &port).unwrap()["external_ids"];
    let want = json!({
        "pipework.bridge": bridge,
        "pipework.containerid": a.inspect("{{.Id}}"),
        "pipework.containername": a.inspect("{{.Name}}"),
        "pipework.interface": port,
        "pipework.nspid": a.pid.to_string(),
        "pipework.vlan": "10",
    });
    assert_eq!(ids, &want);
    assert_eq!(host.must_link(&port).mtu, host.must_link(bridge).mtu);
    assert!(host.must_link(&port).is_up());

    // Untagged: no tag, no pipework.vlan.
    let untagged = host_side("eth1", d.pid);
    assert_eq!(ovs.row("Port", &untagged).unwrap()["tag"], json!([]));
    let ids = ovs.row("Interface", &untagged).unwrap()["external_ids"].to_string();
    assert!(!ids.contains("pipework.vlan"), "{ids}");
}

#[test]
fn dry_run_prints_the_ovs_vsctl_command_and_changes_nothing() {
    let host = Netns::new("ovs");
    let ovs = Ovs::new(&host);
    let br = ovs.add_bridge();
    let bridge = br.name.as_str();
    let a = Container::run("a");
    let before = ovs.snapshot();
    let out = ovs.pipework(&host, &["--dry-run", bridge, &a.name, "10.30.0.1/24", "@10"], &[]);
    assert_success(&out);
    let port = host_side("eth1", a.pid);
    let id = a.inspect("{{.Id}}");
    let name = a.inspect("{{.Name}}");
    let want = format!(
        "ovs-vsctl add-port {bridge} {port} tag=10 -- set Interface {port} external-ids:pipework.interface=\"{port}\" external-ids:pipework.bridge=\"{bridge}\" external-ids:pipework.containerid=\"{id}\" external-ids:pipework.containername=\"{name}\" external-ids:pipework.nspid=\"{}\" external-ids:pipework.vlan=\"10\"",
        a.pid
    );
    assert!(stdout(&out).lines().any(|l| l == want), "{}", stdout(&out));
    assert_eq!(ovs.snapshot(), before);
    assert!(host.link(&port).is_none());
}

#[test]
fn every_step_rolls_back_to_the_database_as_before() {
    let host = Netns::new("ovs");
    let ovs = Ovs::new(&host);
    let br = ovs.add_bridge();
    let a = Container::run("a");
    let args = [br.name.as_str(), &a.name, "10.30.0.1/24", "@10"];
    let dry = ovs.pipework(&host, &[&["--dry-run"], &args[..]].concat(), &[]);
    let steps = stdout(&dry).lines().count();
    assert!(steps >= 5, "{}", stdout(&dry));
    let db_before = ovs.snapshot();
    assert_every_step_rolls_back(&host, &a, steps, |at| {
        let out = ovs.pipework(&host, &args, &[("PIPEWORK_FAIL_AT", at)]);
        assert!(stderr(&out).contains("injected failure"), "{}", stderr(&out));
        assert_eq!(ovs.snapshot(), db_before, "database after a failure at step {at}");
        out
    });
}

#[test]
fn dead_ports_are_collected_on_the_next_attach() {
    let host = Netns::new("ovs");
    let ovs = Ovs::new(&host);
    let br = ovs.add_bridge();
    let bridge = br.name.as_str();
    let a = Container::run("a");
    attach(&host, &ovs, bridge, &a, "10.30.0.1/24", None);
    let dead = host_side("eth1", a.pid);
    drop(a); // its veth goes with its namespace; the record stays
    let deadline = Instant::now() + Duration::from_secs(5);
    while host.link(&dead).is_some() {
        assert!(Instant::now() < deadline, "{dead} outlived its container");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(ovs.row("Port", &dead).is_some());
    // A port that is not pipework's stays, whatever its state.
    ovs.vsctl(&["add-port", bridge, "foreign0"]);

    let b = Container::run("b");
    attach(&host, &ovs, bridge, &b, "10.30.0.2/24", None);
    assert!(ovs.row("Port", &dead).is_none(), "dead port {dead} left behind");
    assert!(ovs.row("Port", &host_side("eth1", b.pid)).is_some());
    assert!(ovs.row("Port", "foreign0").is_some());
}

#[test]
fn a_bridge_without_a_datapath_is_reported_and_removed() {
    if std::path::Path::new("/sys/module/openvswitch").exists() {
        eprintln!("skipped: this kernel has the openvswitch module, so the system datapath works");
        return;
    }
    let host = Netns::new("ovs");
    let ovs = Ovs::new(&host);
    let a = Container::run("a");
    let bridge = unique("ovs");
    let out = ovs.assert_refused(&host, &a, &[&bridge, &a.name, "10.30.0.1/24"]);
    assert_eq!(
        stderr(&out).trim_end(),
        format!("pipework: step 1/8 failed (ovs-vsctl add-br {bridge}): Open vSwitch cannot make a datapath for bridge {bridge}: ovs-vswitchd gave it no port (datapath type system; this kernel has no openvswitch module: use a bridge with datapath_type=netdev; see ovs-vswitchd's log)")
    );
}

#[test]
fn no_ovsdb_server_is_said_plainly_and_nothing_changes() {
    let host = Netns::new("ovs");
    let a = Container::run("a");
    let sock = std::env::temp_dir().join(unique("nodb")).join("db.sock");
    let sock = sock.display().to_string();
    let out = assert_refused(
        |h, args| pipework_env(h, args, &[("DB_SOCK", &sock)]),
        &host,
        Some(&a),
        &["ovsnew0", &a.name, "10.30.0.1/24"],
    );
    assert_eq!(
        stderr(&out).trim_end(),
        format!("pipework: ovsnew0 needs Open vSwitch: cannot reach ovsdb-server at {sock}: No such file or directory (is Open vSwitch running? DB_SOCK and OVS_RUNDIR choose the socket)")
    );
}

#[test]
fn a_port_name_on_another_bridge_is_refused() {
    let host = Netns::new("ovs");
    let ovs = Ovs::new(&host);
    let br = ovs.add_bridge();
    let other = ovs.add_bridge();
    let a = Container::run("a");
    let port = host_side("eth1", a.pid);
    ovs.vsctl(&["add-port", &other.name, &port]);
    let out = ovs.assert_refused(&host, &a, &[&br.name, &a.name, "10.30.0.1/24"]);
    assert_eq!(
        stderr(&out).trim_end(),
        format!("pipework: port {port} already exists on Open vSwitch bridge {}", other.name)
    );
}

/// Classification asks OVSDB only about a name that can be an OVS bridge:
/// a run on a Linux bridge or a physical interface never connects, so a
/// stuck ovsdb-server cannot slow it down. The oracle is the socket: a
/// listener that never answers, whose queue must stay empty.
#[test]
fn other_host_interfaces_never_connect_to_ovsdb() {
    use std::os::unix::net::UnixListener;
    let host = Netns::new("ovs");
    let a = Container::run("a");
    let dir = TempDir::new("stuckdb");
    let sock = dir.join("db.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    listener.set_nonblocking(true).unwrap();
    host.add_bridge("br0", None);
    host.ip(&["link", "add", "phys0", "type", "veth", "peer", "name", "phys0p"]);
    for hostif in ["br0", "br9", "phys0"] {
        let out = pipework_env(&host, &["--dry-run", hostif, &a.name, "10.30.0.1/24"], &[("DB_SOCK", &sock)]);
        assert_success(&out);
    }
    let accepted = listener.accept();
    assert!(
        matches!(&accepted, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "pipework connected to OVSDB: {accepted:?}"
    );
}

/// An OVS attachment is recorded (bridge, port, VLAN), and `detach` takes
/// the port out of the database and the veth off the host, with the
/// bridge's dead pipework ports; a port that is not pipework's stays.
#[test]
fn detach_removes_the_port_and_collects_dead_ones() {
    let host = Netns::new("ovs");
    let ovs = Ovs::new(&host);
    let br = ovs.add_bridge();
    let bridge = br.name.as_str();
    let (a, b) = (Container::run("a"), Container::run("b"));
    attach(&host, &ovs, bridge, &a, "10.30.0.1/24", Some("@10"));
    attach(&host, &ovs, bridge, &b, "10.30.0.2/24", None);
    let (port_a, port_b) = (host_side("eth1", a.pid), host_side("eth1", b.pid));
    let file = format!("{}/docker-{}.json", host.state_dir(), a.inspect("{{.Id}}"));
    let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let iface = &record["interfaces"][0];
    assert_eq!(iface["attached_to"], json!({"ovs": {"bridge": bridge, "port": port_a}}));
    assert_eq!(iface["vlan"], json!(10));

    // b's host side goes; its port record stays behind, dead.
    host.ip(&["link", "del", &port_b]);
    ovs.vsctl(&["add-port", bridge, "foreign0"]);
    let dry = ovs.pipework(&host, &["detach", "--dry-run", &a.name], &[]);
    assert_success(&dry);
    assert_eq!(
        stdout(&dry),
        format!("ovs-vsctl del-port {bridge} {port_a} -- del-port {bridge} {port_b}\nip link del {port_a}\n")
    );
    assert!(ovs.row("Port", &port_a).is_some() && ovs.row("Port", &port_b).is_some());

    assert_success(&ovs.pipework(&host, &["detach", &a.name], &[]));
    assert!(ovs.row("Port", &port_a).is_none(), "{port_a} left on {bridge}");
    assert!(ovs.row("Port", &port_b).is_none(), "dead {port_b} left on {bridge}");
    assert!(ovs.row("Port", "foreign0").is_some());
    assert!(host.link(&port_a).is_none());
    assert!(a.link("eth1").is_none());
    assert!(!std::path::Path::new(&file).exists());
}

/// `pipework check` asks OVSDB about a recorded port: intact, exit 0; each
/// drift made with ovs-vsctl (the tag changed or cleared, the port moved to
/// another bridge, the port gone, the database unreachable) named, exit 1.
#[test]
fn check_names_each_drift_of_an_ovs_port() {
    let host = Netns::new("ovs");
    let ovs = Ovs::new(&host);
    let (br, other) = (ovs.add_bridge(), ovs.add_bridge());
    let bridge = br.name.as_str();
    let (a, b) = (Container::run("a"), Container::run("b"));
    attach(&host, &ovs, bridge, &a, "10.30.0.1/24", Some("@10"));
    attach(&host, &ovs, bridge, &b, "10.30.0.2/24", None);
    let (port_a, port_b) = (host_side("eth1", a.pid), host_side("eth1", b.pid));
    let check = |c: &Container, env: &[(&str, &str)]| ovs.pipework(&host, &["check", &c.name], env);
    let differs = |c: &Container, line: String| {
        let out = check(c, &[]);
        assert_eq!((out.status.code(), stdout(&out)), (Some(1), line + "\n"), "{}", stderr(&out));
    };
    for c in [&a, &b] {
        let out = check(c, &[]);
        assert_success(&out);
        assert_eq!(stdout(&out), "");
    }

    ovs.vsctl(&["set", "Port", &port_a, "tag=20"]);
    differs(&a, format!("tag 20 on port {port_a} of Open vSwitch bridge {bridge}, recorded 10"));
    ovs.vsctl(&["clear", "Port", &port_a, "tag"]);
    differs(&a, format!("tag none on port {port_a} of Open vSwitch bridge {bridge}, recorded 10"));
    ovs.vsctl(&["set", "Port", &port_b, "tag=30"]);
    differs(&b, format!("tag 30 on port {port_b} of Open vSwitch bridge {bridge}, recorded none"));
    ovs.vsctl(&["set", "Port", &port_a, "tag=10"]);
    assert_success(&check(&a, &[]));

    ovs.vsctl(&["del-port", bridge, &port_a, "--", "add-port", &other.name, &port_a, "tag=10"]);
    differs(&a, format!("port {port_a} on Open vSwitch bridge {}, recorded {bridge}", other.name));
    let json = ovs.pipework(&host, &["check", &a.name, "--json"], &[]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(v["differences"][0]["kind"], "ovs-port", "{v}");
    ovs.vsctl(&["del-port", &other.name, &port_a]);
    differs(&a, format!("port {port_a} missing from Open vSwitch bridge {bridge}"));

    let sock = std::env::temp_dir().join(unique("nodb")).join("db.sock").display().to_string();
    let out = check(&b, &[("DB_SOCK", &sock)]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        format!("port {port_b} of Open vSwitch bridge {bridge} unverified: cannot reach ovsdb-server at {sock}: No such file or directory (is Open vSwitch running? DB_SOCK and OVS_RUNDIR choose the socket)\n")
    );
}

/// The database as `snapshot` gives it, without the interfaces'
/// external_ids: the part the original's `add-port` line decides.
fn db_without_interface_ids(ovs: &Ovs) -> serde_json::Value {
    let mut db = ovs.snapshot();
    let rows: Vec<serde_json::Value> = db["Interface"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let mut row: serde_json::Value = serde_json::from_str(r.as_str().unwrap()).unwrap();
            row.as_object_mut().unwrap().remove("external_ids");
            json!(row.to_string())
        })
        .collect();
    let sorted: std::collections::BTreeSet<String> =
        rows.iter().map(|r| r.as_str().unwrap().to_owned()).collect();
    db["Interface"] = json!(sorted);
    db
}

/// The same command lines against two throwaway switches: pipework on one,
/// on the other what the original runs for them (`ip link add LOCAL mtu
/// MTU type veth ...`, `ovs-vsctl add-port BRIDGE LOCAL ${VLAN:+tag=VLAN}`,
/// `ip link set LOCAL up`). Bridge, port and interface rows are the same
/// (names, tag, no trunks or VLAN mode, interface type); only pipework's
/// external_ids on the interface are added, and the host sides agree.
#[test]
fn the_database_is_the_originals_for_the_same_command_line() {
    let bridge = unique("ovs");
    let lines: [(&str, Option<&str>); 2] = [("vcmp0", Some("10")), ("vcmp1", None)];
    let ours = Netns::new("ovs");
    let ours_ovs = Ovs::new(&ours);
    let _ours_br = ours_ovs.add_bridge_named(&bridge);
    let theirs = Netns::new("ovs");
    let theirs_ovs = Ovs::new(&theirs);
    let _theirs_br = theirs_ovs.add_bridge_named(&bridge);
    let guests: Vec<Container> = lines.iter().map(|_| Container::run("a")).collect();
    let mtu = ours.must_link(&bridge).mtu.to_string();
    for ((local, vlan), c) in lines.iter().zip(&guests) {
        let tagged = vlan.map(|v| format!("@{v}"));
        let mut args = vec!["-l", local, bridge.as_str(), &c.name, "0/0"];
        args.extend(tagged.as_deref());
        assert_success(&ours_ovs.pipework(&ours, &args, &[]));

        theirs.ip(&["link", "add", local, "mtu", &mtu, "type", "veth", "peer", "name", &format!("{local}g")]);
        let tag = vlan.map(|v| format!("tag={v}"));
        let mut add = vec!["add-port", bridge.as_str(), local];
        add.extend(tag.as_deref());
        theirs_ovs.vsctl(&add);
        theirs.ip(&["link", "set", local, "up"]);
    }
    assert_eq!(db_without_interface_ids(&ours_ovs), db_without_interface_ids(&theirs_ovs));
    for (local, _) in lines {
        let (a, b) = (ours.must_link(local), theirs.must_link(local));
        assert_eq!((a.mtu, a.is_up(), a.kind.as_deref()), (b.mtu, b.is_up(), b.kind.as_deref()), "{local}");
    }
    // What pipework adds: its marks, on the interface, none on the port.
    let ids = &ours_ovs.row("Interface", "vcmp0").unwrap()["external_ids"];
    assert_eq!(ids["pipework.interface"], "vcmp0");
    assert_eq!(ids["pipework.vlan"], "10");
    assert_eq!(ours_ovs.row("Port", "vcmp0").unwrap()["external_ids"], json!({}));
}

/// A port record of the host side's name left on the bridge (its veth
/// gone) is replaced, so the port has the VLAN asked for; the original
/// skipped `add-port` there and kept the old tag.
#[test]
fn a_leftover_port_record_of_the_same_name_gets_the_vlan_asked_for() {
    let host = Netns::new("ovs");
    let ovs = Ovs::new(&host);
    let br = ovs.add_bridge();
    let a = Container::run("a");
    let port = host_side("eth1", a.pid);
    ovs.vsctl(&["add-port", &br.name, &port, "tag=20"]);
    attach(&host, &ovs, &br.name, &a, "10.30.0.1/24", Some("@10"));
    assert_eq!(br.port(&port).tag, Some(10));
    assert_eq!(br.ports().iter().filter(|p| p.name == port).count(), 1);
    assert_eq!(br.port(&port).interface_ids.get("pipework.vlan").map(String::as_str), Some("10"));
}
