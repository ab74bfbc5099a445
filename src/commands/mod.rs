//! One module per subcommand; `run` picks it from the parsed request.

pub mod attach;
pub mod loopdev;
pub mod mkbridge;
pub mod wait;

use crate::cli::Invocation;
use crate::error::Result;
use crate::request::Request;

pub async fn run(inv: Invocation) -> Result<()> {
    match &inv.request {
        Request::Attach(req) => attach::attach(req, inv.dry_run).await,
        Request::Passthrough { tool, guest, args } => crate::iproute2::run(*tool, guest, args).await,
        Request::Wait { ifname, timeout } => wait::wait(ifname, *timeout).await,
        Request::Mkbridge(req) => mkbridge::mkbridge(req, inv.dry_run).await,
        Request::Loop(req) => loopdev::run(req).await,
    }
}
