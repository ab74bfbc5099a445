//! A plan is the list of changes one run makes, as data: the steps, and
//! the undo each applied step leaves (`undo`). `render` shows them as
//! iproute2 commands (for `--dry-run`, logs and error messages). Planning
//! looks at the system but changes nothing; `apply` makes the changes and
//! rolls back on the first failure.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;

use ipnetwork::IpNetwork;
use rtnetlink::packet_route::address::AddressMessage;
use rtnetlink::packet_route::route::RouteMessage;

use crate::dhcp::agent::AgentId;
use crate::dhcp::resolv_conf;
use crate::dhcp::wire::Lease;
use crate::dhcp::Setup;
use crate::family::Family;
use crate::iproute2::RuleCmd;
use crate::mac::Mac;
use crate::request::{Dhcp, MacvlanMode};
use crate::sys::firewall::Accept;
use crate::sys::nftables::{Hook, Tag};
use crate::sys::vswitch::{NewPort, PortId};

pub mod lease;
mod render;
mod undo;

pub use render::AddPort;
pub use undo::Undo;

/// The namespace a step acts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
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
        /// Left to the kernel (1500) when not given.
        mtu: Option<u32>,
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
    /// An address added to a guest interface a run made before (a second
    /// address, dual stack): undone by itself, where `AddAddress`'s goes
    /// with its new link.
    AddAnotherAddress {
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
    /// `ip link set <bridge> type bridge vlan_filtering 1`, on a bridge
    /// this run made, or on request (`--vlan-filtering`) on an existing one,
    /// whose undo turns it off again.
    VlanFiltering {
        bridge: String,
    },
    /// The bridge port on VLAN `vid` untagged (its PVID), and off the VLAN
    /// the bridge gives new ports (`drop`), as the CNI bridge plugin does.
    /// Undone with the port: leaving the bridge drops its VLANs.
    PortVlan {
        port: String,
        vid: u16,
        drop: Option<u16>,
    },
    /// `ovs-vsctl add-br`, checked with ovs-vswitchd.
    OvsAddBridge {
        name: String,
    },
    /// `ovs-vsctl del-port` of pipework's ports on a bridge, in one
    /// transaction: those whose interfaces are gone (on attach and detach),
    /// and the one a detach undoes. Not undone: what it removes is dead.
    OvsDelPorts {
        bridge: String,
        ports: Vec<PortId>,
    },
    /// `ovs-vsctl add-port`, replacing a record of the same name on the same
    /// bridge (left by a run whose veth has gone).
    OvsAddPort {
        bridge: String,
        port: NewPort,
        replacing: Option<String>,
    },
    /// Promiscuous mode on a link (CNI `promiscMode`); kept on rollback,
    /// as the setting belongs to the bridge, not to one attachment.
    Promisc {
        name: String,
    },
    /// A bridge's MAC set to itself, so that it no longer follows its
    /// ports' (as the reference CNI plugin does for a gateway bridge).
    PinMac {
        name: String,
    },
    /// Hairpin mode on a bridge port (CNI `hairpinMode`).
    Hairpin {
        port: String,
    },
    /// A sysctl the attachment needs (forwarding on a gateway, DAD off in
    /// the guest); never undone: it is either per-interface, or host-wide
    /// and shared with the other attachments.
    Sysctl {
        side: Side,
        family: Family,
        /// An interface, or `all`.
        dev: String,
        key: &'static str,
        value: &'static str,
    },
    /// An address on a host link (a gateway address on its bridge); an
    /// address already there is left as it is, and kept on rollback.
    HostAddress {
        dev: String,
        net: IpNetwork,
    },
    /// `ip route add` in the guest; with no gateway, a link-scope route.
    /// A route already there wins, as in the reference CNI plugins.
    AddRoute {
        dst: IpNetwork,
        gw: Option<IpAddr>,
        dev: String,
    },
    /// A gratuitous ARP for `ip`, once the bridge port `port` (if any)
    /// forwards; its failure is not the run's failure.
    Announce {
        dev: String,
        ip: Ipv4Addr,
        port: Option<String>,
    },
    /// The native DHCP client takes a lease on `dev` once the bridge port
    /// `port` (if any) forwards; the steps that configure the lease
    /// (`lease::steps`) follow it.
    Dhcp {
        dev: String,
        port: Option<String>,
        setup: Box<Setup>,
    },
    SetMtu {
        dev: String,
        mtu: u32,
    },
    /// The agent that keeps the lease for the guest's life.
    StartAgent {
        dev: String,
        setup: Box<Setup>,
        lease: Box<Lease>,
        /// The client's packet socket, handed over so that its last close
        /// (an RCU grace period) is the agent's, not the run's.
        socket: Option<Arc<OwnedFd>>,
    },
    /// A host DHCP client (udhcpc, dhclient, dhcpcd) run in the guest, its
    /// script writing `resolv` instead of the machine's /etc/resolv.conf.
    HostDhcp {
        dhcp: Dhcp,
        argv: Vec<String>,
        guest: String,
        resolv: PathBuf,
    },
    /// `--resolv-conf`: the lease's DNS servers and domain written into the
    /// guest's /etc/resolv.conf in place, what it held kept at `saved`.
    ResolvConf {
        dev: String,
        guest: resolv_conf::Guest,
        lease: Box<Lease>,
        saved: PathBuf,
    },
    /// `detach`: the guest's resolv.conf (if the guest is still there)
    /// given back what `saved` kept, which is then removed.
    RestoreResolvConf {
        guest: Option<resolv_conf::Guest>,
        saved: PathBuf,
    },
    /// `detach`: the DHCP agent that keeps the lease stopped (SIGTERM: it
    /// releases the lease), if it still runs, and the lease's file removed.
    ForgetLease {
        agent: Option<AgentId>,
        file: PathBuf,
    },
    /// `detach`: a link deleted if it is there (a veth takes its peer
    /// along). Nothing brings a deleted link back, so a detach deletes last.
    DeleteLink {
        side: Side,
        name: String,
    },
    /// CNI `ipMasq`: traffic from each of `addresses` to outside its subnet
    /// (and not multicast) masqueraded, by rules of pipework's own nf_tables
    /// table that carry the attachment's `tag`; the tag's earlier rules go.
    Masquerade {
        addresses: Vec<IpNetwork>,
        tag: Tag,
    },
    /// CNI `macspoofchk`: frames entering the bridge from `port` whose
    /// source MAC is not that of the container's `dev` (read when the step
    /// runs) are dropped, by a rule tagged as `Masquerade`'s are.
    MacCheck {
        port: String,
        dev: String,
        tag: Tag,
    },
    /// CNI DEL and GC: the rules of `hook`'s chain that carry `tag` removed
    /// (none there is fine), the chain and its table with the last rule.
    /// Nothing brings them back: deleted last, as links are.
    DropRules {
        hook: Hook,
        tag: Tag,
    },
    /// CNI GC: the rules of `hook`'s chain of attachments of `network`
    /// other than the `valid` ones removed, on record or not; deleted last.
    CollectRules {
        hook: Hook,
        network: String,
        valid: Vec<Tag>,
    },
    /// Frames a Linux bridge forwards to itself accepted by the FORWARD
    /// hook that would drop them (`sys::firewall`): the rules of `rules`
    /// not there yet added, and recorded as the bridge's.
    ForwardAccept {
        bridge: String,
        rules: Vec<Accept>,
    },
    /// `detach` of a bridge's last attachment: the rules pipework added
    /// for it removed, and from its record.
    ForwardRemove {
        bridge: String,
        rules: Vec<Accept>,
    },
    /// `detach`: a lent host interface back to the host under its own name
    /// (`host` names that namespace for display).
    GiveBack {
        name: String,
        to: String,
        host: String,
    },
    /// `detach`: the guest's default route as it was before an attach
    /// replaced it, in place of the one the attach set (a replace: the
    /// guest is never without one).
    RestoreDefault {
        gateway: IpAddr,
        dev: String,
    },
    /// `--host-access`: `ip route add <ip>/32 dev <dev>` (/128) on the
    /// host, to a guest's address through the host's macvlan; one there
    /// already (left by the guest's last life) is kept as it is.
    HostRoute {
        ip: IpAddr,
        dev: String,
    },
    /// `detach`: that host route deleted, if it is there.
    DeleteHostRoute {
        ip: IpAddr,
        dev: String,
    },
    /// `detach`: a rule a `pipework rule GUEST add ...` made, deleted
    /// (`rule` is the add; already gone is no error).
    DeleteRule {
        rule: Box<RuleCmd>,
        text: String,
    },
}

