//! `pipework watch` and DHCP: a restarted container leases its address
//! again with one agent; a restarted watch adopts the agents still running
//! and replaces those gone; a running watch replaces an agent that dies
//! under its container, with backoff; host clients lease again through
//! their client and hold up their own container only. Each test runs its
//! own watcher in its own "docker host" namespace; dnsmasq's log, /proc and
//! the record files are the oracles.

use std::time::{Duration, Instant};

use crate::common::*;

/// The DHCP agents whose state is in `host`'s state directory, as /proc
/// shows them (`pipework --dhcp-agent <state>`): PID and network namespace.
fn dhcp_agents(host: &Netns) -> Vec<(u32, String)> {
    let prefix = format!("{}/", host.state_dir());
    let mut agents = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let args: Vec<String> =
            cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        if args.get(1).map(String::as_str) == Some("--dhcp-agent")
            && args.get(2).is_some_and(|state| state.starts_with(&prefix))
        {
            let ns = std::fs::read_link(entry.path().join("ns/net")).unwrap_or_default();
            agents.push((pid, ns.display().to_string()));
        }
    }
    agents
}

fn netns_of(pid: u32) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap().display().to_string()
}

/// dnsmasq's DHCPACK lines for `mac`: (address, hostname).
fn acks(server: &DhcpServer, mac: &str) -> Vec<(String, String)> {
    let log = server.log();
    log.lines()
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let at = words.iter().position(|w| w.starts_with("DHCPACK("))?;
            (words.get(at + 2) == Some(&mac))
                .then(|| (words[at + 1].to_string(), words.get(at + 3).copied().unwrap_or("").to_string()))
        })
        .collect()
}

/// A container of its own watcher attached with DHCP word `word` to
/// dnsmasq serving `10.<net>.0.0/24` on `br0` of its own host.
struct Leased {
    host: Netns,
    server: DhcpServer,
    w: Watcher,
    c: Container,
    mac: String,
    cidrs: Vec<String>,
    ip: String,
}

impl Leased {
    fn attach(prefix: &str, net: u8, word: &str) -> Leased {
        let host = Netns::new("host");
        let at = |last: u8| format!("10.{net}.0.{last}");
        let server = DhcpConfig::new("br0", &format!("{}/24", at(1)), &at(50), &at(99)).start_in(&host);
        let w = Watcher::start(&host, &unique(prefix), &[]);
        let c = watched_container(&w, prefix, &[]);
        assert_success(&pipework(&host, &["br0", &c.name, word]));
        let mac = c.must_link("eth1").address;
        let cidrs = c.cidrs("eth1", Family::V4);
        assert_eq!(cidrs.len(), 1, "{cidrs:?}");
        let ip = cidrs[0].split('/').next().unwrap().to_string();
        Leased { host, server, w, c, mac, cidrs, ip }
    }

    /// Restarts the container; the watcher plumbs it again with the same
    /// MAC and address, which dnsmasq acknowledged twice, to the
    /// container's name (not its ID).
    fn restart_and_lease_again(&mut self) {
        restart_container(&mut self.c);
        let c = &self.c;
        self.w.wait_log(&format!("{}: plumbed eth1", c.name), SETTLE);
        assert_eq!(wait_eth1(c).address, self.mac, "another MAC after the restart");
        assert_eq!(c.cidrs("eth1", Family::V4), self.cidrs, "another address after the restart");
        let acked = acks(&self.server, &self.mac);
        assert_eq!(acked, vec![(self.ip.clone(), c.name.clone()); 2], "{}", self.server.log());
    }

    fn record(&self) -> serde_json::Value {
        let file = record_file(&self.host, &container_id(&self.c));
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap()
    }
}

