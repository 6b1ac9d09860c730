//! `support-broker migrate`: an installation's SQLite database copied into PostgreSQL, table by
//! table, in one PostgreSQL transaction, with the row count of every table checked before it
//! commits. A target that holds any row is refused, so that nothing is merged or overwritten.
//!
//! The source is read in one read transaction (a consistent snapshot even if a broker still
//! writes to it; stop the broker first all the same, or what it writes later is not copied).
//! Each value is converted by the type of its PostgreSQL column: SQLite integers become
//! booleans or bigints, its time texts `TIMESTAMPTZ`. The foreign keys of the PostgreSQL schema
//! are deferrable, so tables are copied in any order and checked once, at commit.

use std::{path::Path, str::FromStr, time::Duration};

use anyhow::{Context, anyhow, bail};
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use sqlx::{
    Connection, Postgres, QueryBuilder, Row, TypeInfo, ValueRef,
    postgres::PgConnection,
    sqlite::{SqliteConnectOptions, SqliteConnection, SqliteRow},
};

/// Rows sent to PostgreSQL in one INSERT (well under its 65,535 parameters per statement).
const BATCH_ROWS: usize = 500;

/// One table copied: its name and the rows in it on both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub table: String,
    pub rows: i64,
}

/// The SQLite file of `source`: a data dir (its `broker.db`) or the file itself.
fn sqlite_file(source: &Path) -> std::path::PathBuf {
    if source.is_dir() {
        source.join("broker.db")
    } else {
        source.to_path_buf()
    }
}

/// Copies every table of the SQLite database at `source` into the empty PostgreSQL database at
/// `target` (its schema created by the broker's migrations). `progress` hears of each table as
/// it is done.
pub async fn sqlite_to_postgres(
    source: &Path,
    target: &str,
    mut progress: impl FnMut(&Copied),
) -> anyhow::Result<Vec<Copied>> {
    let file = sqlite_file(source);
    if !file.is_file() {
        bail!("no SQLite database at {}", file.display());
    }
    let options = SqliteConnectOptions::new()
        .filename(&file)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true);
    let mut sqlite = SqliteConnection::connect_with(&options)
        .await
        .with_context(|| format!("opening {}", file.display()))?;
    // The source at this binary's schema (what a start of the broker would do to it).
    sqlx::migrate!("./migrations/sqlite")
        .run(&mut sqlite)
        .await
        .context("bringing the SQLite schema up to date")?;

    let mut pg = PgConnection::connect(target)
        .await
        .context("connecting to the PostgreSQL target")?;
    sqlx::migrate!("./migrations/postgres")
        .run(&mut pg)
        .await
        .context("creating the schema in the PostgreSQL target")?;

    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
           AND table_name <> '_sqlx_migrations'
         ORDER BY table_name",
    )
    .fetch_all(&mut pg)
    .await?;
    let source_tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table'
           AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(&mut sqlite)
    .await?;
    if let Some(missing) = source_tables.iter().find(|t| !tables.contains(t)) {
        bail!("table {missing} of the source has no place in the PostgreSQL schema");
    }

    // Refused unless empty: a copy never merges into an installation.
    for table in &tables {
        let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {}",
            quoted(table)
        )))
        .fetch_one(&mut pg)
        .await?;
        if rows > 0 {
            bail!(
                "the target is not empty ({table} has {rows} rows): migrate copies into a new database only"
            );
        }
    }

    let mut read = sqlite.begin().await?;
    let mut write = pg.begin().await?;
    sqlx::query("SET CONSTRAINTS ALL DEFERRED")
        .execute(&mut *write)
        .await?;
    let mut copied = Vec::new();
    for table in &tables {
        let columns: Vec<(String, String)> = sqlx::query_as(
            "SELECT column_name::text, data_type::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        )
        .bind(table)
        .fetch_all(&mut *write)
        .await?;
        if !source_tables.contains(table) {
            // A table only PostgreSQL has would be a schema out of step: say so.
            bail!("table {table} of the PostgreSQL schema is missing in the source");
        }
        let list = columns
            .iter()
            .map(|(name, _)| quoted(name))
            .collect::<Vec<_>>()
            .join(", ");
        let select = format!("SELECT {list} FROM {} ORDER BY rowid", quoted(table));
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(select)).fetch(&mut *read);
        let mut read_count: i64 = 0;
        let mut batch: Vec<Vec<Value>> = Vec::with_capacity(BATCH_ROWS);
        loop {
            let row = rows
                .try_next()
                .await
                .with_context(|| format!("reading {table}"))?;
            if let Some(row) = &row {
                read_count += 1;
                let mut values = columns
                    .iter()
                    .enumerate()
                    .map(|(i, (name, ty))| {
                        convert(row, i, ty).with_context(|| format!("{table}.{name}"))
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                if table == "audit_log" {
                    keep_chain_time(&columns, &mut values)?;
                }
                batch.push(values);
            }
            if batch.len() == BATCH_ROWS || (row.is_none() && !batch.is_empty()) {
                let mut insert: QueryBuilder<Postgres> =
                    QueryBuilder::new(format!("INSERT INTO {} ({list}) ", quoted(table)));
                insert.push_values(batch.drain(..), |mut row, values| {
                    for value in values {
                        value.bind(&mut row);
                    }
                });
                insert
                    .build()
                    .execute(&mut *write)
                    .await
                    .with_context(|| format!("writing {table}"))?;
            }
            if row.is_none() {
                break;
            }
        }
        drop(rows);
        let written: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {}",
            quoted(table)
        )))
        .fetch_one(&mut *write)
        .await?;
        if written != read_count {
            bail!("{table}: {read_count} rows read but {written} written; nothing was committed");
        }
        let done = Copied {
            table: table.clone(),
            rows: written,
        };
        progress(&done);
        copied.push(done);
    }
    // Sequences behind identity columns would follow here; the schema has none (ids are UUIDs).
    write
        .commit()
        .await
        .context("committing (a foreign key of the copy did not hold)")?;
    read.rollback().await?;
    Ok(copied)
}

