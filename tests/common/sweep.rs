//! The sweep of what killed test processes left behind.

use std::sync::Once;

use super::cgroups::{subdirs, Hierarchy, LXC_PARENTS, LXC_PAYLOAD};
use super::commands::{quiet, run};
use super::cri;
use super::daemons::kill_pidfiles;
use super::names::{owner_pid, TAG};
use super::netns::netns_entries;
use super::podman;

/// Removes what a killed test process left behind (its pid is gone, or was
/// reused by this process, which has made nothing yet), and makes sure
/// /var/run/netns is set up before parallel `ip netns add` race to do it.
pub(crate) fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let me = std::process::id();
        let stale = |name: &str| {
            owner_pid(name)
                .is_some_and(|pid| pid == me || !std::path::Path::new(&format!("/proc/{pid}")).exists())
        };
        for name in netns_entries().iter().filter(|n| stale(n)) {
            let _ = quiet(&["ip", "netns", "del", name]);
        }
        let names =
            run(&["docker", "ps", "-a", "--format", "{{.Names}}", "--filter", &format!("name=^{TAG}")]);
        for name in names.lines().filter(|n| stale(n)) {
            let _ = quiet(&["docker", "rm", "-f", name]);
        }
        // Temp dirs, and the daemons (dnsmasq, OVS, a CRI node's) they name.
        for dir in subdirs(&std::env::temp_dir()) {
            let name = dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
            if stale(&name) {
                kill_pidfiles(&dir);
                if name.ends_with("-cri") {
                    cri::kill_node(&dir);
                }
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
        podman::sweep(&stale);
        for h in Hierarchy::all() {
            let parents = LXC_PARENTS.iter().map(|p| h.root.join(p));
            for dir in subdirs(&h.root).into_iter().chain(parents.flat_map(|p| subdirs(&p))) {
                let name = dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
                if stale(name.strip_prefix(LXC_PAYLOAD).unwrap_or(&name)) {
                    h.remove_group(&dir);
                }
            }
        }
        let probe = format!("{TAG}{me}x0-init"); // swept like any other if we die here
        run(&["ip", "netns", "add", &probe]);
        run(&["ip", "netns", "del", &probe]);
    });
}
