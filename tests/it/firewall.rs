//! A Linux bridge's own traffic through a FORWARD hook that drops by
//! policy (br_netfilter on): on a Docker host as Docker ships it (the xCAT
//! runbook), on a host whose operator set DROP without Docker, and on an
//! iptables-legacy host. Read back with iptables, iptables-save and nft,
//! and proved by pings across the bridge.

use crate::common::*;
use serde_json::Value;

const ACCEPT_BR0: &str = "-A DOCKER-USER -i br0 -o br0 -j ACCEPT";

/// How many rules of `listing` (`iptables -S`) are `rule`.
fn count(listing: &str, rule: &str) -> usize {
    listing.lines().filter(|l| l.trim() == rule).count()
}

#[track_caller]
fn pings(ns: &dyn Ns, to: &str) -> bool {
    ns.exec(&["ping", "-c", "1", "-W", "2", to]).status.success()
}

/// The expressions of the rules of `chain` (`nft -j`), counters zeroed.
fn nft_rules(ns: &dyn Ns, family: &str, chain: &str) -> Vec<Value> {
    nft_listed(ns, &["list", "chain", family, "filter", chain], "rule")
        .iter()
        .map(|r| {
            let mut expr = r["expr"].clone();
            for e in expr.as_array_mut().unwrap() {
                if let Some(c) = e.get_mut("counter") {
                    *c = serde_json::json!({ "packets": 0, "bytes": 0 });
                }
            }
            expr
        })
        .collect()
}

/// What `iptables-nft` itself writes for `-A <chain> -i <bridge> -o
/// <bridge> -j ACCEPT`, in a throwaway namespace.
fn written_by_iptables_nft(chain: &str, bridge: &str) -> Value {
    let scratch = Netns::new("ipt");
    if chain != "FORWARD" {
        scratch.exec(&["iptables-nft", "-N", chain]);
    }
    scratch.must(&["iptables-nft", "-A", chain, "-i", bridge, "-o", bridge, "-j", "ACCEPT"]);
    nft_rules(&scratch, "ip", chain).remove(0)
}

#[track_caller]
fn restores(h: &Netns, save: &str, restore: &str) {
    let line = format!("{save} | {restore} --test");
    h.must(&["sh", "-c", &line]);
}

