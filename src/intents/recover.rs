//! Dead runs' intents, rolled back: their undo newest first, each checked
//! against what is there now (by ifindex, by the agent's start time, by
//! the bridge a port is still on), so nothing made since is touched. What
//! cannot be undone stays in the intent and is reported (`Interrupted`),
//! and tried again by the next recovery.

use std::os::fd::AsFd;

use super::log::{boot_id, slots, Header, Slot, State};
use super::{Commit, Entry};
use crate::apply::{revert_one, Target};
use crate::error::{Error, Kind, Result};
use crate::plan::{Side, Undo};
use crate::records::{NsId, Store};
use crate::resolve::guest::{self, Guest};
use crate::sys::netlink::Netlink;
use crate::sys::output;

/// Which dead runs a command recovers.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// Every one made from this host namespace (`check`, `show`, watch).
    All,
    /// Those of the guest whose record key this is (a run on that guest).
    Guest(&'a str),
    /// Those on the host alone (mkbridge).
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

/// Rolls back every dead run in `scope` made from this namespace; a line
/// on stderr for each. Returns those that are left.
pub async fn recover(store: &Store, host: &Netlink, scope: Scope<'_>) -> Result<Vec<Interrupted>> {
    let mut left = Vec::new();
    let paths = slots(store)?;
    if paths.is_empty() {
        return Ok(left);
    }
    let (boot, here) = (boot_id(), NsId::of_path("/proc/thread-self/ns/net")?);
    for path in paths {
        let Some(slot) = Slot::try_lock(&path)? else { continue };
        let Some(header) = slot.header().filter(|h| h.state == State::Open) else { continue };
        if header.boot != boot {
            tracing::info!("dropping {}, an intent of an earlier boot", path.display());
            slot.free(&header)?;
            continue;
        }
        let key = header.guest.as_ref().map(|g| g.find.key());
        let wanted = match scope {
            Scope::All => true,
            Scope::Guest(k) => key.as_deref() == Some(k),
            Scope::Host => key.is_none(),
        };
        if header.host != here || !wanted {
            continue;
        }
        // One run that cannot be recovered does not keep the others.
        match roll_back(store, host, &slot, &header).await {
            Ok(Some(run)) => left.push(run),
            Ok(None) => {}
            Err(e) => left.push(Interrupted {
                pid: header.run.pid,
                what: header.what.clone(),
                guest: header.guest.as_ref().map(|g| g.label.clone()),
                interface: None,
                left: vec![format!("not rolled back: {}", e.message())],
            }),
        }
    }
    Ok(left)
}

/// One dead run's intent: freed when it is wholly undone (or its record
/// says it was whole), else rewritten with what is left.
async fn roll_back(
    store: &Store,
    host: &Netlink,
    slot: &Slot,
    header: &Header,
) -> Result<Option<Interrupted>> {
    let entries = slot.entries(&header.run);
    let pid = header.run.pid;
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
    let guest = match &header.guest {
        Some(g) => guest_now(&g.label, &g.find, g.netns).await?,
        None => None,
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
        Some(Entry::Step { n, command }) => {
            format!("; step {n} ({command}) was under way and may have taken effect")
        }
        _ => String::new(),
    };
    let (mut kept, mut left, mut undone) = (Vec::new(), Vec::new(), 0);
    for entry in entries.into_iter().rev() {
        match entry {
            Entry::Undo(undo) if in_guest(&undo) && inside.is_none() => {
                tracing::info!("recovery: {undo}: gone with the guest's namespace");
            }
            Entry::Undo(undo) => match undo_checked(&undo, &target).await {
                Ok(()) => undone += 1,
                Err(e) => {
                    left.push(format!("{undo} was not undone: {}", e.message()));
                    kept.push(Entry::Undo(undo));
                }
            },
            Entry::Leftover(text) => {
                left.push(format!("{text} cannot be undone by pipework"));
                kept.push(Entry::Leftover(text));
            }
            Entry::Lapses(text) => tracing::info!("recovery: {text}: left to run out"),
            Entry::Step { .. } | Entry::Applied | Entry::Commit(_) => {}
        }
    }
    let what = &header.what;
    if left.is_empty() {
        slot.free(header)?;
        output::warning(format!(
            "rolled back an interrupted run of pid {pid} ({what}): {undone} change{} undone{under_way}",
            if undone == 1 { "" } else { "s" }
        ));
        return Ok(None);
    }
    kept.reverse();
    slot.rewrite(&header.run, &kept)?;
    let guest = header.guest.as_ref().map(|g| g.label.clone());
    Ok(Some(Interrupted { pid, what: what.clone(), guest, interface, left }))
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

/// Whether an undo acts in the guest's namespace.
fn in_guest(undo: &Undo) -> bool {
    match undo {
        Undo::DeleteLink { side, .. }
        | Undo::DeleteAddress { side, .. }
        | Undo::LinkDown { side, .. }
        | Undo::Ipv6 { side, .. }
        | Undo::SetMac { side, .. }
        | Undo::ReplaceRoute { side, .. }
        | Undo::SetMtu { side, .. } => *side == Side::Guest,
        Undo::RestoreRoute { .. }
        | Undo::DeleteRoute { .. }
        | Undo::MoveBack { .. }
        | Undo::MoveIn { .. }
        | Undo::AddRule { .. }
        | Undo::RestoreResolvConf { .. } => true,
        Undo::DeleteBridgeIfUnused { .. }
        | Undo::DeleteHostRoute { .. }
        | Undo::NoMaster { .. }
        | Undo::AddAddress { .. }
        | Undo::Release { .. }
        | Undo::StopAgent { .. }
        | Undo::OvsDelPort { .. }
        | Undo::NoVlanFiltering { .. }
        | Undo::OvsDelBridgeIfUnused { .. }
        | Undo::DropRules { .. }
        | Undo::ForwardRemove { .. }
        | Undo::ForwardAccept { .. } => false,
    }
}

/// Reverts `undo` if what it would act on is still what the run made.
async fn undo_checked(undo: &Undo, t: &Target<'_>) -> Result<()> {
    if cfg!(feature = "failpoints") && std::env::var_os("PIPEWORK_FAIL_RECOVERY").is_some() {
        return Err(Error::new(Kind::Internal, "injected failure (PIPEWORK_FAIL_RECOVERY)"));
    }
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
    match revert_one(undo, t).await {
        // An address or route put back since (by hand, or a later run):
        // what the undo wanted, and not this run's to replace.
        Err(e) if e.kernel_reply().is_some_and(|r| r.errno == Some(libc::EEXIST)) => Ok(()),
        done => done,
    }
}
