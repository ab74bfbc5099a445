//! More than one address on an interface (dual stack, a second IPv4): a
//! command line naming an interface pipework made, from the same host
//! interface, adds its address (and its family's gateway) to it. Oracles:
//! `ip -j` in the container and on the host, the record file read with
//! serde_json.

use serde_json::{json, Value};

use crate::common::*;

const V4: &str = "10.0.0.2/24";
const V6: &str = "2001:db8::2/64";

/// A host with br0 and a container whose eth1 pipework made on it, with
/// `10.0.0.2/24@10.0.0.1`.
fn attached(prefix: &str) -> (Netns, Container) {
    let host = Netns::new("host");
    host.add_bridge("br0", None);
    let ctr = Container::run(prefix);
    assert_success(&pipework(&host, &["br0", "-i", "eth1", &ctr.name, "10.0.0.2/24@10.0.0.1"]));
    (host, ctr)
}

/// `pipework br0 -i eth1 <ctr> <addr>`.
fn add(host: &Netns, ctr: &Container, addr: &str) -> std::process::Output {
    pipework(host, &["br0", "-i", "eth1", &ctr.name, addr])
}

/// The container's record on disk.
fn record(host: &Netns, ctr: &Container) -> Value {
    let text = std::fs::read_to_string(record_file(host, &container_id(ctr))).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn check(host: &Netns) -> (i32, Vec<String>) {
    let out = pipework(host, &["check"]);
    (out.status.code().unwrap(), stdout(&out).lines().map(String::from).collect())
}

#[test]
fn ipv4_then_ipv6_on_one_interface() {
    let (host, ctr) = attached("ds");
    let eth1 = ctr.must_link("eth1");
    assert_success(&add(&host, &ctr, "2001:db8::2/64@2001:db8::1"));
    assert_eq!(ctr.must_link("eth1").ifindex, eth1.ifindex, "eth1 was made again");
    assert_eq!(ctr.cidrs("eth1", Family::V4), [V4]);
    assert_eq!(ctr.cidrs("eth1", Family::V6), [V6]);
    assert_default_via(&ctr, Family::V4, "10.0.0.1", "eth1");
    assert_default_via(&ctr, Family::V6, "2001:db8::1", "eth1");
    assert_eq!(host.ports("br0").len(), 1);

    let iface = &record(&host, &ctr)["interfaces"][0];
    assert_eq!(iface["addresses"], json!([V4, V6]));
    assert_eq!(iface["gateway"], "10.0.0.1");
    assert_eq!(iface["second_gateway"], json!({"gateway": "2001:db8::1"}));

    let out = pipework(&host, &["show"]);
    assert_success(&out);
    let row: Vec<String> =
        stdout(&out).lines().nth(1).unwrap().split_whitespace().map(String::from).collect();
    assert_eq!(row[4], format!("{V4},{V6}"), "{}", stdout(&out));
    let out = pipework(&host, &["show", "--json"]);
    let rows: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        (&rows[0]["addresses"], &rows[0]["second_gateway"]),
        (&json!([V4, V6]), &json!("2001:db8::1"))
    );
    assert_eq!(check(&host), (0, vec![]));
}

#[test]
fn a_second_ipv4_address_and_the_same_again() {
    let (host, ctr) = attached("ds2");
    assert_success(&add(&host, &ctr, "10.0.0.3/24"));
    assert_eq!(ctr.cidrs("eth1", Family::V4), [V4, "10.0.0.3/24"]);
    assert_default_via(&ctr, Family::V4, "10.0.0.1", "eth1");
    let rec = record(&host, &ctr);
    assert_eq!(rec["interfaces"][0]["addresses"], json!([V4, "10.0.0.3/24"]));
    assert!(rec["interfaces"][0].get("second_gateway").is_none(), "{rec}");

    // The same address again, with or without the gateway it has: nothing to do.
    for again in ["10.0.0.3/24", "10.0.0.2/24@10.0.0.1", "10.0.0.2/24"] {
        let (host_before, ctr_before) = (host.snapshot(), ctr.snapshot());
        let out = add(&host, &ctr, again);
        assert_eq!((out.status.code(), stdout(&out), stderr(&out)), (Some(0), String::new(), String::new()));
        assert_unchanged("host", &host_before, || host.snapshot());
        assert_unchanged("container", &ctr_before, || ctr.snapshot());
        assert_eq!(record(&host, &ctr), rec, "{again}");
    }
}

