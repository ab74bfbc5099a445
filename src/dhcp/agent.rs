//! Starting and stopping the agent that keeps a lease for the guest's
//! life: this binary again (`pipework --dhcp-agent <state file>`), started
//! in the guest's network namespace in a session of its own, with the
//! guest's pidfd and the run's packet socket handed over on fixed fds. Its
//! life is `lease_loop`.

use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::lease_file::LeaseFile;
use crate::error::{Error, Result};
use crate::records::DhcpRecord;

/// The hidden word that runs the agent.
pub const WORD: &str = "--dhcp-agent";
/// The fd the guest's pidfd is handed over on.
pub const PIDFD: i32 = 3;
/// The fd the run's packet socket is handed over on, closed at once.
pub const HANDED_SOCKET: i32 = 4;

/// Closes the run's packet socket, handed over on fd 4 (a DHCPDISCOVER's
/// replies would queue on it for nothing), before anything else opens an
/// fd: with no socket handed over, fd 4 is free, and the next fd opened,
/// the async runtime's own, would be it.
pub fn close_handed_socket() {
    // SAFETY: fd 4 is the handed socket or nothing (every other fd of the
    // parent is close-on-exec), and nothing of this process uses it yet.
    unsafe { libc::close(HANDED_SOCKET) };
}

/// The agents this process started and has not reaped. A run ends long
/// before its agents and leaves them to init; the watch service lives on
/// and reaps them as they exit (`reap`), or they would stay zombies.
static STARTED: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Starts the agent for `state` (already written) inside `netns`, watching
/// `pidfd`; returns it.
pub fn spawn(
    state: &LeaseFile,
    netns: BorrowedFd<'_>,
    pidfd: Option<BorrowedFd<'_>>,
    socket: Option<&OwnedFd>,
) -> Result<AgentId> {
    let exe = std::env::current_exe().map_err(|e| Error::from(e).context("finding this program"))?;
    let log =
        crate::records::private_files::open(File::options().create(true).append(true), &state.log_path())
            .map_err(|e| Error::from(e).context("opening the agent's log"))?;
    let mut cmd = Command::new(exe);
    cmd.arg(WORD).arg(&state.path).current_dir("/");
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
    // The signals of a normal process, not those the run holds, but for
    // SIGTERM: the agent reads it through a signalfd, blocked from its start
    // so that a stop never finds it without its lease released.
    crate::sys::exec::default_signals(&mut cmd);
    // SAFETY: sigprocmask on a set on the child's stack, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let mut term: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut term);
            libc::sigaddset(&mut term, libc::SIGTERM);
            match libc::sigprocmask(libc::SIG_BLOCK, &term, std::ptr::null_mut()) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        });
    }
    let ns = netns.as_raw_fd();
    let pidfd = pidfd.map(|fd| fd.as_raw_fd());
    let socket = socket.map(|fd| fd.as_raw_fd());
    // SAFETY: between fork and exec the child makes only async-signal-safe
    // system calls (setns, setsid, setrlimit, fcntl, dup2) on fds the
    // parent keeps open.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(ns, libc::CLONE_NEWNET) != 0 || libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            crate::sys::exec::restore_fd_limit()?;
            // Each fd is first copied above the fixed ones (close-on-exec):
            // it may be fd 3 or 4 already, where dup2 onto itself would
            // leave it close-on-exec, or onto the other would overwrite it.
            let mut moved = [None, None];
            for (slot, fd) in moved.iter_mut().zip([pidfd, socket]) {
                if let Some(fd) = fd {
                    let high = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 10);
                    if high < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    *slot = Some(high);
                }
            }
            for (fd, to) in moved.into_iter().zip([PIDFD, HANDED_SOCKET]) {
                if let Some(fd) = fd {
                    if libc::dup2(fd, to) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| Error::from(e).context("starting the DHCP agent"))?;
    STARTED.lock().unwrap_or_else(PoisonError::into_inner).push(child.id());
    // Not reaped yet: the PID is still the child's own.
    Ok(AgentId::of(child.id()))
}

/// Reaps the agents this process started that have exited (at SIGCHLD).
pub fn reap() {
    let mut started = STARTED.lock().unwrap_or_else(PoisonError::into_inner);
    started.retain(|&pid| {
        let Ok(raw) = i32::try_from(pid) else { return false };
        matches!(waitpid(Pid::from_raw(raw), Some(WaitPidFlag::WNOHANG)), Ok(WaitStatus::StillAlive))
    });
}

/// An agent process as a record names it: its PID, and when it started
/// (clock ticks after boot, /proc/PID/stat's 22nd field), which tells it
/// from a later process that got the same number. Records from before the
/// start time was kept have none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AgentId {
    pub pid: u32,
    pub started: Option<u64>,
}

impl AgentId {
    /// The process `pid` now, with its start time.
    pub fn of(pid: u32) -> AgentId {
        AgentId { pid, started: started_at(pid) }
    }

    /// The agent a record names, if it names one.
    pub fn recorded(dhcp: &DhcpRecord) -> Option<AgentId> {
        dhcp.agent_pid.map(|pid| AgentId { pid, started: dhcp.agent_started })
    }

    /// Whether this is still the agent that keeps the lease of `state`: the
    /// same program line and, where known, the same start time.
    pub fn running(&self, state: &Path) -> bool {
        let Ok(cmdline) = std::fs::read(format!("/proc/{}/cmdline", self.pid)) else { return false };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        args.get(1) == Some(&WORD.as_bytes())
            && args.get(2) == Some(&state.as_os_str().as_bytes())
            && self.started.is_none_or(|t| started_at(self.pid) == Some(t))
    }

    /// `running`, and inside the network namespace `netns`: a guest's
    /// current one, which a restarted guest's old agent is not in, even if
    /// the new namespace got the old one's inode (and so its state path).
    pub fn keeps(&self, state: &Path, netns: BorrowedFd<'_>) -> bool {
        let Ok(theirs) = std::fs::metadata(format!("/proc/{}/ns/net", self.pid)) else { return false };
        let Ok(guest) = nix::sys::stat::fstat(netns) else { return false };
        (theirs.dev(), theirs.ino()) == (guest.st_dev, guest.st_ino) && self.running(state)
    }
}

fn started_at(pid: u32) -> Option<u64> {
    crate::sys::process::started_at(pid.into())
}

/// Asks the agent to release the lease and leave, and waits a moment for it.
pub fn stop(pid: u32) {
    let Ok(raw) = i32::try_from(pid) else { return };
    let pid = Pid::from_raw(raw);
    if nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).is_err() {
        return;
    }
    for _ in 0..200 {
        // Reaped if it is our own child (a rollback), else left to init.
        let _ = waitpid(pid, Some(WaitPidFlag::WNOHANG));
        if nix::sys::signal::kill(pid, None).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
