//! A service's stop, heard by what it waits for: a host DHCP client, a
//! lease. The watch service asks for it at SIGTERM; a wait it cuts short
//! ends as a failure, and the run it belonged to rolls back.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

use crate::error::{Error, Kind, Result};

static STOPPING: AtomicBool = AtomicBool::new(false);
static STOP: Notify = Notify::const_new();

/// Cuts every wait short, now and from now on.
pub fn begin() {
    STOPPING.store(true, Ordering::SeqCst);
    STOP.notify_waiters();
}

/// Resolves once `begin` was called.
pub async fn requested() {
    let notified = STOP.notified();
    tokio::pin!(notified);
    // Registered before the flag is read: a stop between the two is heard.
    notified.as_mut().enable();
    if !STOPPING.load(Ordering::SeqCst) {
        notified.await;
    }
}

/// `wait`, unless the service stops first: then the failure that rolls
/// back the run `what` belongs to.
pub async fn unless_stopping<T>(what: &str, wait: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::select! {
        done = wait => done,
        () = requested() => Err(Error::new(Kind::Interrupted, format!("{what}: cut short, the service is stopping"))),
    }
}
