//! pipework's records of CNI attachments, as the command line sees them:
//! CHECK against the record, `pipework show` and `check`, `detach`'s
//! refusal, an ADD that cannot record, one container on two networks.
//! Checked through `ip -j`, the record files and host-local's own files.

use crate::common::{
    self, assert_plugin_ok, assert_unchanged, cni_error, testnet_conf, Attach, CniNode, Netns, Ns,
};
use serde_json::{json, Value};

#[test]
fn check_compares_record_prev_result_and_kernel() {
    let node = CniNode::new();
    let ctr = Netns::new("ctr");
    let at = Attach::to(&ctr, "eth0");
    let c = testnet_conf(&node, "pipework", "1.0.0", json!({}));
    let result = node.add("pipework", &at, &c);
    let mut check = c.clone();
    check["prevResult"] = result.clone();
    assert_plugin_ok("pipework", "CHECK", &node.call("pipework", "CHECK", Some(&at), &check, &[]));

    let other = Attach { id: "no-such-container".into(), ..at.clone() };
    let e = cni_error(&node.call("pipework", "CHECK", Some(&other), &check, &[]));
    assert_eq!(e["code"], 3, "{e}");
    assert_eq!(e["msg"], "no attachment recorded for container no-such-container interface eth0");

    let mut foreign = check.clone();
    foreign["prevResult"]["interfaces"] = json!([{"name": "other0"}]);
    foreign["prevResult"]["ips"] = json!([]);
    let e = cni_error(&node.call("pipework", "CHECK", Some(&at), &foreign, &[]));
    assert!(
        e["msg"].as_str().unwrap().starts_with("prevResult does not list this attachment's interfaces"),
        "{e}"
    );

    ctr.ip(&["link", "set", "eth0", "address", "02:00:00:00:00:99"]);
    let e = cni_error(&node.call("pipework", "CHECK", Some(&at), &check, &[]));
    assert_eq!(
        e["msg"],
        format!(
            "eth0 has MAC 02:00:00:00:00:99, prevResult says {}",
            result["interfaces"][2]["mac"].as_str().unwrap()
        )
    );
    let host_veth = result["interfaces"][1]["name"].as_str().unwrap();
    node.host.ip(&["link", "set", host_veth, "nomaster"]);
    let e = cni_error(&node.call("pipework", "CHECK", Some(&at), &check, &[]));
    assert_eq!(e["msg"], format!("{host_veth} is missing or not a port of cni0"));
}

/// A container ID as runtimes make them: long, shortened in `show`.
fn long_id(ctr: &Netns) -> Attach {
    Attach { id: format!("{}0123456789abcdef0123456789abcdef", ctr.name), ..Attach::to(ctr, "eth0") }
}

/// The record of an ADD, on disk, is what the kernel and the result say;
/// `pipework show` lists it, `check` holds until the kernel drifts.
#[test]
fn show_and_check_see_cni_attachments() {
    let node = CniNode::new();
    let ctr = Netns::new("ctr");
    let at = long_id(&ctr);
    let result = node.add("pipework", &at, &testnet_conf(&node, "pipework", "1.0.0", json!({})));
    let host_veth = result["interfaces"][1]["name"].as_str().unwrap();
    let eth0 = &ctr.ip_j(&["-d", "link", "show", "eth0"])[0];
    let mac = eth0["address"].as_str().unwrap();

    let records = node.records();
    assert_eq!(records.len(), 1);
    let (file, record) = &records[0];
    assert_eq!(file, &format!("cni-{}.json", at.id));
    assert_eq!(record["version"], 1);
    assert_eq!(record["guest"]["find"], json!({"kind": "cni", "container_id": at.id, "netns": at.netns}));
    assert_eq!(record["host"]["netns"], node.host.name.as_str());
    let iface = &record["interfaces"][0];
    assert_eq!(iface["name"], "eth0");
    assert_eq!(iface["ifindex"], eth0["ifindex"]);
    assert_eq!((&iface["how"], &iface["host_side"]), (&json!("veth"), &json!(host_veth)));
    assert_eq!(iface["attached_to"], json!({"bridge": "cni0"}));
    assert_eq!((&iface["mac"], &iface["mtu"]), (&json!(mac), &eth0["mtu"]));
    assert_eq!(iface["addresses"], json!(["10.77.0.2/24", "fd77::2/64"]));
    assert_eq!(iface["gateway"], "10.77.0.1");
    assert_eq!(iface["cni"]["network"], "testnet");
    assert_eq!(iface["cni"]["config"]["ipam"]["dataDir"], node.ipam_dir().as_str());
    assert_eq!(iface["cni"]["result"]["cniVersion"], "1.1.0");
    assert_eq!(iface["cni"]["result"]["ips"], result["ips"]);

    let out = node.pipework(&["show"]);
    common::assert_success(&out);
    let lines: Vec<Vec<String>> =
        common::stdout(&out).lines().map(|l| l.split_whitespace().map(String::from).collect()).collect();
    let short = &at.id[..12];
    let row = [short, "eth0", host_veth, "bridge:cni0", "10.77.0.2/24,fd77::2/64", mac, "-", "live"];
    let header = ["GUEST", "INTERFACE", "HOST-SIDE", "ATTACHED-TO", "ADDRESSES", "MAC", "RULES", "STATE"];
    assert_eq!(lines, [header.to_vec(), row.to_vec()]);
    let out = node.pipework(&["show", short, "--json"]);
    common::assert_success(&out);
    let rows: Value = serde_json::from_str(&common::stdout(&out)).unwrap();
    assert_eq!((&rows[0]["network"], &rows[0]["key"]), (&json!("testnet"), &json!(format!("cni-{}", at.id))));

    let check = |args: &[&str]| {
        let out = node.pipework(&[&["check"], args].concat());
        (out.status.code().unwrap(), common::stdout(&out))
    };
    assert_eq!(check(&[]), (0, String::new()));
    assert_eq!(check(&[&at.id]), (0, String::new()));
    node.host.ip(&["link", "set", host_veth, "nomaster"]);
    ctr.ip(&["addr", "del", "10.77.0.2/24", "dev", "eth0"]);
    assert_eq!(
        check(&[]),
        (
            1,
            format!(
                "missing address 10.77.0.2/24 on eth0 of {short}\n\
                 default route of {short}: none, recorded via 10.77.0.1 dev eth0\n\
                 host side {host_veth} has no master, recorded cni0\n"
            )
        )
    );
}

