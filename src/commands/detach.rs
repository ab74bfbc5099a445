//! `pipework detach GUEST [-i IF] [--dry-run]`: undoes attachments, as one
//! plan applied (and rolled back) like an attach's, planned in
//! `drivers::detach` (by the records, or without one by the names pipework
//! gives). The records of what was undone are dropped after. What is
//! already gone is no error: a second detach does nothing and exits 0.
//! An interface a CNI runtime attached is refused: the runtime removes it.

use super::observe::{guest_now, select};
use super::print_or_apply;
use crate::drivers::detach as planner;
use crate::error::{Error, Kind, Result};
use crate::intents::{self, recover, Scope};
use crate::records::{Interface, Record, Store};
use crate::request::GuestRef;
use crate::resolve::guest::{self, Guest};
use crate::sys::netlink::Netlink;

pub async fn detach(label: &GuestRef, ifname: Option<&str>, dry_run: bool) -> Result<()> {
    let store = Store::from_env();
    let host = Netlink::here()?;
    let records = select(&store, Some(label)).await?.records;
    let by_record = records.iter().any(|r| ifname.is_none_or(|i| r.interface(i).is_some()));
    if !by_record {
        let guest = guest::resolve(label).await?;
        if !dry_run {
            intents::report(&recover(&store, &host, Scope::Guest(&guest.find.key())).await?);
        }
        let inside = Netlink::inside(guest.netns())?;
        let plan = planner::by_names(&guest, &host, &inside, ifname.unwrap_or("eth1")).await?;
        return print_or_apply(&plan, dry_run, &host, Some((&inside, guest.netns())), None).await;
    }
    refuse_cni(&records, ifname)?;
    if !dry_run {
        for record in &records {
            intents::report(&recover(&store, &host, Scope::Guest(&record.key())).await?);
        }
    }
    for record in &records {
        let chosen: Vec<&Interface> =
            record.interfaces.iter().filter(|i| ifname.is_none_or(|name| i.name == name)).collect();
        if chosen.is_empty() {
            continue;
        }
        let now = guest_now(record).await?;
        let now = now.as_ref().map(|(guest, inside)| (guest, inside));
        undo(&store, record, &chosen, &host, now, dry_run).await?;
    }
    Ok(())
}

/// Plans and applies (or prints) the undoing of the `chosen` interfaces of
/// `record`, in the guest `now` if it is there, else on the host alone.
/// The record loses them first: a watch that sees their links go finds
/// them no longer recorded, and does not make them again. A plan that
/// fails and is rolled back gives them back to the record.
async fn undo(
    store: &Store,
    record: &Record,
    chosen: &[&Interface],
    host: &Netlink,
    now: Option<(&Guest, &Netlink)>,
    dry_run: bool,
) -> Result<()> {
    let plan = planner::undo(record, chosen, host, now).await?;
    // A plan for a guest that is gone acts on the host only.
    let guest_side = now.map(|(guest, inside)| (inside, guest.netns()));
    if dry_run {
        return print_or_apply(&plan, dry_run, host, guest_side, None).await;
    }
    forget(store, record, chosen)?;
    let undone = print_or_apply(&plan, false, host, guest_side, None).await;
    if undone.is_err() {
        let back = store.update(&record.key(), |slot| match slot {
            Some(kept) => chosen.iter().for_each(|i| kept.put_interface((*i).clone())),
            None => *slot = Some(record.clone()),
        });
        if let Err(e) = back {
            tracing::warn!("{}", e.message());
        }
    }
    undone
}

/// A CNI attachment is the container runtime's: it removes it with DEL,
/// which also gives the address back to IPAM and keeps the runtime's own
/// state right. Refused before anything is undone.
fn refuse_cni(records: &[Record], ifname: Option<&str>) -> Result<()> {
    let chosen = records.iter().flat_map(|r| r.interfaces.iter().map(move |i| (r, i)));
    match chosen.filter(|(_, i)| ifname.is_none_or(|name| i.name == name)).find(|(_, i)| i.cni.is_some()) {
        Some((record, Interface { name, cni: Some(cni), .. })) => Err(Error::new(
            Kind::Conflict,
            format!(
                "{name} of {} is a CNI attachment of network {}: the container runtime removes it (CNI DEL)",
                record.guest_name(),
                cni.network
            ),
        )),
        _ => Ok(()),
    }
}

/// Drops the interfaces to detach from the record, and the record with
/// the last of them; one that cannot be updated stops the detach before
/// anything is undone.
fn forget(store: &Store, record: &Record, chosen: &[&Interface]) -> Result<()> {
    let names: Vec<&str> = chosen.iter().map(|i| i.name.as_str()).collect();
    store.forget(&record.key(), &names).map(drop).map_err(|e| {
        e.context(format!("cannot detach from {}: its record cannot be updated", record.guest_name()))
    })
}
