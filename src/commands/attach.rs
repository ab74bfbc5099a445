//! Connecting a guest: classify the host interface, pick its driver, refuse
//! what cannot be done, find the guest, plan, then print or apply the plan;
//! an applied plan's record is written before the run ends, or the plan is
//! rolled back.

use crate::drivers::{self, addressing, Context};
use crate::error::Result;
use crate::request::Attach;
use crate::resolve::guest;
use crate::resolve::host::classify;
use crate::sys::netlink::Netlink;

pub async fn attach(req: &Attach, dry_run: bool) -> Result<()> {
    let host = Netlink::here()?;
    let driver = drivers::for_host(classify(&host, &req.host).await?, req)?;
    // The original's refusals come before the guest is looked up.
    driver.validate(req)?;
    addressing::validate(&req.addr)?;
    let guest = guest::resolve(&req.guest).await?;
    guest.refuse_here("there is nothing to connect")?;
    let inside = Netlink::inside(guest.netns())?;
    let plan = driver.plan(&Context { req, guest: &guest, host: &host, inside: &inside }).await?;
    let record = async || super::recording::attached(&plan, req, &guest, &inside).await;
    super::print_or_apply_then(&plan, dry_run, &host, Some((&inside, guest.netns())), record).await
}
