//! The CNI plugin's `ipMasq` and `macspoofchk`, made with nf_tables rules
//! of pipework's own, judged by behaviour beside the reference bridge
//! plugin (which uses iptables and nft for them) and by `nft -j list
//! ruleset` run inside each test's own namespace.

use crate::common::{self, assert_plugin_ok, cni_error, nft_listed, with_keys, Attach, CniNode, Netns, Ns};
use serde_json::{json, Value};

fn conf(node: &CniNode, plugin: &str, extra: Value) -> Value {
    with_keys(
        json!({
            "cniVersion": "1.0.0",
            "name": "masqnet",
            "type": plugin,
            "bridge": "cni0",
            "isDefaultGateway": true,
            "ipam": {
                "type": "host-local",
                "dataDir": node.ipam_dir(),
                "ranges": [[{"subnet": "10.77.0.0/24"}], [{"subnet": "fd77::/64"}]],
            },
        }),
        extra,
    )
}

/// The rules of table `family pipework` in `ns`, as `nft -j` lists them:
/// chain, comment, expressions.
fn rules(ns: &Netns, family: &str) -> Vec<(String, String, Value)> {
    nft_listed(ns, &["list", "ruleset"], "rule")
        .iter()
        .filter(|r| r["family"] == family && r["table"] == "pipework")
        .map(|r| {
            let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (text(&r["chain"]), text(&r["comment"]), r["expr"].clone())
        })
        .collect()
}

/// pipework's tables in `ns` (`inet`, `bridge`), as `nft -j` lists them.
fn tables(ns: &Netns) -> Vec<String> {
    let mut found: Vec<String> = nft_listed(ns, &["list", "tables"], "table")
        .iter()
        .filter(|t| t["name"] == "pipework")
        .map(|t| t["family"].as_str().unwrap_or_default().to_string())
        .collect();
    found.sort();
    found
}

/// Deletes, with `nft`, the rule of `family pipework chain` whose listed
/// line contains every one of `words`.
fn delete_rule(ns: &Netns, family: &str, chain: &str, words: &[&str]) {
    let listed = ns.exec(&["nft", "-a", "list", "chain", family, "pipework", chain]);
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    let line = listed.lines().find(|l| words.iter().all(|w| l.contains(w))).expect("the rule to delete");
    let handle = line.rsplit(' ').next().unwrap();
    ns.must(&["nft", "delete", "rule", family, "pipework", chain, "handle", handle]);
}

/// `nft -j`'s match of a payload field with an address or prefix.
fn matches(protocol: &str, field: &str, op: &str, right: Value) -> Value {
    json!({"match": {"op": op, "left": {"payload": {"protocol": protocol, "field": field}}, "right": right}})
}

fn prefix(addr: &str, len: u8) -> Value {
    json!({"prefix": {"addr": addr, "len": len}})
}

/// A guest of the bridge pings a host beyond the node that has no route
/// back to the container subnet: only a masqueraded ping comes back, with
/// the reference plugin's iptables rules as with pipework's nf_tables ones.
#[test]
fn ip_masq_reaches_a_network_with_no_route_back() {
    for (plugin, masq) in [("pipework", false), ("bridge", true), ("pipework", true)] {
        let node = CniNode::new();
        let ctr = Netns::new("ctr");
        let beyond = node.host.add_node(&["10.88.0.1/24", "fd88::1/64"], &["10.88.0.2/24", "fd88::2/64"]);
        let at = Attach::to(&ctr, "eth0");
        let c = conf(&node, plugin, json!({"ipMasq": masq}));
        node.add(plugin, &at, &c);
        assert!(ctr.ping("10.77.0.1"), "{plugin}: the gateway answers");
        for far in ["10.88.0.2", "fd88::2"] {
            assert_eq!(ctr.ping(far), masq, "{plugin} with ipMasq {masq}: ping {far} beyond the node");
        }
        assert_plugin_ok(plugin, "DEL", &node.call(plugin, "DEL", Some(&at), &c, &[]));
        drop(beyond);
    }
}

