//! What the watch service does for one container: at its start, make the
//! interfaces its record and its labels ask for, those that are not there
//! already (and see that those there keep their DHCP agents); after one
//! of its agents died, keep its agents alone; after the host lost one of
//! its links or bridges, make what its record names again (`Pass::Repair`:
//! its labels are not looked at, a bridge port is put back on its bridge);
//! at its removal, drop its record and collect what is left.
//! Failures are logged with the container's name; the service carries on.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::agents::{self, Kept};
use super::events::Engine;
use super::labels::{self, Trust};
use super::queue::Job;
use crate::dhcp::agent::AgentId;
use crate::drivers::detach::undo;
use crate::drivers::kinds::HostSide;
use crate::drivers::made_on_host;
use crate::drivers::replay::replay;
use crate::drivers::veth_port::is_default_name;
use crate::error::{Error, Result};
use crate::plan::{Plan, Side, Step};
use crate::records::{Attached, DhcpRecord, Finder, HostNs, How, Interface, NsId, Record, Store};
use crate::request::{Attach, HostIf};
use crate::resolve::docker::{self, Running};
use crate::resolve::guest::Guest;
use crate::sys::netlink::Netlink;

mod leases;
mod ports;

use ports::on_bridge;

pub struct Reconciler<'a> {
    engine: &'a Engine,
    host: &'a Netlink,
    store: &'a Store,
    /// This network namespace: records made from another are left to a
    /// watch running there.
    here: NsId,
    /// What labels may ask of the host (`--allow`).
    trust: Trust,
    /// `--no-firewall`, for every attach it makes.
    no_firewall: bool,
    /// Bridge ports put back on their bridge (no `--no-repair`).
    repair: bool,
}

/// A container's record, as a catch-up goes by it.
pub struct Recorded {
    pub name: String,
    /// The engine the record names (`GuestRecord::engine`).
    pub engine: Option<String>,
}

/// One interface a container should have, and the MAC it must have if it
/// is there already (a recorded one's).
struct Wanted {
    req: Attach,
    mac: Option<crate::mac::Mac>,
    /// A recorded interface's DHCP, whose agent must run.
    dhcp: Option<DhcpRecord>,
    /// The recorded interface it makes again, if any.
    recorded: Option<Interface>,
}

/// Why a container's interfaces are made: its start (or a catch-up), or a
/// repair after the host lost a link while it ran (when, in clock ticks
/// after boot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    Start,
    Repair(u64),
}

/// How long a recorded host side of the container's old namespace is
/// waited for to go: the kernel deletes a veth with its peer's namespace,
/// but not at once (later under load).
const OUTLIVED: Duration = Duration::from_secs(5);

