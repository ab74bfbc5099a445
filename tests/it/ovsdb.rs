//! The OVSDB client against a real ovsdb-server and ovs-vswitchd (a private
//! instance per test, userspace datapath), with `ovs-vsctl --format=json`
//! as the oracle.

use std::path::Path;

use crate::common::{unique, Netns, Ns, Ovs, OvsBridge};
use pipework::sys::ovsdb::{Cond, Datum, Mutation, Op, Ovsdb};
use pipework::sys::vswitch::{Bridge, NewPort};
use serde_json::json;

async fn client(ovs: &Ovs) -> Ovsdb {
    Ovsdb::connect_to(Path::new(&ovs.db_sock())).await.expect("connect")
}

/// A userspace bridge of `ovs` (kept while the guard lives), and a client.
async fn with_netdev_bridge(ovs: &Ovs) -> (Ovsdb, Bridge, OvsBridge<'_>) {
    let mut db = client(ovs).await;
    let guard = ovs.add_bridge();
    let bridge = db.bridge(&guard.name).await.unwrap().unwrap();
    (db, bridge, guard)
}

fn new_port(name: &str, tag: Option<u16>) -> NewPort {
    NewPort {
        name: name.into(),
        tag,
        external_ids: vec![("pipework.bridge".into(), "b".into()), ("pipework.vlan".into(), "10".into())],
    }
}

