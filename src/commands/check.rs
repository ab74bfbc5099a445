//! `pipework check [GUEST] [--json]`: the kernel against the records. Each
//! difference is one line ("missing address 10.5.106.101/24 on eth1 of
//! xcatmn"). Exit status: 0 when everything recorded holds; 1 (`Outcome::Differs`)
//! when anything differs or a record cannot be read; 1 with a message, as
//! any refusal, when GUEST has no record or was attached from elsewhere.

use super::observe::{guest_now, select};
use super::Outcome;
use crate::drivers::verify::{differences, Difference};
use crate::error::{Error, Kind, Result};
use crate::intents::{recover, Scope};
use crate::records::Store;
use crate::request::GuestRef;
use crate::sys::netlink::Netlink;
use crate::sys::output;

pub async fn check(guest: Option<&GuestRef>, as_json: bool) -> Result<Outcome> {
    let (store, host) = (Store::from_env(), Netlink::here()?);
    let mut interrupted = recover(&store, &host, Scope::All).await?;
    if let Some(arg) = guest {
        interrupted.retain(|run| run.is_of(&arg.to_string()));
    }
    let selected = select(&store, guest).await?;
    if let (Some(arg), true, true) = (guest, selected.records.is_empty(), interrupted.is_empty()) {
        return Err(Error::new(Kind::NotFound, format!("no record of {arg}")));
    }
    let mut found: Vec<Difference> = selected
        .broken
        .iter()
        .map(|b| Difference {
            guest: String::new(),
            interface: None,
            kind: "broken-record",
            message: b.error.message().to_string(),
        })
        .collect();
    // Each change a killed run left that its recovery could not undo.
    found.extend(interrupted.iter().flat_map(|run| {
        run.left.iter().map(|left| Difference {
            guest: run.guest.clone().unwrap_or_default(),
            interface: run.interface.clone(),
            kind: "interrupted",
            message: format!("{}: {left}", run.describe()),
        })
    }));
    for record in &selected.records {
        let now = guest_now(record).await?;
        found.extend(differences(record, &host, now.as_ref().map(|(_, inside)| inside)).await?);
    }
    if as_json {
        output::lines([serde_json::json!({ "ok": found.is_empty(), "differences": found }).to_string()])?;
    } else {
        output::lines(found.iter().map(|d| &d.message))?;
    }
    match found.is_empty() {
        true => Ok(Outcome::Done),
        false => Ok(Outcome::Differs),
    }
}
