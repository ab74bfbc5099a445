//! A device directory held open, and the block device nodes made in it.
//! Every node is looked at, made, checked and removed relative to the
//! directory's descriptor, never by path: whoever can write the directory
//! (or, inside a container's mount namespace, the container) cannot
//! redirect a change through a symbolic link swapped in for the directory,
//! a parent or a node. `loopdev` makes its nodes here.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, AtFlags, OFlag, OpenHow, ResolveFlag, AT_FDCWD};
use nix::sys::stat::{fstat, fstatat, mknodat, umask, FileStat, Mode, SFlag};
use nix::unistd::{fchownat, unlinkat, Gid, UnlinkatFlags};
use serde::{Deserialize, Serialize};

use crate::error::{failed, Error, Kind, Result};

pub struct DevDir {
    fd: OwnedFd,
    /// For messages and the report.
    pub path: PathBuf,
}

/// What is at a node's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    Missing,
    /// A block device node, major:minor.
    Block(u32, u32),
    /// Anything else, described: "a regular file".
    Other(&'static str),
}

/// A block device node wanted in the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub name: String,
    pub major: u32,
    pub minor: u32,
    /// Its exact mode, whatever the umask or a default ACL would make it.
    pub mode: u32,
    /// What the device is, for a refusal: "loop device".
    pub kind: &'static str,
}

impl Wanted {
    /// Whether the node is still to be made, given `node` found at `path`.
    /// The right device's node is kept whatever its mode; anything else
    /// there is left alone and refused.
    pub fn needs(&self, path: &Path, node: &Node) -> Result<bool> {
        let what = match *node {
            Node::Missing => return Ok(true),
            Node::Block(major, minor) if (major, minor) == (self.major, self.minor) => return Ok(false),
            Node::Block(major, minor) => format!("block device {major}:{minor}"),
            Node::Other(kind) => kind.to_string(),
        };
        Err(Error::new(
            Kind::Conflict,
            format!(
                "{} is {what}, not {} {}:{}; leaving it alone",
                path.display(),
                self.kind,
                self.major,
                self.minor
            ),
        ))
    }
}

/// A node this run made: the inode, to tell it from one put in its place.
pub struct Made {
    pub wanted: Wanted,
    /// Held open (O_PATH) from right after the mknod: the group is fixed
    /// through it, not through the name; and while it is held, the inode's
    /// number is not another's.
    fd: OwnedFd,
    inode: (u64, u64),
}

/// An inode as a later process tells it from one made in its place since:
/// a freed inode's number is soon reused (on ext4 at once), so its file
/// handle too, which holds the inode's generation (None where the
/// filesystem gives none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InodeId {
    pub dev: u64,
    pub ino: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
}

