//! The entry points: `run` picks one from the parsed request. Most are a
//! module here; the watch service (`crate::watch`) and the DHCP agent
//! (`dhcp::lease_loop`) are subsystems of their own, one line in `run`.
//! `observe` is what `show`, `check` and `detach` share about records.

pub mod attach;
pub mod check;
pub mod detach;
pub mod loopdev;
pub mod mkbridge;
pub mod observe;
pub mod passthrough;
pub mod show;
pub mod wait;

use std::os::fd::BorrowedFd;

use crate::cli::Invocation;
use crate::error::Result;
use crate::intents::About;
use crate::plan::Plan;
use crate::request::Request;
use crate::sys::netlink::Netlink;

/// How a run that did not fail ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// `check` found the kernel differing from the records: exit 1, each
    /// difference printed already.
    Differs,
}

pub async fn run(inv: Invocation) -> Result<Outcome> {
    let done = match &inv.request {
        Request::Attach(req) => attach::attach(req, inv.dry_run).await,
        Request::Passthrough { tool, guest, args } => passthrough::run(*tool, guest, args).await,
        Request::Wait { ifname, timeout } => wait::wait(ifname, *timeout).await,
        Request::Mkbridge(req) => mkbridge::mkbridge(req, inv.dry_run).await,
        Request::Loop(req) => loopdev::run(req).await,
        Request::DhcpAgent(state) => crate::dhcp::lease_loop::run(state).await,
        Request::Show { guest, json } => show::show(guest.as_ref(), *json).await,
        Request::Check { guest, json } => return check::check(guest.as_ref(), *json).await,
        Request::Detach { guest, ifname } => detach::detach(guest, ifname.as_deref(), inv.dry_run).await,
        Request::Watch(req) => crate::watch::watch(req).await,
        Request::Completions(shell) => crate::sys::output::print(&crate::cli::completions::script(*shell)),
        Request::Help(text) => crate::sys::output::print(text),
    };
    done.map(|()| Outcome::Done)
}

/// `--dry-run` prints the plan; otherwise it is applied, from this
/// namespace, to the guest's (`guest`: its connection and namespace; None
/// when every step acts on the host), with an intent when `about` says.
async fn print_or_apply(
    plan: &Plan,
    dry_run: bool,
    host: &Netlink,
    guest: Option<(&Netlink, BorrowedFd<'_>)>,
    about: Option<About>,
) -> Result<()> {
    match dry_run {
        true => plan.print(),
        false => crate::apply::here_then(plan, host, guest, about, async || Ok(())).await,
    }
}