#[test]
fn a_restarted_dhcp_container_leases_its_address_again_with_one_agent() {
    let mut l = Leased::attach("dh", 33, "dhcp:-V acme");
    let [(first_agent, _)] = dhcp_agents(&l.host)[..] else { panic!("{:?}", dhcp_agents(&l.host)) };
    let before = l.server.log().len();

    l.restart_and_lease_again();
    assert_default_via(&l.c, Family::V4, "10.33.0.1", "eth1");
    // The old agent left with the old namespace: not taken for a death.
    assert!(!l.w.log().contains("replacing it"), "{}", l.w.log());
    // With the recorded options, and dnsmasq holds one lease.
    let since = l.server.log()[before..].to_string();
    assert!(since.contains("vendor class: acme") && since.contains("DHCPACK("), "{since}");
    let leases = l.server.leases();
    assert_eq!(leases.len(), 1, "{leases:?}");
    assert_eq!((leases[0].mac.as_str(), leases[0].ip.as_str()), (l.mac.as_str(), l.ip.as_str()));

    // One agent keeps it, in the container's new namespace; the old one is gone.
    let agents = wait_for("one agent, in the new namespace", SETTLE, || {
        let agents = dhcp_agents(&l.host);
        (agents.len() == 1 && agents[0].1 == netns_of(l.c.pid)).then_some(agents)
    });
    assert_ne!(agents[0].0, first_agent);
    // And the record says which.
    let record = l.record();
    let dhcp = &record["interfaces"][0]["dhcp"];
    assert_eq!((&dhcp["client"], &dhcp["options"]), (&"dhcp".into(), &"-V acme".into()), "{record}");
    assert_eq!(dhcp["agent_pid"], agents[0].0, "{record}");
    let state = dhcp["lease_file"].as_str().unwrap();
    assert!(std::fs::read_to_string(state).unwrap().contains(&format!("agent={}", agents[0].0)));

    // The new agent is the service's child: once it exits with its
    // container, the service reaps it (no zombie).
    run(&["docker", "rm", "-f", &l.c.name]);
    l.w.wait_log(&format!("{}: removed", l.c.name), SETTLE);
    wait_for("the agent to be reaped", SETTLE, || {
        let children = format!("/proc/{0}/task/{0}/children", l.w.pid());
        std::fs::read_to_string(children).unwrap().trim().is_empty().then_some(())
    });
    assert!(dhcp_agents(&l.host).is_empty());
}

/// A DHCP container whose agent the watcher started (at a restart of the
/// container), and that agent's PID.
fn leased_by_the_watch(prefix: &str, net: u8) -> (Leased, u32) {
    let mut l = Leased::attach(prefix, net, "dhcp");
    l.restart_and_lease_again();
    let agents = wait_for("one agent, in the new namespace", SETTLE, || {
        let agents = dhcp_agents(&l.host);
        (agents.len() == 1 && agents[0].1 == netns_of(l.c.pid)).then_some(agents)
    });
    (l, agents[0].0)
}

impl Leased {
    /// The watcher stopped as systemd stops it with KillMode=process
    /// (SIGTERM to it alone), `meanwhile` done, and a new watcher started.
    fn restart_watch(&mut self, meanwhile: impl FnOnce(&Leased)) {
        let (_, status) = self.w.stop(libc::SIGTERM);
        assert!(status.success(), "{status}");
        meanwhile(self);
        let scope = self.w.scope.clone();
        self.w = Watcher::start(&self.host, &scope, &[]);
    }

    /// dnsmasq's log from byte `from` on.
    fn server_log_since(&self, from: usize) -> String {
        self.server.log()[from..].to_string()
    }
}

/// Kills process `pid` with `signal` and waits until /proc no longer shows
/// it running (gone, or a zombie of whoever adopted it).
fn kill_and_wait(pid: u32, signal: i32) {
    // SAFETY: kill(2) on the agent this test found by its command line.
    unsafe { libc::kill(pid as i32, signal) };
    wait_for(&format!("process {pid} to end"), SETTLE, || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.rsplit_once(") ").is_none_or(|(_, rest)| rest.starts_with('Z')).then_some(())
    });
}

