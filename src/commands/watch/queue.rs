//! The work of the watch service, one job a container at a time: jobs for
//! different containers overlap (a few at once, on the service's one
//! thread), a container's next job waits for its last, and a job that
//! waits behind another is merged with it (a removal beats a start).

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
    /// The container is gone: drop its record, collect what is left.
    Forget { name: String },
}

pub struct Queue<'a> {
    reconciler: &'a Reconciler<'a>,
    running: FuturesUnordered<LocalBoxFuture<'a, String>>,
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
            // A removal stands; a later start replaces an earlier one.
            if !matches!(waiting, Some(Job::Forget { .. })) {
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
                reconciler.run(&id, job).await;
                id
            }
            .boxed_local(),
        );
    }

    /// Waits until a job ends, then starts what waited for it; never ends
    /// while nothing runs.
    pub async fn next_done(&mut self) {
        let Some(id) = self.running.next().await else {
            return std::future::pending().await;
        };
        if let Some(Some(next)) = self.busy.remove(&id) {
            self.start(id, next);
        }
        while self.running.len() < PARALLEL {
            let Some((id, job)) = self.ready.pop_front() else { break };
            self.submit(id, job);
        }
    }

    pub fn is_idle(&self) -> bool {
        self.running.is_empty() && self.ready.is_empty()
    }

    /// Lets the jobs running end (a job is never cut in the middle: an
    /// attach is applied or rolled back whole) and drops the others.
    pub async fn finish_running(&mut self) {
        self.ready.clear();
        self.busy.clear();
        while self.running.next().await.is_some() {}
    }
}