#[tokio::test]
async fn bridge_and_port_as_ovs_vsctl_sees_them() {
    let host = Netns::new("ovsdb");
    let ovs = Ovs::new(&host);
    let mut db = client(&ovs).await;
    let br = unique("ovs");

    let written = db.add_bridge(&br, "netdev", "test: add-br").await.unwrap();
    db.wait_applied(written.cfg).await.unwrap();
    let row = ovs.row("Bridge", &br).expect("bridge in the database");
    assert_eq!(row["_uuid"], json!(written.uuid));
    assert_eq!(row["datapath_type"], json!("netdev"));
    assert_eq!(ovs.vsctl(&["get", "Interface", &br, "type"]).trim(), "internal");
    assert_eq!(ovs.vsctl(&["get", "Interface", &br, "ofport"]).trim(), "65534");
    assert_eq!(ovs.vsctl(&["br-exists", &br]), "");
    let bridge = db.bridge(&br).await.unwrap().expect("found by name");
    assert_eq!((bridge.uuid.as_str(), bridge.datapath_type.as_str()), (written.uuid.as_str(), "netdev"));
    assert!(db.bridge("ovsnosuch").await.unwrap().is_none());

    let port = unique("vp");
    host.ip(&["link", "add", &port, "type", "veth", "peer", "name", &format!("{port}b")]);
    let added = db.add_port(&bridge.uuid, &new_port(&port, Some(10)), &[], "test: add-port").await.unwrap();
    db.wait_applied(added.cfg).await.unwrap();
    assert_eq!(ovs.vsctl(&["list-ports", &br]).trim(), port);
    assert_eq!(ovs.vsctl(&["get", "Port", &port, "tag"]).trim(), "10");
    assert_eq!(
        ovs.row("Interface", &port).unwrap()["external_ids"],
        json!({"pipework.bridge": "b", "pipework.vlan": "10"})
    );
    let iface = db.interface(&port).await.unwrap().unwrap();
    let ofport: i64 = ovs.vsctl(&["get", "Interface", &port, "ofport"]).trim().parse().unwrap();
    assert_eq!(iface.opened(), Ok(ofport));
    assert!(iface.is_pipeworks());

    let bridge = db.bridge(&br).await.unwrap().unwrap();
    let ports = db.ports(&bridge).await.unwrap();
    let names: Vec<&str> = ports.iter().map(|(p, _)| p.name.as_str()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    let (p, ifaces) = ports.iter().find(|(p, _)| p.name == port).unwrap();
    assert_eq!((p.tag, ifaces.len(), ifaces[0].external_ids["pipework.vlan"].as_str()), (Some(10), 1, "10"));
    assert_eq!(db.bridge_of_port(&p.uuid).await.unwrap().unwrap().name, br);

    let cfg = db.del_ports(std::slice::from_ref(&p.uuid), "test: del-port").await.unwrap();
    db.wait_applied(cfg).await.unwrap();
    assert_eq!(ovs.vsctl(&["list-ports", &br]), "");
    assert!(ovs.row("Interface", &port).is_none(), "the interface row goes with its port");

    let cfg = db.del_bridge(&bridge.uuid, "test: del-br").await.unwrap();
    db.wait_applied(cfg).await.unwrap();
    assert!(ovs.rows("Bridge").is_empty());
    assert!(ovs.rows("Port").is_empty());
}

#[tokio::test]
async fn ovs_vswitchd_reports_what_it_cannot_do() {
    let host = Netns::new("ovsdb");
    let ovs = Ovs::new(&host);
    let (mut db, bridge, _guard) = with_netdev_bridge(&ovs).await;

    // A port whose device does not exist: ofport -1 and the reason.
    let missing = unique("vm");
    let added = db.add_port(&bridge.uuid, &new_port(&missing, None), &[], "test").await.unwrap();
    db.wait_applied(added.cfg).await.unwrap();
    let iface = db.interface(&missing).await.unwrap().unwrap();
    let reason = format!("could not open network device {missing} (No such device)");
    assert_eq!(iface.opened(), Err(Some(reason.as_str())));
    assert_eq!(ovs.vsctl(&["get", "Interface", &missing, "ofport"]).trim(), "-1");

    // The kernel datapath, which this kernel lacks: no port at all.
    let system = unique("ovs");
    let written = db.add_bridge(&system, "", "test").await.unwrap();
    db.wait_applied(written.cfg).await.unwrap();
    let iface = db.interface(&system).await.unwrap().unwrap();
    if Path::new("/sys/module/openvswitch").exists() {
        eprintln!("this kernel has the openvswitch module: the system datapath works here");
        assert!(iface.opened().is_ok());
    } else {
        assert_eq!(iface.opened(), Err(None));
        assert_eq!(ovs.vsctl(&["get", "Interface", &system, "ofport"]).trim(), "[]");
    }
}

#[tokio::test]
async fn refusals_are_decoded_and_change_nothing() {
    let host = Netns::new("ovsdb");
    let ovs = Ovs::new(&host);
    let (mut db, bridge, _guard) = with_netdev_bridge(&ovs).await;
    let br = bridge.name.clone();
    let before = ovs.snapshot();

    // A second port named like the bridge's own: the name index refuses it.
    let e = db.add_port(&bridge.uuid, &new_port(&br, None), &[], "test").await.unwrap_err();
    assert!(
        e.to_string().starts_with("pipework: OVSDB refused the transaction (commit): constraint violation: "),
        "{e}"
    );
    assert!(e.to_string().contains(&format!("identical values ({br}) for index on column \"name\"")), "{e}");

    let e = db.transact(&[Op::Delete { table: "NoSuchTable".into(), conds: vec![] }]).await.unwrap_err();
    assert_eq!(e.to_string(), "pipework: OVSDB refused the transaction (delete from NoSuchTable): syntax error: Parsing ovsdb operation 1 of 1 failed: No table named NoSuchTable.");

    // A wait that is never satisfied fails the whole transaction.
    let never = Op::Wait {
        table: "Bridge".into(),
        conds: vec![Cond::eq("name", Datum::str(&br))],
        columns: vec!["datapath_type".into()],
        equal: true,
        rows: vec![vec![("datapath_type".into(), Datum::str("system"))]],
        timeout_ms: Some(0),
    };
    let rename = Op::Update {
        table: "Bridge".into(),
        conds: vec![Cond::uuid(&bridge.uuid)],
        row: vec![("external_ids".into(), Datum::str_map([("k", "v")]))],
    };
    let e = db.transact(&[rename.clone(), never]).await.unwrap_err();
    assert!(e.to_string().contains("(wait on Bridge): timed out"), "{e}");
    assert_eq!(ovs.snapshot(), before);
    assert_eq!(ovs.vsctl(&["get", "Bridge", &br, "external_ids"]).trim(), "{}");

    let e = db.call("no_such_method", json!([])).await.unwrap_err();
    assert_eq!(e.to_string(), "pipework: ovsdb-server: unknown method");

    // The same update with a wait that holds goes through, with a comment.
    let holds = Op::Wait {
        table: "Bridge".into(),
        conds: vec![Cond::eq("name", Datum::str(&br))],
        columns: vec!["datapath_type".into()],
        equal: true,
        rows: vec![vec![("datapath_type".into(), Datum::str("netdev"))]],
        timeout_ms: Some(0),
    };
    let out = db.transact(&[Op::Comment("test: update".into()), holds, rename]).await.unwrap();
    assert_eq!(out[2].count, Some(1));
    assert_eq!(ovs.vsctl(&["get", "Bridge", &br, "external_ids:k"]).trim(), "v");
    let grow = Op::Mutate {
        table: "Bridge".into(),
        conds: vec![Cond::uuid(&bridge.uuid)],
        mutations: vec![Mutation::insert("external_ids", Datum::str_map([("k2", "v2")]))],
    };
    assert_eq!(db.transact(&[grow]).await.unwrap()[0].count, Some(1));
    assert_eq!(ovs.vsctl(&["get", "Bridge", &br, "external_ids"]).trim(), "{k=v, k2=v2}");
}

#[tokio::test]
async fn no_ovsdb_server_is_said_plainly() {
    let dir = std::env::temp_dir().join(unique("nodb"));
    let sock = dir.join("db.sock");
    let e = Ovsdb::connect_to(&sock).await.err().expect("no server");
    assert_eq!(
        e.to_string(),
        format!(
            "pipework: cannot reach ovsdb-server at {}: No such file or directory (is Open vSwitch running? DB_SOCK and OVS_RUNDIR choose the socket)",
            sock.display()
        )
    );
}

#[test]
fn the_socket_is_found_as_ovs_tools_find_it() {
    // The variables as given, not set in this process: every test shares
    // its environment (and the children they start inherit it).
    let socket = |vars: &[(&str, &str)]| {
        pipework::sys::ovsdb::socket_path_from(|name| {
            vars.iter().find(|(n, _)| *n == name).map(|(_, v)| (*v).to_owned())
        })
    };
    assert_eq!(socket(&[("OVS_RUNDIR", "/run/x")]), Path::new("/run/x/db.sock"));
    assert_eq!(
        socket(&[("OVS_RUNDIR", "/run/x"), ("DB_SOCK", "unix:/tmp/y.sock")]),
        Path::new("/tmp/y.sock")
    );
    assert_eq!(socket(&[]), Path::new("/var/run/openvswitch/db.sock"));
}
