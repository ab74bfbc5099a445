//! `pipework mkbridge BRIDGE IFACE`: a host interface made into a port of
//! a bridge that takes over its addresses and routes, as one transaction
//! (planned in `drivers::mkbridge`).

use crate::drivers::mkbridge::plan;
use crate::error::Result;
use crate::intents::{self, About, Scope};
use crate::records::Store;
use crate::request::Mkbridge;
use crate::sys::netlink::Netlink;
use crate::sys::output;

pub async fn mkbridge(req: &Mkbridge, dry_run: bool) -> Result<()> {
    let host = Netlink::here()?;
    let mut planned = plan(req, &host).await?;
    // Planned again if a killed run is rolled back: planning looks at what it left.
    if !dry_run {
        let recovery = intents::recover(&Store::from_env(), &host, Scope::Host).await?;
        intents::report(&recovery);
        if recovery.changed() {
            planned = plan(req, &host).await?;
        }
    }
    if planned.steps.is_empty() {
        return output::lines([format!("{} already bridges {}: nothing to do", req.bridge, req.iface)]);
    }
    // Every step acts on the host.
    super::print_or_apply(&planned, dry_run, &host, None, Some(About::command_line(None))).await
}
