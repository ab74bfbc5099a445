//! Records next to the kernel: which records a command is about, and the
//! guest of a record as it is now. Shared by `show`, `check` and `detach`.

use crate::error::{Error, Kind, Result};
use crate::records::{Broken, Finder, HostNs, Record, Store};
use crate::request::GuestRef;
use crate::resolve::guest::{self, Guest};
use crate::sys::netlink::Netlink;

/// The records of this host namespace, and the files that are no record.
pub struct Selected {
    pub records: Vec<Record>,
    pub broken: Vec<Broken>,
}

/// The records made from this network namespace; with `guest`, only that
/// guest's. A guest named by another form than it was attached with (its
/// `pid:`, or its ID for a name) is found by looking it up. Its records made
/// from another namespace are refused by name: they are to be acted on there.
pub async fn select(store: &Store, guest: Option<&GuestRef>) -> Result<Selected> {
    let listing = store.load_all()?;
    let here = HostNs::current()?;
    let mut records = listing.records;
    if let Some(arg) = guest {
        let text = arg.to_string();
        let named: Vec<Record> = records.iter().filter(|r| r.answers_to(&text)).cloned().collect();
        records = match named.is_empty() {
            false => named,
            true => match guest::resolve(arg).await {
                Ok(found) => {
                    let (key, netns) = (found.find.key(), found.netns_id()?);
                    records.into_iter().filter(|r| r.key() == key || r.guest.netns == netns).collect()
                }
                Err(_) => Vec::new(),
            },
        };
        if let Some(elsewhere) = records.iter().find(|r| r.host.id != here.id) {
            return Err(Error::new(
                Kind::Conflict,
                format!(
                    "{text} was attached from {}, not from this network namespace; run pipework there",
                    elsewhere.host.describe()
                ),
            ));
        }
    }
    records.retain(|r| r.host.id == here.id);
    Ok(Selected { records, broken: listing.broken })
}

/// A record's guest as it is now, with a netlink connection inside it;
/// `None` when it is gone or not running. A guest that is no container must
/// still be the namespace it was (a PID or a name can be reused).
pub async fn guest_now(record: &Record) -> Result<Option<(Guest, Netlink)>> {
    let Some(found) = guest::find(&record.guest.label, &record.guest.find).await? else {
        return Ok(None);
    };
    let is_container = matches!(record.guest.find, Finder::Container { .. });
    if !is_container && found.netns_id()? != record.guest.netns {
        return Ok(None);
    }
    let inside = Netlink::inside(found.netns())?;
    Ok(Some((found, inside)))
}
