//! The bridge plugin's `vlan` with pipework as the CNI plugin, against the
//! reference bridge plugin 1.1.1 (/usr/lib/cni): a bridge the ADD makes
//! filters VLANs, the container's port is untagged on that VLAN (its PVID)
//! and keeps VLAN 1, the result is the same. A kernel without VLAN
//! filtering refuses: the ADD fails with the kernel's words and leaves
//! nothing, no link, no address held by host-local, no record.

use crate::common::{
    assert_unchanged, cni_error, port_vlans, quiet, stderr, with_keys, Attach, CniNode, Netns, Ns,
};
use serde_json::{json, Value};

/// A layer-2-and-address configuration on VLAN `vlan`.
fn conf(node: &CniNode, plugin: &str, extra: Value) -> Value {
    with_keys(
        json!({
            "cniVersion": "1.0.0",
            "name": "vlannet",
            "type": plugin,
            "bridge": "cni0",
            "vlan": 100,
            "ipam": {"type": "host-local", "dataDir": node.ipam_dir(), "ranges": [[{"subnet": "10.78.0.0/24"}]]},
        }),
        extra,
    )
}

/// The kernel's refusal of a VLAN-filtering bridge (no
/// CONFIG_BRIDGE_VLAN_FILTERING), tried in a throwaway namespace; none if
/// it makes one.
fn vlan_filtering_refused() -> Option<String> {
    let ns = Netns::new("vprobe");
    let out = quiet(&["ip", "-n", &ns.name, "link", "add", "br0", "type", "bridge", "vlan_filtering", "1"]);
    (!out.status.success()).then(|| stderr(&out).trim().to_string())
}

/// A failed ADD left nothing: no address held by host-local, no record,
/// host and container as in `before` (their snapshots).
#[track_caller]
fn assert_left_nothing(node: &CniNode, ctr: &Netns, before: &(Value, Value), plugin: &str) {
    assert!(node.allocations().is_empty(), "{plugin}: {:?}", node.allocations());
    assert!(node.records().is_empty(), "{plugin}: {:?}", node.records());
    assert_unchanged("host", &before.0, || node.host.snapshot());
    assert_unchanged("container", &before.1, || ctr.snapshot());
}

/// The port of `bridge` in `ns` (the host side of the one veth on it).
fn port_of(ns: &Netns, bridge: &str) -> String {
    let ports = ns.ip_j(&["link", "show", "master", bridge]);
    assert_eq!(ports.as_array().map(Vec::len), Some(1), "one port on {bridge}: {ports}");
    ports[0]["ifname"].as_str().expect("ifname").to_string()
}

/// With VLAN filtering: the same result and the same VLANs as the reference.
#[test]
fn vlan_puts_the_port_on_it_as_the_reference_does() {
    if let Some(why) = vlan_filtering_refused() {
        eprintln!("skipped: this kernel's bridges cannot filter VLANs ({why})");
        return;
    }
    let mut seen = Vec::new();
    for plugin in ["bridge", "pipework"] {
        let node = CniNode::new();
        let ctr = Netns::new("ctr");
        let result = node.add(plugin, &Attach::to(&ctr, "eth0"), &conf(&node, plugin, json!({})));
        let port = port_of(&node.host, "cni0");
        let filtering = node.host.ip_j(&["-d", "link", "show", "cni0"])[0]["linkinfo"]["info_data"]
            ["vlan_filtering"]
            .clone();
        let ips = result["ips"].clone();
        let names: Vec<Value> =
            result["interfaces"].as_array().expect("interfaces").iter().map(|i| i["name"].clone()).collect();
        seen.push((filtering, port_vlans(&node.host.name, &port), ips, names.len()));
    }
    assert_eq!(seen[0], seen[1], "bridge's VLAN filtering, port VLANs, IPs, interfaces: reference, pipework");
    assert_eq!(seen[1].0, json!(1));
    assert!(
        seen[1].1.contains(&(100, vec!["PVID".to_string(), "Egress Untagged".to_string()])),
        "{:?}",
        seen[1].1
    );
}

