//! The intent log: what a run is changing, written ahead of each change,
//! so that a run killed half-way (SIGKILL, the OOM killer, a stop past its
//! timeout) leaves something a later run rolls back, or reports.
//!
//! A run takes a slot, `intents/<n>` in the records directory, under an
//! exclusive `flock` held for its life: the kernel drops the lock the
//! moment the process dies, so a slot whose lock can be taken and whose
//! header says `open` is a dead run's, whatever has its PID by then (the
//! PID and start time name the run in reports). The header (the run, what
//! it does, the host and the guest) fills the first block, written in place
//! before the first change; each step then appends its command before it
//! runs and its undo after. None of it is synced but before a change that
//! outlives a reboot (an Open vSwitch port, in OVSDB's file), once: the
//! page cache outlives a killed process, and a crash of the machine takes
//! the kernel's links, addresses and rules with it, so a sync there would
//! protect nothing (a recovery after a reboot undoes only what outlived
//! it). A run that ends, either way, frees its slot.
//!
//! `recover` finds the dead runs' intents and undoes them: the one module
//! that imports upward (apply's revert, cni's IPAM release, loopdev's
//! nodes), since it undoes every kind of change.

mod log;
pub mod recover;

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::plan::Undo;
use crate::records::GuestRecord;
pub use log::Intent;
pub use recover::{recover, Interrupted, Recovery, Scope};

/// Each change a dead run left, as a warning: for a command that goes on.
pub fn report(recovery: &Recovery) {
    for run in &recovery.left {
        for what in &run.left {
            crate::sys::output::warning(format!("{}: {what}", run.describe()));
        }
    }
}

/// What a run is, for its intent's header.
#[derive(Debug, Clone)]
pub struct About {
    /// The command, as an operator would recognise it.
    pub what: String,
    /// The guest it changes; None for a run on the host alone (mkbridge).
    pub guest: Option<GuestRecord>,
    /// How to tell that the run's record was written (see `Commit`).
    pub commit: Option<Commit>,
}

impl About {
    /// A run of this process's own command line.
    pub fn command_line(guest: Option<GuestRecord>) -> About {
        let words: Vec<String> =
            std::iter::once("pipework".to_string()).chain(std::env::args().skip(1)).collect();
        About { what: words.join(" "), guest, commit: None }
    }
}

/// A run's record, as the recovery of a run killed while writing it finds
/// it: the record of `key` has `interface` (with the ifindex this run made
/// it with, and `address` when the run added one): then the run is
/// whole, and its changes stay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    pub key: String,
    pub interface: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ifindex: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
}

/// One line of an intent's log.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entry {
    /// A step about to be applied (its command, for reports).
    Step { n: usize, command: String },
    /// An applied step's undo.
    Undo(Undo),
    /// An applied step that left nothing to undo.
    Applied,
    /// An applied step whose undo cannot be kept: reported, never undone.
    Leftover(String),
    /// An applied step that undoes itself in time (a lease not given back
    /// runs out at its server): logged, not reported.
    Lapses(String),
    /// The record is being written: see `Commit`.
    Commit(Commit),
    /// An IPAM plugin's ADD about to start: its DEL gives back what it hands out.
    Ipam(crate::cni::allocation::Allocation),
    /// A change `loop ensure` made (`loopdev::recover` undoes it).
    Loop(crate::loopdev::Made),
}
