//! Interrupts held while a plan is applied or rolled back, so that a run
//! is always whole.

use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};

/// SIGINT, SIGTERM, SIGHUP and SIGQUIT held back on this thread (the only
/// one a run has) until dropped; one that arrived meanwhile lands then.
/// Threads started meanwhile inherit the mask (`loop --container`).
pub struct HeldSignals(Option<SigSet>);

impl HeldSignals {
    pub fn hold() -> HeldSignals {
        let mut set = SigSet::empty();
        for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGQUIT] {
            set.add(signal);
        }
        let mut old = SigSet::empty();
        let held = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old)).is_ok();
        HeldSignals(held.then_some(old))
    }
}

impl Drop for HeldSignals {
    fn drop(&mut self) {
        if let Some(old) = self.0 {
            let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
        }
    }
}
