//! Background programs the fixtures start (dnsmasq, ovsdb-server,
//! ovs-vswitchd): each writes its pid file into the fixture's [`TempDir`],
//! so a fixture's drop and the sweep of a killed run find them the same way.
//!
//! [`TempDir`]: super::TempDir

use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// Polls `f` every 20 ms until it gives a value; panics naming `what` after
/// `timeout`.
#[track_caller]
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        sleep(Duration::from_millis(20));
    }
}

/// Kills the processes whose pid files (`*.pid`) lie in `dir`, and waits
/// until they are gone. A pid whose command line does not name `dir` has
/// been reused by another program and is left alone.
pub(crate) fn kill_pidfiles(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let needle = dir.to_string_lossy().into_owned();
    for entry in entries.flatten() {
        if entry.path().extension().is_none_or(|e| e != "pid") {
            continue;
        }
        let Some(pid) = std::fs::read_to_string(entry.path()).ok().and_then(|s| s.trim().parse::<i32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            // SAFETY: kill(2) with a pid read from the daemon's own pid file.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while is_alive(pid) && Instant::now() < deadline {
                sleep(Duration::from_millis(10));
            }
        }
    }
}

/// SIGTERM to a child, as a service manager stops a daemon; SIGKILL after
/// `grace`; returns once it has exited.
pub(crate) fn terminate(mut child: std::process::Child, grace: Duration) {
    // SAFETY: kill(2) on our own child, which has not been reaped.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
        }
        sleep(Duration::from_millis(20));
    }
}

/// Running: there, and not a zombie waiting for its parent to reap it.
fn is_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}
