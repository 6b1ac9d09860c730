//! A token bucket: the traffic limit of one connection (chat messages, stream bytes, agent
//! frames per second, with bursts).

use std::time::Instant;

/// Holds up to `capacity` tokens and gains `rate` per second; a frame spends its cost or is
/// refused.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// `rate` per second, bursts of `burst` (starts full).
    pub fn new(rate: f64, burst: f64) -> Self {
        let capacity = burst.max(rate).max(1.0);
        Self {
            capacity,
            rate: rate.max(0.0),
            tokens: capacity,
            last: Instant::now(),
        }
    }

    /// The contract's shape: `rate` per second with bursts of twice that.
    pub fn per_sec_with_double_burst(rate: f64) -> Self {
        Self::new(rate, rate * 2.0)
    }

    /// Spends `cost` at `now` if the bucket holds it; `false` (nothing spent) otherwise.
    pub fn try_spend_at(&mut self, cost: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        if self.tokens >= cost {
            self.tokens -= cost;
            true
        } else {
            false
        }
    }

    pub fn try_spend(&mut self, cost: f64) -> bool {
        self.try_spend_at(cost, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_of_twice_the_rate_passes_then_the_rate_refills() {
        let start = Instant::now();
        let mut b = TokenBucket::per_sec_with_double_burst(20.0);
        let passed = (0..100).filter(|_| b.try_spend_at(1.0, start)).count();
        assert_eq!(passed, 40);
        assert!(!b.try_spend_at(1.0, start));
        let later = start + Duration::from_millis(500);
        let refilled = (0..100).filter(|_| b.try_spend_at(1.0, later)).count();
        assert_eq!(refilled, 10, "half a second at 20 per second");
    }

    #[test]
    fn a_cost_larger_than_what_is_held_is_refused_without_spending() {
        let now = Instant::now();
        let mut b = TokenBucket::new(100.0, 100.0);
        assert!(!b.try_spend_at(150.0, now));
        assert!(b.try_spend_at(100.0, now));
    }
}
