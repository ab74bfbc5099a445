//! pipework as a CNI plugin, run as a runtime runs plugins, against the
//! reference plugins of containernetworking-plugins 1.1.1 (/usr/lib/cni):
//! the same configuration on two throwaway nodes gives the same result and
//! the same kernel state; every command; errors as CNI error objects;
//! chaining; no address leaks. Checked through `ip -j`, sysctl and
//! host-local's own files.

use crate::common::{
    self, assert_plugin_ok, assert_unchanged, cni_error, testnet_conf, Attach, CniNode, Netns, Ns,
};
use serde_json::{json, Value};

/// Strings that differ between two runs by nature: MACs and the random
/// host-side veth names.
fn normalise(v: &Value) -> Value {
    match v {
        Value::String(s) if s.len() == 17 && s.matches(':').count() == 5 => json!("MAC"),
        Value::String(s) if s.starts_with("veth") && s.len() == 12 => json!("VETH"),
        Value::String(s) => {
            json!(s.split('@').next().map(|n| if n.starts_with("veth") { "VETH" } else { n }))
        }
        Value::Array(items) => Value::Array(items.iter().map(normalise).collect()),
        Value::Object(obj) => Value::Object(obj.iter().map(|(k, v)| (k.clone(), normalise(v))).collect()),
        other => other.clone(),
    }
}

fn pick(v: &Value, keys: &[&str]) -> Value {
    Value::Object(keys.iter().filter_map(|k| Some((k.to_string(), v.get(*k)?.clone()))).collect())
}

fn sysctl(ns: &Netns, key: &str) -> String {
    String::from_utf8_lossy(&ns.exec(&["sysctl", "-n", key]).stdout).trim().to_string()
}

/// What an attachment left in the kernel, as `ip -j` and sysctl show it;
/// the host side's IPv6 link-local address and route left out: pipework
/// gives bridge ports no IPv6 of their own (see README), the reference does.
pub(crate) fn kernel_state(node: &CniNode, ctr: &Netns, ifname: &str) -> Value {
    let links = |ns: &Netns| -> Vec<Value> {
        let all = ns.ip_j(&["-d", "link", "show"]);
        all.as_array()
            .expect("links")
            .iter()
            .map(|l| {
                let mut v = pick(l, &["ifname", "mtu", "master", "promiscuity"]);
                v["up"] = json!(l["flags"].as_array().is_some_and(|f| f.contains(&json!("UP"))));
                v["kind"] = l["linkinfo"]["info_kind"].clone();
                v["hairpin"] = l["linkinfo"]["info_slave_data"]["hairpin"].clone();
                v["vlan_filtering"] = l["linkinfo"]["info_data"]["vlan_filtering"].clone();
                v
            })
            .collect()
    };
    let addrs = |ns: &Netns| -> Vec<Value> {
        let all = ns.ip_j(&["addr", "show"]);
        let mut out = Vec::new();
        for l in all.as_array().expect("addrs") {
            for a in l["addr_info"].as_array().into_iter().flatten().filter(|a| a["scope"] != "link") {
                out.push(json!({"dev": l["ifname"], "addr": a["local"], "len": a["prefixlen"], "scope": a["scope"]}));
            }
        }
        out
    };
    let routes = |ns: &Netns| -> Vec<Value> {
        let mut out = Vec::new();
        for family in ["-4", "-6"] {
            for r in ns.ip_j(&[family, "route", "show"]).as_array().expect("routes") {
                if r["dst"].as_str().is_some_and(|d| d.starts_with("fe80::")) {
                    continue;
                }
                out.push(pick(r, &["dst", "gateway", "dev", "protocol", "scope", "metric", "nexthops"]));
            }
        }
        out
    };
    normalise(&json!({
        "host_links": links(&node.host),
        "host_addrs": addrs(&node.host),
        "host_routes": routes(&node.host),
        "ctr_links": links(ctr),
        "ctr_addrs": addrs(ctr),
        "ctr_routes": routes(ctr),
        "ctr_link_local": ctr.ip_j(&["-6", "addr", "show", "dev", ifname, "scope", "link"]).as_array().map(Vec::len),
        "sysctls": {
            "ip_forward": sysctl(&node.host, "net.ipv4.ip_forward"),
            "ipv6_forwarding": sysctl(&node.host, "net.ipv6.conf.all.forwarding"),
            "bridge_accept_ra": sysctl(&node.host, "net.ipv6.conf.cni0.accept_ra"),
            "ctr_accept_dad": sysctl(ctr, &format!("net.ipv6.conf.{ifname}.accept_dad")),
        },
    }))
}

