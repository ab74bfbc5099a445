//! A plan is the list of changes one run makes. Each step knows its
//! iproute2 equivalent (for `--dry-run`, logs and error messages) and, once
//! applied, how to undo itself. Planning looks at the system but changes
//! nothing; `apply` makes the changes and rolls back on the first failure.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

use ipnetwork::IpNetwork;
use rtnetlink::packet_route::address::AddressMessage;
use rtnetlink::packet_route::route::RouteMessage;

use crate::family::Family;
use crate::mac::Mac;

/// The namespace a step acts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Host,
    Guest,
}

#[derive(Debug, Clone)]
pub enum Step {
    /// Create a Linux bridge and bring it up; a bridge that appears
    /// meanwhile (a concurrent run) is reused.
    CreateBridge {
        name: String,
    },
    /// Delete a leftover host-side veth that is down, as the original did.
    DeleteStale {
        name: String,
    },
    /// A veth pair whose peer is created inside the guest under its final name.
    CreateVeth {
        host: String,
        guest: String,
        mtu: u32,
        mac: Option<Mac>,
        netns: String,
    },
    SetMaster {
        link: String,
        bridge: String,
    },
    LinkUp {
        side: Side,
        name: String,
    },
    AddAddress {
        dev: String,
        net: IpNetwork,
    },
    /// `ip route del default`: the first default route of the family.
    DeleteDefault {
        family: Family,
        route: Box<RouteMessage>,
    },
    /// A host route to a gateway the guest has no route to yet.
    GatewayRoute {
        gateway: IpAddr,
        dev: String,
    },
    ReplaceDefault {
        gateway: IpAddr,
        dev: String,
    },
    /// `mkbridge`: a bridge with its port-to-be's MAC and MTU, made down.
    MakeBridge {
        name: String,
        mac: Mac,
        mtu: u32,
        stp: bool,
        forward_delay: Option<u32>,
    },
    /// An address of one link put on another, as it was listed.
    CopyAddress {
        to: String,
        addr: Box<AddressMessage>,
        text: String,
    },
    DeleteAddress {
        dev: String,
        addr: Box<AddressMessage>,
        text: String,
    },
    /// `ip route replace` with the device changed: atomic, the route is
    /// never missing.
    MoveRoute {
        route: Box<RouteMessage>,
        to: String,
        text: String,
    },
    /// A VLAN, macvlan, dummy or IPoIB link on the host, to be moved in.
    CreateLink {
        name: String,
        kind: NewLink,
    },
    /// Into the guest under its final name, in one request. With
    /// `give_back`, the interface was the host's own (`--direct-phys`) and an
    /// undo returns it; otherwise an undo deletes it.
    MoveToGuest {
        name: String,
        to: String,
        netns: String,
        give_back: bool,
    },
    SetMac {
        dev: String,
        mac: Mac,
    },
    /// `net.ipv6.conf.<dev>.disable_ipv6`. Turned on in a guest whose new
    /// interfaces start without it (Docker's `--net=none` containers) when
    /// the operator asks for an IPv6 address; turned off on the host side of
    /// a veth, a bridge port that needs no IPv6 of its own.
    Ipv6 {
        side: Side,
        dev: String,
        enable: bool,
    },
    /// A gratuitous ARP for `ip`, once the bridge port `port` (if any)
    /// forwards; its failure is not the run's failure.
    Announce {
        dev: String,
        ip: Ipv4Addr,
        port: Option<String>,
    },
}

/// The kinds of link `CreateLink` makes; parents are named, and looked up
/// when the step runs.
#[derive(Debug, Clone)]
pub enum NewLink {
    Vlan { parent: String, vid: u16, mtu: u32 },
    Macvlan { parent: String, mtu: u32 },
    Dummy,
    Ipoib { parent: String, pkey: Option<u16> },
}

impl NewLink {
    pub fn parent(&self) -> Option<&str> {
        match self {
            NewLink::Vlan { parent, .. }
            | NewLink::Macvlan { parent, .. }
            | NewLink::Ipoib { parent, .. } => Some(parent),
            NewLink::Dummy => None,
        }
    }

