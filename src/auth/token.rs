//! Random secrets (tokens, keys, invitation links) and the hashes under which they are stored.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A fresh secret of 256 bits from the operating system's CSPRNG, URL-safe, with a prefix that
/// tells secret scanners and people what it is (`sbt_` login token, `sbi_` invitation, ...).
pub fn generate(prefix: &str) -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// The stored form of a high-entropy secret: hex SHA-256. A 256-bit random token needs no
/// salt or slow hash; the database never holds the token itself.
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A short, non-reversible tag of a secret for log lines (never log the secret).
pub fn log_tag(secret: &str) -> String {
    hash(secret)[..12].to_string()
}

/// Constant-time equality of two stored hashes.
pub fn hashes_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Prefixes of the kinds of secret.
pub mod prefix {
    pub const LOGIN: &str = "sbt_";
    pub const INVITATION: &str = "sbi_";
    pub const CUSTOMER: &str = "sbc_";
    pub const WS_TICKET: &str = "sbw_";
    pub const ENROLLMENT: &str = "sbe_";
    pub const DEVICE: &str = "sbd_";
    /// The link that confirms a new email address.
    pub const EMAIL_CONFIRM: &str = "sbm_";
    /// The ticket a right invitation code gives for the guest's WebSocket.
    pub const JOIN_TICKET: &str = "sbj_";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_unique_and_prefixed() {
        let a = generate(prefix::LOGIN).unwrap();
        let b = generate(prefix::LOGIN).unwrap();
        assert!(a.starts_with("sbt_"));
        assert_eq!(a.len(), 4 + 43);
        assert_ne!(a, b);
    }

    #[test]
    fn hashes_are_stable_and_compare_in_constant_time() {
        assert_eq!(hash("x"), hash("x"));
        assert!(hashes_equal(&hash("x"), &hash("x")));
        assert!(!hashes_equal(&hash("x"), &hash("y")));
        assert_eq!(log_tag("x").len(), 12);
    }
}
