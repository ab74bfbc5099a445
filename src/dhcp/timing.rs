//! How often the native client and the agent talk to a server, whatever
//! the server says: one `Policy` (a lease's times clamped as RFC 2131
//! clients clamp them, T1/T2's defaults, a floor between two exchanges,
//! the wait for an answer, how long to try for a lease and the back-off
//! after failing) and the `Pace` it sets.

use std::time::Duration;

use tokio::time::{sleep_until, Instant};

use super::client::Answer;
use crate::error::Result;

/// How often the native client and the agent talk to a server, in one
/// place. Every wait of the client's and the agent's comes from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The shortest lease taken. A shorter one, 0 included, is stretched to
    /// it rather than refused: refusing would leave the guest without an
    /// address from what may be its only server, and ask that server again
    /// at once. A server that wants the address back says so with a
    /// DHCPNAK at renewal.
    pub min_lease: Duration,
    /// T1 and T2 when the server sends none (or none that makes sense), as
    /// shares of the lease: RFC 2131 4.4.5's 1/2 and 7/8.
    pub t1: Share,
    pub t2: Share,
    /// The least time between the starts of two exchanges with a server,
    /// renewals or tries for a lease (save the try right after a lease is
    /// lost), and the least wait for an answer while renewing or
    /// rebinding: whatever a server answers, a few exchanges a minute.
    pub min_interval: Duration,
    /// How long the agent tries for a new lease before it backs off.
    pub acquire_for: Duration,
    /// The longest back-off between two failed tries for a new lease; each
    /// failure doubles it from `min_interval`.
    pub max_backoff: Duration,
}

/// A share of a lease's time: `num / den`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    pub num: u64,
    pub den: u64,
}

impl Share {
    fn of(self, secs: u64) -> u64 {
        secs * self.num / self.den
    }
}

/// The policy pipework runs with.
pub const POLICY: Policy = Policy {
    min_lease: Duration::from_secs(60),
    t1: Share { num: 1, den: 2 },
    t2: Share { num: 7, den: 8 },
    min_interval: Duration::from_secs(10),
    acquire_for: Duration::from_secs(60),
    max_backoff: Duration::from_secs(300),
};

/// A lease time of 0xffffffff is infinite (RFC 2131 3.3), as is none sent.
const INFINITE: u32 = u32::MAX;

/// A lease's length and when to renew (T1) and rebind (T2), from its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times {
    pub lease: Duration,
    pub t1: Duration,
    pub t2: Duration,
}

impl Policy {
    /// The times a server sent (seconds; each option if present), made
    /// sane: the lease at least `min_lease`, T2 before the lease's end and
    /// T1 before T2, each else at its default share of the lease. Then
    /// 0 < T1 < T2 < lease, and nothing overflows.
    pub fn times(&self, lease: Option<u64>, t1: Option<u64>, t2: Option<u64>) -> Times {
        let lease = lease.unwrap_or(INFINITE.into()).clamp(self.min_lease.as_secs(), INFINITE.into());
        // Under min_interval a T2 would leave no time to renew before it.
        let t2 = t2.filter(|t| (self.min_interval.as_secs()..lease).contains(t)).unwrap_or(self.t2.of(lease));
        // A T2 sent earlier than T1's default takes T1 back with it, in
        // the defaults' proportion.
        let default = self.t1.of(lease);
        let t1_default = match default < t2 {
            true => default,
            false => t2 * self.t1.num * self.t2.den / (self.t1.den * self.t2.num),
        };
        let t1 = t1.filter(|t| (1..t2).contains(t)).unwrap_or(t1_default);
        let secs = Duration::from_secs;
        Times { lease: secs(lease), t1: secs(t1), t2: secs(t2) }
    }

    /// How long to wait for an answer while renewing or rebinding, with
    /// `left` until T2 or the lease's end (RFC 2131 4.4.5): half the time
    /// left, but not less than `min_interval` (shorter than the RFC's
    /// minute, for short leases), and not past the end; never zero.
    pub fn wait_within(&self, left: Duration) -> Duration {
        (left / 2).max(self.min_interval).min(left).max(Duration::from_millis(1))
    }

    /// Asks (`ask`, given how long to wait for an answer) until the server
    /// answers or `deadline` passes: its answer, or `Silence`.
    pub async fn ask_until(
        &self,
        deadline: Instant,
        mut ask: impl AsyncFnMut(Duration) -> Result<Answer>,
    ) -> Result<Answer> {
        while Instant::now() < deadline {
            match ask(self.wait_within(deadline.saturating_duration_since(Instant::now()))).await? {
                Answer::Silence => {}
                answered => return Ok(answered),
            }
        }
        Ok(Answer::Silence)
    }

    /// The pace of exchanges, from one made just now (the attach's, before
    /// the agent).
    pub fn pace(&self) -> Pace {
        Pace { last: Instant::now(), gap: self.min_interval, policy: *self }
    }
}

/// Keeps exchanges with a server at least `min_interval` apart, and backs
/// off after failures.
#[derive(Debug)]
pub struct Pace {
    last: Instant,
    gap: Duration,
    policy: Policy,
}

