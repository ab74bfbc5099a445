//! `pipework watch`: a foreground service on the Docker Engine API's event
//! stream that keeps containers plumbed. At a container's start it makes
//! its recorded interfaces again (same names, MAC, addresses, routes) and
//! those its `pipework.<CTR_IF>` labels ask for; at its removal it drops
//! its record and collects what is left. At its own start, and after every
//! reconnection, it catches up with what happened while it was away. While
//! it runs, it replaces a DHCP agent that dies under a running container
//! (`supervise`), and makes again what the host loses under one: a
//! bridge's ports when the bridge comes back, an interface whose host side
//! was deleted (`repair`, off with `--no-repair`).
//!
//! One thread, one host netlink connection, one engine client: the work
//! for different containers overlaps (`queue`), the work for one container
//! runs in order. Nothing polls: the service sleeps in the kernel until
//! the engine says something, a link comes or goes, a signal comes, an
//! agent exits, or (disconnected) the next reconnection is due.

mod agents;
mod backoff;
mod changes;
mod events;
mod labels;
mod queue;
mod reconcile;
mod repair;
mod supervise;

use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use tokio::signal::unix::{signal, SignalKind};

use crate::dhcp::agent;
use crate::error::{Error, Kind, Result};
use crate::records::Store;
use crate::request::Watch;
use crate::sys::netlink::{LinkEvents, Netlink};
use changes::Changes;
use events::{Engine, Happened};
use queue::{Job, Queue};
use reconcile::Reconciler;
use repair::Repairs;
use supervise::Supervisor;

/// The first wait before reconnecting, doubled at each failure up to the cap.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(3);
/// Events the engine sent just before a catch-up's listing are asked for
/// again: its clock and ours may disagree by this much.
const REPLAY_MARGIN: Duration = Duration::from_secs(1);

pub async fn watch(req: &Watch) -> Result<()> {
    let mut signals = Signals::new()?;
    crate::apply::signals::caught_here();
    let host = Netlink::here()?;
    let store = Store::from_env();
    crate::sys::exec::raise_fd_limit();
    tracing::info!("watching containers; records in {}", store.dir().display());
    match &req.allow[..] {
        [] => tracing::info!("labels are ignored: no --allow names a host interface they may use"),
        allowed => tracing::info!("labels may use host interfaces {}", allowed.join(", ")),
    }
    if req.no_repair {
        tracing::info!("--no-repair: links the host loses under running containers are not made again");
    }
    let mut backoff = FIRST_BACKOFF;
    let mut said_down = false;
    loop {
        let session = async {
            let engine = Engine::connect(&req.only).await?;
            let trust = labels::Trust::new(&req.allow);
            let reconciler = Reconciler::new(&engine, &host, &store, trust, req.no_firewall, !req.no_repair)?;
            serve(&engine, &reconciler, &mut signals, &mut said_down, &mut backoff).await
        };
        // Connecting and listing are cut short by a signal: they change nothing.
        match session.await {
            Ok(signal) => return stopping(signal),
            Err(e) if !said_down => {
                tracing::warn!("{}; reconnecting", e.message());
                said_down = true;
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            signal = signals.next() => return stopping(signal),
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// SIGTERM and SIGINT, caught from the start: the service stops between
/// jobs, not in the middle of one. SIGCHLD too: the DHCP agents it starts
/// are its children, reaped as they exit.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    child: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            child: signal(SignalKind::child())?,
        })
    }

    /// The next signal that stops the service; children reaped meanwhile.
    async fn next(&mut self) -> &'static str {
        loop {
            tokio::select! {
                _ = self.term.recv() => return "SIGTERM",
                _ = self.int.recv() => return "SIGINT",
                _ = self.child.recv() => agent::reap(),
            }
        }
    }
}

fn stopping(signal: &str) -> Result<()> {
    tracing::info!("{signal}: stopping");
    Ok(())
}

