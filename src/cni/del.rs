//! DEL and GC: an attachment's links go, its address is released and its
//! interface leaves the container's record (the record goes with its last).
//! Idempotent: a namespace, link or record already gone is not an error.
//! What goes is one plan, applied as a detach's is (logged, failpoints):
//! the links by the record's teardown (`drivers::teardown`), then the
//! attachment's nf_tables rules (GC's sweep of its network's rules is a
//! plan on the host too). Links are removed only where the record
//! says they were made: in the namespace ADD recorded (not one made since at
//! the same path), and a host side that is still the veth made
//! (`drivers::made_on_host`).

use std::os::fd::{AsFd, BorrowedFd};

use serde_json::Value;

use super::add::open_netns;
use super::config::NetConf;
use super::env::{Command, Env};
use super::error::{CniError, CniResult, Code};
use super::ipam::Ipam;
use super::{netfilter, records};
use crate::apply::Target;
use crate::drivers::{self, Teardown};
use crate::plan::{Plan, Side, Step};
use crate::records::{Interface, NsId, Record, Store};
use crate::resolve::guest::Guest;
use crate::sys::netlink::Netlink;
use crate::sys::output;

pub async fn del(env: &Env, conf: &NetConf) -> CniResult<()> {
    let store = Store::from_env();
    let record = records::load_for_del(&store, &env.container_id);
    if let Some(name) = &conf.ipam {
        Ipam::find(name, &env.path)?.call(Command::Del, env, &conf.raw)?;
    }
    let recorded = record.as_ref().and_then(|r| r.interface(&env.ifname));
    let ours = records::of_network(record.as_ref(), &env.ifname, &conf.name);
    if recorded.is_some() && ours.is_none() {
        // The container's interface of that name is another network's.
        return Ok(());
    }
    let links = match (&record, ours) {
        (Some(record), Some((iface, _))) => Links::Recorded(record, iface),
        _ => Links::Named(&env.ifname),
    };
    let hooks = netfilter::del_hooks(conf, ours.map(|(_, cni)| cni));
    let rules = netfilter::drop_steps(&conf.name, &env.container_id, &env.ifname, hooks);
    remove(&env.container_id, &env.netns, links, rules).await?;
    records::forget(&store, &env.container_id, &env.ifname)
}

/// The links of the attachment DEL or GC removes.
enum Links<'a> {
    /// As its record has them: the host side if it is still the veth made,
    /// else the container's interface if it is.
    Recorded(&'a Record, &'a Interface),
    /// Without a record: the container's interface of that name.
    Named(&'a str),
}

impl Links<'_> {
    fn made_in(&self) -> Option<NsId> {
        match self {
            Links::Recorded(record, _) => Some(record.guest.netns),
            Links::Named(_) => None,
        }
    }
}

/// One attachment's removal, as one plan in one transaction: the links,
/// then the steps that drop its `rules`. Inside the container's namespace
/// only if that is still there and is the one ADD recorded (when there is
/// a record); otherwise on the host alone.
async fn remove(id: &str, netns: &str, links: Links<'_>, rules: Vec<Step>) -> CniResult<()> {
    let netns = recorded_netns(id, netns, links.made_in()).await?;
    let host = Netlink::here()?;
    let inside = netns.as_ref().map(|g| Netlink::inside(g.netns())).transpose()?;
    let mut plan = match &netns {
        Some(guest) => Plan::new(&guest.enter),
        None => Plan::on_host(),
    };
    let mut last = Vec::new();
    match links {
        Links::Recorded(record, iface) => {
            let leaving = [iface];
            let t = Teardown { record, iface, leaving: &leaving, host: &host, inside: inside.as_ref() };
            drivers::teardown(&t, &mut plan, &mut last).await?;
        }
        Links::Named(name) => {
            if let Some(inside) = &inside {
                if inside.link(name).await?.is_some() {
                    last.push(Step::DeleteLink { side: Side::Guest, name: name.into() });
                }
            }
        }
    }
    plan.steps.extend(last);
    plan.steps.extend(rules);
    let guest = inside.as_ref().zip(netns.as_ref().map(Guest::netns));
    apply(&plan, &host, guest).await
}

