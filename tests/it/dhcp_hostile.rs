//! The native DHCP client and its agent against a hostile server of the
//! tests' own (tests/common/hostile_dhcp.rs): a lease of 0 s, T1 and T2 past
//! the lease, a subnet mask that is no prefix, a flood of answers. What the
//! server heard, `ip -j` and the agent's log files are the oracles.

use std::io::Write;
use std::path::PathBuf;
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::common::*;

/// The agent's log cap, 1 MiB.
const LOG_CAP: u64 = 1 << 20;

fn guest_word(guest: &Netns) -> String {
    format!("netns:{}", guest.name)
}

/// The one agent log in `state`.
fn agent_log(state: &TempDir) -> PathBuf {
    let dir = std::path::Path::new(state.arg()).join("dhcp");
    let logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    logs[0].clone()
}

fn len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

#[test]
fn a_lease_of_zero_is_kept_without_a_storm_and_others_are_served() {
    let host = Netns::new("host");
    let server = Hostile::new("br0").times(Some(0), None, None).start_in(&host);
    let guest = Netns::new("guest");
    let state = TempDir::new("state");
    let attached = Instant::now();
    assert_success(&pipework_in(&host, &state, &["br0", &guest_word(&guest), "dhcp"]));
    let leased = vec![format!("{HOSTILE_OFFER}/24")];
    // Meanwhile another guest, on a well-behaved server, gets its lease.
    let good = DhcpConfig::new("br1", "10.33.0.1/24", "10.33.0.50", "10.33.0.99").start_in(&host);
    let other = Netns::new("other");
    assert_success(&pipework_in(&host, &state, &["br1", &guest_word(&other), "dhcp"]));
    let theirs = other.cidrs("eth1", Family::V4);
    assert!(theirs.len() == 1 && theirs[0].starts_with("10.33.0."), "{theirs:?}");
    good.wait_log(&["DHCPACK(br1)", theirs[0].split('/').next().unwrap()], Duration::from_secs(1));
    // A lease of 0 s is one of a minute: the address stays, and the server
    // hears nothing after the attach's DISCOVER and REQUEST (today: about
    // 40 exchanges a second, the address removed and added each time).
    while attached.elapsed() < Duration::from_secs(8) {
        assert_eq!(guest.cidrs("eth1", Family::V4), leased);
        sleep(Duration::from_millis(100));
    }
    let heard = server.heard();
    assert!(heard.len() <= 2, "{} heard: {heard:?}", heard.len());
}

#[test]
fn timers_past_the_lease_are_replaced_and_the_lease_is_renewed() {
    let host = Netns::new("host");
    let never = Some(u32::MAX);
    let server = Hostile::new("br0").times(Some(20), never, never).start_in(&host);
    let guest = Netns::new("guest");
    let state = TempDir::new("state");
    assert_success(&pipework_in(&host, &state, &["br0", &guest_word(&guest), "dhcp"]));
    let bound = Instant::now();
    // The 20 s lease is one of a minute, renewed at its default T1 of 30 s
    // (today: never, the address kept past its end).
    let renewal = wait_for("a renewal", Duration::from_secs(45), || server.extensions().first().cloned());
    let after = renewal.at.duration_since(bound);
    assert!(Duration::from_secs(27) < after && after < Duration::from_secs(33), "renewed after {after:?}");
    assert_eq!(renewal.ciaddr, HOSTILE_OFFER);
    assert_eq!(guest.cidrs("eth1", Family::V4), [format!("{HOSTILE_OFFER}/24")]);
}

#[test]
fn a_subnet_mask_that_is_no_prefix_is_refused() {
    // Today the first is read as /8, the second as /0.
    for mask in ["255.0.255.0", "0.255.255.0"] {
        let host = Netns::new("host");
        let _server = Hostile::new("br0").mask(mask.parse().unwrap()).start_in(&host);
        let guest = Netns::new("guest");
        let word = guest_word(&guest);
        let out = assert_refused(pipework, &host, Some(&guest), &["--timeout", "2", "br0", &word, "dhcp"]);
        // One line: the DHCP step that failed, and why.
        let err = stderr(&out);
        let why = format!(
            "): refused the lease of {HOSTILE_OFFER} from {HOSTILE_SERVER} on eth1: non-contiguous subnet mask {mask}\n"
        );
        assert!(
            err.starts_with("pipework: step ") && err.ends_with(&why) && err.lines().count() == 1,
            "{err}"
        );
        let all: Vec<Addr> = guest.links().iter().flat_map(|l| guest.addrs(&l.ifname)).collect();
        assert!(all.iter().all(|a| a.prefixlen != 0), "{all:?}");
    }
}

#[test]
fn the_agents_log_stays_under_its_cap_under_a_flood() {
    let host = Netns::new("host");
    // Renew every second, every answer 20 times and as many to nobody.
    let server = Hostile::new("br0").times(Some(60), Some(1), Some(50)).copies(20).start_in(&host);
    let guest = Netns::new("guest");
    let state = TempDir::new("state");
    assert_success(&pipework_in(&host, &state, &["br0", &guest_word(&guest), "dhcp"]));
    let attached = Instant::now();
    let log = agent_log(&state);
    // As if it had grown that far: one byte past the cap.
    let mut file = std::fs::File::options().append(true).open(&log).unwrap();
    file.write_all(&vec![b'x'; LOG_CAP as usize + 1]).unwrap();
    // The renewal it logs moves the log aside (today: it grows on).
    let before = log.with_file_name(format!("{}.1", log.file_name().unwrap().to_string_lossy()));
    wait_for("the log to move aside", Duration::from_secs(20), || before.exists().then_some(()));
    sleep(Duration::from_millis(200));
    assert!(len(&log) < LOG_CAP && len(&before) > LOG_CAP, "{} and {}", len(&log), len(&before));
    // T1 of 1 s, yet no more than one exchange every 10 s (today: one a second).
    sleep(Duration::from_secs(15).saturating_sub(attached.elapsed()));
    let renewals = server.extensions();
    assert!((1..=2).contains(&renewals.len()), "{} renewals: {renewals:?}", renewals.len());
    assert_eq!(guest.cidrs("eth1", Family::V4), [format!("{HOSTILE_OFFER}/24")]);
    // The copies and the answers to nobody are not logged, one by one or at all.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.lines().count() <= 2, "{text}");
}
