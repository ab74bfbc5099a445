//! `pipework route|rule|tc <guest> <args...>`: the native `ip route` and
//! `ip rule` forms must leave the kernel exactly as `ip` itself does, print
//! what `ip` prints when refused and exit as it does; the other forms, and
//! `tc`, run the real tools inside the guest.
//!
//! Most tests use twin guests: the same arguments go to pipework in one and
//! to `ip -n` in the other, and `ip -d -j` must then show the same routes
//! and rules in both. Native forms run with a PATH holding no `ip`, so
//! that they cannot have been handed to it.

use serde_json::{json, Value};

use crate::common::*;

const ETH1_V4: &str = "10.9.0.2/24";
const ETH1_V6: &str = "2001:db8:9::2/64";

/// A netns guest with eth1 holding ETH1_V4 and ETH1_V6.
fn guest() -> Netns {
    let g = Netns::new("gst");
    add_eth1(&g, ETH1_V4, ETH1_V6);
    g
}

fn netns_arg(ns: &Netns) -> String {
    format!("netns:{}", ns.name)
}

fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// The host pipework runs in, the guest it changes, and a twin guest that
/// `ip` changes.
struct Twins {
    host: Netns,
    piped: Netns,
    twin: Netns,
    /// A PATH with no `ip` and no `tc`.
    bare: TempDir,
}

impl Twins {
    fn new() -> Twins {
        Twins { host: Netns::new("host"), piped: guest(), twin: guest(), bare: path_with(&[]) }
    }

    /// `pipework <tool> <piped> <line>` and `ip -n <twin> <tool> <line>`
    /// exit alike and print alike. `native`: pipework finds no `ip` to run.
    #[track_caller]
    fn same(&self, tool: &str, line: &str, native: bool) {
        let target = netns_arg(&self.piped);
        let mut args = vec![tool, &target];
        args.extend(words(line));
        let piped = if native {
            pipework_with_path(&self.host, self.bare.arg(), &args)
        } else {
            pipework(&self.host, &args)
        };
        let ip_args = ip_argv(&self.twin, tool, line);
        let ip = quiet(&ip_args);
        assert_eq!(
            (piped.status.code(), stderr(&piped), stdout(&piped)),
            (ip.status.code(), stderr(&ip), stdout(&ip)),
            "{tool} {line}: pipework (left) and {} (right) differ",
            ip_args.join(" ")
        );
    }
}

/// `ip -n <ns> <leading flags> <tool> <rest of line>`: where `ip` reads
/// `-4`/`-6`.
fn ip_argv<'a>(ns: &'a Netns, tool: &'a str, line: &'a str) -> Vec<&'a str> {
    let line = words(line);
    let flags = line.iter().take_while(|w| w.starts_with('-')).count();
    let mut argv = vec!["ip", "-n", ns.name.as_str()];
    argv.extend(&line[..flags]);
    argv.push(tool);
    argv.extend(&line[flags..]);
    argv
}

/// One route, as `ip -d -j route show table all` has it.
#[track_caller]
fn only_route(ns: &Netns, dst: &str) -> Value {
    let found = made_routes_to(ns, dst);
    assert_eq!(found.len(), 1, "{dst}: {found:?}");
    found.into_iter().next().unwrap()
}

/// The fields of `route` named in `want`.
fn fields(route: &Value, want: &Value) -> Value {
    let keys: Vec<&String> = want.as_object().unwrap().keys().collect();
    Value::Object(keys.into_iter().map(|k| (k.clone(), route[k].clone())).collect())
}