/// `pipework detach` leaves a CNI attachment to the runtime, saying so.
#[test]
fn detach_refuses_a_cni_attachment() {
    let node = CniNode::new();
    let ctr = Netns::new("ctr");
    let at = long_id(&ctr);
    node.add("pipework", &at, &testnet_conf(&node, "pipework", "1.0.0", json!({})));
    let (host_before, ctr_before) = (common::settled_snapshot(&node.host), common::settled_snapshot(&ctr));
    let records = node.records();
    for args in [vec!["detach", &at.id], vec!["detach", &at.id[..12], "-i", "eth0"]] {
        let out = node.pipework(&args);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            common::stderr(&out),
            format!(
                "pipework: eth0 of {} is a CNI attachment of network testnet: \
                 the container runtime removes it (CNI DEL)\n",
                &at.id[..12]
            )
        );
        assert_unchanged("host", &host_before, || node.host.snapshot());
        assert_unchanged("container", &ctr_before, || ctr.snapshot());
        assert_eq!(node.records(), records);
    }
}

/// A record that cannot be written fails ADD with an I/O error: the links
/// are rolled back and the address goes back to IPAM.
#[test]
fn an_add_that_cannot_record_leaves_nothing() {
    let node = CniNode::new();
    let ctr = Netns::new("ctr");
    let at = Attach::to(&ctr, "eth0");
    let c = testnet_conf(&node, "pipework", "1.0.0", json!({}));
    let (host_before, ctr_before) = (node.host.snapshot(), ctr.snapshot());
    // A directory where the container's record should be.
    let record = format!("{}/cni-{}.json", node.state_dir(), at.id);
    std::fs::create_dir_all(&record).unwrap();
    let e = cni_error(&node.call("pipework", "ADD", Some(&at), &c, &[]));
    assert_eq!(e["code"], 5, "{e}");
    assert_eq!(
        e["msg"],
        format!("recording the attachment of container {}: reading {record}: Is a directory", at.id)
    );
    assert!(node.allocations().is_empty(), "{:?}", node.allocations());
    assert_unchanged("host", &host_before, || node.host.snapshot());
    assert_unchanged("container", &ctr_before, || ctr.snapshot());
}

/// One container on two networks: one record, an interface per network;
/// a DEL of one network leaves the other's interface, even by its name.
#[test]
fn two_networks_share_the_container_record() {
    let node = CniNode::new();
    let ctr = Netns::new("ctr");
    let a = testnet_conf(&node, "pipework", "1.1.0", json!({}));
    let mut b = testnet_conf(&node, "pipework", "1.1.0", json!({"name": "othernet", "bridge": "cni1"}));
    b["ipam"]["ranges"] = json!([[{"subnet": "10.79.0.0/24"}]]);
    node.add("pipework", &Attach::to(&ctr, "eth0"), &a);
    node.add("pipework", &Attach::to(&ctr, "net1"), &b);
    let file = format!("cni-{}.json", ctr.name);
    let both = vec![
        (file.clone(), "eth0".into(), "testnet".into()),
        (file.clone(), "net1".into(), "othernet".into()),
    ];
    assert_eq!(node.attachments(), both);

    // othernet has no eth0: its DEL of eth0 leaves testnet's alone.
    assert_plugin_ok(
        "pipework",
        "DEL",
        &node.call("pipework", "DEL", Some(&Attach::to(&ctr, "eth0")), &b, &[]),
    );
    assert!(ctr.link("eth0").is_some());
    assert_eq!(node.attachments(), both);
    // GC of othernet with nothing valid collects net1 only.
    assert_plugin_ok("pipework", "GC", &node.call("pipework", "GC", None, &b, &[]));
    assert!(ctr.link("net1").is_none() && ctr.link("eth0").is_some());
    assert_eq!(node.attachments(), [(file, "eth0".into(), "testnet".into())]);
    assert_plugin_ok(
        "pipework",
        "DEL",
        &node.call("pipework", "DEL", Some(&Attach::to(&ctr, "eth0")), &a, &[]),
    );
    assert!(node.records().is_empty());
    assert!(node.allocations().is_empty());
}

