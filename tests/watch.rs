//! `pipework watch`: containers keep what pipework made across restarts,
//! labels plumb containers at start, removal leaves nothing, the service
//! catches up after being away, survives its engine's restart, and stops
//! at once on SIGTERM. Each test runs its own watcher in its own "docker
//! host" namespace, with that host's records, looking after the test's own
//! containers only (`--only pwt.watch=<unique>`); results are read back
//! through `ip -j`, `docker inspect` and the record files on disk.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;

const SETTLE: Duration = Duration::from_secs(20);

/// A container of the test's watcher, with `docker run` options `extra`.
fn container(w: &Watcher, prefix: &str, extra: &[&str]) -> Container {
    let label = w.label();
    let mut args = vec!["--label", label.as_str()];
    args.extend_from_slice(extra);
    Container::run_with(prefix, &args)
}

fn id(c: &Container) -> String {
    c.inspect("{{.Id}}")
}

/// Where `host`'s record of container `id` lives.
fn record_file(host: &Netns, id: &str) -> PathBuf {
    PathBuf::from(host.state_dir()).join(format!("docker-{id}.json"))
}

/// Restarted with `docker restart`; its new PID.
fn restart(c: &mut Container) {
    run(&["docker", "restart", "-t", "0", &c.name]);
    c.pid = c.inspect("{{.State.Pid}}").parse().unwrap();
}

/// `eth1` of `c`, once it is there.
fn wait_eth1(c: &Container) -> Link {
    wait_for(&format!("eth1 in {}", c.name), SETTLE, || c.link("eth1"))
}

#[test]
fn a_restarted_container_gets_its_interface_back_with_its_mac_and_address() {
    let host = Netns::new("host");
    host.add_bridge("br0", None);
    let peer = host.add_peer("br0", "10.5.106.1/24");
    let w = Watcher::start(&host, &unique("rs"), &[]);
    let mut c = container(&w, "rs", &[]);
    assert_success(&pipework(&host, &["br0", &c.name, "10.5.106.101/24@10.5.106.1"]));
    let mac = c.must_link("eth1").address;
    assert!(record_file(&host, &id(&c)).exists());

    restart(&mut c);
    let line = w.wait_log(&format!("{}: plumbed eth1", c.name), SETTLE);
    let eth1 = wait_eth1(&c);
    assert_eq!(eth1.address, mac, "same MAC after the restart");
    assert_connected(&host, "br0", &host_side("eth1", c.pid), &c, "eth1", "10.5.106.101/24");
    assert_default_via(&c, Family::V4, "10.5.106.1", "eth1");
    assert!(peer.ping("10.5.106.101"), "the peer cannot reach the restarted container");
    eprintln!("watch: {line}");

    // Another watcher catching up finds it whole and changes nothing.
    let (guest_before, host_before) = (c.snapshot(), host.snapshot());
    let again = Watcher::start(&host, &w.scope, &[]);
    assert!(again.wait_log("caught up", SETTLE).contains("caught up: 1 running container"));
    assert!(!again.log().contains("plumbed"), "{}", again.log());
    assert_unchanged("guest", &guest_before, || c.snapshot());
    assert_unchanged("host", &host_before, || host.snapshot());
}

#[test]
fn a_start_is_replumbed_within_200_ms() {
    let host = Netns::new("host");
    host.add_bridge("br0", None);
    let w = Watcher::start(&host, &unique("lt"), &[]);
    let c = container(&w, "lt", &["--label", "pipework.eth1=br0 10.5.106.102/24"]);
    wait_eth1(&c);
    run(&["docker", "stop", "-t", "0", &c.name]);
    // From the moment `docker start` returns (the engine has sent its event).
    run(&["docker", "start", &c.name]);
    let started = Instant::now();
    let pid: u32 = c.inspect("{{.State.Pid}}").parse().unwrap();
    let ns = format!("/proc/{pid}/ns/net");
    wait_for("eth1 after the start", SETTLE, || {
        let out = quiet(&["nsenter", &format!("--net={ns}"), "ip", "link", "show", "eth1"]);
        out.status.success().then_some(())
    });
    let took = started.elapsed();
    let line = w.wait_log(&format!("{}: plumbed eth1", c.name), SETTLE);
    eprintln!("watch: eth1 seen {took:?} after docker start returned; {line}");
    // The poll itself forks nsenter and ip; under the parallel suite the
    // machine is busy: the bound asserted is generous, the figure reported.
    assert!(took < Duration::from_secs(2), "eth1 came back {took:?} after the start");
}

