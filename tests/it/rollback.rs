//! Failure injection: built with `--features failpoints`, the binary fails
//! just before step n (1-based) of its plan when `PIPEWORK_FAIL_AT=n`. Every
//! such run must exit non-zero, name the step, and leave the host and the
//! guest exactly as they were: a bridge it made is gone, a default route it
//! deleted is back.

#![cfg(feature = "failpoints")]

use crate::common::*;

/// No plan is this long; reaching it means the injection never stops failing.
const MAX_STEPS: usize = 64;

/// Fails the run before step 1, 2, ... until one gets through. Returns the
/// number of steps that were failed.
pub(crate) fn fail_at_every_step(host: &Netns, guest: &dyn Ns, args: &[&str]) -> usize {
    for n in 1..=MAX_STEPS {
        let (host_before, guest_before) = (host.snapshot(), guest.snapshot());
        let out = pipework_env(host, args, &[("PIPEWORK_FAIL_AT", &n.to_string())]);
        if out.status.success() {
            return n - 1;
        }
        let err = stderr(&out);
        eprint!("PIPEWORK_FAIL_AT={n}:\n{err}"); // shown if the test fails
        assert!(names_step(&err, n), "failing at step {n}: no line names the step:\n{err}");
        assert_unchanged(&format!("host after failing at step {n}"), &host_before, || host.snapshot());
        assert_unchanged(&format!("guest after failing at step {n}"), &guest_before, || guest.snapshot());
    }
    panic!("{args:?} still fails with PIPEWORK_FAIL_AT={MAX_STEPS}");
}

/// A `pipework: ` line that says "step" and carries the number n.
fn names_step(stderr: &str, n: usize) -> bool {
    let n = n.to_string();
    stderr.lines().any(|l| {
        l.starts_with("pipework: ")
            && l.to_ascii_lowercase().contains("step")
            && l.split(|c: char| !c.is_ascii_digit()).any(|t| t == n)
    })
}

/// The injection must really be wired: a bridge plan has more steps than this.
#[track_caller]
fn assert_enough_steps(failed: usize) {
    assert!(failed >= 3, "only {failed} steps could be failed: is PIPEWORK_FAIL_AT honoured?");
}

#[test]
fn new_bridge_and_replaced_default_route() {
    let host = Netns::new("host");
    let ctr = Container::run("ctr");
    ctr.add_uplink("192.168.77.2/24", "192.168.77.1");
    let failed = fail_at_every_step(&host, &ctr, &["br0", &ctr.name, "10.5.106.101/24@10.5.106.1"]);
    assert_enough_steps(failed);
    assert_default_via(&ctr, Family::V4, "10.5.106.1", "eth1");
}

#[test]
fn existing_bridge_custom_names_mac_and_host_route() {
    let host = Netns::new("host");
    host.add_bridge("br0", Some(1400));
    let ctr = Container::run("ctr");
    ctr.add_uplink("192.168.77.2/24", "192.168.77.1");
    let args =
        ["br0", "-i", "eth2", "-l", "vlocal", &ctr.name, "10.5.106.101/24@10.9.0.1", "U:myhost.foo.com"];
    assert_enough_steps(fail_at_every_step(&host, &ctr, &args));
    assert_default_via(&ctr, Family::V4, "10.9.0.1", "eth2");
    assert_eq!(ctr.must_link("eth2").address, "02:72:6c:cd:9b:8d");
}

#[test]
fn ipv6_with_unreachable_gateway() {
    let host = Netns::new("host");
    let ctr = Container::run_with("ctr", DOCKER_IPV6);
    ctr.add_uplink("2001:db8:77::2/64", "2001:db8:77::1");
    let args = ["br0", "-a", "6", &ctr.name, "2001:db8::10/64@2001:db9::1"];
    assert_enough_steps(fail_at_every_step(&host, &ctr, &args));
    assert_default_via(&ctr, Family::V6, "2001:db9::1", "eth1");
}

#[test]
fn netns_guest() {
    let host = Netns::new("host");
    let guest = Netns::new("guest");
    guest.add_uplink("192.168.77.2/24", "192.168.77.1");
    let target = format!("netns:{}", guest.name);
    assert_enough_steps(fail_at_every_step(&host, &guest, &["br0", &target, "10.5.106.101/24@10.5.106.1"]));
    assert_default_via(&guest, Family::V4, "10.5.106.1", "eth1");
}

/// An interrupt in the middle of a run waits for the run to end whole: the
/// plan completes, then the signal ends the process.
#[test]
fn sigterm_mid_run_leaves_a_whole_attach() {
    use std::os::unix::process::ExitStatusExt;
    let host = Netns::new("host");
    let guest = Netns::new("guest");
    let target = format!("netns:{}", guest.name);
    let mut run = std::process::Command::new("ip")
        .args(["netns", "exec", &host.name, PIPEWORK, "br0", &target, "10.5.106.101/24@10.5.106.1"])
        .env("PIPEWORK_PAUSE_AT", "4")
        .env(STATE_DIR_ENV, host.state_dir())
        .spawn()
        .expect("cannot run pipework");
    // `ip netns exec` execs pipework in place: this pid is pipework's.
    std::thread::sleep(std::time::Duration::from_millis(200));
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(run.id() as i32, libc::SIGTERM) }, 0);
    let status = run.wait().expect("pipework did not end");
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
    assert_eq!(guest.cidrs("eth1", Family::V4), vec!["10.5.106.101/24"]);
    assert_default_via(&guest, Family::V4, "10.5.106.1", "eth1");
    let ports = host.ip_j(&["link", "show", "master", "br0"]);
    assert_eq!(ports.as_array().map(Vec::len), Some(1), "{ports}");
}
