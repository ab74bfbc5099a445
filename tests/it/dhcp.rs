//! DHCP: `dhcp[:OPTS]` (native client and its agent) and the host clients,
//! against a real dnsmasq on the test's bridge; dnsmasq's log is the oracle.

use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::common::*;

/// dnsmasq serving `br0` (10.33.0.1/24) in the test's "docker host".
fn dnsmasq() -> DhcpConfig {
    DhcpConfig::new("br0", "10.33.0.1/24", "10.33.0.50", "10.33.0.99")
}

/// The PID of the one agent whose state is in `state`.
fn agent_pid(state: &TempDir) -> u32 {
    let dir = std::path::Path::new(state.arg()).join("dhcp");
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()).collect();
    let file = files.iter().find(|e| e.path().extension().is_none()).expect("an agent state file");
    let text = std::fs::read_to_string(file.path()).unwrap();
    text.lines().find_map(|l| l.strip_prefix("agent=")).expect("agent=").parse().unwrap()
}

/// The agents' files (state, log, resolv.conf) in `state`: the records of
/// the attachments are beside them.
fn dhcp_files(state: &TempDir) -> Vec<String> {
    let dir = std::path::Path::new(state.arg()).join("dhcp");
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            entries.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into()).collect()
        }
        Err(_) => Vec::new(),
    }
}

fn alive(pid: u32) -> bool {
    // Signal 0 tests for existence; a zombie has no /proc/<pid>/ns.
    std::path::Path::new(&format!("/proc/{pid}/ns/net")).exists()
}

fn v4(ns: &dyn Ns, dev: &str) -> Vec<Addr> {
    ns.addrs(dev).into_iter().filter(|a| a.family == "inet").collect()
}

#[test]
fn lease_configures_address_routes_and_mtu_and_the_agent_dies_with_the_container() {
    let host = Netns::new("host");
    let server = dnsmasq()
        .mtu(1400)
        .router("10.33.0.9")
        .route("192.168.50.0/24", "10.33.0.254")
        .route("0.0.0.0/0", "10.33.0.1")
        .start_in(&host);
    let ctr = Container::run("ctr");
    let state = TempDir::new("state");
    let started = Instant::now();
    let out = pipework_in(&host, &state, &["br0", &ctr.name, "dhcp"]);
    let took = started.elapsed();
    assert_success(&out);
    eprintln!("native DHCP attach, end to end: {} ms", took.as_millis());

    let addrs = v4(&ctr, "eth1");
    assert_eq!(addrs.len(), 1, "{addrs:?}");
    assert_eq!((addrs[0].prefixlen, addrs[0].broadcast.as_deref()), (24, Some("10.33.0.255")));
    // The hostname went out as the original's `-x hostname:<guest>`.
    let ack = server.wait_log(&["DHCPACK(br0)", &ctr.name], Duration::from_secs(1));
    assert!(ack.contains(&addrs[0].local), "{ack}");
    assert_eq!(ctr.must_link("eth1").mtu, 1400);
    // Option 121 wins over option 3 (RFC 3442).
    assert_default_via(&ctr, Family::V4, "10.33.0.1", "eth1");
    let routes = ctr.routes(Family::V4);
    assert!(
        routes.iter().any(|r| r.dst == "192.168.50.0/24" && r.gateway.as_deref() == Some("10.33.0.254")),
        "{routes:?}"
    );

    let agent = agent_pid(&state);
    assert!(alive(agent));
    run(&["docker", "rm", "-f", &ctr.name]);
    wait_for("the agent to exit with its guest", Duration::from_secs(5), || (!alive(agent)).then_some(()));
    wait_for("its state to go", Duration::from_secs(1), || dhcp_files(&state).is_empty().then_some(()));
}

