//! What the kernel takes from a running container, made again: the host's
//! link messages (`sys::netlink::LinkEvents`) say when. A recorded bridge
//! that comes back (made again after it was deleted: `ifdown; ifup`, a
//! network restart) gets its ports again: deleting a bridge releases its
//! ports without deleting them, and the bridge's job (`Job::Bridge`)
//! enslaves each recorded host side again and brings it up, and makes its
//! recorded FORWARD rules again. A recorded host side deleted (by the
//! operator, or with its guest side inside the container) gets its
//! container a job (`Job::Repair`) that makes the interface again as
//! recorded: same names, MAC, addresses. A container that stops loses its
//! links too, with its namespace: its `die` stops its repairs until it
//! starts again, and a repair finding it started after the loss is its
//! start (`reconcile`).
//!
//! Jobs re-read the records when they run: a `detach` drops the record
//! before it deletes the links, so what it takes away is not made again.
//! A link lost again within `STEADY` of its last repair waits 1 s, then
//! 2, 4, ... up to a minute, each wait said in the log: a link deleted in
//! a loop costs a repair now and then, never a busy service.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures::future::LocalBoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};

use super::backoff::Backoff;
use super::queue::Job;
use super::reconcile::Reconciler;
use crate::sys::netlink::{Link, LinkEvent};

/// A deleted host side waits this long before its repair: a container
/// that stops takes its veths along a moment before its engine says so,
/// and its `die` cancels the repair meanwhile.
const SETTLE: Duration = Duration::from_millis(200);
/// A repair this long after the last one of the same link is a first one.
const STEADY: Duration = Duration::from_secs(10);

/// What is repaired: a bridge, or a container's interface.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Bridge(String),
    Interface { id: String, ifname: String },
}

/// Jobs to submit: a container's ID (or `bridge <name>`) and its job.
type Jobs = Vec<(String, Job)>;

#[derive(Default)]
pub struct Repairs {
    /// Bridges deleted since: one made under such a name has come back.
    deleted: HashSet<String>,
    /// Containers the engine said died, until they start again: their
    /// links go with their namespace after the `die` (the engine cleans
    /// it up then), and are not lost but left behind.
    stopped: HashSet<String>,
    tries: HashMap<Key, Backoff>,
    /// The repairs waiting for their time; one a key.
    waiting: HashSet<Key>,
    due: FuturesUnordered<LocalBoxFuture<'static, (Key, Jobs)>>,
}

impl Repairs {
    /// A link message: what it calls for is asked for in its time.
    pub fn seen(&mut self, event: LinkEvent, reconciler: &Reconciler<'_>) {
        match event {
            LinkEvent::Deleted(link) if link.is_bridge() => {
                self.deleted.insert(link.name);
            }
            LinkEvent::Deleted(link) => self.host_side_gone(&link, reconciler),
            LinkEvent::New(link) if link.is_bridge() && self.deleted.remove(&link.name) => {
                self.bridge_back(&link, reconciler)
            }
            LinkEvent::New(_) => {}
        }
    }

    fn bridge_back(&mut self, link: &Link, reconciler: &Reconciler<'_>) {
        let containers = reconciler.on_bridge(&link.name);
        if containers.is_empty() {
            return;
        }
        let bridge = &link.name;
        tracing::info!(
            "{bridge} came back (index {}): putting back the ports of {} containers recorded on it",
            link.index,
            containers.len()
        );
        let jobs = vec![(format!("bridge {bridge}"), Job::Bridge { name: bridge.clone() })];
        self.schedule(Key::Bridge(bridge.clone()), bridge, Duration::ZERO, jobs);
    }

    fn host_side_gone(&mut self, link: &Link, reconciler: &Reconciler<'_>) {
        let lost = crate::sys::process::ticks_now();
        let mut owners = reconciler.owners_of(&link.name);
        owners.retain(|(id, ..)| !self.stopped.contains(id));
        for (id, name, ifname) in owners {
            tracing::info!("{name}: {}, the host side of its {ifname}, was deleted", link.name);
            let what = format!("{name}'s {ifname}");
            let jobs = vec![(id.clone(), Job::Repair { name, lost })];
            self.schedule(Key::Interface { id, ifname }, &what, SETTLE, jobs);
        }
    }

    /// `jobs` after `settle`, or later if `key` was repaired within
    /// `STEADY`; nothing more if a repair of it waits already.
    fn schedule(&mut self, key: Key, what: &str, settle: Duration, jobs: Jobs) {
        if self.waiting.contains(&key) {
            return;
        }
        let now = Instant::now();
        let wait = match self.tries.get_mut(&key).and_then(|b| b.again(now, STEADY)) {
            Some(wait) => wait,
            None => {
                self.tries.insert(key.clone(), Backoff::start(now));
                settle
            }
        };
        if wait > settle {
            tracing::warn!(
                "{what} lost again within {}s of its last repair: repairing it in {}s",
                STEADY.as_secs(),
                wait.as_secs()
            );
        }
        self.waiting.insert(key.clone());
        self.due.push(
            async move {
                tokio::time::sleep(wait).await;
                (key, jobs)
            }
            .boxed_local(),
        );
    }

    /// The container stopped: its repairs are off until it starts again.
    pub fn stopped(&mut self, id: &str) {
        let its = |key: &Key| matches!(key, Key::Interface { id: of, .. } if of == id);
        self.waiting.retain(|key| !its(key));
        self.tries.retain(|key, _| !its(key));
        self.stopped.insert(id.to_string());
    }

    /// The container started, or went: nothing of it is left behind now.
    pub fn started_or_gone(&mut self, id: &str) {
        self.stopped.remove(id);
    }

    /// The next jobs whose time has come; pending while there are none.
    pub async fn next(&mut self) -> Jobs {
        loop {
            let Some((key, jobs)) = self.due.next().await else { return std::future::pending().await };
            // Not when its container stopped meanwhile.
            if self.waiting.remove(&key) {
                return jobs;
            }
        }
    }
}
