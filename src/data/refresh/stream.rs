//! One table's rows from source to target: `COPY (SELECT …) TO STDOUT` on a source connection
//! that adopted the refresh's snapshot, parse (COPY text codec), mask the planned columns,
//! `COPY … FROM STDIN` on the target. Memory stays bounded: rows are gathered into batches of
//! about 1 MiB, masked on the rayon pool (at most [`IN_FLIGHT`] batches at once), and written in
//! order; the target's back-pressure paces the source. A table with nothing to mask passes its
//! COPY bytes through untouched. Where both servers allow it and every column has a portable
//! binary form, the table moves in COPY's binary format instead ([`binary`]).

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio_postgres::{Client, Transaction};

use crate::data::mask::rows::{ColumnPlan, Masker, travels_binary};
use crate::data::pg::binary::{self, Step};
use crate::data::pg::catalog::{QualifiedName, sql_ident};
use crate::data::pg::pg_error;
use crate::error::Error;

/// Bytes gathered before a batch goes to the target.
const BATCH: usize = 1 << 20;

/// Batches being masked at once per table.
pub const IN_FLIGHT: usize = 3;

/// What a copy moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Moved {
    /// Rows.
    pub rows: u64,
    /// COPY bytes read from the source.
    pub bytes: u64,
    /// Moved in COPY's binary format (else text).
    pub binary: bool,
}

/// How one copy runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct CopyOptions {
    /// Truncate the target table and `COPY … FREEZE` in one transaction (a whole table into a
    /// freshly created target).
    pub freeze: bool,
    /// Binary COPY is allowed (both servers of one major version, UTF-8); it is used when every
    /// column can travel binary ([`Wire::carries`]).
    pub binary: bool,
}

/// Where whole rows end in a stream being read, text or binary.
enum Framing {
    /// Text rows end at a newline.
    Text,
    /// Binary tuples: the header is skipped, `scanned` bytes of the batch are whole tuples,
    /// `ended` once the trailer was read.
    Binary {
        fields: usize,
        header_done: bool,
        scanned: usize,
        ended: bool,
    },
}

impl Framing {
    /// Take in a chunk appended to `batch`; returns the rows it completed.
    fn feed(&mut self, batch: &mut Vec<u8>, chunk: &[u8]) -> Result<u64, binary::CopyError> {
        match self {
            Framing::Text => {
                batch.extend_from_slice(chunk);
                Ok(memchr::memchr_iter(b'\n', chunk).count() as u64)
            }
            Framing::Binary {
                fields,
                header_done,
                scanned,
                ended,
            } => {
                if *ended {
                    return Err(binary::CopyError {
                        field: 0,
                        message: "data after the binary COPY trailer",
                    });
                }
                batch.extend_from_slice(chunk);
                if !*header_done {
                    let Some(h) = binary::header_len(batch)? else {
                        return Ok(0);
                    };
                    batch.drain(..h);
                    *header_done = true;
                }
                let mut rows = 0;
                loop {
                    match binary::step(batch, *scanned, *fields)? {
                        Step::Tuple(end) => {
                            *scanned = end;
                            rows += 1;
                        }
                        Step::End(end) => {
                            if end != batch.len() {
                                return Err(binary::CopyError {
                                    field: 0,
                                    message: "data after the binary COPY trailer",
                                });
                            }
                            batch.truncate(*scanned);
                            *ended = true;
                            break;
                        }
                        Step::More => break,
                    }
                }
                Ok(rows)
            }
        }
    }

    /// How many leading bytes of `batch` are whole rows.
    fn whole(&self, batch: &[u8]) -> usize {
        match self {
            Framing::Text => memchr::memrchr(b'\n', batch).map_or(0, |i| i + 1),
            Framing::Binary { scanned, .. } => *scanned,
        }
    }

    /// Cut the whole rows off `batch` (the rest stays for the next chunk).
    fn cut(&mut self, batch: &mut Vec<u8>) -> Vec<u8> {
        let n = self.whole(batch);
        let rest = batch.split_off(n);
        if let Framing::Binary { scanned, .. } = self {
            *scanned = 0;
        }
        let mut next = Vec::with_capacity(BATCH + (64 << 10));
        next.extend_from_slice(&rest);
        std::mem::replace(batch, next)
    }

    /// Whether the stream ended cleanly given what is left in `batch`.
    fn complete(&self, batch: &[u8]) -> bool {
        match self {
            Framing::Text => batch.is_empty(),
            Framing::Binary { ended, .. } => *ended && batch.is_empty(),
        }
    }
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
    copy_table_with(
        source,
        target,
        table,
        columns,
        filter,
        key,
        CopyOptions::default(),
        &|_| {},
    )
    .await
}