#[test]
fn native_route_forms_do_what_ip_does() {
    let t = Twins::new();
    for line in [
        "add 10.1.0.0/16 dev eth1",
        "add 10.2.0.0/16 via 10.9.0.1 metric 50",
        "add 10.3.0.0/16 via 10.9.0.1 dev eth1 table 100 proto static",
        "add 10.4.0.0/24 dev eth1 scope host",
        "add 10.5.0.1 dev eth1",
        "add 10.6.0.0/16 via 192.168.77.1 dev eth1 onlink",
        "add 10.7.0.0/16 via 10.9.0.1 mtu 1400",
        "add 10.7.1.0/24 via 10.9.0.1 mtu lock 1300",
        "add default via 10.9.0.1",
        "add 10.8.0.0/16 dev eth1 src 10.9.0.2 table main",
        "add 10.10.0.0/16 dev eth1 table 1000 scope link metric 7",
        "add 10.10.1.0/24 dev eth1 table 1000",
        "add 10.11.0.0/16 dev eth1 metric 10",
        "append 10.11.0.0/16 via 10.9.0.3 metric 10",
        "replace 10.2.0.0/16 via 10.9.0.3 metric 50",
        "replace 10.20.0.0/16 dev eth1 preference 9",
        "change 10.1.0.0/16 dev eth1 proto dhcp",
        "prepend 10.12.0.0/16 dev eth1 priority 3",
        "add blackhole 10.13.0.0/16",
        "add unreachable 10.14.0.0/16 metric 3",
        "add 10.15.0.0/16 dev eth1 proto 77 table default",
        "-4 add 10.16.0.0/16 dev eth1 scope global",
        "del 10.5.0.1",
        "del 10.3.0.0/16 table 100",
        "delete 10.10.0.0/16 dev eth1 table 1000",
        "-6 add 2001:db8:1::/48 via 2001:db8:9::1",
        "add 2001:db8:2::/48 dev eth1 metric 100",
        "add 2001:db8:3::/48 via 2001:db8:9::1 dev eth1 table 200 proto static mtu 1380",
        "-6 add default via 2001:db8:9::1 dev eth1",
        "replace 2001:db8:2::/48 via 2001:db8:9::3 metric 100",
        "del 2001:db8:1::/48",
    ] {
        t.same("route", line, true);
    }
    assert_eq!(made_routes(&t.piped), made_routes(&t.twin));

    // What iproute2's defaults mean, read back.
    let r = only_route(&t.piped, "10.2.0.0/16");
    let want = json!({"gateway": "10.9.0.3", "dev": "eth1", "metric": 50, "table": "main",
                      "protocol": "boot", "scope": "global"});
    assert_eq!(fields(&r, &want), want);
    let r = only_route(&t.piped, "10.12.0.0/16");
    let want = json!({"dev": "eth1", "metric": 3, "protocol": "boot", "scope": "link"});
    assert_eq!(fields(&r, &want), want);
    let r = only_route(&t.piped, "10.1.0.0/16");
    let want = json!({"dev": "eth1", "protocol": "dhcp", "scope": "link", "table": "main"});
    assert_eq!(fields(&r, &want), want);
    let r = only_route(&t.piped, "10.4.0.0/24");
    assert_eq!(r["scope"], "host", "{r}");
    let r = only_route(&t.piped, "10.6.0.0/16");
    assert!(r["flags"].as_array().unwrap().contains(&json!("onlink")), "{r}");
    let r = only_route(&t.piped, "10.7.0.0/16");
    assert_eq!(r["metrics"], json!([{"mtu": 1400}]), "{r}");
    let r = only_route(&t.piped, "10.10.1.0/24");
    assert_eq!(r["table"], "1000", "{r}");
    let r = only_route(&t.piped, "10.15.0.0/16");
    assert_eq!((r["protocol"].clone(), r["table"].clone()), (json!("77"), json!("default")), "{r}");
    assert_eq!(only_route(&t.piped, "10.13.0.0/16")["type"], "blackhole");
    assert_eq!(made_routes_to(&t.piped, "10.11.0.0/16").len(), 2, "append adds a second route");
    assert!(made_routes_to(&t.piped, "10.5.0.1").is_empty());
    assert!(made_routes_to(&t.piped, "10.3.0.0/16").is_empty());
    let r = only_route(&t.piped, "2001:db8:3::/48");
    let want =
        json!({"gateway": "2001:db8:9::1", "table": "200", "protocol": "static", "metrics": [{"mtu": 1380}]});
    assert_eq!(fields(&r, &want), want);
    let r = only_route(&t.piped, "2001:db8:2::/48");
    assert_eq!((r["gateway"].clone(), r["metric"].clone()), (json!("2001:db8:9::3"), json!(100)), "{r}");
    assert!(made_routes_to(&t.piped, "2001:db8:1::/48").is_empty());
    assert_eq!(made_routes_to(&t.piped, "default").len(), 2, "one default route of each family");
}

