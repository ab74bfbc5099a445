//! CNI attachments as records of the shared model (`crate::records`): one
//! record per container ID (`cni-<id>`), one interface per attachment with
//! its network, the configuration ADD got and ADD's result. `pipework show`
//! and `check` list them beside the attachments made on the command line.

use std::net::IpAddr;

use super::config::NetConf;
use super::env::Env;
use super::error::{CniError, CniResult, Code};
use super::result::CniOutput;
use super::version::LATEST;
use crate::drivers::link_id;
use crate::error::{Error, Kind, Result};
use crate::records::{Attached, CniRecord, Finder, GuestRecord, HostNs, How, Interface, Record, Store};
use crate::resolve::guest::Guest;
use crate::sys::netlink::Link;
use crate::sys::output;

/// The record of container `container_id`, if it has one.
pub fn load(store: &Store, container_id: &str) -> CniResult<Option<Record>> {
    Ok(store.load(&Finder::cni_key(container_id))?)
}

/// The record DEL goes by. One that cannot be read would fail every DEL
/// of the container, and the runtime retries DEL until it succeeds: it is
/// reported (stderr) and moved aside (`<file>.damaged`), and DEL goes on
/// as without a record (what the runtime names, by name; IPAM releases).
pub fn load_for_del(store: &Store, container_id: &str) -> Option<Record> {
    let key = Finder::cni_key(container_id);
    let error = match store.load(&key) {
        Ok(record) => return record,
        Err(e) => e,
    };
    let said = error.message();
    match store.set_aside(&key) {
        Ok(aside) => output::warning(format!(
            "the record of container {container_id} cannot be read ({said}): moved to {}; \
             removing what is found without it",
            aside.display()
        )),
        Err(e) => output::warning(format!(
            "the record of container {container_id} cannot be read ({said}), \
             nor moved aside ({}); removing what is found without it",
            e.message()
        )),
    }
    None
}

/// ADD's record but for what IPAM answers: gathered while IPAM runs, so
/// that only the write is left once it has.
pub struct Draft {
    iface: Interface,
    guest: GuestRecord,
    host: HostNs,
    container_id: String,
}

impl Draft {
    /// The container's interface as the kernel has it now (`link`, just
    /// made), the host namespace's identity, the configuration as JSON.
    pub fn new(env: &Env, conf: &NetConf, guest: &Guest, host_veth: &Link, link: &Link) -> Result<Draft> {
        let mac = link.mac.ok_or_else(|| {
            Error::new(Kind::Internal, format!("{} has no hardware address to record", env.ifname))
        })?;
        let config = serde_json::from_slice(&conf.raw).map_err(|e| Error::new(Kind::Internal, e))?;
        let iface = Interface {
            host_side: Some(host_veth.name.clone()),
            attached_to: Attached::Bridge(conf.bridge.clone()),
            cni: Some(CniRecord {
                network: conf.name.clone(),
                config,
                result: serde_json::Value::Null,
                rules: Vec::new(),
                flags: Some(conf.flags()),
            }),
            host_link: link_id(host_veth),
            ..Interface::new(env.ifname.clone(), link.index, How::Veth, mac, link.mtu)
        };
        let find = Finder::Cni { container_id: env.container_id.clone(), netns: env.netns.clone() };
        let netns = guest.netns_id()?;
        let guest = GuestRecord { label: env.container_id.clone(), find, netns, engine: None };
        Ok(Draft { iface, guest, host: HostNs::current()?, container_id: env.container_id.clone() })
    }

    /// Records what ADD made, beside the container's attachments to other
    /// networks. Run as the transaction's commit: if it fails, the links go
    /// and the address with them. Synced as every record is: a record lost
    /// or emptied in a crash would drop the container's other attachments
    /// at its next ADD.
    pub fn commit(self, env: &Env, conf: &NetConf, ours: &CniOutput) -> Result<()> {
        let Draft { mut iface, guest, host, container_id } = self;
        iface.addresses = ours.ips.iter().map(|ip| ip.address).collect();
        iface.gateway = default_gateway(ours);
        let host_veth = iface.host_side.clone().unwrap_or_default();
        let rules = super::netfilter::made(env, conf, ours, &host_veth, iface.mac);
        if let Some(cni) = iface.cni.as_mut() {
            cni.result = ours.to_json(LATEST);
            cni.rules = rules;
        }
        Store::from_env()
            .update(&guest.find.key(), |slot| {
                let record = slot.get_or_insert_with(|| Record::new(guest.clone(), host.clone()));
                record.guest = guest;
                record.host = host;
                record.put_interface(iface);
            })
            .map_err(|e| e.context(format!("recording the attachment of container {container_id}")))
    }
}

/// The gateway of the first default route ADD made, as `pipework check`
/// compares the container's default route with it.
fn default_gateway(ours: &CniOutput) -> Option<IpAddr> {
    ours.routes.iter().filter(|r| r.dst.prefix() == 0).find_map(|r| r.gw)
}

/// What the record says about the attachment DEL, CHECK or GC acts on: its
/// interface, if one of network `network` by that name is recorded.
pub fn of_network<'r>(
    record: Option<&'r Record>,
    ifname: &str,
    network: &str,
) -> Option<(&'r Interface, &'r CniRecord)> {
    record?.cni_interface(ifname).filter(|(_, cni)| cni.network == network)
}

/// Drops an attachment from its container's record (the record goes with
/// its last interface); one already gone is no error (DEL is idempotent).
pub fn forget(store: &Store, container_id: &str, ifname: &str) -> CniResult<()> {
    store.forget(&Finder::cni_key(container_id), &[ifname]).map(drop).map_err(CniError::from)
}

/// An attachment as GC finds it on record: its container ID, the netns
/// path, its container's record (the namespace that was there at ADD),
/// its interface.
pub struct Recorded {
    pub id: String,
    pub netns: String,
    pub record: Record,
    pub iface: Interface,
}

/// Every attachment recorded from this network namespace; a file that
/// cannot be read is named on stderr (DEL moves it aside), not collected.
pub fn all(store: &Store) -> CniResult<Vec<Recorded>> {
    let here = HostNs::current().map_err(|e| {
        CniError::new(Code::Io, "failed to identify this network namespace").with_details(e.to_string())
    })?;
    let listing = store.load_all()?;
    for broken in &listing.broken {
        output::warning(format!("not collected: {}", broken.error.message()));
    }
    let mut found = Vec::new();
    for record in listing.records.into_iter().filter(|r| r.host.id == here.id) {
        let Finder::Cni { container_id, netns } = &record.guest.find else { continue };
        for iface in record.interfaces.iter().filter(|i| i.cni.is_some()) {
            let (id, netns, iface) = (container_id.clone(), netns.clone(), iface.clone());
            found.push(Recorded { id, netns, record: record.clone(), iface });
        }
    }
    Ok(found)
}
