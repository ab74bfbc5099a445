//! The typed request: what the operator asked for, checked for syntax and
//! nothing else. Looking things up on the host comes later.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnetwork::IpNetwork;

use crate::error::{Error, Kind, Result};
use crate::mac::Mac;

/// Linux caps interface names at IFNAMSIZ - 1 bytes.
pub const IFNAME_MAX: usize = 15;

#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Attach(Attach),
    /// `route`, `rule` or `tc`: arguments handed over inside the guest.
    Passthrough {
        tool: Tool,
        guest: GuestRef,
        args: Vec<String>,
    },
    /// `--wait`: runs inside a container until its interface shows up.
    Wait {
        ifname: String,
        timeout: Option<Duration>,
    },
    /// `mkbridge`: IFACE becomes a port of BRIDGE, which takes over its
    /// addresses and routes.
    Mkbridge(Mkbridge),
    /// `loop free` and `loop ensure`.
    Loop(LoopRequest),
    /// `--dhcp-agent <state file>`: the hidden agent that keeps a lease,
    /// started by pipework itself.
    DhcpAgent(PathBuf),
    /// `--help` or `--version`: this text, printed on stdout.
    Help(String),
    /// `show [GUEST] [--json]`: the records, live or stale.
    Show {
        guest: Option<GuestRef>,
        json: bool,
    },
    /// `check [GUEST] [--json]`: the kernel against the records.
    Check {
        guest: Option<GuestRef>,
        json: bool,
    },
    /// `detach GUEST [-i IF]`: undo what attaches made.
    Detach {
        guest: GuestRef,
        ifname: Option<String>,
    },
    /// `completions SHELL`: the shell's completion script, on stdout.
    Completions(clap_complete::Shell),
    /// `watch`: the service that keeps containers plumbed across restarts.
    Watch(Watch),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    /// `--only`: Docker label filters (`KEY` or `KEY=VALUE`) a container
    /// must match to be looked after.
    pub only: Vec<String>,
    /// `--allow`: the host interfaces labels may plumb into; none, and
    /// labels are not plumbed (records are).
    pub allow: Vec<String>,
    /// `--no-firewall`: the attachments it makes leave the firewall alone.
    pub no_firewall: bool,
    /// `--no-repair`: what the host loses under a running container
    /// (a bridge's ports, a host side) is not made again.
    pub no_repair: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mkbridge {
    pub bridge: String,
    pub iface: String,
    pub stp: bool,
    /// Seconds; unset: 0 without STP (the runbook's `setfd 0`), the
    /// kernel's default with it.
    pub forward_delay: Option<u32>,
    /// `--no-firewall`: no FORWARD rule for the bridge's own traffic.
    pub no_firewall: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoopRequest {
    /// Print the first free loop device, making its node if missing.
    Free { dev: std::path::PathBuf },
    /// Make sure nodes loop0 to loop(count-1) exist in `dev`, or in the
    /// `/dev` of a container.
    Ensure { count: u32, dev: std::path::PathBuf, container: Option<GuestRef> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Route,
    Rule,
    Tc,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Attach {
    pub host: HostIf,
    pub direct_phys: bool,
    /// `-i`; its default depends on the host interface (`ib0` for IPoIB).
    pub container_if: Option<String>,
    /// `-l`: the host-side name of a veth.
    pub local_if: Option<String>,
    pub guest: GuestRef,
    pub addr: Addressing,
    pub mac: Option<Mac>,
    pub tag: Option<Tag>,
    /// `--vlan-filtering`: turn VLAN filtering on for an existing Linux
    /// bridge that lacks it, as part of the run (undone on rollback).
    pub vlan_filtering: bool,
    /// `--no-firewall`: no FORWARD rule for a Linux bridge's own traffic.
    pub no_firewall: bool,
    /// Addresses beside `addr`, each with its family's gateway if it is the
    /// first of its family: a replay of an interface that was given more
    /// than one (see `drivers::replay`). A command line gives one address.
    pub more_addresses: Vec<(IpNetwork, Option<IpAddr>)>,
    /// `--macvlan-mode`: None when not asked (a macvlan is in bridge mode).
    pub macvlan_mode: Option<MacvlanMode>,
    /// `--host-access`: the host reaches the guest's macvlan through a
    /// macvlan of its own on the same parent.
    pub host_access: bool,
    /// `--resolv-conf`: the native DHCP client's lease's DNS into the
    /// guest's /etc/resolv.conf.
    pub resolv_conf: bool,
}

/// A macvlan's mode (`ip link add ... type macvlan mode MODE`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MacvlanMode {
    /// Children of one parent talk to each other directly.
    #[default]
    Bridge,
    /// Every frame goes out to the switch, which may hairpin it back.
    Vepa,
    /// Children never talk to each other.
    Private,
    /// The one child takes the parent over.
    Passthru,
}

impl MacvlanMode {
    pub const WORDS: [&'static str; 4] = ["bridge", "vepa", "private", "passthru"];

    pub fn parse(word: &str) -> Result<MacvlanMode> {
        match word {
            "bridge" => Ok(MacvlanMode::Bridge),
            "vepa" => Ok(MacvlanMode::Vepa),
            "private" => Ok(MacvlanMode::Private),
            "passthru" => Ok(MacvlanMode::Passthru),
            _ => Err(Error::new(
                Kind::Usage,
                format!("invalid macvlan mode '{word}' (bridge, vepa, private or passthru)"),
            )),
        }
    }

    pub fn word(self) -> &'static str {
        Self::WORDS[self as usize]
    }

    pub fn is_bridge(&self) -> bool {
        *self == MacvlanMode::Bridge
    }
}

/// The guest as the operator named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestRef {
    /// `pid:<PID>`: that process's network namespace.
    Pid(u64),
    /// `netns:<NAME>`: `/var/run/netns/<NAME>`, as `ip netns add` makes it.
    Netns(String),
    /// The absolute path of a network namespace file.
    Path(PathBuf),
    /// An LXC container (a cgroup of that name), else a Docker or Podman
    /// container name or ID.
    Name(String),
}

impl GuestRef {
    pub fn parse(label: &str) -> Result<GuestRef> {
        if let Some(pid) = label.strip_prefix("pid:") {
            let pid =
                pid.parse().map_err(|_| Error::new(Kind::Usage, format!("invalid PID in '{label}'")))?;
            return Ok(GuestRef::Pid(pid));
        }
        if let Some(name) = label.strip_prefix("netns:") {
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                return Err(Error::new(Kind::Usage, format!("invalid namespace name in '{label}'")));
            }
            return Ok(GuestRef::Netns(name.to_string()));
        }
        if label.starts_with('/') {
            return Ok(GuestRef::Path(PathBuf::from(label)));
        }
        Ok(GuestRef::Name(label.to_string()))
    }
}

