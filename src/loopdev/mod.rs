//! `pipework loop`: the loop devices xCAT's copycds needs. It hangs when
//! every loop device is busy, and a container's /dev never gets the nodes of
//! devices added later (xcat-in-docker.rst, "Known Issues"), so the runbook
//! had `mknod /dev/loopN -m0660 b 7 N` by hand.
//!
//! `loop free` is `losetup -f` that also makes a missing node; `loop ensure`
//! makes sure loop0..loop(N-1) exist, in a directory or in a running
//! container's /dev. Every path is checked before anything changes.

use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, AtFlags, OFlag, OpenHow, ResolveFlag, AT_FDCWD};
use nix::sys::stat::{fstat, fstatat, mknodat, umask, FileStat, Mode, SFlag};
use nix::unistd::{fchownat, unlinkat, Gid, UnlinkatFlags};

use crate::apply::failpoints::{injected_failure, injected_pause};
use crate::apply::signals::HeldSignals;
use crate::error::{failed, Error, Kind, Result};
use crate::request::{GuestRef, LoopRequest};
use crate::sys::loop_control::LoopControl;
use crate::sys::{netns, output};

/// The block major of loop devices (LOOP_MAJOR in <linux/major.h>).
const LOOP_MAJOR: u32 = 7;
/// What udev gives block devices, and the runbook's `mknod -m0660`.
const NODE_MODE: u32 = 0o660;
/// The gid of `disk` on Debian, Ubuntu, Fedora, RHEL, Alpine and Arch, for a
/// host whose group database lacks the group.
const DISK_GID_FALLBACK: u32 = 6;

/// The changes are made or undone whole: an interrupt waits the few
/// milliseconds (held on this thread, and on the one that enters the
/// container, which inherits the mask), though not the printing.
pub async fn run(req: &LoopRequest) -> Result<()> {
    let lines = match req {
        LoopRequest::Free { dev } => {
            let _held = HeldSignals::hold();
            vec![free(dev)?.display().to_string()]
        }
        LoopRequest::Ensure { count, dev, container: None } => {
            let _held = HeldSignals::hold();
            ensure(&DevDir::open(dev)?, *count, &LoopControl::open()?, disk_gid())?
        }
        LoopRequest::Ensure { count, container: Some(label), .. } => {
            let mnt = mount_ns_of(label).await?;
            // Both before entering: the container has neither the host's
            // /dev/loop-control nor (safely) its group database.
            let (ctl, gid) = (LoopControl::open()?, disk_gid());
            let _held = HeldSignals::hold();
            netns::within_mounts(mnt.file.as_fd(), || {
                ensure(&DevDir::open(Path::new("/dev"))?, *count, &ctl, gid)
            })
            .map_err(|e| e.context(format!("in {}", mnt.path.display())))?
        }
    };
    output::lines(lines)
}

/// The first free loop device under `dir`, its node made if missing.
fn free(dir: &Path) -> Result<PathBuf> {
    // Before the ioctl, which may add a kernel device.
    let dir = DevDir::open(dir)?;
    let i = LoopControl::open()?.get_free()?;
    let path = dir.node_path(i);
    if needs_node(&path, i, &dir.inspect(i)?)? && dir.make_node(i, disk_gid())?.is_some() {
        tracing::info!("created {} (block {LOOP_MAJOR}:{i})", path.display());
    }
    Ok(path)
}

