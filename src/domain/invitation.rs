//! The invitation of an external technician as a state machine: pending, then exactly one of
//! redeemed, expired or revoked.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pending,
    Redeemed,
    Expired,
    Revoked,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Redeemed => "redeemed",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Redeemed, Self::Expired, Self::Revoked]
            .into_iter()
            .find(|o| o.as_str() == s)
    }
}

/// Why an invitation cannot be used (answered as 410 with this code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Used,
    Expired,
    Revoked,
}

impl Refusal {
    pub fn code(self) -> &'static str {
        match self {
            Self::Used => "invitation_used",
            Self::Expired => "invitation_expired",
            Self::Revoked => "invitation_revoked",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::Used => "this invitation link has already been used",
            Self::Expired => "this invitation link has expired",
            Self::Revoked => "this invitation link was withdrawn",
        }
    }
}

/// The state of one invitation; transitions refuse illegal moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invitation {
    pub outcome: Outcome,
    pub expires_at: DateTime<Utc>,
}

impl Invitation {
    pub fn new(expires_at: DateTime<Utc>) -> Self {
        Self {
            outcome: Outcome::Pending,
            expires_at,
        }
    }

    /// Whether it may be used at `now`; an unused invitation past its expiry counts as expired.
    pub fn usable(&self, now: DateTime<Utc>) -> Result<(), Refusal> {
        match self.outcome {
            Outcome::Pending if now >= self.expires_at => Err(Refusal::Expired),
            Outcome::Pending => Ok(()),
            Outcome::Redeemed => Err(Refusal::Used),
            Outcome::Expired => Err(Refusal::Expired),
            Outcome::Revoked => Err(Refusal::Revoked),
        }
    }

    /// Uses the invitation up: only once, only before expiry.
    pub fn redeem(&mut self, now: DateTime<Utc>) -> Result<(), Refusal> {
        self.usable(now)?;
        self.outcome = Outcome::Redeemed;
        Ok(())
    }

    /// Withdraws a pending invitation; `false` when it was no longer pending.
    pub fn revoke(&mut self) -> bool {
        self.finish(Outcome::Revoked)
    }

    /// Marks a pending invitation expired; `false` when it was no longer pending.
    pub fn expire(&mut self) -> bool {
        self.finish(Outcome::Expired)
    }

    fn finish(&mut self, outcome: Outcome) -> bool {
        if self.outcome == Outcome::Pending {
            self.outcome = outcome;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn an_invitation_is_redeemed_once() {
        let now = Utc::now();
        let mut inv = Invitation::new(now + Duration::hours(2));
        assert_eq!(inv.redeem(now), Ok(()));
        assert_eq!(inv.redeem(now), Err(Refusal::Used));
        assert!(!inv.revoke());
    }

    #[test]
    fn an_expired_invitation_cannot_be_redeemed() {
        let now = Utc::now();
        let mut inv = Invitation::new(now - Duration::seconds(1));
        assert_eq!(inv.redeem(now), Err(Refusal::Expired));
        assert!(inv.expire());
        assert_eq!(inv.usable(now), Err(Refusal::Expired));
    }

    #[test]
    fn a_revoked_invitation_stays_revoked() {
        let now = Utc::now();
        let mut inv = Invitation::new(now + Duration::hours(1));
        assert!(inv.revoke());
        assert!(!inv.expire());
        assert_eq!(inv.redeem(now), Err(Refusal::Revoked));
    }
}