impl DevDir {
    /// Opens `path`, which must be an existing directory reached without
    /// following any symbolic link. Inside a container's mount namespace the
    /// thread's root is the container's, so `/dev` resolves within it, and
    /// without symbolic links nothing can lead out of it.
    pub fn open(path: &Path) -> Result<DevDir> {
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

    pub fn path_of(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// What is at `name`, symbolic links not followed (mknod would not either).
    pub fn inspect(&self, name: &str) -> Result<Node> {
        match fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(node_of(&st)),
            Err(Errno::ENOENT) => Ok(Node::Missing),
            Err(e) => Err(failed("reading", &self.path_of(name), e.into())),
        }
    }

    /// Makes the node with group `gid`; None when the right node appeared
    /// meanwhile. A node half made is removed.
    pub fn make_node(&self, wanted: &Wanted, gid: u32) -> Result<Option<Made>> {
        let Some(made) = self.mknod(wanted)? else { return Ok(None) };
        if let Err(e) = self.finish(&made, gid) {
            self.remove(&made);
            return Err(e);
        }
        Ok(Some(made))
    }

    /// `mknod -m<mode> <name> b <major> <minor>`, the node then held open.
    /// None when the right node appeared meanwhile (devtmpfs as the kernel
    /// added the device, udev, another run): it is left as it is.
    pub fn mknod(&self, wanted: &Wanted) -> Result<Option<Made>> {
        let path = self.path_of(&wanted.name);
        // The mode is exact with no umask, so the node never needs a chmod
        // (which an O_PATH descriptor cannot do).
        let umask_was = umask(Mode::empty());
        let made = mknodat(
            &self.fd,
            wanted.name.as_str(),
            SFlag::S_IFBLK,
            Mode::from_bits_truncate(wanted.mode),
            libc::makedev(wanted.major, wanted.minor),
        );
        umask(umask_was);
        match made {
            Ok(()) => {}
            Err(Errno::EEXIST) => return wanted.needs(&path, &self.inspect(&wanted.name)?).map(|_| None),
            Err(e) => return Err(failed("creating", &path, e.into())),
        }
        // Should this fail, what the name leads to cannot be told from
        // another's node: it is left alone.
        self.open_made(wanted).map(Some)
    }

    /// The node just made, opened without following a link and checked to
    /// be the device wanted; anything else is not touched again.
    fn open_made(&self, wanted: &Wanted) -> Result<Made> {
        let path = self.path_of(&wanted.name);
        // A name without a slash, opened without following a link: a link
        // put there is opened itself and refused below.
        let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = openat(&self.fd, wanted.name.as_str(), flags, Mode::empty()).map_err(|e| match e {
            Errno::ENOENT => {
                Error::new(Kind::Conflict, format!("{} vanished right after it was made", path.display()))
            }
            e => failed("opening", &path, e.into()),
        })?;
        let st = fstat(&fd).map_err(|e| failed("reading", &path, e.into()))?;
        wanted.needs(&path, &node_of(&st))?;
        Ok(Made { wanted: wanted.clone(), fd, inode: (st.st_dev, st.st_ino) })
    }

    /// Group `gid` and the mode wanted on the node itself, through its
    /// descriptor.
    pub fn finish(&self, made: &Made, gid: u32) -> Result<()> {
        let wanted = &made.wanted;
        let path = self.path_of(&wanted.name);
        fchownat(&made.fd, "", None, Some(Gid::from_raw(gid)), AtFlags::AT_EMPTY_PATH)
            .map_err(|e| failed("setting the group of", &path, e.into()))?;
        // A default ACL on the directory overrides the umask.
        let st = fstat(&made.fd).map_err(|e| failed("reading", &path, e.into()))?;
        if st.st_mode & 0o7777 != wanted.mode {
            fchmod_path_fd(&made.fd, wanted.mode).map_err(|e| failed("setting the mode of", &path, e))?;
        }
        // The name must still lead to this node, or the report would lie.
        if self.holds(made) {
            return Ok(());
        }
        wanted.needs(&path, &self.inspect(&wanted.name)?)?;
        Err(Error::new(Kind::Conflict, format!("{} was replaced while it was being made", path.display())))
    }

    /// Whether the name is still the node this run made.
    fn holds(&self, made: &Made) -> bool {
        self.holds_inode(&made.wanted.name, made.inode)
    }

    /// Whether `name` is the inode `(dev, ino)`.
    fn holds_inode(&self, name: &str, inode: (u64, u64)) -> bool {
        fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW).is_ok_and(|st| (st.st_dev, st.st_ino) == inode)
    }

    /// Removes a node this run made, if it is still there; what replaced it
    /// is left alone.
    pub fn remove(&self, made: &Made) {
        if self.holds(made) {
            let _ = unlinkat(&self.fd, made.wanted.name.as_str(), UnlinkatFlags::NoRemoveDir);
        }
    }

    /// Removes `name` if it is still the inode `id` (a node a dead run
    /// made); false when something else, or nothing, is there.
    pub fn remove_inode(&self, name: &str, id: &InodeId) -> Result<bool> {
        let same = self.holds_inode(name, (id.dev, id.ino))
            && id.handle.as_ref().is_none_or(|h| handle_of(&self.fd, name, 0).as_ref() == Some(h));
        if !same {
            return Ok(false);
        }
        match unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) => Ok(true),
            Err(Errno::ENOENT) => Ok(false),
            Err(e) => Err(failed("removing", &self.path_of(name), e.into())),
        }
    }
}

