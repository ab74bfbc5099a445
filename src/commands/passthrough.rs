//! `pipework route|rule|tc <guest> <args...>`: the original handed these to
//! `ip route`, `ip rule` and `tc` inside the guest's network namespace;
//! `iproute2::run` makes them there, natively where it can.

use crate::error::Result;
use crate::iproute2::run::in_guest;
use crate::request::{GuestRef, Tool};
use crate::resolve::guest::resolve;

pub async fn run(tool: Tool, label: &GuestRef, args: &[String]) -> Result<()> {
    let guest = resolve(label).await?;
    guest.refuse_here("this would change the host's own network; run ip or tc directly")?;
    // The operator waits for it as for the original's `ip` (`ip monitor`).
    in_guest(tool, guest.netns(), args, None).await?;
    // The line stands even if its record cannot be kept; the operator is told.
    if let Err(e) = super::recording::command_applied(&guest, tool, args) {
        crate::sys::output::warn(e.context(format!("applied, but not recorded for {label}")));
    }
    Ok(())
}
