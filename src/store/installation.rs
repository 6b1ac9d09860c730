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
}
