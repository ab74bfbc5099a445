//! Applying a plan over netlink. The first failing step stops the run and
//! every step applied so far is undone, newest first; `step` runs and
//! reverts one step (`ovs` the Open vSwitch ones, over OVSDB), `signals`
//! holds interrupts for the whole run.

mod announce;
pub(crate) mod failpoints;
mod ovs;
pub(crate) mod signals;
mod step;

use std::os::fd::BorrowedFd;

use crate::error::{Error, Result};
use crate::plan::{Plan, Side, Undo};
use crate::sys::netlink::Netlink;
use failpoints::{injected_failure, injected_pause};
use signals::HeldSignals;
use step::{revert, run, GuestLinks};

/// The two namespaces a plan acts in.
pub struct Target<'a> {
    pub host: &'a Netlink,
    pub guest: &'a Netlink,
    pub host_ns: BorrowedFd<'a>,
    pub guest_ns: BorrowedFd<'a>,
}

impl Target<'_> {
    fn side(&self, side: Side) -> &Netlink {
        match side {
            Side::Host => self.host,
            Side::Guest => self.guest,
        }
    }
}

pub async fn apply(plan: &Plan, target: &Target<'_>) -> Result<()> {
    // Applied or rolled back whole: an interrupt waits the few milliseconds.
    let _held = HeldSignals::hold();
    let total = plan.steps.len();
    let mut undo = Vec::new();
    let mut links = GuestLinks::default();
    for (i, step) in plan.steps.iter().enumerate() {
        let command = plan.command(step);
        tracing::info!("step {}/{total}: {command}", i + 1);
        injected_pause(i + 1);
        let result = match injected_failure(i + 1) {
            Some(e) => Err(e),
            None => run(step, target, &mut links).await,
        };
        match result {
            Ok(Some(u)) => undo.push(u),
            Ok(None) => {}
            Err(e) => {
                let failed = rollback(undo, target).await;
                let e = e.context(format!("step {}/{total} failed ({command})", i + 1));
                return Err(e.with_rollback(failed));
            }
        }
    }
    tracing::info!("all {total} steps applied");
    Ok(())
}

/// Undoes the applied steps, newest first, carrying on past a failure;
/// returns the failures.
async fn rollback(undo: Vec<Undo>, target: &Target<'_>) -> Vec<Error> {
    let mut failed = Vec::new();
    for u in undo.into_iter().rev() {
        tracing::info!("rollback: {u}");
        if let Err(e) = revert(&u, target).await {
            tracing::warn!("rollback of '{u}' failed: {e}");
            failed.push(e.context(format!("rollback of '{u}' failed")));
        }
    }
    failed
}
