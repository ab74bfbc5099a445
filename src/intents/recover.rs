//! Dead runs' intents, rolled back: their undo newest first, each checked
//! against what is there now (by ifindex, by the agent's start time, by
//! the bridge a port is still on), so nothing made since is touched. What
//! cannot be undone stays in the intent and is reported (`Interrupted`),
//! and tried again by the next recovery.

use std::os::fd::AsFd;

use super::log::{boot_id, slots, Header, Slot, State};
use super::{Commit, Entry};
use crate::apply::{revert, Target};
use crate::error::{Error, Kind, Result};
use crate::loopdev;
use crate::plan::Undo;
use crate::records::{NsId, Store};
use crate::resolve::guest::{self, Guest};
use crate::sys::netlink::Netlink;
use crate::sys::output;

/// How long a command waits for another's rollback of a run it would roll
/// back itself.
const RECOVERY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Which dead runs a command recovers.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Every one made from this host namespace (`check`, `show`, watch).
    All,
    /// Those of the guest whose record key this is (a run on that guest).
    Guest(&'a str),
    /// Those on the host alone (mkbridge, loop ensure).
    Host,
}

/// A dead run that could not be wholly rolled back.
#[derive(Debug, Clone)]
pub struct Interrupted {
    pub pid: u32,
    pub what: String,
    /// The guest's label, if the run had one.
    pub guest: Option<String>,
    /// The interface it was making, if it says.
    pub interface: Option<String>,
    /// Each change left, with why.
    pub left: Vec<String>,
}

impl Interrupted {
    /// `interrupted run of pid 123 (pipework br0 c1 10.0.0.2/24)`.
    pub fn describe(&self) -> String {
        format!("interrupted run of pid {} ({})", self.pid, self.what)
    }

    /// Whether the operator's `arg` names this run's guest.
    pub fn is_of(&self, arg: &str) -> bool {
        self.guest.as_deref() == Some(arg)
    }
}

/// What a recovery did: how many dead runs it rolled back, and those it
/// could not wholly.
#[derive(Debug, Default)]
pub struct Recovery {
    pub rolled_back: usize,
    /// Rollbacks under way by other commands, waited for.
    pub waited: usize,
    pub left: Vec<Interrupted>,
}

impl Recovery {
    /// Whether the host or a guest may have changed since the caller
    /// looked: it looks again.
    pub fn changed(&self) -> bool {
        self.rolled_back > 0 || self.waited > 0 || !self.left.is_empty()
    }
}

/// Rolls back every dead run in `scope` made from this namespace, newest
/// first (a later run's change may rest on an earlier one's: its port on
/// the bridge that run made), with a line on stderr for each; and what
/// outlived a reboot of the runs killed by it, whatever the scope.
pub async fn recover(store: &Store, host: &Netlink, scope: Scope<'_>) -> Result<Recovery> {
    let mut recovery = Recovery::default();
    let paths = slots(store)?;
    if paths.is_empty() {
        return Ok(recovery);
    }
    let (boot, here) = (boot_id(), NsId::of_path("/proc/thread-self/ns/net")?);
    let wanted = |h: &Header| {
        let key = h.guest.as_ref().map(|g| g.find.key());
        let in_scope = match scope {
            Scope::All => true,
            Scope::Guest(k) => key.as_deref() == Some(k),
            Scope::Host => key.is_none(),
        };
        h.boot != boot || (h.host == here && in_scope)
    };
    let mut dead = Vec::new();
    for path in paths {
        let slot = match Slot::try_lock(&path)? {
            Some(slot) => slot,
            // Another command rolling back a run of this scope: waited for,
            // so that what this one does next finds that run undone.
            None if Slot::peek(&path).is_some_and(|h| h.state == State::Recovering && wanted(&h)) => {
                recovery.waited += 1;
                match lock_when_recovered(&path).await? {
                    Some(slot) => slot,
                    None => continue,
                }
            }
            None => continue,
        };
        let Some(header) = slot.header().filter(|h| h.state.holds_run()) else { continue };
        if wanted(&header) {
            dead.push((header.boot == boot, header.began, path));
        }
    }
    dead.sort_by_key(|&(this_boot, began, _)| (this_boot, std::cmp::Reverse(began)));
    for (this_boot, _, path) in dead {
        // Recovered meanwhile by another command, or being so now.
        let Some(slot) = Slot::try_lock(&path)? else { continue };
        let Some(header) = slot.header().filter(|h| h.state.holds_run()) else { continue };
        // One run that cannot be recovered does not keep the others.
        match roll_back(store, host, &slot, &header, this_boot).await {
            Ok(Some(run)) => recovery.left.push(run),
            Ok(None) => recovery.rolled_back += 1,
            Err(e) => recovery.left.push(Interrupted {
                pid: header.run.pid,
                what: header.what.clone(),
                guest: header.guest.as_ref().map(|g| g.label.clone()),
                interface: None,
                left: vec![format!("not rolled back: {}", e.message())],
            }),
        }
    }
    Ok(recovery)
}

