//! All SQL of the broker. One `Store` type over the embedded SQLite database (the default) or
//! PostgreSQL, chosen by `database.url`; the queries are written once, in the SQL both speak,
//! and run through each driver's own types (see [`db`]).

mod access;
mod accounts;
mod api_keys;
mod audit;
pub mod db;
mod devices;
mod groups;
mod installation;
mod invitation_codes;
pub mod migrate;
mod outbox;
mod policies;
mod reports;
mod second_factor;
mod sessions;
mod users;

use std::{
    path::Path,
    str::FromStr,
    sync::{Arc, Mutex},
    time::Duration,
};

use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};
use uuid::Uuid;

use db::{On, Pool, Row, Tx, query};

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
pub use sessions::{EndedFilter, InvitationRecord, NewInvitation, Recovery, SessionRecord};
pub use users::{EmailChangeRefusal, TokenGrant, TokenPrincipal, UsedTicket, UserRecord};

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    /// Audit entries that the next committed write transaction appends (see [`Store::audited`]).
    audit: Option<Arc<Mutex<Vec<AuditEntry>>>>,
}

/// A write transaction. Its commit first appends the audit entries of the handle it was begun
/// on, so that an action and the entries recording it are written together or not at all.
pub(crate) struct WriteTx {
    tx: Tx,
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

impl<'e> From<&'e mut WriteTx> for On<'e> {
    fn from(tx: &'e mut WriteTx) -> Self {
        On::Tx(&mut tx.tx)
    }
}

/// Result of store calls.
pub type StoreResult<T> = Result<T, sqlx::Error>;

impl Store {
    /// Opens the database `url` names (`postgres://...`), or, when it is empty or `sqlite:`,
    /// the embedded `<data_dir>/broker.db`; creates and migrates its schema either way.
    pub async fn connect(url: &str, data_dir: &Path) -> anyhow::Result<Self> {
        let url = url.trim();
        // The data dir holds the key, the outbox and recordings on either backend.
        crate::private_fs::create_private_dir(data_dir)?;
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Self::open_postgres(url).await;
        }
        if !(url.is_empty() || url == "sqlite:" || url == "sqlite://") {
            anyhow::bail!(
                "database.url: empty (SQLite under the data dir) or postgres://user@host/database"
            );
        }
        Self::open(data_dir).await
    }

    /// Connects to PostgreSQL and runs its migrations.
    pub async fn open_postgres(url: &str) -> anyhow::Result<Self> {
        let options: PgConnectOptions = url.parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Self::ready(Pool::Postgres(pool)).await
    }

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
        Self::ready(Pool::Sqlite(pool)).await
    }

    async fn ready(pool: Pool) -> anyhow::Result<Self> {
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
        query("SELECT 1").execute(&self.pool).await.map(|_| ())
    }

    /// A transaction that writes, under the database's one writer lock ([`Pool::begin_write`]):
    /// a transaction that reads and then writes cannot interleave with another.
    async fn write_tx(&self) -> StoreResult<WriteTx> {
        Ok(WriteTx {
            tx: self.pool.begin_write().await?,
            audit: self.audit.clone(),
        })
    }

    /// A write transaction for appends (no rule decided by reading first: see
    /// [`db::Pool::begin_append`]); on an audited handle a writer's transaction, as the audit
    /// chain needs.
    async fn append_tx(&self) -> StoreResult<WriteTx> {
        if self.audit.is_some() {
            return self.write_tx().await;
        }
        Ok(WriteTx {
            tx: self.pool.begin_append().await?,
            audit: None,
        })
    }

    /// Which database this is.
    pub fn backend(&self) -> &'static str {
        if self.pool.is_postgres() {
            "postgres"
        } else {
            "sqlite"
        }
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
    /// nothing to do records nothing). On PostgreSQL it always takes the writer lock: a
    /// statement that counts before it inserts (a cap) must not run beside another.
    async fn write_one(&self, query: db::Query) -> StoreResult<db::Done> {
        if self.audit.is_none() && !self.pool.is_postgres() {
            return query.execute(&self.pool).await;
        }
        let mut tx = self.write_tx().await?;
        let done = query.execute(&mut tx).await?;
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
    pub(crate) fn pool_for_tests(&self) -> &Pool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Reads a UUID stored as text.
fn get_uuid(row: &Row, col: &str) -> StoreResult<Uuid> {
    let s: String = row.try_get(col)?;
    Uuid::from_str(&s).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// Reads an optional UUID stored as text.
fn get_opt_uuid(row: &Row, col: &str) -> StoreResult<Option<Uuid>> {
    let s: Option<String> = row.try_get(col)?;
    s.map(|s| Uuid::from_str(&s).map_err(|e| sqlx::Error::Decode(Box::new(e))))
        .transpose()
}

/// Reads a JSON document stored as text.
fn get_json<T: serde::de::DeserializeOwned>(row: &Row, col: &str) -> StoreResult<T> {
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

/// The store of a unit test: SQLite in a temporary directory, or, when `SB_TEST_POSTGRES_URL`
/// names a PostgreSQL server (as `scripts/postgres-suite` does), a database of its own there,
/// dropped with it.
#[cfg(test)]
pub(crate) mod testing {
    use super::Store;

    pub struct TestStore {
        pub dir: tempfile::TempDir,
        url: String,
        server: Option<(String, String)>,
    }

    impl TestStore {
        pub async fn new() -> Self {
            let dir = tempfile::tempdir().expect("temp dir");
            let server = std::env::var("SB_TEST_POSTGRES_URL")
                .ok()
                .filter(|u| !u.trim().is_empty());
            let Some(server) = server else {
                return TestStore {
                    dir,
                    url: String::new(),
                    server: None,
                };
            };
            let name = format!("sb_unit_{}", uuid::Uuid::new_v4().simple());
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&server)
                .await
                .expect("the PostgreSQL server of SB_TEST_POSTGRES_URL answers");
            sqlx::Executor::execute(
                &mut conn,
                sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
            )
            .await
            .expect("a test database is created");
            // Durability of PostgreSQL itself is not under test: no fsync wait per commit.
            sqlx::Executor::execute(
                &mut conn,
                sqlx::AssertSqlSafe(format!(
                    "ALTER DATABASE {name} SET synchronous_commit = off"
                )),
            )
            .await
            .expect("the test database is set up");
            let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
            TestStore {
                dir,
                url: format!("{base}/{name}"),
                server: Some((server.clone(), name)),
            }
        }

        /// The database's URL when it is PostgreSQL.
        pub fn postgres_url(&self) -> Option<&str> {
            self.server.as_ref().map(|_| self.url.as_str())
        }

        /// The store, opened (again) on the same database.
        pub async fn open(&self) -> Store {
            Store::connect(&self.url, self.dir.path())
                .await
                .expect("the store opens")
        }
    }

    impl Drop for TestStore {
        fn drop(&mut self) {
            let Some((server, name)) = self.server.take() else {
                return;
            };
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime");
                rt.block_on(async move {
                    if let Ok(mut conn) =
                        <sqlx::PgConnection as sqlx::Connection>::connect(&server).await
                    {
                        let _ = sqlx::Executor::execute(
                            &mut conn,
                            sqlx::AssertSqlSafe(format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            )),
                        )
                        .await;
                    }
                });
            })
            .join();
        }
    }
}
