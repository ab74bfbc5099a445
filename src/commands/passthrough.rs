//! `pipework route|rule|tc <guest> <args...>`: the original handed these to
//! `ip route`, `ip rule` and `tc` inside the guest's network namespace;
//! `iproute2::run` makes them there, natively where it can.

use crate::error::Result;
use crate::iproute2::run::in_guest;
use crate::records::Store;
use crate::request::{GuestRef, Tool};
use crate::resolve::guest::{resolve, Guest};

pub async fn run(tool: Tool, label: &GuestRef, args: &[String]) -> Result<()> {
    let guest = resolve(label).await?;
    guest.refuse_here("this would change the host's own network; run ip or tc directly")?;
    // The operator waits for it as for the original's `ip` (`ip monitor`).
    in_guest(tool, guest.netns(), args, None).await?;
    // The line stands even if its record cannot be kept; the operator is told.
    if let Err(e) = command_applied(&guest, tool, args) {
        crate::sys::output::warn(e.context(format!("applied, but not recorded for {label}")));
    }
    Ok(())
}

/// Appends a `route` or `rule` line that changed the guest to its record,
/// if it has one; lines that only read (`show`, `list`, `get`) are not kept.
fn command_applied(guest: &Guest, tool: Tool, args: &[String]) -> Result<()> {
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