#[test]
fn a_restarted_watch_adopts_the_dhcp_agent_still_running() {
    let (mut l, agent) = leased_by_the_watch("ad", 35);
    let before = l.server.log().len();

    l.restart_watch(|_| {});
    // The same agent, still in the container's namespace, and no other.
    assert_eq!(dhcp_agents(&l.host), vec![(agent, netns_of(l.c.pid))]);
    assert_eq!(l.c.cidrs("eth1", Family::V4), l.cidrs);
    let since = l.server_log_since(before);
    assert!(!since.contains("DHCPDISCOVER"), "a second client asked:\n{since}");
    assert_eq!(l.record()["interfaces"][0]["dhcp"]["agent_pid"], agent);
    assert!(!l.w.log().contains("plumbed eth1"), "{}", l.w.log());
    // Stopped (SIGTERM: it releases) by a removal seen by the new watcher.
    run(&["docker", "rm", "-f", &l.c.name]);
    l.w.wait_log(&format!("{}: removed", l.c.name), SETTLE);
    wait_for("no agent", SETTLE, || dhcp_agents(&l.host).is_empty().then_some(()));
}

#[test]
fn a_crashed_dhcp_agent_is_replaced_by_one_that_resumes_its_lease() {
    let (mut l, agent) = leased_by_the_watch("kr", 36);
    let before = l.server.log().len();

    // SIGKILL: the agent leaves its state and the address behind.
    l.restart_watch(|_| kill_and_wait(agent, libc::SIGKILL));
    let line = l.w.wait_log("resumes its lease", SETTLE);
    let agents = dhcp_agents(&l.host);
    assert_eq!(agents.len(), 1, "{agents:?}");
    let (new, ns) = &agents[0];
    assert_ne!(*new, agent);
    assert_eq!(*ns, netns_of(l.c.pid), "the new agent is not in the container's namespace");
    assert!(line.contains(&format!("agent {new} ")), "{line}");
    assert_eq!(l.c.cidrs("eth1", Family::V4), l.cidrs);
    // It took no new lease: the server heard nothing.
    let since = l.server_log_since(before);
    assert!(!since.contains("DHCPDISCOVER") && !since.contains("DHCPREQUEST"), "{since}");
    let record = l.record();
    let dhcp = &record["interfaces"][0]["dhcp"];
    assert_eq!(dhcp["agent_pid"], *new, "{record}");
    assert_eq!(dhcp["agent_started"].to_string(), start_time(*new), "{record}");
    assert_success(&pipework(&l.host, &["check", &l.c.name]));

    // A second restart adopts it: still one agent.
    l.restart_watch(|_| {});
    assert_eq!(dhcp_agents(&l.host), vec![(*new, netns_of(l.c.pid))]);
}

#[test]
fn a_dhcp_agent_that_released_its_lease_is_replaced_by_one_that_leases_again() {
    let (mut l, agent) = leased_by_the_watch("kl", 37);
    let before = l.server.log().len();

    // SIGTERM, as a KillMode=control-group stop sends it: the agent
    // releases the lease, takes the address off and removes its state.
    l.restart_watch(|l| {
        kill_and_wait(agent, libc::SIGTERM);
        assert!(l.c.cidrs("eth1", Family::V4).is_empty());
    });
    l.w.wait_log("leased again", SETTLE);
    let agents = dhcp_agents(&l.host);
    assert_eq!(agents.len(), 1, "{agents:?}");
    assert_ne!(agents[0].0, agent);
    assert_eq!(agents[0].1, netns_of(l.c.pid));
    // The same address, from one new exchange.
    assert_eq!(l.c.cidrs("eth1", Family::V4), l.cidrs);
    assert_default_via(&l.c, Family::V4, "10.37.0.1", "eth1");
    let since = l.server_log_since(before);
    assert!(since.contains("DHCPRELEASE("), "{since}");
    assert_eq!(since.matches("DHCPDISCOVER(").count(), 1, "{since}");
    assert_eq!(acks(&l.server, &l.mac).len(), 3, "{}", l.server.log());
    assert_eq!(l.record()["interfaces"][0]["dhcp"]["agent_pid"], agents[0].0);
}

