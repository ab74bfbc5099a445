//! Applying a plan over netlink. The first failing step stops the run and
//! every step applied so far is undone, newest first; `step` runs and
//! reverts one step (`ovs` the Open vSwitch ones, over OVSDB), `signals`
//! holds interrupts for the whole run.

mod announce;
mod dhcp;
pub(crate) mod failpoints;
mod forward;
mod ovs;
mod revert;
pub(crate) mod signals;
mod step;

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd};

use crate::error::{Error, Result};
use crate::plan::{Plan, Side, Step, Undo};
use crate::sys::netlink::Netlink;
pub use announce::{gratuitous_arp, port_forwards};
use failpoints::{injected_failure, injected_pause};
use revert::revert;
use signals::HeldSignals;
use step::{run, GuestLinks};

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
    apply_then(plan, target, async || Ok(())).await
}

/// Applies `plan`, then `commit` (an attach writes its record), still with
/// interrupts held: a commit that fails rolls the plan back like a failed
/// last step, so a run leaves both its changes and their record, or neither.
pub async fn apply_then(
    plan: &Plan,
    target: &Target<'_>,
    commit: impl AsyncFnOnce() -> Result<()>,
) -> Result<()> {
    let mut tx = Transaction::begin(target);
    tx.apply(plan).await?;
    tx.commit(commit).await
}

/// `apply_then` from this namespace: the host's is this one, the guest's
/// is `guest`'s (its connection and namespace), or this one again when
/// every step acts on the host.
pub async fn here_then(
    plan: &Plan,
    host: &Netlink,
    guest: Option<(&Netlink, BorrowedFd<'_>)>,
    commit: impl AsyncFnOnce() -> Result<()>,
) -> Result<()> {
    let own = crate::sys::netns::current()?;
    let (guest, guest_ns) = guest.unwrap_or((host, own.as_fd()));
    apply_then(plan, &Target { host, guest, host_ns: own.as_fd(), guest_ns }, commit).await
}

/// Plans applied one after another and undone together, newest first, on
/// the first failure: a run whose later steps wait for something slow (a
/// CNI plugin's IPAM) applies the rest meanwhile. Interrupts are held from
/// begin to end: one waits the few milliseconds until the run is whole.
pub struct Transaction<'t, 'a> {
    target: &'t Target<'a>,
    undo: Vec<Undo>,
    links: GuestLinks,
    /// Steps applied so far: numbers (and failpoints) run across plans.
    done: usize,
    _held: HeldSignals,
}

impl<'t, 'a> Transaction<'t, 'a> {
    pub fn begin(target: &'t Target<'a>) -> Self {
        let _held = HeldSignals::hold();
        Transaction { target, undo: Vec::new(), links: GuestLinks::default(), done: 0, _held }
    }

    /// Applies `plan`; if a step fails, everything this transaction applied
    /// is undone.
    pub async fn apply(&mut self, plan: &Plan) -> Result<()> {
        // A DHCP step is followed by the steps its lease calls for.
        let mut pending: VecDeque<Step> = plan.steps.iter().cloned().collect();
        let mut total = self.done + pending.len();
        while let Some(step) = pending.pop_front() {
            let n = self.done + 1;
            let command = plan.command(&step);
            tracing::info!("step {n}/{total}: {command}");
            injected_pause(n);
            let result = match (injected_failure(n), &step) {
                (Some(e), _) => Err(e),
                (None, Step::Dhcp { dev, port, setup }) => {
                    self.lease(dev, port.as_deref(), setup).await.map(|(undo, more)| {
                        total += more.len();
                        for s in more.into_iter().rev() {
                            pending.push_front(s);
                        }
                        Some(undo)
                    })
                }
                (None, _) => run(&step, self.target, &mut self.links).await,
            };
            match result {
                Ok(Some(u)) => self.undo.push(u),
                Ok(None) => {}
                Err(e) => {
                    let failed = rollback(std::mem::take(&mut self.undo), self.target).await;
                    let e = e.context(format!("step {n}/{total} failed ({command})"));
                    return Err(e.with_rollback(failed));
                }
            }
            self.done = n;
        }
        tracing::info!("all {total} steps applied");
        Ok(())
    }

    /// A DHCP step: the lease's undo, and the steps that configure it.
    async fn lease(
        &mut self,
        dev: &str,
        port: Option<&str>,
        setup: &crate::dhcp::Setup,
    ) -> Result<(Undo, Vec<Step>)> {
        let link = self.links.get(self.target, Side::Guest, dev).await?;
        dhcp::take_lease(dev, link, port, setup, self.target).await
    }

    /// Ends the transaction with `commit`; if it fails, everything applied
    /// is undone.
    pub async fn commit(self, commit: impl AsyncFnOnce() -> Result<()>) -> Result<()> {
        match commit().await {
            Ok(()) => Ok(()),
            Err(e) => {
                let failed = rollback(self.undo, self.target).await;
                Err(e.with_rollback(failed))
            }
        }
    }

    /// Undoes what was applied, for a failure between plans; returns the
    /// undo steps that failed.
    pub async fn roll_back(self) -> Vec<Error> {
        rollback(self.undo, self.target).await
    }
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