impl Pace {
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
    /// `max_backoff`.
    pub fn failed(&mut self) {
        self.gap = self.gap.saturating_mul(2).min(self.policy.max_backoff);
    }

    /// It got one: back to the floor.
    pub fn succeeded(&mut self) {
        self.gap = self.policy.min_interval;
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
        assert_eq!(secs(POLICY.times(Some(3600), Some(1000), Some(3000))), (3600, 1000, 3000));
        assert_eq!(secs(POLICY.times(Some(120), None, None)), (120, 60, 105));
    }

    #[test]
    fn lease_zero_is_the_minimum() {
        assert_eq!(secs(POLICY.times(Some(0), None, None)), (60, 30, 52));
        assert_eq!(secs(POLICY.times(Some(0), Some(0), Some(0))), (60, 30, 52));
    }

    #[test]
    fn timers_at_or_past_the_lease_are_the_defaults() {
        let huge = Some(u64::from(u32::MAX));
        assert_eq!(secs(POLICY.times(Some(20), huge, huge)), (60, 30, 52));
        assert_eq!(secs(POLICY.times(Some(600), Some(600), Some(600))), (600, 300, 525));
        // T1 after T2: T1's default, T2 as sent; before half the lease, T1 with it.
        assert_eq!(secs(POLICY.times(Some(600), Some(500), Some(400))), (600, 300, 400));
        assert_eq!(secs(POLICY.times(Some(600), Some(500), Some(70))), (600, 40, 70));
    }

    #[test]
    fn no_lease_time_or_all_ones_is_infinite_without_overflow() {
        let all = u64::from(u32::MAX);
        for lease in [None, Some(all), Some(u64::MAX)] {
            let t = POLICY.times(lease, Some(u64::MAX), Some(u64::MAX));
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
                    let t = POLICY.times(*lease, *t1, *t2);
                    assert!(
                        t.lease >= POLICY.min_lease && Duration::ZERO < t.t1 && t.t1 < t.t2 && t.t2 < t.lease,
                        "{lease:?} {t1:?} {t2:?}: {t:?}"
                    );
                }
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn exchanges_keep_their_distance_and_back_off() {
        let start = Instant::now();
        let mut pace = POLICY.pace();
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

    #[test]
    fn an_answer_waits_half_the_time_left_but_at_least_the_floor() {
        let secs = Duration::from_secs;
        assert_eq!(POLICY.wait_within(secs(3600)), secs(1800));
        assert_eq!(POLICY.wait_within(secs(15)), secs(10));
        assert_eq!(POLICY.wait_within(secs(4)), secs(4), "not past the deadline");
        assert_eq!(POLICY.wait_within(Duration::ZERO), Duration::from_millis(1));
    }

    /// A server that stays silent for `silent` tries, then answers
    /// `then`; each try waits out what it is given, as a real one does.
    /// When each try started, in ms from `start`.
    async fn server(
        start: Instant,
        deadline: Instant,
        silent: usize,
        then: fn() -> Answer,
    ) -> (Answer, Vec<u128>) {
        let mut tries = Vec::new();
        let answer = POLICY
            .ask_until(deadline, async |wait| {
                tries.push(start.elapsed().as_millis());
                if tries.len() > silent {
                    return Ok(then());
                }
                tokio::time::sleep(wait).await;
                Ok(Answer::Silence)
            })
            .await
            .unwrap();
        (answer, tries)
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_server_is_asked_ever_more_often_until_t2_then_until_the_end() {
        // A 120 s lease, renewed from T1 (60 s) until T2 (105 s), rebound
        // until its end: each try waits half the time left, at least 10 s.
        let start = Instant::now();
        let times = POLICY.times(Some(120), None, None);
        tokio::time::sleep(times.t1).await;
        let (renewed, tries) = server(start, start + times.t2, usize::MAX, || Answer::Nak).await;
        assert!(matches!(renewed, Answer::Silence));
        assert_eq!(tries, [60_000, 82_500, 93_750, 103_750]);
        assert_eq!(start.elapsed(), times.t2);
        let (rebound, tries) = server(start, start + times.lease, usize::MAX, || Answer::Nak).await;
        assert!(matches!(rebound, Answer::Silence));
        assert_eq!(tries, [105_000, 115_000]);
        assert_eq!(start.elapsed(), times.lease);
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_answer_ends_the_asking() {
        let start = Instant::now();
        let (answer, tries) = server(start, start + Duration::from_secs(45), 2, || Answer::Nak).await;
        assert!(matches!(answer, Answer::Nak));
        assert_eq!(tries, [0, 22_500, 33_750]);
        assert_eq!(start.elapsed().as_millis(), 33_750, "no wait after the answer");
    }

    #[tokio::test(start_paused = true)]
    async fn past_the_deadline_nobody_is_asked() {
        let start = Instant::now();
        let (answer, tries) = server(start, start, 0, || Answer::Nak).await;
        assert!(matches!(answer, Answer::Silence) && tries.is_empty());
    }
}