/// The one DHCP agent of `l`'s container other than `old`, once there,
/// and how long it took to come.
fn the_agent_after(l: &Leased, old: u32) -> (u32, Duration) {
    let since = Instant::now();
    let agent =
        wait_for(&format!("a new agent:\n{}", l.w.log()), SETTLE, || match dhcp_agents(&l.host)[..] {
            [(pid, ref ns)] if pid != old && *ns == netns_of(l.c.pid) => Some(pid),
            _ => None,
        });
    (agent, since.elapsed())
}

/// /proc/PID/stat's start time (clock ticks after boot), as the record
/// keeps it beside the PID.
fn start_time(pid: u32) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat.rsplit_once(") ").unwrap().1.split_whitespace().nth(19).unwrap().to_string()
}

/// A running watch replaces an agent killed under a running container
/// (an attach started it: not the watch's child) with one that resumes
/// the lease; a container's stop, where the agent leaves on purpose,
/// starts none.
#[test]
fn a_dhcp_agent_killed_under_a_running_container_is_replaced_at_once() {
    let l = Leased::attach("kw", 38, "dhcp");
    let [(agent, _)] = dhcp_agents(&l.host)[..] else { panic!("{:?}", dhcp_agents(&l.host)) };
    let before = l.server.log().len();

    kill_and_wait(agent, libc::SIGKILL);
    let (new, took) = the_agent_after(&l, agent);
    assert!(took < Duration::from_secs(3), "replaced after {took:?}:\n{}", l.w.log());
    let line = l.w.wait_log("resumes its lease", SETTLE);
    assert!(line.contains(&format!("agent {new} ")), "{line}");
    assert!(l.w.log().contains(&format!("DHCP agent {agent} died: replacing it")), "{}", l.w.log());
    // Still exactly one, a moment later.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(dhcp_agents(&l.host), vec![(new, netns_of(l.c.pid))]);
    // The record names it, PID and start time, and so does its state.
    let record = l.record();
    let dhcp = &record["interfaces"][0]["dhcp"];
    assert_eq!(dhcp["agent_pid"], new, "{record}");
    assert_eq!(dhcp["agent_started"].to_string(), start_time(new), "{record}");
    let state = std::fs::read_to_string(dhcp["lease_file"].as_str().unwrap()).unwrap();
    assert!(state.contains(&format!("agent={new}\n")), "{state}");
    // No new exchange: the lease, the address and the route stand.
    let since = l.server_log_since(before);
    assert!(!since.contains("DHCPDISCOVER") && !since.contains("DHCPREQUEST"), "{since}");
    assert_eq!(l.c.cidrs("eth1", Family::V4), l.cidrs);
    assert_default_via(&l.c, Family::V4, "10.38.0.1", "eth1");
    assert!(!l.w.log().contains("plumbed eth1"), "{}", l.w.log());
    assert_success(&pipework(&l.host, &["check", &l.c.name]));

    // A stop: the agent releases the lease and leaves; none replaces it.
    run(&["docker", "stop", "-t", "1", &l.c.name]);
    none_replaces(&l);
    assert!(l.server_log_since(before).contains("DHCPRELEASE("), "{}", l.server.log());
}

/// An attach by hand into a container that ran before the watch started
/// (its catch-up had nothing to do for it): the agent is watched from the
/// writing of its record on, and replaced when it dies.
#[test]
fn an_agent_attached_by_hand_while_watch_runs_is_watched_too() {
    let host = Netns::new("host");
    let server = DhcpConfig::new("br0", "10.40.0.1/24", "10.40.0.50", "10.40.0.99").start_in(&host);
    let scope = unique("kh");
    let c = Container::run_with("kh", &["--label", &format!("{SCOPE}={scope}")]);
    let w = Watcher::start(&host, &scope, &[]);
    assert!(w.log().contains("caught up: 0 running containers"), "{}", w.log());
    assert_success(&pipework(&host, &["br0", &c.name, "dhcp"]));
    let cidrs = c.cidrs("eth1", Family::V4);
    let [(agent, _)] = dhcp_agents(&host)[..] else { panic!("{:?}", dhcp_agents(&host)) };
    let before = server.log().len();

    kill_and_wait(agent, libc::SIGKILL);
    let line = w.wait_log("resumes its lease", SETTLE);
    let agents = dhcp_agents(&host);
    assert_eq!(agents.len(), 1, "{agents:?}");
    assert_ne!(agents[0].0, agent);
    assert_eq!(agents[0].1, netns_of(c.pid));
    assert!(line.contains(&format!("agent {} ", agents[0].0)), "{line}");
    assert_eq!(c.cidrs("eth1", Family::V4), cidrs);
    let since = server.log()[before..].to_string();
    assert!(!since.contains("DHCPDISCOVER") && !since.contains("DHCPREQUEST"), "{since}");
}

