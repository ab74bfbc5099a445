//! Records: what pipework made, kept after the run so that it can be shown,
//! checked against the kernel, undone, and made again after a restart.
//!
//! One record per guest, one JSON file per record (see `store`). A record
//! holds the guest (and how to find it again), the host network namespace
//! it was plumbed from, and per interface the facts an operator or a later
//! run needs: names on both sides, what it hangs off and how, MAC, MTU,
//! addresses, gateway, VLAN, DHCP, and the `route`/`rule` lines applied since.

mod bridges;
mod guest;
pub mod private_files;
mod store;

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};

use crate::family::Family;
use crate::mac::Mac;
use crate::request::{MacvlanMode, DHCP_TIMEOUT};

pub use bridges::BridgeRecord;
pub use guest::{Finder, GuestRecord, HostNs, NsId};
pub use store::{Broken, Listing, Lock, Store, DEFAULT_DIR, DIR_ENV};

/// The record format this build writes; a record from a newer build is
/// refused rather than half understood. Fields added later carry
/// `#[serde(default)]`, which needs no new version.
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub version: u32,
    pub guest: GuestRecord,
    /// The network namespace the host sides live in.
    pub host: HostNs,
    pub interfaces: Vec<Interface>,
    /// `pipework route|rule GUEST ...` lines applied since, in order, each
    /// as its words after the guest (`["route", "add", "10.0.0.0/8", ...]`).
    #[serde(default)]
    pub commands: Vec<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interface {
    /// Its name in the guest.
    pub name: String,
    /// Its index in the guest when it was made.
    pub ifindex: u32,
    pub how: How,
    /// The host's end: the veth peer, the macvlan or IPoIB parent (the VLAN
    /// device for a macvlan on a VLAN), or the name a moved interface had.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_side: Option<String>,
    pub attached_to: Attached,
    /// The MAC it has: given, derived or the kernel's, read back after the run.
    pub mac: Mac,
    pub mtu: u32,
    #[serde(default)]
    pub addresses: Vec<IpNetwork>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// The VLAN id (the partition key for IPoIB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
    /// The attach asked for the Linux bridge's VLAN filtering
    /// (`--vlan-filtering`): a replay asks again, and the bridge keeps it
    /// after a detach (the other ports' VLANs depend on it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub vlan_filtering: bool,
    /// The attach was told to leave the firewall alone (`--no-firewall`):
    /// a replay is told again, and check does not ask for the FORWARD rule.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_firewall: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhcp: Option<DhcpRecord>,
    /// The guest's default route that `@GW` replaced, if it had one: a
    /// detach puts it back while the default is still the one set here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_default: Option<DefaultRoute>,
    /// The other family's gateway, given with an address added later (dual
    /// stack); `gateway` is the first family's. Absent from records of one
    /// family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_gateway: Option<AddedGateway>,
    /// Set for an interface a CNI ADD made: what DEL, GC and CHECK need.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cni: Option<CniRecord>,
    /// The link made on the host (a veth's host side) as it was made: a
    /// later link that took its name is not deleted for it. None for the
    /// other kinds, and in records of before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_link: Option<LinkId>,
    /// A macvlan's mode (`--macvlan-mode`); bridge in records of before it
    /// was kept, as every macvlan was then.
    #[serde(default, skip_serializing_if = "MacvlanMode::is_bridge")]
    pub macvlan_mode: MacvlanMode,
    /// `--host-access`: the host's macvlan on the same parent (or VLAN
    /// device) through which the host routes to each of `addresses`.
    /// Shared by every guest with host access there; it goes with the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shim: Option<String>,
}

impl Interface {
    /// An interface of kind `how` as the kernel made it, and nothing else
    /// recorded yet: what the kind, the request or a later run adds goes
    /// on top (`Interface { addresses, ..Interface::new(..) }`).
    pub fn new(name: String, ifindex: u32, how: How, mac: Mac, mtu: u32) -> Interface {
        Interface {
            name,
            ifindex,
            how,
            host_side: None,
            attached_to: Attached::None,
            mac,
            mtu,
            addresses: Vec::new(),
            gateway: None,
            vlan: None,
            vlan_filtering: false,
            no_firewall: false,
            dhcp: None,
            replaced_default: None,
            second_gateway: None,
            cni: None,
            host_link: None,
            macvlan_mode: MacvlanMode::default(),
            shim: None,
        }
    }
}

/// What tells a link from another that took its name: its index, kind
/// (`veth`) and MAC, in its own namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkId {
    pub ifindex: u32,
    pub kind: String,
    pub mac: Mac,
}

