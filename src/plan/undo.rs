//! How each applied step is taken back: the data a rollback needs, kept
//! as the step ran (indexes, what was there before).

use std::path::PathBuf;

use rtnetlink::packet_route::address::AddressMessage;
use rtnetlink::packet_route::route::RouteMessage;

use serde::{Deserialize, Serialize};

use super::Side;
use crate::dhcp::agent::AgentId;
use crate::dhcp::client::Client;
use crate::dhcp::resolv_conf;
use crate::dhcp::wire::Lease;
use crate::iproute2::RuleCmd;
use crate::mac::Mac;
use crate::sys::firewall::Accept;
use crate::sys::nftables::{Hook, Tag};

impl Undo {
    /// Whether it takes back something that outlives a reboot (see
    /// `Step::outlives_boot`): all a recovery after one has to do.
    pub fn outlives_boot(&self) -> bool {
        matches!(self, Undo::OvsDelPort { .. } | Undo::OvsDelBridgeIfUnused { .. })
    }

    /// Whether it acts in the guest's namespace (gone with it, when the
    /// guest is).
    pub fn in_guest(&self) -> bool {
        match self {
            Undo::DeleteLink { side, .. }
            | Undo::DeleteAddress { side, .. }
            | Undo::LinkDown { side, .. }
            | Undo::Ipv6 { side, .. }
            | Undo::SetMac { side, .. }
            | Undo::ReplaceRoute { side, .. }
            | Undo::SetMtu { side, .. } => *side == Side::Guest,
            Undo::RestoreRoute { .. }
            | Undo::DeleteRoute { .. }
            | Undo::MoveBack { .. }
            | Undo::MoveIn { .. }
            | Undo::AddRule { .. }
            | Undo::RestoreResolvConf { .. } => true,
            Undo::DeleteBridgeIfUnused { .. }
            | Undo::DeleteHostRoute { .. }
            | Undo::NoMaster { .. }
            | Undo::AddAddress { .. }
            | Undo::Release { .. }
            | Undo::StopAgent { .. }
            | Undo::OvsDelPort { .. }
            | Undo::NoVlanFiltering { .. }
            | Undo::OvsDelBridgeIfUnused { .. }
            | Undo::DropRules { .. }
            | Undo::ForwardRemove { .. }
            | Undo::ForwardAccept { .. } => false,
        }
    }
}

/// How an applied step is taken back. Links are acted on by the ifindex
/// they had when the step ran, never looked up again by name: a guest may
/// rename its links and plant another under the name.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Undo {
    DeleteLink {
        side: Side,
        name: String,
        index: u32,
    },
    /// Only if no port is left on it: a concurrent run may be using it.
    DeleteBridgeIfUnused {
        name: String,
    },
    RestoreRoute {
        #[serde(with = "crate::sys::netlink::wire::route")]
        route: Box<RouteMessage>,
    },
    DeleteRoute {
        #[serde(with = "crate::sys::netlink::wire::route")]
        route: Box<RouteMessage>,
    },
    /// A route added on the host (`--host-access`) deleted.
    DeleteHostRoute {
        #[serde(with = "crate::sys::netlink::wire::route")]
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
        side: Side,
        #[serde(with = "crate::sys::netlink::wire::address")]
        addr: Box<AddressMessage>,
    },
    LinkDown {
        side: Side,
        name: String,
        index: u32,
    },
    AddAddress {
        dev: String,
        #[serde(with = "crate::sys::netlink::wire::address")]
        addr: Box<AddressMessage>,
    },
    /// Returns a host interface from the guest under its own name and state.
    MoveBack {
        guest_name: String,
        guest_index: u32,
        host_name: String,
        was_up: bool,
    },
    /// `net.ipv6.conf.<dev>.disable_ipv6` back as it was.
    Ipv6 {
        side: Side,
        index: u32,
        enable: bool,
    },
    SetMac {
        side: Side,
        name: String,
        index: u32,
        mac: Mac,
    },
    /// Puts a moved or replaced route back as it was.
    ReplaceRoute {
        side: Side,
        #[serde(with = "crate::sys::netlink::wire::route")]
        route: Box<RouteMessage>,
    },
    /// Gives a DHCP lease back. Not kept in an intent log: a lease not
    /// given back runs out at the server.
    #[serde(skip)]
    Release {
        client: Box<Client>,
        index: u32,
        lease: Box<Lease>,
    },
    /// The guest's resolv.conf given back what `saved` kept, which goes.
    RestoreResolvConf {
        guest: resolv_conf::Guest,
        saved: PathBuf,
    },
    /// SIGTERM to the DHCP agent, which releases its lease; `lease_file`
    /// tells it from a later process of its PID.
    StopAgent {
        agent: AgentId,
        lease_file: PathBuf,
    },
    SetMtu {
        side: Side,
        index: u32,
        dev: String,
        mtu: u32,
    },
    OvsDelPort {
        uuid: String,
        name: String,
    },
    /// VLAN filtering off again on a bridge that had it off.
    NoVlanFiltering {
        name: String,
        index: u32,
    },
    /// Only if no other port is on it: a concurrent run may be using it.
    OvsDelBridgeIfUnused {
        uuid: String,
        name: String,
    },
    /// Lends a given-back interface to the guest again.
    MoveIn {
        host_name: String,
        guest_name: String,
    },
    /// Adds a deleted rule again (a detach's; not kept in an intent log).
    #[serde(skip)]
    AddRule {
        rule: Box<RuleCmd>,
    },
    /// Removes the nf_tables rules of `hook`'s chain that carry `tag`.
    DropRules {
        hook: Hook,
        tag: Tag,
    },
    /// Removes a bridge's accepting rules this run added, and from its record.
    ForwardRemove {
        bridge: String,
        rules: Vec<Accept>,
    },
    /// Adds a bridge's accepting rules again, and to its record.
    ForwardAccept {
        bridge: String,
        rules: Vec<Accept>,
    },
}
