//! Entering a namespace without moving the process: `setns` applies to the
//! calling thread only, so each entry happens on a short-lived thread of its
//! own. What that thread opens (netlink or packet sockets, sysctl files)
//! stays bound to the namespace after the thread is gone, and the caller
//! uses it from its own runtime.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};

use nix::sched::{setns, unshare, CloneFlags};

use crate::error::{is_permission, needs_root, Error, Kind, Result};

/// The network namespace this thread is in, held open.
pub fn current() -> Result<File> {
    File::open(CURRENT).map_err(|e| Error::from(e).context(format!("opening {CURRENT}")))
}

/// This thread's (not the process's) namespace: a thread may have moved.
pub const CURRENT: &str = "/proc/thread-self/ns/net";

/// Runs `f` on a new thread that has joined the network namespace `ns`.
pub fn within<T: Send>(ns: BorrowedFd<'_>, f: impl FnOnce() -> std::io::Result<T> + Send) -> Result<T> {
    on_thread_in(ns, CloneFlags::CLONE_NEWNET, || f().map_err(Error::from))
}

/// Runs `f` on a new thread that has joined the mount namespace `ns`. The
/// thread first stops sharing its root and working directory with the
/// process (CLONE_FS), which setns(CLONE_NEWNS) requires.
pub fn within_mounts<T: Send>(ns: BorrowedFd<'_>, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    on_thread_in(ns, CloneFlags::CLONE_NEWNS, f)
}

/// Runs `f` on a new thread that has joined the network namespace `ns`,
/// without blocking the caller's runtime while that thread is scheduled: the
/// watch service has other containers' work to do meanwhile.
pub async fn within_async<T: Send + 'static>(
    ns: BorrowedFd<'_>,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T> {
    let ns = ns.try_clone_to_owned().map_err(|e| Error::from(e).context("holding the namespace"))?;
    let (tx, rx) = futures::channel::oneshot::channel();
    std::thread::Builder::new()
        .spawn(move || {
            let _ = tx.send(on_thread_in(ns.as_fd(), CloneFlags::CLONE_NEWNET, || f().map_err(Error::from)));
        })
        .map_err(|e| Error::from(e).context("starting a namespace thread"))?;
    rx.await.unwrap_or_else(|_| Err(Error::new(Kind::Internal, "namespace thread panicked")))
}

fn on_thread_in<T: Send>(
    ns: BorrowedFd<'_>,
    kind: CloneFlags,
    f: impl FnOnce() -> Result<T> + Send,
) -> Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                if kind == CloneFlags::CLONE_NEWNS {
                    unshare(CloneFlags::CLONE_FS)
                        .map_err(|e| Error::from(e).context("leaving the shared filesystem"))?;
                }
                setns(ns, kind).map_err(|e| match is_permission(e as i32) {
                    true => needs_root("entering the namespace"),
                    false => Error::from(e).context("entering the namespace"),
                })?;
                f()
            })
            .join()
            .unwrap_or_else(|_| Err(Error::new(Kind::Internal, "namespace thread panicked")))
    })
}