impl<'a> Reconciler<'a> {
    pub fn new(
        engine: &'a Engine,
        host: &'a Netlink,
        store: &'a Store,
        trust: Trust,
        no_firewall: bool,
        repair: bool,
    ) -> Result<Reconciler<'a>> {
        Ok(Reconciler { engine, host, store, here: HostNs::current()?.id, trust, no_firewall, repair })
    }

    /// The containers that have a record: ID, name and the engine the
    /// record names. An unreadable record is reported and left alone, and
    /// so is a CNI record (`Finder::Cni`): its runtime makes it again (ADD)
    /// and removes it (DEL).
    pub fn recorded(&self) -> HashMap<String, Recorded> {
        self.records(true)
            .into_iter()
            .map(|(id, r)| {
                let name = r.guest_name().to_string();
                (id, Recorded { name, engine: r.guest.engine.clone() })
            })
            .collect()
    }

    /// The records of this engine's containers made here, by container ID;
    /// unreadable ones reported if `say`.
    pub fn records(&self, say: bool) -> Vec<(String, Record)> {
        let listing = match self.store.load_all() {
            Ok(listing) => listing,
            Err(e) => {
                tracing::warn!("{}", e.message());
                return Vec::new();
            }
        };
        for broken in listing.broken.iter().filter(|_| say) {
            tracing::warn!("{}: {}", broken.path.display(), broken.error.message());
        }
        listing
            .records
            .into_iter()
            .filter(|r| r.host.id == self.here)
            .filter_map(|r| match &r.guest.find {
                Finder::Container { runtime, id, .. } if runtime == self.engine.runtime => {
                    Some((id.clone(), r))
                }
                _ => None,
            })
            .collect()
    }

    /// Whether a record of a container this engine does not list is stale:
    /// only if the record names this engine. One that names another is
    /// that engine's (a watch on another `DOCKER_HOST`); one that names
    /// none (written before records named their engine) is never
    /// collected on absence: which engine made it is unknown, and dropping
    /// it loses the only way back to what it made. It names this engine
    /// from the first catch-up that finds its container (`adopt`); its
    /// removal (an event) still drops it; `pipework detach` does too.
    pub fn gone(&self, id: &str, recorded: &Recorded) -> bool {
        let name = &recorded.name;
        match (&recorded.engine, &self.engine.id) {
            (Some(theirs), Some(ours)) if theirs == ours => return true,
            (Some(theirs), _) => tracing::info!(
                "{name}: not in this engine, whose ID is {}; its record names engine {theirs}: left to it",
                self.engine.id.as_deref().unwrap_or("unknown")
            ),
            (None, _) => tracing::warn!(
                "{name}: not in this engine, and its record names no engine (an older pipework's): \
                 left alone; `pipework detach {id}` drops it"
            ),
        }
        false
    }

    /// A record written before records named their engine, of a container
    /// this engine lists: it names this engine from now on.
    pub fn adopt(&self, id: &str) {
        let Some(engine) = &self.engine.id else { return };
        let adopted = self.store.update(&self.key(id), |slot| {
            if let Some(record) = slot.as_mut().filter(|r| r.guest.engine.is_none()) {
                record.guest.engine = Some(engine.clone());
            }
        });
        if let Err(e) = adopted {
            tracing::warn!("{}", e.message());
        }
    }

    /// The key of the record of this engine's container `id`.
    fn key(&self, id: &str) -> String {
        Finder::Container { runtime: self.engine.runtime.into(), id: id.into(), name: String::new() }.key()
    }

    /// Runs `job`; whether the container is still one to look after
    /// (running, and let in by `--only`), as far as the job saw.
    pub async fn run(&self, id: &str, job: Job) -> bool {
        let (outcome, name) = match &job {
            Job::Start { name } => (self.plumb(id, name, Pass::Start).await, name),
            Job::Repair { name, lost } => (self.plumb(id, name, Pass::Repair(*lost)).await, name),
            Job::Bridge { name } => (self.bridge_back(name).await.map(|()| false), name),
            Job::Agents { name } => (self.keep_agents(id, name).await, name),
            Job::Forget { name } => (self.forget(id, name).await.map(|()| false), name),
        };
        outcome.unwrap_or_else(|e| {
            report(if name.is_empty() { id } else { name }, &e);
            !matches!(job, Job::Forget { .. })
        })
    }

    /// The container `id`, if it runs and `--only` lets it in.
    async fn running(&self, id: &str, name: &str) -> Result<Option<Running>> {
        let (docker, socket) = (&self.engine.docker, &self.engine.socket);
        let label = if name.is_empty() { id } else { name };
        let mut found = docker::running_with(docker, socket, self.engine.runtime, label, id).await?;
        match &mut found {
            None => tracing::debug!("{label}: not running"),
            Some(Running { guest, .. }) => {
                if let Some(engine) = &self.engine.id {
                    guest.engine = docker::EngineId::known(engine);
                }
            }
        }
        Ok(found.filter(|found| self.engine.lets_in(&found.labels)))
    }

    async fn plumb(&self, id: &str, name: &str, pass: Pass) -> Result<bool> {
        let began = Instant::now();
        let Some(Running { guest, labels: found_labels, network_mode }) = self.running(id, name).await?
        else {
            return Ok(false);
        };
        let pass = restarted_since(pass, &guest);
        let name = guest.label.clone();
        let record = self.store.load(&self.key(id))?.filter(|r| {
            let here = r.host.id == self.here;
            if !here {
                tracing::warn!(
                    "{name}: attached from {}, not from here: left to a watch there",
                    r.host.describe()
                );
            }
            here
        });
        let mut wanted: Vec<Wanted> = match &record {
            Some(record) => record.interfaces.iter().map(|i| replayed(record, i)).collect(),
            None => Vec::new(),
        };
        // A repair makes what records name, nothing labels ask: what a
        // detach took away stays away.
        if pass == Pass::Start {
            let (asked, malformed) = labels::attaches(id, &found_labels, host_has);
            for m in malformed {
                tracing::warn!("{name}: label {} ignored: {}", m.label, m.why);
            }
            // A recorded interface is made as it was, with the MAC it had.
            let asked: Vec<_> = asked
                .into_iter()
                .filter(|a| !wanted.iter().any(|w| w.req.container_if == a.req.container_if))
                .collect();
            for req in self.trusted(&name, &network_mode, asked).await? {
                wanted.push(Wanted { req, mac: None, dhcp: None, recorded: None });
            }
        }
        if wanted.is_empty() {
            tracing::debug!("{name}: started; nothing recorded or labelled");
            return Ok(true);
        }
        guest.refuse_here("there is nothing to connect")?;
        let inside = Netlink::inside_async(guest.netns()).await?;
        let (mut made, mut there) = (Vec::new(), 0);
        let (mut ports, mut back) = (Plan::on_host(), Vec::new());
        for w in &wanted {
            let ifname = w.req.container_if.as_deref().unwrap_or("eth1");
            match inside.link(ifname).await? {
                Some(link) if w.mac.is_none_or(|mac| link.mac == Some(mac)) => {
                    there += 1;
                    if let Some(dhcp) = &w.dhcp {
                        self.keep_agent(id, &name, w, dhcp, &guest, &inside).await;
                    }
                    let recorded = w.recorded.as_ref().filter(|_| self.repair);
                    if let Some(port) = recorded.and_then(on_bridge) {
                        if self.port_steps(port, &mut ports.steps).await? {
                            back.push(format!("{ifname} on {}", port.bridge));
                        }
                    }
                }
                Some(link) => tracing::warn!(
                    "{name}: {ifname} is there with MAC {} instead of the recorded {}: left alone",
                    link.mac.map_or("none".into(), |m| m.to_string()),
                    w.mac.map_or("none".into(), |m| m.to_string()),
                ),
                None => match async {
                    // A veth whose host side keeps its name (`-l`): the
                    // old one may outlive the container's old namespace.
                    let kept = w.req.local_if.is_some();
                    if let Some(old) =
                        w.recorded.as_ref().filter(|i| kept && i.how.host_side() == HostSide::Peer)
                    {
                        self.old_host_side_gone(old).await?;
                    }
                    crate::attach::connect(
                        &Attach { no_firewall: w.req.no_firewall || self.no_firewall, ..w.req.clone() },
                        &guest,
                        self.host,
                        &inside,
                    )
                    .await
                }
                .await
                {
                    Ok(()) => made.push(ifname),
                    Err(e) => report(&format!("{name}: {ifname} not plumbed"), &e),
                },
            }
        }
        let back = self.put_back(&name, &ports, back).await;
        // Its routes and rules, once the interfaces they use are back.
        if let Some(record) = record.as_ref().filter(|_| !made.is_empty()) {
            for line in &record.commands {
                if let Err(e) = crate::iproute2::run::replay(guest.netns(), line).await {
                    tracing::warn!("{name}: pipework {} not made again: {}", line.join(" "), e.message());
                }
            }
        }
        let again = if pass == Pass::Start { &[] } else { made.as_slice() };
        if !(again.is_empty() && back.is_empty()) {
            let mut what = Vec::new();
            if !again.is_empty() {
                what.push(format!("made {} again", again.join(", ")));
            }
            if !back.is_empty() {
                what.push(format!("put {} back", back.join(", ")));
            }
            tracing::info!("{name}: repaired: {} in {:.1?}", what.join("; "), began.elapsed());
        }
        if pass == Pass::Start && !made.is_empty() {
            tracing::info!(
                "{name}: plumbed {} in {:.1?}{}",
                made.join(", "),
                began.elapsed(),
                if there > 0 { format!(" ({there} there already)") } else { String::new() }
            );
        } else if again.is_empty() && back.is_empty() {
            tracing::debug!("{name}: all {there} interfaces there already");
        }
        Ok(true)
    }

    /// Waits, up to `OUTLIVED`, for the host side pipework made for `old`
    /// in the container's old namespace to go, rather than refuse its name
    /// ("exists and is up"). A link that took the name since is not waited
    /// for: the attach refuses it as before.
    async fn old_host_side_gone(&self, old: &Interface) -> Result<()> {
        let Some(name) = old.host_side.as_deref() else { return Ok(()) };
        let deadline = Instant::now() + OUTLIVED;
        let wait = async {
            while let Some(link) = self.host.link(name).await? {
                if !made_on_host(old, &link) || Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(())
        };
        crate::sys::shutdown::unless_stopping(&format!("waiting for the old {name} to go"), wait).await
    }

    /// The labels' attaches that `--allow` lets through; the others logged.
    /// A container in another's network namespace, or the host's, gets none.
    async fn trusted(
        &self,
        name: &str,
        network_mode: &str,
        asked: Vec<labels::Asked>,
    ) -> Result<Vec<Attach>> {
        if asked.is_empty() {
            return Ok(Vec::new());
        }
        if !labels::owns_netns(network_mode) {
            tracing::warn!(
                "{name}: labels ignored: NetworkMode {network_mode}: it does not own its network namespace, \
                 and labels plumb only a container's own"
            );
            return Ok(Vec::new());
        }
        let links = match asked.iter().any(|a| matches!(a.req.host, HostIf::Mac(..))) {
            true => self.host.links().await?,
            false => Vec::new(),
        };
        let mac_owner =
            |mac: &crate::mac::Mac| links.iter().find(|l| l.mac == Some(*mac)).map(|l| l.name.clone());
        let (trusted, said) = labels::sift(asked, &self.trust, mac_owner);
        for line in said {
            tracing::warn!("{name}: {line}");
        }
        Ok(trusted)
    }

    /// The container whose record is the file `name`, if it is this engine's.
    pub fn container_of(&self, name: &str) -> Option<String> {
        let id = name.strip_prefix(self.engine.runtime)?.strip_prefix('-')?.strip_suffix(".json")?;
        (!id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_string())
    }

    /// Whether what the host loses is made again (no `--no-repair`).
    pub fn repairs(&self) -> bool {
        self.repair
    }

    /// Rolls back the runs killed half-way (this service's before a
    /// restart, the command line's): before a catch-up, whose jobs then
    /// find the host and guests as they were.
    pub async fn recover(&self) {
        match crate::intents::recover(self.store, self.host, crate::intents::Scope::All).await {
            Ok(left) => crate::intents::report(&left),
            Err(e) => tracing::warn!("runs killed half-way are not rolled back: {e}"),
        }
    }

    pub fn store_dir(&self) -> &std::path::Path {
        self.store.dir()
    }

    /// A removed container: whatever its interfaces left on the host
    /// (bridge ports of veths are gone with its namespace; an OVS port or a
    /// DHCP agent may remain) is undone as `detach` undoes it, then the
    /// record goes.
    async fn forget(&self, id: &str, name: &str) -> Result<()> {
        let key = self.key(id);
        let Some(record) = self.store.load(&key)?.filter(|r| r.host.id == self.here) else {
            tracing::debug!("{name}: removed; it had no record");
            return Ok(());
        };
        if let (Some(theirs), Some(ours)) = (&record.guest.engine, &self.engine.id) {
            if theirs != ours {
                tracing::info!("{name}: removed here, but its record names engine {theirs}: left to it");
                return Ok(());
            }
        }
        // What is left on the host (an OVS port, an agent; a veth's host
        // side went with its namespace) undone, as a detach would.
        let all: Vec<&Interface> = record.interfaces.iter().collect();
        let plan = undo(&record, &all, self.host, None).await?;
        crate::apply::here_then(&plan, self.host, None, None, async || Ok(())).await?;
        self.store.remove(&key)?;
        tracing::info!("{name}: removed; its record of {} interfaces dropped", record.interfaces.len());
        Ok(())
    }
}

