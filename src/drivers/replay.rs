//! The way back from a record: the attach that makes a recorded interface
//! again, for the watch service's re-plumbing of a restarted guest.

use std::time::Duration;

use ipnetwork::IpNetwork;

use crate::family::Family;
use crate::records::{Attached, DhcpRecord, Finder, How, Interface, Record};
use crate::request::{Addressing, Attach, Dhcp, DhcpClient, GuestRef, HostIf};

/// The attach that makes `iface` again as recorded (same names, MAC,
/// address, gateway, VLAN, DHCP mode and options): for re-plumbing a
/// restarted guest. The guest is named as it can be found again (a
/// container by its ID). Every address is made again, each family's
/// gateway with the first address of that family; a DHCP interface leases
/// again with its MAC, so the server gives it the same address. A CNI attachment is the
/// runtime's to make again (it runs ADD when it restarts the container):
/// its replay names the namespace path it was made in.
pub fn replay(record: &Record, iface: &Interface) -> Attach {
    let guest = match &record.guest.find {
        Finder::Container { id, .. } => GuestRef::Name(id.clone()),
        Finder::Lxc { name } => GuestRef::Name(name.clone()),
        Finder::Netns { name } => GuestRef::Netns(name.clone()),
        Finder::Path { path } => GuestRef::Path(path.into()),
        Finder::Pid { pid } => GuestRef::Pid(*pid),
        Finder::Cni { netns, .. } => GuestRef::Path(netns.into()),
    };
    // Each family's gateway goes with its first address.
    let mut statics = Vec::new();
    for net in &iface.addresses {
        let family = Family::of(net.ip());
        let first = !statics.iter().any(|(n, _): &(IpNetwork, _)| Family::of(n.ip()) == family);
        statics.push((*net, iface.gateway_of(family).filter(|_| first)));
    }
    let mut statics = statics.into_iter();
    let addr = match (&iface.dhcp, statics.next()) {
        (Some(dhcp), _) => redone(dhcp).map_or(Addressing::None, Addressing::Dhcp),
        (None, Some((net, gateway))) => Addressing::Static { net, gateway },
        (None, None) => Addressing::None,
    };
    let mut req = Attach {
        host: HostIf::Name(host_of(iface)),
        direct_phys: false,
        container_if: Some(iface.name.clone()),
        local_if: None,
        guest,
        addr,
        mac: Some(iface.mac),
        tag: None,
        vlan_filtering: iface.vlan_filtering,
        no_firewall: iface.no_firewall,
        more_addresses: statics.collect(),
        macvlan_mode: None,
        host_access: false,
        resolv_conf: iface.dhcp.as_ref().is_some_and(|d| d.resolv_conf.is_some()),
    };
    iface.how.ask_again(iface, &mut req);
    req
}

/// The host interface `iface` was made from, as an attach names it.
fn host_of(iface: &Interface) -> String {
    // A dummy's host interface was any unused `dummy*` name.
    match &iface.attached_to {
        Attached::Bridge(name) | Attached::Parent(name) => name.clone(),
        Attached::Ovs { bridge, .. } => bridge.clone(),
        Attached::None => iface.host_side.clone().unwrap_or_else(|| "dummy".into()),
    }
}

/// Whether `req` asks for the host interface `iface` hangs off as its
/// replay would (same name, VLAN, `--direct-phys`; the `-l` name and MAC
/// where it gives them): the command line that adds an address to it.
pub fn same_host(record: &Record, iface: &Interface, req: &Attach) -> bool {
    let again = replay(record, iface);
    let host = match (&req.host, iface.how) {
        (HostIf::Name(name), How::Dummy) => name.starts_with("dummy"),
        (asked, _) => *asked == again.host,
    };
    host && req.tag == again.tag
        && req.direct_phys == again.direct_phys
        && req.local_if.as_ref().is_none_or(|l| again.local_if.as_ref() == Some(l))
        && req.mac.is_none_or(|m| again.mac == Some(m))
}

