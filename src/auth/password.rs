//! Argon2id password hashing on blocking threads, with a bound on how many run at once.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use argon2::{
    Argon2,
    password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash},
};
use tokio::sync::Semaphore;

use crate::config::Secret;

/// Hashes and verifies passwords. `Argon2::default()` is argon2id, m=19456 KiB, t=2, p=1
/// (OWASP's minimum); each hash holds ~19 MiB, so at most `max_parallel` run at once.
#[derive(Clone)]
pub struct PasswordHasherPool {
    permits: Arc<Semaphore>,
    /// Hashes running or waiting for a permit, and how many may be.
    in_flight: Arc<AtomicUsize>,
    max_in_flight: usize,
    /// A real hash verified when the user is unknown, so that the answer takes as long.
    dummy_hash: Arc<String>,
}

impl PasswordHasherPool {
    /// At most `max_parallel` hashes run at once and `max_queued` more wait; a hash beyond
    /// that fails at once with `Busy` (answered 503 with Retry-After), so a flood of logins
    /// cannot queue work (and ~19 MiB each) without bound.
    pub fn new(max_parallel: usize, max_queued: usize) -> anyhow::Result<Self> {
        let dummy = hash_now(b"support-broker timing equaliser")?;
        Ok(Self {
            in_flight: Arc::new(AtomicUsize::new(0)),
            max_in_flight: max_parallel.max(1) + max_queued,
            permits: Arc::new(Semaphore::new(max_parallel.max(1))),
            dummy_hash: Arc::new(dummy),
        })
    }

    /// The PHC string of `password`.
    pub async fn hash(&self, password: &Secret) -> anyhow::Result<String> {
        let _slot = self.enter()?;
        let _permit = self.permits.acquire().await?;
        let pw = password.expose().as_bytes().to_vec();
        tokio::task::spawn_blocking(move || hash_now(&pw)).await?
    }

    /// Whether `password` matches `phc`; with `phc = None` a dummy hash is verified (and fails)
    /// so that an unknown user costs the same time as a wrong password.
    pub async fn verify(&self, password: &Secret, phc: Option<&str>) -> anyhow::Result<bool> {
        let _slot = self.enter()?;
        let _permit = self.permits.acquire().await?;
        let known = phc.is_some();
        let phc = phc.map_or_else(|| self.dummy_hash.as_str().to_string(), str::to_string);
        let pw = password.expose().as_bytes().to_vec();
        let ok = tokio::task::spawn_blocking(move || verify_now(&pw, &phc)).await??;
        Ok(ok && known)
    }
}

impl PasswordHasherPool {
    /// Takes a place in the bounded queue, or `Busy` when it is full.
    fn enter(&self) -> Result<Slot, Busy> {
        let taken = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_in_flight).then_some(n + 1)
            });
        match taken {
            Ok(_) => Ok(Slot(self.in_flight.clone())),
            Err(_) => Err(Busy),
        }
    }
}

/// The hashing queue is full: try again in a moment.
#[derive(Debug, thiserror::Error)]
#[error("password hashing is busy")]
pub struct Busy;

/// A place in the hashing queue, given back on drop.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn hash_now(password: &[u8]) -> anyhow::Result<String> {
    let hash: PasswordHash = Argon2::default()
        .hash_password(password)
        .map_err(|e| anyhow::anyhow!("argon2 hash failed: {e}"))?;
    Ok(hash.to_string())
}

fn verify_now(password: &[u8], phc: &str) -> anyhow::Result<bool> {
    let parsed =
        PasswordHash::new(phc).map_err(|e| anyhow::anyhow!("stored hash unreadable: {e}"))?;
    Ok(Argon2::default().verify_password(password, &parsed).is_ok())
}

/// Checks a new password's length (8..=256 characters).
pub fn acceptable(password: &str) -> bool {
    (8..=256).contains(&password.chars().count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_answers_busy_at_once_and_frees_its_places() {
        let pool = PasswordHasherPool::new(1, 1).unwrap();
        let pw = Secret::new("correct horse");
        let (a, b, c) = tokio::join!(pool.hash(&pw), pool.hash(&pw), pool.hash(&pw));
        let busy = [&a, &b, &c]
            .iter()
            .filter(|r| r.as_ref().err().is_some_and(|e| e.is::<Busy>()))
            .count();
        assert_eq!(busy, 1, "one runs, one waits, the third is refused");
        assert!(pool.hash(&pw).await.is_ok(), "places are given back");
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let pool = PasswordHasherPool::new(2, 4).unwrap();
        let hash = pool.hash(&Secret::new("correct horse")).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(
            pool.verify(&Secret::new("correct horse"), Some(&hash))
                .await
                .unwrap()
        );
        assert!(
            !pool
                .verify(&Secret::new("wrong horse"), Some(&hash))
                .await
                .unwrap()
        );
        assert!(
            !pool
                .verify(&Secret::new("correct horse"), None)
                .await
                .unwrap()
        );
    }
}
