//! Test builds only (feature `failpoints`): a run made to fail, or to
//! pause, just before a chosen step; release builds carry no such hook.

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

/// Test builds pause half a second before step `PIPEWORK_PAUSE_AT`, so a
/// test can interrupt a run in the middle.
#[cfg(feature = "failpoints")]
pub fn injected_pause(step: usize) {
    if std::env::var("PIPEWORK_PAUSE_AT").ok().and_then(|v| v.parse().ok()) == Some(step) {
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[cfg(not(feature = "failpoints"))]
pub fn injected_pause(_step: usize) {}
