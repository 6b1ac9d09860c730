//! What belongs to the installation as a whole, not to an account.

use super::{
    Store, StoreResult,
    db::{query, query_scalar},
};

impl Store {
    /// The installation's key check: `sealed` (a known text sealed with this node's
    /// `secret.key`) is stored unless one is stored already, and the stored one is answered.
    /// The first node ever started decides (one statement); every later one compares.
    pub async fn key_check(&self, sealed: &str) -> StoreResult<String> {
        query("INSERT INTO key_check (id, sealed) VALUES (1, ?) ON CONFLICT (id) DO NOTHING")
            .bind(sealed.to_string())
            .execute(&self.pool)
            .await?;
        query_scalar::<String>("SELECT sealed FROM key_check WHERE id = 1")
            .fetch_one(&self.pool)
            .await
    }

    /// The installation's NATS subject prefix: `proposed` is stored unless one is stored
    /// already, and the stored one is answered (the first node of a cluster decides, in one
    /// statement; every later node uses it).
    pub async fn nats_prefix(&self, proposed: &str) -> StoreResult<String> {
        query(
            "INSERT INTO installation (id, nats_prefix) VALUES (1, ?) ON CONFLICT (id) DO NOTHING",
        )
        .bind(proposed.to_string())
        .execute(&self.pool)
        .await?;
        query_scalar::<String>("SELECT nats_prefix FROM installation WHERE id = 1")
            .fetch_one(&self.pool)
            .await
    }
}
