//! Writing records: after an attach's plan is wholly applied, what it made
//! (from the plan's steps, the request, and the kernel for what the kernel
//! chose); after a `route` or `rule` passthrough, its words. `replay` is the
//! way back: the attach that makes a recorded interface again.

use std::time::Duration;

use rtnetlink::packet_route::route::RouteMessage;

use crate::dhcp::state::State;
use crate::drivers::link_id;
use crate::error::{Error, Kind, Result};
use crate::plan::{NewLink, Plan, Step};
use crate::request::{Addressing, Attach, Dhcp, DhcpClient, GuestRef, HostIf, Tag, Tool};
use crate::resolve::guest::Guest;
use crate::state::{
    Attached, DefaultRoute, DhcpRecord, Finder, GuestRecord, HostNs, How, Interface, Record, Store,
};
use crate::sys::netlink::{route_via, Netlink};

/// Where a record's write (and its two fsyncs) runs.
#[derive(Clone, Copy)]
pub enum Writer {
    /// On this thread: a command run has nothing else to do meanwhile, and a
    /// thread would cost it more than the wait.
    Inline,
    /// On a blocking thread: the watch service has other containers' work
    /// to do while the disk syncs.
    OffThread,
}

/// Records the interface a wholly applied `plan` made in `guest`, beside
/// the guest's other interfaces.
pub async fn attached(
    plan: &Plan,
    req: &Attach,
    guest: &Guest,
    (host_nl, inside): (&Netlink, &Netlink),
    writer: Writer,
) -> Result<()> {
    let iface = describe(plan, req, host_nl, inside).await?;
    let host = HostNs::current()?;
    let record_guest = GuestRecord {
        label: guest.label.clone(),
        find: guest.find.clone(),
        netns: guest.netns_id()?,
        engine: guest.engine.get().await,
    };
    let key = guest.find.key();
    let write = move || {
        Store::from_env().update(&key, |slot| {
            let record = slot.get_or_insert_with(|| Record::new(record_guest.clone(), host.clone()));
            // A restarted container has a new namespace; the rest stays.
            record.guest.netns = record_guest.netns;
            if record_guest.engine.is_some() {
                record.guest.engine = record_guest.engine;
            }
            record.host = host;
            record.put_interface(iface);
        })
    };
    let written = match writer {
        Writer::Inline => write(),
        Writer::OffThread => tokio::task::spawn_blocking(write)
            .await
            .unwrap_or_else(|e| Err(Error::new(Kind::Internal, format!("record writer: {e}")))),
    };
    written.map_err(|e| e.context(format!("recording what was made in {}", guest.label)))
}

/// The interface as the plan made it; MAC, MTU and index read back, and
/// a veth's host side as the host has it.
async fn describe(plan: &Plan, req: &Attach, host: &Netlink, inside: &Netlink) -> Result<Interface> {
    let mut name = None;
    let mut how = None;
    let mut host_side = None;
    let mut attached_to = Attached::None;
    let mut vlan_parent = None;
    let mut deleted_default = None;
    for step in &plan.steps {
        match step {
            Step::CreateVeth { host, guest, .. } => {
                (name, how, host_side) = (Some(guest.clone()), Some(How::Veth), Some(host.clone()));
            }
            Step::SetMaster { bridge, .. } => attached_to = Attached::Bridge(bridge.clone()),
            Step::OvsAddPort { bridge, port, .. } => {
                attached_to = Attached::Ovs { bridge: bridge.clone(), port: port.name.clone() };
            }
            Step::CreateLink { kind: NewLink::Vlan { parent, .. }, .. } => vlan_parent = Some(parent.clone()),
            Step::CreateLink { kind: NewLink::Macvlan { parent, .. }, .. } => {
                (how, host_side) = (Some(How::Macvlan), Some(parent.clone()));
            }
            Step::CreateLink { kind: NewLink::Ipoib { parent, .. }, .. } => {
                (how, host_side) = (Some(How::Ipoib), Some(parent.clone()));
                attached_to = Attached::Parent(parent.clone());
            }
            Step::CreateLink { kind: NewLink::Dummy, .. } => how = Some(How::Dummy),
            Step::MoveToGuest { name: moved, to, give_back, .. } => {
                name = Some(to.clone());
                if *give_back {
                    (how, host_side) = (Some(How::Lent), Some(moved.clone()));
                }
            }
            Step::DeleteDefault { route, .. } => deleted_default = Some(route),
            _ => {}
        }
    }
    let (Some(name), Some(how)) = (name, how) else {
        return Err(Error::new(Kind::Internal, "the plan made no interface to record"));
    };
    let vlan = match (&req.tag, how) {
        (Some(tag), How::Ipoib) => Some(tag.pkey()?),
        (Some(tag), How::Macvlan | How::Lent | How::Veth) => Some(tag.vlan_id()?),
        _ => None,
    };
    if matches!(how, How::Macvlan | How::Lent) {
        // A VLAN device is `<parent>.<vid>`, made now or before.
        let lower = host_side.clone().unwrap_or_default();
        let parent = match vlan {
            Some(vid) => vlan_parent.or_else(|| lower.strip_suffix(&format!(".{vid}")).map(String::from)),
            None => (how == How::Macvlan).then_some(lower),
        };
        attached_to = parent.map_or(Attached::None, Attached::Parent);
    }
    let link = inside.require(&name).await?;
    let mac = link
        .mac
        .ok_or_else(|| Error::new(Kind::Internal, format!("{name} has no hardware address to record")))?;
    let (addresses, gateway, dhcp) = match &req.addr {
        Addressing::Static { net, gateway } => (vec![*net], *gateway, None),
        Addressing::None => (Vec::new(), None, None),
        Addressing::Dhcp(d) => (Vec::new(), None, Some(dhcp_record(plan, d))),
    };
    let replaced_default = match deleted_default {
        Some(route) => default_route(route, inside).await?,
        None => None,
    };
    let host_link = match (how, &host_side) {
        (How::Veth, Some(name)) => host.link(name).await?.as_ref().and_then(link_id),
        _ => None,
    };
    Ok(Interface {
        name,
        ifindex: link.index,
        how,
        host_side,
        attached_to,
        mac,
        mtu: link.mtu,
        addresses,
        gateway,
        vlan,
        vlan_filtering: req.vlan_filtering,
        no_firewall: req.no_firewall,
        dhcp,
        replaced_default,
        cni: None,
        host_link,
    })
}

