//! `pipework --wait [-i IF] [--timeout SECS]`, run inside the guest: it
//! returns 0 once the interface is there, typically made by another
//! pipework run on the host.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::common::*;

/// How long a waiter may take to notice its interface. The original polled
/// once a second; this one listens for link notifications.
const NOTICE: Duration = Duration::from_secs(1);

/// `pipework <args>` running in the background inside `ns`, ended on drop.
struct Background {
    child: Child,
}

impl Background {
    fn spawn(ns: &Netns, args: &[&str]) -> Background {
        let mut argv = ns.enter();
        // Bounded, as every pipework run of the harness; `ip netns exec`
        // execs timeout, so the child is timeout, which passes SIGTERM on.
        argv.extend(["timeout", "-k", "5", "60", PIPEWORK].map(String::from));
        argv.extend(args.iter().map(|s| s.to_string()));
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .env_remove("FAILPOINTS")
            .env_remove("PIPEWORK_FAIL_AT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot run pipework");
        Background { child }
    }

    /// Its exit status if it has ended by `deadline`, checked every 10 ms.
    fn ended_by(&mut self, deadline: Instant) -> Option<ExitStatus> {
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            sleep(Duration::from_millis(10));
        }
    }

    /// What it printed on stderr; only once it has ended.
    fn stderr(&mut self) -> String {
        let mut err = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = pipe.read_to_string(&mut err);
        }
        err
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill(2) on our own child, which has not been reaped.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        }
        let _ = self.child.wait();
    }
}

/// Starts `--wait -i eth1` in a guest, checks it is still waiting, attaches
/// eth1 from `host` with `attach` (pipework args, `CTR` for the guest) and
/// checks that the waiter returned 0 within NOTICE of the attach.
fn waiter_returns_after(host: &Netns, attach: &[&str]) {
    let guest = Netns::new("guest");
    let target = format!("netns:{}", guest.name);
    let mut waiter = Background::spawn(&guest, &["--wait", "-i", "eth1"]);
    // Time to start and subscribe, and to return wrongly if it were to.
    let early = waiter.ended_by(Instant::now() + Duration::from_millis(500));
    assert!(early.is_none(), "--wait returned {early:?} before eth1 existed: {}", waiter.stderr());

    assert_success(&pipework(host, &with_guest(attach, &target)));
    let attached = Instant::now();
    let status = waiter.ended_by(attached + NOTICE);
    let status = status.unwrap_or_else(|| panic!("--wait still waiting {NOTICE:?} after eth1 came"));
    assert!(status.success(), "--wait: {status}: {}", waiter.stderr());
    assert!(guest.link("eth1").is_some());
}

#[test]
fn returns_after_a_bridge_attach() {
    // The guest side arrives under a temporary name and is renamed eth1.
    waiter_returns_after(&Netns::new("host"), &["br0", "CTR", "10.5.106.101/24"]);
}

#[test]
fn returns_after_a_macvlan_attach() {
    // The macvlan arrives already named eth1.
    let host = Netns::new("host");
    let _lan = host.add_lan("eth0", "10.5.0.1/24");
    waiter_returns_after(&host, &["eth0", "CTR", "10.5.0.5/24"]);
}

#[test]
fn returns_at_once_when_the_interface_exists() {
    let guest = Netns::new("guest");
    guest.ip(&["link", "add", "eth1", "type", "veth", "peer", "name", "eth1p"]);
    // Down and without carrier: existing is enough. -i defaults to eth1.
    for args in [&["--wait", "-i", "eth1"][..], &["--wait"]] {
        let start = Instant::now();
        assert_success(&pipework(&guest, args));
        assert!(start.elapsed() < NOTICE, "{args:?} took {:?}", start.elapsed());
    }
}

#[test]
fn other_interfaces_do_not_end_the_wait() {
    let guest = Netns::new("guest");
    let mut waiter = Background::spawn(&guest, &["--wait", "-i", "eth1", "--timeout", "1.5"]);
    sleep(Duration::from_millis(300));
    guest.ip(&["link", "add", "eth2", "type", "veth", "peer", "name", "eth11"]);
    let status = waiter.ended_by(Instant::now() + Duration::from_secs(10)).expect("--timeout ignored");
    assert_eq!(status.code(), Some(1), "eth2 or eth11 was taken for eth1: {}", waiter.stderr());
}

#[test]
fn timeout_exits_1_naming_the_interface() {
    let guest = Netns::new("guest");
    let args = ["--wait", "-i", "eth7", "--timeout", "0.5"];
    let mut took = Duration::ZERO;
    let out = assert_refused(
        |ns, a| {
            let start = Instant::now();
            let out = pipework(ns, a);
            took = start.elapsed();
            out
        },
        &guest,
        None,
        &args,
    );
    assert_one_line_naming(&args, &out, "eth7");
    assert!(took >= Duration::from_millis(500), "gave up after {took:?}");
    assert!(took < Duration::from_millis(500) + NOTICE, "gave up after {took:?}");
}

#[test]
fn timeout_without_wait_is_refused() {
    let host = Netns::new("host");
    let guest = Netns::new("guest");
    let target = format!("netns:{}", guest.name);
    // Alone, and in front of an attach line that would otherwise make br0.
    for args in [&["--timeout", "1", "-i", "eth1"][..], &["--timeout", "1", "br0", &target, "10.5.0.5/24"]] {
        let out = assert_refused(pipework, &host, Some(&guest), args);
        let err = stderr(&out);
        // The usage text may follow; the first line says what is wrong.
        let first = err.lines().next().unwrap_or_default();
        assert!(first.starts_with("pipework: "), "{args:?}: {err}");
        assert!(first.contains("--wait"), "{args:?}: the first line does not name --wait: {err}");
    }
}
