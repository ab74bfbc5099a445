//! `pipework show [GUEST] [--json]`: one line per recorded interface, live
//! when the kernel still has it (both ends), stale when not. A CNI
//! attachment's guest is its container ID, shortened to 12 characters as
//! `docker ps` shows it (in full in `--json`'s `find`, with its `network`),
//! and RULES the kinds of nf_tables rules its ADD made (in full, as `nft`
//! lines, in `--json`'s `rules`).

use std::path::Path;

use serde_json::json;

use super::observe::{guest_now, select};
use crate::dhcp::lease_file::held;
use crate::drivers::verify::is_live;
use crate::error::{Error, Kind, Result};
use crate::intents::{recover, Scope};
use crate::records::{Attached, HostNs, Interface, Record, Store};
use crate::request::GuestRef;
use crate::sys::netlink::Netlink;
use crate::sys::nftables::Hook;
use crate::sys::output;

const HEADER: [&str; COLUMNS] =
    ["GUEST", "INTERFACE", "HOST-SIDE", "ATTACHED-TO", "ADDRESSES", "MAC", "RULES", "STATE"];
const COLUMNS: usize = 8;

pub async fn show(guest: Option<&GuestRef>, as_json: bool) -> Result<()> {
    let (store, host) = (Store::from_env(), Netlink::here()?);
    let mut interrupted = recover(&store, &host, Scope::All).await?;
    if let Some(arg) = guest {
        interrupted.retain(|run| run.is_of(&arg.to_string()));
    }
    let selected = select(&store, guest).await?;
    for broken in &selected.broken {
        output::warn(&broken.error);
    }
    if let (Some(arg), true, true) = (guest, selected.records.is_empty(), interrupted.is_empty()) {
        return Err(Error::new(Kind::NotFound, format!("no record of {arg}")));
    }
    let kept = kept_rules(&selected.records)?;
    let mut rows = Vec::new();
    let mut items = Vec::new();
    for record in &selected.records {
        let now = guest_now(record).await?;
        for iface in &record.interfaces {
            let live = is_live(iface, now.as_ref().map(|(_, inside)| inside), &host).await?;
            let state = if live { "live" } else { "stale" };
            let mut addresses: Vec<String> = iface.addresses.iter().map(|a| a.to_string()).collect();
            // DHCP: the mode, the address the lease holds now, its DNS servers.
            let (lease, dns) = match iface.dhcp.as_ref().and_then(|d| d.lease_file.as_ref()) {
                Some(file) => held(Path::new(file)),
                None => (None, Vec::new()),
            };
            if let Some(d) = &iface.dhcp {
                addresses.insert(
                    0,
                    match lease {
                        Some(net) => format!("{}:{net}", d.client),
                        None => d.client.clone(),
                    },
                );
            }
            rows.push([
                record.guest_name().to_string(),
                iface.name.clone(),
                iface.host_side.clone().unwrap_or_else(|| "-".into()),
                iface.attached_to.describe(),
                if addresses.is_empty() { "-".into() } else { addresses.join(",") },
                iface.mac.to_string(),
                rule_kinds(iface).join(","),
                state.to_string(),
            ]);
            let mut item = json!({
                "guest": record.guest_name(),
                "key": record.key(),
                "find": record.guest.find,
                "interface": iface.name,
                "how": iface.how,
                "host_side": iface.host_side,
                "attached_to": iface.attached_to,
                "addresses": iface.addresses,
                "gateway": iface.gateway,
                "mac": iface.mac,
                "mtu": iface.mtu,
                "vlan": iface.vlan,
                "state": state,
            });
            if let Some(cni) = &iface.cni {
                item["network"] = json!(cni.network);
                if !cni.rules.is_empty() {
                    item["rules"] = json!(cni.rules);
                }
            }
            if iface.vlan_filtering {
                item["vlan_filtering"] = json!(true);
            }
            if let Some(second) = &iface.second_gateway {
                item["second_gateway"] = json!(second.gateway);
            }
            if let Some((_, commands)) =
                kept.iter().find(|(b, _)| iface.attached_to == Attached::Bridge(b.clone()))
            {
                item["firewall"] = json!(commands);
            }
            // Only a DHCP interface has these keys.
            if let (Some(d), Some(fields)) = (&iface.dhcp, item.as_object_mut()) {
                fields.insert("dhcp".into(), json!(d));
                fields.insert("lease".into(), json!(lease));
                fields.insert("dns".into(), json!(dns));
            }
            items.push(item);
        }
    }
    // A run killed half-way whose recovery left changes behind.
    for run in &interrupted {
        let dash = || "-".to_string();
        let guest = run.guest.clone().unwrap_or_else(|| "(host)".into());
        let interface = run.interface.clone().unwrap_or_else(dash);
        rows.push([guest, interface, dash(), dash(), dash(), dash(), dash(), "interrupted".into()]);
        items.push(json!({
            "guest": run.guest,
            "interface": run.interface,
            "state": "interrupted",
            "pid": run.pid,
            "run": run.what,
            "left": run.left,
        }));
    }
    if as_json {
        output::lines([serde_json::Value::Array(items).to_string()])
    } else if rows.is_empty() {
        Ok(())
    } else {
        let notes = kept.iter().flat_map(|(bridge, commands)| {
            commands.iter().map(move |c| format!("{bridge}: pipework keeps `{c}` for its attachments"))
        });
        let left =
            interrupted.iter().flat_map(|run| run.left.iter().map(|l| format!("{}: {l}", run.describe())));
        output::lines(table(&rows).into_iter().chain(notes).chain(left))
    }
}