/// One rule per container address, tagged with the network, interface and
/// container ID; CHECK sees it go; DEL removes exactly its own, twice.
#[test]
fn ip_masq_rules_per_address_checked_and_deleted() {
    let node = CniNode::new();
    let (a, b) = (Netns::new("ctr"), Netns::new("ctr"));
    let (at_a, at_b) = (Attach::to(&a, "eth0"), Attach::to(&b, "eth0"));
    let c = conf(&node, "pipework", json!({"ipMasq": true}));
    let result = node.add("pipework", &at_a, &c);
    node.add("pipework", &at_b, &c);

    let found = rules(&node.host, "inet");
    assert_eq!(found.len(), 4, "{found:?}");
    let of = |id: &str| -> Vec<Value> {
        found
            .iter()
            .filter(|(_, comment, _)| comment.ends_with(&format!("id: {id}")))
            .map(|r| r.2.clone())
            .collect()
    };
    assert_eq!(
        of(&a.name),
        [
            json!([
                matches("ip", "saddr", "==", json!("10.77.0.2")),
                matches("ip", "daddr", "!=", prefix("10.77.0.0", 24)),
                matches("ip", "daddr", "!=", prefix("224.0.0.0", 4)),
                {"masquerade": null},
            ]),
            json!([
                matches("ip6", "saddr", "==", json!("fd77::2")),
                matches("ip6", "daddr", "!=", prefix("fd77::", 64)),
                matches("ip6", "daddr", "!=", prefix("ff00::", 8)),
                {"masquerade": null},
            ]),
        ]
    );
    assert_eq!(of(&b.name).len(), 2);
    for (chain, comment, _) in &found {
        assert_eq!(chain, "postrouting");
        assert!(comment.contains("net: masqnet, if: eth0, id: "), "{comment}");
    }
    let (_, record) = &node.records()[0];
    let made = record["interfaces"][0]["cni"]["rules"].as_array().expect("rules on record");
    assert_eq!(made.len(), 2);
    assert!(
        made[0].as_str().unwrap().starts_with("inet pipework postrouting ip saddr 10.77.0.2 "),
        "{made:?}"
    );

    let mut check = c.clone();
    check["prevResult"] = result;
    assert_plugin_ok("pipework", "CHECK", &node.call("pipework", "CHECK", Some(&at_a), &check, &[]));
    delete_rule(&node.host, "inet", "postrouting", &[&format!("id: {}\"", a.name), "ip6"]);
    let e = cni_error(&node.call("pipework", "CHECK", Some(&at_a), &check, &[]));
    assert_eq!(
        e["msg"],
        "inet pipework postrouting lacks the rule \"ip6 saddr fd77::2 ip6 daddr != fd77::/64 \
         ip6 daddr != ff00::/8 masquerade\" of eth0"
    );

    for _ in 0..2 {
        assert_plugin_ok("pipework", "DEL", &node.call("pipework", "DEL", Some(&at_a), &c, &[]));
    }
    let left = rules(&node.host, "inet");
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.iter().all(|(_, comment, _)| comment.ends_with(&format!("id: {}", b.name))));
    assert_plugin_ok("pipework", "DEL", &node.call("pipework", "DEL", Some(&at_b), &c, &[]));
    assert!(rules(&node.host, "inet").is_empty());
    assert!(tables(&node.host).is_empty(), "{:?}", tables(&node.host));
}

