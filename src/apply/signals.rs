//! Interrupts held while a plan is applied or rolled back, so that a run
//! is always whole.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};

thread_local! {
    /// Holds alive on this thread, and the mask the first one found. The
    /// watch service applies several plans at once on its one thread: the
    /// mask comes back when the last of them ends, not the first.
    static HOLDS: Cell<(usize, Option<SigSet>)> = const { Cell::new((0, None)) };
}

/// SIGINT, SIGTERM, SIGHUP and SIGQUIT held back on this thread (the only
/// one a run has) until the last hold is dropped; one that arrived meanwhile
/// lands then. Threads started meanwhile inherit the mask (`loop --container`).
pub struct HeldSignals(());

impl HeldSignals {
    pub fn hold() -> HeldSignals {
        HOLDS.with(|holds| {
            let (count, saved) = holds.get();
            let saved = if count == 0 { block() } else { saved };
            holds.set((count + 1, saved));
        });
        HeldSignals(())
    }
}

/// Set by a service that catches SIGINT and SIGTERM itself (`watch`): it
/// stops between steps by its own means, cutting short what it waits for
/// (`sys::shutdown`), so holding them back would only make it deaf.
static CAUGHT: AtomicBool = AtomicBool::new(false);

/// SIGINT and SIGTERM are caught by this process from now on: holds leave
/// them through.
pub fn caught_here() {
    CAUGHT.store(true, Ordering::SeqCst);
}

fn block() -> Option<SigSet> {
    let mut set = SigSet::empty();
    let caught = CAUGHT.load(Ordering::SeqCst);
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGQUIT] {
        if !(caught && matches!(signal, Signal::SIGINT | Signal::SIGTERM)) {
            set.add(signal);
        }
    }
    let mut old = SigSet::empty();
    pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old)).is_ok().then_some(old)
}

impl Drop for HeldSignals {
    fn drop(&mut self) {
        HOLDS.with(|holds| {
            let (count, saved) = holds.get();
            if count == 1 {
                if let Some(old) = saved {
                    let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
                }
                holds.set((0, None));
            } else {
                holds.set((count.saturating_sub(1), saved));
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term_blocked() -> bool {
        let mut now = SigSet::empty();
        pthread_sigmask(SigmaskHow::SIG_BLOCK, None, Some(&mut now)).unwrap();
        now.contains(Signal::SIGTERM)
    }

    #[test]
    fn overlapping_holds_unblock_when_the_last_ends() {
        std::thread::spawn(|| {
            let first = HeldSignals::hold();
            let second = HeldSignals::hold();
            drop(first);
            assert!(term_blocked());
            drop(second);
            assert!(!term_blocked());
        })
        .join()
        .unwrap();
    }
}
