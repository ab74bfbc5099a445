//! pipework: connect containers and network namespaces to host networks,
//! natively over netlink. The flow is parse (`cli`, `request`) → resolve
//! (`host`, `guest`) → plan (`plan`, one module a driver such as `bridge`)
//! → apply (`apply`), which rolls back on the first failure.

pub mod apply;
pub mod attach;
pub mod bridge;
pub mod cli;
pub mod cni;
pub mod error;
pub mod exec;
pub mod guest;
pub mod host;
pub mod loopdev;
pub mod mac;
pub mod manual;
pub mod mkbridge;
pub mod netlink;
pub mod netns;
pub mod output;
pub mod passthrough;
pub mod physical;
pub mod plan;
pub mod process;
pub mod request;
pub mod sysctl;
pub mod wait;

pub use error::{Error, Result};

use request::Request;

pub async fn run(inv: cli::Invocation) -> Result<()> {
    match &inv.request {
        Request::Attach(req) => attach::attach(req, inv.dry_run).await,
        Request::Passthrough { tool, guest, args } => passthrough::run(*tool, guest, args).await,
        Request::Wait { ifname, timeout } => wait::wait(ifname, *timeout).await,
        Request::Mkbridge(req) => mkbridge::mkbridge(req, inv.dry_run).await,
        Request::Loop(req) => loopdev::run(req).await,
    }
}
