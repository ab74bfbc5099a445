//! One module per subcommand; `run` picks it from the parsed request.

pub mod attach;
pub mod dhcp_agent;
pub mod loopdev;
pub mod mkbridge;
pub mod passthrough;
pub mod wait;

use std::os::fd::{AsFd, BorrowedFd};

use crate::apply::{apply, Target};
use crate::cli::Invocation;
use crate::error::Result;
use crate::plan::Plan;
use crate::request::Request;
use crate::sys::netlink::Netlink;

pub async fn run(inv: Invocation) -> Result<()> {
    match &inv.request {
        Request::Attach(req) => attach::attach(req, inv.dry_run).await,
        Request::Passthrough { tool, guest, args } => passthrough::run(*tool, guest, args).await,
        Request::Wait { ifname, timeout } => wait::wait(ifname, *timeout).await,
        Request::Mkbridge(req) => mkbridge::mkbridge(req, inv.dry_run).await,
        Request::Loop(req) => loopdev::run(req).await,
        Request::DhcpAgent(state) => dhcp_agent::run(state).await,
    }
}

/// `--dry-run` prints the plan; otherwise it is applied, from this
/// namespace, to the guest's (`guest`: its connection and namespace; None
/// when every step acts on the host).
async fn print_or_apply(
    plan: &Plan,
    dry_run: bool,
    host: &Netlink,
    guest: Option<(&Netlink, BorrowedFd<'_>)>,
) -> Result<()> {
    if dry_run {
        return plan.print();
    }
    let own = crate::sys::netns::current()?;
    let (guest, guest_ns) = guest.unwrap_or((host, own.as_fd()));
    apply(plan, &Target { host, guest, host_ns: own.as_fd(), guest_ns }).await
}
