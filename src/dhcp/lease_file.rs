//! The lease file of the agent that keeps a lease: `key=value` lines,
//! `<records dir>/dhcp/<netns inode>-<ifname>`, with what the agent
//! needs to resume and what a record of the attachment needs to find it.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use ipnetwork::Ipv4Network;

use super::agent::AgentId;
use super::timing::POLICY;
use super::wire::Lease;
use crate::error::{Error, Kind, Result};
use crate::records::private_files;

/// One agent's lease file: `<records dir>/dhcp/<netns inode>-<ifname>`,
/// lines of `key=value`. Only what the agent needs to resume and what a record
/// of the attachment needs to find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseFile {
    pub path: PathBuf,
    pub ifname: String,
    /// The guest's init (watched through a pidfd), or none for a namespace file.
    pub guest_pid: Option<u64>,
    /// The namespace file watched when there is no process.
    pub netns_file: Option<String>,
    pub options: String,
    pub hostname: Option<String>,
    pub lease: Lease,
    /// When the lease was last acknowledged, in seconds since the epoch.
    pub bound_at: u64,
    /// The agent that keeps it, as it wrote itself in.
    pub agent: Option<AgentId>,
    /// With `--resolv-conf`: the guest's mount namespace (`dev`, inode),
    /// whose /etc/resolv.conf the agent keeps current.
    pub resolv_mntns: Option<(u64, u64)>,
}

impl LeaseFile {
    pub fn path_for(netns_inode: u64, ifname: &str) -> PathBuf {
        crate::records::Store::from_env().dir().join("dhcp").join(format!("{netns_inode}-{ifname}"))
    }

    /// The agent's log, beside its state.
    pub fn log_path(&self) -> PathBuf {
        super::log::path(&self.path)
    }

    pub fn now() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
    }

    pub fn write(&self) -> Result<()> {
        let l = &self.lease;
        let mut text = format!(
            "ifname={}\noptions={}\naddress={}/{}\nserver={}\nlease={}\nt1={}\nt2={}\nbound_at={}\n",
            self.ifname,
            self.options,
            l.address,
            l.prefix,
            l.server,
            l.time.as_secs(),
            l.t1.as_secs(),
            l.t2.as_secs(),
            self.bound_at
        );
        let optional = [
            ("hostname", self.hostname.clone()),
            ("guest_pid", self.guest_pid.map(|p| p.to_string())),
            ("netns_file", self.netns_file.clone()),
            ("agent", self.agent.map(|a| a.pid.to_string())),
            ("agent_started", self.agent.and_then(|a| a.started).map(|t| t.to_string())),
            ("dns", (!l.dns.is_empty()).then(|| join(&l.dns))),
            ("domain", l.domain.clone()),
            ("resolv_mntns", self.resolv_mntns.map(|(dev, ino)| format!("{dev}:{ino}"))),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                text.push_str(&format!("{key}={value}\n"));
            }
        }
        let dir = self.path.parent().unwrap_or(Path::new("/"));
        private_files::make_dir(dir)
            .map_err(|e| Error::from(e).context(format!("creating {}", dir.display())))?;
        // Written whole, then renamed: a reader never sees half a file. The
        // run and the agent it starts may both write it: each its own temporary.
        let tmp = beside(&self.path, &format!("new.{}", std::process::id()));
        private_files::write(&tmp, text.as_bytes())
            .map_err(|e| Error::from(e).context(format!("writing {}", tmp.display())))?;
        std::fs::rename(&tmp, &self.path)
            .map_err(|e| Error::from(e).context(format!("writing {}", self.path.display())))
    }

    /// Whether the state file at `path` names agent `pid` as its keeper: a
    /// file a leaving agent removed, or a new agent's, does not.
    pub fn names_agent(path: &Path, pid: u32) -> bool {
        LeaseFile::read(path).ok().and_then(|s| s.agent).is_some_and(|a| a.pid == pid)
    }

    pub fn read(path: &Path) -> Result<LeaseFile> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::from(e).context(format!("reading {}", path.display())))?;
        let get = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
                .map(str::to_string)
        };
        let bad = || Error::new(Kind::Io, format!("{} is not a DHCP agent state", path.display()));
        let need = |key: &str| get(key).ok_or_else(bad);
        let secs = |key: &str| -> Result<u64> { need(key)?.parse().map_err(|_| bad()) };
        // Clamped again: a file written before the clamp, or by hand.
        let times = POLICY.times(Some(secs("lease")?), Some(secs("t1")?), Some(secs("t2")?));
        let net: Ipv4Network = need("address")?.parse().map_err(|_| bad())?;
        let lease = Lease {
            address: net.ip(),
            prefix: net.prefix(),
            server: need("server")?.parse().map_err(|_| bad())?,
            routers: Vec::new(),
            mtu: None,
            routes: Vec::new(),
            dns: get("dns")
                .map(|list| list.split(',').filter_map(|ip| ip.parse().ok()).collect())
                .unwrap_or_default(),
            domain: get("domain").and_then(|d| super::resolv_conf::domain(&d)),
            time: times.lease,
            t1: times.t1,
            t2: times.t2,
        };
        Ok(LeaseFile {
            path: path.to_path_buf(),
            ifname: need("ifname")?,
            guest_pid: get("guest_pid").and_then(|p| p.parse().ok()),
            netns_file: get("netns_file"),
            options: need("options")?,
            hostname: get("hostname"),
            lease,
            bound_at: need("bound_at")?.parse().map_err(|_| bad())?,
            agent: get("agent")
                .and_then(|p| p.parse().ok())
                .map(|pid| AgentId { pid, started: get("agent_started").and_then(|t| t.parse().ok()) }),
            resolv_mntns: get("resolv_mntns").and_then(|v| {
                let (dev, ino) = v.split_once(':')?;
                Some((dev.parse().ok()?, ino.parse().ok()?))
            }),
        })
    }
}

/// What a recorded lease file says now, for `show`: the address (the
/// agent's state) and the DNS servers (its state, or the `nameserver`
/// lines a host client's script wrote into the guest's resolv.conf).
pub fn held(path: &Path) -> (Option<Ipv4Network>, Vec<String>) {
    if let Ok(state) = LeaseFile::read(path) {
        let net = Ipv4Network::new(state.lease.address, state.lease.prefix).ok();
        return (net, state.lease.dns.iter().map(Ipv4Addr::to_string).collect());
    }
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let dns = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .map(|ip| ip.trim().to_string())
        .filter(|ip| !ip.is_empty())
        .collect();
    (None, dns)
}

/// `path.suffix`: an interface name may have a dot, which
/// `with_extension` would take for an extension.
pub fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

/// Addresses as one `a,b` value.
fn join(ips: &[Ipv4Addr]) -> String {
    ips.iter().map(Ipv4Addr::to_string).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips() {
        let dir = std::env::temp_dir().join(format!("pipework-state-{}", std::process::id()));
        let mut lease = Lease::sample();
        lease.dns = vec![Ipv4Addr::new(10, 9, 0, 53), Ipv4Addr::new(10, 9, 0, 54)];
        lease.domain = Some("example.org".into());
        let state = LeaseFile {
            path: dir.join("dhcp/4026-eth1"),
            ifname: "eth1".into(),
            guest_pid: Some(42),
            netns_file: None,
            options: "-V acme".into(),
            hostname: Some("web".into()),
            lease,
            bound_at: 1_700_000_000,
            agent: Some(AgentId { pid: 4242, started: Some(123_456) }),
            resolv_mntns: Some((4, 4026531841)),
        };
        state.write().unwrap();
        assert_eq!(LeaseFile::read(&state.path).unwrap(), state);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