/// The container's agent leaves, and for two seconds none replaces it.
fn none_replaces(l: &Leased) {
    let replacing = l.w.log().matches("replacing it").count();
    wait_for("the agent to leave", SETTLE, || dhcp_agents(&l.host).is_empty().then_some(()));
    std::thread::sleep(Duration::from_secs(2));
    assert!(dhcp_agents(&l.host).is_empty(), "{:?}\n{}", dhcp_agents(&l.host), l.w.log());
    assert_eq!(l.w.log().matches("replacing it").count(), replacing, "{}", l.w.log());
}

/// A replacement that dies at once is replaced again after a wait that
/// doubles (1 s, 2 s), said in the log; a `detach`, where the agent
/// leaves on purpose, starts none.
#[test]
fn a_dhcp_agent_that_keeps_dying_is_replaced_with_backoff() {
    let l = Leased::attach("kb", 39, "dhcp");
    let [(mut agent, _)] = dhcp_agents(&l.host)[..] else { panic!("{:?}", dhcp_agents(&l.host)) };
    let mut took = Vec::new();
    for _ in 0..3 {
        kill_and_wait(agent, libc::SIGKILL);
        let (new, after) = the_agent_after(&l, agent);
        took.push(after);
        agent = new;
    }
    let log = l.w.log();
    assert!(took[0] < Duration::from_secs(1), "{took:?}\n{log}");
    assert!(took[1] >= Duration::from_millis(900) && took[1] < Duration::from_secs(2), "{took:?}\n{log}");
    assert!(took[2] >= Duration::from_millis(1900) && took[2] < Duration::from_secs(3), "{took:?}\n{log}");
    assert!(log.contains("is gone again within 30s of its last replacement: replacing it in 1s"), "{log}");
    assert!(log.contains("replacing it in 2s"), "{log}");
    assert_eq!(l.record()["interfaces"][0]["dhcp"]["agent_pid"], agent);
    assert_eq!(l.c.cidrs("eth1", Family::V4), l.cidrs);

    assert_success(&pipework(&l.host, &["detach", &l.c.name]));
    none_replaces(&l);
    assert!(l.c.link("eth1").is_none());
}

#[test]
fn a_restarted_host_client_container_leases_again_through_its_client() {
    let mut l = Leased::attach("hc", 34, "udhcpc");
    l.restart_and_lease_again();
    assert_eq!(l.record()["interfaces"][0]["dhcp"]["client"], "udhcpc");
    // As after an attach without -f, no client stays behind.
    let left = quiet(&["pgrep", "-f", &format!("udhcpc.*{}", l.c.name)]);
    assert!(stdout(&left).trim().is_empty(), "udhcpc left running: {}", stdout(&left));
}

/// A label's words are split as a shell splits them: a quoted option with
/// spaces reaches the DHCP client as its words (dnsmasq sees the vendor
/// class it sets). Labels take the native client only.
#[test]
fn a_quoted_dhcp_option_in_a_label_reaches_the_client() {
    let host = Netns::new("host");
    let server = DhcpConfig::new("br0", "10.35.0.1/24", "10.35.0.50", "10.35.0.99").start_in(&host);
    let w = Watcher::allowing(&host, &unique("qo"), &["br0"], &[]);
    let c = watched_container(&w, "qo", &["--label", "pipework.eth1=br0 'dhcp:-V quoted -t 3'"]);
    w.wait_log(&format!("{}: plumbed eth1", c.name), SETTLE);
    let [cidr] = &c.cidrs("eth1", Family::V4)[..] else { panic!("{}", w.log()) };
    assert!(cidr.starts_with("10.35.0."), "{cidr}");
    let log = server.log();
    assert!(log.contains("vendor class: quoted") && log.contains("DHCPACK("), "{log}");
}

