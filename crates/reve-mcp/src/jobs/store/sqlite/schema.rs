//! The table and the one migration: a job's envelope in columns, its generation as one JSON
//! payload, and the move of a store an earlier release kept in columns.

use rusqlite::{Connection, params};

use super::super::{JobRecord, JobState, Payload, Settled};

pub(super) const SCHEMA: &str = include_str!("schema.sql");

/// Moves the jobs of a store kept in columns (see the file) into the schema.
const FROM_COLUMNS: &str = include_str!("from_columns.sql");

/// The envelope's columns and the payload, in the order [`record_from_row`] reads them.
pub(super) const COLUMNS: &str = "id, principal, model, state, sent, created_ms, updated_ms, credits_used, \
    tokens_used, usd_spent, reused_from, error, owner_pid, owner_run, may_be_charged, settled, unsaved, revision, \
    payload";

pub(super) fn record_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<JobRecord> {
    Ok(JobRecord {
        id: row.get("id")?,
        principal: row.get("principal")?,
        model: row.get("model")?,
        state: JobState::parse(&row.get::<_, String>("state")?),
        sent: row.get("sent")?,
        created_ms: row.get("created_ms")?,
        updated_ms: row.get("updated_ms")?,
        credits_used: row.get("credits_used")?,
        tokens_used: row.get("tokens_used")?,
        usd_spent: row.get("usd_spent")?,
        reused_from: row.get("reused_from")?,
        error: row.get("error")?,
        owner_pid: row.get("owner_pid")?,
        owner_run: row.get("owner_run")?,
        may_be_charged: row.get("may_be_charged")?,
        settled: row
            .get::<_, Option<String>>("settled")?
            .as_deref()
            .and_then(Settled::parse),
        unsaved: row.get("unsaved")?,
        payload: Payload::from_json(
            row.get("revision")?,
            row.get::<_, Option<String>>("payload")?.as_deref(),
        ),
    })
}

/// Makes the schema, moving the jobs of a store kept in columns (an earlier release's) into it.
pub(super) fn migrate(connection: &mut Connection) -> rusqlite::Result<()> {
    let in_columns: bool = connection.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('jobs') WHERE name = 'prompt'",
        [],
        |row| row.get(0),
    )?;
    if !in_columns {
        connection.execute_batch(SCHEMA)?;
        add_model(connection)?;
        add_column(connection, "usd_spent", "REAL")?;
        return add_column(connection, "settled", "TEXT");
    }
    let transaction = connection.transaction()?;
    // Columns a store of an even earlier release lacks, read as absent.
    for (name, kind) in [
        ("input_mime", "TEXT"),
        ("input_width", "INTEGER"),
        ("input_height", "INTEGER"),
        ("input_bytes", "INTEGER"),
        ("saving_path", "TEXT"),
        ("saving_bytes", "INTEGER"),
        ("may_be_charged", "INTEGER NOT NULL DEFAULT 0"),
        ("unsaved", "INTEGER NOT NULL DEFAULT 0"),
    ] {
        let present: bool = transaction.query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info('jobs') WHERE name = ?1",
            params![name],
            |row| row.get(0),
        )?;
        if !present {
            transaction.execute_batch(&format!("ALTER TABLE jobs ADD COLUMN {name} {kind}"))?;
        }
    }
    transaction.execute_batch("ALTER TABLE jobs RENAME TO jobs_in_columns;")?;
    // The old indexes went with the table; the schema makes them anew.
    for index in [
        "jobs_by_fingerprint",
        "jobs_results",
        "jobs_by_time",
        "jobs_unfinished",
    ] {
        transaction.execute_batch(&format!("DROP INDEX IF EXISTS {index}"))?;
    }
    transaction.execute_batch(SCHEMA)?;
    transaction.execute_batch(FROM_COLUMNS)?;
    transaction.commit()
}

/// Adds column `name` of `kind` to a store made before it existed.
fn add_column(connection: &Connection, name: &str, kind: &str) -> rusqlite::Result<()> {
    let present: bool = connection.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('jobs') WHERE name = ?1",
        params![name],
        |row| row.get(0),
    )?;
    if present {
        return Ok(());
    }
    connection.execute_batch(&format!("ALTER TABLE jobs ADD COLUMN {name} {kind}"))
}

/// Gives a store made before jobs named their model the column, each of its jobs an edit (the
/// only model then).
fn add_model(connection: &Connection) -> rusqlite::Result<()> {
    let present: bool = connection.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('jobs') WHERE name = 'model'",
        [],
        |row| row.get(0),
    )?;
    if present {
        return Ok(());
    }
    connection.execute_batch(&format!(
        "ALTER TABLE jobs ADD COLUMN model TEXT NOT NULL DEFAULT '{}'",
        super::super::MODEL_OF_OLDER_JOBS
    ))
}
