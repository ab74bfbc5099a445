//! The pace of the service's retries (a dead DHCP agent replaced, a lost
//! link repaired): one that comes within a while of the last waits 1 s,
//! then 2, 4, ... up to a minute; one that comes after that long is a
//! first one again.

use std::time::{Duration, Instant};

const FIRST_WAIT: Duration = Duration::from_secs(1);
const MAX_WAIT: Duration = Duration::from_secs(60);

pub struct Backoff {
    /// When the last try was due.
    last: Instant,
    /// The wait before the next, if it comes soon.
    wait: Duration,
}

impl Backoff {
    /// A first try, at `now`.
    pub fn start(now: Instant) -> Backoff {
        Backoff { last: now, wait: FIRST_WAIT }
    }

    /// Another try at `now`: the wait before it if it comes within
    /// `steady` of the last (the next wait doubled), None if the last held.
    pub fn again(&mut self, now: Instant, steady: Duration) -> Option<Duration> {
        if now >= self.last + steady {
            return None;
        }
        let wait = self.wait;
        self.wait = (wait * 2).min(MAX_WAIT);
        self.last = now + wait;
        Some(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_a_minute_and_a_steady_while_starts_over() {
        let t0 = Instant::now();
        let steady = Duration::from_secs(10);
        let mut b = Backoff::start(t0);
        let secs = |d: Option<Duration>| d.map(|d| d.as_secs());
        assert_eq!(secs(b.again(t0, steady)), Some(1));
        assert_eq!(secs(b.again(t0 + Duration::from_secs(1), steady)), Some(2));
        let mut last = t0 + Duration::from_secs(3);
        for _ in 0..8 {
            b.again(last, steady);
            last += Duration::from_secs(1);
        }
        assert_eq!(secs(b.again(last, steady)), Some(60));
        assert_eq!(b.again(last + Duration::from_secs(200), steady), None);
    }
}