/// The attach that makes a recorded interface again. A host side named
/// after the guest's old PID (`v<IF>pl<PID>`, pipework's default) gets
/// its new PID: the old one may outlive the old namespace a moment.
fn replayed(record: &Record, iface: &Interface) -> Wanted {
    let mut req = replay(record, iface);
    if req.local_if.as_deref().is_some_and(|l| is_default_name(l, &iface.name)) {
        req.local_if = None;
    }
    Wanted { req, mac: Some(iface.mac), dhcp: iface.dhcp.clone(), recorded: Some(iface.clone()) }
}

/// A repair of a container whose process started after the link was lost
/// is its start: it restarted, and lost the link with its old namespace
/// (its engine's `die`, which keeps repairs from being asked for, may come
/// after that: Podman cleans the old namespace up first).
fn restarted_since(pass: Pass, guest: &Guest) -> Pass {
    match (pass, guest.process().and_then(|p| crate::sys::process::started_at(p.pid()))) {
        (Pass::Repair(lost), Some(started)) if started >= lost => Pass::Start,
        (pass, _) => pass,
    }
}

/// Whether this namespace has an interface of that name, for the labels'
/// command lines.
fn host_has(name: &str) -> bool {
    nix::net::if_::if_nametoindex(name).is_ok()
}

/// A failure, and what its rollback could not undo, as warnings.
fn report(what: &str, e: &Error) {
    tracing::warn!("{what}: {}", e.message());
    for failure in e.rollback() {
        tracing::warn!("{what}: {}", failure.message());
    }
}