/// The DHCP word a record's mode was (`dhcp` is the native client), with
/// its options and its wait for a lease.
fn redone(d: &DhcpRecord) -> Option<Dhcp> {
    let client = DhcpClient::from_word(&d.client)?;
    // A record edited by hand cannot make a wait that overflows.
    let timeout = Duration::from_millis(d.timeout_ms).min(crate::request::MAX_WAIT);
    Some(Dhcp { client, foreground: d.foreground, options: d.options.clone(), timeout })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::dhcp::dhcp_record;
    use crate::plan::Plan;
    use crate::records::{AddedGateway, GuestRecord, HostNs, How, NsId};
    use crate::request::{MacvlanMode, Tag, DHCP_TIMEOUT};

    /// Container `abc`'s record, with `iface` its one interface.
    fn record_of(iface: &Interface) -> Record {
        let guest = GuestRecord {
            label: "xcatmn".into(),
            find: Finder::Container { runtime: "docker".into(), id: "abc".into(), name: "xcatmn".into() },
            netns: NsId { ino: 1, dev: 2 },
            engine: None,
        };
        let mut record = Record::new(guest, HostNs { id: NsId { ino: 3, dev: 4 }, netns: None });
        record.put_interface(iface.clone());
        record
    }

    /// eth1, a veth on br0 with no addressing.
    fn veth() -> Interface {
        Interface {
            host_side: Some("veth1pl77".into()),
            attached_to: Attached::Bridge("br0".into()),
            ..Interface::new("eth1".into(), 9, How::Veth, "02:00:00:00:00:09".parse().unwrap(), 1500)
        }
    }

    #[test]
    fn a_record_replays_as_the_attach_that_made_it() {
        let net = "10.5.106.101/24".parse().unwrap();
        let iface = Interface {
            how: How::Macvlan,
            host_side: Some("eth0.10".into()),
            attached_to: Attached::Parent("eth0".into()),
            addresses: vec![net],
            gateway: Some("10.5.106.1".parse().unwrap()),
            vlan: Some(10),
            ..veth()
        };
        let req = replay(&record_of(&iface), &iface);
        assert_eq!(req.host, HostIf::Name("eth0".into()));
        assert_eq!(req.guest, GuestRef::Name("abc".into()));
        assert_eq!((req.container_if.as_deref(), req.tag), (Some("eth1"), Some(Tag("10".into()))));
        assert_eq!(req.addr, Addressing::Static { net, gateway: Some("10.5.106.1".parse().unwrap()) });
        assert_eq!((req.mac, req.local_if, req.direct_phys), (Some(iface.mac), None, false));
    }

    /// Every address is made again, each family's gateway with its first
    /// address; the first address (and gateway) is the attach's own.
    #[test]
    fn a_dual_stack_interface_replays_every_address() {
        let nets: Vec<IpNetwork> =
            ["10.0.0.2/24", "2001:db8::2/64", "10.0.0.3/24"].iter().map(|n| n.parse().unwrap()).collect();
        let (gw4, gw6) = ("10.0.0.1".parse().unwrap(), "2001:db8::1".parse().unwrap());
        let iface = Interface {
            addresses: nets.clone(),
            gateway: Some(gw4),
            second_gateway: Some(AddedGateway { gateway: gw6, replaced_default: None }),
            ..veth()
        };
        let record = record_of(&iface);
        let req = replay(&record, &iface);
        assert_eq!(req.addr, Addressing::Static { net: nets[0], gateway: Some(gw4) });
        assert_eq!(req.more_addresses, [(nets[1], Some(gw6)), (nets[2], None)]);
        assert!(same_host(&record, &iface, &Attach { more_addresses: Vec::new(), ..req.clone() }));
        let other = Attach { host: HostIf::Name("br1".into()), ..req.clone() };
        assert!(!same_host(&record, &iface, &other));
        let tagged = Attach { tag: Some(Tag("10".into())), ..req.clone() };
        assert!(!same_host(&record, &iface, &tagged));
    }

    #[test]
    fn a_macvlan_replays_its_mode_and_host_access() {
        let iface = Interface {
            how: How::Macvlan,
            host_side: Some("eth0".into()),
            attached_to: Attached::Parent("eth0".into()),
            macvlan_mode: MacvlanMode::Private,
            ..veth()
        };
        let req = replay(&record_of(&iface), &iface);
        assert_eq!((req.macvlan_mode, req.host_access), (Some(MacvlanMode::Private), false));
        let shim = Interface { macvlan_mode: MacvlanMode::Bridge, shim: Some("pwh-eth0".into()), ..iface };
        let req = replay(&record_of(&shim), &shim);
        assert_eq!((req.macvlan_mode, req.host_access), (None, true));
        // A record of before either was kept: bridge mode, no shim.
        let old: Interface = serde_json::from_value(serde_json::json!({
            "name": "eth1", "ifindex": 9, "how": "macvlan", "attached_to": {"parent": "eth0"},
            "mac": "02:00:00:00:00:09", "mtu": 1500
        }))
        .unwrap();
        assert_eq!((old.macvlan_mode, old.shim), (MacvlanMode::Bridge, None));
    }

    #[test]
    fn a_dhcp_interface_replays_as_its_dhcp_word() {
        let mut iface = Interface {
            dhcp: Some(DhcpRecord {
                client: "dhcp".into(),
                foreground: false,
                options: Some("-V acme".into()),
                timeout_ms: 2500,
                agent_pid: Some(4242),
                agent_started: Some(123_456),
                lease_file: Some("/var/lib/pipework/dhcp/1-eth1".into()),
                resolv_conf: None,
            }),
            ..veth()
        };
        let record = record_of(&iface);
        let req = replay(&record, &iface);
        let native = Dhcp {
            client: DhcpClient::Native,
            foreground: false,
            options: Some("-V acme".into()),
            timeout: Duration::from_millis(2500),
        };
        assert_eq!((req.addr, req.mac), (Addressing::Dhcp(native), Some(iface.mac)));
        iface.dhcp = Some(DhcpRecord {
            client: "dhclient".into(),
            foreground: true,
            options: None,
            timeout_ms: 10_000,
            agent_pid: None,
            agent_started: None,
            lease_file: None,
            resolv_conf: None,
        });
        let Addressing::Dhcp(host) = replay(&record, &iface).addr else { panic!("not DHCP") };
        assert_eq!((host.client, host.foreground), (DhcpClient::Dhclient, true));
    }

    #[test]
    fn the_wait_for_a_lease_is_recorded_and_old_records_wait_the_default() {
        // A host client (a plan with no native client's step).
        let d = Dhcp {
            client: DhcpClient::Udhcpc,
            foreground: false,
            options: None,
            timeout: Duration::from_millis(3500),
        };
        let json = serde_json::to_string(&dhcp_record(&Plan::new(""), &d)).unwrap();
        assert!(json.contains(r#""timeout_ms":3500"#), "{json}");
        let recorded: DhcpRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(redone(&recorded), Some(d));
        // A record written before the timeout was kept.
        let old: DhcpRecord = serde_json::from_str(r#"{"client":"udhcpc","options":"-n"}"#).unwrap();
        let Some(Dhcp { client, timeout, .. }) = redone(&old) else { panic!("{old:?}") };
        assert_eq!((client, timeout), (DhcpClient::Udhcpc, DHCP_TIMEOUT));
    }
}
