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
use crate::intents::{About, Intent};
use crate::plan::{Plan, Side, Step, Undo};
use crate::sys::netlink::Netlink;
pub use announce::{gratuitous_arp, port_forwards};
use failpoints::{injected_failure, injected_pause};
pub use revert::revert;
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
    apply_then(plan, target, None, async || Ok(())).await
}

/// Applies `plan`, then `commit` (an attach writes its record), still with
/// interrupts held: a commit that fails rolls the plan back like a failed
/// last step, so a run leaves both its changes and their record, or neither.
/// With `about`, the run keeps an intent (`intents`) for its recovery if
/// it is killed half-way.
pub async fn apply_then(
    plan: &Plan,
    target: &Target<'_>,
    about: Option<About>,
    commit: impl AsyncFnOnce() -> Result<()>,
) -> Result<()> {
    let mut tx = Transaction::begin(target, about);
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
    about: Option<About>,
    commit: impl AsyncFnOnce() -> Result<()>,
) -> Result<()> {
    let own = crate::sys::netns::current()?;
    let (guest, guest_ns) = guest.unwrap_or((host, own.as_fd()));
    apply_then(plan, &Target { host, guest, host_ns: own.as_fd(), guest_ns }, about, commit).await
}

/// Plans applied one after another and undone together, newest first, on
/// the first failure: a run whose later steps wait for something slow (a
/// CNI plugin's IPAM) applies the rest meanwhile. Interrupts are held from
/// begin to end: one waits the few milliseconds until the run is whole.
pub struct Transaction<'t, 'a> {
    target: &'t Target<'a>,
    undo: Vec<Undo>,
    /// What the intent is to say, until the first plan opens it.
    about: Option<About>,
    intent: Option<Intent>,
    links: GuestLinks,
    /// Steps applied so far: numbers (and failpoints) run across plans.
    done: usize,
    _held: HeldSignals,
}

impl<'t, 'a> Transaction<'t, 'a> {
    /// A transaction that goes on with an intent begun before it (a CNI
    /// ADD's, which notes its IPAM call first).
    pub fn with_intent(target: &'t Target<'a>, intent: Intent) -> Self {
        let mut tx = Transaction::begin(target, None);
        tx.intent = Some(intent);
        tx
    }

    pub fn begin(target: &'t Target<'a>, about: Option<About>) -> Self {
        let _held = HeldSignals::hold();
        let (undo, links) = (Vec::new(), GuestLinks::default());
        Transaction { target, undo, about, intent: None, links, done: 0, _held }
    }

    /// Applies `plan`; if a step fails, everything this transaction applied
    /// is undone.
    pub async fn apply(&mut self, plan: &Plan) -> Result<()> {
        // Written before the first change; a run that cannot keep one makes none.
        if let (Some(about), false) = (&self.about, plan.steps.is_empty()) {
            let store = crate::records::Store::from_env();
            let intent = Intent::begin(&store, about.clone())?;
            self.about = None;
            self.intent = Some(intent);
        }
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
                (None, _) if let Err(e) = self.intend(n, &command, step.outlives_boot()) => Err(e),
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
            let (undo, failure) = match result {
                Ok(undo) => (undo, None),
                Err(e) => (None, Some(e)),
            };
            let kept = match (&failure, &mut self.intent) {
                (None, Some(intent)) => intent.applied(undo.as_ref()),
                _ => Ok(()),
            };
            self.undo.extend(undo);
            if let Some(e) = failure.or(kept.err()) {
                let failed = self.rollback().await;
                let e = e.context(format!("step {n}/{total} failed ({command})"));
                return Err(e.with_rollback(failed));
            }
            self.done = n;
        }
        tracing::info!("all {total} steps applied");
        Ok(())
    }

    /// Notes step `n` in the intent before it is applied.
    fn intend(&mut self, n: usize, command: &str, outlives_boot: bool) -> Result<()> {
        match &mut self.intent {
            Some(intent) => intent.step(n, command, outlives_boot),
            None => Ok(()),
        }
    }

    /// Undoes what was applied, and ends the intent.
    async fn rollback(&mut self) -> Vec<Error> {
        let failed = rollback(std::mem::take(&mut self.undo), self.target).await;
        if let Some(intent) = self.intent.take() {
            intent.end();
        }
        failed
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
    pub async fn commit(mut self, commit: impl AsyncFnOnce() -> Result<()>) -> Result<()> {
        let noted = match &mut self.intent {
            Some(intent) => {
                let ifindex = intent.committed_interface().and_then(|name| self.links.learned(name));
                intent.committing(ifindex)
            }
            None => Ok(()),
        };
        // Failpoints past the last step: before the record, and after it.
        injected_pause(self.done + 1);
        let written = match noted {
            Ok(()) => commit().await,
            Err(e) => Err(e),
        };
        match written {
            Ok(()) => {
                injected_pause(self.done + 2);
                if let Some(intent) = self.intent.take() {
                    intent.end();
                }
                Ok(())
            }
            Err(e) => {
                let failed = self.rollback().await;
                Err(e.with_rollback(failed))
            }
        }
    }

    /// Undoes what was applied, for a failure between plans; returns the
    /// undo steps that failed.
    pub async fn roll_back(mut self) -> Vec<Error> {
        self.rollback().await
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
