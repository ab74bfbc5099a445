//! What a `loop ensure` made, as its intent keeps it, and its undo by a
//! later process when the run was killed half-way (`intents::recover`).
//!
//! Each is checked against what is there now, so nothing made since is
//! touched: a node is removed only while its name still holds the inode
//! the run made, by number and file handle (the directory opened without
//! symbolic links, as the run did, from this process's mount namespace; in
//! a container's only while that is still the namespace of the same
//! process, else the container, and its /dev, is gone). A kernel device is
//! removed only while it is unbound: one bound since is someone's
//! (`losetup` took it), left alone as a port moved elsewhere is, and
//! counted with the changes undone. The kernel keeps no generation of a
//! device: one removed and added again since, still unbound, is removed
//! as the run's.

use std::fmt;
use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{failed, Kind, Result};
use crate::records::NsId;
use crate::sys::devdir::{DevDir, InodeId};
use crate::sys::loop_control::LoopControl;
use crate::sys::process::{started_at, Process};

/// One change a `loop ensure` made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Made {
    /// Kernel loop device `minor`, added (LOOP_CTL_ADD).
    Device { minor: u32 },
    /// Node `name` in `dir`, the inode made; in `mounts`, a container's
    /// mount namespace, when the run entered one.
    Node {
        dir: PathBuf,
        name: String,
        inode: InodeId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mounts: Option<Mounts>,
    },
}

/// A container's mount namespace, as a later process finds it again: the
/// process it was entered through (PID and start time, so a PID reused is
/// not taken for it) and the namespace's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mounts {
    pub pid: u64,
    pub started: u64,
    pub ns: NsId,
}

impl Mounts {
    /// The namespace, if that process is still alive in it.
    fn reopen(&self) -> Result<Option<File>> {
        let path = PathBuf::from(format!("/proc/{}/ns/mnt", self.pid));
        let gone = |e: &std::io::Error| e.raw_os_error() == Some(libc::ESRCH);
        let process = match Process::open(self.pid) {
            Ok(process) => process,
            Err(e) if gone(&e) => return Ok(None),
            Err(e) => return Err(failed("opening", &path, e)),
        };
        // Read after the pidfd is open: if the PID is still the one that
        // started then, the pidfd is that process.
        if started_at(self.pid) != Some(self.started) {
            return Ok(None);
        }
        let file = match process.namespace("mnt") {
            Ok(file) => file,
            Err(e) if gone(&e) => return Ok(None),
            Err(e) => return Err(failed("opening", &path, e)),
        };
        let id = NsId::of_file(&file).map_err(|e| failed("reading", &path, e))?;
        Ok((id == self.ns).then_some(file))
    }
}

impl fmt::Display for Made {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Made::Device { minor } => write!(f, "remove kernel device loop{minor} (LOOP_CTL_REMOVE)"),
            Made::Node { dir, name, mounts: None, .. } => write!(f, "rm {}", dir.join(name).display()),
            Made::Node { dir, name, mounts: Some(m), .. } => {
                write!(f, "rm {} in the mount namespace of pid {}", dir.join(name).display(), m.pid)
            }
        }
    }
}

/// Undoes `made` if it is still what the dead run made; Ok when it is
/// undone or no longer the run's.
pub fn recover(made: &Made) -> Result<()> {
    match made {
        Made::Device { minor } => {
            if !LoopControl::open()?.remove_unbound(*minor)? {
                tracing::info!("recovery: loop{minor} is bound since: left to its user");
            }
            Ok(())
        }
        Made::Node { dir, name, inode, mounts: None } => remove_node(dir, name, inode),
        Made::Node { dir, name, inode, mounts: Some(mounts) } => match mounts.reopen()? {
            Some(ns) => crate::sys::netns::within_mounts(ns.as_fd(), || remove_node(dir, name, inode))
                .map_err(|e| e.context(format!("in the mount namespace of pid {}", mounts.pid))),
            None => {
                tracing::info!("recovery: {made}: gone with the container");
                Ok(())
            }
        },
    }
}

/// Removes `name` from `dir` if it is still the inode made.
fn remove_node(dir: &Path, name: &str, inode: &InodeId) -> Result<()> {
    let dir = match DevDir::open(dir) {
        Ok(dir) => dir,
        Err(e) if e.kind() == Kind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !dir.remove_inode(name, inode)? {
        tracing::info!("recovery: {} is not the node made: left alone", dir.path_of(name).display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_reads_back_as_written_and_says_its_undo() {
        let mounts = Mounts { pid: 42, started: 7, ns: NsId { ino: 1, dev: 2 } };
        let inode = InodeId { dev: 5, ino: 6, handle: Some("1:0a0b".into()) };
        for (made, text) in [
            (Made::Device { minor: 9 }, "remove kernel device loop9 (LOOP_CTL_REMOVE)"),
            (
                Made::Node { dir: "/d".into(), name: "loop3".into(), inode: inode.clone(), mounts: None },
                "rm /d/loop3",
            ),
            (
                Made::Node {
                    dir: "/dev".into(),
                    name: "loop1".into(),
                    inode: inode.clone(),
                    mounts: Some(mounts),
                },
                "rm /dev/loop1 in the mount namespace of pid 42",
            ),
        ] {
            let json = serde_json::to_string(&made).unwrap();
            assert_eq!(serde_json::from_str::<Made>(&json).unwrap(), made);
            assert_eq!(made.to_string(), text);
        }
    }

    #[test]
    fn a_process_gone_or_started_again_is_no_namespace() {
        let me = std::process::id().into();
        let ns = NsId::of_path("/proc/self/ns/mnt").unwrap();
        let started = started_at(me).unwrap();
        assert!(Mounts { pid: me, started, ns }.reopen().unwrap().is_some());
        assert!(Mounts { pid: me, started: started + 1, ns }.reopen().unwrap().is_none());
        let other = NsId { ino: ns.ino + 1, ..ns };
        assert!(Mounts { pid: me, started, ns: other }.reopen().unwrap().is_none());
        assert!(Mounts { pid: u64::from(u32::MAX), started, ns }.reopen().unwrap().is_none());
    }
}