#[test]
fn dry_run_prints_the_added_steps_alone() {
    let (host, ctr) = attached("dsd");
    let before = ctr.snapshot();
    let out = pipework(&host, &["--dry-run", "br0", "-i", "eth1", &ctr.name, "10.0.0.3/24"]);
    assert_success(&out);
    let enter = format!("nsenter --net=/proc/{}/ns/net", ctr.pid);
    let announce = "sysctl -qw net.ipv4.conf.eth1.arp_notify=1 \
         && ip link set eth1 address $(cat /sys/class/net/eth1/address) \
         && sysctl -qw net.ipv4.conf.eth1.arp_notify=0  # announces 10.0.0.3";
    let want = format!("{enter} ip -4 addr add 10.0.0.3/24 brd 10.0.0.255 dev eth1\n{enter} {announce}\n");
    assert_eq!(stdout(&out), want);
    assert_unchanged("container", &before, || ctr.snapshot());
}

#[test]
fn refusals_change_nothing() {
    let (host, ctr) = attached("dsr");
    let side = host_side("eth1", ctr.pid);
    let rec = record(&host, &ctr);
    // Another host interface for the same -i: refused as ever.
    let out = assert_refused(pipework, &host, Some(&ctr), &["br1", "-i", "eth1", &ctr.name, V6]);
    assert_eq!(stdout(&out), format!("Link {side} exists and is up\n"));
    // Another gateway of a family that has one.
    let out = assert_refused(
        pipework,
        &host,
        Some(&ctr),
        &["br0", "-i", "eth1", &ctr.name, "10.0.0.3/24@10.0.0.254"],
    );
    assert_eq!(
        stderr(&out),
        format!("pipework: eth1 of {} has the IPv4 gateway 10.0.0.1 already\n", ctr.name)
    );
    // The same address with another length.
    let out = assert_refused(pipework, &host, Some(&ctr), &["br0", "-i", "eth1", &ctr.name, "10.0.0.2/16"]);
    assert_eq!(stderr(&out), format!("pipework: 10.0.0.2 is on eth1 of {} already, as {V4}\n", ctr.name));
    // DHCP configures only an interface it makes.
    let out = assert_refused(pipework, &host, Some(&ctr), &["br0", "-i", "eth1", &ctr.name, "dhcp"]);
    assert!(stderr(&out).contains("DHCP configures only an interface it makes"), "{}", stderr(&out));
    assert_eq!(record(&host, &ctr), rec);
}

#[test]
fn an_interface_pipework_did_not_make_is_refused_as_before() {
    let host = Netns::new("host");
    host.add_bridge("br0", None);
    let ctr = Container::run("dsn");
    ctr.ip(&["link", "add", "eth1", "type", "veth", "peer", "name", "eth1p"]);
    let out = assert_refused(pipework, &host, Some(&ctr), &["br0", "-i", "eth1", &ctr.name, V4]);
    assert_eq!(stderr(&out), format!("pipework: interface eth1 already exists in {}\n", ctr.name));
}