/// GC removes the rules of attachments not valid, record or not.
#[test]
fn gc_removes_rules_of_attachments_not_valid() {
    let node = CniNode::new();
    let (a, b) = (Netns::new("ctr"), Netns::new("ctr"));
    let c = conf(&node, "pipework", json!({"cniVersion": "1.1.0", "ipMasq": true, "macspoofchk": true}));
    assert_plugin_ok("pipework", "STATUS", &node.call("pipework", "STATUS", None, &c, &[]));
    node.add("pipework", &Attach::to(&a, "eth0"), &c);
    node.add("pipework", &Attach::to(&b, "eth0"), &c);
    assert_eq!((rules(&node.host, "inet").len(), rules(&node.host, "bridge").len()), (4, 2));
    let mut gc = c.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": a.name, "ifname": "eth0"}]);
    assert_plugin_ok("pipework", "GC", &node.call("pipework", "GC", None, &gc, &[]));
    for family in ["inet", "bridge"] {
        let left = rules(&node.host, family);
        assert!(!left.is_empty());
        assert!(left.iter().all(|(_, comment, _)| comment.ends_with(&format!("id: {}", a.name))), "{left:?}");
    }
    // A rule whose record is gone goes too.
    std::fs::remove_dir_all(node.state_dir()).unwrap();
    gc["cni.dev/valid-attachments"] = json!([]);
    assert_plugin_ok("pipework", "GC", &node.call("pipework", "GC", None, &gc, &[]));
    assert!(rules(&node.host, "inet").is_empty() && rules(&node.host, "bridge").is_empty());
    assert!(tables(&node.host).is_empty(), "{:?}", tables(&node.host));
}

/// The plan fails at every step in turn: no rule is left behind.
#[test]
fn a_failed_add_leaves_no_rule() {
    let node = CniNode::new();
    let ctr = Netns::new("ctr");
    let at = Attach::to(&ctr, "eth0");
    let c = conf(&node, "pipework", json!({"ipMasq": true, "macspoofchk": true}));
    let mut failed = 0;
    for step in 1..=40 {
        let out = node.call("pipework", "ADD", Some(&at), &c, &[("PIPEWORK_FAIL_AT", &step.to_string())]);
        if out.status.success() {
            assert_eq!((rules(&node.host, "inet").len(), rules(&node.host, "bridge").len()), (2, 1));
            assert_plugin_ok("pipework", "DEL", &node.call("pipework", "DEL", Some(&at), &c, &[]));
            break;
        }
        failed = step;
        let e = cni_error(&out);
        assert!(e["msg"].as_str().unwrap().contains("injected failure"), "{e}");
        assert!(rules(&node.host, "inet").is_empty(), "step {step}: {:?}", rules(&node.host, "inet"));
        assert!(rules(&node.host, "bridge").is_empty(), "step {step}: {:?}", rules(&node.host, "bridge"));
        assert!(tables(&node.host).is_empty(), "step {step}: {:?}", tables(&node.host));
        assert!(node.allocations().is_empty());
        // A runtime follows a failed ADD with a DEL: with no rule, or no
        // table yet, it succeeds.
        assert_plugin_ok("pipework", "DEL", &node.call("pipework", "DEL", Some(&at), &c, &[]));
    }
    assert!(failed > 15, "a failure was injected before each of the {failed} steps, then ADD succeeded");
    assert!(rules(&node.host, "inet").is_empty() && rules(&node.host, "bridge").is_empty());
}