    /// What to tell the operator when the kernel does not know the kind.
    pub fn missing(&self) -> &'static str {
        match self {
            NewLink::Vlan { .. } => "kernel lacks 802.1Q VLAN support (module 8021q)",
            NewLink::Macvlan { .. } => "kernel lacks macvlan support (module macvlan)",
            NewLink::Dummy => "kernel lacks dummy interface support (module dummy)",
            NewLink::Ipoib { .. } => "kernel lacks IPoIB support (module ib_ipoib)",
        }
    }
}

/// How an applied step is taken back.
#[derive(Debug)]
pub enum Undo {
    DeleteLink {
        side: Side,
        name: String,
    },
    /// Only if no port is left on it: a concurrent run may be using it.
    DeleteBridgeIfUnused {
        name: String,
    },
    RestoreRoute {
        route: Box<RouteMessage>,
    },
    DeleteRoute {
        route: Box<RouteMessage>,
    },
    /// Leave the bridge, and give it back the MAC it had: a bridge that
    /// took its port's address is left with none when the port goes.
    NoMaster {
        name: String,
        bridge: String,
        bridge_mac: Option<Mac>,
    },
    DeleteAddress {
        addr: Box<AddressMessage>,
    },
    LinkDown {
        side: Side,
        name: String,
    },
    AddAddress {
        dev: String,
        addr: Box<AddressMessage>,
    },
    /// Returns a host interface from the guest under its own name and state.
    MoveBack {
        guest_name: String,
        host_name: String,
        was_up: bool,
    },
    SetMac {
        side: Side,
        name: String,
        mac: Mac,
    },
    /// Puts a moved route back as it was.
    ReplaceRoute {
        route: Box<RouteMessage>,
    },
}

#[derive(Debug)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// The command prefix that enters the guest, for display.
    pub enter: String,
}

impl Plan {
    /// `enter`: the command prefix that enters the guest, for display.
    pub fn new(enter: &str) -> Plan {
        Plan { steps: Vec::new(), enter: enter.to_string() }
    }

    /// A plan with no guest: every step acts on the host.
    pub fn on_host() -> Plan {
        Plan { steps: Vec::new(), enter: String::new() }
    }

    pub fn push(&mut self, step: Step) {
        self.steps.push(step);
    }

    /// `--dry-run`: the steps as commands, one a line.
    pub fn print(&self) {
        for step in &self.steps {
            println!("{}", self.command(step));
        }
    }

    /// The step as a command an operator could type.
    pub fn command(&self, step: &Step) -> String {
        let body = step.to_string();
        match step.side() {
            Side::Host => body,
            Side::Guest => format!("{} {body}", self.enter),
        }
    }
}