/// The xCAT runbook verbatim on a stock engine: the container and the
/// compute node reach each other through br0, whose own traffic Docker's
/// DROP policy would otherwise stop; the rule is iptables-nft's own, kept
/// across dockerd's restart, checked, and gone with the last attachment.
#[test]
fn xcat_runbook_on_a_stock_docker_host() {
    let Some(mut h) = DockerHost::start() else { return };
    let node = h.ns.add_node(&["10.5.106.1/24"], &["10.5.106.2/24"]);
    assert_eq!(count(&h.tables("iptables", &["-S", "FORWARD"]), "-P FORWARD DROP"), 1);

    let plan = stdout(&h.pipework(&["mkbridge", "--dry-run", "br0", "eth0"]));
    assert!(plan.lines().any(|l| l == "iptables -I DOCKER-USER -i br0 -o br0 -j ACCEPT"), "{plan}");
    assert_success(&h.pipework(&["mkbridge", "br0", "eth0"]));
    assert_eq!(count(&h.tables("iptables", &["-S", "DOCKER-USER"]), ACCEPT_BR0), 1, "made by mkbridge");
    let ctr = h.container(&unique("xcat"));
    assert_success(&h.pipework(&["br0", &ctr, "10.5.106.101/24@10.5.106.1"]));

    assert_eq!(count(&h.tables("iptables", &["-S", "FORWARD"]), "-P FORWARD DROP"), 1, "policy untouched");
    assert_eq!(count(&h.tables("iptables", &["-S", "DOCKER-USER"]), ACCEPT_BR0), 1);
    assert!(!h.tables("iptables", &["-S", "FORWARD"]).contains("br0"), "FORWARD itself untouched");
    assert!(!h.tables("ip6tables", &["-S"]).contains("br0"), "Docker's ip6tables is off: no IPv6 drop");
    let ours = nft_rules(&h.ns, "ip", "DOCKER-USER");
    assert!(ours.contains(&written_by_iptables_nft("DOCKER-USER", "br0")), "{ours:?}");
    restores(&h.ns, "iptables-save", "iptables-restore");

    let in_ctr = |to: &str| h.docker(&["exec", &ctr, "ping", "-c", "1", "-W", "2", to]);
    in_ctr("10.5.106.2");
    assert!(pings(&node, "10.5.106.101"), "the compute node reaches the container");

    // show and check see the rule.
    let show = stdout(&h.pipework(&["show"]));
    assert!(show.contains("br0: pipework keeps `iptables -I DOCKER-USER -i br0 -o br0 -j ACCEPT`"), "{show}");
    let json: Value = serde_json::from_str(&stdout(&h.pipework(&["show", "--json"]))).unwrap();
    assert_eq!(json[0]["firewall"], serde_json::json!(["iptables -I DOCKER-USER -i br0 -o br0 -j ACCEPT"]));
    assert_success(&h.pipework(&["check"]));
    h.tables("iptables", &["-D", "DOCKER-USER", "-i", "br0", "-o", "br0", "-j", "ACCEPT"]);
    let check = h.pipework(&["check"]);
    assert_eq!(check.status.code(), Some(1));
    assert!(
        stdout(&check).contains(&format!(
            "the FORWARD hook drops what br0 (of eth1 of {ctr}) forwards between its ports: \
                 missing `iptables -I DOCKER-USER -i br0 -o br0 -j ACCEPT`"
        )),
        "{}",
        stdout(&check)
    );
    let json: Value = serde_json::from_str(&stdout(&h.pipework(&["check", "--json"]))).unwrap();
    assert_eq!(json["differences"][0]["kind"], "firewall");
    h.tables("iptables", &["-I", "DOCKER-USER", "-i", "br0", "-o", "br0", "-j", "ACCEPT"]);

    h.restart_dockerd();
    assert_eq!(count(&h.tables("iptables", &["-S", "DOCKER-USER"]), ACCEPT_BR0), 1, "kept by dockerd");
    assert_eq!(count(&h.tables("iptables", &["-S", "FORWARD"]), "-P FORWARD DROP"), 1);

    assert_success(&h.pipework(&["detach", &ctr]));
    assert_eq!(count(&h.tables("iptables", &["-S", "DOCKER-USER"]), ACCEPT_BR0), 0, "gone with the last");
    restores(&h.ns, "iptables-save", "iptables-restore");
}

/// A host whose operator set FORWARD's policy to DROP with each of `tools`,
/// with `bridge` and a peer on it at `peer_cidr`; None where the kernel has
/// no br_netfilter.
fn dropping_host(bridge: &str, peer_cidr: &str, tools: &[&str]) -> Option<(Netns, Netns)> {
    let host = Netns::new("fwh");
    if !has_br_netfilter(&host) {
        return None;
    }
    host.add_bridge(bridge, None);
    let peer = host.add_peer(bridge, peer_cidr);
    for tool in tools {
        host.exec(&[tool, "-P", "FORWARD", "DROP"]);
    }
    Some((host, peer))
}

/// A guest on `bridge` of `host` by netns name, at `cidr`.
fn guest_on(host: &Netns, bridge: &str, cidr: &str, extra: &[&str]) -> (Netns, std::process::Output) {
    let guest = Netns::new("gst");
    let label = format!("netns:{}", guest.name);
    let mut args = extra.to_vec();
    args.extend([bridge, label.as_str(), cidr]);
    let out = pipework(host, &args);
    (guest, out)
}