/// A container that forges its source MAC is cut off, with the reference
/// plugin's nft rules as with pipework's (and heard without the check); its
/// own MAC back, it is heard again. DEL removes pipework's rule.
#[test]
fn macspoofchk_drops_frames_with_another_source_mac() {
    for (plugin, check) in [("pipework", false), ("bridge", true), ("pipework", true)] {
        let node = CniNode::new();
        let ctr = Netns::new("ctr");
        let at = Attach::to(&ctr, "eth0");
        let c = conf(&node, plugin, json!({"macspoofchk": check}));
        let result = node.add(plugin, &at, &c);
        let mac = result["interfaces"][2]["mac"].as_str().unwrap().to_string();
        let port = result["interfaces"][1]["name"].as_str().unwrap().to_string();
        assert!(ctr.ping("10.77.0.1"), "{plugin}: the gateway answers");
        ctr.ip(&["link", "set", "eth0", "address", "02:00:00:00:00:99"]);
        node.host.ip(&["neigh", "flush", "dev", "cni0"]);
        assert_eq!(ctr.ping("10.77.0.1"), !check, "{plugin} macspoofchk {check}: a forged source MAC");
        ctr.ip(&["link", "set", "eth0", "address", &mac]);
        node.host.ip(&["neigh", "flush", "dev", "cni0"]);
        assert!(ctr.ping("10.77.0.1"), "{plugin}: the gateway answers its own MAC again");
        if plugin == "pipework" && check {
            let found = rules(&node.host, "bridge");
            assert_eq!(found.len(), 1, "{found:?}");
            let (chain, comment, expr) = &found[0];
            assert_eq!(chain, "prerouting");
            assert!(comment.ends_with(&format!("net: masqnet, if: eth0, id: {}", ctr.name)), "{comment}");
            assert_eq!(
                expr,
                &json!([
                    {"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": port}},
                    matches("ether", "saddr", "!=", json!(mac)),
                    {"drop": null},
                ])
            );
            let mut check = c.clone();
            check["prevResult"] = result.clone();
            assert_plugin_ok("pipework", "CHECK", &node.call("pipework", "CHECK", Some(&at), &check, &[]));
        }
        for _ in 0..2 {
            assert_plugin_ok(plugin, "DEL", &node.call(plugin, "DEL", Some(&at), &c, &[]));
        }
        assert!(rules(&node.host, "bridge").is_empty());
    }
}

/// A chain of pipework's name made by someone else, of another type: ADD
/// fails with the kernel's refusal, rolls back and gives the address back.
#[test]
fn a_clashing_chain_fails_the_add_and_leaves_nothing() {
    let node = CniNode::new();
    let ctr = Netns::new("ctr");
    let at = Attach::to(&ctr, "eth0");
    let clash = "add table inet pipework; add chain inet pipework postrouting \
                 { type filter hook postrouting priority 0; }";
    assert!(node.host.exec(&["nft", clash]).status.success());
    let (host_before, ctr_before) = (node.host.snapshot(), ctr.snapshot());
    let c = conf(&node, "pipework", json!({"ipMasq": true}));
    let e = cni_error(&node.call("pipework", "ADD", Some(&at), &c, &[]));
    let msg = e["msg"].as_str().unwrap();
    assert!(
        msg.ends_with(
            "adding rules to inet pipework postrouting: not supported (a chain of that name with \
             another type or hook, or a kernel without this nf_tables feature)"
        ),
        "{msg}"
    );
    assert!(node.allocations().is_empty());
    assert!(node.records().is_empty());
    assert!(rules(&node.host, "inet").is_empty());
    common::assert_unchanged("host", &host_before, || node.host.snapshot());
    common::assert_unchanged("container", &ctr_before, || ctr.snapshot());
}

/// `ipMasqBackend` (later bridge versions): nftables is what pipework
/// does; iptables is refused, with nothing made.
#[test]
fn ip_masq_backend_nftables_only() {
    let node = CniNode::new();
    let ctr = Netns::new("ctr");
    let at = Attach::to(&ctr, "eth0");
    let refused = conf(&node, "pipework", json!({"ipMasq": true, "ipMasqBackend": "iptables"}));
    let e = cni_error(&node.call("pipework", "ADD", Some(&at), &refused, &[]));
    assert_eq!(
        (e["code"].as_u64(), e["msg"].as_str()),
        (Some(2), Some("unsupported field \"ipMasqBackend\": \"iptables\""))
    );
    assert!(rules(&node.host, "inet").is_empty());
    let c = conf(&node, "pipework", json!({"ipMasq": true, "ipMasqBackend": "nftables"}));
    node.add("pipework", &at, &c);
    assert_eq!(rules(&node.host, "inet").len(), 2);
    assert_plugin_ok("pipework", "DEL", &node.call("pipework", "DEL", Some(&at), &c, &[]));
}