/// A host DHCP client waiting for a server that does not answer holds up
/// its own container only: the service plumbs the next one meanwhile.
#[test]
fn a_waiting_host_client_holds_up_its_container_only() {
    let host = Netns::new("host");
    let w = Watcher::allowing(&host, &unique("hw"), &["br0"], &[]);
    let waiting = a_recorded_client_waiting(&host, &w, "hw", 36);
    until_its_client_runs(&waiting, &w);
    let next = watched_container(&w, "hw", &["--label", "pipework.eth1=br0 10.5.106.107/24"]);
    let started = Instant::now();
    w.wait_log(&format!("{}: plumbed eth1", next.name), SETTLE);
    let took = started.elapsed();
    assert!(!w.log().contains(&format!("{}: eth1 not plumbed", waiting.name)), "{}", w.log());
    assert!(took < Duration::from_secs(5), "plumbed {took:?} after its start, behind the waiting client");
    w.wait_log(&format!("{}: eth1 not plumbed", waiting.name), Duration::from_secs(30));
}

/// watch raises its own open-files soft limit (a pidfd per DHCP agent);
/// the DHCP client it starts gets the limit the service started with: a
/// program that closes every fd up to its limit, or uses select(),
/// expects that one.
#[test]
fn a_host_client_gets_the_open_files_limit_the_service_started_with() {
    let host = Netns::new("host");
    let w = Watcher::start_with_nofile(&host, &unique("fl"), 1024, 4096);
    let c = a_recorded_client_waiting(&host, &w, "fl", 41);
    until_its_client_runs(&c, &w);
    let found = quiet(&["pgrep", "-f", &format!("udhcpc.*{}", c.name)]);
    let client: u32 =
        stdout(&found).lines().next().and_then(|p| p.trim().parse().ok()).expect("udhcpc's PID");
    assert_eq!(nofile(w.pid()), (4096, 4096), "the service's own");
    assert_eq!(nofile(client), (1024, 4096), "the client's");
}

/// A process's open-files limits (soft, hard), from /proc/PID/limits.
fn nofile(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits.lines().find(|l| l.starts_with("Max open files")).expect("Max open files");
    let words: Vec<u64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    (words[0], words[1])
}

/// A container of `w` whose record has udhcpc (`udhcpc:-n`, leased by hand
/// while dnsmasq served on `host`'s br0), restarted once the server is gone:
/// its client, started again by watch, waits (3 discovers 3 s apart, then
/// it gives up). Records start host clients; labels never do.
fn a_recorded_client_waiting(host: &Netns, w: &Watcher, prefix: &str, net: u8) -> Container {
    let at = |last: u8| format!("10.{net}.0.{last}");
    let server = DhcpConfig::new("br0", &format!("{}/24", at(1)), &at(50), &at(99)).start_in(host);
    let mut c = watched_container(w, prefix, &[]);
    assert_success(&pipework(host, &["br0", &c.name, "udhcpc:-n"]));
    drop(server);
    restart_container(&mut c);
    c
}

/// Until `c`'s DHCP client runs in it (pgrep names the container).
fn until_its_client_runs(c: &Container, w: &Watcher) {
    wait_for(&format!("udhcpc to run:\n{}", w.log()), SETTLE, || {
        let found = quiet(&["pgrep", "-f", &format!("udhcpc.*{}", c.name)]);
        found.status.success().then_some(())
    });
}