/// The FORWARD rules pipework keeps for the bridges the records' interfaces
/// hang off, in this namespace: bridge, and each rule as its command.
fn kept_rules(records: &[Record]) -> Result<Vec<(String, Vec<String>)>> {
    let here = HostNs::current()?.id;
    let store = Store::from_env();
    let mut kept: Vec<(String, Vec<String>)> = Vec::new();
    for record in records.iter().filter(|r| r.host.id == here) {
        for iface in &record.interfaces {
            let Attached::Bridge(bridge) = &iface.attached_to else { continue };
            if kept.iter().any(|(b, _)| b == bridge) {
                continue;
            }
            if let Some(b) = store.bridge(here, bridge)?.filter(|b| !b.accept.is_empty()) {
                kept.push((bridge.clone(), b.accept.iter().map(|r| r.command(bridge)).collect()));
            }
        }
    }
    Ok(kept)
}

/// The kinds of nf_tables rules on record for a CNI attachment:
/// `masquerade` (`ipMasq`), `macspoofchk`; `-` for none.
fn rule_kinds(iface: &Interface) -> Vec<&'static str> {
    let recorded = iface.cni.as_ref().map_or(&[][..], |c| &c.rules[..]);
    let kinds: Vec<&str> = [(Hook::Masquerade, "masquerade"), (Hook::MacCheck, "macspoofchk")]
        .into_iter()
        .filter(|(hook, _)| recorded.iter().any(|line| line.starts_with(&format!("{} ", hook.name()))))
        .map(|(_, word)| word)
        .collect();
    if kinds.is_empty() {
        vec!["-"]
    } else {
        kinds
    }
}

/// Columns as wide as their widest cell, the last one unpadded.
fn table(rows: &[[String; COLUMNS]]) -> Vec<String> {
    let header = HEADER.map(String::from);
    let all: Vec<&[String; COLUMNS]> = std::iter::once(&header).chain(rows).collect();
    let widths: Vec<usize> =
        (0..COLUMNS).map(|c| all.iter().map(|r| r[c].len()).max().unwrap_or(0)).collect();
    all.iter()
        .map(|row| {
            let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
            cells.join("  ").trim_end().to_string()
        })
        .collect()
}