/// Podman's default network as `podman network create` writes it for the
/// reference plugin (bridge with ipMasq and hairpinMode, then portmap,
/// firewall, tuning), with `"type": "pipework"`: the container reaches a
/// host beyond the node that has no route back; `podman rm` takes the rule.
#[test]
fn podman_default_conflist_masquerades() {
    let node = CniNode::new();
    let beyond = node.host.add_node(&["10.88.0.1/24"], &["10.88.0.2/24"]);
    let podman = common::Podman::new(&node.host, &[&node.bin_dir(), common::CNI_PLUGINS]);
    let network = common::owned_name("net");
    let ipam = json!({"type": "host-local", "routes": [{"dst": "0.0.0.0/0"}],
        "ranges": [[{"subnet": "10.89.0.0/24", "gateway": "10.89.0.1"}]], "dataDir": node.ipam_dir()});
    let bridge = json!({"type": "pipework", "bridge": common::unique("pwcni"), "isGateway": true,
        "ipMasq": true, "hairpinMode": true, "ipam": ipam});
    let conflist = json!({"cniVersion": "0.4.0", "plugins": [bridge,
        {"type": "portmap", "capabilities": {"portMappings": true}},
        {"type": "firewall"}, {"type": "tuning"}]});
    podman.add_network(&network, conflist);

    let ctr = podman.run("pod", &network, &[]);
    assert!(ctr.ping("10.88.0.2"), "the container does not reach beyond the node");
    let id = ctr.inspect("{{.Id}}");
    let found = rules(&node.host, "inet");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].1.contains(&format!("if: eth0, id: {}", &id[..12])), "{found:?}");
    ctr.remove();
    assert!(rules(&node.host, "inet").is_empty(), "podman rm left the rule");
    assert!(tables(&node.host).is_empty(), "podman rm left {:?}", tables(&node.host));
    assert!(node.allocations().is_empty(), "podman rm kept the address");
    drop(beyond);
}