/// An audit entry whose time has digits below the microsecond (SQLite kept nanoseconds)
/// keeps the exact text its hash was computed over in `chain_at`, so that the chain still
/// verifies once PostgreSQL has rounded `at`.
fn keep_chain_time(columns: &[(String, String)], values: &mut [Value]) -> anyhow::Result<()> {
    let place = |name: &str| columns.iter().position(|(c, _)| c == name);
    let (Some(at), Some(chain_at)) = (place("at"), place("chain_at")) else {
        bail!("audit_log without at or chain_at in the PostgreSQL schema");
    };
    if let (Value::Time(Some(t)), Value::Text(None)) = (&values[at], &values[chain_at])
        && chrono::Timelike::nanosecond(t) % 1000 != 0
    {
        values[chain_at] = Value::Text(Some(super::audit::chain_time(*t)));
    }
    Ok(())
}

/// A name in double quotes, as PostgreSQL and SQLite both read it.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A value on its way to a PostgreSQL column; `None` is NULL of the column's type.
enum Value {
    Text(Option<String>),
    Int(Option<i64>),
    Int4(Option<i32>),
    Float(Option<f64>),
    Bool(Option<bool>),
    Time(Option<DateTime<Utc>>),
    Bytes(Option<Vec<u8>>),
}

impl Value {
    fn bind(self, row: &mut sqlx::query_builder::Separated<'_, Postgres, &'static str>) {
        match self {
            Value::Text(v) => row.push_bind(v),
            Value::Int(v) => row.push_bind(v),
            Value::Int4(v) => row.push_bind(v),
            Value::Float(v) => row.push_bind(v),
            Value::Bool(v) => row.push_bind(v),
            Value::Time(v) => row.push_bind(v),
            Value::Bytes(v) => row.push_bind(v),
        };
    }
}

/// Column `i` of `row` as the PostgreSQL type `ty` (information_schema's `data_type`) wants it.
fn convert(row: &SqliteRow, i: usize, ty: &str) -> anyhow::Result<Value> {
    let raw = row.try_get_raw(i)?;
    let null = raw.is_null();
    let stored = raw.type_info().name().to_string();
    Ok(match ty {
        "text" | "character varying" | "jsonb" | "json" | "uuid" => Value::Text(if null {
            None
        } else if stored == "INTEGER" {
            Some(row.try_get::<i64, _>(i)?.to_string())
        } else {
            Some(row.try_get::<String, _>(i)?)
        }),
        "bigint" => Value::Int((!null).then(|| row.try_get::<i64, _>(i)).transpose()?),
        "integer" | "smallint" => Value::Int4(
            (!null)
                .then(|| row.try_get::<i64, _>(i).map(i32::try_from))
                .transpose()?
                .transpose()?,
        ),
        "double precision" | "real" | "numeric" => {
            Value::Float((!null).then(|| row.try_get::<f64, _>(i)).transpose()?)
        }
        "boolean" => Value::Bool(
            (!null)
                .then(|| row.try_get::<i64, _>(i).map(|v| v != 0))
                .transpose()?,
        ),
        "timestamp with time zone" => Value::Time(if null {
            None
        } else if stored == "INTEGER" {
            // Unix seconds, should a column ever hold them.
            let secs = row.try_get::<i64, _>(i)?;
            Some(
                DateTime::from_timestamp(secs, 0)
                    .ok_or_else(|| anyhow!("time {secs} out of range"))?,
            )
        } else {
            let text = row.try_get::<String, _>(i)?;
            Some(parse_time(&text)?)
        }),
        "bytea" => Value::Bytes((!null).then(|| row.try_get::<Vec<u8>, _>(i)).transpose()?),
        other => bail!("a column of type {other} has no conversion"),
    })
}

/// A time as SQLite holds it: RFC 3339 (`2026-12-05T07:19:17.123456Z`) or sqlx's own text
/// (`2026-12-05 07:19:17.123456789+00:00`).
fn parse_time(text: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%#z"] {
        if let Ok(t) = DateTime::parse_from_str(text, format) {
            return Ok(t.with_timezone(&Utc));
        }
    }
    if let Ok(t) = chrono::NaiveDateTime::from_str(text) {
        return Ok(t.and_utc());
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f") {
        return Ok(t.and_utc());
    }
    bail!("{text:?} is not a time")
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn the_time_texts_sqlite_holds_are_read() {
        for text in [
            "2026-12-05T07:19:17.123456Z",
            "2026-12-05T07:19:17Z",
            "2026-12-05 07:19:17.123456789+00:00",
            "2026-12-05 07:19:17+00:00",
            "2026-12-05 07:19:17",
        ] {
            let t = parse_time(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(t.format("%F %T").to_string(), "2026-12-05 07:19:17");
        }
        assert!(parse_time("yesterday").is_err());
    }
}
