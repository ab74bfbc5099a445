//! How often the native client talks to a server, whatever the server
//! says: a lease's times clamped as RFC 2131 clients clamp them, a floor
//! between two exchanges, and the agent's retry constants, all here.

use std::time::Duration;

use tokio::time::{sleep_until, Instant};

/// The shortest lease taken. A shorter one, 0 included, is stretched to it
/// rather than refused: refusing would leave the guest without an address
/// from what may be its only server, and ask that server again at once. A
/// server that wants the address back says so with a DHCPNAK at renewal.
pub const MIN_LEASE: Duration = Duration::from_secs(60);
/// The least time between the starts of two exchanges with a server,
/// renewals or tries for a lease (save the try right after a lease is
/// lost), and the least wait for an answer while renewing or rebinding:
/// whatever a server answers, a few exchanges a minute.
pub const MIN_INTERVAL: Duration = Duration::from_secs(10);
/// How long the agent tries for a new lease before it backs off.
pub const ACQUIRE_FOR: Duration = Duration::from_secs(60);
/// The longest back-off between two failed tries for a new lease; each
/// failure doubles it from `MIN_INTERVAL`.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// A lease time of 0xffffffff is infinite (RFC 2131 3.3), as is none sent.
const INFINITE: u32 = u32::MAX;

/// A lease's length and when to renew (T1) and rebind (T2), from its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times {
    pub lease: Duration,
    pub t1: Duration,
    pub t2: Duration,
}

impl Times {
    /// The times a server sent (seconds; each option if present), made
    /// sane: the lease at least `MIN_LEASE`, T2 before the lease's end and
    /// T1 before T2, each else at its RFC 2131 4.4.5 default of 7/8 and 1/2
    /// of the lease. Then 0 < T1 < T2 < lease, and nothing overflows.
    pub fn clamped(lease: Option<u64>, t1: Option<u64>, t2: Option<u64>) -> Times {
        let lease = lease.unwrap_or(INFINITE.into()).clamp(MIN_LEASE.as_secs(), INFINITE.into());
        // Under MIN_INTERVAL a T2 would leave no time to renew before it.
        let t2 = t2.filter(|t| (MIN_INTERVAL.as_secs()..lease).contains(t)).unwrap_or(lease * 7 / 8);
        // A T2 sent earlier than half the lease takes T1 back with it.
        let half = if lease / 2 < t2 { lease / 2 } else { t2 * 4 / 7 };
        let t1 = t1.filter(|t| (1..t2).contains(t)).unwrap_or(half);
        let secs = Duration::from_secs;
        Times { lease: secs(lease), t1: secs(t1), t2: secs(t2) }
    }
}

/// Keeps exchanges with a server at least `MIN_INTERVAL` apart, and backs
/// off after failures.
#[derive(Debug)]
pub struct Pace {
    last: Instant,
    gap: Duration,
}

impl Pace {
    /// An exchange has just been made (the attach's, before the agent).
    pub fn new() -> Pace {
        Pace { last: Instant::now(), gap: MIN_INTERVAL }
    }

    /// Waits until the next exchange may start, and counts it as started.
    pub async fn turn(&mut self) {
        sleep_until(self.last + self.gap).await;
        self.last = Instant::now();
    }

    /// Counts an exchange started now, without waiting: the first one after
    /// a lease is lost, which the server that ended it may answer at once.
    pub fn skip(&mut self) {
        self.last = Instant::now();
    }

    /// The exchange got no lease: the next waits twice as long, up to
    /// `MAX_BACKOFF`.
    pub fn failed(&mut self) {
        self.gap = self.gap.saturating_mul(2).min(MAX_BACKOFF);
    }

    /// It got one: back to the floor.
    pub fn succeeded(&mut self) {
        self.gap = MIN_INTERVAL;
    }
}

impl Default for Pace {
    fn default() -> Self {
        Pace::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(t: Times) -> (u64, u64, u64) {
        (t.lease.as_secs(), t.t1.as_secs(), t.t2.as_secs())
    }

    #[test]
    fn a_sane_lease_is_kept_as_sent() {
        assert_eq!(secs(Times::clamped(Some(3600), Some(1000), Some(3000))), (3600, 1000, 3000));
        assert_eq!(secs(Times::clamped(Some(120), None, None)), (120, 60, 105));
    }

    #[test]
    fn lease_zero_is_the_minimum() {
        assert_eq!(secs(Times::clamped(Some(0), None, None)), (60, 30, 52));
        assert_eq!(secs(Times::clamped(Some(0), Some(0), Some(0))), (60, 30, 52));
    }

    #[test]
    fn timers_at_or_past_the_lease_are_the_defaults() {
        let huge = Some(u64::from(u32::MAX));
        assert_eq!(secs(Times::clamped(Some(20), huge, huge)), (60, 30, 52));
        assert_eq!(secs(Times::clamped(Some(600), Some(600), Some(600))), (600, 300, 525));
        // T1 after T2: T1's default, T2 as sent; before half the lease, T1 with it.
        assert_eq!(secs(Times::clamped(Some(600), Some(500), Some(400))), (600, 300, 400));
        assert_eq!(secs(Times::clamped(Some(600), Some(500), Some(70))), (600, 40, 70));
    }

    #[test]
    fn no_lease_time_or_all_ones_is_infinite_without_overflow() {
        let all = u64::from(u32::MAX);
        for lease in [None, Some(all), Some(u64::MAX)] {
            let t = Times::clamped(lease, Some(u64::MAX), Some(u64::MAX));
            assert_eq!(secs(t), (all, all / 2, all * 7 / 8));
        }
    }

    #[test]
    fn always_t1_before_t2_before_the_end() {
        let some = [None, Some(0), Some(1), Some(9), Some(10), Some(11), Some(59), Some(60), Some(61)];
        let more = [Some(3600), Some(u64::from(u32::MAX)), Some(u64::MAX)];
        for lease in some.iter().chain(&more) {
            for t1 in some.iter().chain(&more) {
                for t2 in some.iter().chain(&more) {
                    let t = Times::clamped(*lease, *t1, *t2);
                    assert!(
                        t.lease >= MIN_LEASE && Duration::ZERO < t.t1 && t.t1 < t.t2 && t.t2 < t.lease,
                        "{lease:?} {t1:?} {t2:?}: {t:?}"
                    );
                }
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn exchanges_keep_their_distance_and_back_off() {
        let start = Instant::now();
        let mut pace = Pace::new();
        let mut at = Vec::new();
        for _ in 0..3 {
            pace.turn().await;
            at.push(start.elapsed().as_secs());
        }
        assert_eq!(at, [10, 20, 30]);
        for _ in 0..7 {
            pace.failed();
            pace.turn().await;
            at.push(start.elapsed().as_secs());
        }
        assert_eq!(at[3..], [50, 90, 170, 330, 630, 930, 1230]);
        pace.succeeded();
        pace.turn().await;
        assert_eq!(start.elapsed().as_secs(), 1240);
        tokio::time::sleep(Duration::from_secs(3)).await;
        pace.skip();
        pace.turn().await;
        assert_eq!(start.elapsed().as_secs(), 1253, "the skipped one counts");
    }
}
