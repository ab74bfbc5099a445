//! A guest's process, held by a pidfd from the moment its PID is known.
//!
//! A PID is only a number: between the lookup (Docker, a cgroup, the command
//! line) and the open of `/proc/PID/ns/...` the process may exit and the
//! number go to another one. The pidfd names the process itself, so each
//! namespace file opened through `/proc/PID` counts only if that process is
//! still alive afterwards: a live process keeps its PID, so the file was
//! its own. Held for the whole run, the pidfd also tells when the guest is
//! gone (it becomes readable).

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};

#[derive(Debug)]
pub struct Process {
    pid: u64,
    fd: OwnedFd,
}

impl Process {
    /// The process `pid` now; ESRCH when there is none.
    pub fn open(pid: u64) -> io::Result<Process> {
        let raw = libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
        // SAFETY: pidfd_open takes a PID and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, raw, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just gave us this fd; nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        Ok(Process { pid, fd })
    }

    pub fn pid(&self) -> u64 {
        self.pid
    }

    pub fn pidfd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Whether the process has not been reaped yet (and so still owns its PID).
    pub fn is_alive(&self) -> bool {
        use std::os::fd::AsRawFd;
        // SAFETY: signal 0 checks for existence only; no siginfo is passed.
        let r = unsafe {
            libc::syscall(libc::SYS_pidfd_send_signal, self.fd.as_raw_fd(), 0, std::ptr::null::<u8>(), 0)
        };
        // EPERM: it exists, we only may not signal it.
        r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }

    /// Resolves once the process has exited: its pidfd turns readable
    /// then, whether or not it is our child. Needs the async runtime's IO.
    pub async fn exited(self) -> io::Result<()> {
        use tokio::io::{unix::AsyncFd, Interest};
        // SAFETY: the pidfd is owned and moves into the AsyncFd, which keeps
        // it open and unchanged until it is dropped.
        let fd = unsafe { AsyncFd::register_with_interest(self.fd, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        let _ready = fd.readable().await?;
        Ok(())
    }

    /// `/proc/PID/ns/<kind>` (`net`, `mnt`) of this very process: ESRCH if it
    /// exited, even if its PID now belongs to another one.
    pub fn namespace(&self, kind: &str) -> io::Result<File> {
        let file =
            File::open(format!("/proc/{}/ns/{kind}", self.pid)).map_err(|e| match e.raw_os_error() {
                Some(libc::ENOENT) => io::Error::from_raw_os_error(libc::ESRCH),
                _ => e,
            })?;
        if !self.is_alive() {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        Ok(file)
    }
}

/// When process `pid` started, in clock ticks after boot (`/proc/PID/stat`).
pub fn started_at(pid: u64) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name (field 2) may hold spaces and parentheses: count after its end.
    let rest = stat.rsplit_once(") ")?.1;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Now, in the clock of `started_at`: ticks after boot, suspends included.
pub fn ticks_now() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec we pass, and nothing else.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut now) };
    let (secs, nanos) = (u64::try_from(now.tv_sec).unwrap_or(0), u64::try_from(now.tv_nsec).unwrap_or(0));
    // SAFETY: sysconf reads a constant of the system.
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).unwrap_or(100);
    secs * hz + nanos * hz / 1_000_000_000
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::process::Command;

    #[test]
    fn a_live_process_gives_its_namespaces() {
        let me = Process::open(std::process::id().into()).unwrap();
        assert!(me.is_alive());
        let net = me.namespace("net").unwrap();
        let own = std::fs::metadata("/proc/self/ns/net").unwrap();
        assert_eq!(net.metadata().unwrap().ino(), own.ino());
        assert!(me.namespace("mnt").is_ok());
    }

    #[test]
    fn an_exited_process_gives_nothing() {
        let mut child = Command::new("sleep").arg("1000").spawn().unwrap();
        let proc = Process::open(child.id().into()).unwrap();
        assert!(proc.namespace("net").is_ok());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!proc.is_alive());
        let err = proc.namespace("net").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ESRCH));
    }

    #[test]
    fn no_such_process() {
        let err = Process::open(999_999_999).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ESRCH));
    }
}