/// The kinds of link `CreateLink` makes; parents are named, and looked up
/// when the step runs.
#[derive(Debug, Clone)]
pub enum NewLink {
    Vlan { parent: String, vid: u16, mtu: u32 },
    Macvlan { parent: String, mtu: u32, mode: MacvlanMode },
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
            | Step::MoveToGuest { .. }
            | Step::VlanFiltering { .. }
            | Step::PortVlan { .. }
            | Step::OvsAddBridge { .. }
            | Step::OvsDelPorts { .. }
            | Step::OvsAddPort { .. }
            | Step::Promisc { .. }
            | Step::PinMac { .. }
            | Step::Hairpin { .. }
            | Step::HostAddress { .. }
            | Step::Masquerade { .. }
            | Step::MacCheck { .. }
            | Step::DropRules { .. }
            | Step::CollectRules { .. }
            | Step::ForwardAccept { .. }
            | Step::ForwardRemove { .. }
            | Step::HostRoute { .. }
            | Step::DeleteHostRoute { .. }
            | Step::ForgetLease { .. }
            | Step::ResolvConf { .. }
            | Step::RestoreResolvConf { .. } => Side::Host,
            Step::LinkUp { side, .. }
            | Step::Ipv6 { side, .. }
            | Step::Sysctl { side, .. }
            | Step::DeleteLink { side, .. } => *side,
            Step::AddAddress { .. }
            | Step::AddAnotherAddress { .. }
            | Step::DeleteDefault { .. }
            | Step::GatewayRoute { .. }
            | Step::ReplaceDefault { .. }
            | Step::SetMac { .. }
            | Step::Announce { .. }
            | Step::Dhcp { .. }
            | Step::SetMtu { .. }
            | Step::StartAgent { .. }
            | Step::HostDhcp { .. }
            | Step::AddRoute { .. }
            | Step::GiveBack { .. }
            | Step::RestoreDefault { .. }
            | Step::DeleteRule { .. } => Side::Guest,
        }
    }
}