/// An operator's DROP policy, no Docker: the rule goes at the head of
/// FORWARD, IPv4 and IPv6, once per bridge whoever asks, and goes with the
/// bridge's last attachment. --dry-run prints it; --no-firewall adds
/// nothing and says what to run.
#[test]
fn operator_drop_policy_without_docker() {
    let Some((host, peer)) = dropping_host("br1", "10.6.0.3/24", &["iptables", "ip6tables"]) else { return };

    let guest = Netns::new("gst");
    let label = format!("netns:{}", guest.name);
    let plan = planned_steps(&host, &["br1", &label, "10.6.0.2/24"]);
    assert!(
        plan.contains(
            &"iptables -I FORWARD 1 -i br1 -o br1 -j ACCEPT && ip6tables -I FORWARD 1 -i br1 -o br1 -j ACCEPT"
                .to_string()
        ),
        "{plan:?}"
    );

    let before = host.exec(&["iptables", "-S"]).stdout;
    let out = pipework(&host, &["--no-firewall", "br1", &label, "10.6.0.2/24"]);
    assert_success(&out);
    assert!(stderr(&out).contains("iptables -I FORWARD 1 -i br1 -o br1 -j ACCEPT"), "{}", stderr(&out));
    assert!(stderr(&out).contains("ip6tables -I FORWARD 1 -i br1 -o br1 -j ACCEPT"), "{}", stderr(&out));
    assert_eq!(host.exec(&["iptables", "-S"]).stdout, before, "--no-firewall adds nothing");
    assert!(!pings(&guest, "10.6.0.3"), "dropped, as it said");
    assert_success(&pipework(&host, &["check"])); // the operator's choice, recorded
    assert_success(&pipework(&host, &["detach", &label]));

    assert_success(&pipework(&host, &["br1", &label, "10.6.0.2/24"]));
    let (other, out) = guest_on(&host, "br1", "10.6.0.4/24", &[]);
    assert_success(&out);
    for tool in ["iptables", "ip6tables"] {
        let listing = run(&["ip", "netns", "exec", &host.name, tool, "-S", "FORWARD"]);
        assert_eq!(
            listing.lines().nth(1).map(str::trim),
            Some("-A FORWARD -i br1 -o br1 -j ACCEPT"),
            "{tool}: first, once:\n{listing}"
        );
        assert_eq!(count(&listing, "-A FORWARD -i br1 -o br1 -j ACCEPT"), 1, "{listing}");
        assert_eq!(count(&listing, "-P FORWARD DROP"), 1);
    }
    assert!(nft_rules(&host, "ip", "FORWARD").contains(&written_by_iptables_nft("FORWARD", "br1")));
    restores(&host, "ip6tables-save", "ip6tables-restore");
    assert!(pings(&guest, "10.6.0.3") && pings(&peer, "10.6.0.4"), "across br1 both ways");

    // Docker comes later: its DOCKER-USER, jumped to first. The rule at
    // the head of FORWARD still counts: no second one, no difference.
    host.exec(&["iptables", "-N", "DOCKER-USER"]);
    host.exec(&["iptables", "-I", "FORWARD", "-j", "DOCKER-USER"]);
    let (third, out) = guest_on(&host, "br1", "10.6.0.5/24", &[]);
    assert_success(&out);
    assert!(!run(&["ip", "netns", "exec", &host.name, "iptables", "-S", "DOCKER-USER"]).contains("br1"));
    assert_success(&pipework(&host, &["check"]));
    assert_success(&pipework(&host, &["detach", &format!("netns:{}", third.name)]));

    // Without CAP_NET_ADMIN nf_tables answers no one: unverified is a difference.
    let out = std::process::Command::new("nsenter")
        .arg(format!("--net={}", host.path()))
        .args(["setpriv", "--bounding-set", "-net_admin", "--", PIPEWORK, "check"])
        .env(STATE_DIR_ENV, host.state_dir())
        .output()
        .expect("pipework check without CAP_NET_ADMIN");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains(&format!(
            "FORWARD rules of br1 (of eth1 of {label}) unverified: looking for ip filter FORWARD: \
             permission denied"
        )),
        "{}",
        stdout(&out)
    );

    assert_success(&pipework(&host, &["detach", &label]));
    assert_eq!(
        count(
            &run(&["ip", "netns", "exec", &host.name, "iptables", "-S"]),
            "-A FORWARD -i br1 -o br1 -j ACCEPT"
        ),
        1
    );
    assert_success(&pipework(&host, &["detach", &format!("netns:{}", other.name)]));
    assert!(!run(&["ip", "netns", "exec", &host.name, "iptables", "-S"]).contains("br1"));
    assert!(!run(&["ip", "netns", "exec", &host.name, "ip6tables", "-S"]).contains("br1"));
}