/// An operator's DHCP attach with `word` (a record, not a label), its
/// server gone since: a container of scope `scope` in `host`, whose record
/// the service makes again, once it is restarted, with a client that waits
/// in vain (udhcpc without -n tries for ever). The service is not running
/// yet.
fn unanswered(word: &str, prefix: &str, net: u8, scope: &str, timeout: &str) -> (Netns, Container) {
    let host = Netns::new("host");
    let at = |last: u8| format!("10.{net}.0.{last}");
    let server = DhcpConfig::new("br0", &format!("{}/24", at(1)), &at(50), &at(99)).start_in(&host);
    let c = Container::run_with(prefix, &["--label", &format!("{SCOPE}={scope}")]);
    assert_success(&pipework(&host, &["--timeout", timeout, "br0", &c.name, word]));
    drop(server);
    (host, c)
}

fn client_left(c: &Container) -> String {
    stdout(&quiet(&["pgrep", "-f", &format!("udhcpc.*{}", c.name)])).trim().to_string()
}

/// A recorded host client whose server never answers is stopped at its
/// attach's `--timeout`: the service's catch-up ends, that job rolled back.
#[test]
fn a_host_client_that_gets_no_answer_is_stopped_at_its_timeout() {
    let scope = unique("na");
    let (host, mut c) = unanswered("udhcpc", "na", 37, &scope, "2");
    restart_container(&mut c);
    // Out of the events the service asks for again (a second past): its
    // catch-up alone makes it.
    std::thread::sleep(Duration::from_secs(2));
    let w = Watcher::spawn(&host, &scope, &[]);
    w.wait_log("caught up", Duration::from_secs(30));
    let log = w.log();
    assert!(
        log.contains(&format!("{}: eth1 not plumbed", c.name))
            && log.contains("udhcpc did not finish within 2 s: stopped"),
        "{log}"
    );
    assert_eq!(client_left(&c), "", "udhcpc left running");
    assert!(c.link("eth1").is_none(), "{log}");
    assert!(host.link(&host_side("eth1", c.pid)).is_none(), "{log}");
}

/// SIGTERM ends the service within a second while a host client it
/// started waits for a server: the client is killed and its job rolled
/// back (the record, the operator's, stays).
#[test]
fn sigterm_ends_watch_at_once_while_a_host_client_waits() {
    let scope = unique("st");
    let (host, mut c) = unanswered("udhcpc", "st", 38, &scope, "60");
    let w = Watcher::start(&host, &scope, &[]);
    restart_container(&mut c);
    until_its_client_runs(&c, &w);
    stops_at_once_rolling_back(w, &host, &c, "udhcpc: cut short");
    assert_eq!(client_left(&c), "", "udhcpc left running");
}

/// The same for the native client's lease: SIGTERM cuts its wait short.
#[test]
fn sigterm_ends_watch_at_once_while_a_lease_is_waited_for() {
    let scope = unique("sl");
    let (host, mut c) = unanswered("dhcp", "sl", 39, &scope, "60");
    let w = Watcher::start(&host, &scope, &[]);
    restart_container(&mut c);
    // eth1 is made before the lease is asked for, which takes 60 s here.
    wait_eth1(&c);
    std::thread::sleep(Duration::from_millis(500));
    stops_at_once_rolling_back(w, &host, &c, "DHCP: cut short");
}

/// SIGTERM to `w` while it plumbs `c`: it exits 0 within 1.5 s, having
/// logged `c`'s eth1 as not plumbed (`why`) and rolled it back; the
/// record stays.
#[track_caller]
fn stops_at_once_rolling_back(mut w: Watcher, host: &Netns, c: &Container, why: &str) {
    let (took, status) = w.stop(libc::SIGTERM);
    let log = w.log();
    assert!(took < Duration::from_millis(1500), "{took:?}\n{log}");
    assert!(status.success(), "{status:?}\n{log}");
    assert!(log.contains(&format!("{}: eth1 not plumbed", c.name)) && log.contains(why), "{log}");
    assert!(c.link("eth1").is_none(), "{log}");
    assert!(host.link(&host_side("eth1", c.pid)).is_none(), "{log}");
    assert!(record_file(host, &container_id(c)).exists());
}