/// One dead run's intent: freed when it is wholly undone (or its record
/// says it was whole), else rewritten with what is left. Of a run of an
/// earlier boot only what outlived it is undone: the rest went with it.
async fn roll_back(
    store: &Store,
    host: &Netlink,
    slot: &Slot,
    header: &Header,
    this_boot: bool,
) -> Result<Option<Interrupted>> {
    let entries = slot.entries(&header.run);
    let pid = header.run.pid;
    // Killed before its first step: nothing to undo, nothing to say.
    if entries.is_empty() {
        slot.free(header)?;
        return Ok(None);
    }
    let commit = entries.iter().find_map(|e| match e {
        Entry::Commit(c) => Some(c.clone()),
        _ => None,
    });
    let interface = commit.as_ref().map(|c| c.interface.clone());
    if let Some(commit) = &commit {
        if committed(store, commit)? {
            tracing::info!("run of pid {pid} ({}) was killed after its record was written", header.what);
            slot.free(header)?;
            return Ok(None);
        }
    }
    slot.set_state(header, State::Recovering)?;
    injected_recovery_pause().await;
    let guest = match &header.guest {
        Some(g) if this_boot => guest_now(&g.label, &g.find, g.netns).await?,
        _ => None,
    };
    let inside = guest.as_ref().map(|g| Netlink::inside(g.netns())).transpose()?;
    let own = crate::sys::netns::current()?;
    let target = Target {
        host,
        guest: inside.as_ref().unwrap_or(host),
        host_ns: own.as_fd(),
        guest_ns: guest.as_ref().map(|g| g.netns()).unwrap_or(own.as_fd()),
    };
    // A step logged with nothing after it was under way when the run died.
    let under_way = match entries.last() {
        Some(Entry::Step { n, command }) if this_boot => {
            format!("; step {n} ({command}) was under way and may have taken effect")
        }
        _ => String::new(),
    };
    let (mut kept, mut left, mut undone) = (Vec::new(), Vec::new(), 0);
    for entry in entries.into_iter().rev() {
        match entry {
            Entry::Undo(undo) if !this_boot && !undo.outlives_boot() => {}
            Entry::Undo(undo) if undo.in_guest() && inside.is_none() => {
                tracing::info!("recovery: {undo}: gone with the guest's namespace");
            }
            Entry::Undo(undo) => match undo_checked(&undo, &target).await {
                Ok(()) => undone += 1,
                Err(e) => {
                    left.push(format!("{undo} was not undone: {}", e.message()));
                    kept.push(Entry::Undo(undo));
                }
            },
            Entry::Loop(made) if this_boot => {
                match injected_recovery_failure().and_then(|()| loopdev::recover(&made)) {
                    Ok(()) => undone += 1,
                    Err(e) => {
                        left.push(format!("{made} was not undone: {}", e.message()));
                        kept.push(Entry::Loop(made));
                    }
                }
            }
            Entry::Loop(_) => {}
            Entry::Leftover(text) if this_boot => {
                left.push(format!("{text} cannot be undone by pipework"));
                kept.push(Entry::Leftover(text));
            }
            Entry::Leftover(_) => {}
            // An address handed out outlives a reboot in host-local's files.
            Entry::Ipam(allocation) => {
                match injected_recovery_failure().and_then(|()| allocation.release()) {
                    Ok(()) => undone += 1,
                    Err(e) => {
                        left.push(format!("{allocation} failed: {}", e.message()));
                        kept.push(Entry::Ipam(allocation));
                    }
                }
            }
            Entry::Lapses(text) => tracing::info!("recovery: {text}: left to run out"),
            Entry::Step { .. } | Entry::Applied | Entry::Commit(_) => {}
        }
    }
    let what = &header.what;
    if left.is_empty() {
        slot.free(header)?;
        let boot = if this_boot { "" } else { " before a reboot" };
        if this_boot || undone > 0 {
            output::warning(format!(
                "rolled back an interrupted run of pid {pid}{boot} ({what}): {undone} change{} undone{under_way}",
                if undone == 1 { "" } else { "s" }
            ));
        }
        return Ok(None);
    }
    kept.reverse();
    slot.rewrite(&header.run, &kept)?;
    slot.set_state(header, State::Open)?;
    let guest = header.guest.as_ref().map(|g| g.label.clone());
    Ok(Some(Interrupted { pid, what: what.clone(), guest, interface, left }))
}

