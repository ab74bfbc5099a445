//! A file of a guest's own, reached through its root directory
//! (`/proc/PID/root`) with openat2 `RESOLVE_IN_ROOT`: every symbolic link,
//! absolute or `..`, resolves inside the guest's tree, never out of it onto
//! the host's files, and no magic link (`/proc/self/...` in the guest) is
//! followed. The guest controls what is there, so the file itself must be
//! a regular file (not a link, a FIFO or a device), and is read only up to
//! a bound.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileExt, MetadataExt};

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag, AT_FDCWD};
use nix::sys::stat::fstat;

use crate::error::{Error, Kind, Result};
use crate::sys::process::Process;

/// The root directory of a guest process with a mount namespace of its own.
pub struct GuestRoot {
    fd: OwnedFd,
    pub pid: u64,
    /// Its mount namespace, as `(dev, inode)`.
    pub mntns: (u64, u64),
}

impl GuestRoot {
    /// The root of `process`; none when its files are the host's: it
    /// shares this process's mount namespace, or its root directory is
    /// this process's or init's (`ip netns exec` makes a mount namespace
    /// of its own over the host's tree).
    pub fn open(process: &Process, label: &str) -> Result<Option<GuestRoot>> {
        let pid = process.pid();
        let Some(mntns) = mount_namespace(process)? else { return Ok(None) };
        let Some(fd) = Self::open_dir(pid)? else { return Ok(None) };
        // The PID was still this process's once the directory was open.
        if !process.is_alive() {
            return Err(Error::new(Kind::NotFound, format!("process {pid} of {label} is gone")));
        }
        Ok(Some(GuestRoot { fd, pid, mntns }))
    }

    /// The root of process `pid` if its mount namespace is still `mntns`
    /// (the agent's way back to its guest at a renewal); checked before and
    /// after the open, so a PID that went to another process does not count.
    pub fn reopen(pid: u64, mntns: (u64, u64)) -> Result<GuestRoot> {
        let same =
            || std::fs::metadata(format!("/proc/{pid}/ns/mnt")).is_ok_and(|m| (m.dev(), m.ino()) == mntns);
        let gone = || Error::new(Kind::NotFound, format!("process {pid} left its mount namespace"));
        if !same() {
            return Err(gone());
        }
        let fd = Self::open_dir(pid)?;
        if !same() {
            return Err(gone());
        }
        let fd =
            fd.ok_or_else(|| Error::new(Kind::Conflict, format!("process {pid} has the host's root")))?;
        Ok(GuestRoot { fd, pid, mntns })
    }

    /// `/proc/PID/root` held open; none when it is the host's root
    /// directory (this process's or init's).
    fn open_dir(pid: u64) -> Result<Option<OwnedFd>> {
        let path = format!("/proc/{pid}/root");
        let how = OpenHow::new().flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC);
        let fd = openat2(AT_FDCWD, path.as_str(), how)
            .map_err(|e| Error::from(io::Error::from(e)).context(format!("opening {path}")))?;
        let st =
            fstat(&fd).map_err(|e| Error::from(io::Error::from(e)).context(format!("reading {path}")))?;
        Ok((!host_has(&["/", "/proc/1/root"], (st.st_dev, st.st_ino))).then_some(fd))
    }

    /// How the guest's `path` is shown: `/proc/PID/root/etc/resolv.conf`.
    pub fn show(&self, path: &str) -> String {
        format!("/proc/{}/root/{}", self.pid, path.trim_start_matches('/'))
    }

    /// The guest's regular file at `path` (absolute in the guest), open for
    /// reading and writing; refused when it is missing, a symbolic link or
    /// anything but a regular file.
    pub fn open_regular(&self, path: &str) -> Result<File> {
        let shown = self.show(path);
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let rel = path.trim_start_matches('/');
        let held = openat2(&self.fd, rel, how).map_err(|e| match e {
            Errno::ENOENT => Error::new(Kind::NotFound, format!("{shown} does not exist")),
            e => Error::from(io::Error::from(e)).context(format!("opening {shown}")),
        })?;
        let st =
            fstat(&held).map_err(|e| Error::from(io::Error::from(e)).context(format!("reading {shown}")))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(Error::new(
                Kind::Conflict,
                format!(
                    "{shown} is {}, not a regular file; leaving it alone",
                    crate::sys::devdir::describe(st.st_mode & libc::S_IFMT)
                ),
            ));
        }
        // Opened for writing only now that it is known to be a regular
        // file: opening a FIFO or a device could block or act on it.
        let fd = format!("/proc/self/fd/{}", held.as_raw_fd());
        File::options()
            .read(true)
            .write(true)
            .open(fd)
            .map_err(|e| Error::from(e).context(format!("opening {shown}")))
    }
}

/// The mount namespace (`dev`, inode) of `process`; none when it is this
/// process's own.
pub fn mount_namespace(process: &Process) -> Result<Option<(u64, u64)>> {
    let pid = process.pid();
    let theirs = process.namespace("mnt").and_then(|f| f.metadata());
    let theirs = theirs.map_err(|e| Error::from(e).context(format!("opening /proc/{pid}/ns/mnt")))?;
    let ours = std::fs::metadata("/proc/self/ns/mnt").map_err(Error::from)?;
    let mntns = (theirs.dev(), theirs.ino());
    Ok((mntns != (ours.dev(), ours.ino())).then_some(mntns))
}

/// Whether one of the host's `paths` (followed) is the inode `id`.
pub fn host_has(paths: &[&str], id: (u64, u64)) -> bool {
    paths.iter().any(|p| std::fs::metadata(p).is_ok_and(|m| (m.dev(), m.ino()) == id))
}

/// The (`dev`, inode) of an open file.
pub fn inode(file: &File) -> io::Result<(u64, u64)> {
    let m = file.metadata()?;
    Ok((m.dev(), m.ino()))
}

/// All of `file` if it holds at most `max` bytes; None when it holds more.
pub fn read_bounded(file: &File, max: u64) -> io::Result<Option<Vec<u8>>> {
    let mut text = Vec::new();
    file.take(max + 1).read_to_end(&mut text)?;
    Ok((text.len() as u64 <= max).then_some(text))
}

/// The file's content replaced in place (the same inode: a bind mount
/// stays), written before it is cut to length: never seen empty.
pub fn overwrite(file: &File, text: &[u8]) -> io::Result<()> {
    file.write_all_at(text, 0)?;
    file.set_len(text.len() as u64)
}