/// A CNI attachment's own facts, beside the interface's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniRecord {
    /// The network's name (the configuration's `name`): GC collects only
    /// its own network's attachments.
    pub network: String,
    /// The configuration ADD got on stdin: a GC's IPAM DEL gets it again.
    pub config: serde_json::Value,
    /// ADD's own result (without any prevResult), in the 1.1.0 shape: what
    /// CHECK compares the kernel with.
    pub result: serde_json::Value,
    /// The nf_tables rules ADD made (`ipMasq`, `macspoofchk`), as `nft`
    /// lines: chain, rule, the comment that tags them with the attachment.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
    /// The configuration's flags as ADD parsed them; None in records of
    /// before they were kept (see `flags`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<CniFlags>,
}

impl CniRecord {
    /// The flags ADD went by: kept, or, in a record of before they were,
    /// read from its configuration as ADD read them (`true` turns one on).
    pub fn flags(&self) -> CniFlags {
        self.flags.unwrap_or_else(|| {
            let on = |key: &str| self.config.get(key) == Some(&serde_json::Value::Bool(true));
            CniFlags { ip_masq: on("ipMasq"), mac_spoof_check: on("macspoofchk") }
        })
    }
}

/// The CNI configuration's flags that decide an attachment's nf_tables
/// rules, which DEL, GC and CHECK go by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniFlags {
    /// `ipMasq`: the container's addresses masqueraded beyond their subnets.
    #[serde(rename = "ipMasq")]
    pub ip_masq: bool,
    /// `macspoofchk`: frames from the container with another source MAC dropped.
    #[serde(rename = "macspoofchk")]
    pub mac_spoof_check: bool,
}

/// A default route as it was before an attach replaced it: via `gateway`
/// out of the guest's link `dev` (one without either is not recorded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultRoute {
    pub gateway: IpAddr,
    pub dev: String,
}

/// A gateway given with an added address, and the default route of its
/// family it replaced, as `gateway` and `replaced_default` are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddedGateway {
    pub gateway: IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_default: Option<DefaultRoute>,
}

impl Interface {
    /// Each family's gateway, with the default route it replaced.
    pub fn gateways(&self) -> Vec<(IpAddr, Option<&DefaultRoute>)> {
        let first = self.gateway.map(|gw| (gw, self.replaced_default.as_ref()));
        let second = self.second_gateway.as_ref().map(|g| (g.gateway, g.replaced_default.as_ref()));
        first.into_iter().chain(second).collect()
    }

    /// The gateway of `family`, if one was given.
    pub fn gateway_of(&self, family: Family) -> Option<IpAddr> {
        self.gateways().into_iter().map(|(gw, _)| gw).find(|gw| Family::of(*gw) == family)
    }

    /// Keeps a gateway given with an added address: in the first slot if
    /// the interface has none yet (a record of one family reads as before),
    /// else as the other family's.
    pub fn add_gateway(&mut self, gateway: IpAddr, replaced_default: Option<DefaultRoute>) {
        if self.gateway.is_none() {
            (self.gateway, self.replaced_default) = (Some(gateway), replaced_default);
        } else {
            self.second_gateway = Some(AddedGateway { gateway, replaced_default });
        }
    }
}

/// How the interface came to be in the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum How {
    /// A veth pair; the host side is its peer.
    Veth,
    /// A macvlan child of the host side, made on the host and moved in.
    Macvlan,
    /// The host's own interface (or its VLAN device), lent with
    /// `--direct-phys`: detaching gives it back under its host-side name.
    /// "moved" on disk, as records have always said it.
    #[serde(rename = "moved")]
    Lent,
    Dummy,
    /// An IPoIB child of the host side.
    Ipoib,
}

impl How {
    pub fn word(self) -> &'static str {
        match self {
            How::Veth => "veth",
            How::Macvlan => "macvlan",
            How::Lent => "moved",
            How::Dummy => "dummy",
            How::Ipoib => "ipoib",
        }
    }
}

/// What the host side hangs off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Attached {
    /// A Linux bridge, the host side its port.
    Bridge(String),
    /// An Open vSwitch bridge and the port the host side is.
    Ovs {
        bridge: String,
        port: String,
    },
    /// A physical interface, parent of the host side (through a VLAN device
    /// when `vlan` is set).
    Parent(String),
    None,
}

impl Attached {
    /// `bridge br0`, `ovs br-int`, `parent eth0`, `-`.
    pub fn describe(&self) -> String {
        match self {
            Attached::Bridge(name) => format!("bridge:{name}"),
            Attached::Ovs { bridge, .. } => format!("ovs:{bridge}"),
            Attached::Parent(name) => format!("parent:{name}"),
            Attached::None => "-".into(),
        }
    }
}

