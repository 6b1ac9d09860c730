//! One SQL text, two drivers: the store's queries run on SQLite (the embedded default) or on
//! PostgreSQL, chosen by `database.url`.
//!
//! A query is written once, with `?` placeholders, in the SQL both databases speak (the few
//! places where they differ choose their text by [`Pool::is_postgres`]). Its values are bound
//! through each driver's own encoding, and rows are decoded by each driver with its own type
//! checks: a value bound or read here must have a native mapping in both (`String`, `i64`,
//! `bool`, `DateTime<Utc>`, their `Option`s...). Unlike `sqlx::Any`, which narrows every value
//! to a handful of shared types, nothing is converted on the way: a timestamp is a
//! `TIMESTAMPTZ` on PostgreSQL and stays a timestamp.
//!
//! Writes that must hold once are decided under one writer at a time on either database:
//! SQLite's `BEGIN IMMEDIATE` write lock, and on PostgreSQL a transaction-scoped advisory lock
//! taken by every such write transaction ([`Pool::begin_write`]), so that a read-then-write (a
//! guess counter, a cap, the audit chain's next place) cannot interleave with another. The
//! bulk of the writes, the session reports (chat chunks, joins, leaves) and node heartbeats,
//! read nothing first and go without that lock ([`Pool::begin_append`]), so that many nodes'
//! report writers do not queue behind each other on PostgreSQL.

use std::{borrow::Cow, marker::PhantomData};

use chrono::{DateTime, Utc};
use sqlx::{
    Arguments, ColumnIndex, Decode, Encode, Postgres, Row as _, Sqlite, Type,
    error::BoxDynError,
    postgres::{PgArguments, PgPool, PgRow},
    sqlite::{SqliteArguments, SqlitePool, SqliteRow},
};

use super::StoreResult;

/// The advisory lock every rule-deciding PostgreSQL write transaction holds (an arbitrary
/// constant: "sb-write"); appends go without it ([`Pool::begin_append`]).
pub(crate) const WRITE_LOCK: i64 = 0x7362_2d77_7269_7465;

/// A connection pool of either database.
#[derive(Clone, Debug)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Pool {
    pub fn is_postgres(&self) -> bool {
        matches!(self, Pool::Postgres(_))
    }

    /// A write transaction: SQLite's write lock up front (`BEGIN IMMEDIATE`, waiting up to the
    /// busy timeout), or PostgreSQL's writer lock taken as its first statement.
    pub async fn begin_write(&self) -> StoreResult<Tx> {
        match self {
            Pool::Sqlite(pool) => Ok(Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?)),
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(WRITE_LOCK)
                    .execute(&mut *tx)
                    .await?;
                Ok(Tx::Postgres(tx))
            }
        }
    }

    /// A write transaction for writes that decide no rule by reading first (appends, and
    /// updates whose condition is in the statement): SQLite's write lock up front as for any
    /// write, but on PostgreSQL without the writer lock; row locks still order two updates of
    /// one row, and a conditional UPDATE re-checks its condition on the row it waited for.
    pub async fn begin_append(&self) -> StoreResult<Tx> {
        match self {
            Pool::Sqlite(pool) => Ok(Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?)),
            Pool::Postgres(pool) => Ok(Tx::Postgres(pool.begin().await?)),
        }
    }

    pub async fn close(&self) {
        match self {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }
}

/// An open transaction of either database.
pub enum Tx {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

impl Tx {
    pub async fn commit(self) -> StoreResult<()> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await,
            Tx::Postgres(tx) => tx.commit().await,
        }
    }
}

/// Where a query runs: on the pool, or inside a transaction.
pub enum On<'e> {
    Pool(&'e Pool),
    Tx(&'e mut Tx),
}

impl<'e> From<&'e Pool> for On<'e> {
    fn from(pool: &'e Pool) -> Self {
        On::Pool(pool)
    }
}

