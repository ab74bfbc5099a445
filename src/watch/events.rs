//! The Docker Engine API as the watch service uses it (Podman's
//! Docker-compatible socket too): the containers there are, and the stream
//! of their starts, deaths and removals.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::SystemTime;

use bollard::query_parameters::{EventsOptions, ListContainersOptions};
use bollard::Docker;
use futures::{Stream, StreamExt};

use crate::error::{Error, Kind, Result};
use crate::resolve::docker;

/// What happened to a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Happened {
    Start,
    Die,
    Destroy,
}

#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    /// Its name, for the log.
    pub name: String,
    pub what: Happened,
}

/// A connection to the engine, and the label filters (`--only`) a
/// container must match to be looked after.
pub struct Engine {
    pub docker: Docker,
    pub socket: PathBuf,
    /// `docker` or `podman`: the records of this engine's containers are
    /// the ones looked after (another watch may look after the others').
    pub runtime: &'static str,
    /// Its ID (`/info`), which the records of its containers name: only
    /// this engine's word that a container is gone counts (another
    /// `DOCKER_HOST` knows none of them). None if it gives none.
    pub id: Option<String>,
    only: Vec<String>,
}

/// The containers there are, at catch-up.
pub struct Containers {
    /// Every container's ID, running or not: a record of any other is stale.
    pub all: HashSet<String>,
    /// The running containers that `--only` lets in: ID, name and labels.
    pub running: Vec<(String, String, HashMap<String, String>)>,
}

impl Engine {
    /// The engine's socket, found and trusted as for an attach, and which
    /// engine it is.
    pub async fn connect(only: &[String]) -> Result<Engine> {
        let (docker, socket) = docker::client("the watch service")?;
        let (runtime, id) = tokio::join!(docker::runtime(&docker, &socket), docker::engine_id(&docker));
        Ok(Engine { docker, socket, runtime: runtime?, id, only: only.to_vec() })
    }

    pub async fn containers(&self) -> Result<Containers> {
        let options = ListContainersOptions { all: true, ..Default::default() };
        let listed = self.docker.list_containers(Some(options)).await.map_err(|e| self.unreachable(e))?;
        let mut found = Containers { all: HashSet::new(), running: Vec::new() };
        for c in listed {
            let Some(id) = c.id else { continue };
            let labels = c.labels.unwrap_or_default();
            let running = c.state.is_some_and(|s| s.to_string() == "running");
            if running && self.lets_in(&labels) {
                let name = c.names.and_then(|n| n.into_iter().next()).unwrap_or_default();
                found.running.push((id.clone(), name.trim_start_matches('/').to_string(), labels));
            }
            found.all.insert(id);
        }
        Ok(found)
    }

    /// Whether a container with these labels is one to look after: Docker's
    /// `label=KEY` and `label=KEY=VALUE` filters, all of them.
    pub fn lets_in(&self, labels: &HashMap<String, String>) -> bool {
        self.only.iter().all(|filter| match filter.split_once('=') {
            Some((key, value)) => labels.get(key).is_some_and(|v| v == value),
            None => labels.contains_key(filter),
        })
    }

    /// Container starts, deaths and removals from `since` on (the engine
    /// replays what it saw since then, so nothing falls between a catch-up
    /// and the stream); it ends when the engine goes away.
    pub fn events(&self, since: SystemTime) -> impl Stream<Item = Result<Event>> + Unpin + '_ {
        let since = since.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        let mut filters = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            ("event".to_string(), ["start", "die", "destroy", "remove"].map(String::from).to_vec()),
        ]);
        if !self.only.is_empty() {
            filters.insert("label".to_string(), self.only.clone());
        }
        let options = EventsOptions {
            since: Some(format!("{}.{:09}", since.as_secs(), since.subsec_nanos())),
            until: None,
            filters: Some(filters),
        };
        self.docker
            .events(Some(options))
            .filter_map(move |message| async move {
                let message = match message {
                    Ok(message) => message,
                    Err(e) => return Some(Err(self.unreachable(e))),
                };
                let what = match message.action.as_deref()? {
                    "start" => Happened::Start,
                    "die" => Happened::Die,
                    // Podman's socket says `remove` where Docker says `destroy`.
                    "destroy" | "remove" => Happened::Destroy,
                    _ => return None,
                };
                let actor = message.actor?;
                let name = actor.attributes.as_ref().and_then(|a| a.get("name")).cloned().unwrap_or_default();
                Some(Ok(Event { id: actor.id?, name, what }))
            })
            .boxed_local()
    }

    pub fn unreachable(&self, e: bollard::errors::Error) -> Error {
        Error::new(Kind::Io, format!("cannot reach Docker at {}: {e}", self.socket.display()))
    }
}
