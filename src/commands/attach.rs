//! `pipework <hostif> <guest> ...`: the driver and its refusals first, then
//! the guest; `crate::attach` plans and applies.

use crate::attach::{driver_for, plan_and_apply, recover, Writer};
use crate::error::Result;
use crate::request::Attach;
use crate::resolve::guest;
use crate::sys::netlink::Netlink;

pub async fn attach(req: &Attach, dry_run: bool) -> Result<()> {
    let host = Netlink::here()?;
    let mut driver = driver_for(&host, req).await?;
    let guest = guest::resolve(&req.guest).await?;
    guest.refuse_here("there is nothing to connect")?;
    let inside = Netlink::inside(guest.netns())?;
    // The host interface again, as the rollback of a killed run left it.
    if !dry_run && recover(&guest, &host).await? {
        driver = driver_for(&host, req).await?;
    }
    plan_and_apply(&*driver, req, &guest, &host, &inside, dry_run, Writer::Inline).await
}
