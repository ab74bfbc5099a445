//! The loop devices xCAT's copycds needs. It hangs when every loop device
//! is busy, and a container's /dev never gets the nodes of devices added
//! later (xcat-in-docker.rst, "Known Issues"), so the runbook had
//! `mknod /dev/loopN -m0660 b 7 N` by hand.
//!
//! `free` is `losetup -f` that also makes a missing node; `ensure` makes
//! sure loop0..loop(N-1) exist, in a directory or in a running container's
//! /dev (`container`). Every path is checked before anything changes
//! (`node`); nodes are made through `sys::devdir`, relative to the
//! directory held open.
//!
//! `ensure` undoes its changes itself rather than through `apply`'s
//! transaction: that one applies `plan::Step`s over netlink and OVSDB to a
//! `Target` of two network namespaces, from the runtime's thread, while
//! these act on a directory descriptor from a thread that joined the
//! container's mount namespace for the whole run (setns(CLONE_NEWNS) holds
//! for one thread; async work cannot follow it), and undoing a node needs
//! the inode this run made, held open: state of the run, which `Undo`'s
//! data cannot carry. It shares the transaction's numbered failpoints
//! (`PIPEWORK_FAIL_AT`, `PIPEWORK_KILL_AT`) and its held signals.
//!
//! It also keeps an intent (`intents`), as a transaction does: each
//! change noted as made (`Made`: a kernel device's minor; a node's
//! directory, name and inode, and the container's mount namespace by its
//! process), for `intents::recover` to undo through `recover` should the
//! run be killed half-way; a later `loop ensure` recovers first.

mod container;
mod ensure;
mod node;
mod recover;

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::sys::devdir::DevDir;
use crate::sys::loop_control::LoopControl;
pub use container::MountNs;
pub use ensure::{ensure, Log};
use node::{needs_node, wanted, LOOP_MAJOR};
pub use recover::{recover, Made, Mounts};

/// The gid of `disk` on Debian, Ubuntu, Fedora, RHEL, Alpine and Arch, for a
/// host whose group database lacks the group.
const DISK_GID_FALLBACK: u32 = 6;

/// The first free loop device under `dir`, its node made if missing.
pub fn free(dir: &Path) -> Result<PathBuf> {
    // Before the ioctl, which may add a kernel device.
    let dir = DevDir::open(dir)?;
    let i = LoopControl::open()?.get_free()?;
    let node = wanted(i);
    let path = dir.path_of(&node.name);
    if needs_node(&path, i, &dir.inspect(&node.name)?)? && dir.make_node(&node, disk_gid())?.is_some() {
        tracing::info!("created {} (block {LOOP_MAJOR}:{i})", path.display());
    }
    Ok(path)
}

/// The gid of group `disk`, which owns block devices: read from /etc/group
/// itself, not through NSS, which a static glibc build would dlopen from the
/// host's (possibly other) glibc; `disk` is always a local group.
pub fn disk_gid() -> u32 {
    let group = fs::read_to_string("/etc/group").unwrap_or_default();
    gid_in(&group, "disk").unwrap_or(DISK_GID_FALLBACK)
}

/// The gid of `name` in group(5) text: `name:password:gid:members`.
fn gid_in(group: &str, name: &str) -> Option<u32> {
    group.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next() == Some(name)).then(|| fields.nth(1)?.parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_disk_gid_is_read_from_group_text() {
        let group = "root:x:0:\ndiskette:x:99:\ndisk:x:6:alice\nbroken\n";
        assert_eq!(gid_in(group, "disk"), Some(6));
        assert_eq!(gid_in(group, "broken"), None);
        assert_eq!(gid_in("disk:x:notanumber:\n", "disk"), None);
    }
}