/// `pipework show` lists the kinds of rules a CNI attachment has on
/// record (`--json`: the rules); `pipework check` reports each that the
/// kernel lacks, as CNI CHECK compares them.
#[test]
fn show_and_check_see_the_rules() {
    let node = CniNode::new();
    let ctr = Netns::new("ctr");
    let at = Attach::to(&ctr, "eth0");
    let c = conf(&node, "pipework", json!({"ipMasq": true, "macspoofchk": true}));
    let result = node.add("pipework", &at, &c);
    let port = result["interfaces"][1]["name"].as_str().unwrap();
    let mac = result["interfaces"][2]["mac"].as_str().unwrap();
    let short = &at.id[..at.id.len().min(12)];

    let out = node.pipework(&["show"]);
    common::assert_success(&out);
    let lines: Vec<Vec<String>> =
        common::stdout(&out).lines().map(|l| l.split_whitespace().map(String::from).collect()).collect();
    assert_eq!(
        lines[0],
        ["GUEST", "INTERFACE", "HOST-SIDE", "ATTACHED-TO", "ADDRESSES", "MAC", "RULES", "STATE"]
    );
    assert_eq!(lines[1][6..], ["masquerade,macspoofchk", "live"]);
    let out = node.pipework(&["show", "--json"]);
    let rows: Value = serde_json::from_str(&common::stdout(&out)).unwrap();
    let listed: Vec<&str> =
        rows[0]["rules"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert!(listed[0].starts_with(&format!("bridge pipework prerouting iifname \"{port}\" ")), "{listed:?}");
    assert!(listed[1].starts_with("inet pipework postrouting ip saddr 10.77.0.2 "), "{listed:?}");
    assert!(listed[2].starts_with("inet pipework postrouting ip6 saddr fd77::2 "), "{listed:?}");

    let check = |args: &[&str]| {
        let out = node.pipework(&[&["check"], args].concat());
        (out.status.code().unwrap(), common::stdout(&out))
    };
    assert_eq!(check(&[]), (0, String::new()));
    delete_rule(&node.host, "inet", "postrouting", &["ip6 saddr fd77::2"]);
    delete_rule(&node.host, "bridge", "prerouting", &[port]);
    assert_eq!(
        check(&[]),
        (
            1,
            format!(
                "missing rule \"ip6 saddr fd77::2 ip6 daddr != fd77::/64 ip6 daddr != ff00::/8 masquerade\" \
                 in inet pipework postrouting for eth0 of {short}\n\
                 missing rule \"iifname \"{port}\" ether saddr != {mac} drop\" \
                 in bridge pipework prerouting for eth0 of {short}\n"
            )
        )
    );
    let (code, out) = check(&["--json"]);
    let json: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((code, &json["ok"]), (1, &json!(false)));
    let kinds: Vec<(&Value, &Value)> =
        json["differences"].as_array().unwrap().iter().map(|d| (&d["kind"], &d["interface"])).collect();
    assert_eq!(kinds, [(&json!("nft-rule"), &json!("eth0")); 2]);
    // Only what is missing: the IPv4 rule is there.
    assert!(!out.contains("ip saddr 10.77.0.2"), "{out}");

    // Without CAP_NET_ADMIN, nf_tables answers no one: nothing is verified,
    // which is a difference, not a pass.
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net={}", node.host.path()))
        .args(["setpriv", "--bounding-set", "-net_admin", "--", common::PIPEWORK, "check"])
        .env(common::STATE_DIR_ENV, node.state_dir())
        .output()
        .expect("pipework check without CAP_NET_ADMIN");
    assert_eq!(
        (out.status.code(), common::stdout(&out)),
        (
            Some(1),
            format!(
                "nf_tables rules of eth0 of {short} unverified: listing inet pipework postrouting: \
                 permission denied: pipework needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN)\n"
            )
        )
    );
    assert_plugin_ok("pipework", "DEL", &node.call("pipework", "DEL", Some(&at), &c, &[]));
    assert!(tables(&node.host).is_empty(), "{:?}", tables(&node.host));
}

/// The last attachment's DEL takes the chains and tables with its rules;
/// one before it leaves them to the other's rules, and a rule that is not
/// pipework's keeps its chain and table.
#[test]
fn the_last_rule_takes_its_chain_and_table() {
    let node = CniNode::new();
    let (a, b) = (Netns::new("ctr"), Netns::new("ctr"));
    let (at_a, at_b) = (Attach::to(&a, "eth0"), Attach::to(&b, "eth0"));
    let c = conf(&node, "pipework", json!({"ipMasq": true, "macspoofchk": true}));
    node.add("pipework", &at_a, &c);
    node.add("pipework", &at_b, &c);
    assert_eq!(tables(&node.host), ["bridge", "inet"]);
    assert_plugin_ok("pipework", "DEL", &node.call("pipework", "DEL", Some(&at_a), &c, &[]));
    assert_eq!(tables(&node.host), ["bridge", "inet"]);
    assert_eq!((rules(&node.host, "inet").len(), rules(&node.host, "bridge").len()), (2, 1));

    node.host.must(&["nft", "add rule bridge pipework prerouting counter comment \"not ours\""]);
    assert_plugin_ok("pipework", "DEL", &node.call("pipework", "DEL", Some(&at_b), &c, &[]));
    assert_eq!(tables(&node.host), ["bridge"]);
    let left = rules(&node.host, "bridge");
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!((left[0].0.as_str(), left[0].1.as_str()), ("prerouting", "not ours"));
}

/// ADDs and DELs of many attachments at once, with ipMasq, on one bridge:
/// a DEL that empties the chain may drop it and its table just as an ADD
/// adds to it. Every attachment left has its rules, CHECK holds, and the
/// last DELs leave no table.
#[test]
fn concurrent_adds_and_dels_keep_every_live_rule() {
    let node = CniNode::new();
    let ctrs: Vec<Netns> = (0..16).map(|_| Netns::new("ctr")).collect();
    let c = conf(&node, "pipework", json!({"ipMasq": true}));
    let del = |ctr: &Netns| {
        let out = node.call("pipework", "DEL", Some(&Attach::to(ctr, "eth0")), &c, &[]);
        assert_plugin_ok("pipework", "DEL", &out);
    };
    // Even ones stay attached, odd ones end detached.
    let results: Vec<Option<Value>> = std::thread::scope(|s| {
        let handles: Vec<_> = ctrs
            .iter()
            .enumerate()
            .map(|(i, ctr)| {
                let (node, c, del) = (&node, &c, &del);
                s.spawn(move || {
                    for _ in 0..3 {
                        node.add("pipework", &Attach::to(ctr, "eth0"), c);
                        del(ctr);
                    }
                    (i % 2 == 0).then(|| node.add("pipework", &Attach::to(ctr, "eth0"), c))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("ADD/DEL thread")).collect()
    });
    let found = rules(&node.host, "inet");
    assert_eq!(found.len(), 16, "{found:?}");
    for (ctr, result) in ctrs.iter().zip(&results) {
        let ours = found.iter().filter(|(_, comment, _)| comment.ends_with(&format!("id: {}", ctr.name)));
        assert_eq!(ours.count(), if result.is_some() { 2 } else { 0 }, "rules of {}", ctr.name);
        if let Some(result) = result {
            let mut check = c.clone();
            check["prevResult"] = result.clone();
            let out = node.call("pipework", "CHECK", Some(&Attach::to(ctr, "eth0")), &check, &[]);
            assert_plugin_ok("pipework", "CHECK", &out);
        }
    }
    std::thread::scope(|s| {
        for (ctr, _) in ctrs.iter().zip(&results).filter(|(_, r)| r.is_some()) {
            s.spawn(|| del(ctr));
        }
    });
    assert!(tables(&node.host).is_empty(), "{:?}", tables(&node.host));
    assert!(node.allocations().is_empty());
}

/// The race itself, made to happen: an ADD finds the chain, then the last
/// other attachment's DEL drops the chain and its table before the ADD's
/// rules go in (the failpoint holds it there). The ADD declares them again:
/// it succeeds with its rules, and CHECK holds.
#[test]
fn an_add_survives_its_chain_dropped_under_it() {
    let node = CniNode::new();
    let (a, b) = (Netns::new("ctr"), Netns::new("ctr"));
    let (at_a, at_b) = (Attach::to(&a, "eth0"), Attach::to(&b, "eth0"));
    let c = conf(&node, "pipework", json!({"ipMasq": true}));
    node.add("pipework", &at_a, &c);
    let go = node.dir.join("go");
    let reached = std::path::PathBuf::from(format!("{go}.reached"));
    let out = std::thread::scope(|s| {
        let adding = s.spawn(|| node.call("pipework", "ADD", Some(&at_b), &c, &[("PIPEWORK_NFT_WAIT", &go)]));
        let start = std::time::Instant::now();
        while !reached.exists() {
            assert!(start.elapsed().as_secs() < 20, "the ADD never reached its chain lookup");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_plugin_ok("pipework", "DEL", &node.call("pipework", "DEL", Some(&at_a), &c, &[]));
        assert!(tables(&node.host).is_empty(), "{:?}", tables(&node.host));
        std::fs::write(&go, b"").unwrap();
        adding.join().expect("ADD thread")
    });
    assert_plugin_ok("pipework", "ADD", &out);
    let found = rules(&node.host, "inet");
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found.iter().all(|(_, comment, _)| comment.ends_with(&format!("id: {}", b.name))), "{found:?}");
    let mut check = c.clone();
    check["prevResult"] = serde_json::from_slice(&out.stdout).unwrap();
    assert_plugin_ok("pipework", "CHECK", &node.call("pipework", "CHECK", Some(&at_b), &check, &[]));
    assert_plugin_ok("pipework", "DEL", &node.call("pipework", "DEL", Some(&at_b), &c, &[]));
    assert!(tables(&node.host).is_empty(), "{:?}", tables(&node.host));
}
