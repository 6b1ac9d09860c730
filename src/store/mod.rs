//! All SQL of the broker. One `Store` type over the embedded SQLite database; the queries are
//! written in SQL that PostgreSQL runs too (text ids, RFC 3339 times), so a PostgreSQL backend
//! can sit behind the same type next.

mod access;
mod accounts;
mod api_keys;
mod audit;
mod devices;
mod groups;
mod invitation_codes;
mod outbox;
mod policies;
mod reports;
mod second_factor;
mod sessions;
mod users;

use std::{
    ops::{Deref, DerefMut},
    path::Path,
    str::FromStr,
    sync::{Arc, Mutex},
    time::Duration,
};

use sqlx::{
    Row,
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
        SqliteSynchronous,
    },
};
use uuid::Uuid;

pub use access::{AccessRequestRecord, Assignment, Direction, GrantRecord};
pub use accounts::{AccountRecord, NewAccount, NewUser, username_key};
pub use api_keys::ApiKeyRecord;
pub use audit::{AuditEntry, AuditFilter, AuditRecord};
pub use devices::{
    CommandRecord, DeviceRecord, EnrollRefusal, EnrollingDevice, EnrollmentCodeRecord,
};
pub use groups::GroupRecord;
pub use invitation_codes::InvitationCodeVerdict;
pub use outbox::OutboxMessage;
pub use policies::PolicyRecord;
pub use reports::{ChatChunk, ChatLine, ReportEvent, SessionReport};
pub use second_factor::{ChallengeRecord, CodeCheck, CodeVerdict, TotpState};
pub use sessions::{EndedFilter, InvitationRecord, NewInvitation, SessionRecord};
pub use users::{EmailChangeRefusal, TokenGrant, TokenPrincipal, UsedTicket, UserRecord};

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
    /// Audit entries that the next committed write transaction appends (see [`Store::audited`]).
    audit: Option<Arc<Mutex<Vec<AuditEntry>>>>,
}

/// A write transaction. Its commit first appends the audit entries of the handle it was begun
/// on, so that an action and the entries recording it are written together or not at all.
pub(crate) struct WriteTx {
    tx: sqlx::Transaction<'static, sqlx::Sqlite>,
    audit: Option<Arc<Mutex<Vec<AuditEntry>>>>,
}

impl WriteTx {
    pub(crate) async fn commit(mut self) -> StoreResult<()> {
        let entries = match &self.audit {
            Some(pending) => {
                std::mem::take(&mut *pending.lock().unwrap_or_else(|e| e.into_inner()))
            }
            None => Vec::new(),
        };
        for entry in &entries {
            audit::append(&mut self.tx, entry).await?;
        }
        self.tx.commit().await
    }
}

impl Deref for WriteTx {
    type Target = sqlx::SqliteConnection;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

/// Result of store calls.
pub type StoreResult<T> = Result<T, sqlx::Error>;

impl Store {
    /// Opens (creating if needed) `<data_dir>/broker.db` and runs the embedded migrations.
    pub async fn open(data_dir: &Path) -> anyhow::Result<Self> {
        crate::private_fs::create_private_dir(data_dir)?;
        let options = SqliteConnectOptions::new()
            .filename(data_dir.join("broker.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        // SQLite creates its -wal and -shm files with the database file's mode.
        for name in ["broker.db", "broker.db-wal", "broker.db-shm"] {
            let file = data_dir.join(name);
            if file.exists() {
                crate::private_fs::restrict_file(&file)?;
            }
        }
        let store = Self { pool, audit: None };
        // Entries of a version before the hash chain join it once, in their order.
        let sealed = store.seal_audit_chain().await?;
        if sealed > 0 {
            tracing::info!(
                entries = sealed,
                "sealed earlier audit entries into the hash chain"
            );
        }
        Ok(store)
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// A transaction that writes: `BEGIN IMMEDIATE` takes SQLite's write lock up front (waiting
    /// up to the busy timeout), so a transaction that reads and then writes cannot fail with
    /// SQLITE_BUSY when another connection wrote in between, as a deferred one can.
    async fn write_tx(&self) -> StoreResult<WriteTx> {
        Ok(WriteTx {
            tx: self.pool.begin_with("BEGIN IMMEDIATE").await?,
            audit: self.audit.clone(),
        })
    }

    /// A handle whose next committed write also appends `entries` to the audit log, in the
    /// same transaction: the action and its record land together or not at all. A write that
    /// is refused or fails commits nothing and records nothing.
    pub fn audited(&self, entries: Vec<AuditEntry>) -> Store {
        Store {
            pool: self.pool.clone(),
            audit: Some(Arc::new(Mutex::new(entries))),
        }
    }

    /// One write statement. On an audited handle it runs in a write transaction that appends
    /// the entries too, committed only when the statement changed a row (a write that found
    /// nothing to do records nothing).
    async fn write_one(
        &self,
        query: sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    ) -> StoreResult<sqlx::sqlite::SqliteQueryResult> {
        if self.audit.is_none() {
            return query.execute(&self.pool).await;
        }
        let mut tx = self.write_tx().await?;
        let done = query.execute(&mut *tx).await?;
        if done.rows_affected() > 0 {
            tx.commit().await?;
        }
        Ok(done)
    }

    /// How many of the entries given to [`Store::audited`] no write has committed yet.
    pub fn unwritten_audit(&self) -> usize {
        self.audit.as_ref().map_or(0, |pending| {
            pending.lock().unwrap_or_else(|e| e.into_inner()).len()
        })
    }

    /// The pool, for tests that set up rows no current code path writes.
    #[cfg(test)]
    pub(crate) fn pool_for_tests(&self) -> &SqlitePool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Reads a UUID stored as text.
fn get_uuid(row: &SqliteRow, col: &str) -> StoreResult<Uuid> {
    let s: String = row.try_get(col)?;
    Uuid::from_str(&s).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// Reads an optional UUID stored as text.
fn get_opt_uuid(row: &SqliteRow, col: &str) -> StoreResult<Option<Uuid>> {
    let s: Option<String> = row.try_get(col)?;
    s.map(|s| Uuid::from_str(&s).map_err(|e| sqlx::Error::Decode(Box::new(e))))
        .transpose()
}

/// Reads a JSON document stored as text.
fn get_json<T: serde::de::DeserializeOwned>(row: &SqliteRow, col: &str) -> StoreResult<T> {
    let s: String = row.try_get(col)?;
    serde_json::from_str(&s).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn to_json<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

/// Which "once ever" rule refused a user write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    Username,
    Email,
}

/// A user write refused as a duplicate (by the database's unique index, the final word under
/// concurrency), or a database failure.
#[derive(Debug, thiserror::Error)]
pub enum UserWriteError {
    #[error("{0:?} taken")]
    Taken(Taken),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Whether an error is a unique-constraint violation (a duplicate).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}