/// The network's rules of attachments not valid, whether or not a record
/// is left of them: a plan on the host.
async fn sweep(conf: &NetConf) -> CniResult<()> {
    let plan = Plan { steps: netfilter::collect_steps(conf), ..Plan::on_host() };
    match plan.steps.is_empty() {
        true => Ok(()),
        false => apply(&plan, &Netlink::here()?, None).await,
    }
}

/// `plan` applied as one transaction, in the `guest` namespace if there
/// is one; an empty plan costs nothing.
async fn apply(plan: &Plan, host: &Netlink, guest: Option<(&Netlink, BorrowedFd<'_>)>) -> CniResult<()> {
    if plan.steps.is_empty() {
        return Ok(());
    }
    let own = crate::sys::netns::current()?;
    let (guest, guest_ns) = guest.unwrap_or((host, own.as_fd()));
    let target = Target { host, guest, host_ns: own.as_fd(), guest_ns };
    Ok(crate::apply::apply(plan, &target).await?)
}

/// The container's namespace at `netns`, if it is there and is `made_in`,
/// the one ADD recorded (when there is a record); one made since at the
/// same path is left alone, saying so.
async fn recorded_netns(id: &str, netns: &str, made_in: Option<NsId>) -> CniResult<Option<Guest>> {
    let found = match netns {
        "" => return Ok(None),
        path => open_netns(path).await.ok(),
    };
    match (found, made_in) {
        (Some(found), Some(made_in)) if found.netns_id()? != made_in => {
            output::warning(format!(
                "{} is not the network namespace ADD recorded for container {id} \
                 (made again since): its links are left alone",
                found.label
            ));
            Ok(None)
        }
        (found, _) => Ok(found),
    }
}

/// GC: every attachment of this network not in `cni.dev/valid-attachments`
/// is removed as DEL would, with the configuration its ADD had; then the
/// IPAM plugin gets its own GC if it speaks 1.1.0. Only attachments
/// recorded from this network namespace are its own.
pub async fn gc(env: &Env, conf: &NetConf) -> CniResult<()> {
    let store = Store::from_env();
    let valid = |id: &str, ifname: &str| {
        conf.valid_attachments.iter().any(|a| a.container_id == id && a.ifname == ifname)
    };
    let mut failures = Vec::new();
    for found in records::all(&store)? {
        let (id, iface) = (&found.id, &found.iface);
        let ours = iface.cni.as_ref().is_some_and(|cni| cni.network == conf.name);
        if !ours || valid(id, &iface.name) {
            continue;
        }
        if let Err(e) = collect(env, &store, &found).await {
            failures.push(format!("{id} {}: {e}", iface.name));
        }
    }
    if let Err(e) = sweep(conf).await {
        failures.push(format!("{}: {}", e.msg, e.details));
    }
    if let Some(name) = &conf.ipam {
        let ipam = Ipam::find(name, &env.path)?;
        if ipam.versions(env)?.iter().any(|v| v == "1.1.0") {
            ipam.call(Command::Gc, env, &conf.raw)?;
        }
    }
    match failures.is_empty() {
        true => Ok(()),
        false => Err(CniError::new(Code::Internal, "some stale attachments could not be removed")
            .with_details(failures.join("; "))),
    }
}

/// One stale attachment, as DEL would remove it, with the configuration its
/// ADD had.
async fn collect(env: &Env, store: &Store, found: &records::Recorded) -> CniResult<()> {
    let records::Recorded { id, netns, record, iface } = found;
    let config = iface.cni.as_ref().map(|c| &c.config).unwrap_or(&Value::Null);
    let ipam_type = config.get("ipam").and_then(|i| i.get("type")).and_then(Value::as_str);
    if let Some(name) = ipam_type.filter(|n| !n.is_empty()) {
        let attachment = Env {
            command: Command::Del,
            container_id: id.to_string(),
            netns: netns.to_string(),
            ifname: iface.name.clone(),
            ..env.clone()
        };
        Ipam::find(name, &env.path)?.call(Command::Del, &attachment, config.to_string().as_bytes())?;
    }
    let network = iface.cni.as_ref().map_or("", |c| c.network.as_str());
    let hooks = netfilter::recorded_hooks(iface.cni.as_ref());
    let rules = netfilter::drop_steps(network, id, &iface.name, hooks);
    remove(id, netns, Links::Recorded(record, iface), rules).await?;
    records::forget(store, id, &iface.name)
}