/// One connection's life: catch up, then follow the events. It ends with
/// the signal that stopped it (once the jobs running have ended), or with
/// the error that lost the engine.
async fn serve(
    engine: &Engine,
    reconciler: &Reconciler<'_>,
    signals: &mut Signals,
    said_down: &mut bool,
    backoff: &mut Duration,
) -> Result<&'static str> {
    let since = SystemTime::now() - REPLAY_MARGIN;
    let began = Instant::now();
    // Before the listing: no record written after it goes unnoticed.
    let changes = Changes::watch(reconciler.store_dir())
        .inspect_err(|e| tracing::warn!("DHCP agents of attaches made from now on are not watched: {e}"))
        .ok();
    // Before the listing too: a link lost meanwhile is in the catch-up or
    // in the messages that wait.
    let mut links = match reconciler.repairs() {
        true => LinkEvents::subscribe()
            .inspect_err(|e| tracing::warn!("links lost from now on are not repaired: {}", e.message()))
            .ok(),
        false => None,
    };
    let mut repairs = Repairs::default();
    reconciler.recover().await;
    let containers = tokio::select! {
        listed = engine.containers() => listed?,
        signal = signals.next() => return Ok(signal),
    };
    if *said_down {
        tracing::info!("reconnected to {}", engine.socket.display());
        *said_down = false;
    }
    *backoff = FIRST_BACKOFF;
    let mut queue = Queue::new(reconciler);
    let mut supervisor = Supervisor::default();
    let recorded = reconciler.recorded();
    for (id, rec) in &recorded {
        match containers.all.contains(id) {
            true if rec.engine.is_none() => reconciler.adopt(id),
            true => {}
            false if reconciler.gone(id, rec) => {
                queue.submit(id.clone(), Job::Forget { name: rec.name.clone() })
            }
            false => {}
        }
    }
    let mut wanted = 0;
    for (id, name, labels) in containers.running {
        if recorded.contains_key(&id) || labels::any(&labels) {
            queue.submit(id, Job::Start { name });
            wanted += 1;
        }
    }
    while !queue.is_idle() {
        tokio::select! {
            done = queue.next_done() => watch_agents(&mut supervisor, reconciler, done),
            signal = signals.next() => {
                queue.stop().await;
                return Ok(signal);
            }
        }
    }
    let took = began.elapsed().as_millis();
    tracing::info!("caught up: {wanted} running containers with records or labels reconciled in {took}ms");
    let mut stream = engine.events(since);
    loop {
        tokio::select! {
            event = stream.next() => {
                let event = match event {
                    Some(Ok(event)) => event,
                    lost => {
                        queue.finish_running().await;
                        return Err(match lost {
                            Some(Err(e)) => e,
                            _ => Error::new(Kind::Io, format!(
                                "Docker at {} closed the event stream", engine.socket.display())),
                        });
                    }
                };
                if event.what != Happened::Die {
                    repairs.started_or_gone(&event.id);
                }
                let job = match event.what {
                    Happened::Start => Job::Start { name: event.name },
                    Happened::Die => {
                        tracing::debug!("{} stopped", event.name);
                        supervisor.forget(&event.id);
                        repairs.stopped(&event.id);
                        continue;
                    }
                    Happened::Destroy => Job::Forget { name: event.name },
                };
                queue.submit(event.id, job);
            }
            done = queue.next_done() => watch_agents(&mut supervisor, reconciler, done),
            (id, job) = supervisor.next() => queue.submit(id, job),
            event = async {
                match &mut links {
                    Some(links) => links.next().await,
                    None => std::future::pending().await,
                }
            } => repairs.seen(event, reconciler),
            jobs = repairs.next() => {
                for (id, job) in jobs {
                    queue.submit(id, job);
                }
            }
            written = async {
                match &changes {
                    Some(changes) => changes.next().await,
                    None => std::future::pending().await,
                }
            } => {
                // A record written: an attach or detach by hand, or a job's.
                for id in written.iter().filter_map(|name| reconciler.container_of(name)) {
                    let (name, agents) = reconciler.agents(&id);
                    if let Some((id, job)) = supervisor.written(id, name, agents) {
                        queue.submit(id, job);
                    }
                }
            }
            signal = signals.next() => {
                queue.stop().await;
                return Ok(signal);
            }
        }
    }
}

/// Once a container's jobs are over, its DHCP agents as its record names
/// them now are the ones watched.
fn watch_agents(supervisor: &mut Supervisor, reconciler: &Reconciler<'_>, done: Option<(String, bool)>) {
    if let Some((id, runs)) = done {
        let (name, agents) = if runs { reconciler.agents(&id) } else { Default::default() };
        supervisor.refresh(&id, runs, name, agents);
    }
}