/// A failure at any step of an attach that adds the rule takes it away
/// again, with its record.
#[test]
fn the_rule_rolls_back_with_the_run() {
    let Some((host, _peer)) = dropping_host("br3", "10.7.0.3/24", &["iptables"]) else { return };
    let guest = Netns::new("gst");
    let label = format!("netns:{}", guest.name);
    let args = ["br3", label.as_str(), "10.7.0.2/24"];
    let plan = planned_steps(&host, &args);
    let rule = "iptables -I FORWARD 1 -i br3 -o br3 -j ACCEPT".to_string();
    let at = plan.iter().position(|s| *s == rule).unwrap_or_else(|| panic!("{plan:?}"));
    assert!(at + 1 < plan.len(), "steps follow the rule's, whose failure undoes it: {plan:?}");
    let steps = plan.len();
    let before = host.exec(&["iptables", "-S"]).stdout;
    for at in 1..=steps {
        let out = pipework_env(&host, &args, &[("PIPEWORK_FAIL_AT", &at.to_string())]);
        assert_eq!(out.status.code(), Some(1), "fail at {at}: {}", stderr(&out));
        assert_eq!(host.exec(&["iptables", "-S"]).stdout, before, "after a failure at {at}");
    }
    let bridges = std::path::Path::new(&host.state_dir()).join("bridges");
    let left: Vec<_> =
        std::fs::read_dir(&bridges).map(|d| d.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "bridge records left: {left:?}");
}

/// iptables-legacy's x_tables: the rule through `iptables-legacy`, no
/// nf_tables table made.
#[test]
fn iptables_legacy_host() {
    let Some((host, peer)) = dropping_host("br2", "10.8.0.3/24", &["iptables-legacy"]) else { return };
    let (guest, out) = guest_on(&host, "br2", "10.8.0.2/24", &[]);
    assert_success(&out);
    let listing = run(&["ip", "netns", "exec", &host.name, "iptables-legacy", "-S", "FORWARD"]);
    assert_eq!(count(&listing, "-A FORWARD -i br2 -o br2 -j ACCEPT"), 1, "{listing}");
    let tables = run(&["ip", "netns", "exec", &host.name, "nft", "list", "tables"]);
    assert!(!tables.contains("ip filter"), "no nf_tables table: {tables}");
    assert!(pings(&guest, "10.8.0.3") && pings(&peer, "10.8.0.2"));
    restores(&host, "iptables-legacy-save", "iptables-legacy-restore");
    assert_success(&pipework(&host, &["detach", &format!("netns:{}", guest.name)]));
    let listing = run(&["ip", "netns", "exec", &host.name, "iptables-legacy", "-S", "FORWARD"]);
    assert!(!listing.contains("br2"), "{listing}");
}

