//! The audit log's hash chain: each entry of an account carries the SHA-256 of the entry
//! before it, so that changing, removing or inserting an entry anywhere breaks every link
//! after it. The encoding is canonical and documented (docs/security.md) so that an auditor
//! can check an export offline (`scripts/verify-audit-export`).
//!
//! `hash = hex(SHA-256(canonical))` where `canonical` is the compact JSON array
//! `["sb-audit-v1", account_id, seq, id, at, actor_user_id, actor_name, via, action, target,
//! details, prev_hash]`: strings as JSON strings, `seq` a number, absent values `null`, `at` in
//! RFC 3339 with nanoseconds and `Z`, `details` with every object's keys sorted and no
//! whitespace; `prev_hash` of the first entry is 64 zeros.

use sha2::{Digest, Sha256};

/// The `prev_hash` of an account's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The fields of an entry that its hash covers.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainEntry {
    pub account_id: String,
    pub seq: i64,
    pub id: String,
    /// RFC 3339 with nanoseconds and `Z`.
    pub at: String,
    pub actor_user_id: Option<String>,
    pub actor_name: String,
    pub via: String,
    pub action: String,
    pub target: Option<String>,
    pub details: serde_json::Value,
    pub prev_hash: String,
}

/// `details` with every object's keys in sorted order (whatever map the JSON library uses).
pub fn canonical_json(value: &serde_json::Value) -> String {
    fn write(v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::String((*k).clone()).to_string());
                    out.push(':');
                    write(&map[*k], out);
                }
                out.push('}');
            }
            serde_json::Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

impl ChainEntry {
    /// The canonical encoding the hash is taken over.
    pub fn canonical(&self) -> String {
        let s = |v: &str| serde_json::Value::String(v.to_string()).to_string();
        let opt = |v: &Option<String>| v.as_deref().map_or_else(|| "null".to_string(), s);
        format!(
            "[{},{},{},{},{},{},{},{},{},{},{},{}]",
            s("sb-audit-v1"),
            s(&self.account_id),
            self.seq,
            s(&self.id),
            s(&self.at),
            opt(&self.actor_user_id),
            s(&self.actor_name),
            s(&self.via),
            s(&self.action),
            opt(&self.target),
            canonical_json(&self.details),
            s(&self.prev_hash),
        )
    }

    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.canonical().as_bytes()))
    }
}

/// Where a chain breaks first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Break {
    /// The entry at which the chain stops holding.
    pub id: String,
    pub seq: i64,
    /// `hash_mismatch` (the entry was changed), `broken_link` (its `prev_hash` is not the hash
    /// of the entry before: one was removed, changed or put in between), `gap` (a sequence
    /// number is missing or repeated).
    pub reason: &'static str,
}

/// Checks a chain given in `seq` order with the hash stored for each entry; `Ok(head)` is the
/// last entry's hash (the genesis for an empty chain).
pub fn verify(entries: &[(ChainEntry, String)]) -> Result<String, Break> {
    let mut prev = GENESIS.to_string();
    for (expected_seq, (entry, stored)) in (1..).zip(entries.iter()) {
        let broken = |reason| Break {
            id: entry.id.clone(),
            seq: entry.seq,
            reason,
        };
        if entry.seq != expected_seq {
            return Err(broken("gap"));
        }
        if entry.prev_hash != prev {
            return Err(broken("broken_link"));
        }
        if entry.hash() != *stored {
            return Err(broken("hash_mismatch"));
        }
        prev = stored.clone();
    }
    Ok(prev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: i64, prev: &str, action: &str) -> ChainEntry {
        ChainEntry {
            account_id: "a-1".into(),
            seq,
            id: format!("e-{seq}"),
            at: "2026-12-04T10:00:00.000000001Z".into(),
            actor_user_id: Some("u-1".into()),
            actor_name: "Ada \"Admin\"".into(),
            via: "login".into(),
            action: action.into(),
            target: None,
            details: serde_json::json!({"z": 1, "a": {"y": [1, {"d": 2, "c": 3}], "b": "x\ny"}}),
            prev_hash: prev.into(),
        }
    }

    fn chain(n: i64) -> Vec<(ChainEntry, String)> {
        let mut out = Vec::new();
        let mut prev = GENESIS.to_string();
        for seq in 1..=n {
            let e = entry(seq, &prev, "user.created");
            let h = e.hash();
            prev = h.clone();
            out.push((e, h));
        }
        out
    }

    #[test]
    fn the_canonical_form_sorts_keys_and_is_stable() {
        let e = entry(1, GENESIS, "user.created");
        assert_eq!(
            canonical_json(&e.details),
            r#"{"a":{"b":"x\ny","y":[1,{"c":3,"d":2}]},"z":1}"#
        );
        assert!(
            e.canonical()
                .starts_with(r#"["sb-audit-v1","a-1",1,"e-1","#)
        );
        assert_eq!(e.hash(), entry(1, GENESIS, "user.created").hash());
        assert_eq!(e.hash().len(), 64);
    }

    #[test]
    fn an_intact_chain_verifies_and_names_its_head() {
        let c = chain(5);
        assert_eq!(verify(&c), Ok(c[4].1.clone()));
        assert_eq!(verify(&[]), Ok(GENESIS.to_string()));
    }

    #[test]
    fn every_kind_of_tampering_is_caught_at_its_place() {
        // A changed field.
        let mut c = chain(5);
        c[2].0.action = "user.deleted".into();
        assert_eq!(verify(&c).unwrap_err().reason, "hash_mismatch");
        assert_eq!(verify(&c).unwrap_err().seq, 3);
        // A changed field with its hash recomputed: the next link breaks.
        let mut c = chain(5);
        c[2].0.details = serde_json::json!({});
        c[2].1 = c[2].0.hash();
        assert_eq!(verify(&c).unwrap_err().reason, "broken_link");
        assert_eq!(verify(&c).unwrap_err().seq, 4);
        // A removed entry.
        let mut c = chain(5);
        c.remove(1);
        assert_eq!(verify(&c).unwrap_err().reason, "gap");
        // The last entry removed cannot be seen from the rest: the head says so.
        let c = chain(5);
        assert_ne!(verify(&c[..4]), Ok(c[4].1.clone()));
    }
}