/// `ctr`'s namespace deleted and made again under the same name, with an
/// `eth0` of its own (a veth, `p0` its peer): not the namespace ADD recorded.
fn made_again(ctr: &Netns) {
    common::run(&["ip", "netns", "del", &ctr.name]);
    common::run(&["ip", "netns", "add", &ctr.name]);
    ctr.ip(&["link", "add", "eth0", "type", "veth", "peer", "name", "p0"]);
}

/// GC and DEL act on a namespace only if it is the one ADD recorded: one
/// made again at the recorded path keeps its links; the address is
/// released and the record dropped all the same.
#[test]
fn gc_and_del_leave_a_namespace_made_again_at_the_recorded_path() {
    let node = CniNode::new();
    let c = testnet_conf(&node, "pipework", "1.1.0", json!({}));
    let (by_gc, by_del) = (Netns::new("ctr"), Netns::new("ctr"));
    node.add("pipework", &Attach::to(&by_gc, "eth0"), &c);
    node.add("pipework", &Attach::to(&by_del, "eth0"), &c);
    made_again(&by_gc);
    made_again(&by_del);
    let left_alone = |ns: &Netns| {
        format!(
            "pipework: {} is not the network namespace ADD recorded for container {} (made again since): \
             its links are left alone\n",
            ns.path(),
            ns.name
        )
    };

    let mut gc = c.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": by_del.name, "ifname": "eth0"}]);
    let out = node.call("pipework", "GC", None, &gc, &[]);
    assert_plugin_ok("pipework", "GC", &out);
    assert_eq!(String::from_utf8_lossy(&out.stderr), left_alone(&by_gc));
    assert!(by_gc.link("eth0").is_some() && by_gc.link("p0").is_some());
    assert_eq!(node.attachments().len(), 1);
    assert_eq!(node.allocations().len(), 2, "{:?}", node.allocations());

    let out = node.call("pipework", "DEL", Some(&Attach::to(&by_del, "eth0")), &c, &[]);
    assert_plugin_ok("pipework", "DEL", &out);
    assert_eq!(String::from_utf8_lossy(&out.stderr), left_alone(&by_del));
    assert!(by_del.link("eth0").is_some() && by_del.link("p0").is_some());
    assert!(node.records().is_empty());
    assert!(node.allocations().is_empty(), "{:?}", node.allocations());
}

/// A record that cannot be read does not stop GC collecting the others
/// (it is named); DEL of its container moves it aside, reports it, removes
/// what it finds by name and releases the address.
#[test]
fn a_damaged_record_is_moved_aside_and_del_goes_on() {
    let node = CniNode::new();
    let c = testnet_conf(&node, "pipework", "1.1.0", json!({}));
    let (damaged, other) = (Netns::new("ctr"), Netns::new("ctr"));
    node.add("pipework", &Attach::to(&damaged, "eth0"), &c);
    node.add("pipework", &Attach::to(&other, "eth0"), &c);
    let file = std::path::Path::new(&node.state_dir()).join(format!("cni-{}.json", damaged.name));
    std::fs::write(&file, b"{\"version\": 1, \"gu").unwrap();
    // GC names it and goes on with the others.
    let out = node.call("pipework", "GC", None, &c, &[]);
    assert_plugin_ok("pipework", "GC", &out);
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        said.starts_with(&format!("pipework: not collected: {}: not a record: ", file.display())),
        "{said}"
    );
    assert!(other.link("eth0").is_none() && damaged.link("eth0").is_some());
    assert!(!file.with_file_name(format!("cni-{}.json", other.name)).exists());

    let out = node.call("pipework", "DEL", Some(&Attach::to(&damaged, "eth0")), &c, &[]);
    assert_plugin_ok("pipework", "DEL", &out);
    let aside = format!("{}.damaged", file.display());
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    let head = format!(
        "pipework: the record of container {} cannot be read ({}: not a record: ",
        damaged.name,
        file.display()
    );
    let tail = format!("): moved to {aside}; removing what is found without it\n");
    assert!(said.starts_with(&head) && said.ends_with(&tail), "{said}");
    assert!(!file.exists());
    assert_eq!(std::fs::read(&aside).unwrap(), b"{\"version\": 1, \"gu");
    assert!(damaged.link("eth0").is_none());
    assert!(node.records().is_empty());
    assert!(node.allocations().is_empty(), "{:?}", node.allocations());
}