/// The rule lost (a flush, a reboot), the container restarted: watch makes
/// it again with the interface. With PIPEWORK_NO_FIREWALL=1 (the service's
/// environment file) it makes the interface only, and says what to run.
/// The container removed, the rule goes with its record.
#[test]
fn watch_makes_the_rule_again() {
    let Some(h) = DockerHost::start() else { return };
    let node = h.ns.add_node(&["10.5.107.1/24"], &["10.5.107.2/24"]);
    assert_success(&h.pipework(&["mkbridge", "br0", "eth0"]));
    let scope = unique("fw");
    let label = format!("{SCOPE}={scope}");
    let ctr = h.container_with(&unique("xcat"), &["--label", &label]);
    assert_success(&h.pipework(&["br0", &ctr, "10.5.107.101/24@10.5.107.1"]));
    let socket = h.socket();
    let user_rules = || h.tables("iptables", &["-S", "DOCKER-USER"]);
    let drop_rule = || h.tables("iptables", &["-D", "DOCKER-USER", "-i", "br0", "-o", "br0", "-j", "ACCEPT"]);

    for (env, made) in [
        (vec![("DOCKER_HOST", socket.as_str())], 1),
        (vec![("DOCKER_HOST", socket.as_str()), ("PIPEWORK_NO_FIREWALL", "1")], 0),
    ] {
        let w = Watcher::start(&h.ns, &scope, &env);
        drop_rule();
        h.docker(&["restart", "-t", "0", &ctr]);
        w.wait_log(&format!("{ctr}: plumbed"), SETTLE);
        assert_eq!(count(&user_rules(), ACCEPT_BR0), made, "{}", w.log());
        if made == 1 {
            h.docker(&["exec", &ctr, "ping", "-c", "1", "-W", "2", "10.5.107.2"]);
            assert!(pings(&node, "10.5.107.101"));
        } else {
            assert!(w.log().contains("iptables -I DOCKER-USER -i br0 -o br0 -j ACCEPT"), "{}", w.log());
            h.tables("iptables", &["-I", "DOCKER-USER", "-i", "br0", "-o", "br0", "-j", "ACCEPT"]);
        }
    }

    // The container removed: watch's removal takes br0's last attachment,
    // and the rule with it.
    let w = Watcher::start(&h.ns, &scope, &[("DOCKER_HOST", socket.as_str())]);
    h.docker(&["rm", "-f", &ctr]);
    w.wait_log(&format!("{ctr}: removed"), SETTLE);
    assert_eq!(count(&user_rules(), ACCEPT_BR0), 0, "{}", w.log());
}

/// br_netfilter off for the namespace: a bridge's own nf_call_iptables
/// still hands its frames to the hook, and gets the rule; a bridge without
/// it needs none and gets none.
#[test]
fn a_bridge_that_calls_iptables_itself() {
    let Some((host, _peer)) = dropping_host("br4", "10.9.0.3/24", &["iptables"]) else { return };
    for key in ["iptables", "ip6tables"] {
        host.exec(&["sysctl", "-qw", &format!("net.bridge.bridge-nf-call-{key}=0")]);
    }
    host.ip(&["link", "set", "br4", "type", "bridge", "nf_call_iptables", "1"]);
    let (guest, out) = guest_on(&host, "br4", "10.9.0.2/24", &[]);
    assert_success(&out);
    let listing = run(&["ip", "netns", "exec", &host.name, "iptables", "-S", "FORWARD"]);
    assert_eq!(count(&listing, "-A FORWARD -i br4 -o br4 -j ACCEPT"), 1, "{listing}");
    assert!(pings(&guest, "10.9.0.3"));

    host.add_bridge("br5", None);
    let other_peer = host.add_peer("br5", "10.9.1.3/24");
    let (other, out) = guest_on(&host, "br5", "10.9.1.2/24", &[]);
    assert_success(&out);
    let listing = run(&["ip", "netns", "exec", &host.name, "iptables", "-S", "FORWARD"]);
    assert!(!listing.contains("br5"), "{listing}");
    assert!(pings(&other, "10.9.1.3") && pings(&other_peer, "10.9.1.2"), "br5's frames skip the hook");
    assert_success(&pipework(&host, &["check"]));

    // The hook turns on for br5 later: check names the rule it now needs.
    host.ip(&["link", "set", "br5", "type", "bridge", "nf_call_iptables", "1"]);
    let check = pipework(&host, &["check"]);
    assert_eq!(check.status.code(), Some(1), "{}", stdout(&check));
    assert_eq!(
        stdout(&check).trim(),
        format!(
            "the FORWARD hook drops what br5 (of eth1 of netns:{}) forwards between its ports: missing \
             `iptables -I FORWARD 1 -i br5 -o br5 -j ACCEPT`",
            other.name
        )
    );
}