impl Step {
    pub fn side(&self) -> Side {
        match self {
            Step::CreateBridge { .. }
            | Step::DeleteStale { .. }
            | Step::CreateVeth { .. }
            | Step::SetMaster { .. }
            | Step::MakeBridge { .. }
            | Step::CopyAddress { .. }
            | Step::DeleteAddress { .. }
            | Step::MoveRoute { .. }
            | Step::CreateLink { .. }
            | Step::MoveToGuest { .. } => Side::Host,
            Step::LinkUp { side, .. } | Step::Ipv6 { side, .. } => *side,
            Step::AddAddress { .. }
            | Step::DeleteDefault { .. }
            | Step::GatewayRoute { .. }
            | Step::ReplaceDefault { .. }
            | Step::SetMac { .. }
            | Step::Announce { .. } => Side::Guest,
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::CreateBridge { name } => {
                write!(f, "ip link add {name} type bridge && ip link set {name} up")
            }
            Step::DeleteStale { name } => write!(f, "ip link del {name}"),
            Step::CreateVeth { host, guest, mtu, mac, netns } => {
                write!(f, "ip link add {host} mtu {mtu} type veth peer name {guest} mtu {mtu}")?;
                if let Some(mac) = mac {
                    write!(f, " address {mac}")?;
                }
                write!(f, " netns {netns}")
            }
            Step::SetMaster { link, bridge } => write!(f, "ip link set {link} master {bridge}"),
            Step::LinkUp { name, .. } => write!(f, "ip link set {name} up"),
            Step::AddAddress { dev, net } => match net {
                IpNetwork::V4(v4) if v4.prefix() < 31 => {
                    write!(f, "ip -4 addr add {net} brd {} dev {dev}", v4.broadcast())
                }
                _ => write!(f, "ip {} addr add {net} dev {dev}", Family::of(net.ip()).flag()),
            },
            Step::DeleteDefault { family, .. } => {
                write!(f, "ip {} route del default", family.flag())
            }
            Step::GatewayRoute { gateway, dev } => {
                let (flag, len) = if gateway.is_ipv4() { ("-4", 32) } else { ("-6", 128) };
                write!(f, "ip {flag} route get {gateway} || ip {flag} route add {gateway}/{len} dev {dev}")
            }
            Step::MakeBridge { name, mac, mtu, stp, forward_delay } => {
                write!(
                    f,
                    "ip link add {name} address {mac} mtu {mtu} type bridge stp_state {}",
                    u8::from(*stp)
                )?;
                match forward_delay {
                    Some(secs) => write!(f, " forward_delay {}", secs * 100),
                    None => Ok(()),
                }
            }
            Step::CreateLink { name, kind } => match kind {
                NewLink::Vlan { parent, vid, mtu } => {
                    write!(f, "ip link add link {parent} name {name} mtu {mtu} type vlan id {vid}")
                }
                NewLink::Macvlan { parent, mtu } => {
                    write!(f, "ip link add link {parent} dev {name} mtu {mtu} type macvlan mode bridge")
                }
                NewLink::Dummy => write!(f, "ip link add dev {name} type dummy"),
                NewLink::Ipoib { parent, pkey: None } => {
                    write!(f, "ip link add link {parent} name {name} type ipoib")
                }
                NewLink::Ipoib { parent, pkey: Some(key) } => {
                    write!(f, "ip link add link {parent} name {name} type ipoib pkey {key:#x}")
                }
            },
            Step::MoveToGuest { name, to, netns, .. } => {
                write!(f, "ip link set dev {name} netns {netns} name {to}")
            }
            Step::SetMac { dev, mac } => write!(f, "ip link set dev {dev} address {mac}"),
            Step::Ipv6 { dev, enable, .. } => {
                write!(f, "sysctl -qw net.ipv6.conf.{dev}.disable_ipv6={}", u8::from(!enable))
            }
            Step::CopyAddress { to, text, .. } => write!(f, "ip addr add {text} dev {to}"),
            Step::DeleteAddress { dev, text, .. } => write!(f, "ip addr del {text} dev {dev}"),
            Step::MoveRoute { to, text, .. } => write!(f, "ip {text} dev {to}"),
            Step::Announce { dev, ip, .. } => {
                let key = format!("net.ipv4.conf.{dev}.arp_notify");
                let mac = format!("$(cat /sys/class/net/{dev}/address)");
                write!(f, "sysctl -qw {key}=1 && ip link set {dev} address {mac} && sysctl -qw {key}=0  # announces {ip}")
            }
            Step::ReplaceDefault { gateway, dev } => {
                write!(f, "ip {} route replace default via {gateway} dev {dev}", Family::of(*gateway).flag())
            }
        }
    }
}

impl fmt::Display for Undo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Undo::DeleteLink { name, .. } => write!(f, "ip link del {name}"),
            Undo::DeleteBridgeIfUnused { name } => {
                write!(f, "ip link del {name} (if it has no ports)")
            }
            Undo::RestoreRoute { .. } => write!(f, "ip route add <the deleted default route>"),
            Undo::DeleteRoute { .. } => write!(f, "ip route del <the route added>"),
            Undo::NoMaster { name, .. } => write!(f, "ip link set {name} nomaster"),
            Undo::LinkDown { name, .. } => write!(f, "ip link set {name} down"),
            Undo::AddAddress { dev, .. } => write!(f, "ip addr add <the deleted address> dev {dev}"),
            Undo::DeleteAddress { .. } => write!(f, "ip addr del <the address added>"),
            Undo::MoveBack { guest_name, host_name, .. } => {
                write!(f, "ip link set dev {guest_name} netns <host> name {host_name}")
            }
            Undo::SetMac { name, mac, .. } => write!(f, "ip link set dev {name} address {mac}"),
            Undo::ReplaceRoute { .. } => write!(f, "ip route replace <the route as it was>"),
        }
    }
}