#[test]
fn sigterm_releases_the_lease() {
    let host = Netns::new("host");
    let server = dnsmasq().start_in(&host);
    let guest = Netns::new("guest");
    let state = TempDir::new("state");
    assert_success(&pipework_in(
        &host,
        &state,
        &["br0", &format!("netns:{}", guest.name), "dhcp:-V acme -x hostname:other"],
    ));
    let ip = v4(&guest, "eth1")[0].local.clone();
    server.wait_log(&["vendor class: acme"], Duration::from_secs(1));
    server.wait_log(&["client provides name: other"], Duration::from_secs(1));
    let agent = agent_pid(&state);
    run(&["kill", "-TERM", &agent.to_string()]);
    server.wait_log(&["DHCPRELEASE(br0)", &ip], Duration::from_secs(5));
    wait_for("the agent to exit", Duration::from_secs(5), || (!alive(agent)).then_some(()));
    assert!(v4(&guest, "eth1").is_empty(), "a released address stays in use");
}

/// The agent starts with the signals of a normal process (none ignored
/// but SIGPIPE, which every Rust program ignores), blocking only SIGTERM,
/// which it reads through a signalfd: not with the SIGHUP, SIGINT and
/// SIGQUIT the attach's run held while it started it.
#[test]
fn the_agent_blocks_sigterm_alone() {
    let host = Netns::new("host");
    let _server = dnsmasq().start_in(&host);
    let guest = Netns::new("guest");
    let state = TempDir::new("state");
    assert_success(&pipework_in(&host, &state, &["br0", &format!("netns:{}", guest.name), "dhcp"]));
    let status = std::fs::read_to_string(format!("/proc/{}/status", agent_pid(&state))).unwrap();
    let mask = |name: &str| signal_mask(&status, name);
    let bit = |signal: i32| 1u64 << (signal - 1);
    assert_eq!(mask("SigBlk:"), bit(libc::SIGTERM), "{status}");
    assert_eq!(mask("SigIgn:") & 0x7fff_ffff, bit(libc::SIGPIPE), "{status}");
}

/// A signal mask of /proc/PID/status (`SigBlk:`, `SigIgn:`), as a number.
fn signal_mask(status: &str, name: &str) -> u64 {
    let line = status.lines().find_map(|l| l.strip_prefix(name)).unwrap_or_else(|| panic!("{status}"));
    u64::from_str_radix(line.trim(), 16).unwrap()
}

/// `pipework show --json GUEST`: the one recorded interface.
fn shown(host: &Netns, state: &TempDir, guest: &str) -> serde_json::Value {
    let out = pipework_in(host, state, &["show", "--json", guest]);
    assert_success(&out);
    let all: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(all.as_array().map(Vec::len), Some(1), "{all}");
    all[0].clone()
}

