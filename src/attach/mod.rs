//! Connecting a guest already found: classify the host interface, pick its
//! driver, refuse what cannot be done, plan, then print or apply the plan;
//! an applied plan's record is written before the run ends, or the plan is
//! rolled back. `pipework <hostif> <guest>` (`commands::attach`) and the
//! watch service both come here; `record` writes what was made.

mod record;

use crate::drivers::{self, addressing, Context, Driver};
use crate::error::Result;
use crate::request::Attach;
use crate::resolve::guest::Guest;
use crate::resolve::host::classify;
use crate::sys::netlink::Netlink;
pub use record::Writer;

/// An attach to a guest already found, from netlink connections already
/// open: the watch service's, which keeps one on the host.
pub async fn connect(req: &Attach, guest: &Guest, host: &Netlink, inside: &Netlink) -> Result<()> {
    let driver = driver_for(host, req).await?;
    plan_and_apply(&*driver, req, guest, host, inside, false, Writer::OffThread).await
}

/// The driver for the host interface, and the original's refusals, which
/// come before the guest is looked up.
pub async fn driver_for(host: &Netlink, req: &Attach) -> Result<Box<dyn Driver>> {
    let driver = drivers::for_host(classify(host, &req.host).await?, req)?;
    driver.validate(req)?;
    addressing::validate(&req.addr)?;
    Ok(driver)
}

pub async fn plan_and_apply(
    driver: &dyn Driver,
    req: &Attach,
    guest: &Guest,
    host: &Netlink,
    inside: &Netlink,
    dry_run: bool,
    writer: Writer,
) -> Result<()> {
    let planned = driver.plan(&Context { req, guest, host, inside }).await?;
    if dry_run {
        return planned.plan.print();
    }
    // Its answer comes while the plan is applied, for the record.
    guest.engine.ask();
    let record = async || record::attached(&planned, req, guest, (host, inside), writer).await;
    crate::apply::here_then(&planned.plan, host, Some((inside, guest.netns())), record).await
}