/// The DHCP mode, and what holds the lease: the native client's agent and
/// its state file (`dhcp` as the client), or the host client and the
/// guest's resolv.conf its script wrote.
fn dhcp_record(plan: &Plan, d: &Dhcp) -> DhcpRecord {
    let (client, agent, lease_file) = plan
        .steps
        .iter()
        .find_map(|step| match step {
            Step::Dhcp { dev, setup, .. } => {
                let path = State::path_for(setup.netns_inode, dev);
                let agent = State::read(&path).ok().and_then(|s| s.agent);
                Some(("dhcp", agent, Some(path)))
            }
            Step::HostDhcp { resolv, .. } => Some((d.client.program(), None, Some(resolv.clone()))),
            _ => None,
        })
        .unwrap_or((d.client.program(), None, None));
    DhcpRecord {
        client: client.to_string(),
        foreground: d.foreground,
        options: d.options.clone(),
        timeout_ms: u64::try_from(d.timeout.as_millis()).unwrap_or(u64::MAX),
        agent_pid: agent.map(|a| a.pid),
        agent_started: agent.and_then(|a| a.started),
        lease_file: lease_file.map(|p| p.display().to_string()),
    }
}

/// The default route an attach deleted, as a detach can put it back: via
/// a gateway, out of a link the guest still has. Others are not kept.
async fn default_route(route: &RouteMessage, inside: &Netlink) -> Result<Option<DefaultRoute>> {
    let (gateway, oif) = route_via(route);
    let (Some(gateway), Some(index)) = (gateway, oif) else { return Ok(None) };
    Ok(inside.link_by_index(index).await?.map(|link| DefaultRoute { gateway, dev: link.name }))
}

/// Appends a `route` or `rule` line that changed the guest to its record,
/// if it has one; lines that only read (`show`, `list`, `get`) are not kept.
pub fn command_applied(guest: &Guest, tool: Tool, args: &[String]) -> Result<()> {
    let word = match tool {
        Tool::Route => "route",
        Tool::Rule => "rule",
        Tool::Tc => return Ok(()),
    };
    let verb = args.iter().find(|a| !a.starts_with('-')).map(String::as_str).unwrap_or("");
    if verb.is_empty() || ["show", "list", "lst", "get", "save"].iter().any(|r| r.starts_with(verb)) {
        return Ok(());
    }
    let line: Vec<String> = std::iter::once(word.to_string()).chain(args.iter().cloned()).collect();
    Store::from_env().update(&guest.find.key(), |slot| {
        if let Some(record) = slot {
            record.commands.push(line);
        }
    })
}

/// The attach that makes `iface` again as recorded (same names, MAC,
/// address, gateway, VLAN, DHCP mode and options): for re-plumbing a
/// restarted guest. The guest is named as it can be found again (a
/// container by its ID). Only the first address is made again, as an
/// attach makes one; a DHCP interface leases again with its MAC, so the
/// server gives it the same address. A CNI attachment is the
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
    // A dummy's host interface was any unused `dummy*` name.
    let host = match &iface.attached_to {
        Attached::Bridge(name) | Attached::Parent(name) => name.clone(),
        Attached::Ovs { bridge, .. } => bridge.clone(),
        Attached::None => iface.host_side.clone().unwrap_or_else(|| "dummy".into()),
    };
    let addr = match (&iface.dhcp, iface.addresses.first()) {
        (Some(dhcp), _) => redone(dhcp).map_or(Addressing::None, Addressing::Dhcp),
        (None, Some(net)) => Addressing::Static { net: *net, gateway: iface.gateway },
        (None, None) => Addressing::None,
    };
    Attach {
        host: HostIf::Name(host),
        direct_phys: iface.how == How::Lent,
        container_if: Some(iface.name.clone()),
        local_if: (iface.how == How::Veth).then(|| iface.host_side.clone()).flatten(),
        guest,
        addr,
        mac: (iface.how != How::Ipoib).then_some(iface.mac),
        tag: iface.vlan.map(|v| Tag(if iface.how == How::Ipoib { format!("{v:x}") } else { v.to_string() })),
        vlan_filtering: iface.vlan_filtering,
        no_firewall: iface.no_firewall,
    }
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
    use crate::request::DHCP_TIMEOUT;
    use crate::state::NsId;

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
            name: "eth1".into(),
            ifindex: 9,
            how: How::Veth,
            host_side: Some("veth1pl77".into()),
            attached_to: Attached::Bridge("br0".into()),
            mac: "02:00:00:00:00:09".parse().unwrap(),
            mtu: 1500,
            addresses: Vec::new(),
            gateway: None,
            vlan: None,
            vlan_filtering: false,
            no_firewall: false,
            dhcp: None,
            replaced_default: None,
            cni: None,
            host_link: None,
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
            }),
            ..veth()
        };
        let record = record_of(&iface);
        let req = replay(&record, &iface);
        let native = Dhcp {
            client: DhcpClient::Docker,
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