#[cfg(feature = "failpoints")]
#[test]
fn a_failed_add_takes_back_the_added_address_alone() {
    let (host, ctr) = attached("dsf");
    let rec = record(&host, &ctr);
    let args = ["br0", "-i", "eth1", &ctr.name, "2001:db8::2/64@2001:db8::1"];
    let failed = crate::rollback::fail_at_every_step(&host, &ctr, &args);
    assert!(failed >= 4, "only {failed} steps failed");
    assert_eq!(ctr.cidrs("eth1", Family::V6), [V6]);
    assert_default_via(&ctr, Family::V6, "2001:db8::1", "eth1");
    assert_eq!(record(&host, &ctr)["interfaces"][0]["addresses"], json!([V4, V6]));
    assert_eq!(rec["interfaces"][0]["addresses"], json!([V4]));
    // eth1 had IPv6 off (Docker's default): a rollback turns it off again.
    assert_success(&pipework(&host, &["detach", &ctr.name]));
    assert_success(&pipework(&host, &["br0", "-i", "eth1", &ctr.name, V4]));
    let out = pipework_env(&host, &args, &[("PIPEWORK_FAIL_AT", "3")]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let disabled = ctr.nsenter(&["cat", "/proc/sys/net/ipv6/conf/eth1/disable_ipv6"]);
    assert_eq!(stdout(&disabled), "1\n");
}

#[test]
fn check_names_a_removed_second_address_and_gateway() {
    let (host, ctr) = attached("dsc");
    assert_success(&add(&host, &ctr, "2001:db8::2/64@2001:db8::1"));
    assert_eq!(check(&host), (0, vec![]));
    let n = &ctr.name;
    ctr.ip(&["addr", "del", V6, "dev", "eth1"]);
    assert_eq!(check(&host), (1, vec![format!("missing address {V6} on eth1 of {n}")]));
    ctr.ip(&["-6", "route", "del", "default"]);
    let route = format!("default route of {n}: none, recorded via 2001:db8::1 dev eth1");
    assert_eq!(check(&host), (1, vec![format!("missing address {V6} on eth1 of {n}"), route]));
}

#[test]
fn detach_removes_every_address_and_gives_back_the_default_routes() {
    let host = Netns::new("host");
    host.add_bridge("br0", None);
    let ctr = Container::run_with("dsx", DOCKER_IPV6);
    ctr.add_uplink("192.168.77.2/24", "192.168.77.1");
    ctr.add_uplink("2001:db8:77::2/64", "2001:db8:77::1");
    let (host_before, ctr_before) = (settled_snapshot(&host), settled_snapshot(&ctr));
    assert_success(&add(&host, &ctr, "10.0.0.2/24@10.0.0.1"));
    assert_success(&add(&host, &ctr, "2001:db8::2/64@2001:db8::1"));
    assert_success(&add(&host, &ctr, "10.0.0.3/24"));
    assert_success(&pipework(&host, &["detach", &ctr.name]));
    assert!(ctr.link("eth1").is_none());
    assert_unchanged("host", &host_before, || host.snapshot());
    assert_unchanged("container", &ctr_before, || ctr.snapshot());
    assert_default_via(&ctr, Family::V4, "192.168.77.1", "eth0");
    assert_default_via(&ctr, Family::V6, "2001:db8:77::1", "eth0");
}

#[test]
fn watch_makes_every_address_again_after_a_restart() {
    let host = Netns::new("host");
    host.add_bridge("br0", None);
    let w = Watcher::start(&host, &unique("dsw"), &[]);
    let mut c = watched_container(&w, "dsw", &[]);
    assert_success(&add(&host, &c, "10.0.0.2/24@10.0.0.1"));
    assert_success(&add(&host, &c, "2001:db8::2/64@2001:db8::1"));
    assert_success(&add(&host, &c, "10.0.0.3/24"));
    let rec = record(&host, &c);
    let mac = c.must_link("eth1").address;

    restart_container(&mut c);
    w.wait_log(&format!("{}: plumbed eth1", c.name), SETTLE);
    assert_eq!(wait_eth1(&c).address, mac);
    assert_eq!(c.cidrs("eth1", Family::V4), [V4, "10.0.0.3/24"]);
    assert_eq!(c.cidrs("eth1", Family::V6), [V6]);
    assert_default_via(&c, Family::V4, "10.0.0.1", "eth1");
    assert_default_via(&c, Family::V6, "2001:db8::1", "eth1");
    let now = record(&host, &c);
    for key in ["addresses", "gateway", "second_gateway"] {
        assert_eq!(now["interfaces"][0][key], rec["interfaces"][0][key], "{key}");
    }
    assert_eq!(check(&host), (0, vec![]));
}
