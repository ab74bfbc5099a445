//! `loop ensure`'s changes, made in order and undone newest first on the
//! first failure: its nodes removed, its kernel devices too. Each is noted
//! in the run's intent (`Log`) as it is made, for a later process to undo
//! should the run be killed half-way (`recover`).

use std::path::Path;

use super::node::{node_path, nodes_to_make, report, wanted, LOOP_MAJOR, NODE_MODE};
use super::recover::{Made, Mounts};
use crate::apply::failpoints::{injected_failure, injected_pause};
use crate::error::Result;
use crate::intents::{About, Entry, Intent};
use crate::records::Store;
use crate::sys::devdir::{self, DevDir};
use crate::sys::loop_control::LoopControl;
use crate::sys::output;

/// A run's intent, taken in the host's mount namespace (where the records
/// are) before the run enters a container's, and ended on every way out
/// of the run but a kill or a panic: the run is then whole or rolled back.
pub struct Log {
    intent: Option<Intent>,
    /// The container's mount namespace the nodes are made in, if any.
    mounts: Option<Mounts>,
}

impl Log {
    /// Writes the intent's header (the command line).
    pub fn begin(store: &Store, mounts: Option<Mounts>) -> Result<Log> {
        Ok(Log { intent: Some(Intent::begin(store, About::command_line(None))?), mounts })
    }

    fn step(&mut self, n: usize, command: &str) -> Result<()> {
        self.intent.as_mut().map_or(Ok(()), |i| i.step(n, command, false))
    }

    /// `made` was made. A change the log cannot hold (a directory whose
    /// path is not UTF-8) is noted for the report, never undone.
    fn note(&mut self, made: Made) -> Result<()> {
        let Some(intent) = self.intent.as_mut() else { return Ok(()) };
        let text = made.to_string();
        intent.note(&Entry::Loop(made)).or_else(|_| intent.note(&Entry::Leftover(text)))
    }
}

impl Drop for Log {
    /// A run that panicked undid nothing: its intent is left open (and its
    /// lock freed), for the next recovery.
    fn drop(&mut self) {
        match self.intent.take() {
            Some(intent) if !std::thread::panicking() => intent.end(),
            _ => {}
        }
    }
}

/// Makes sure `dev` holds loop0..loop(count-1), adding kernel devices as
/// needed; returns the report, one line per thing done. The first failure
/// undoes what this run did. `log` ends with the run.
pub fn ensure(dev: &Path, count: u32, ctl: &LoopControl, gid: u32, mut log: Log) -> Result<Vec<String>> {
    let dir = DevDir::open(dev)?;
    let found = (0..count).map(|i| dir.inspect(&wanted(i).name)).collect::<Result<Vec<_>>>()?;
    let todo = nodes_to_make(&dir.path, &found)?;
    let changes: Vec<Change> = (0..count)
        .map(Change::Add)
        .chain(todo.iter().flat_map(|&i| [Change::Mknod(i), Change::Group(i)]))
        .collect();
    let mut done = Done::default();
    for (n, change) in (1..).zip(&changes) {
        let command = change.command(&dir, gid);
        tracing::info!("step {n}/{}: {command}", changes.len());
        injected_pause(n);
        let result = log.step(n, &command).and_then(|()| match injected_failure(n) {
            Some(e) => Err(e),
            None => done.make(change, &dir, ctl, gid, &mut log),
        });
        if let Err(e) = result {
            done.undo(&dir, ctl);
            return Err(e);
        }
    }
    let made: Vec<u32> = done.made.iter().map(|m| m.wanted.minor).collect();
    Ok(report(&dir.path, count, &done.added, &made))
}

/// One change of `loop ensure`, in the order they are made.
#[derive(Debug, Clone, Copy)]
enum Change {
    /// Adds kernel device loop<i> if the kernel lacks it.
    Add(u32),
    /// Makes node loop<i>, mode 0660.
    Mknod(u32),
    /// Gives the node just made group disk.
    Group(u32),
}

impl Change {
    /// For the log: what a shell would do.
    fn command(self, dir: &DevDir, gid: u32) -> String {
        match self {
            Change::Add(i) => format!("add kernel device loop{i} unless present (LOOP_CTL_ADD)"),
            Change::Mknod(i) => {
                format!("mknod -m0{NODE_MODE:o} {} b {LOOP_MAJOR} {i}", node_path(&dir.path, i).display())
            }
            Change::Group(i) => format!("chgrp {gid} {}", node_path(&dir.path, i).display()),
        }
    }
}

/// What a run of `loop ensure` changed so far.
#[derive(Default)]
struct Done {
    added: Vec<u32>,
    made: Vec<devdir::Made>,
}

impl Done {
    /// Makes `change`, noted in `log` once made.
    fn make(
        &mut self,
        change: &Change,
        dir: &DevDir,
        ctl: &LoopControl,
        gid: u32,
        log: &mut Log,
    ) -> Result<()> {
        match *change {
            Change::Add(i) => {
                if ctl.add(i)? {
                    self.added.push(i);
                    log.note(Made::Device { minor: i })?;
                }
            }
            Change::Mknod(i) => {
                if let Some(made) = dir.mknod(&wanted(i))? {
                    let (name, inode) = (made.wanted.name.clone(), made.id());
                    self.made.push(made);
                    log.note(Made::Node { dir: dir.path.clone(), name, inode, mounts: log.mounts })?;
                }
            }
            // A node that appeared meanwhile is not this run's to change.
            Change::Group(i) => {
                if let Some(made) = self.made.iter().find(|m| m.wanted.minor == i) {
                    dir.finish(made, gid)?;
                }
            }
        }
        Ok(())
    }

    /// Newest first: the nodes this run made (if still its own), then the
    /// kernel devices it added.
    fn undo(self, dir: &DevDir, ctl: &LoopControl) {
        for made in self.made.iter().rev() {
            tracing::info!("rollback: rm {}", dir.path_of(&made.wanted.name).display());
            dir.remove(made);
        }
        for &i in self.added.iter().rev() {
            tracing::info!("rollback: remove kernel device loop{i} (LOOP_CTL_REMOVE)");
            if let Err(e) = ctl.remove(i) {
                output::warn(e.context(format!("rollback of adding loop{i} failed")));
            }
        }
    }
}