#[test]
fn native_route_refusals_print_what_ip_prints() {
    let t = Twins::new();
    t.same("route", "add 10.1.0.0/16 dev eth1", true);
    for line in [
        "add 10.1.0.0/16 dev eth1",
        "add 10.1.0.0/16 via 10.9.0.1",
        "del 10.77.0.0/16",
        "change 10.78.0.0/16 dev eth1",
        "add 10.17.0.0/16 via 10.99.0.1",
        "add 10.18.0.0/16 dev nosuch",
        "add 10.1.2.3/16 dev eth1",
        "add 2001:db8:4::/48 via 2001:db8:99::1",
    ] {
        t.same("route", line, true);
    }
    assert_eq!(made_routes(&t.piped), made_routes(&t.twin));
}

#[test]
fn duplicate_route_is_file_exists() {
    let host = Netns::new("host");
    let g = guest();
    let add = ["route", &netns_arg(&g), "add", "10.1.0.0/16", "via", "10.9.0.1", "metric", "5"];
    assert_success(&pipework(&host, &add));
    let out = pipework(&host, &add);
    assert_eq!(stderr(&out), "RTNETLINK answers: File exists\n");
    assert_eq!(stdout(&out), "");
    assert_eq!(out.status.code(), Some(2));
    let ip = quiet(&["ip", "-n", &g.name, "route", "add", "10.1.0.0/16", "via", "10.9.0.1", "metric", "5"]);
    assert_eq!((stderr(&ip), ip.status.code()), (stderr(&out), out.status.code()));
    assert_eq!(made_routes_to(&g, "10.1.0.0/16").len(), 1);
}

#[test]
fn native_rule_forms_do_what_ip_does() {
    let t = Twins::new();
    for line in [
        "add from 10.1.0.0/16 table 100",
        "add from 10.2.0.0/16 to 10.3.0.0/16 lookup 101 priority 1000",
        "add fwmark 0x10/0xff lookup 102 pref 1001",
        "add fwmark 7 table main order 1002",
        "add iif eth1 table 103 prio 1003",
        "add oif eth1 table 104 preference 1004",
        "add not from 10.4.0.0/16 table 1000 pref 1005",
        "add to 10.5.0.1 table local pref 1006",
        "add from all lookup 105 pref 1007",
        "add dev eth1 lookup default pref 1008",
        "-6 add from 2001:db8::/32 table 100 pref 1009",
        "-6 add to 2001:db8:1::/48 table 106 pref 1010",
        "add fwmark 0x10/0xff lookup 102 pref 1001",
        "del from 10.1.0.0/16 table 100",
        "del pref 1002",
        "delete fwmark 0x10/0xff pref 1001",
        "-6 del to 2001:db8:1::/48 table 106",
        "del pref 4242",
    ] {
        t.same("rule", line, true);
    }
    assert_eq!(rules(&t.piped), rules(&t.twin));

    let all = as_array(rules(&t.piped));
    let at = |pref: u64| -> Value {
        all.iter()
            .find(|r| r["priority"] == pref)
            .cloned()
            .unwrap_or_else(|| panic!("no rule {pref}: {all:?}"))
    };
    let want = json!({"src": "10.2.0.0", "srclen": 16, "dst": "10.3.0.0", "dstlen": 16, "table": "101"});
    assert_eq!(fields(&at(1000), &want), want);
    let want = json!({"iif": "eth1", "table": "103"});
    assert_eq!(fields(&at(1003), &want), want);
    let want = json!({"oif": "eth1", "table": "104"});
    assert_eq!(fields(&at(1004), &want), want);
    let r = at(1005);
    assert!(r.as_object().unwrap().contains_key("not"), "{r}");
    assert_eq!(at(1006)["table"], "local");
    assert_eq!(at(1009)["src"], "2001:db8::");
    for gone in [1001, 1002, 1010] {
        assert!(all.iter().all(|r| r["priority"] != gone), "rule {gone} left: {all:?}");
    }
    assert!(all.iter().all(|r| r["src"] != "10.1.0.0"), "{all:?}");
    assert_eq!(at(1007)["src"], "all");
}