#[test]
fn the_record_holds_the_agent_and_detach_releases_the_lease() {
    let host = Netns::new("host");
    let server = dnsmasq().option("option:dns-server,10.33.0.53").start_in(&host);
    let guest = Netns::new("guest");
    let state = TempDir::new("state");
    let label = format!("netns:{}", guest.name);
    assert_success(&pipework_in(&host, &state, &["br0", &label, "dhcp"]));
    let ip = v4(&guest, "eth1")[0].local.clone();
    let agent = agent_pid(&state);
    // show: the mode, the agent, the lease's address and DNS server.
    let item = shown(&host, &state, &label);
    assert_eq!(item["dhcp"]["client"], "dhcp", "{item}");
    assert_eq!(item["dhcp"]["agent_pid"], agent, "{item}");
    assert_eq!(item["lease"], format!("{ip}/24"), "{item}");
    assert_eq!(item["dns"], serde_json::json!(["10.33.0.53"]), "{item}");
    assert_success(&pipework_in(&host, &state, &["check", &label]));
    // detach: the agent releases the lease and goes, with its files.
    assert_success(&pipework_in(&host, &state, &["detach", &label]));
    server.wait_log(&["DHCPRELEASE(br0)", &ip], Duration::from_secs(5));
    wait_for("the agent to exit", Duration::from_secs(5), || (!alive(agent)).then_some(()));
    assert!(dhcp_files(&state).is_empty(), "{:?}", dhcp_files(&state));
    assert!(guest.link("eth1").is_none(), "eth1 left in the guest");
    let out = pipework_in(&host, &state, &["show", &label]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
}

#[test]
fn check_reports_a_dead_agent() {
    let host = Netns::new("host");
    let _server = dnsmasq().start_in(&host);
    let guest = Netns::new("guest");
    let state = TempDir::new("state");
    let label = format!("netns:{}", guest.name);
    assert_success(&pipework_in(&host, &state, &["br0", &label, "dhcp"]));
    let agent = agent_pid(&state);
    run(&["kill", "-KILL", &agent.to_string()]);
    wait_for("the agent to die", Duration::from_secs(5), || (!alive(agent)).then_some(()));
    let out = pipework_in(&host, &state, &["check", &label]);
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(stdout(&out), format!("DHCP agent {agent} of eth1 of {label} is not running\n"));
    // detach still goes: nothing to stop, the agent's files removed.
    assert_success(&pipework_in(&host, &state, &["detach", &label]));
    assert!(dhcp_files(&state).is_empty(), "{:?}", dhcp_files(&state));
}

#[test]
fn no_server_fails_after_the_timeout_and_leaves_nothing() {
    let host = Netns::new("host");
    host.add_bridge("br0", None);
    let ctr = Container::run("ctr");
    let state = TempDir::new("state");
    let started = Instant::now();
    let out = assert_refused(
        |h, a| pipework_in(h, &state, a),
        &host,
        Some(&ctr),
        &["--timeout", "1", "br0", &ctr.name, "dhcp"],
    );
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    let err = stderr(&out);
    assert!(err.contains("no DHCP offer on eth1 within 1 s"), "{err}");
    assert!(dhcp_files(&state).is_empty(), "{:?}", dhcp_files(&state));
}

#[test]
fn unsupported_options_are_refused_by_name() {
    let host = Netns::new("host");
    host.add_bridge("br0", None);
    let ctr = Container::run("ctr");
    let out = assert_refused(pipework, &host, Some(&ctr), &["br0", &ctr.name, "dhcp:-s /bin/script"]);
    assert_eq!(
        stderr(&out),
        "pipework: DHCP option -s is not supported by the native client \
         (it takes -x, -V, -r, -t, -T, -O, -H, -B, -C, -f, -q, -n, -R)\n"
    );
}

#[test]
fn dry_run_shows_the_dhcp_step() {
    let host = Netns::new("host");
    host.add_bridge("br0", None);
    let ctr = Container::run("ctr");
    let out = pipework(&host, &["--dry-run", "br0", &ctr.name, "dhcp"]);
    assert_success(&out);
    let text = stdout(&out);
    assert!(text.contains(&format!("dhcp eth1 hostname {}", ctr.name)), "{text}");
    assert!(text.contains("ip link set eth1 up"), "{text}");
}

/// Two-minute leases (dnsmasq's shortest): T1 after a minute.
#[test]
fn renews_at_t1_and_replaces_a_refused_lease() {
    let host = Netns::new("host");
    let server = dnsmasq().lease("2m").start_in(&host);
    let (kept, lost) = (Netns::new("kept"), Netns::new("lost"));
    let state = TempDir::new("state");
    for guest in [&kept, &lost] {
        let args = ["-i", "eth1", "br0", &format!("netns:{}", guest.name), "dhcp"];
        let out = pipework_in(&host, &state, &args);
        assert_success(&out);
    }
    let kept_ip = v4(&kept, "eth1")[0].local.clone();
    let lost_ip = v4(&lost, "eth1")[0].local.clone();
    let kept_mac = kept.must_link("eth1").address;
    // A server whose range no longer holds the lost guest's address: its
    // renewal is refused (DHCPNAK); the kept guest's address is its own.
    drop(server);
    let config = DhcpConfig::new("br0", "10.33.0.2/24", "10.33.0.100", "10.33.0.149");
    let server = config.lease("2m").host(&kept_mac, &kept_ip).start_in(&host);
    wait_for("a renewal at T1", Duration::from_secs(90), || {
        (server.log().contains("DHCPACK(br0)")).then_some(())
    });
    assert_eq!(v4(&kept, "eth1")[0].local, kept_ip);
    // Refused: the address goes, and the agent asks again (DISCOVER) for
    // one the new server has.
    server.wait_log(&["DHCPNAK(br0)", &lost_ip], Duration::from_secs(30));
    let new_ip = server.wait_ack(&lost.name, Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(5);
    while v4(&lost, "eth1").iter().map(|a| a.local.clone()).collect::<Vec<_>>() != [new_ip.clone()] {
        assert!(Instant::now() < deadline, "{lost_ip} not replaced by {new_ip}: {:?}", v4(&lost, "eth1"));
        sleep(Duration::from_millis(50));
    }
}

/// The machine's /etc/resolv.conf, byte for byte, and when it last changed.
fn machine_resolv_conf() -> (Vec<u8>, std::time::SystemTime) {
    let path = "/etc/resolv.conf";
    (std::fs::read(path).unwrap(), std::fs::metadata(path).unwrap().modified().unwrap())
}

/// The resolv.conf files pipework gave the host clients, under `state`.
fn guest_resolv_confs(state: &TempDir) -> Vec<String> {
    let dir = std::path::Path::new(state.arg()).join("dhcp");
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut texts: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".resolv.conf"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    texts.sort();
    texts
}

#[test]
fn host_clients_run_in_the_guest_and_keep_off_the_machines_resolv_conf() {
    let host = Netns::new("host");
    // dnsmasq serves no DNS here (--port=0), so option 6 is set by hand.
    let server = dnsmasq().option("option:dns-server,10.33.0.53").start_in(&host);
    let before = machine_resolv_conf();
    for client in ["udhcpc", "dhclient", "dhcpcd"] {
        let ctr = Container::run("ctr");
        let state = TempDir::new("state");
        let out = pipework_in(&host, &state, &["br0", &ctr.name, client]);
        assert_success(&out);
        assert_eq!(v4(&ctr, "eth1").len(), 1, "{client}: {:?}", ctr.addrs("eth1"));
        // dhclient sends the machine's name, as the original's did.
        let mac = ctr.must_link("eth1").address;
        server.wait_log(&["DHCPACK(br0)", &mac], Duration::from_secs(1));
        // Without -f no client stays behind (the original's dhclient kill).
        let left = quiet(&["pgrep", "-f", &format!("{client}.*{}", ctr.name)]);
        assert!(stdout(&left).trim().is_empty(), "{client} left running: {}", stdout(&left));
        let _ = std::fs::remove_file(format!("/etc/dhclient/dhclient.{}.leases", ctr.name));
        // The client's script wrote the lease's DNS server into the guest's
        // own file (bound over /etc/resolv.conf for it alone), and the
        // machine's file is as it was: the original's scripts rewrote it.
        let files = guest_resolv_confs(&state);
        assert_eq!(files.len(), 1, "{client}: {files:?}");
        assert!(files[0].contains("nameserver 10.33.0.53"), "{client}: {:?}", files[0]);
        assert!(machine_resolv_conf() == before, "{client} changed the machine's /etc/resolv.conf");
        // show names the client and the DNS server its lease gave.
        let item = shown(&host, &state, &ctr.name);
        assert_eq!(
            (&item["dhcp"]["client"], &item["dns"][0]),
            (&client.into(), &"10.33.0.53".into()),
            "{item}"
        );
    }
}

#[test]
fn a_missing_host_client_is_refused_as_the_original_did() {
    let host = Netns::new("host");
    host.add_bridge("br0", None);
    let ctr = Container::run("ctr");
    // pipework finds programs only where PIPEWORK_TEST_SBIN says: no udhcpc.
    let path = path_with(&["ip"]);
    for (word, program) in [("udhcpc", "udhcpc"), ("dhclient-f", "dhclient"), ("dhcpcd", "dhcpcd")] {
        let out = assert_refused(
            |h, a| pipework_with_path(h, path.arg(), a),
            &host,
            Some(&ctr),
            &["br0", &ctr.name, word],
        );
        assert_eq!(stderr(&out), format!("You asked for DHCP client {program}, but I can't find it.\n"));
    }
}

#[test]
fn a_failing_host_client_passes_its_status_on_and_leaves_nothing() {
    let host = Netns::new("host");
    host.add_bridge("br0", None);
    let ctr = Container::run("ctr");
    let state = TempDir::new("state");
    // No server: udhcpc -n gives up after one try and exits 1.
    let out = assert_refused(
        |h, a| pipework_in(h, &state, a),
        &host,
        Some(&ctr),
        &["br0", &ctr.name, "udhcpc:-n -t 1 -T 1"],
    );
    let err = stderr(&out);
    assert!(err.ends_with("udhcpc exited with status 1\n"), "{err}");
    assert!(guest_resolv_confs(&state).is_empty(), "{:?}", state.names());
}

/// A host client whose server never answers is stopped at the attach's
/// `--timeout` (udhcpc without -n would try for ever), and the run rolls
/// back with no client left running.
#[test]
fn a_host_client_with_no_server_is_stopped_at_the_timeout() {
    let host = Netns::new("host");
    host.add_bridge("br0", None);
    let ctr = Container::run("ctr");
    let state = TempDir::new("state");
    let began = Instant::now();
    let out = assert_refused(
        |h, a| pipework_in(h, &state, a),
        &host,
        Some(&ctr),
        &["--timeout", "2", "br0", &ctr.name, "udhcpc"],
    );
    let err = stderr(&out);
    assert!(err.ends_with("udhcpc did not finish within 2 s: stopped\n"), "{err}");
    assert!(began.elapsed() < Duration::from_secs(30), "{:?}", began.elapsed());
    let left = quiet(&["pgrep", "-f", &format!("udhcpc.*{}", ctr.name)]);
    assert!(stdout(&left).trim().is_empty(), "udhcpc left running: {}", stdout(&left));
    assert!(guest_resolv_confs(&state).is_empty(), "{:?}", state.names());
}

/// A host client starts as a shell starts a program: no signal blocked
/// (the run holds SIGINT, SIGTERM, SIGHUP and SIGQUIT meanwhile) and none
/// ignored (pipework ignores SIGPIPE). The client, a script here, reads its
/// own /proc status while it runs.
#[test]
fn a_host_client_starts_with_no_signal_blocked_or_ignored() {
    let host = Netns::new("host");
    host.add_bridge("br0", None);
    let ctr = Container::run("ctr");
    let path = path_with(&["ip"]);
    let seen = path.join("seen");
    let client = path.join("udhcpc");
    // Read by the shell itself: while it waits for a child, it blocks
    // signals of its own.
    let script = format!(
        "#!/bin/sh\nwhile read -r k v; do case $k in Sig*) echo \"$k $v\";; esac; done </proc/$$/status >{seen}\n"
    );
    std::fs::write(&client, script).unwrap();
    std::fs::set_permissions(&client, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    assert_success(&pipework_with_path(&host, path.arg(), &["br0", &ctr.name, "udhcpc"]));
    let seen = std::fs::read_to_string(&seen).expect("the client's signals");
    let mask = |name: &str| signal_mask(&seen, name);
    assert_eq!(mask("SigBlk:"), 0, "{seen}");
    // Signals 1 to 31 (the C library keeps the real-time ones it uses).
    assert_eq!(mask("SigIgn:") & 0x7fff_ffff, 0, "{seen}");
}

/// Ctrl-C during an attach whose host client waits reaches the client (its
/// signals are a normal process's), which ends; the run rolls back and
/// pipework ends by the interrupt, leaving nothing.
#[test]
fn ctrl_c_while_a_host_client_waits_ends_the_attach_and_leaves_nothing() {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let host = Netns::new("host");
    host.add_bridge("br0", None);
    let ctr = Container::run("ctr");
    let state = TempDir::new("state");
    let (host_before, ctr_before) = (host.snapshot(), ctr.snapshot());
    // A terminal's foreground group: pipework and what it starts.
    let mut attach = std::process::Command::new("ip")
        .args(["netns", "exec", &host.name, PIPEWORK, "--timeout", "60", "br0", &ctr.name, "udhcpc"])
        .env("PIPEWORK_STATE_DIR", state.arg())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    wait_for("udhcpc to run", Duration::from_secs(20), || {
        quiet(&["pgrep", "-f", &format!("udhcpc.*{}", ctr.name)]).status.success().then_some(())
    });
    let began = Instant::now();
    // SAFETY: kill(2) on the group of our own child, not reaped yet.
    unsafe { libc::kill(-(attach.id() as i32), libc::SIGINT) };
    let status = wait_for("pipework to end", Duration::from_secs(10), || attach.try_wait().unwrap());
    assert!(began.elapsed() < Duration::from_secs(3), "{:?}", began.elapsed());
    assert_eq!(status.signal(), Some(libc::SIGINT), "{status:?}");
    assert_unchanged("host", &host_before, || host.snapshot());
    assert_unchanged("container", &ctr_before, || ctr.snapshot());
    assert!(guest_resolv_confs(&state).is_empty(), "{:?}", state.names());
}

/// The agent's `dhcp/` directory, its state and its log are root's alone
/// (0700, 0600), though the run's umask (the tests' 022) would open them.
#[test]
fn the_agents_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let host = Netns::new("host");
    let _server = dnsmasq().start_in(&host);
    let guest = Netns::new("guest");
    let state = TempDir::new("state");
    let label = format!("netns:{}", guest.name);
    assert_success(&pipework_in(&host, &state, &["br0", &label, "dhcp"]));
    let dir = std::path::Path::new(state.arg()).join("dhcp");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let mut modes: Vec<(String, u32)> =
        dhcp_files(&state).iter().map(|f| (f.clone(), mode(&dir.join(f)))).collect();
    modes.sort();
    assert_eq!(modes.len(), 2, "{modes:?}");
    assert!(modes.iter().all(|(_, m)| *m == 0o600), "{modes:?}");
    assert_eq!(mode(&dir), 0o700);
    assert_success(&pipework_in(&host, &state, &["detach", &label]));
}

/// The container's /etc/resolv.conf, as the container reads it.
fn guest_resolv_conf(ctr: &Container) -> String {
    run(&["docker", "exec", &ctr.name, "cat", "/etc/resolv.conf"])
}

/// dnsmasq giving two DNS servers and a domain.
fn dnsmasq_with_dns() -> DhcpConfig {
    dnsmasq().option("option:dns-server,10.33.0.53,10.33.0.54").option("option:domain-name,corp.example")
}

const LEASE_RESOLV_CONF: &str = "# written by pipework from the DHCP lease on eth1\nsearch corp.example\n\
                                 nameserver 10.33.0.53\nnameserver 10.33.0.54\n";

/// The file's SHA-256, to tell that it was not touched.
fn sha256(path: &str) -> String {
    run(&["sha256sum", path]).split_whitespace().next().unwrap().to_owned()
}

#[test]
fn resolv_conf_takes_the_leases_dns_in_place_and_detach_puts_it_back() {
    let host = Netns::new("host");
    let _server = dnsmasq_with_dns().start_in(&host);
    let ctr = Container::run("ctr");
    let state = TempDir::new("state");
    let before = guest_resolv_conf(&ctr);
    // Docker's file, bind-mounted over the container's: written in place,
    // it is the file the container reads.
    let docker_file = ctr.inspect("{{.ResolvConfPath}}");
    let inode = |p: &str| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let docker_inode = inode(&docker_file);
    assert_success(&pipework_in(&host, &state, &["--resolv-conf", "br0", &ctr.name, "dhcp"]));
    assert_eq!(guest_resolv_conf(&ctr), LEASE_RESOLV_CONF);
    assert_eq!(std::fs::read_to_string(&docker_file).unwrap(), LEASE_RESOLV_CONF);
    assert_eq!(inode(&docker_file), docker_inode, "the file was replaced, not written");
    // What it held is kept, root's alone.
    let saved: Vec<String> =
        dhcp_files(&state).into_iter().filter(|f| f.ends_with(".resolv.saved")).collect();
    assert_eq!(saved.len(), 1, "{:?}", dhcp_files(&state));
    let saved = std::path::Path::new(state.arg()).join("dhcp").join(&saved[0]);
    assert_eq!(std::fs::read_to_string(&saved).unwrap(), before);
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&saved).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let item = shown(&host, &state, &ctr.name);
    assert!(item["dhcp"]["resolv_conf"].is_string(), "{item}");
    // detach: the content as it was, the kept copy gone.
    assert_success(&pipework_in(&host, &state, &["detach", &ctr.name]));
    assert_eq!(guest_resolv_conf(&ctr), before);
    assert_eq!(inode(&docker_file), docker_inode);
    assert!(dhcp_files(&state).is_empty(), "{:?}", dhcp_files(&state));
}

#[test]
fn dry_run_shows_the_resolv_conf_write() {
    let host = Netns::new("host");
    host.add_bridge("br0", None);
    let ctr = Container::run("ctr");
    let before = guest_resolv_conf(&ctr);
    let out = pipework(&host, &["--dry-run", "--resolv-conf", "br0", &ctr.name, "dhcp"]);
    assert_success(&out);
    let text = stdout(&out);
    let want = format!("its DNS servers and domain into /proc/{}/root/etc/resolv.conf", ctr.pid);
    assert!(text.contains(&want), "{text}");
    assert_eq!(guest_resolv_conf(&ctr), before);
}

#[test]
fn resolv_conf_is_refused_without_a_native_lease_or_a_guest_tree() {
    let host = Netns::new("host");
    host.add_bridge("br0", None);
    let ctr = Container::run("ctr");
    let guest = Netns::new("guest");
    let netns = format!("netns:{}", guest.name);
    // A process of `ip netns exec`: a mount namespace of its own over the
    // host's tree, whose /etc/resolv.conf is the machine's.
    let process = guest.spawn_process();
    let pid = format!("pid:{}", process.pid());
    let machine = sha256("/etc/resolv.conf");
    let before = guest_resolv_conf(&ctr);
    let cases: [(&[&str], &dyn Ns, String); 5] = [
        (
            &["--resolv-conf", "br0", &ctr.name, "10.33.0.5/24"],
            &ctr,
            "--resolv-conf applies to a DHCP address (dhcp[:OPTS])".into(),
        ),
        (
            &["--resolv-conf", "br0", &ctr.name, "0/0"],
            &ctr,
            "--resolv-conf applies to a DHCP address (dhcp[:OPTS])".into(),
        ),
        (
            &["--resolv-conf", "br0", &ctr.name, "udhcpc"],
            &ctr,
            "--resolv-conf works with the native DHCP client (dhcp), not udhcpc".into(),
        ),
        (
            &["--resolv-conf", "br0", &netns, "dhcp"],
            &guest,
            format!("--resolv-conf needs a guest with a root directory of its own (a container); {netns} has the host's"),
        ),
        (
            &["--resolv-conf", "br0", &pid, "dhcp"],
            &guest,
            format!("--resolv-conf needs a guest with a root directory of its own (a container); {pid} has the host's"),
        ),
    ];
    for (args, ns, message) in cases {
        let out = assert_refused(pipework, &host, Some(ns), args);
        assert_eq!(stderr(&out), format!("pipework: {message}\n"), "{args:?}");
    }
    assert_eq!(sha256("/etc/resolv.conf"), machine);
    assert_eq!(guest_resolv_conf(&ctr), before);
}

#[test]
fn a_resolv_conf_that_is_a_symbolic_link_is_refused_and_the_host_untouched() {
    let host = Netns::new("host");
    let _server = dnsmasq_with_dns().start_in(&host);
    let ctr = Container::run("ctr");
    // The container's own doing: Docker's file unmounted, a link to
    // /etc/passwd in its place: the container has none, the host has.
    let pid = ctr.pid.to_string();
    run(&["nsenter", "-t", &pid, "-m", "/bin/busybox", "umount", "/etc/resolv.conf"]);
    run(&["nsenter", "-t", &pid, "-m", "/bin/busybox", "ln", "-sf", "/etc/passwd", "/etc/resolv.conf"]);
    let (host_passwd, host_resolv) = (sha256("/etc/passwd"), sha256("/etc/resolv.conf"));
    let out = assert_refused(pipework, &host, Some(&ctr), &["--resolv-conf", "br0", &ctr.name, "dhcp"]);
    assert_eq!(
        stderr(&out),
        format!(
            "pipework: /proc/{pid}/root/etc/resolv.conf is a symbolic link, not a regular file; leaving it alone\n"
        )
    );
    assert_eq!((sha256("/etc/passwd"), sha256("/etc/resolv.conf")), (host_passwd, host_resolv));
    let made = quiet(&["docker", "exec", &ctr.name, "ls", "/etc/passwd"]);
    assert!(!made.status.success(), "an /etc/passwd was made in the container");
}

#[test]
fn every_step_of_a_resolv_conf_attach_rolls_back() {
    let host = Netns::new("host");
    let _server = dnsmasq_with_dns().start_in(&host);
    let ctr = Container::run("ctr");
    let state = TempDir::new("state");
    let before = guest_resolv_conf(&ctr);
    let args = ["--resolv-conf", "br0", &ctr.name, "dhcp"];
    // The lease's steps are known once it is taken: fail at each step until
    // a run gets through; the resolv.conf step is among them.
    let (host_before, guest_before) = (settled_snapshot(&host), ctr.snapshot());
    let mut at = 1;
    loop {
        let out = pipework_env(
            &host,
            &args,
            &[("PIPEWORK_FAIL_AT", &at.to_string()), (STATE_DIR_ENV, state.arg())],
        );
        if out.status.success() {
            break;
        }
        assert_eq!(out.status.code(), Some(1), "fail at {at}: {}", stderr(&out));
        assert_eq!(guest_resolv_conf(&ctr), before, "after a failure at step {at}");
        assert!(dhcp_files(&state).is_empty(), "fail at {at}: {:?}", dhcp_files(&state));
        assert_unchanged(&format!("host after step {at}"), &host_before, || host.snapshot());
        assert_unchanged(&format!("guest after step {at}"), &guest_before, || ctr.snapshot());
        at += 1;
        assert!(at < 30, "never got through");
    }
    assert_eq!(guest_resolv_conf(&ctr), LEASE_RESOLV_CONF);
    let log = stderr(&pipework_in(&host, &state, &["detach", &ctr.name]));
    assert_eq!(guest_resolv_conf(&ctr), before, "{log}");
}

/// Two-minute leases: at T1 (a minute) the renewal's new DNS is written.
#[test]
fn a_renewal_with_other_dns_rewrites_resolv_conf() {
    let host = Netns::new("host");
    let server = dnsmasq_with_dns().lease("2m").start_in(&host);
    let ctr = Container::run("ctr");
    let state = TempDir::new("state");
    let before = guest_resolv_conf(&ctr);
    assert_success(&pipework_in(&host, &state, &["--resolv-conf", "br0", &ctr.name, "dhcp"]));
    assert_eq!(guest_resolv_conf(&ctr), LEASE_RESOLV_CONF);
    let ip = v4(&ctr, "eth1")[0].local.clone();
    let mac = ctr.must_link("eth1").address;
    // The same address from a server with other options.
    drop(server);
    let server = DhcpConfig::new("br0", "10.33.0.2/24", "10.33.0.50", "10.33.0.99")
        .lease("2m")
        .host(&mac, &ip)
        .option("option:dns-server,10.33.0.63")
        .option("option:domain-name,other.example")
        .start_in(&host);
    server.wait_log(&["DHCPACK(br0)", &ip], Duration::from_secs(90));
    let want =
        "# written by pipework from the DHCP lease on eth1\nsearch other.example\nnameserver 10.33.0.63\n";
    wait_for("the renewal's DNS in resolv.conf", Duration::from_secs(5), || {
        (guest_resolv_conf(&ctr) == want).then_some(())
    });
    // detach gives back the content from before the first write.
    assert_success(&pipework_in(&host, &state, &["detach", &ctr.name]));
    assert_eq!(guest_resolv_conf(&ctr), before);
}

/// Two interfaces with --resolv-conf: the second keeps the first's lease
/// content; detaching both leaves the file as it was before the first.
#[test]
fn detaching_two_resolv_conf_interfaces_gives_back_the_first_content() {
    let host = Netns::new("host");
    let _server = dnsmasq_with_dns().start_in(&host);
    let ctr = Container::run("ctr");
    let state = TempDir::new("state");
    let before = guest_resolv_conf(&ctr);
    for ifname in ["eth1", "eth2"] {
        let out = pipework_in(&host, &state, &["--resolv-conf", "-i", ifname, "br0", &ctr.name, "dhcp"]);
        assert_success(&out);
    }
    assert_eq!(guest_resolv_conf(&ctr), LEASE_RESOLV_CONF.replace("eth1", "eth2"));
    assert_success(&pipework_in(&host, &state, &["detach", &ctr.name]));
    assert_eq!(guest_resolv_conf(&ctr), before);
    assert!(dhcp_files(&state).is_empty(), "{:?}", dhcp_files(&state));
}
