//! API keys: `sbk_<8 hex id>_<43 chars secret>_<6 hex checksum>`. The `sbk_` prefix lets secret
//! scanners find leaked keys, the checksum rejects typos without a database look-up, the first
//! 12 characters are the visible prefix that identifies the key, and only a SHA-256 of the whole
//! key is stored.

use sha2::{Digest, Sha256};

use super::token;

pub const PREFIX: &str = "sbk_";
const ID_LEN: usize = 12;
const CHECKSUM_LEN: usize = 6;

fn checksum(body: &str) -> String {
    hex::encode(Sha256::digest(body.as_bytes()))[..CHECKSUM_LEN].to_string()
}

/// A new key and its visible prefix.
pub fn generate() -> anyhow::Result<(String, String)> {
    let mut id = [0u8; 4];
    getrandom::fill(&mut id).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let body = token::generate(&format!("{PREFIX}{}_", hex::encode(id)))?;
    let key = format!("{body}_{}", checksum(&body));
    Ok((key[..ID_LEN].to_string(), key))
}

/// The visible prefix of a well-formed key whose checksum matches; `None` otherwise.
pub fn parse(key: &str) -> Option<&str> {
    if !key.starts_with(PREFIX) || key.len() < ID_LEN + CHECKSUM_LEN + 2 || !key.is_ascii() {
        return None;
    }
    let (body, sum) = key.split_at(key.len() - CHECKSUM_LEN);
    let body = body.strip_suffix('_')?;
    token::hashes_equal(&checksum(body), sum).then(|| &key[..ID_LEN])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_parses_to_its_prefix() {
        let (prefix, key) = generate().unwrap();
        assert!(key.starts_with("sbk_"));
        assert_eq!(prefix.len(), 12);
        assert_eq!(parse(&key), Some(prefix.as_str()));
    }

    #[test]
    fn a_mistyped_key_fails_its_checksum() {
        let (_, key) = generate().unwrap();
        let mut typo = key.clone().into_bytes();
        typo[20] = if typo[20] == b'A' { b'B' } else { b'A' };
        assert_eq!(parse(std::str::from_utf8(&typo).unwrap()), None);
        assert_eq!(parse("sbk_short"), None);
        assert_eq!(parse("sbt_notakey"), None);
    }
}