/// A DHCP-configured interface: the client and the agent that renews.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhcpRecord {
    /// `dhcp` (the native client), `udhcpc`, `dhclient` or `dhcpcd`.
    pub client: String,
    #[serde(default)]
    pub foreground: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<String>,
    /// `--timeout`, the wait for a lease, in milliseconds (records from
    /// before it was kept waited the default).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// The process that holds the lease, while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_pid: Option<u32>,
    /// When that process started (clock ticks after boot): a later process
    /// with the same PID is not the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_started: Option<u64>,
    /// What holds the lease: the agent's lease file, or the resolv.conf a
    /// host client's script wrote for the guest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_file: Option<String>,
    /// `--resolv-conf`: where the guest's /etc/resolv.conf as it was before
    /// the lease's DNS went in is kept, for detach to put back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolv_conf: Option<String>,
}

fn default_timeout_ms() -> u64 {
    DHCP_TIMEOUT.as_millis() as u64
}

impl Record {
    pub fn new(guest: GuestRecord, host: HostNs) -> Record {
        Record { version: VERSION, guest, host, interfaces: Vec::new(), commands: Vec::new() }
    }

    pub fn key(&self) -> String {
        self.guest.find.key()
    }

    /// The guest's name for messages: the container's name; a CNI
    /// container's ID shortened to 12 characters, as `docker ps` and
    /// `podman ps` show IDs (CNI gives no name); else the label.
    pub fn guest_name(&self) -> &str {
        match &self.guest.find {
            Finder::Container { name, .. } if !name.is_empty() => name.trim_start_matches('/'),
            Finder::Cni { container_id, .. } => container_id.get(..12).unwrap_or(container_id),
            _ => &self.guest.label,
        }
    }

    pub fn interface(&self, name: &str) -> Option<&Interface> {
        self.interfaces.iter().find(|i| i.name == name)
    }

    /// Adds an interface, replacing one of the same guest-side name.
    pub fn put_interface(&mut self, iface: Interface) {
        self.interfaces.retain(|i| i.name != iface.name);
        self.interfaces.push(iface);
    }

    /// The interface `name` if a CNI ADD made it, with its CNI facts.
    pub fn cni_interface(&self, name: &str) -> Option<(&Interface, &CniRecord)> {
        self.interface(name).and_then(|i| Some((i, i.cni.as_ref()?)))
    }