/// [`copy_table`] with [`CopyOptions`], calling `progress` with the running totals after every
/// batch.
#[allow(clippy::too_many_arguments)]
pub async fn copy_table_with(
    source: &Transaction<'_>,
    target: &Client,
    table: &QualifiedName,
    columns: &[ColumnPlan],
    filter: Option<&str>,
    key: &[u8],
    options: CopyOptions,
    progress: &(dyn Fn(Moved) + Sync),
) -> Result<Moved, Error> {
    let list = columns
        .iter()
        .map(|c| sql_ident(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let binary = options.binary && travels_binary(columns);
    let format = if binary { " with (format binary)" } else { "" };
    // A whole table is read by COPY of the table itself (a heap scan straight into the COPY
    // stream, as pg_dump does), which is cheaper than COPY of a query; COPY of a table never
    // includes inheritance children, like ONLY.
    let select = match filter {
        None => format!("copy {} ({list}) to stdout{format}", table.sql()),
        Some(f) => format!(
            "copy (select {list} from only {} where {f}) to stdout{format}",
            table.sql()
        ),
    };
    let reading = |e| pg_error(&format!("reading {table}"), e);
    let writing = |e| pg_error(&format!("writing {table}"), e);
    let out = source.copy_out(select.as_str()).await.map_err(reading)?;
    // A whole table into an empty one: truncate and COPY FREEZE in one transaction, so rows land
    // frozen and the index builds and key checks after the load never rewrite pages to set hint
    // bits (nor does a later vacuum).
    let freeze = filter.is_none() && options.freeze;
    if freeze {
        target
            .batch_execute(&format!("begin; truncate only {}", table.sql()))
            .await
            .map_err(writing)?;
    }
    let with = match (freeze, binary) {
        (false, false) => "",
        (true, false) => " with (freeze)",
        (false, true) => " with (format binary)",
        (true, true) => " with (format binary, freeze)",
    };
    let sink = target
        .copy_in(format!("copy {} ({list}) from stdin{with}", table.sql()).as_str())
        .await
        .map_err(writing)?;
    futures_util::pin_mut!(out);
    futures_util::pin_mut!(sink);
    let malformed = |e: binary::CopyError| Error::External {
        what: "postgresql".into(),
        detail: format!("{table}: {e}"),
    };
    let mut framing = if binary {
        sink.send(Bytes::from(binary::header()))
            .await
            .map_err(writing)?;
        Framing::Binary {
            fields: columns.len(),
            header_done: false,
            scanned: 0,
            ended: false,
        }
    } else {
        Framing::Text
    };
    let masks = columns.iter().any(|c| c.transform.is_some());
    let masker = Arc::new(Masker::new(columns, key));
    let mut batch = Vec::with_capacity(BATCH + (64 << 10));
    let mut moved = Moved {
        binary,
        ..Moved::default()
    };
    let mut in_flight: VecDeque<tokio::sync::oneshot::Receiver<Result<Vec<u8>, String>>> =
        VecDeque::new();
    let masking_failed = |e: String| Error::Usage(format!("{table}: {e}"));
    // The oldest masked batch, written once it is ready.
    macro_rules! drain_one {
        () => {
            if let Some(rx) = in_flight.pop_front() {
                let masked = rx
                    .await
                    .map_err(|_| masking_failed("a masking worker stopped".into()))?
                    .map_err(masking_failed)?;
                sink.send(Bytes::from(masked)).await.map_err(writing)?;
            }
        };
    }
    loop {
        let chunk = out.next().await.transpose().map_err(reading)?;
        let done = chunk.is_none();
        if let Some(chunk) = chunk {
            moved.bytes += chunk.len() as u64;
            moved.rows += framing.feed(&mut batch, &chunk).map_err(malformed)?;
        }
        // Rows never straddle a batch: a batch is cut where whole rows end.
        if framing.whole(&batch) >= BATCH || (done && framing.whole(&batch) > 0) {
            let full = framing.cut(&mut batch);
            if masks {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let m = Arc::clone(&masker);
                rayon::spawn(move || {
                    let _ = tx.send(m.batch(&full, binary));
                });
                in_flight.push_back(rx);
                if in_flight.len() >= IN_FLIGHT {
                    drain_one!();
                }
            } else {
                sink.send(Bytes::from(full)).await.map_err(writing)?;
            }
            progress(moved);
        }
        if done {
            if !framing.complete(&batch) {
                return Err(Error::External {
                    what: "postgresql".into(),
                    detail: format!("{table}: COPY ended inside a row"),
                });
            }
            break;
        }
    }
    while !in_flight.is_empty() {
        drain_one!();
    }
    if binary {
        sink.send(Bytes::from_static(&binary::TRAILER))
            .await
            .map_err(writing)?;
    }
    // The target's own count of what it stored must match what the source sent.
    let written = sink.as_mut().finish().await.map_err(writing)?;
    if freeze {
        target.batch_execute("commit").await.map_err(writing)?;
    }
    if written != moved.rows {
        return Err(Error::External {
            what: "postgresql".into(),
            detail: format!(
                "{table}: the source sent {} rows but the target stored {written}",
                moved.rows
            ),
        });
    }
    Ok(moved)
}