/// Makes sure `dir` holds loop0..loop(count-1), adding kernel devices as
/// needed; returns the report, one line per thing done. The first failure
/// undoes what this run did: its nodes removed, its kernel devices too.
fn ensure(dir: &DevDir, count: u32, ctl: &LoopControl, gid: u32) -> Result<Vec<String>> {
    let found = (0..count).map(|i| dir.inspect(i)).collect::<Result<Vec<_>>>()?;
    let todo = nodes_to_make(&dir.path, &found)?;
    let changes: Vec<Change> = (0..count)
        .map(Change::Add)
        .chain(todo.iter().flat_map(|&i| [Change::Mknod(i), Change::Group(i)]))
        .collect();
    let mut done = Done::default();
    for (n, change) in (1..).zip(&changes) {
        tracing::info!("step {n}/{}: {}", changes.len(), change.command(&dir.path, gid));
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
    let made: Vec<u32> = done.made.iter().map(|m| m.i).collect();
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
    fn command(self, dir: &Path, gid: u32) -> String {
        match self {
            Change::Add(i) => format!("add kernel device loop{i} unless present (LOOP_CTL_ADD)"),
            Change::Mknod(i) => {
                format!("mknod -m0{NODE_MODE:o} {} b {LOOP_MAJOR} {i}", node_path(dir, i).display())
            }
            Change::Group(i) => format!("chgrp {gid} {}", node_path(dir, i).display()),
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
            Change::Mknod(i) => self.made.extend(dir.mknod(i)?),
            // A node that appeared meanwhile is not this run's to change.
            Change::Group(i) => {
                if let Some(made) = self.made.iter().find(|m| m.i == i) {
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
            tracing::info!("rollback: rm {}", dir.node_path(made.i).display());
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

// ---------------------------------------------------------------- what to do

/// What is at the path of a loop node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Missing,
    /// A block device node, major:minor.
    Block(u32, u32),
    /// Anything else, described: "a regular file".
    Other(&'static str),
}

/// Which of loop0..loop(N-1) must be made, given what is at each path; the
/// first thing in the way is an error naming it.
fn nodes_to_make(dir: &Path, found: &[Node]) -> Result<Vec<u32>> {
    let mut todo = Vec::new();
    for (i, node) in (0..).zip(found) {
        if needs_node(&node_path(dir, i), i, node)? {
            todo.push(i);
        }
    }
    Ok(todo)
}

/// Whether loop device `i` still needs its node at `path`. An existing node
/// 7:i is kept whatever its mode; anything else there is left alone and
/// refused.
fn needs_node(path: &Path, i: u32, node: &Node) -> Result<bool> {
    let what = match *node {
        Node::Missing => return Ok(true),
        Node::Block(LOOP_MAJOR, minor) if minor == i => return Ok(false),
        Node::Block(major, minor) => format!("block device {major}:{minor}"),
        Node::Other(kind) => kind.to_string(),
    };
    Err(Error::new(
        Kind::Conflict,
        format!("{} is {what}, not loop device {LOOP_MAJOR}:{i}; leaving it alone", path.display()),
    ))
}

/// One line per kernel device added and node made, or one saying that all
/// were there.
fn report(dir: &Path, count: u32, added: &[u32], made: &[u32]) -> Vec<String> {
    let mut lines: Vec<String> = added.iter().map(|i| format!("added kernel device loop{i}")).collect();
    lines.extend(
        made.iter().map(|&i| format!("created {} (block {LOOP_MAJOR}:{i})", node_path(dir, i).display())),
    );
    if lines.is_empty() {
        lines.push(match count {
            0 => "nothing to do: no loop device asked for".to_string(),
            1 => "nothing to do: loop0 exists".to_string(),
            n => format!("nothing to do: loop0 to loop{} exist", n - 1),
        });
    }
    lines
}

fn node_path(dir: &Path, i: u32) -> PathBuf {
    dir.join(format!("loop{i}"))
}

// ---------------------------------------------------------------- filesystem

/// A device directory held open. Every node is looked at, made, checked and
/// removed relative to it, never by path: whoever can write the directory
/// (or, for `--container`, the container) cannot redirect a change through a
/// symbolic link swapped in for the directory, a parent or a node.
struct DevDir {
    fd: OwnedFd,
    /// For messages and the report.
    path: PathBuf,
}

/// A node this run made: the inode, to tell it from one put in its place.
struct Made {
    i: u32,
    /// Held open (O_PATH) from right after the mknod: the group is fixed
    /// through it, not through the name.
    fd: OwnedFd,
    inode: (u64, u64),
}

impl DevDir {
    /// Opens `path`, which must be an existing directory reached without
    /// following any symbolic link. Inside a container's mount namespace the
    /// thread's root is the container's, so `/dev` resolves within it, and
    /// without symbolic links nothing can lead out of it.
    fn open(path: &Path) -> Result<DevDir> {
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS);
        match openat2(AT_FDCWD, path, how) {
            Ok(fd) => Ok(DevDir { fd, path: path.to_path_buf() }),
            Err(Errno::ELOOP) => Err(symlink_in(path)),
            Err(Errno::ENOTDIR) => {
                Err(Error::new(Kind::Usage, format!("{} is not a directory", path.display())))
            }
            Err(Errno::ENOENT) => {
                Err(Error::new(Kind::NotFound, format!("directory {} does not exist", path.display())))
            }
            Err(e) => Err(failed("opening", path, e.into())),
        }
    }

    fn node_path(&self, i: u32) -> PathBuf {
        node_path(&self.path, i)
    }

    /// What is at `loop<i>`, symbolic links not followed (mknod would not either).
    fn inspect(&self, i: u32) -> Result<Node> {
        match fstatat(&self.fd, node_name(i).as_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(node_of(&st)),
            Err(Errno::ENOENT) => Ok(Node::Missing),
            Err(e) => Err(failed("reading", &self.node_path(i), e.into())),
        }
    }

    /// `mknod -m0660 loop<i> b 7 <i>` with group `gid`; None when the right
    /// node appeared meanwhile. A node half made is removed.
    fn make_node(&self, i: u32, gid: u32) -> Result<Option<Made>> {
        let Some(made) = self.mknod(i)? else { return Ok(None) };
        if let Err(e) = self.finish(&made, gid) {
            self.remove(&made);
            return Err(e);
        }
        Ok(Some(made))
    }

    /// `mknod -m0660 loop<i> b 7 <i>`, the node then held open. None when
    /// the right node appeared meanwhile (devtmpfs as the kernel added the
    /// device, udev, another run): it is left as it is.
    fn mknod(&self, i: u32) -> Result<Option<Made>> {
        let path = self.node_path(i);
        // The mode is exact with no umask, so the node never needs a chmod
        // (which an O_PATH descriptor cannot do).
        let umask_was = umask(Mode::empty());
        let made = mknodat(
            &self.fd,
            node_name(i).as_str(),
            SFlag::S_IFBLK,
            Mode::from_bits_truncate(NODE_MODE),
            libc::makedev(LOOP_MAJOR, i),
        );
        umask(umask_was);
        match made {
            Ok(()) => {}
            Err(Errno::EEXIST) => return needs_node(&path, i, &self.inspect(i)?).map(|_| None),
            Err(e) => return Err(failed("creating", &path, e.into())),
        }
        // Should this fail, what the name leads to cannot be told from
        // another's node: it is left alone.
        self.open_made(i).map(Some)
    }

    /// The node just made at `loop<i>`, opened without following a link and
    /// checked to be block 7:i; anything else is not touched again.
    fn open_made(&self, i: u32) -> Result<Made> {
        let path = self.node_path(i);
        // A name without a slash, opened without following a link: a link
        // put there is opened itself and refused below.
        let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = openat(&self.fd, node_name(i).as_str(), flags, Mode::empty()).map_err(|e| match e {
            Errno::ENOENT => {
                Error::new(Kind::Conflict, format!("{} vanished right after it was made", path.display()))
            }
            e => failed("opening", &path, e.into()),
        })?;
        let st = fstat(&fd).map_err(|e| failed("reading", &path, e.into()))?;
        needs_node(&path, i, &node_of(&st))?;
        Ok(Made { i, fd, inode: (st.st_dev, st.st_ino) })
    }

    /// Group `gid` and mode 0660 on the node itself, through its descriptor.
    fn finish(&self, made: &Made, gid: u32) -> Result<()> {
        let path = self.node_path(made.i);
        fchownat(&made.fd, "", None, Some(Gid::from_raw(gid)), AtFlags::AT_EMPTY_PATH)
            .map_err(|e| failed("setting the group of", &path, e.into()))?;
        // A default ACL on the directory overrides the umask.
        let st = fstat(&made.fd).map_err(|e| failed("reading", &path, e.into()))?;
        if st.st_mode & 0o7777 != NODE_MODE {
            fchmod_path_fd(&made.fd, NODE_MODE).map_err(|e| failed("setting the mode of", &path, e))?;
        }
        // The name must still lead to this node, or the report would lie.
        if self.holds(made) {
            return Ok(());
        }
        needs_node(&path, made.i, &self.inspect(made.i)?)?;
        Err(Error::new(Kind::Conflict, format!("{} was replaced while it was being made", path.display())))
    }

    /// Whether `loop<i>` is still the node this run made.
    fn holds(&self, made: &Made) -> bool {
        fstatat(&self.fd, node_name(made.i).as_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
            .is_ok_and(|st| (st.st_dev, st.st_ino) == made.inode)
    }

    /// Removes a node this run made, if it is still there; what replaced it
    /// is left alone.
    fn remove(&self, made: &Made) {
        if self.holds(made) {
            let _ = unlinkat(&self.fd, node_name(made.i).as_str(), UnlinkatFlags::NoRemoveDir);
        }
    }
}

/// The refusal of a `--dev` path that is or passes through a symbolic link,
/// naming the first one.
fn symlink_in(path: &Path) -> Error {
    let link = path
        .ancestors()
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .find(|p| fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink()));
    match link {
        Some(link) if link == path => Error::new(
            Kind::Usage,
            format!("{} is a symbolic link; give the directory's real path", path.display()),
        ),
        Some(link) => Error::new(
            Kind::Usage,
            format!(
                "{}: {} is a symbolic link; give the directory's real path",
                path.display(),
                link.display()
            ),
        ),
        None => Error::new(Kind::Conflict, format!("{} changed while it was being opened", path.display())),
    }
}

/// chmod of the node an O_PATH descriptor holds: fchmod refuses such a
/// descriptor, fchmodat2 (Linux 6.6) takes it with AT_EMPTY_PATH.
fn fchmod_path_fd(fd: &OwnedFd, mode: u32) -> io::Result<()> {
    // SAFETY: fchmodat2(fd, "", mode, AT_EMPTY_PATH) reads only the empty
    // C string; the fd is open.
    let r = unsafe {
        libc::syscall(libc::SYS_fchmodat2, fd.as_raw_fd(), c"".as_ptr(), mode, libc::AT_EMPTY_PATH)
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn node_name(i: u32) -> String {
    format!("loop{i}")
}

fn node_of(st: &FileStat) -> Node {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFBLK => Node::Block(libc::major(st.st_rdev), libc::minor(st.st_rdev)),
        kind => Node::Other(describe(kind)),
    }
}

fn describe(kind: u32) -> &'static str {
    match kind {
        libc::S_IFREG => "a regular file",
        libc::S_IFDIR => "a directory",
        libc::S_IFLNK => "a symbolic link",
        libc::S_IFCHR => "a character device",
        libc::S_IFIFO => "a FIFO",
        libc::S_IFSOCK => "a socket",
        _ => "not a block device",
    }
}

/// The gid of group `disk`, which owns block devices: read from /etc/group
/// itself, not through NSS, which a static glibc build would dlopen from the
/// host's (possibly other) glibc; `disk` is always a local group.
fn disk_gid() -> u32 {
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

// ---------------------------------------------------------------- containers

/// The mount namespace of `label`'s process: the process whose network
/// namespace identified the guest, held by its pidfd since.
async fn mount_ns_of(label: &GuestRef) -> Result<MountNs> {
    let guest = crate::resolve::guest::resolve(label).await?;
    let Some(process) = guest.process() else {
        return Err(Error::new(
            Kind::Usage,
            format!(
                "{label} is a bare network namespace with no /dev of its own: \
             --container needs a container or pid:<PID>"
            ),
        ));
    };
    let path = PathBuf::from(format!("/proc/{}/ns/mnt", process.pid()));
    let file = process.namespace("mnt").map_err(|e| match e.raw_os_error() {
        Some(libc::ESRCH) => {
            Error::new(Kind::NotFound, format!("{label} stopped while pipework looked it up"))
        }
        _ => failed("opening", &path, e),
    })?;
    Ok(MountNs { file, path })
}

struct MountNs {
    file: File,
    /// For messages.
    path: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(r: Result<impl std::fmt::Debug>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn a_missing_node_is_made_and_the_right_one_kept_whatever_its_mode() {
        let p = Path::new("/d/loop3");
        assert!(needs_node(p, 3, &Node::Missing).unwrap());
        assert!(!needs_node(p, 3, &Node::Block(7, 3)).unwrap());
    }

    #[test]
    fn anything_else_in_the_way_is_refused_by_name() {
        let p = Path::new("/d/loop3");
        assert_eq!(
            msg(needs_node(p, 3, &Node::Block(7, 4))),
            "pipework: /d/loop3 is block device 7:4, not loop device 7:3; leaving it alone"
        );
        assert_eq!(
            msg(needs_node(p, 3, &Node::Block(8, 3))),
            "pipework: /d/loop3 is block device 8:3, not loop device 7:3; leaving it alone"
        );
        assert_eq!(
            msg(needs_node(p, 3, &Node::Other("a regular file"))),
            "pipework: /d/loop3 is a regular file, not loop device 7:3; leaving it alone"
        );
    }

    #[test]
    fn only_the_missing_nodes_are_made() {
        let found = [Node::Block(7, 0), Node::Missing, Node::Block(7, 2), Node::Missing];
        assert_eq!(nodes_to_make(Path::new("/d"), &found).unwrap(), vec![1, 3]);
    }

    #[test]
    fn one_thing_in_the_way_refuses_the_whole_run() {
        let found = [Node::Missing, Node::Missing, Node::Other("a directory"), Node::Missing];
        assert!(msg(nodes_to_make(Path::new("/d"), &found)).contains("/d/loop2 is a directory"));
    }

    #[test]
    fn the_report_says_each_thing_done_or_that_there_was_nothing() {
        let dir = Path::new("/dev");
        assert_eq!(
            report(dir, 10, &[8, 9], &[9]),
            ["added kernel device loop8", "added kernel device loop9", "created /dev/loop9 (block 7:9)"]
        );
        assert_eq!(report(dir, 8, &[], &[]), ["nothing to do: loop0 to loop7 exist"]);
        assert_eq!(report(dir, 1, &[], &[]), ["nothing to do: loop0 exists"]);
    }

    #[test]
    fn the_disk_gid_is_read_from_group_text() {
        let group = "root:x:0:\ndiskette:x:99:\ndisk:x:6:alice\nbroken\n";
        assert_eq!(gid_in(group, "disk"), Some(6));
        assert_eq!(gid_in(group, "broken"), None);
        assert_eq!(gid_in("disk:x:notanumber:\n", "disk"), None);
    }

    #[test]
    fn permission_errors_name_the_path() {
        let e = failed("creating", Path::new("/d/loop1"), io::Error::from_raw_os_error(libc::EPERM));
        assert_eq!(e.to_string(), "pipework: creating /d/loop1: permission denied");
    }
}
