//! What a refresh takes ([`Settings`], resolved: secrets already fetched) and gives ([`Report`],
//! and the [`Event`]s of its progress on the way).

use std::collections::BTreeMap;

use crate::data::marks::Mark;
use crate::data::pg::catalog::QualifiedName;
use crate::data::refresh::stream::Moved;
use crate::data::refresh::tasks::Shard;
use crate::secrets::SecretValue;

/// Everything a refresh needs, resolved (secrets already fetched).
pub(crate) struct Settings {
    /// The plan's name (for messages and the database comment).
    pub name: String,
    /// The source database's URL.
    pub source_url: SecretValue,
    /// The target database's URL; its database name is the one replaced.
    pub target_url: SecretValue,
    /// The masking key.
    pub key: SecretValue,
    /// Tables copied at once.
    pub jobs: usize,
    /// Only work out which rows a subset moves, and why; touch no target.
    pub explain: bool,
    /// The mark the finished database carries (role `current`, `template` or `env`).
    pub mark: Mark,
    /// Keep the replaced database as `<name>_prev` until the next success (staging); drop it
    /// once the swap is done (templates and environments).
    pub keep_previous: bool,
    /// Read under this snapshot, exported and held by another process, instead of a new one.
    pub snapshot: Option<String>,
    /// Copy only this shard's share of the rows (see [`Shard`]).
    pub shard: Option<Shard>,
    /// The plan allows a target on the source's own server (another database there).
    pub same_server: bool,
    /// Copy grants to the roles that exist on the target.
    pub grants: bool,
    /// Replace a target database sluice did not make (`--adopt`): it is kept, unmarked, as
    /// `<name>_prev` and never dropped by sluice.
    pub adopt: bool,
}

/// What a subset selected.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(crate) struct SubsetReport {
    /// Rows per table and reason (`root`, `full`, `parent of …`, `child of …`, `part of …`).
    pub tables: BTreeMap<String, BTreeMap<String, u64>>,
    /// Rows left out per foreign key because their parent does not exist.
    pub orphans: BTreeMap<String, u64>,
    /// Rows selected.
    pub rows: u64,
    /// Memory the key sets take (compressed bitmaps of row positions).
    pub key_bytes: u64,
    /// Bytes of pending work spilled to the encrypted temporary file (the memory budget).
    pub spilled_bytes: u64,
}

/// Something worth telling the user while a refresh runs.
#[derive(Debug, Clone)]
pub(crate) enum Event {
    /// A step began.
    Step(String),
    /// A table's copy (or one part of a large table's) began.
    TableStarted {
        /// The table, with `[i/n]` for a part.
        label: String,
        /// The planner's estimate.
        estimated_rows: i64,
    },
    /// Running totals of a table or part.
    TableProgress {
        /// As in `TableStarted`.
        label: String,
        /// So far.
        moved: Moved,
    },
    /// A table or part is done.
    TableDone {
        /// As in `TableStarted`.
        label: String,
        /// What it moved.
        report: TableReport,
    },
}

/// One table's outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct TableReport {
    /// The table.
    #[serde(serialize_with = "display")]
    pub table: QualifiedName,
    /// Rows copied.
    pub rows: u64,
    /// COPY text bytes read.
    pub bytes: u64,
    /// Seconds spent.
    pub seconds: f64,
    /// Columns transformed.
    pub masked_columns: usize,
    /// The COPY format the rows moved in: `binary` or `text`.
    pub format: &'static str,
    /// Each copied column's treatment: `keep`, or the transform and its domain
    /// (`email (domain customer_email)`), so a signed report proves what each column got.
    pub columns: std::collections::BTreeMap<String, String>,
}

fn display<S: serde::Serializer>(v: &QualifiedName, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&v.to_string())
}

/// What a refresh did.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Report {
    /// The plan.
    pub plan: String,
    /// The database that now holds the copy.
    pub target_database: String,
    /// Where the previous contents are kept, if there were any.
    pub previous_database: Option<String>,
    /// Per table, largest first.
    pub tables: Vec<TableReport>,
    /// Tables created empty.
    pub schema_only: usize,
    /// Sequences set.
    pub sequences: usize,
    /// Materialized views refreshed.
    pub materialized_views: usize,
    /// Leftovers of earlier runs removed.
    pub removed_leftovers: Vec<String>,
    /// A finished copy whose swap an earlier run did not complete, swapped in before this run
    /// began its own load.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_swap: Option<String>,
    /// What the subset selected, when the plan subsets.
    pub subset: Option<SubsetReport>,
    /// A shard's part, when the refresh ran as one of several shards.
    pub shard: Option<ShardReport>,
    /// Seconds for the whole refresh.
    pub seconds: f64,
}

/// A progress callback.
pub(crate) type Progress = dyn Fn(Event) + Send + Sync;

/// How a shard's part of a load went.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct ShardReport {
    /// This shard.
    pub index: u32,
    /// Shards in all.
    pub count: u32,
    /// Shards whose rows are in, this one included.
    pub done: usize,
    /// Whether this shard, the last to finish, built the indexes and swapped.
    pub swapped: bool,
}
