//! Applying a plan over netlink. The first failing step stops the run and
//! every step applied so far is undone, newest first; `step` runs and
//! reverts one step, `signals` holds interrupts for the whole run.

mod announce;
mod dhcp;
pub(crate) mod failpoints;
pub(crate) mod signals;
mod step;

use std::collections::VecDeque;
use std::os::fd::BorrowedFd;

use crate::error::{Error, Result};
use crate::plan::{Plan, Side, Step, Undo};
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
    // A DHCP step is followed by the steps its lease calls for.
    let mut pending: VecDeque<Step> = plan.steps.iter().cloned().collect();
    let mut total = pending.len();
    let mut undo = Vec::new();
    let mut links = GuestLinks::default();
    let mut i = 0;
    while let Some(step) = pending.pop_front() {
        let command = plan.command(&step);
        tracing::info!("step {}/{total}: {command}", i + 1);
        injected_pause(i + 1);
        let result = match (injected_failure(i + 1), &step) {
            (Some(e), _) => Err(e),
            (None, Step::Dhcp { dev, port, setup }) => match links.get(target, Side::Guest, dev).await {
                Ok(link) => {
                    dhcp::take_lease(dev, link, port.as_deref(), setup, target).await.map(|(u, more)| {
                        total += more.len();
                        for s in more.into_iter().rev() {
                            pending.push_front(s);
                        }
                        Some(u)
                    })
                }
                Err(e) => Err(e),
            },
            (None, _) => run(&step, target, &mut links).await,
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
        i += 1;
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