impl<'e> From<&'e mut Tx> for On<'e> {
    fn from(tx: &'e mut Tx) -> Self {
        On::Tx(tx)
    }
}

/// A value both drivers encode natively.
pub trait Value<'t>:
    Encode<'t, Sqlite> + Type<Sqlite> + Encode<'t, Postgres> + Type<Postgres> + Clone
{
}
impl<'t, T> Value<'t> for T where
    T: Encode<'t, Sqlite> + Type<Sqlite> + Encode<'t, Postgres> + Type<Postgres> + Clone
{
}

/// A value both drivers decode natively.
pub trait Decodable:
    for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}
impl<T> Decodable for T where
    T: for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}

/// A row of either database.
pub enum Row {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

/// A column by name or by place.
pub trait Column: ColumnIndex<SqliteRow> + ColumnIndex<PgRow> + std::fmt::Debug {}
impl<I> Column for I where I: ColumnIndex<SqliteRow> + ColumnIndex<PgRow> + std::fmt::Debug {}

impl Row {
    /// A column's value, decoded by the row's own driver.
    pub fn try_get<T: Decodable, I: Column>(&self, index: I) -> StoreResult<T> {
        match self {
            Row::Sqlite(row) => row.try_get(index),
            Row::Postgres(row) => row.try_get(index),
        }
    }
}

/// What a write changed.
#[derive(Debug, Clone, Copy)]
pub struct Done {
    rows: u64,
}

impl Done {
    pub fn rows_affected(&self) -> u64 {
        self.rows
    }
}

/// A query with its values bound for both drivers (each value is encoded by both; only the
/// one of the pool it runs on is sent).
pub struct Query {
    sql: Cow<'static, str>,
    sqlite: Result<SqliteArguments, BoxDynError>,
    postgres: Result<PgArguments, BoxDynError>,
}

/// A query written with `?` placeholders.
pub fn query(sql: impl Into<Cow<'static, str>>) -> Query {
    Query {
        sql: sql.into(),
        sqlite: Ok(SqliteArguments::default()),
        postgres: Ok(PgArguments::default()),
    }
}

/// A query whose first column is the answer.
pub fn query_scalar<T: Decodable>(sql: impl Into<Cow<'static, str>>) -> Scalar<T> {
    Scalar {
        query: query(sql),
        out: PhantomData,
    }
}

/// A query whose rows are tuples.
pub fn query_as<T: FromRow>(sql: impl Into<Cow<'static, str>>) -> Typed<T> {
    Typed {
        query: query(sql),
        out: PhantomData,
    }
}

/// `?` placeholders as PostgreSQL's `$1, $2, ...` (none inside quoted literals).
pub fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    let mut quoted = false;
    for c in sql.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    out
}

fn encode_err(e: &BoxDynError) -> sqlx::Error {
    sqlx::Error::Encode(e.to_string().into())
}

impl Query {
    pub fn bind<'t, T: Value<'t>>(mut self, value: T) -> Self {
        if let Ok(args) = &mut self.sqlite
            && let Err(e) = args.add(value.clone())
        {
            self.sqlite = Err(e);
        }
        if let Ok(args) = &mut self.postgres
            && let Err(e) = args.add(value)
        {
            self.postgres = Err(e);
        }
        self
    }

