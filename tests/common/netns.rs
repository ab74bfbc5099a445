//! Named network namespaces: each test's "docker host" and the peers, nodes
//! and LANs cabled to it, and processes living in one.

use std::process::Child;
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::commands::{command, quiet, run};
use super::names::{owned_name, unique};
use super::readback::Ns;
use super::sweep::init;

pub(crate) const NETNS_DIR: &str = "/var/run/netns";

/// Entries of /var/run/netns, the harness's own included.
pub fn netns_entries() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    let mut names: Vec<String> =
        dir.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// A named network namespace (`ip netns add`), deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(prefix: &str) -> Netns {
        init();
        let ns = Netns { name: owned_name(prefix) };
        run(&["ip", "netns", "add", &ns.name]);
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Where pipework keeps this "docker host"'s records (each machine has
    /// its own /var/lib/pipework); made by pipework, removed on drop.
    pub fn state_dir(&self) -> String {
        std::env::temp_dir().join(format!("{}-state", self.name)).to_string_lossy().into_owned()
    }

    /// Its path under /var/run/netns, the guest form `/absolute/path`.
    pub fn path(&self) -> String {
        format!("{NETNS_DIR}/{}", self.name)
    }

    /// A Linux bridge, up, STP off, with a fixed MAC and (if given) an MTU
    /// set after creation: the kernel keeps both as they are when ports come
    /// and go (a bridge's own MAC and an MTU given at creation follow its ports).
    pub fn add_bridge(&self, name: &str, mtu: Option<u32>) {
        self.ip(&[
            "link",
            "add",
            name,
            "address",
            "02:00:00:00:00:01",
            "type",
            "bridge",
            "forward_delay",
            "0",
        ]);
        if let Some(mtu) = mtu {
            self.ip(&["link", "set", name, "mtu", &mtu.to_string()]);
        }
        self.ip(&["link", "set", name, "up"]);
    }

    /// A "peer": another namespace whose `eth0` holds `cidr` and is plugged
    /// into `bridge` of this one through a veth pair.
    pub fn add_peer(&self, bridge: &str, cidr: &str) -> Netns {
        let peer = Netns::new("peer");
        let port = unique("pp");
        self.ip(&["link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &peer.name]);
        self.ip(&["link", "set", &port, "master", bridge, "up"]);
        peer.ip(&["addr", "add", cidr, "dev", "eth0"]);
        peer.ip(&["link", "set", "eth0", "up"]);
        peer
    }

    /// A process living in this namespace, for the `pid:<pid>` guest form.
    pub fn spawn_process(&self) -> NsProcess {
        // `ip netns exec` execs the command, so the child's pid is sleep's.
        let child =
            command(&["ip", "netns", "exec", &self.name, "sleep", "1000000"]).spawn().expect("spawn sleep");
        let proc = NsProcess { child };
        // Wait until the exec into the namespace has happened.
        let want = inode(&self.path());
        let deadline = Instant::now() + Duration::from_secs(10);
        while inode(&format!("/proc/{}/ns/net", proc.pid())) != want {
            assert!(Instant::now() < deadline, "process never entered {}", self.name);
            sleep(Duration::from_millis(20));
        }
        proc
    }

    /// A "compute node": another namespace cabled to this one by a veth pair
    /// named `eth0` at both ends, each end up and holding its `cidrs`. IPv6
    /// ones get `nodad`, so that they answer at once.
    pub fn add_node(&self, host_cidrs: &[&str], node_cidrs: &[&str]) -> Netns {
        let node = Netns::new("node");
        self.ip(&["link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", &node.name]);
        for (ns, cidrs) in [(self, host_cidrs), (&node, node_cidrs)] {
            for cidr in cidrs {
                if cidr.contains(':') {
                    ns.ip(&["-6", "addr", "add", cidr, "dev", "eth0", "nodad"]);
                } else {
                    ns.ip(&["addr", "add", cidr, "dev", "eth0"]);
                }
            }
            ns.ip(&["link", "set", "eth0", "up"]);
        }
        node
    }

    /// A "LAN" behind a NIC of this host: `host_if` here is a veth (to
    /// pipework, a physical interface like any other), left down; its peer
    /// `lan0` lives in a new namespace, up, holding `cidr`.
    pub fn add_lan(&self, host_if: &str, cidr: &str) -> Netns {
        let lan = Netns::new("lan");
        self.ip(&["link", "add", host_if, "type", "veth", "peer", "name", "lan0", "netns", &lan.name]);
        lan.ip(&["addr", "add", cidr, "dev", "lan0"]);
        lan.ip(&["link", "set", "lan0", "up"]);
        lan
    }
}

fn inode(path: &str) -> Option<u64> {
    std::fs::metadata(path).map(|m| std::os::unix::fs::MetadataExt::ino(&m)).ok()
}

impl Ns for Netns {
    fn enter(&self) -> Vec<String> {
        vec!["ip".into(), "netns".into(), "exec".into(), self.name.clone()]
    }

    fn ip_argv(&self) -> Vec<String> {
        vec!["ip".into(), "-n".into(), self.name.clone()]
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = quiet(&["ip", "netns", "del", &self.name]);
        let _ = std::fs::remove_dir_all(self.state_dir());
    }
}

/// A process in a namespace, killed on drop.
pub struct NsProcess {
    child: Child,
}

impl NsProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for NsProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The guest the passthrough tests work in: `eth1`, one end of a veth pair
/// (`p1` the other, both up), holding `cidr4`, and `cidr6` without DAD.
pub fn add_eth1(ns: &dyn Ns, cidr4: &str, cidr6: &str) {
    ns.ip(&["link", "add", "eth1", "type", "veth", "peer", "name", "p1"]);
    ns.ip(&["addr", "add", cidr4, "dev", "eth1"]);
    ns.ip(&["-6", "addr", "add", cidr6, "dev", "eth1", "nodad"]);
    ns.ip(&["link", "set", "p1", "up"]);
    ns.ip(&["link", "set", "eth1", "up"]);
}
