//! The DHCP agents of the running containers the service looks after,
//! watched while it runs: an agent that dies (a crash, the OOM killer,
//! `kill -9`) while its container runs on is replaced at once through the
//! job a catch-up would run for it (`Job::Agents`: adopt or replace the
//! container's agents, nothing else), which resumes the lease from the
//! state the dead agent left.
//!
//! Each agent is watched through a pidfd (Linux 5.3), which turns readable
//! when the process exits, whether or not it is the service's child: most
//! are not (an attach or an earlier watch started them, in a session of
//! their own), so waitpid cannot tell, and a periodic look at /proc would
//! be late by its period and wake an idle service for nothing. One fd an
//! agent, polled by the event loop with the rest; `watch` raises its soft
//! limit on open files to the hard one for hosts with many.
//!
//! An agent that leaves on purpose removes its state file before it exits:
//! at a SIGTERM (`detach`, a container's removal, an operator) and when its
//! container stops (its init died). Such an exit is not replaced, so the
//! stop and removal paths never race into a new agent; a death leaves the
//! state behind. A replacement that dies again within `STEADY` of the
//! last, or that could not be made, is tried again after a wait that
//! doubles from 1 s to a minute, said in the log: never a hot loop.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::future::{AbortHandle, Abortable, LocalBoxFuture};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};

use super::backoff::Backoff;
use super::queue::Job;
use crate::dhcp::agent::AgentId;
use crate::dhcp::lease_file::LeaseFile;
use crate::sys::process::Process;

/// A replacement that lasts this long is a success: the next death of that
/// interface's agent is replaced at once again.
const STEADY: Duration = Duration::from_secs(30);

/// A container's ID and the interface.
type Key = (String, String);

#[derive(Default)]
pub struct Supervisor {
    /// The containers a job last saw running and let in by `--only`.
    looked_after: HashSet<String>,
    watched: HashMap<Key, Watched>,
    exits: FuturesUnordered<Abortable<LocalBoxFuture<'static, (Key, AgentId)>>>,
    /// Replacements to ask for, each once its wait is over.
    due: FuturesUnordered<LocalBoxFuture<'static, Key>>,
    /// The interfaces whose agents were replaced, until their container stops.
    tries: HashMap<Key, Tries>,
}

struct Watched {
    /// The container's name, for the log and the job.
    name: String,
    agent: AgentId,
    state: PathBuf,
    stop: AbortHandle,
}

struct Tries {
    name: String,
    /// The agent whose death asked for the last replacement: the job that
    /// made it, and a record written meanwhile, may still name it, and it is
    /// not to be counted twice.
    died: AgentId,
    /// The wait before the next replacement, if the last one does not last.
    backoff: Backoff,
}

impl Supervisor {
    /// After the jobs of container `id` (named `name`): the agents its record
    /// names now (interface, agent, state file) are watched, those it no
    /// longer names are not. A recorded agent that is not running and left
    /// its state (a replacement that failed or died at once, a catch-up
    /// that could not replace it) is replaced. A container that no longer
    /// `runs` is forgotten.
    pub fn refresh(&mut self, id: &str, runs: bool, name: String, agents: Vec<(String, AgentId, PathBuf)>) {
        if !runs {
            return self.forget(id);
        }
        self.looked_after.insert(id.to_string());
        let unrecorded: Vec<Key> = (self.watched.keys())
            .filter(|(of, ifname)| of == id && !agents.iter().any(|(i, ..)| i == ifname))
            .cloned()
            .collect();
        for key in unrecorded {
            self.unwatch(&key);
            self.tries.remove(&key);
        }
        for (ifname, agent, state) in agents {
            let key = (id.to_string(), ifname);
            if self.watched.get(&key).is_some_and(|w| w.agent == agent) {
                continue;
            }
            self.unwatch(&key);
            // Opened first, checked after: a pidfd names the process, so the
            // check is of the very process whose exit it reports.
            match Process::open(agent.pid.into()) {
                Ok(process) if agent.running(&state) => {
                    let (exited, stop) = futures::future::abortable(
                        {
                            let key = key.clone();
                            async move {
                                if let Err(e) = process.exited().await {
                                    tracing::warn!(
                                        "{}'s DHCP agent {} cannot be watched: {e}",
                                        key.1,
                                        agent.pid
                                    );
                                    std::future::pending::<()>().await;
                                }
                                (key, agent)
                            }
                        }
                        .boxed_local(),
                    );
                    self.exits.push(exited);
                    self.watched.insert(key, Watched { name: name.clone(), agent, state, stop });
                }
                Ok(_) => self.gone(key, &name, agent, &state),
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => self.gone(key, &name, agent, &state),
                Err(e) => tracing::warn!(
                    "{name}: {}'s DHCP agent {} cannot be watched: {e}; it is replaced at the \
                     container's next start or the service's next catch-up only",
                    key.1,
                    agent.pid
                ),
            }
        }
    }