/// The slot at `path` once the command rolling it back lets go of it,
/// waited for up to `RECOVERY_WAIT` without holding the thread.
async fn lock_when_recovered(path: &std::path::Path) -> Result<Option<Slot>> {
    let deadline = tokio::time::Instant::now() + RECOVERY_WAIT;
    loop {
        if let Some(slot) = Slot::try_lock(path)? {
            return Ok(Some(slot));
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// The guest of a dead run, if it is still the namespace the run changed.
async fn guest_now(label: &str, find: &crate::records::Finder, netns: NsId) -> Result<Option<Guest>> {
    let Some(found) = guest::find(label, find).await? else { return Ok(None) };
    Ok((found.netns_id()? == netns).then_some(found))
}

/// Whether the record the run was writing holds what it made.
fn committed(store: &Store, commit: &Commit) -> Result<bool> {
    let Some(record) = store.load(&commit.key)? else { return Ok(false) };
    let Some(iface) = record.interface(&commit.interface) else { return Ok(false) };
    Ok(commit.ifindex.is_none_or(|i| i == iface.ifindex)
        && commit.address.is_none_or(|a| iface.addresses.iter().any(|n| n.ip() == a)))
}

/// Test builds pause a recovery `PIPEWORK_RECOVERY_PAUSE_MS` once it has
/// taken a run, for a test to start another command meanwhile.
async fn injected_recovery_pause() {
    #[cfg(feature = "failpoints")]
    if let Some(ms) = std::env::var("PIPEWORK_RECOVERY_PAUSE_MS").ok().and_then(|v| v.parse().ok()) {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
}

/// Test builds fail each undo on purpose with `PIPEWORK_FAIL_RECOVERY` set.
fn injected_recovery_failure() -> Result<()> {
    match cfg!(feature = "failpoints") && std::env::var_os("PIPEWORK_FAIL_RECOVERY").is_some() {
        true => Err(Error::new(Kind::Internal, "injected failure (PIPEWORK_FAIL_RECOVERY)")),
        false => Ok(()),
    }
}

/// Reverts `undo` if what it would act on is still what the run made.
async fn undo_checked(undo: &Undo, t: &Target<'_>) -> Result<()> {
    injected_recovery_failure()?;
    let ours = match undo {
        // A PID is only a number by now.
        Undo::StopAgent { agent, lease_file } => agent.running(lease_file),
        // A port since moved to another bridge, or taken out, is someone else's.
        Undo::NoMaster { name, bridge, .. } => match (t.host.link(name).await?, t.host.link(bridge).await?) {
            (Some(port), Some(bridge)) => port.master == Some(bridge.index),
            _ => false,
        },
        _ => true,
    };
    if !ours {
        return Ok(());
    }
    match revert(undo, t).await {
        // An address or route put back since (by hand, or a later run):
        // what the undo wanted, and not this run's to replace.
        Err(e) if e.kernel_reply().is_some_and(|r| r.errno == Some(libc::EEXIST)) => Ok(()),
        done => done,
    }
}
