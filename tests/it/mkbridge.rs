//! `pipework mkbridge BRIDGE IFACE`: the runbook's "Create a customized
//! bridge" (shared/docs/xcat-in-docker.rst) as one transaction. The host's
//! eth0 is cabled to a "compute node" namespace, so what the runbook is
//! about, the node keeping its connection to the host, is checked for real.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, Stdio};

use crate::common::*;

const HOST_V4: &str = "10.5.106.1/24";
const HOST_V6: &str = "2001:db8:5::1/64";
pub(crate) const MKBRIDGE: &[&str] = &["mkbridge", "br0", "eth0"];

/// The routes `dockerhost` puts on eth0, which must all move to br0:
/// family, destination, gateway, table (None: main).
const ROUTES: [(Family, &str, &str, Option<&str>); 4] = [
    (Family::V4, "default", "10.5.106.254", None),
    (Family::V4, "192.168.50.0/24", "10.5.106.20", None),
    (Family::V4, "172.16.0.0/16", "10.5.106.20", Some("100")),
    (Family::V6, "2001:db8:50::/64", "2001:db8:5::20", None),
];

/// dockerhost1 before mkbridge, and a compute node on its eth0. eth0 gets
/// an MTU other than the default, so that br0 having it says something.
pub(crate) fn dockerhost() -> (Netns, Netns) {
    let host = Netns::new("host");
    let node = host.add_node(&[HOST_V4, HOST_V6], &["10.5.106.20/24", "2001:db8:5::20/64"]);
    for ns in [&host, &node] {
        ns.ip(&["link", "set", "eth0", "mtu", "1400"]);
    }
    for (family, dst, gw, table) in ROUTES {
        let flag = if family == Family::V4 { "-4" } else { "-6" };
        let mut args = vec![flag, "route", "add", dst, "via", gw, "dev", "eth0"];
        args.extend(table.map(|t| ["table", t]).into_iter().flatten());
        host.ip(&args);
    }
    (host, node)
}

/// eth0 is a port of br0, which is up and holds eth0's addresses and
/// routes, and the node reaches the host on both.
#[track_caller]
pub(crate) fn assert_moved(host: &Netns, node: &Netns) {
    let br = host.must_link("br0");
    assert_eq!(br.kind.as_deref(), Some("bridge"), "{br:?}");
    assert!(br.is_up(), "br0 is down: {br:?}");
    let eth0 = host.must_link("eth0");
    assert_eq!(eth0.master.as_deref(), Some("br0"), "{eth0:?}");
    assert!(eth0.is_up(), "eth0 is down: {eth0:?}");

    assert_eq!(host.addrs("eth0"), vec![], "eth0 kept global addresses");
    assert_eq!(host.cidrs("br0", Family::V4), vec![HOST_V4]);
    assert_eq!(host.cidrs("br0", Family::V6), vec![HOST_V6]);
    for (family, dst, gw, table) in ROUTES {
        let all = all_routes(host, family);
        let found: Vec<_> = all.iter().filter(|r| r.dst == dst && r.table.as_deref() == table).collect();
        assert_eq!(found.len(), 1, "{dst} (table {table:?}): {all:?}");
        assert_eq!((found[0].dev.as_deref(), found[0].gateway.as_deref()), (Some("br0"), Some(gw)), "{dst}");
    }

    assert!(node.ping("10.5.106.1"), "the node cannot ping the host over br0");
    assert!(node.ping("2001:db8:5::1"), "the node cannot ping the host over br0 (IPv6)");
}

/// `args` with `--dry-run` right after the `mkbridge` word.
fn dry(args: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    out.insert(1, "--dry-run".into());
    out
}

