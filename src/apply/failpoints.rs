//! Test builds only (feature `failpoints`): a run made to fail, to pause,
//! or to be killed just before a chosen step; release builds carry no such
//! hook.

#[cfg(feature = "failpoints")]
use std::time::Duration;

use crate::error::Error;
#[cfg(feature = "failpoints")]
use crate::error::Kind;

/// Test builds fail on purpose before step `PIPEWORK_FAIL_AT`.
#[cfg(feature = "failpoints")]
pub fn injected_failure(step: usize) -> Option<Error> {
    let at: usize = std::env::var("PIPEWORK_FAIL_AT").ok()?.parse().ok()?;
    (at == step).then(|| Error::new(Kind::Internal, "injected failure (PIPEWORK_FAIL_AT)"))
}

#[cfg(not(feature = "failpoints"))]
pub fn injected_failure(_step: usize) -> Option<Error> {
    None
}

/// Test builds pause before step `PIPEWORK_PAUSE_AT` (half a second, or
/// `PIPEWORK_PAUSE_MS`), so a test can interrupt a run in the middle, and
/// SIGKILL themselves before step `PIPEWORK_KILL_AT`: a run killed there,
/// with no chance to clean up, as by the OOM killer.
#[cfg(feature = "failpoints")]
pub fn injected_pause(step: usize) {
    let at = |var: &str| std::env::var(var).ok().and_then(|v| v.parse::<usize>().ok()) == Some(step);
    if at("PIPEWORK_PAUSE_AT") {
        let ms = std::env::var("PIPEWORK_PAUSE_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(500);
        std::thread::sleep(Duration::from_millis(ms));
    }
    if at("PIPEWORK_KILL_AT") {
        // SAFETY: kill(2) with our own PID and a signal number.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
}

#[cfg(not(feature = "failpoints"))]
pub fn injected_pause(_step: usize) {}
