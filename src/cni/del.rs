//! DEL and GC: an attachment's links go and its address is released.
//! Idempotent: a namespace, link or record already gone is not an error.

use serde_json::Value;

use super::add::open_netns;
use super::config::NetConf;
use super::env::{Command, Env};
use super::error::{CniError, CniResult, Code};
use super::ipam::Ipam;
use super::store::{Record, Store};
use crate::sys::netlink::Netlink;

pub async fn del(env: &Env, conf: &NetConf) -> CniResult<()> {
    let store = Store::open();
    let record = store.load(&env.container_id, &env.ifname)?;
    if let Some(name) = &conf.ipam {
        Ipam::find(name, &env.path)?.call(Command::Del, env, &conf.raw)?;
    }
    remove_links(&env.netns, &env.ifname, record.as_ref()).await?;
    store.remove(&env.container_id, &env.ifname)
}

/// The container's interface, inside its namespace if that is still there;
/// otherwise the recorded host side (a veth's peer goes with it).
async fn remove_links(netns: &str, ifname: &str, record: Option<&Record>) -> CniResult<()> {
    let netns = match netns {
        "" => None,
        path => open_netns(path).await.ok(),
    };
    if let Some(netns) = netns {
        let inside = Netlink::inside(netns.netns())?;
        if let Some(link) = inside.link(ifname).await? {
            delete(&inside, link.index, ifname).await?;
        }
    }
    if let Some(record) = record {
        let host = Netlink::here()?;
        if let Some(link) = host.link(&record.host_veth).await? {
            delete(&host, link.index, &record.host_veth).await?;
        }
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
/// IPAM plugin gets its own GC if it speaks 1.1.0.
pub async fn gc(env: &Env, conf: &NetConf) -> CniResult<()> {
    let store = Store::open();
    let valid = |r: &Record| {
        conf.valid_attachments.iter().any(|a| a.container_id == r.container_id && a.ifname == r.ifname)
    };
    let mut failures = Vec::new();
    for record in store.of_network(&conf.name)?.into_iter().filter(|r| !valid(r)) {
        if let Err(e) = collect(env, &store, &record).await {
            failures.push(format!("{} {}: {}", record.container_id, record.ifname, e));
        }
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

async fn collect(env: &Env, store: &Store, record: &Record) -> CniResult<()> {
    let ipam_type = record.config.get("ipam").and_then(|i| i.get("type")).and_then(Value::as_str);
    if let Some(name) = ipam_type.filter(|n| !n.is_empty()) {
        let attachment = Env {
            command: Command::Del,
            container_id: record.container_id.clone(),
            netns: record.netns.clone(),
            ifname: record.ifname.clone(),
            ..env.clone()
        };
        Ipam::find(name, &env.path)?.call(Command::Del, &attachment, record.config.to_string().as_bytes())?;
    }
    remove_links(&record.netns, &record.ifname, Some(record)).await?;
    store.remove(&record.container_id, &record.ifname)
}
