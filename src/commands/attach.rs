//! Connecting a guest: classify the host interface, pick its driver, refuse
//! what cannot be done, find the guest, plan, then print or apply the plan;
//! an applied plan's record is written before the run ends, or the plan is
//! rolled back.

use super::recording::Writer;
use crate::drivers::{self, addressing, Context, Driver};
use crate::error::Result;
use crate::request::Attach;
use crate::resolve::guest::{self, Guest};
use crate::resolve::host::classify;
use crate::sys::netlink::Netlink;

pub async fn attach(req: &Attach, dry_run: bool) -> Result<()> {
    let host = Netlink::here()?;
    let driver = driver_for(&host, req).await?;
    let guest = guest::resolve(&req.guest).await?;
    guest.refuse_here("there is nothing to connect")?;
    let inside = Netlink::inside(guest.netns())?;
    plan_and_apply(&*driver, req, &guest, &host, &inside, dry_run, Writer::Inline).await
}

/// An attach to a guest already found, from netlink connections already
/// open: the watch service's, which keeps one on the host.
pub async fn connect(req: &Attach, guest: &Guest, host: &Netlink, inside: &Netlink) -> Result<()> {
    let driver = driver_for(host, req).await?;
    plan_and_apply(&*driver, req, guest, host, inside, false, Writer::OffThread).await
}

/// The driver for the host interface, and the original's refusals, which
/// come before the guest is looked up.
async fn driver_for(host: &Netlink, req: &Attach) -> Result<Box<dyn Driver>> {
    let driver = drivers::for_host(classify(host, &req.host).await?, req)?;
    driver.validate(req)?;
    addressing::validate(&req.addr)?;
    Ok(driver)
}

async fn plan_and_apply(
    driver: &dyn Driver,
    req: &Attach,
    guest: &Guest,
    host: &Netlink,
    inside: &Netlink,
    dry_run: bool,
    writer: Writer,
) -> Result<()> {
    let planned = driver.plan(&Context { req, guest, host, inside }).await?;
    if !dry_run {
        // Its answer comes while the plan is applied, for the record.
        guest.engine.ask();
    }
    let record = async || super::recording::attached(&planned, req, guest, (host, inside), writer).await;
    super::print_or_apply_then(&planned.plan, dry_run, host, Some((inside, guest.netns())), record).await
}