impl fmt::Display for GuestRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuestRef::Pid(pid) => write!(f, "pid:{pid}"),
            GuestRef::Netns(name) => write!(f, "netns:{name}"),
            GuestRef::Path(path) => write!(f, "{}", path.display()),
            GuestRef::Name(name) => f.write_str(name),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostIf {
    Name(String),
    /// `mac:<hwaddr>`: the host interface that has this address; the text
    /// is kept as typed for the original's message.
    Mac(Mac, String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Addressing {
    /// `<ip>/<len>[@gw]`; the network keeps the host part.
    Static {
        net: IpNetwork,
        gateway: Option<IpAddr>,
    },
    /// `0/0`: connect, assign nothing.
    None,
    Dhcp(Dhcp),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dhcp {
    pub client: DhcpClient,
    /// `-f`: the client stays in the foreground to renew the lease.
    pub foreground: bool,
    pub options: Option<String>,
    /// `--timeout`: how long the native client waits for a lease.
    pub timeout: Duration,
}

/// The native client's wait for a lease when `--timeout` is not given.
pub const DHCP_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest wait a command line or a label may ask for (`--timeout`,
/// `dhcp:-T`): a day. Far beyond any lease's wait, and far below what
/// would overflow a clock's arithmetic.
pub const MAX_WAIT: Duration = Duration::from_secs(86_400);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhcpClient {
    /// `dhcp`: pipework's own client and its agent (`crate::dhcp`).
    Native,
    Udhcpc,
    Dhclient,
    Dhcpcd,
}

impl DhcpClient {
    /// The command line's word for it, without `-f` (`dhcp` is the native
    /// client), as records keep it.
    pub fn from_word(word: &str) -> Option<DhcpClient> {
        match word {
            "dhcp" => Some(DhcpClient::Native),
            "udhcpc" => Some(DhcpClient::Udhcpc),
            "dhclient" => Some(DhcpClient::Dhclient),
            "dhcpcd" => Some(DhcpClient::Dhcpcd),
            _ => None,
        }
    }

    pub fn program(self) -> &'static str {
        match self {
            DhcpClient::Native | DhcpClient::Udhcpc => "udhcpc",
            DhcpClient::Dhclient => "dhclient",
            DhcpClient::Dhcpcd => "dhcpcd",
        }
    }
}

/// An interface name the kernel will take: 1 to 15 bytes, no `/`, no space.
pub fn check_ifname(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("an interface name cannot be empty".into());
    }
    if name.len() > IFNAME_MAX {
        return Err(format!("interface name '{name}' is longer than {IFNAME_MAX} bytes"));
    }
    if name == "." || name == ".." || name.contains(['/', ':']) || name.contains(char::is_whitespace) {
        return Err(format!("interface name '{name}' is not valid (no '/', ':', spaces, '.' or '..')"));
    }
    Ok(())
}

/// What follows `@` in `[mac][@vlan]`, as typed. Its meaning depends on
/// the host interface, known only once it is looked up: a VLAN id on a
/// physical interface, a partition key on IPoIB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag(pub String);

impl Tag {
    /// An 802.1Q VLAN id: 1 to 4094.
    pub fn vlan_id(&self) -> Result<u16> {
        let tag = &self.0;
        match tag.parse::<u16>() {
            Ok(id @ 1..=4094) => Ok(id),
            _ => Err(Error::new(Kind::Usage, format!("invalid VLAN ID '{tag}' (must be 1-4094)"))),
        }
    }

    /// An InfiniBand partition key, written in hex as the original took it
    /// (`@8001` is pkey 0x8001).
    pub fn pkey(&self) -> Result<u16> {
        let tag = &self.0;
        match u16::from_str_radix(tag.trim_start_matches("0x"), 16) {
            Ok(key) if key != 0 && !tag.is_empty() => Ok(key),
            _ => Err(Error::new(Kind::Usage, format!("invalid partition key '{tag}' (hex, 1-ffff)"))),
        }
    }
}

/// A duration as the operator typed it: "10", "2.5".
pub fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifnames() {
        assert!(check_ifname("eth1").is_ok());
        assert!(check_ifname("abcdefghijklmno").is_ok());
        assert_eq!(
            check_ifname("abcdefghijklmnop").unwrap_err(),
            "interface name 'abcdefghijklmnop' is longer than 15 bytes"
        );
        assert!(check_ifname("a/b").is_err());
        assert!(check_ifname("").is_err());
    }
}
