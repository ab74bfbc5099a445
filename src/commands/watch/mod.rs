//! `pipework watch`: a foreground service on the Docker Engine API's event
//! stream that keeps containers plumbed. At a container's start it makes
//! its recorded interfaces again (same names, MAC, addresses, routes) and
//! those its `pipework.<CTR_IF>` labels ask for; at its removal it drops
//! its record and collects what is left. At its own start, and after every
//! reconnection, it catches up with what happened while it was away.
//!
//! One thread, one host netlink connection, one engine client: the work
//! for different containers overlaps (`queue`), the work for one container
//! runs in order. Nothing polls: the service sleeps in the kernel until
//! the engine says something, a signal comes, or (disconnected) the next
//! reconnection is due.

mod agents;
mod events;
mod labels;
mod queue;
mod reconcile;

use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use tokio::signal::unix::{signal, SignalKind};

use crate::dhcp::agent;
use crate::error::{Error, Kind, Result};
use crate::request::Watch;
use crate::state::Store;
use crate::sys::netlink::Netlink;
use events::{Engine, Happened};
use queue::{Job, Queue};
use reconcile::Reconciler;

/// The first wait before reconnecting, doubled at each failure up to the cap.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(3);
/// Events the engine sent just before a catch-up's listing are asked for
/// again: its clock and ours may disagree by this much.
const REPLAY_MARGIN: Duration = Duration::from_secs(1);

pub async fn watch(req: &Watch) -> Result<()> {
    let mut signals = Signals::new()?;
    let host = Netlink::here()?;
    let store = Store::from_env();
    tracing::info!("watching containers; records in {}", store.dir().display());
    let mut backoff = FIRST_BACKOFF;
    let mut said_down = false;
    loop {
        let session = async {
            let engine = Engine::connect(&req.only).await?;
            let reconciler = Reconciler::new(&engine, &host, &store)?;
            serve(&engine, &reconciler, &mut signals, &mut said_down, &mut backoff).await
        };
        // Connecting and listing are cut short by a signal: they change nothing.
        match session.await {
            Ok(signal) => return stopping(signal),
            Err(e) if !said_down => {
                tracing::warn!("{}; reconnecting", e.message().trim_start_matches("pipework: "));
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
    let recorded = reconciler.recorded();
    for (id, name) in recorded.iter().filter(|(id, _)| !containers.all.contains(*id)) {
        queue.submit(id.clone(), Job::Forget { name: name.clone() });
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
            () = queue.next_done() => {}
            signal = signals.next() => {
                queue.finish_running().await;
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
                let job = match event.what {
                    Happened::Start => Job::Start { name: event.name },
                    Happened::Die => {
                        tracing::debug!("{} stopped", event.name);
                        continue;
                    }
                    Happened::Destroy => Job::Forget { name: event.name },
                };
                queue.submit(event.id, job);
            }
            () = queue.next_done() => {}
            signal = signals.next() => {
                queue.finish_running().await;
                return Ok(signal);
            }
        }
    }
}
