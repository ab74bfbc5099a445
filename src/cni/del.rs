//! DEL and GC: an attachment's links go, its address is released and its
//! interface leaves the container's record (the record goes with its last).
//! Idempotent: a namespace, link or record already gone is not an error.
//! Links are removed only where the record says they were made: in the
//! namespace ADD recorded (not one made since at the same path), and a
//! host side that is still the veth made (`drivers::made_on_host`).

use serde_json::Value;

use super::add::open_netns;
use super::config::NetConf;
use super::env::{Command, Env};
use super::error::{CniError, CniResult, Code};
use super::ipam::Ipam;
use super::{netfilter, records};
use crate::drivers::made_on_host;
use crate::state::{Interface, NsId, Store};
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
    let made_in = ours.and(record.as_ref()).map(|r| r.guest.netns);
    remove_links(&env.container_id, &env.netns, made_in, &env.ifname, ours.map(|(i, _)| i)).await?;
    let hooks = netfilter::del_hooks(conf, ours.map(|(_, cni)| cni));
    netfilter::remove(&conf.name, &env.container_id, &env.ifname, &hooks)?;
    records::forget(&store, &env.container_id, &env.ifname)
}

/// The container's interface, inside its namespace if that is still there
/// and is `made_in`, the one ADD recorded (when there is a record);
/// otherwise the recorded host side if it is still the veth made (a veth's
/// peer goes with it). What is not the recorded one is left, saying so.
async fn remove_links(
    id: &str,
    netns: &str,
    made_in: Option<NsId>,
    ifname: &str,
    recorded: Option<&Interface>,
) -> CniResult<()> {
    let netns = match netns {
        "" => None,
        path => open_netns(path).await.ok(),
    };
    let netns = match (netns, made_in) {
        (Some(found), Some(made_in)) if found.netns_id()? != made_in => {
            output::warn(format!(
                "pipework: {} is not the network namespace ADD recorded for container {id} \
                 (made again since): its links are left alone",
                found.label
            ));
            None
        }
        (found, _) => found,
    };
    if let Some(netns) = netns {
        let inside = Netlink::inside(netns.netns())?;
        if let Some(link) = inside.link(ifname).await? {
            delete(&inside, link.index, ifname).await?;
        }
    }
    let Some((iface, name)) = recorded.and_then(|i| Some((i, i.host_side.as_deref()?))) else {
        return Ok(());
    };
    let host = Netlink::here()?;
    match host.link(name).await? {
        Some(link) if made_on_host(iface, &link) => delete(&host, link.index, name).await?,
        Some(link) => output::warn(format!(
            "pipework: {name} on the host is not the veth ADD made for container {id} \
             (it is a {} with index {} now): left alone",
            link.kind_word(),
            link.index
        )),
        None => {}
    }
    Ok(())
}

async fn delete(nl: &Netlink, index: u32, name: &str) -> CniResult<()> {
    match nl.del_link(index).await {
        // Gone meanwhile (its peer was deleted): what DEL wanted.
        Err(e) if crate::sys::netlink::errno(&e) == Some(libc::ENODEV) => Ok(()),
        Err(e) => Err(crate::sys::netlink::nl_error(e, format!("deleting {name}")).into()),
        Ok(()) => Ok(()),
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
    if let Err(e) = netfilter::collect(conf) {
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
    let records::Recorded { id, netns, netns_id, iface } = found;
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
    remove_links(id, netns, Some(*netns_id), &iface.name, Some(iface)).await?;
    let network = iface.cni.as_ref().map_or("", |c| c.network.as_str());
    netfilter::remove(network, id, &iface.name, &netfilter::recorded_hooks(iface.cni.as_ref()))?;
    records::forget(store, id, &iface.name)
}