#[test]
fn rule_family_follows_the_addresses() {
    // `ip rule add from <IPv6>` without -6 is refused by the kernel; pipework
    // takes the family from the address instead.
    let host = Netns::new("host");
    let g = guest();
    let out = pipework(&host, &["rule", &netns_arg(&g), "add", "from", "2001:db8:7::/48", "lookup", "7"]);
    assert_success(&out);
    let v6 = as_array(g.ip_j(&["-6", "rule", "show"]));
    assert!(v6.iter().any(|r| r["src"] == "2001:db8:7::" && r["table"] == "7"), "{v6:?}");
}

#[test]
fn show_forms_print_what_ip_prints() {
    let t = Twins::new();
    t.same("route", "add 10.1.0.0/16 via 10.9.0.1 metric 5", true);
    t.same("rule", "add from 10.1.0.0/16 table 100 pref 100", true);
    let g = netns_arg(&t.piped);
    for (tool, line) in [
        ("route", "show"),
        ("route", "show table all"),
        ("route", "list dev eth1"),
        ("route", "-6 show"),
        ("route", "get 10.1.2.3"),
        ("rule", "show"),
        ("rule", "-6 list"),
    ] {
        let mut args = vec![tool, g.as_str()];
        args.extend(words(line));
        let out = pipework(&t.host, &args);
        assert_success(&out);
        assert_eq!(stdout(&out), run(&ip_argv(&t.piped, tool, line)), "{tool} {line}");
        assert_eq!(stderr(&out), "");
    }
}

