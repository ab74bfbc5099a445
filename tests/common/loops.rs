//! Loop device nodes and the kernel's loop devices.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use super::commands::run;

/// bits, owner, group, and major:minor for a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeInfo {
    pub is_block: bool,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub major: u32,
    pub minor: u32,
}

/// The node at `path`, if there is one.
pub fn node_info(path: &Path) -> Option<NodeInfo> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let m = std::fs::symlink_metadata(path).ok()?;
    Some(NodeInfo {
        is_block: m.file_type().is_block_device(),
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        major: libc::major(m.rdev()),
        minor: libc::minor(m.rdev()),
    })
}

/// The `loopN` entries of a directory (loop-control left out) by name.
pub fn loop_nodes(dir: &Path) -> BTreeMap<String, NodeInfo> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| loop_index(n).is_some())
        .filter_map(|n| node_info(&dir.join(&n)).map(|info| (n, info)))
        .collect()
}

/// One entry of a directory as `ls -lni` shows it: inode, type and mode,
/// owner, group, and the device of a node.
#[cfg(feature = "failpoints")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listed {
    pub ino: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
}

/// Every entry of `dir` by name, symbolic links not followed.
#[cfg(feature = "failpoints")]
pub fn listing(dir: &Path) -> BTreeMap<String, Listed> {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let m = std::fs::symlink_metadata(e.path()).ok()?;
            let listed = Listed { ino: m.ino(), mode: m.mode(), uid: m.uid(), gid: m.gid(), rdev: m.rdev() };
            Some((e.file_name().to_string_lossy().into_owned(), listed))
        })
        .collect()
}

/// N of `loopN`.
pub fn loop_index(name: &str) -> Option<u32> {
    name.strip_prefix("loop")?.parse().ok()
}

/// The gid of group disk, as the machine's group database has it.
pub fn disk_gid() -> u32 {
    let line = run(&["getent", "group", "disk"]);
    line.trim().split(':').nth(2).and_then(|g| g.parse().ok()).unwrap_or_else(|| panic!("{line}"))
}

/// The loop devices the kernel has (/sys/block/loopN).
pub fn kernel_loops() -> BTreeSet<u32> {
    std::fs::read_dir("/sys/block")
        .expect("/sys/block")
        .filter_map(|e| e.ok())
        .filter_map(|e| loop_index(&e.file_name().to_string_lossy()))
        .collect()
}

/// Notes the kernel's loop devices; on drop, removes those added since
/// (LOOP_CTL_REMOVE), so a test leaves the machine's devices, and with
/// devtmpfs the nodes the kernel made in its /dev, as they were. The kernel
/// refuses (EBUSY) to remove a device in use, which is then left alone.
///
/// The devices are the whole machine's, and every area's tests share one
/// process: a test that may add or remove one holds this, so that no other
/// such test runs meanwhile (nor removes a device this one added).
pub struct KernelLoops {
    before: BTreeSet<u32>,
    _alone: MutexGuard<'static, ()>,
}

impl KernelLoops {
    /// Waits until no other test holds the kernel's loop devices, then
    /// notes them.
    pub fn alone() -> KernelLoops {
        static LOCK: Mutex<()> = Mutex::new(());
        let alone = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        KernelLoops { before: kernel_loops(), _alone: alone }
    }

    /// Devices added since the note.
    pub fn added(&self) -> BTreeSet<u32> {
        kernel_loops().difference(&self.before).copied().collect()
    }

    /// Removes the devices added since the note (LOOP_CTL_REMOVE).
    pub fn remove_added(&self) {
        use std::os::fd::AsRawFd;
        const LOOP_CTL_REMOVE: libc::c_ulong = 0x4C81;
        let Ok(ctl) = std::fs::File::options().read(true).write(true).open("/dev/loop-control") else {
            return;
        };
        for i in self.added() {
            // SAFETY: LOOP_CTL_REMOVE takes the index by value; the fd is open.
            let _ = unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_REMOVE as _, i as libc::c_ulong) };
        }
    }
}

impl Drop for KernelLoops {
    fn drop(&mut self) {
        self.remove_added();
    }
}