impl Made {
    /// The inode made, as a later process checks the name against it
    /// before it removes the node.
    pub fn id(&self) -> InodeId {
        let (dev, ino) = self.inode;
        InodeId { dev, ino, handle: handle_of(&self.fd, "", libc::AT_EMPTY_PATH) }
    }
}

/// The file handle of `name` in `dir` (of `dir` itself with AT_EMPTY_PATH),
/// a link not followed: `type:hex`. A handle for telling inodes apart only
/// (AT_HANDLE_FID, Linux 6.5), which every filesystem gives, else one that
/// could reopen it, which only those exported over NFS do.
fn handle_of(dir: &OwnedFd, name: &str, flags: libc::c_int) -> Option<String> {
    #[repr(C)]
    struct Handle {
        bytes: libc::c_uint,
        kind: libc::c_int,
        data: [u8; libc::MAX_HANDLE_SZ as usize],
    }
    let name = std::ffi::CString::new(name).ok()?;
    for fid in [libc::AT_HANDLE_FID, 0] {
        let mut h = Handle { bytes: libc::MAX_HANDLE_SZ as libc::c_uint, kind: 0, data: [0; _] };
        let mut mount_id: libc::c_int = 0;
        // SAFETY: `h` is a file_handle with room for MAX_HANDLE_SZ bytes, as
        // its `bytes` says; the name is a C string; both outlive the call.
        let r = unsafe {
            libc::name_to_handle_at(
                dir.as_raw_fd(),
                name.as_ptr(),
                (&raw mut h).cast::<libc::file_handle>(),
                &mut mount_id,
                flags | fid,
            )
        };
        if r == 0 {
            let data = h.data.get(..h.bytes as usize)?;
            return Some(format!(
                "{}:{}",
                h.kind,
                data.iter().map(|b| format!("{b:02x}")).collect::<String>()
            ));
        }
    }
    None
}

/// The refusal of a directory path that is or passes through a symbolic
/// link, naming the first one.
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

fn node_of(st: &FileStat) -> Node {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFBLK => Node::Block(libc::major(st.st_rdev), libc::minor(st.st_rdev)),
        kind => Node::Other(describe(kind)),
    }
}

pub(crate) fn describe(kind: u32) -> &'static str {
    match kind {
        libc::S_IFBLK => "a block device",
        libc::S_IFREG => "a regular file",
        libc::S_IFDIR => "a directory",
        libc::S_IFLNK => "a symbolic link",
        libc::S_IFCHR => "a character device",
        libc::S_IFIFO => "a FIFO",
        libc::S_IFSOCK => "a socket",
        _ => "not a block device",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_made_in_place_of_a_dead_runs_is_not_removed_as_its() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: making a device node needs root");
            return;
        }
        let path = std::env::temp_dir().join(format!("pipework-devdir-{}", std::process::id()));
        fs::create_dir(&path).unwrap();
        let dir = DevDir::open(&path).unwrap();
        let wanted = Wanted { name: "n".into(), major: 1, minor: 3, mode: 0o600, kind: "test" };
        let made = |dir: &DevDir| dir.mknod(&wanted).unwrap().unwrap().id();
        let first = made(&dir);
        assert!(first.handle.is_some(), "no file handle for {}", path.display());
        // The run dies (its descriptor closed) and its node is replaced:
        // the inode's number is likely the same again.
        fs::remove_file(path.join("n")).unwrap();
        let second = made(&dir);
        assert!(!dir.remove_inode("n", &first).unwrap());
        assert!(dir.remove_inode("n", &second).unwrap());
        assert!(!dir.remove_inode("n", &second).unwrap());
        fs::remove_dir(&path).unwrap();
    }

    #[test]
    fn permission_errors_name_the_path() {
        let e = failed("creating", Path::new("/d/loop1"), io::Error::from_raw_os_error(libc::EPERM));
        assert_eq!(e.to_string(), "pipework: creating /d/loop1: permission denied");
    }
}
