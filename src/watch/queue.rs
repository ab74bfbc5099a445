//! The work of the watch service, one job a container at a time: jobs for
//! different containers overlap (a few at once, on the service's one
//! thread), a container's next job waits for its last, and a job that
//! waits behind another is merged with it (a removal beats a start, a
//! start beats a repair and keeping the agents, which it does too, and a
//! repair beats keeping the agents).

use std::collections::{HashMap, VecDeque};

use futures::future::LocalBoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};

use super::reconcile::Reconciler;

/// How many containers are worked on at once: enough to overlap the
/// engine's answers with the kernel's, few enough to keep memory flat.
const PARALLEL: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// The container runs: make what it should have.
    Start { name: String },
    /// The container runs and one of its DHCP agents died: adopt or
    /// replace its agents, nothing else.
    Agents { name: String },
    /// The container runs and the host lost one of its links (a host
    /// side, a bridge): make what its record names again, put its bridge
    /// ports back; its labels are not looked at.
    Repair {
        name: String,
        /// When the link was lost, in clock ticks after boot: a container
        /// started since restarted, and lost it with its old namespace.
        lost: u64,
    },
    /// A recorded bridge came back (`name`): its recorded FORWARD rules,
    /// and the recorded ports on it put back. Queued under `bridge <name>`,
    /// not a container's ID.
    Bridge { name: String },
    /// The container is gone: drop its record, collect what is left.
    Forget { name: String },
}

pub struct Queue<'a> {
    reconciler: &'a Reconciler<'a>,
    /// Each ends with its container's ID and whether the job saw it running.
    running: FuturesUnordered<LocalBoxFuture<'a, (String, bool)>>,
    /// The containers with a job running, and the job waiting behind it.
    busy: HashMap<String, Option<Job>>,
    ready: VecDeque<(String, Job)>,
}

impl<'a> Queue<'a> {
    pub fn new(reconciler: &'a Reconciler<'a>) -> Queue<'a> {
        Queue { reconciler, running: FuturesUnordered::new(), busy: HashMap::new(), ready: VecDeque::new() }
    }

    pub fn submit(&mut self, id: String, job: Job) {
        if let Some(waiting) = self.busy.get_mut(&id) {
            // A removal stands, a start stands against keeping the agents;
            // otherwise the later job replaces the earlier one.
            let stands = matches!(
                (&waiting, &job),
                (Some(Job::Forget { .. }), _)
                    | (Some(Job::Start { .. }), Job::Agents { .. } | Job::Repair { .. })
                    | (Some(Job::Repair { .. }), Job::Agents { .. })
            );
            if !stands {
                *waiting = Some(job);
            }
        } else if self.running.len() < PARALLEL {
            self.start(id, job);
        } else {
            self.ready.push_back((id, job));
        }
    }

    fn start(&mut self, id: String, job: Job) {
        self.busy.insert(id.clone(), None);
        let reconciler = self.reconciler;
        self.running.push(
            async move {
                let runs = reconciler.run(&id, job).await;
                (id, runs)
            }
            .boxed_local(),
        );
    }

    /// Waits until a job ends, then starts what waited for it; never ends
    /// while nothing runs. A container none of whose jobs runs or waits
    /// any more is returned, with whether its last job saw it running.
    pub async fn next_done(&mut self) -> Option<(String, bool)> {
        let Some((id, runs)) = self.running.next().await else {
            return std::future::pending().await;
        };
        let done = match self.busy.remove(&id) {
            Some(Some(next)) => {
                self.start(id, next);
                None
            }
            _ => Some((id, runs)),
        };
        while self.running.len() < PARALLEL {
            let Some((id, job)) = self.ready.pop_front() else { break };
            self.submit(id, job);
        }
        done.filter(|(id, _)| !self.busy.contains_key(id))
    }

    pub fn is_idle(&self) -> bool {
        self.running.is_empty() && self.ready.is_empty()
    }

    /// At a stop of the service: what the jobs running wait for (a DHCP
    /// client, a lease) is cut short, and they end, rolled back whole.
    pub async fn stop(&mut self) {
        crate::sys::shutdown::begin();
        self.finish_running().await;
    }

    /// Lets the jobs running end (a job is never cut in the middle: an
    /// attach is applied or rolled back whole) and drops the others.
    pub async fn finish_running(&mut self) {
        self.ready.clear();
        self.busy.clear();
        while self.running.next().await.is_some() {}
    }
}