#[test]
fn version_lists_0_3_0_to_1_1_0() {
    let node = CniNode::new();
    let out = node.call("pipework", "VERSION", None, &json!({"cniVersion": "0.4.0"}), &[("CNI_PATH", "")]);
    assert_plugin_ok("pipework", "VERSION", &out);
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        v,
        json!({"cniVersion": "1.1.0", "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]})
    );
}

/// Same configuration, one node each: results equal but for MACs and veth
/// names, kernel state equal, at every version both speak.
#[test]
fn add_matches_the_reference_bridge_plugin() {
    let cases = [
        ("1.0.0", json!({})),
        ("0.4.0", json!({"mtu": 1400, "hairpinMode": true})),
        ("0.3.1", json!({"promiscMode": true, "isDefaultGateway": false})),
        ("1.0.0", json!({"ipam": {}, "isGateway": false, "isDefaultGateway": false, "dns": {}})),
        (
            "1.0.0",
            json!({"isDefaultGateway": false, "ipam": {"type": "static",
                "addresses": [{"address": "10.77.0.9/24", "gateway": "10.77.0.1"}],
                "routes": [{"dst": "10.99.0.0/16"}]}}),
        ),
    ];
    for (version, extra) in cases {
        let mut seen = Vec::new();
        for plugin in ["bridge", "pipework"] {
            let node = CniNode::new();
            let ctr = Netns::new("ctr");
            let path = ctr.path();
            let result = node.add(
                plugin,
                &Attach::to(&ctr, "eth0"),
                &testnet_conf(&node, plugin, version, extra.clone()),
            );
            let result: Value =
                serde_json::from_str(&result.to_string().replace(&path, "NETNS")).expect("json");
            seen.push((normalise(&result), kernel_state(&node, &ctr, "eth0")));
        }
        assert_eq!(seen[0].0, seen[1].0, "ADD result at {version} {extra}");
        assert_eq!(seen[0].1, seen[1].1, "kernel state at {version} {extra}");
    }
}

/// A container whose interfaces start without IPv6 (Docker's and Podman's
/// `--net=none`): both plugins turn it on for the interface that gets an
/// IPv6 address, and leave the namespace's default alone.
#[test]
fn ipv6_off_by_default_in_the_container() {
    let mut seen = Vec::new();
    for plugin in ["bridge", "pipework"] {
        let node = CniNode::new();
        let ctr = Netns::new("ctr");
        ctr.exec(&["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
        node.add(plugin, &Attach::to(&ctr, "eth0"), &testnet_conf(&node, plugin, "1.0.0", json!({})));
        assert_eq!(ctr.cidrs("eth0", common::Family::V6), ["fd77::2/64"], "{plugin}");
        assert_eq!(sysctl(&ctr, "net.ipv6.conf.eth0.disable_ipv6"), "0", "{plugin}");
        assert_eq!(sysctl(&ctr, "net.ipv6.conf.default.disable_ipv6"), "1", "{plugin}");
        seen.push(kernel_state(&node, &ctr, "eth0"));
    }
    assert_eq!(seen[0], seen[1]);
}

#[test]
fn result_at_1_1_0_has_interface_mtu() {
    let node = CniNode::new();
    let ctr = Netns::new("ctr");
    let path = ctr.path();
    let result = node.add(
        "pipework",
        &Attach::to(&ctr, "eth0"),
        &testnet_conf(&node, "pipework", "1.1.0", json!({"mtu": 1400})),
    );
    assert_eq!(result["cniVersion"], "1.1.0");
    assert_eq!(result["interfaces"][2]["mtu"], 1400);
    assert_eq!(result["interfaces"][2]["sandbox"], json!(path));
    assert_eq!(result["ips"][0], json!({"interface": 2, "address": "10.77.0.2/24", "gateway": "10.77.0.1"}));
    assert_eq!(ctr.ip_j(&["link", "show", "eth0"])[0]["mtu"], 1400);
}

/// The runtime's `mac` and `ips` (capabilities): the MAC is pipework's to
/// set, the address host-local's to hand out.
#[test]
fn runtime_config_mac_and_ips() {
    let node = CniNode::new();
    let ctr = Netns::new("ctr");
    let at = Attach::to(&ctr, "eth0");
    let c = testnet_conf(
        &node,
        "pipework",
        "1.0.0",
        json!({"capabilities": {"mac": true, "ips": true},
            "runtimeConfig": {"mac": "02:00:00:0a:0b:0c", "ips": ["10.77.0.42/24"]}}),
    );
    let result = node.add("pipework", &at, &c);
    assert_eq!(result["interfaces"][2]["mac"], "02:00:00:0a:0b:0c");
    assert_eq!(result["ips"][0]["address"], "10.77.0.42/24");
    assert_eq!(ctr.ip_j(&["link", "show", "eth0"])[0]["address"], "02:00:00:0a:0b:0c");
    assert_eq!(ctr.cidrs("eth0", common::Family::V4), ["10.77.0.42/24"]);
}

#[test]
fn del_releases_the_address_and_is_idempotent() {
    let node = CniNode::new();
    let ctr = Netns::new("ctr");
    let at = Attach::to(&ctr, "eth0");
    let c = testnet_conf(&node, "pipework", "1.0.0", json!({}));
    node.add("pipework", &at, &c);
    assert_eq!(node.allocations(), ["10.77.0.2", "fd77::2"]);
    assert_eq!(node.host.ports("cni0").len(), 1);
    for _ in 0..2 {
        let out = node.call("pipework", "DEL", Some(&at), &c, &[]);
        assert_plugin_ok("pipework", "DEL", &out);
        assert!(out.stdout.is_empty(), "DEL prints nothing");
    }
    assert!(node.allocations().is_empty());
    assert!(node.records().is_empty());
    assert!(node.host.ports("cni0").is_empty());
    assert!(ctr.link("eth0").is_none());

    // A DEL naming the host's own namespace deletes none of the host's links.
    node.host.ip(&["link", "add", "eth0", "type", "veth", "peer", "name", "peer0"]);
    let own = Attach { netns: node.host.path(), ..at.clone() };
    assert_plugin_ok("pipework", "DEL", &node.call("pipework", "DEL", Some(&own), &c, &[]));
    assert!(node.host.link("eth0").is_some());
}

#[test]
fn del_after_the_netns_is_gone() {
    let node = CniNode::new();
    let ctr = Netns::new("ctr");
    let path = ctr.path();
    let c = testnet_conf(&node, "pipework", "1.0.0", json!({}));
    let at = Attach::to(&ctr, "eth0");
    node.add("pipework", &at, &c);
    drop(ctr);
    for netns in [path.clone(), String::new()] {
        let out = node.call("pipework", "DEL", Some(&Attach { netns, ..at.clone() }), &c, &[]);
        assert_plugin_ok("pipework", "DEL", &out);
    }
    assert!(node.allocations().is_empty());
    assert!(node.records().is_empty());
    assert!(node.host.ports("cni0").is_empty());
}

/// The plan fails at every step in turn: host-local keeps no address,
/// pipework no record, the host nothing it made.
#[test]
fn a_failed_add_leaks_no_address() {
    let node = CniNode::new();
    let ctr = Netns::new("ctr");
    let at = Attach::to(&ctr, "eth0");
    let c = testnet_conf(&node, "pipework", "1.0.0", json!({"hairpinMode": true}));
    let (host_before, ctr_before) = (node.host.snapshot(), ctr.snapshot());
    let mut failed = 0;
    for step in 1..=40 {
        let out = node.call("pipework", "ADD", Some(&at), &c, &[("PIPEWORK_FAIL_AT", &step.to_string())]);
        if out.status.success() {
            // Past the last step: the plan is whole.
            assert_plugin_ok("pipework", "DEL", &node.call("pipework", "DEL", Some(&at), &c, &[]));
            break;
        }
        failed = step;
        let e = cni_error(&out);
        assert_eq!(e["code"], 999, "{e}");
        assert!(e["msg"].as_str().unwrap().contains("injected failure"), "{e}");
        assert!(node.allocations().is_empty(), "step {step}: {:?}", node.allocations());
        assert!(node.records().is_empty());
        assert_unchanged("host", &host_before, || node.host.snapshot());
        assert_unchanged("container", &ctr_before, || ctr.snapshot());
    }
    assert!(failed > 15, "a failure was injected before each of the {failed} steps, then ADD succeeded");
}

/// DEL is a plan too: failing at each of its steps in turn, it says so and
/// keeps the record, so that the runtime's next DEL finishes the job; at the
/// first step nothing has changed. A DEL past its last step removes the
/// links, the masquerade rule and its table, the record and the address.
#[test]
fn a_failed_del_is_finished_by_the_next() {
    let node = CniNode::new();
    let ctr = Netns::new("ctr");
    let at = Attach::to(&ctr, "eth0");
    let c = testnet_conf(&node, "pipework", "1.0.0", json!({"ipMasq": true}));
    node.add("pipework", &at, &c);
    let (host_before, ctr_before) = (node.host.snapshot(), ctr.snapshot());
    let mut failed = 0;
    for step in 1..=10 {
        let out = node.call("pipework", "DEL", Some(&at), &c, &[("PIPEWORK_FAIL_AT", &step.to_string())]);
        if out.status.success() {
            break;
        }
        failed = step;
        let e = cni_error(&out);
        assert_eq!(e["code"], 999, "{e}");
        assert!(e["msg"].as_str().unwrap().contains("injected failure"), "{e}");
        assert_eq!(node.attachments().len(), 1, "step {step}");
        if step == 1 {
            assert_unchanged("host", &host_before, || node.host.snapshot());
            assert_unchanged("container", &ctr_before, || ctr.snapshot());
        }
    }
    assert!(failed >= 2, "a failure was injected before each of the {failed} steps, then DEL succeeded");
    assert!(ctr.link("eth0").is_none());
    assert!(node.host.ports("cni0").is_empty());
    assert!(node.records().is_empty());
    assert!(node.allocations().is_empty(), "{:?}", node.allocations());
    let tables = node.host.exec(&["nft", "list", "tables"]);
    assert!(tables.status.success(), "nft: {}", String::from_utf8_lossy(&tables.stderr));
    assert!(!String::from_utf8_lossy(&tables.stdout).contains("pipework"), "{tables:?}");
}

/// GC's removals are plans too: failing at their first step, GC says so
/// and keeps on record what it could not remove; the next GC removes it.
#[test]
fn a_failed_gc_is_finished_by_the_next() {
    let node = CniNode::new();
    let ctr = Netns::new("ctr");
    let c = testnet_conf(&node, "pipework", "1.1.0", json!({"ipMasq": true}));
    node.add("pipework", &Attach::to(&ctr, "eth0"), &c);
    let (host_before, ctr_before) = (node.host.snapshot(), ctr.snapshot());
    let e = cni_error(&node.call("pipework", "GC", None, &c, &[("PIPEWORK_FAIL_AT", "1")]));
    assert_eq!((&e["code"], &e["msg"]), (&json!(999), &json!("some stale attachments could not be removed")));
    assert!(e["details"].as_str().unwrap().contains("injected failure"), "{e}");
    assert_eq!(node.attachments().len(), 1);
    assert_unchanged("host", &host_before, || node.host.snapshot());
    assert_unchanged("container", &ctr_before, || ctr.snapshot());
    assert_plugin_ok("pipework", "GC", &node.call("pipework", "GC", None, &c, &[]));
    assert!(ctr.link("eth0").is_none() && node.host.ports("cni0").is_empty());
    assert!(node.records().is_empty());
    assert!(node.allocations().is_empty(), "{:?}", node.allocations());
}

fn error_of(
    node: &CniNode,
    command: &str,
    at: Option<&Attach>,
    c: &Value,
    extra: &[(&str, &str)],
) -> (u64, String) {
    let e = cni_error(&node.call("pipework", command, at, c, extra));
    (e["code"].as_u64().expect("code"), e["msg"].as_str().expect("msg").to_string())
}

#[test]
fn errors_are_cni_error_objects_with_the_spec_codes() {
    let node = CniNode::new();
    let ctr = Netns::new("ctr");
    let at = Attach::to(&ctr, "eth0");
    let good = testnet_conf(&node, "pipework", "1.0.0", json!({}));
    let (host_before, ctr_before) = (node.host.snapshot(), ctr.snapshot());
    let with = |extra: Value| testnet_conf(&node, "pipework", "1.0.0", extra);

    let (code, msg) = error_of(&node, "ADD", Some(&at), &with(json!({"cniVersion": "0.2.0"})), &[]);
    assert_eq!(code, 1);
    assert!(msg.starts_with("incompatible CNI versions; config is \"0.2.0\""), "{msg}");
    assert_eq!(
        error_of(&node, "ADD", Some(&at), &with(json!({"portIsolation": true})), &[]),
        (2, "unsupported field \"portIsolation\": true".into())
    );
    assert_eq!(
        error_of(&node, "ADD", Some(&at), &with(json!({"vlan": 100})), &[]),
        (2, "unsupported field \"vlan\": 100".into())
    );
    let gone = Attach { netns: "/run/netns/no-such-netns".into(), ..at.clone() };
    assert_eq!(
        error_of(&node, "ADD", Some(&gone), &good, &[]),
        (3, "failed to open netns \"/run/netns/no-such-netns\"".into())
    );
    let own = Attach { netns: node.host.path(), ..at.clone() };
    assert_eq!(
        error_of(&node, "ADD", Some(&own), &good, &[]),
        (4, format!("failed to open netns \"{}\"", own.netns))
    );
    let not_netns = Attach { netns: "/proc/self/ns/uts".into(), ..at.clone() };
    assert_eq!(error_of(&node, "ADD", Some(&not_netns), &good, &[]).0, 4);
    assert_eq!(
        error_of(&node, "ADD", None, &good, &[]),
        (4, "required env variables [CNI_CONTAINERID CNI_NETNS CNI_IFNAME] missing".into())
    );
    assert_eq!(
        error_of(&node, "ADD", Some(&at), &good, &[("CNI_ARGS", "K8S_POD_NAME=x")]),
        (4, "CNI_ARGS: unknown args [\"K8S_POD_NAME\"]".into())
    );
    let out = node.call("pipework", "ADD", Some(&at), &json!("{not json"), &[]);
    assert_eq!(cni_error(&out)["code"], 6);
    assert_eq!(
        error_of(&node, "ADD", Some(&at), &with(json!({"mtu": "big"})), &[]),
        (7, "\"mtu\" is \"big\", not a whole number from 0 to 65535".into())
    );
    assert_eq!(
        error_of(&node, "ADD", Some(&at), &with(json!({"ipam": {"type": "no-such-ipam"}})), &[]),
        (
            7,
            format!(
                "failed to find IPAM plugin \"no-such-ipam\" in CNI_PATH [{} /usr/lib/cni]",
                node.bin_dir()
            )
        )
    );
    // An IPAM plugin others than root could have changed is not run.
    let open_dir = common::TempDir::new("ipam");
    std::fs::set_permissions(&open_dir.path, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    std::fs::copy("/usr/lib/cni/host-local", open_dir.join("host-local")).unwrap();
    let (code, msg) = error_of(
        &node,
        "ADD",
        Some(&at),
        &good,
        &[("CNI_PATH", &format!("{}:/usr/lib/cni", open_dir.arg()))],
    );
    assert_eq!((code, msg), (7, format!("refusing to run IPAM plugin {}", open_dir.join("host-local"))));
    assert_eq!(
        error_of(&node, "CHECK", Some(&at), &with(json!({"cniVersion": "0.3.1"})), &[]),
        (1, "config version 0.3.1 does not allow CHECK".into())
    );
    let status = with(json!({"cniVersion": "1.1.0", "ipam": {"type": "no-such-ipam"}}));
    assert_eq!(error_of(&node, "STATUS", None, &status, &[]).0, 50);
    let out = node.call(
        "pipework",
        "ADD",
        Some(&at),
        &with(json!({"cniVersion": "0.4.0", "portIsolation": true})),
        &[],
    );
    assert_eq!(cni_error(&out)["cniVersion"], "0.4.0", "the error answers in the request's version");
    assert!(out.stderr.is_empty(), "nothing on stderr: {}", String::from_utf8_lossy(&out.stderr));

    assert!(node.allocations().is_empty());
    assert_unchanged("host", &host_before, || node.host.snapshot());
    assert_unchanged("container", &ctr_before, || ctr.snapshot());
}

#[test]
fn status_says_ready_when_ipam_is_there() {
    let node = CniNode::new();
    let c = testnet_conf(&node, "pipework", "1.1.0", json!({}));
    let out = node.call("pipework", "STATUS", None, &c, &[]);
    assert_plugin_ok("pipework", "STATUS", &out);
    assert!(out.stdout.is_empty());
}

/// pipework then tuning, as a runtime runs a conflist: tuning gets
/// pipework's result as prevResult and passes it on; CHECK and DEL run
/// through the chain too.
#[test]
fn chained_with_tuning() {
    let node = CniNode::new();
    let ctr = Netns::new("ctr");
    let at = Attach::to(&ctr, "eth0");
    let first = testnet_conf(&node, "pipework", "1.0.0", json!({}));
    let ours = node.add("pipework", &at, &first);
    let mut tuning = json!({"cniVersion": "1.0.0", "name": "testnet", "type": "tuning",
        "sysctl": {"net.ipv4.conf.eth0.arp_filter": "1"}, "mtu": 1280});
    tuning["prevResult"] = ours.clone();
    let last = node.add("tuning", &at, &tuning);
    assert_eq!(last["interfaces"], ours["interfaces"]);
    assert_eq!(last["ips"], ours["ips"]);
    assert_eq!(sysctl(&ctr, "net.ipv4.conf.eth0.arp_filter"), "1");
    assert_eq!(ctr.ip_j(&["link", "show", "eth0"])[0]["mtu"], 1280);

    let mut check = first.clone();
    check["prevResult"] = last.clone();
    assert_plugin_ok("pipework", "CHECK", &node.call("pipework", "CHECK", Some(&at), &check, &[]));
    ctr.ip(&["addr", "del", "10.77.0.2/24", "dev", "eth0"]);
    let e = cni_error(&node.call("pipework", "CHECK", Some(&at), &check, &[]));
    assert_eq!(e["msg"], "eth0 lacks its address 10.77.0.2/24");

    tuning["prevResult"] = last.clone();
    assert_plugin_ok("tuning", "DEL", &node.call("tuning", "DEL", Some(&at), &tuning, &[]));
    check["prevResult"] = last;
    assert_plugin_ok("pipework", "DEL", &node.call("pipework", "DEL", Some(&at), &check, &[]));
    assert!(node.allocations().is_empty());
}

/// pipework after another plugin: its result follows prevResult's, with
/// interface indices moved along.
#[test]
fn prev_result_is_kept_in_front() {
    let node = CniNode::new();
    let ctr = Netns::new("ctr");
    let path = ctr.path();
    let prev = json!({"cniVersion": "1.0.0", "interfaces": [{"name": "lo", "sandbox": path}],
        "ips": [{"interface": 0, "address": "127.0.0.1/8"}], "dns": {}});
    let mut c = testnet_conf(&node, "pipework", "1.0.0", json!({}));
    c["prevResult"] = prev;
    let result = node.add("pipework", &Attach::to(&ctr, "eth0"), &c);
    let names: Vec<&str> =
        result["interfaces"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names[0], "lo");
    assert_eq!(names[1], "cni0");
    assert_eq!(names[3], "eth0");
    assert_eq!(result["ips"][0]["interface"], 0);
    assert_eq!(result["ips"][1], json!({"interface": 3, "address": "10.77.0.2/24", "gateway": "10.77.0.1"}));
}

#[test]
fn gc_removes_what_is_not_valid() {
    let node = CniNode::new();
    let (a, b) = (Netns::new("ctr"), Netns::new("ctr"));
    let c = testnet_conf(&node, "pipework", "1.1.0", json!({}));
    node.add("pipework", &Attach::to(&a, "eth0"), &c);
    node.add("pipework", &Attach::to(&b, "eth0"), &c);
    assert_eq!(node.allocations().len(), 4);
    let mut gc = c.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": a.name, "ifname": "eth0"}]);
    assert_plugin_ok("pipework", "GC", &node.call("pipework", "GC", None, &gc, &[]));
    assert_eq!(node.allocations(), ["10.77.0.2", "fd77::2"]);
    assert_eq!(node.attachments(), [(format!("cni-{}.json", a.name), "eth0".into(), "testnet".into())]);
    assert!(a.link("eth0").is_some());
    assert!(b.link("eth0").is_none());
    assert_eq!(node.host.ports("cni0").len(), 1);
}

#[test]
fn fifty_concurrent_adds_on_one_bridge() {
    let node = CniNode::new();
    let ctrs: Vec<Netns> = (0..50).map(|_| Netns::new("ctr")).collect();
    let c = testnet_conf(&node, "pipework", "1.0.0", json!({}));
    let results: Vec<Value> = std::thread::scope(|s| {
        let handles: Vec<_> = ctrs
            .iter()
            .map(|ctr| {
                let (node, c) = (&node, &c);
                s.spawn(move || node.add("pipework", &Attach::to(ctr, "eth0"), c))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("ADD thread")).collect()
    });
    let mut v4: Vec<&str> = results.iter().map(|r| r["ips"][0]["address"].as_str().unwrap()).collect();
    v4.sort();
    v4.dedup();
    assert_eq!(v4.len(), 50, "fifty distinct addresses");
    assert_eq!(node.host.ports("cni0").len(), 50);
    assert_eq!(node.host.cidrs("cni0", common::Family::V4), ["10.77.0.1/24"]);
    for ctr in &ctrs {
        assert!(ctr.ping("10.77.0.1"), "{} reaches its gateway", ctr.name);
    }
    // Every record kept, each what the kernel and the result say.
    let records = node.records();
    assert_eq!(records.len(), 50);
    let ports = node.host.ports("cni0");
    for (ctr, result) in ctrs.iter().zip(&results) {
        let file = format!("cni-{}.json", ctr.name);
        let (_, record) = records.iter().find(|(name, _)| *name == file).expect("a record per ADD");
        assert_eq!(record["guest"]["find"]["container_id"], ctr.name.as_str());
        let ifaces = record["interfaces"].as_array().expect("interfaces");
        assert_eq!(ifaces.len(), 1, "{record}");
        let eth0 = ctr.ip_j(&["link", "show", "eth0"]);
        assert_eq!(ifaces[0]["mac"], eth0[0]["address"]);
        assert_eq!(ifaces[0]["host_side"], result["interfaces"][1]["name"]);
        assert!(ports.iter().any(|p| ifaces[0]["host_side"] == p.ifname.as_str()), "{record}");
        assert_eq!(ifaces[0]["addresses"][0], result["ips"][0]["address"]);
        assert_eq!(ifaces[0]["cni"]["network"], "testnet");
    }
    for ctr in &ctrs {
        assert_plugin_ok(
            "pipework",
            "DEL",
            &node.call("pipework", "DEL", Some(&Attach::to(ctr, "eth0")), &c, &[]),
        );
    }
    assert!(node.allocations().is_empty());
    assert!(node.records().is_empty());
    assert!(node.host.ports("cni0").is_empty());
}

/// Podman 4 with its CNI backend runs a container on a network whose
/// plugin is pipework, chained with tuning; `podman rm` leaves nothing.
#[test]
fn podman_end_to_end() {
    let node = CniNode::new();
    let podman = common::Podman::new(&node.host, &[&node.bin_dir(), common::CNI_PLUGINS]);
    let bridge = common::unique("pwcni");
    let network = common::owned_name("net");
    let mut plugin =
        testnet_conf(&node, "pipework", "1.0.0", json!({"bridge": bridge, "isDefaultGateway": false}));
    plugin["ipam"] = json!({"type": "host-local", "dataDir": node.ipam_dir(),
        "ranges": [[{"subnet": "10.78.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]});
    let tuning = json!({"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.arp_filter": "1"}});
    podman.add_network(&network, json!({"cniVersion": "1.0.0", "plugins": [plugin, tuning]}));

    let ctr = podman.run("pod", &network, &[]);
    let ip = ctr.inspect(&format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}"));
    assert_eq!(ip, "10.78.0.2");
    assert_eq!(ctr.cidrs("eth0", common::Family::V4), ["10.78.0.2/24"]);
    common::assert_default_via(&ctr, common::Family::V4, "10.78.0.1", "eth0");
    assert!(ctr.ping("10.78.0.1"), "the container does not reach its gateway");
    assert_eq!(node.host.ports(&bridge).len(), 1);
    let id = ctr.inspect("{{.Id}}");
    let record = std::path::Path::new("/var/lib/pipework").join(format!("cni-{id}.json"));
    assert!(record.exists(), "no record {}", record.display());

    ctr.remove();
    assert!(node.host.ports(&bridge).is_empty(), "podman rm left a port");
    assert!(node.allocations().is_empty(), "podman rm kept the address");
    assert!(!record.exists(), "podman rm kept the record");
}

/// A stdout that cannot take the answer is a failure told on stderr, not a
/// panic (exit 101).
#[test]
fn answer_to_a_full_stdout() {
    let full = std::fs::File::options().write(true).open("/dev/full").expect("/dev/full");
    let mut cmd = std::process::Command::new(common::PIPEWORK);
    cmd.env("CNI_COMMAND", "VERSION").stdin(std::process::Stdio::null()).stdout(full);
    let out = cmd.stderr(std::process::Stdio::piped()).output().expect("run pipework");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "pipework: write error: No space left on device\n");
}

/// An IPAM plugin that does not answer is killed at the deadline (60 s; a
/// test build takes PIPEWORK_TEST_IPAM_DEADLINE), with what it started,
/// and the ADD fails with code 11 and leaves nothing.
#[test]
fn an_ipam_plugin_that_does_not_answer_is_killed_at_the_deadline() {
    let node = CniNode::new();
    let ctr = Netns::new("ctr");
    let at = Attach::to(&ctr, "eth0");
    let pids = node.dir.join("slow-ipam.pid");
    let plugin = node.dir.join("bin/slow-ipam");
    std::fs::write(&plugin, format!("#!/bin/sh\necho $$ >{pids}\nsleep 30 &\necho $! >>{pids}\nwait\n"))
        .unwrap();
    std::fs::set_permissions(&plugin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let conf = testnet_conf(&node, "pipework", "1.0.0", json!({"ipam": {"type": "slow-ipam"}}));
    let (host_before, ctr_before) = (node.host.snapshot(), ctr.snapshot());
    let began = std::time::Instant::now();
    let out = node.call("pipework", "ADD", Some(&at), &conf, &[("PIPEWORK_TEST_IPAM_DEADLINE", "1")]);
    let took = began.elapsed();
    let e = cni_error(&out);
    assert_eq!(
        (&e["code"], &e["msg"]),
        (&json!(11), &json!("IPAM plugin slow-ipam did not answer within 1 s: killed"))
    );
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
    for pid in std::fs::read_to_string(&pids).unwrap().split_whitespace() {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(state.is_empty() || state.contains(") Z "), "{pid} still runs: {state}");
    }
    assert!(node.records().is_empty());
    assert_unchanged("host", &host_before, || node.host.snapshot());
    assert_unchanged("container", &ctr_before, || ctr.snapshot());
}