    fn sqlite(self) -> StoreResult<sqlx::query::Query<'static, Sqlite, SqliteArguments>> {
        let args = self.sqlite.map_err(|e| encode_err(&e))?;
        Ok(match self.sql {
            Cow::Borrowed(s) => sqlx::query_with(s, args),
            Cow::Owned(s) => sqlx::query_with(sqlx::AssertSqlSafe(s), args),
        })
    }

    fn postgres(self) -> StoreResult<sqlx::query::Query<'static, Postgres, PgArguments>> {
        let args = self.postgres.map_err(|e| encode_err(&e))?;
        Ok(sqlx::query_with(
            sqlx::AssertSqlSafe(numbered(&self.sql)),
            args,
        ))
    }

    pub async fn execute<'e>(self, on: impl Into<On<'e>>) -> StoreResult<Done> {
        let rows = match on.into() {
            On::Pool(Pool::Sqlite(pool)) => self.sqlite()?.execute(pool).await?.rows_affected(),
            On::Tx(Tx::Sqlite(tx)) => self.sqlite()?.execute(&mut **tx).await?.rows_affected(),
            On::Pool(Pool::Postgres(pool)) => self.postgres()?.execute(pool).await?.rows_affected(),
            On::Tx(Tx::Postgres(tx)) => self.postgres()?.execute(&mut **tx).await?.rows_affected(),
        };
        Ok(Done { rows })
    }

    pub async fn fetch_all<'e>(self, on: impl Into<On<'e>>) -> StoreResult<Vec<Row>> {
        Ok(match on.into() {
            On::Pool(Pool::Sqlite(pool)) => {
                wrap(self.sqlite()?.fetch_all(pool).await?, Row::Sqlite)
            }
            On::Tx(Tx::Sqlite(tx)) => wrap(self.sqlite()?.fetch_all(&mut **tx).await?, Row::Sqlite),
            On::Pool(Pool::Postgres(pool)) => {
                wrap(self.postgres()?.fetch_all(pool).await?, Row::Postgres)
            }
            On::Tx(Tx::Postgres(tx)) => {
                wrap(self.postgres()?.fetch_all(&mut **tx).await?, Row::Postgres)
            }
        })
    }

    pub async fn fetch_optional<'e>(self, on: impl Into<On<'e>>) -> StoreResult<Option<Row>> {
        Ok(match on.into() {
            On::Pool(Pool::Sqlite(pool)) => {
                self.sqlite()?.fetch_optional(pool).await?.map(Row::Sqlite)
            }
            On::Tx(Tx::Sqlite(tx)) => self
                .sqlite()?
                .fetch_optional(&mut **tx)
                .await?
                .map(Row::Sqlite),
            On::Pool(Pool::Postgres(pool)) => self
                .postgres()?
                .fetch_optional(pool)
                .await?
                .map(Row::Postgres),
            On::Tx(Tx::Postgres(tx)) => self
                .postgres()?
                .fetch_optional(&mut **tx)
                .await?
                .map(Row::Postgres),
        })
    }

    pub async fn fetch_one<'e>(self, on: impl Into<On<'e>>) -> StoreResult<Row> {
        self.fetch_optional(on)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }
}

fn wrap<R>(rows: Vec<R>, f: fn(R) -> Row) -> Vec<Row> {
    rows.into_iter().map(f).collect()
}

/// A query answering one value per row.
pub struct Scalar<T> {
    query: Query,
    out: PhantomData<T>,
}

impl<T: Decodable> Scalar<T> {
    pub fn bind<'t, V: Value<'t>>(mut self, value: V) -> Self {
        self.query = self.query.bind(value);
        self
    }

    pub async fn fetch_all<'e>(self, on: impl Into<On<'e>>) -> StoreResult<Vec<T>> {
        self.query
            .fetch_all(on)
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect()
    }

    pub async fn fetch_optional<'e>(self, on: impl Into<On<'e>>) -> StoreResult<Option<T>> {
        self.query
            .fetch_optional(on)
            .await?
            .map(|r| r.try_get(0))
            .transpose()
    }

    pub async fn fetch_one<'e>(self, on: impl Into<On<'e>>) -> StoreResult<T> {
        self.query.fetch_one(on).await?.try_get(0)
    }
}

/// A row read as a tuple, column by column.
pub trait FromRow: Sized {
    fn from_row(row: &Row) -> StoreResult<Self>;
}

