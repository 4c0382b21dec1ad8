//! One table's rows from source to target: `COPY (SELECT …) TO STDOUT` on a source connection
//! that adopted the refresh's snapshot, parse (COPY text codec), mask the planned columns,
//! `COPY … FROM STDIN` on the target. Memory stays bounded: rows are parsed as chunks arrive and
//! written in batches, and the target's back-pressure paces the source.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio_postgres::{Client, IsolationLevel, Transaction};

use super::catalog::{QualifiedName, quote_ident};
use super::copy::{RowSplitter, parse_row, write_row};
use super::mask::Transform;
use super::pg_error;
use crate::error::Error;

/// Bytes gathered before a batch goes to the target.
const BATCH: usize = 1 << 20;

/// How one column is treated.
#[derive(Debug, Clone)]
pub struct ColumnPlan {
    /// The column.
    pub name: String,
    /// Its transform (None: copied as is, declared safe).
    pub transform: Option<Transform>,
    /// Determinism domain (values sharing it mask alike across tables).
    pub domain: String,
}

/// What a copy moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Moved {
    /// Rows.
    pub rows: u64,
    /// COPY text bytes read from the source.
    pub bytes: u64,
}

/// A REPEATABLE READ, READ ONLY transaction: what every reader of a refresh runs in.
async fn read_only_snapshot_tx<'a>(
    client: &'a mut Client,
    what: &str,
) -> Result<Transaction<'a>, Error> {
    client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(|e| pg_error(what, e))
}

/// Open the refresh's snapshot on `client`: a REPEATABLE READ, READ ONLY transaction whose
/// snapshot id other connections adopt with [`adopt_snapshot`]. Nothing is written to the source.
pub async fn export_snapshot(client: &mut Client) -> Result<(Transaction<'_>, String), Error> {
    let tx = read_only_snapshot_tx(client, "starting the snapshot transaction").await?;
    let id: String = tx
        .query_one("select pg_export_snapshot()", &[])
        .await
        .map_err(|e| pg_error("exporting the snapshot", e))?
        .get(0);
    Ok((tx, id))
}

/// Start a worker transaction on `client` that sees exactly the snapshot `id`.
pub async fn adopt_snapshot<'a>(
    client: &'a mut Client,
    id: &str,
) -> Result<Transaction<'a>, Error> {
    // Snapshot ids are server-generated (`00000003-0000001B-1`); reject anything else.
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        return Err(Error::Usage(format!("`{id}` is not a snapshot id")));
    }
    let tx = read_only_snapshot_tx(client, "starting a worker transaction").await?;
    tx.batch_execute(&format!("set transaction snapshot '{id}'"))
        .await
        .map_err(|e| pg_error(&format!("adopting snapshot {id}"), e))?;
    Ok(tx)
}

/// Copy `table`'s planned columns from `source` (a transaction on the snapshot) into the same
/// table on `target`, masking on the way. `filter` is an optional SQL condition (subsets).
pub async fn copy_table(
    source: &Transaction<'_>,
    target: &Client,
    table: &QualifiedName,
    columns: &[ColumnPlan],
    filter: Option<&str>,
    key: &[u8],
) -> Result<Moved, Error> {
    let list = columns
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let select = format!(
        "copy (select {list} from {table}{}) to stdout",
        filter.map(|f| format!(" where {f}")).unwrap_or_default()
    );
    let out = source
        .copy_out(select.as_str())
        .await
        .map_err(|e| pg_error(&format!("reading {table}"), e))?;
    let sink = target
        .copy_in(format!("copy {table} ({list}) from stdin").as_str())
        .await
        .map_err(|e| pg_error(&format!("writing {table}"), e))?;
    futures_util::pin_mut!(out);
    futures_util::pin_mut!(sink);
    let mut splitter = RowSplitter::default();
    let mut batch = Vec::with_capacity(BATCH + 4096);
    let mut moved = Moved::default();
    let mut failure: Option<Error> = None;
    while let Some(chunk) = out.next().await {
        let chunk = chunk.map_err(|e| pg_error(&format!("reading {table}"), e))?;
        moved.bytes += chunk.len() as u64;
        splitter.feed(&chunk, |line| {
            if failure.is_some() {
                return;
            }
            match mask_row(line, columns, key) {
                Ok(fields) => {
                    write_row(&mut batch, fields.iter().map(|f| f.as_deref()));
                    moved.rows += 1;
                }
                Err(e) => failure = Some(Error::Usage(format!("{table}: {e}"))),
            }
        });
        if let Some(e) = failure.take() {
            return Err(e);
        }
        if batch.len() >= BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH + 4096));
            sink.send(Bytes::from(full))
                .await
                .map_err(|e| pg_error(&format!("writing {table}"), e))?;
        }
    }
    if !splitter.remainder().is_empty() {
        return Err(Error::External {
            what: "postgresql".into(),
            detail: format!("{table}: COPY ended inside a row"),
        });
    }
    if !batch.is_empty() {
        sink.send(Bytes::from(batch))
            .await
            .map_err(|e| pg_error(&format!("writing {table}"), e))?;
    }
    sink.as_mut()
        .finish()
        .await
        .map_err(|e| pg_error(&format!("writing {table}"), e))?;
    Ok(moved)
}

/// Parse one COPY row and apply the column transforms.
fn mask_row(
    line: &[u8],
    columns: &[ColumnPlan],
    key: &[u8],
) -> Result<Vec<Option<Vec<u8>>>, String> {
    let mut fields = parse_row(line).map_err(|e| e.to_string())?;
    if fields.len() != columns.len() {
        return Err(format!(
            "COPY row has {} fields, expected {}",
            fields.len(),
            columns.len()
        ));
    }
    for (f, c) in fields.iter_mut().zip(columns) {
        let (Some(t), Some(value)) = (&c.transform, f.as_ref()) else {
            continue;
        };
        let text = std::str::from_utf8(value)
            .map_err(|_| format!("column {} is not UTF-8 text", c.name))?;
        *f = t
            .apply(key, &c.domain, text)
            .map_err(|e| format!("column {}: {e}", c.name))?
            .map(String::into_bytes);
    }
    Ok(fields)
}
