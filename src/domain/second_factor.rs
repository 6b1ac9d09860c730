//! The rules of the code step of a login: codes, how many wrong guesses burn a code or lock
//! the step, and how many codes may be sent.

use chrono::{DateTime, Duration, Utc};

/// Wrong guesses that burn one code.
pub const BURN_AFTER: u32 = 3;
/// Consecutive wrong guesses (across codes) that lock the code step.
pub const LOCK_AFTER: u32 = 10;
/// How long the code step stays locked.
pub const LOCK_FOR: Duration = Duration::minutes(15);
/// The window of the send cap.
pub const SEND_WINDOW: Duration = Duration::minutes(10);

/// The per-user guard of the code step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Guard {
    pub consecutive_failures: u32,
    pub locked_until: Option<DateTime<Utc>>,
}

/// What a wrong guess leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wrong {
    /// Try again with the same code.
    Invalid,
    /// The code is used up; a new login is needed.
    Burned,
    /// The code step is locked (answer 429).
    Locked,
}

impl Guard {
    /// Seconds until the lock ends, when locked at `now`.
    pub fn locked(&self, now: DateTime<Utc>) -> Option<u64> {
        self.locked_until
            .filter(|until| *until > now)
            .map(|until| (until - now).num_seconds().max(1) as u64)
    }
}

/// What a wrong guess leads to, given the counts after it was counted: the code's wrong
/// guesses and the user's consecutive failures (both incremented by the database).
pub fn judge_wrong(code_wrong_after: u32, failures_after: u32) -> Wrong {
    if failures_after >= LOCK_AFTER {
        Wrong::Locked
    } else if code_wrong_after >= BURN_AFTER {
        Wrong::Burned
    } else {
        Wrong::Invalid
    }
}

/// Whether another code may be sent, given when earlier codes were sent; `Err(seconds)` to
/// wait otherwise.
pub fn may_send(sent: &[DateTime<Utc>], cap: u32, now: DateTime<Utc>) -> Result<(), u64> {
    let mut recent: Vec<&DateTime<Utc>> = sent.iter().filter(|t| now - **t < SEND_WINDOW).collect();
    if (recent.len() as u32) < cap.max(1) {
        return Ok(());
    }
    recent.sort();
    let oldest = recent[recent.len() - cap.max(1) as usize];
    Err(((*oldest + SEND_WINDOW) - now).num_seconds().max(1) as u64)
}

/// A code of `digits` decimal digits from the operating system's CSPRNG, uniformly drawn.
pub fn generate_code(digits: u32) -> anyhow::Result<String> {
    let digits = digits.clamp(5, 8);
    let modulus = 10u32.pow(digits);
    // Reject the top sliver of u32 so that every code is equally likely.
    let limit = u32::MAX - (u32::MAX % modulus);
    loop {
        let n = getrandom::u32().map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        if n < limit {
            return Ok(format!("{:0width$}", n % modulus, width = digits as usize));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_wrong_guesses_burn_a_code() {
        assert_eq!(judge_wrong(1, 1), Wrong::Invalid);
        assert_eq!(judge_wrong(2, 2), Wrong::Invalid);
        assert_eq!(judge_wrong(3, 3), Wrong::Burned);
    }

    #[test]
    fn ten_consecutive_wrong_guesses_lock_across_codes() {
        for failures in 1..LOCK_AFTER {
            assert_ne!(judge_wrong(1 + failures % 3, failures), Wrong::Locked);
        }
        assert_eq!(judge_wrong(1, LOCK_AFTER), Wrong::Locked);
        let now = Utc::now();
        let g = Guard {
            consecutive_failures: 0,
            locked_until: Some(now + LOCK_FOR),
        };
        assert_eq!(g.locked(now), Some(900));
        assert_eq!(g.locked(now + LOCK_FOR), None);
    }

    #[test]
    fn sends_are_capped_per_window() {
        let now = Utc::now();
        let sent = [
            now - Duration::minutes(9),
            now - Duration::minutes(2),
            now - Duration::minutes(1),
        ];
        assert_eq!(may_send(&sent, 3, now), Err(60));
        assert_eq!(may_send(&sent[1..], 3, now), Ok(()));
        assert_eq!(may_send(&[now - Duration::minutes(11)], 1, now), Ok(()));
    }

    #[test]
    fn codes_have_the_configured_digits() {
        for _ in 0..100 {
            let c = generate_code(5).unwrap();
            assert_eq!(c.len(), 5);
            assert!(c.chars().all(|d| d.is_ascii_digit()));
        }
        assert_eq!(generate_code(8).unwrap().len(), 8);
    }
}
