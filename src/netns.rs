//! Entering a network namespace without moving the process: `setns` applies
//! to the calling thread only, so each entry happens on a short-lived thread
//! of its own. What that thread opens (netlink or packet sockets) stays bound
//! to the namespace after the thread is gone, and the caller uses it from its
//! own runtime.

use std::os::fd::BorrowedFd;

use nix::sched::{setns, CloneFlags};

use crate::error::{Error, Result};

/// Runs `f` on a new thread that has joined the network namespace `ns`.
pub fn within<T: Send>(ns: BorrowedFd<'_>, f: impl FnOnce() -> std::io::Result<T> + Send) -> Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                setns(ns, CloneFlags::CLONE_NEWNET)
                    .map_err(|e| Error::new(e.desc()).context("entering the network namespace"))?;
                f().map_err(Error::from)
            })
            .join()
            .unwrap_or_else(|_| Err(Error::new("namespace thread panicked")))
    })
}