    /// The record of container `id` was written, naming `agents`: watched
    /// as they are now if the container is one looked after; else a job
    /// finds out whether it is one (it may run since before the service's
    /// start, with nothing recorded then, or be one `--only` leaves out).
    pub fn written(
        &mut self,
        id: String,
        name: String,
        agents: Vec<(String, AgentId, PathBuf)>,
    ) -> Option<(String, Job)> {
        if self.looked_after.contains(&id) {
            self.refresh(&id, true, name, agents);
            None
        } else {
            (!agents.is_empty()).then_some((id, Job::Agents { name }))
        }
    }

    /// The container stopped or went: its agents leave with it.
    pub fn forget(&mut self, id: &str) {
        self.looked_after.remove(id);
        let keys: Vec<Key> = self.watched.keys().filter(|(of, _)| of == id).cloned().collect();
        for key in keys {
            self.unwatch(&key);
        }
        self.tries.retain(|(of, _), _| of != id);
    }

    /// The next replacement to ask for; pending while there is none.
    pub async fn next(&mut self) -> (String, Job) {
        loop {
            tokio::select! {
                Some(exit) = self.exits.next() => {
                    if let Ok((key, agent)) = exit {
                        self.exited(key, agent);
                    }
                }
                Some(key) = self.due.next() => {
                    // Not when its container stopped meanwhile.
                    if let Some(tries) = self.tries.get(&key) {
                        return (key.0, Job::Agents { name: tries.name.clone() });
                    }
                }
                else => std::future::pending().await,
            }
        }
    }

    fn unwatch(&mut self, key: &Key) {
        if let Some(w) = self.watched.remove(key) {
            w.stop.abort();
        }
    }

    fn exited(&mut self, key: Key, agent: AgentId) {
        let Some(w) = self.watched.remove(&key).filter(|w| w.agent == agent) else { return };
        self.gone(key, &w.name, agent, &w.state);
    }

    /// `agent` is not running: replaced if it died, not if it left on
    /// purpose. A state file that names another agent is a new one's (a
    /// restarted container's namespace may get the old one's inode, and so
    /// the same state file name).
    fn gone(&mut self, key: Key, name: &str, agent: AgentId, state: &Path) {
        let (ifname, pid) = (&key.1, agent.pid);
        if !LeaseFile::names_agent(state, pid) {
            tracing::info!(
                "{name}: {ifname}'s DHCP agent {pid} left on purpose (it removed its state): not replaced"
            );
            self.tries.remove(&key);
            return;
        }
        if self.tries.get(&key).is_some_and(|tries| tries.died == agent) {
            return;
        }
        let now = Instant::now();
        let again = self.tries.get_mut(&key).and_then(|tries| {
            tries.died = agent;
            tries.backoff.again(now, STEADY)
        });
        let wait = match again {
            Some(wait) => wait,
            None => {
                let tries = Tries { name: name.to_string(), died: agent, backoff: Backoff::start(now) };
                self.tries.insert(key.clone(), tries);
                Duration::ZERO
            }
        };
        if wait.is_zero() {
            tracing::info!("{name}: {ifname}'s DHCP agent {pid} died: replacing it");
        } else {
            tracing::warn!(
                "{name}: {ifname}'s DHCP agent {pid} is gone again within {}s of its last replacement: \
                 replacing it in {}s",
                STEADY.as_secs(),
                wait.as_secs()
            );
        }
        self.due.push(
            async move {
                tokio::time::sleep(wait).await;
                key
            }
            .boxed_local(),
        );
    }
}
