//! `pipework loop`: the loop devices xCAT's copycds needs. It hangs when
//! every loop device is busy, and a container's /dev never gets the nodes of
//! devices added later (xcat-in-docker.rst, "Known Issues"), so the runbook
//! had `mknod /dev/loopN -m0660 b 7 N` by hand.
//!
//! `loop free` is `losetup -f` that also makes a missing node; `loop ensure`
//! makes sure loop0..loop(N-1) exist, in a directory or in a running
//! container's /dev. Every path is checked before anything changes.

use std::fs::{self, File, FileType};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::stat::{mknod, Mode, SFlag};
use nix::unistd::Group;

use crate::error::{errno_text, Error, Kind, Result};
use crate::request::{GuestRef, LoopRequest};
use crate::sys::netns;

/// The block major of loop devices (LOOP_MAJOR in <linux/major.h>).
const LOOP_MAJOR: u32 = 7;
const LOOP_CONTROL: &str = "/dev/loop-control";
/// Present when the loop driver is loaded or built in.
const LOOP_MODULE: &str = "/sys/module/loop";
/// What udev gives block devices, and the runbook's `mknod -m0660`.
const NODE_MODE: u32 = 0o660;
/// The gid of `disk` on Debian, Ubuntu, Fedora, RHEL, Alpine and Arch, for a
/// host whose group database lacks the group.
const DISK_GID_FALLBACK: u32 = 6;

// <linux/loop.h>: "bad" ioctls, plain numbers rather than _IO() codes.
nix::ioctl_write_int_bad!(loop_ctl_add, 0x4C80);
nix::ioctl_none_bad!(loop_ctl_get_free, 0x4C82);

pub async fn run(req: &LoopRequest) -> Result<()> {
    match req {
        LoopRequest::Free { dev } => println!("{}", free(dev)?.display()),
        LoopRequest::Ensure { count, dev, container: None } => {
            print_lines(ensure(dev, *count, &LoopControl::open()?, disk_gid())?)
        }
        LoopRequest::Ensure { count, container: Some(label), .. } => {
            let mnt = mount_ns_of(label).await?;
            // Both before entering: the container has neither the host's
            // /dev/loop-control nor (safely) its group database.
            let (ctl, gid) = (LoopControl::open()?, disk_gid());
            print_lines(
                netns::within_mounts(mnt.file.as_fd(), || ensure(Path::new("/dev"), *count, &ctl, gid))
                    .map_err(|e| e.context(format!("in {}", mnt.path.display())))?,
            )
        }
    }
    Ok(())
}

fn print_lines(lines: Vec<String>) {
    for line in lines {
        println!("{line}");
    }
}

/// The first free loop device under `dir`, its node made if missing.
fn free(dir: &Path) -> Result<PathBuf> {
    // Before the ioctl, which may add a kernel device.
    check_dir(dir)?;
    let i = LoopControl::open()?.get_free()?;
    let path = node_path(dir, i);
    if needs_node(&path, i, &inspect(&path)?)? && make_node(&path, i, disk_gid())? {
        tracing::info!("created {} (block {LOOP_MAJOR}:{i})", path.display());
    }
    Ok(path)
}