#[test]
fn unknown_keywords_run_ip() {
    let t = Twins::new();
    // realm is not parsed natively: it works, through `ip`...
    t.same("route", "add 10.7.0.0/16 dev eth1 realm 5", false);
    let r = only_route(&t.piped, "10.7.0.0/16");
    assert_eq!(r["flow"], json!({"to": "5"}), "{r}");
    assert_eq!(made_routes(&t.piped), made_routes(&t.twin));
    // ...which pipework does run: without one, it says so and changes nothing.
    let before = made_routes(&t.piped);
    let g = netns_arg(&t.piped);
    let out = pipework_with_path(
        &t.host,
        t.bare.arg(),
        &["route", &g, "add", "10.8.0.0/16", "dev", "eth1", "realm", "6"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "pipework: ip not found; install iproute2\n");
    assert_eq!(made_routes(&t.piped), before);
    // ip's own refusals come through with its status.
    for line in ["add 10.9.9.0/24 dev eth1 nonsense", "frobnicate", "add 10/8 via 10.9.0.1 realm x"] {
        t.same("route", line, false);
    }
    t.same("rule", "add from 10.1.0.0/16 blackhole pref 50", false);
    t.same("rule", "add from 10.1.0.0/16 table 5 bogus", false);
    assert_eq!(rules(&t.piped), rules(&t.twin));
}

#[test]
fn tc_runs_in_the_guest() {
    let host = Netns::new("host");
    let g = guest();
    let target = netns_arg(&g);
    let tbf = ["root", "tbf", "rate", "1mbit", "burst", "32kbit", "latency", "400ms"];
    let mut args = vec!["tc", &target, "qdisc", "add", "dev", "eth1"];
    args.extend(tbf);
    assert_success(&pipework(&host, &args));
    let shown = run(&["ip", "netns", "exec", &g.name, "tc", "-j", "qdisc", "show", "dev", "eth1"]);
    let qdiscs: Value = serde_json::from_str(&shown).unwrap();
    assert!(as_array(qdiscs.clone()).iter().any(|q| q["kind"] == "tbf"), "{qdiscs}");

    // tc's failure, status and message, as tc gives them.
    let mut args = vec!["tc", &target, "qdisc", "add", "dev", "nosuch"];
    args.extend(tbf);
    let out = pipework(&host, &args);
    let mut argv = vec!["ip", "netns", "exec", &g.name, "tc", "qdisc", "add", "dev", "nosuch"];
    argv.extend(tbf);
    let tc = quiet(&argv);
    assert_ne!(tc.status.code(), Some(0));
    assert_eq!((out.status.code(), stderr(&out)), (tc.status.code(), stderr(&tc)));

    // No tc on the PATH: one line.
    let only_ip = path_with(&["ip"]);
    let out = pipework_with_path(&host, only_ip.arg(), &["tc", &target, "qdisc", "show"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "pipework: tc not found; install iproute2\n");
}

/// A `tc` or `ip` planted earlier on PATH is never run (it would leave a
/// marker): pipework takes them from the system directories, and gives
/// them none of its environment.
#[test]
fn planted_programs_on_path_are_not_run() {
    let host = Netns::new("host");
    let g = guest();
    let target = netns_arg(&g);
    let evil = TempDir::new("evil");
    let marker = evil.join("ran");
    for prog in ["tc", "ip"] {
        let script = evil.path.join(prog);
        std::fs::write(&script, format!("#!/bin/sh\necho $0 >> {marker}\n")).unwrap();
        run(&["chmod", "755", script.to_str().unwrap()]);
    }
    let path = format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", evil.arg());
    for (args, real) in [
        (vec!["tc", &target, "qdisc", "show", "dev", "lo"], vec!["tc", "qdisc", "show", "dev", "lo"]),
        (vec!["route", &target, "show"], vec!["ip", "route", "show"]),
    ] {
        // ip found here, before PATH leads to the planted one.
        let out = std::process::Command::new(which("ip"))
            .args(["netns", "exec", &host.name, PIPEWORK])
            .args(&args)
            .env("PATH", &path)
            .env("TC_LIB_DIR", evil.arg())
            .env_remove("PIPEWORK_TEST_SBIN")
            .output()
            .expect("cannot run pipework");
        assert_success(&out);
        assert_eq!(stdout(&out), stdout(&g.exec(&real)), "{args:?}");
        assert!(!std::path::Path::new(&marker).exists(), "{args:?} ran a planted program");
    }
}

#[test]
fn docker_container_guest() {
    let host = Netns::new("host");
    let ctr = Container::run_with("ctr", DOCKER_IPV6);
    add_eth1(&ctr, ETH1_V4, ETH1_V6);
    let bare = path_with(&[]);
    for line in ["add 10.1.0.0/16 via 10.9.0.1 metric 5", "add default via 10.9.0.1"] {
        let mut args = vec!["route", ctr.name.as_str()];
        args.extend(words(line));
        assert_success(&pipework_with_path(&host, bare.arg(), &args));
    }
    let r = made_routes_to(&ctr, "10.1.0.0/16");
    assert_eq!(r.len(), 1, "{r:?}");
    let want = json!({"gateway": "10.9.0.1", "dev": "eth1", "metric": 5, "protocol": "boot"});
    assert_eq!(fields(&r[0], &want), want);
    assert_default_via(&ctr, Family::V4, "10.9.0.1", "eth1");

    let out = pipework(&host, &["rule", &ctr.name, "add", "fwmark", "3", "table", "30", "pref", "300"]);
    assert_success(&out);
    assert!(as_array(ctr.ip_j(&["rule", "show"])).iter().any(|r| r["priority"] == 300 && r["table"] == "30"));

    // The container has busybox only: `ip` and `tc` are the host's, run in
    // its namespace.
    let out = pipework(&host, &["route", &ctr.name, "show"]);
    assert_success(&out);
    assert_eq!(stdout(&out), ctr.ip(&["route", "show"]));
    let out = pipework(&host, &["tc", &ctr.name, "qdisc", "show", "dev", "eth1"]);
    assert_success(&out);
    let tc = ctr.exec(&["tc", "qdisc", "show", "dev", "eth1"]);
    assert_eq!(stdout(&out), stdout(&tc));
}

fn as_array(v: Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items,
        other => panic!("expected a JSON array, got {other}"),
    }
}