    /// Whether `arg` names this record's guest (see `Finder::answers_to`);
    /// the label it was attached with counts too.
    pub fn answers_to(&self, arg: &str) -> bool {
        self.guest.label == arg || self.guest.find.answers_to(arg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(id: &str) -> Record {
        let guest = GuestRecord {
            label: "xcatmn".into(),
            find: Finder::Container { runtime: "docker".into(), id: id.into(), name: "/xcatmn".into() },
            netns: NsId { ino: 4026532900, dev: 4 },
            engine: None,
        };
        let mut record = Record::new(guest, HostNs { id: NsId { ino: 4026531840, dev: 4 }, netns: None });
        record.put_interface(Interface {
            host_side: Some("veth1pl1234".into()),
            attached_to: Attached::Bridge("br0".into()),
            addresses: vec!["10.5.106.101/24".parse().unwrap()],
            gateway: Some("10.5.106.1".parse().unwrap()),
            ..Interface::new("eth1".into(), 7, How::Veth, "02:42:0a:05:6a:65".parse().unwrap(), 1500)
        });
        record
    }

    #[test]
    fn json_shape() {
        let record = sample("abc123");
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["version"], 1);
        assert_eq!(json["guest"]["find"]["kind"], "container");
        assert_eq!(json["host"]["ino"], 4026531840u64);
        assert_eq!(json["interfaces"][0]["attached_to"]["bridge"], "br0");
        assert_eq!(json["interfaces"][0]["how"], "veth");
        assert_eq!(json["interfaces"][0]["mac"], "02:42:0a:05:6a:65");
        assert_eq!(json["interfaces"][0]["addresses"][0], "10.5.106.101/24");
        let back: Record = serde_json::from_value(json).unwrap();
        assert_eq!(back, record);
    }

    /// A record of one family is written as before; a second family's
    /// gateway is kept beside it, and a record without it still loads.
    #[test]
    fn a_second_gateway_is_optional() {
        let record = sample("abc");
        let json = serde_json::to_value(&record).unwrap();
        assert!(json["interfaces"][0].get("second_gateway").is_none());
        let mut dual = record.clone();
        let iface = &mut dual.interfaces[0];
        iface.addresses.push("2001:db8::2/64".parse().unwrap());
        let old = DefaultRoute { gateway: "2001:db8:77::1".parse().unwrap(), dev: "eth0".into() };
        iface.add_gateway("2001:db8::1".parse().unwrap(), Some(old.clone()));
        let json = serde_json::to_value(&dual).unwrap();
        assert_eq!(json["interfaces"][0]["gateway"], "10.5.106.1");
        assert_eq!(
            json["interfaces"][0]["second_gateway"],
            serde_json::json!({"gateway": "2001:db8::1", "replaced_default": {"gateway": "2001:db8:77::1", "dev": "eth0"}})
        );
        let back: Record = serde_json::from_value(json).unwrap();
        assert_eq!(back, dual);
        assert_eq!(back.interfaces[0].gateway_of(Family::V6), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(back.interfaces[0].gateways()[1], ("2001:db8::1".parse().unwrap(), Some(&old)));
        // The first gateway given goes where a record of one family keeps it.
        let mut none = record.interfaces[0].clone();
        none.gateway = None;
        none.add_gateway("10.5.106.1".parse().unwrap(), None);
        assert_eq!(none, record.interfaces[0]);
    }

    #[test]
    fn keys_are_file_names() {
        assert_eq!(sample("abc").key(), "docker-abc");
        assert_eq!(Finder::Path { path: "/run/netns/x y".into() }.key(), "path-%2Frun%2Fnetns%2Fx%20y");
        assert_eq!(Finder::Netns { name: "..".into() }.key(), "netns-..");
        assert_eq!(Finder::Lxc { name: "a/b".into() }.key(), "lxc-a%2Fb");
        assert_eq!(Finder::Pid { pid: 42 }.key(), "pid-42");
        let cni = Finder::Cni { container_id: "f00d".into(), netns: "/var/run/netns/cni-1".into() };
        assert_eq!(cni.key(), "cni-f00d");
    }

    /// A record written before CNI attachments were records reads the
    /// same, and one without CNI facts is written as it was.
    #[test]
    fn cni_fields_are_optional() {
        let record = sample("abc");
        let json = serde_json::to_value(&record).unwrap();
        assert!(json["interfaces"][0].get("cni").is_none());
        let mut cni = record.clone();
        cni.guest.find =
            Finder::Cni { container_id: "0123456789abcdef".into(), netns: "/run/netns/x".into() };
        cni.interfaces[0].cni = Some(CniRecord {
            network: "testnet".into(),
            config: serde_json::json!({"type": "pipework"}),
            result: serde_json::json!({"cniVersion": "1.1.0"}),
            rules: Vec::new(),
            flags: None,
        });
        let json = serde_json::to_value(&cni).unwrap();
        assert_eq!(json["guest"]["find"]["kind"], "cni");
        assert_eq!(json["interfaces"][0]["cni"]["network"], "testnet");
        assert_eq!(serde_json::from_value::<Record>(json).unwrap(), cni);
        assert_eq!(cni.guest_name(), "0123456789ab");
        assert!(cni.answers_to("0123456789abcdef") && cni.answers_to("0123456789ab"));
        assert!(!cni.answers_to("0123") && cni.cni_interface("eth1").is_some());
    }

    /// The flags ADD parsed are kept; a record of before they were reads
    /// them from its configuration, where only `true` turns one on.
    #[test]
    fn cni_flags_kept_or_read_from_an_older_record() {
        let older = serde_json::json!({
            "network": "testnet",
            "config": {"type": "pipework", "ipMasq": true, "macspoofchk": "yes"},
            "result": {"cniVersion": "1.1.0"},
        });
        let cni: CniRecord = serde_json::from_value(older).unwrap();
        assert_eq!(cni.flags, None);
        assert_eq!(cni.flags(), CniFlags { ip_masq: true, mac_spoof_check: false });
        let kept = CniFlags { ip_masq: false, mac_spoof_check: true };
        let now = CniRecord { flags: Some(kept), ..cni };
        let json = serde_json::to_value(&now).unwrap();
        assert_eq!(json["flags"], serde_json::json!({"ipMasq": false, "macspoofchk": true}));
        assert_eq!(serde_json::from_value::<CniRecord>(json).unwrap().flags(), kept);
    }

    #[test]
    fn guests_answer_to_their_names() {
        let id = "0123456789abcdef0123";
        let record = sample(id);
        assert!(record.answers_to("xcatmn") && record.answers_to(id) && record.answers_to(&id[..12]));
        assert!(!record.answers_to(&id[..6]) && !record.answers_to("other"));
        assert!(Finder::Netns { name: "blue".into() }.answers_to("netns:blue"));
        assert!(Finder::Pid { pid: 42 }.answers_to("pid:42"));
        assert!(!Finder::Pid { pid: 42 }.answers_to("42"));
    }
}
