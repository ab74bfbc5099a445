//! `loop ensure`'s changes, made in order and undone newest first on the
//! first failure: its nodes removed, its kernel devices too.

use super::node::{node_path, nodes_to_make, report, wanted, LOOP_MAJOR, NODE_MODE};
use crate::apply::failpoints::{injected_failure, injected_pause};
use crate::error::Result;
use crate::sys::devdir::{DevDir, Made};
use crate::sys::loop_control::LoopControl;
use crate::sys::output;

/// Makes sure `dir` holds loop0..loop(count-1), adding kernel devices as
/// needed; returns the report, one line per thing done. The first failure
/// undoes what this run did.
pub fn ensure(dir: &DevDir, count: u32, ctl: &LoopControl, gid: u32) -> Result<Vec<String>> {
    let found = (0..count).map(|i| dir.inspect(&wanted(i).name)).collect::<Result<Vec<_>>>()?;
    let todo = nodes_to_make(&dir.path, &found)?;
    let changes: Vec<Change> = (0..count)
        .map(Change::Add)
        .chain(todo.iter().flat_map(|&i| [Change::Mknod(i), Change::Group(i)]))
        .collect();
    let mut done = Done::default();
    for (n, change) in (1..).zip(&changes) {
        tracing::info!("step {n}/{}: {}", changes.len(), change.command(dir, gid));
        injected_pause(n);
        let result = match injected_failure(n) {
            Some(e) => Err(e),
            None => done.make(change, dir, ctl, gid),
        };
        if let Err(e) = result {
            done.undo(dir, ctl);
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
    made: Vec<Made>,
}

impl Done {
    fn make(&mut self, change: &Change, dir: &DevDir, ctl: &LoopControl, gid: u32) -> Result<()> {
        match *change {
            Change::Add(i) => {
                if ctl.add(i)? {
                    self.added.push(i);
                }
            }
            Change::Mknod(i) => self.made.extend(dir.mknod(&wanted(i))?),
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