/// Makes sure `dir` holds loop0..loop(count-1), adding kernel devices as
/// needed; returns the report, one line per thing done.
fn ensure(dir: &Path, count: u32, ctl: &LoopControl, gid: u32) -> Result<Vec<String>> {
    check_dir(dir)?;
    let found = (0..count).map(|i| inspect(&node_path(dir, i))).collect::<Result<Vec<_>>>()?;
    let todo = nodes_to_make(dir, &found)?;
    let mut added = Vec::new();
    for i in 0..count {
        if ctl.add(i)? {
            added.push(i);
        }
    }
    let made = make_nodes(dir, &todo, gid)?;
    Ok(report(dir, count, &added, &made))
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

/// `dir` must be an existing directory.
fn check_dir(dir: &Path) -> Result<()> {
    match fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(Error::new(Kind::Usage, format!("{} is not a directory", dir.display()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Err(Error::new(Kind::NotFound, format!("directory {} does not exist", dir.display())))
        }
        Err(e) => Err(failed("reading", dir, e)),
    }
}

/// What is at `path`, symbolic links not followed (mknod would not either).
fn inspect(path: &Path) -> Result<Node> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_block_device() => {
            Ok(Node::Block(libc::major(meta.rdev()), libc::minor(meta.rdev())))
        }
        Ok(meta) => Ok(Node::Other(describe(meta.file_type()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Node::Missing),
        Err(e) => Err(failed("reading", path, e)),
    }
}

fn describe(kind: FileType) -> &'static str {
    if kind.is_file() {
        "a regular file"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a block device"
    }
}

/// Makes the nodes `todo` in `dir`, returning those this run made. On a
/// failure it removes them again, so `dir` is left as it was.
fn make_nodes(dir: &Path, todo: &[u32], gid: u32) -> Result<Vec<u32>> {
    let mut made = Vec::new();
    for &i in todo {
        match make_node(&node_path(dir, i), i, gid) {
            Ok(true) => made.push(i),
            Ok(false) => {}
            Err(e) => {
                for &j in &made {
                    let _ = fs::remove_file(node_path(dir, j));
                }
                return Err(e);
            }
        }
    }
    Ok(made)
}

/// `mknod -m0660 PATH b 7 I` with group disk. False when the right node
/// appeared meanwhile (devtmpfs as the kernel added the device, udev,
/// another run): it is left as it is.
fn make_node(path: &Path, i: u32, gid: u32) -> Result<bool> {
    let dev = libc::makedev(LOOP_MAJOR, i);
    match mknod(path, SFlag::S_IFBLK, Mode::from_bits_truncate(NODE_MODE), dev) {
        Ok(()) => {}
        Err(Errno::EEXIST) => return needs_node(path, i, &inspect(path)?).map(|_| false),
        Err(e) => return Err(failed("creating", path, e.into())),
    }
    // mknod's mode went through the umask; a node half made is removed.
    let finish = std::os::unix::fs::chown(path, None, Some(gid))
        .map_err(|e| failed("setting the group of", path, e))
        .and_then(|()| {
            fs::set_permissions(path, fs::Permissions::from_mode(NODE_MODE))
                .map_err(|e| failed("setting the mode of", path, e))
        });
    if finish.is_err() {
        let _ = fs::remove_file(path);
    }
    finish.map(|()| true)
}

/// The gid of group `disk`, which owns block devices.
fn disk_gid() -> u32 {
    match Group::from_name("disk") {
        Ok(Some(group)) => group.gid.as_raw(),
        // No such group, or no group database to read (a minimal host).
        _ => DISK_GID_FALLBACK,
    }
}

/// One line naming `path`: "creating /dev/loop8: permission denied".
fn failed(doing: &str, path: &Path, e: io::Error) -> Error {
    let why = match e.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => "permission denied".to_string(),
        Some(errno) => errno_text(errno),
        None => e.to_string(),
    };
    Error::new(Kind::Io, format!("{doing} {}: {why}", path.display()))
}

// ---------------------------------------------------------------- kernel

/// /dev/loop-control, through which the kernel hands out loop devices.
struct LoopControl(File);

impl LoopControl {
    fn open() -> Result<LoopControl> {
        let path = Path::new(LOOP_CONTROL);
        match File::options().read(true).write(true).open(path) {
            Ok(file) => Ok(LoopControl(file)),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENODEV | libc::ENXIO)) => {
                Err(Error::new(
                    Kind::Unsupported,
                    if Path::new(LOOP_MODULE).exists() {
                        format!(
                            "{LOOP_CONTROL} is missing although the loop driver is loaded \
                         (mknod {LOOP_CONTROL} c 10 237)"
                        )
                    } else {
                        "the kernel lacks loop device support (module loop): modprobe loop".to_string()
                    },
                ))
            }
            Err(e) => Err(failed("opening", path, e)),
        }
    }

    /// The first unbound device, as `losetup -f` finds it; the kernel adds
    /// one when all are bound.
    fn get_free(&self) -> Result<u32> {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument; the fd is open.
        let i = unsafe { loop_ctl_get_free(self.0.as_raw_fd()) }
            .map_err(|e| failed("finding a free loop device through", Path::new(LOOP_CONTROL), e.into()))?;
        Ok(i as u32) // never negative: nix turns -1 into an error
    }

    /// Adds loop device `i` to the kernel; false if it had it already.
    fn add(&self, i: u32) -> Result<bool> {
        let arg =
            i32::try_from(i).map_err(|_| Error::new(Kind::Usage, format!("loop{i}: index too large")))?;
        // SAFETY: LOOP_CTL_ADD takes the index by value, no pointer.
        match unsafe { loop_ctl_add(self.0.as_raw_fd(), arg) } {
            Ok(_) => Ok(true),
            Err(Errno::EEXIST) => Ok(false),
            Err(e) => Err(failed(&format!("adding loop{i} through"), Path::new(LOOP_CONTROL), e.into())),
        }
    }
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
        r.unwrap_err().message().to_string()
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
    fn permission_errors_name_the_path() {
        let e = failed("creating", Path::new("/d/loop1"), io::Error::from_raw_os_error(libc::EPERM));
        assert_eq!(e.message(), "pipework: creating /d/loop1: permission denied");
    }
}