#[test]
fn a_labelled_container_is_plumbed_at_start() {
    let host = Netns::new("host");
    let w = Watcher::start(&host, &unique("lb"), &[]);
    let c = container(
        &w,
        "lb",
        &[
            "--label",
            "pipework.eth1=br0 10.5.106.101/24@10.5.106.1",
            "--label",
            "pipework.eth2=br1 192.168.4.25/20 02:00:00:00:04:19",
        ],
    );
    wait_eth1(&c);
    w.wait_log(&format!("{}: plumbed eth1, eth2", c.name), SETTLE);
    assert_connected(&host, "br0", &host_side("eth1", c.pid), &c, "eth1", "10.5.106.101/24");
    assert_connected(&host, "br1", &host_side("eth2", c.pid), &c, "eth2", "192.168.4.25/20");
    assert_eq!(c.must_link("eth2").address, "02:00:00:00:04:19");
    assert_default_via(&c, Family::V4, "10.5.106.1", "eth1");
    assert!(record_file(&host, &id(&c)).exists(), "a labelled attach is recorded like any other");
}

#[test]
fn a_malformed_label_is_logged_with_the_container_name_and_the_others_plumbed() {
    let host = Netns::new("host");
    let w = Watcher::start(&host, &unique("ml"), &[]);
    let c = container(
        &w,
        "ml",
        &["--label", "pipework.eth1=br0 10.0.0.300/24", "--label", "pipework.eth2=br0 10.5.106.102/24"],
    );
    let warning = w.wait_log("pipework.eth1=br0 10.0.0.300/24", SETTLE);
    assert!(warning.contains("WARN") && warning.contains(&c.name), "{warning}");
    w.wait_log(&format!("{}: plumbed eth2", c.name), SETTLE);
    assert_eq!(c.cidrs("eth2", Family::V4), ["10.5.106.102/24"]);
    assert!(c.link("eth1").is_none());
    assert!(w.is_running());
}

#[test]
fn a_removed_container_leaves_no_record_and_nothing_on_the_host() {
    let host = Netns::new("host");
    host.add_bridge("br0", None);
    let before = host.snapshot();
    let w = Watcher::start(&host, &unique("rm"), &[]);
    let c = container(&w, "rm", &["--label", "pipework.eth1=br0 10.5.106.103/24"]);
    wait_eth1(&c);
    let record = record_file(&host, &id(&c));
    assert!(record.exists());
    assert_eq!(host.ports("br0").len(), 1);

    run(&["docker", "rm", "-f", &c.name]);
    w.wait_log(&format!("{}: removed", c.name), SETTLE);
    assert!(!record.exists(), "{} is still there", record.display());
    assert_unchanged("host", &before, || host.snapshot());
    assert!(c.netns_litter().is_empty());
}

#[test]
fn catch_up_plumbs_40_containers_restarted_while_watch_was_away() {
    let host = Netns::new("host");
    host.add_bridge("br0", None);
    let scope = unique("cu");
    let label = format!("{SCOPE}={scope}");
    let mut containers: Vec<Container> =
        (0..40).map(|_| Container::run_with("cu", &["--label", &label])).collect();
    let mut macs = Vec::new();
    for (i, c) in containers.iter().enumerate() {
        assert_success(&pipework(&host, &["br0", &c.name, &format!("10.5.0.{}/16", i + 10)]));
        macs.push(c.must_link("eth1").address);
    }
    // One more, removed while watch is away: its record is stale.
    let gone = Container::run_with("cu", &["--label", &label]);
    assert_success(&pipework(&host, &["br0", &gone.name, "10.5.1.1/16"]));
    let gone_record = record_file(&host, &id(&gone));
    run(&["docker", "rm", "-f", &gone.name]);

    let mut argv = vec!["docker", "restart", "-t", "0"];
    argv.extend(containers.iter().map(|c| c.name.as_str()));
    run(&argv);
    for c in &mut containers {
        c.pid = c.inspect("{{.State.Pid}}").parse().unwrap();
        assert!(c.link("eth1").is_none());
    }

    let w = Watcher::start(&host, &scope, &[]);
    let caught_up = w.wait_log("caught up", SETTLE);
    assert!(caught_up.contains("caught up: 40 running containers"), "{caught_up}");
    for (i, c) in containers.iter().enumerate() {
        let eth1 = c.must_link("eth1");
        assert_eq!(eth1.address, macs[i], "{}", c.name);
        assert_eq!(c.cidrs("eth1", Family::V4), [format!("10.5.0.{}/16", i + 10)]);
        assert_eq!(host.must_link(&host_side("eth1", c.pid)).master.as_deref(), Some("br0"));
    }
    assert!(!gone_record.exists(), "the record of a removed container was kept");
    let (rss, hwm) = w.memory_kib();
    eprintln!("watch: {caught_up}; VmRSS {rss} KiB, VmHWM {hwm} KiB with 40 containers");
    // A test build's code alone is several MiB: the 16 MiB target is the
    // release build's, measured by `cargo bench --bench watch`. This bound
    // catches memory that grows with the containers.
    assert!(hwm <= 32 * 1024, "VmHWM {hwm} KiB");
}