/// The commands `--dry-run` prints for `args`, which must change nothing.
fn dry_run(host: &Netns, node: &Netns, args: &[&str]) -> Vec<String> {
    let (host_before, node_before) = (host.snapshot(), node.snapshot());
    let args = dry(args);
    let out = pipework(host, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_success(&out);
    assert_unchanged("host after --dry-run", &host_before, || host.snapshot());
    assert_unchanged("node after --dry-run", &node_before, || node.snapshot());
    stdout(&out).lines().map(str::to_owned).collect()
}

#[test]
fn converts_eth0_into_a_port_of_br0() {
    let (host, node) = dockerhost();
    let eth0 = host.must_link("eth0");
    assert_success(&pipework(&host, MKBRIDGE));
    assert_moved(&host, &node);

    let br = host.must_link("br0");
    assert_eq!((br.address.as_str(), br.mtu), (eth0.address.as_str(), 1400), "br0 lacks eth0's MAC, MTU");
    // The runbook's `brctl setfd br0 0`, and STP off as brctl leaves it.
    let info = link_info_data(&host, "br0");
    assert_eq!((info["stp_state"].as_u64(), info["forward_delay"].as_u64()), (Some(0), Some(0)), "{info}");
}

// ---- the node pinging through the move

/// `ping -i 0.05 -c <count> -W 1 <ip>` inside a namespace, in the background.
struct Pinger {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Pinger {
    /// Starts pinging and returns once the first reply is in, so that what
    /// the test does next happens while the ping is under way.
    fn start(ns: &dyn Ns, ip: &str, count: u32) -> Pinger {
        let (mut argv, count) = (ns.enter(), count.to_string());
        argv.extend(["ping", "-i", "0.05", "-c", &count, "-W", "1", ip].map(String::from));
        let mut child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot run ping");
        let out = BufReader::new(child.stdout.take().expect("piped"));
        let mut p = Pinger { child, out };
        let mut line = String::new();
        while !line.contains("bytes from") {
            line.clear();
            let n = p.out.read_line(&mut line).expect("ping output");
            assert!(n > 0, "ping {ip} ended without a reply:\n{}", p.rest());
        }
        p
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().expect("ping status").is_none()
    }

    /// The rest of its output, both streams, once it has ended.
    fn rest(&mut self) -> String {
        let mut text = String::new();
        let _ = self.out.read_to_string(&mut text);
        if let Some(err) = self.child.stderr.as_mut() {
            let _ = err.read_to_string(&mut text);
        }
        let _ = self.child.wait();
        text
    }

    /// Waits for the end; (transmitted, received) from ping's summary.
    fn finish(mut self) -> (u32, u32) {
        let text = self.rest();
        let summary =
            text.lines().find(|l| l.contains("packets transmitted")).unwrap_or_else(|| panic!("{text}"));
        // "60 packets transmitted, 59 received, 1.66667% packet loss, time 3050ms"
        let n: Vec<u32> = summary
            .split(", ")
            .take(2)
            .map(|p| p.split(' ').next().unwrap().parse().expect(summary))
            .collect();
        (n[0], n[1])
    }
}

impl Drop for Pinger {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn node_pinging_every_50ms_loses_at_most_two_replies() {
    let (host, node) = dockerhost();
    let mut pings = [Pinger::start(&node, "10.5.106.1", 60), Pinger::start(&node, "2001:db8:5::1", 60)];
    assert_success(&pipework(&host, MKBRIDGE));
    // Otherwise the move happened after the pings, and they prove nothing.
    assert!(pings.iter_mut().all(Pinger::running), "mkbridge outlasted 3 s of pings");
    for (ping, ip) in pings.into_iter().zip(["10.5.106.1", "2001:db8:5::1"]) {
        let (sent, received) = ping.finish();
        assert_eq!(sent, 60, "{ip}");
        assert!(sent - received <= 2, "{ip}: {} of {sent} replies lost", sent - received);
    }
    assert_moved(&host, &node);
}

// ---- runs that change nothing

#[test]
fn second_run_has_nothing_to_do() {
    let (host, node) = dockerhost();
    assert_success(&pipework(&host, MKBRIDGE));
    let (host_before, node_before) = (settled_snapshot(&host), node.snapshot());
    let out = pipework(&host, MKBRIDGE);
    assert_success(&out);
    assert!(stdout(&out).contains("nothing to do"), "{}", stdout(&out));
    assert_unchanged("host", &host_before, || host.snapshot());
    assert_unchanged("node", &node_before, || node.snapshot());
}

#[test]
fn dry_run_prints_the_commands_in_a_safe_order() {
    let (host, node) = dockerhost();
    let lines = dry_run(&host, &node, MKBRIDGE);
    assert!(lines.iter().all(|l| l.starts_with("ip ")), "{lines:#?}");
    let at = |what: &str, test: &dyn Fn(&str) -> bool| {
        let found: Vec<usize> = (0..lines.len()).filter(|&i| test(&lines[i])).collect();
        assert_eq!(found.len(), 1, "one line for {what}: {lines:#?}");
        found[0]
    };
    let mac = host.must_link("eth0").address;
    let add =
        at("the bridge", &|l| l.starts_with("ip link add br0") && l.contains(&mac) && l.contains("1400"));
    let addr4 = at("br0's IPv4", &|l| l.starts_with("ip addr add 10.5.106.1/24") && l.ends_with("dev br0"));
    let addr6 =
        at("br0's IPv6", &|l| l.starts_with("ip addr add 2001:db8:5::1/64") && l.ends_with("dev br0"));
    let up = at("br0 up", &|l| l == "ip link set br0 up");
    let port = at("the port", &|l| l == "ip link set eth0 master br0");
    let routes: Vec<usize> = ROUTES
        .iter()
        .map(|(_, dst, gw, _)| {
            let (key, via) = (format!("route replace {dst} "), format!(" via {gw} "));
            at(dst, &|l| l.contains(&key) && l.contains(&via) && l.ends_with("dev br0"))
        })
        .collect();
    let del4 = at("eth0's IPv4", &|l| l.starts_with("ip addr del 10.5.106.1/24") && l.ends_with("dev eth0"));
    let del6 =
        at("eth0's IPv6", &|l| l.starts_with("ip addr del 2001:db8:5::1/64") && l.ends_with("dev eth0"));
    assert!(lines[routes[2]].contains("table 100"), "{lines:#?}");
    assert_eq!(lines.len(), 11, "{lines:#?}");
    // Addresses on br0 before it comes up, eth0 enslaved once br0 can
    // answer, eth0's addresses deleted last: the host stays reachable.
    let last_route = *routes.iter().max().unwrap();
    assert!(add < addr4.min(addr6) && addr4.max(addr6) < up && up < port, "{lines:#?}");
    assert!(port < *routes.iter().min().unwrap() && last_route < del4.min(del6), "{lines:#?}");
}

#[test]
fn dry_run_output_run_by_hand_converts_the_host() {
    let (host, node) = dockerhost();
    for line in dry_run(&host, &node, MKBRIDGE) {
        host.must(&line.split_whitespace().collect::<Vec<_>>());
    }
    assert_moved(&host, &node);
}

// ---- refusals

/// A refused mkbridge: exit 1, one line naming `bad`, host and node unchanged.
#[track_caller]
fn assert_mkbridge_refused(host: &Netns, node: &Netns, args: &[&str], bad: &str) {
    let out = assert_refused(pipework, host, Some(node), args);
    assert_one_line_naming(args, &out, bad);
}

#[test]
fn refuses_a_missing_interface() {
    let (host, node) = dockerhost();
    assert_mkbridge_refused(&host, &node, &["mkbridge", "br0", "eth9"], "eth9");
}

#[test]
fn refuses_loopback() {
    let (host, node) = dockerhost();
    assert_mkbridge_refused(&host, &node, &["mkbridge", "br0", "lo"], "lo");
}

#[test]
fn refuses_a_bridge_name_that_is_not_a_bridge() {
    let (host, node) = dockerhost();
    host.ip(&["link", "add", "notbr", "type", "veth", "peer", "name", "notbrp"]);
    assert_mkbridge_refused(&host, &node, &["mkbridge", "notbr", "eth0"], "notbr");
}

#[test]
fn refuses_a_port_of_another_bridge() {
    let (host, node) = dockerhost();
    host.add_bridge("br9", None);
    host.ip(&["link", "set", "eth0", "master", "br9"]);
    assert_mkbridge_refused(&host, &node, MKBRIDGE, "br9");
}

// ---- options

#[test]
fn stp_on_with_a_forward_delay() {
    let (host, _node) = dockerhost();
    assert_success(&pipework(&host, &["mkbridge", "--stp", "on", "--forward-delay", "4", "br0", "eth0"]));
    let info = link_info_data(&host, "br0");
    // `ip -d` shows the delay in hundredths of a second.
    assert_eq!((info["stp_state"].as_u64(), info["forward_delay"].as_u64()), (Some(1), Some(400)), "{info}");
    // No ping: with STP on, eth0 takes 2 × 4 s to forward.
    assert_eq!(host.must_link("eth0").master.as_deref(), Some("br0"));
    assert_eq!(host.cidrs("br0", Family::V4), vec![HOST_V4]);
}

// ---- failure injection

/// No plan is this long; reaching it means the injection never stops failing.
#[cfg(feature = "failpoints")]
const MAX_STEPS: usize = 64;

/// Fails `args` before step 1, 2, ... until a run gets through; each failed
/// run must exit 1 naming its step and leave host and node as they were.
/// There must be one failed run per command `--dry-run` prints.
#[cfg(feature = "failpoints")]
fn fail_at_every_step(host: &Netns, node: &Netns, args: &[&str]) {
    let steps = dry_run(host, node, args).len();
    for n in 1..=MAX_STEPS {
        let (host_before, node_before) = (settled_snapshot(host), node.snapshot());
        let out = pipework_env(host, args, &[("PIPEWORK_FAIL_AT", &n.to_string())]);
        if out.status.success() {
            assert_eq!(n, steps + 1, "{steps} commands printed, but {} steps failed", n - 1);
            return;
        }
        let err = stderr(&out);
        eprint!("PIPEWORK_FAIL_AT={n}:\n{err}"); // shown if the test fails
        assert_eq!(out.status.code(), Some(1), "failing at step {n}:\n{err}");
        assert!(err.contains(&format!("step {n}/{steps} ")), "failing at step {n}: no `step {n}/{steps}`");
        assert_unchanged(&format!("host after failing at step {n}"), &host_before, || host.snapshot());
        assert_unchanged(&format!("node after failing at step {n}"), &node_before, || node.snapshot());
        // Restored, and it must not say otherwise: the operator would go repair a sound host.
        assert!(!err.contains("rollback"), "failing at step {n}, a rollback step failed:\n{err}");
    }
    panic!("{args:?} still fails with PIPEWORK_FAIL_AT={MAX_STEPS}");
}

#[cfg(feature = "failpoints")]
#[test]
fn rollback_at_every_step_restores_eth0_and_removes_br0() {
    let (host, node) = dockerhost();
    fail_at_every_step(&host, &node, MKBRIDGE);
    assert_moved(&host, &node);
}

/// Failing with br0 there already must leave br0 in place, as it was.
#[cfg(feature = "failpoints")]
fn rollback_keeps_the_bridge(host: &Netns, node: &Netns) {
    let br0 = host.must_link("br0");
    fail_at_every_step(host, node, MKBRIDGE);
    assert_moved(host, node);
    assert_eq!(host.must_link("br0").ifindex, br0.ifindex, "br0 was made again");
}

#[cfg(feature = "failpoints")]
#[test]
fn rollback_keeps_an_existing_bridge() {
    let (host, node) = dockerhost();
    host.add_bridge("br0", None);
    rollback_keeps_the_bridge(&host, &node);
}

/// br0 as the runbook's script leaves it when it stops after its first two
/// lines (`brctl addbr br0; brctl setfd br0 0`): down, with a MAC of the
/// kernel's choosing.
#[cfg(feature = "failpoints")]
#[test]
fn rollback_keeps_a_half_made_runbook_bridge() {
    let (host, node) = dockerhost();
    host.ip(&["link", "add", "br0", "type", "bridge"]);
    host.ip(&["link", "set", "br0", "type", "bridge", "forward_delay", "0"]);
    rollback_keeps_the_bridge(&host, &node);
}
