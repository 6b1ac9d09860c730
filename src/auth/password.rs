//! Argon2id password hashing on blocking threads, with a bound on how many run at once.

use std::sync::Arc;

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
    /// A real hash verified when the user is unknown, so that the answer takes as long.
    dummy_hash: Arc<String>,
}

impl PasswordHasherPool {
    pub fn new(max_parallel: usize) -> anyhow::Result<Self> {
        let dummy = hash_now(b"support-broker timing equaliser")?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(max_parallel.max(1))),
            dummy_hash: Arc::new(dummy),
        })
    }

    /// The PHC string of `password`.
    pub async fn hash(&self, password: &Secret) -> anyhow::Result<String> {
        let _permit = self.permits.acquire().await?;
        let pw = password.expose().as_bytes().to_vec();
        tokio::task::spawn_blocking(move || hash_now(&pw)).await?
    }

    /// Whether `password` matches `phc`; with `phc = None` a dummy hash is verified (and fails)
    /// so that an unknown user costs the same time as a wrong password.
    pub async fn verify(&self, password: &Secret, phc: Option<&str>) -> anyhow::Result<bool> {
        let _permit = self.permits.acquire().await?;
        let known = phc.is_some();
        let phc = phc.map_or_else(|| self.dummy_hash.as_str().to_string(), str::to_string);
        let pw = password.expose().as_bytes().to_vec();
        let ok = tokio::task::spawn_blocking(move || verify_now(&pw, &phc)).await??;
        Ok(ok && known)
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
    async fn a_hash_verifies_its_password_only() {
        let pool = PasswordHasherPool::new(2).unwrap();
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