#[test]
fn watch_reconnects_after_its_dockerd_restarts() {
    let host = Netns::new("host");
    host.add_bridge("br0", None);
    let mut docker = PrivateDocker::start();
    let docker_host = docker.host();
    let w = Watcher::start(&host, &unique("dr"), &[("DOCKER_HOST", &docker_host)]);
    let label = w.label();
    let run_one = |docker: &PrivateDocker, name: &str, cidr: &str| -> u32 {
        let plumb = format!("pipework.eth1=br0 {cidr}");
        docker.cli(&[
            "run",
            "-d",
            "--net=none",
            "--cap-add=NET_ADMIN",
            "--name",
            name,
            "--label",
            &label,
            "--label",
            &plumb,
            IMAGE,
            "/bin/sleep",
            "1000000",
        ]);
        docker.cli(&["inspect", "-f", "{{.State.Pid}}", name]).trim().parse().unwrap()
    };
    let first = unique("pwdra");
    run_one(&docker, &first, "10.5.106.110/24");
    w.wait_log(&format!("{first}: plumbed eth1"), SETTLE);

    docker.stop();
    w.wait_log("reconnecting", SETTLE);
    // Away, it waits: a few reconnection attempts, no busy loop.
    let ticks = w.cpu_ticks();
    std::thread::sleep(Duration::from_secs(2));
    let spent = w.cpu_ticks() - ticks;
    assert!(spent <= 5, "{spent} ticks of CPU in 2 s while Docker was down");

    docker.restart();
    w.wait_log("reconnected", SETTLE);
    let second = unique("pwdrb");
    let pid = run_one(&docker, &second, "10.5.106.111/24");
    w.wait_log(&format!("{second}: plumbed eth1"), SETTLE);
    let out = quiet(&["nsenter", &format!("--net=/proc/{pid}/ns/net"), "ip", "-j", "addr", "show", "eth1"]);
    assert!(stdout(&out).contains("10.5.106.111"), "{}", stdout(&out));
    assert!(w.is_running());
}

#[test]
fn a_failed_plumb_is_rolled_back_and_the_service_carries_on() {
    let host = Netns::new("host");
    host.add_bridge("br0", None);
    let before = host.snapshot();
    let w = Watcher::start(&host, &unique("rb"), &[("PIPEWORK_FAIL_AT", "3")]);
    let c = container(&w, "rb", &["--label", "pipework.eth1=br0 10.5.106.104/24"]);
    let warning = w.wait_log(&format!("{}: eth1 not plumbed", c.name), SETTLE);
    assert!(warning.contains("injected failure"), "{warning}");
    assert!(c.link("eth1").is_none());
    assert_unchanged("host", &before, || host.snapshot());
    assert!(!record_file(&host, &id(&c)).exists());
    assert!(w.is_running());
}

#[test]
fn a_container_killed_mid_plumb_leaves_no_litter() {
    let host = Netns::new("host");
    host.add_bridge("br0", None);
    let before = host.snapshot();
    // Steps shown, and half a second's pause before step 3 to kill it in.
    let env = [("PIPEWORK_PAUSE_AT", "3"), ("RUST_LOG", "pipework=debug")];
    let w = Watcher::start(&host, &unique("kp"), &env);
    let c = container(&w, "kp", &["--label", "pipework.eth1=br0 10.5.106.105/24"]);
    let record = record_file(&host, &id(&c));
    w.wait_log("step 2/", SETTLE);
    run(&["docker", "rm", "-f", &c.name]);
    w.wait_log(&format!("{}: removed", c.name), SETTLE);
    assert!(!record.exists());
    // The namespace goes once nothing holds it, the veth pair with it.
    assert_unchanged("host", &before, || host.snapshot());
    assert!(c.netns_litter().is_empty());
    // And the service goes on plumbing.
    let next = container(&w, "kp", &["--label", "pipework.eth1=br0 10.5.106.106/24"]);
    wait_eth1(&next);
}

#[test]
fn sigterm_and_sigint_stop_it_within_a_second_and_it_idles_without_cpu() {
    let host = Netns::new("host");
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let mut w = Watcher::start(&host, &unique("st"), &[]);
        let ticks = w.cpu_ticks();
        std::thread::sleep(Duration::from_secs(2));
        let idle = w.cpu_ticks() - ticks;
        assert!(idle <= 1, "{idle} ticks of CPU in 2 s of idling");
        let (took, status) = w.stop(signal);
        assert!(status.success(), "{status}");
        assert!(took < Duration::from_secs(1), "stopped {took:?} after signal {signal}");
    }
}
