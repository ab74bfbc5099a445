//! Running a program the operator named (`ip`, `tc`) inside a network
//! namespace: fork, `setns` in the child, exec; no shell. Its stdio is
//! inherited and its exit status passed on.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Command;

use crate::error::{Error, Kind, Result};

/// Runs `program args` inside the namespace `ns`, and passes its status on.
pub fn exec_in(ns: BorrowedFd<'_>, program: &str, args: &[String]) -> Result<()> {
    tracing::info!("running {program} {} in the guest's namespace", args.join(" "));
    let fd = ns.as_raw_fd();
    let mut cmd = Command::new(program);
    cmd.args(args);
    // SAFETY: between fork and exec the child only makes the setns system
    // call on an fd the parent keeps open; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let status = match cmd.status() {
        Ok(status) => status,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::new(Kind::NotFound, format!("{program} not found; install iproute2")))
        }
        Err(e) => return Err(Error::from(e).context(format!("running {program}"))),
    };
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(()),
        (Some(code), _) => Err(Error::exit(code)),
        (None, Some(signal)) => Err(Error::exit(128 + signal)),
        (None, None) => Err(Error::exit(1)),
    }
}