macro_rules! tuple_from_row {
    ($($t:ident $i:tt),+) => {
        impl<$($t: Decodable),+> FromRow for ($($t,)+) {
            fn from_row(row: &Row) -> StoreResult<Self> {
                Ok(($(row.try_get::<$t, usize>($i)?,)+))
            }
        }
    };
}
tuple_from_row!(A 0);
tuple_from_row!(A 0, B 1);
tuple_from_row!(A 0, B 1, C 2);
tuple_from_row!(A 0, B 1, C 2, D 3);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5);

/// A query answering tuples.
pub struct Typed<T> {
    query: Query,
    out: PhantomData<T>,
}

impl<T: FromRow> Typed<T> {
    pub fn bind<'t, V: Value<'t>>(mut self, value: V) -> Self {
        self.query = self.query.bind(value);
        self
    }

    pub async fn fetch_all<'e>(self, on: impl Into<On<'e>>) -> StoreResult<Vec<T>> {
        self.query
            .fetch_all(on)
            .await?
            .iter()
            .map(T::from_row)
            .collect()
    }

    pub async fn fetch_optional<'e>(self, on: impl Into<On<'e>>) -> StoreResult<Option<T>> {
        self.query
            .fetch_optional(on)
            .await?
            .as_ref()
            .map(T::from_row)
            .transpose()
    }

    pub async fn fetch_one<'e>(self, on: impl Into<On<'e>>) -> StoreResult<T> {
        T::from_row(&self.query.fetch_one(on).await?)
    }
}

/// SQL assembled piece by piece, values bound where they are pushed (the store's dynamic
/// filters and multi-row inserts).
pub struct Builder {
    sql: String,
    query: Query,
}

impl Builder {
    pub fn new(sql: &str) -> Self {
        Builder {
            sql: sql.to_string(),
            query: query(""),
        }
    }

    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    pub fn push_bind<'t, T: Value<'t>>(&mut self, value: T) -> &mut Self {
        self.sql.push('?');
        let q = std::mem::replace(&mut self.query, query(""));
        self.query = q.bind(value);
        self
    }

    pub fn build(self) -> Query {
        Query {
            sql: Cow::Owned(self.sql),
            ..self.query
        }
    }
}

/// A time that SQLite keeps as sortable RFC 3339 text (microseconds, `Z`: text order is time
/// order) and PostgreSQL as a `TIMESTAMPTZ`; for the tables whose times are compared as text on
/// SQLite.
#[derive(Debug, Clone, Copy)]
pub struct SortableTime(pub DateTime<Utc>);

impl Type<Sqlite> for SortableTime {
    fn type_info() -> <Sqlite as sqlx::Database>::TypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &<Sqlite as sqlx::Database>::TypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
    }
}

impl Encode<'_, Sqlite> for SortableTime {
    fn encode_by_ref(
        &self,
        buf: &mut <Sqlite as sqlx::Database>::ArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, BoxDynError> {
        <String as Encode<'_, Sqlite>>::encode(crate::domain::access::sortable_time(self.0), buf)
    }
}

impl Type<Postgres> for SortableTime {
    fn type_info() -> <Postgres as sqlx::Database>::TypeInfo {
        <DateTime<Utc> as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for SortableTime {
    fn encode_by_ref(
        &self,
        buf: &mut <Postgres as sqlx::Database>::ArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, BoxDynError> {
        <DateTime<Utc> as Encode<'_, Postgres>>::encode_by_ref(&self.0, buf)
    }
}

#[cfg(test)]
mod tests {
    use super::numbered;

    #[test]
    fn placeholders_are_numbered_outside_literals() {
        assert_eq!(
            numbered("SELECT '?' , a FROM t WHERE b = ? AND (? IS NULL OR c = ?)"),
            "SELECT '?' , a FROM t WHERE b = $1 AND ($2 IS NULL OR c = $3)"
        );
        assert_eq!(numbered("it''s ? here"), "it''s $1 here");
    }
}