/// This kernel cannot filter VLANs: the reference fails making the bridge
/// and leaves nothing; pipework fails too, with the kernel's words, rolls
/// its links back and has host-local release the address it got meanwhile.
#[test]
fn vlan_without_the_kernels_filtering_fails_and_leaves_nothing() {
    let Some(why) = vlan_filtering_refused() else {
        eprintln!("skipped: this kernel's bridges filter VLANs");
        return;
    };
    assert!(why.contains("Operation not supported"), "{why}");
    for (plugin, msg) in [
        (
            "bridge",
            "failed to create bridge \"cni0\": could not add \"cni0\": operation not supported".to_string(),
        ),
        ("pipework", String::new()),
    ] {
        let node = CniNode::new();
        let ctr = Netns::new("ctr");
        let at = Attach::to(&ctr, "eth0");
        let before = (node.host.snapshot(), ctr.snapshot());
        let e = cni_error(&node.call(plugin, "ADD", Some(&at), &conf(&node, plugin, json!({})), &[]));
        assert_eq!(e["code"], 999, "{plugin}: {e}");
        let text = e["msg"].as_str().expect("msg");
        if msg.is_empty() {
            assert!(text.ends_with(PIPEWORK_REFUSAL), "{plugin}: {e}");
        } else {
            assert_eq!(text, msg, "{plugin}");
        }
        assert_left_nothing(&node, &ctr, &before, plugin);
    }
}

/// What pipework says when the kernel refuses VLAN filtering.
const PIPEWORK_REFUSAL: &str =
    "this kernel's bridges cannot filter VLANs: Operation not supported (it lacks CONFIG_BRIDGE_VLAN_FILTERING)";

/// On a bridge that exists already, the reference 1.1.1 turns no filtering
/// on and fails putting the port on the VLAN, leaving the veth pair behind;
/// pipework fails at the same point and leaves the bridge as it was.
#[test]
fn vlan_on_an_existing_bridge_without_the_kernels_filtering_rolls_back() {
    let Some(why) = vlan_filtering_refused() else {
        eprintln!("skipped: this kernel's bridges filter VLANs");
        return;
    };
    let node = CniNode::new();
    let ctr = Netns::new("ctr");
    node.host.ip(&["link", "add", "cni0", "type", "bridge"]);
    let at = Attach::to(&ctr, "eth0");
    let before = (node.host.snapshot(), ctr.snapshot());
    let e = cni_error(&node.call("pipework", "ADD", Some(&at), &conf(&node, "pipework", json!({})), &[]));
    assert_eq!(e["code"], 999, "{e}");
    let msg = e["msg"].as_str().expect("msg");
    assert!(msg.ends_with(&format!("vid 100 pvid untagged): {PIPEWORK_REFUSAL}")), "{why}: {e}");
    assert_left_nothing(&node, &ctr, &before, "pipework");
}

/// The reference gives a gateway on a VLAN an interface of its own
/// (`<bridge>.<vlan>`), which pipework does not make: refused, code 2,
/// before anything is done.
#[test]
fn vlan_with_a_gateway_is_refused() {
    let node = CniNode::new();
    let ctr = Netns::new("ctr");
    let at = Attach::to(&ctr, "eth0");
    let before = (node.host.snapshot(), ctr.snapshot());
    let c = conf(&node, "pipework", json!({"isGateway": true}));
    let e = cni_error(&node.call("pipework", "ADD", Some(&at), &c, &[]));
    assert_eq!((e["code"].clone(), e["msg"].clone()), (json!(2), json!("unsupported field \"vlan\": 100")));
    assert_eq!(
        e["details"],
        "a gateway on a VLAN (the reference's interface cni0.100 for the gateway address) is not implemented"
    );
    assert_left_nothing(&node, &ctr, &before, "pipework");
}
