//! Connecting a guest already found: classify the host interface, pick its
//! driver, refuse what cannot be done, plan, then print or apply the plan;
//! an applied plan's record is written before the run ends, or the plan is
//! rolled back. `pipework <hostif> <guest>` (`commands::attach`) and the
//! watch service both come here; `record` writes what was made.
//!
//! A command line naming an interface a run made in this guest, from the
//! same host interface, adds its address to it instead (`made_before`,
//! then `addressing::add_to`): decided here, from the record, because only
//! the record says which interfaces pipework made and from what.

mod record;

use std::net::IpAddr;

use crate::drivers::kinds::HostSide;
use crate::drivers::{self, addressing, replay, Context, Driver};
use crate::error::Result;
use crate::intents::{About, Commit, Scope};
use crate::records::{GuestRecord, HostNs, Interface, Store};
use crate::request::{Attach, HostIf};
use crate::resolve::guest::Guest;
use crate::resolve::host::classify;
use crate::sys::netlink::{Link, Netlink};
pub use record::Writer;

/// An attach to a guest already found, from netlink connections already
/// open: the watch service's, which keeps one on the host.
pub async fn connect(req: &Attach, guest: &Guest, host: &Netlink, inside: &Netlink) -> Result<()> {
    recover(guest, host).await?;
    let driver = driver_for(host, req).await?;
    plan_and_apply(&*driver, req, guest, host, inside, false, Writer::OffThread).await
}

/// Rolls back the guest's runs killed half-way, before its host interface
/// is classified and its plan made: both look at what they left. Whether
/// any was.
pub async fn recover(guest: &Guest, host: &Netlink) -> Result<bool> {
    let key = guest.find.key();
    let recovery = crate::intents::recover(&Store::from_env(), host, Scope::Guest(&key)).await?;
    crate::intents::report(&recovery);
    Ok(recovery.changed())
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
    let ctx = Context { req, guest, host, inside };
    if let Some((iface, link)) = made_before(&ctx, driver).await? {
        let Some(added) = addressing::add_to(&ctx, &iface, &link).await? else { return Ok(()) };
        if dry_run {
            return added.plan.print();
        }
        let record = async || record::added(&added, &iface.name, guest, inside, writer).await;
        let about = Some(about(req, guest, writer, &iface.name, added.net.map(|n| n.ip()))?);
        return crate::apply::here_then(&added.plan, host, Some((inside, guest.netns())), about, record)
            .await;
    }
    let planned = driver.plan(&ctx).await?;
    if dry_run {
        return planned.plan.print();
    }
    // Its answer comes while the plan is applied, for the record.
    guest.engine.ask();
    let record = async || record::attached(&planned, req, guest, (host, inside), writer).await;
    let about = Some(about(req, guest, writer, &planned.made.name, None)?);
    crate::apply::here_then(&planned.plan, host, Some((inside, guest.netns())), about, record).await
}

/// The run's intent: its command line, or for the watch service the guest
/// it plumbs; its record is `interface` of the guest's (with `address`).
fn about(
    req: &Attach,
    guest: &Guest,
    writer: Writer,
    interface: &str,
    address: Option<IpAddr>,
) -> Result<About> {
    let record = GuestRecord {
        label: guest.label.clone(),
        find: guest.find.clone(),
        netns: guest.netns_id()?,
        engine: None,
    };
    let commit = Commit { key: guest.find.key(), interface: interface.to_string(), ifindex: None, address };
    let what = match writer {
        Writer::Inline => About::command_line(None).what,
        Writer::OffThread => {
            let host = match &req.host {
                HostIf::Name(name) => name,
                HostIf::Mac(_, typed) => typed,
            };
            format!("pipework watch: {host} {interface} of {}", guest.label)
        }
    };
    Ok(About { what, guest: Some(record), commit: Some(commit) })
}

/// The interface the command line names, if a run made it in this guest
/// (same namespace) from the same host interface, and it is there as made,
/// with its veth's host side up. Any other interface of that name (another
/// host interface's, one pipework did not make) is the driver's, which
/// refuses it as ever, or makes it again (a host side left down).
async fn made_before(ctx: &Context<'_>, driver: &dyn Driver) -> Result<Option<(Interface, Link)>> {
    let name = ctx.req.container_if.as_deref().unwrap_or(driver.default_if());
    // A guest without the interface (the usual attach) needs no record read.
    let Some(link) = ctx.inside.link(name).await? else { return Ok(None) };
    // One that cannot be read is named when the attach writes its own.
    let Ok(Some(record)) = Store::from_env().load(&ctx.guest.find.key()) else { return Ok(None) };
    if record.host.id != HostNs::current()?.id || record.guest.netns != ctx.guest.netns_id()? {
        return Ok(None);
    }
    let Some(iface) = record.interface(name).filter(|i| i.cni.is_none()) else { return Ok(None) };
    if !replay::same_host(&record, iface, ctx.req) {
        return Ok(None);
    }
    if iface.how.host_side() == HostSide::Peer {
        let side = iface.host_side.as_deref().unwrap_or_default();
        let up = ctx.host.link(side).await?.is_some_and(|l| l.up && drivers::made_on_host(iface, &l));
        if !up {
            return Ok(None);
        }
    }
    Ok(iface.how.recognises(&link, iface.mac).then(|| (iface.clone(), link)))
}
