//! Subsetting: which rows move. Edges (declared and virtual foreign keys, each with how it is
//! followed downward), root rows and a [`RowSource`] in; a [`Closure`] out: per leaf table the
//! set of included rows (by `ctid`, under the refresh's snapshot, in compressed bitmaps), why
//! they came in, and the orphans left out.
//!
//! Rules: every included row's parents are included (transitively, to a fixpoint, so cycles and
//! self-references close); rows that came in as roots or as children bring the children the
//! plan asks for; rows that came in only as parents do not (that would grow toward the whole
//! database), except through `always` edges (aggregate parts: an order's items), which every
//! included row follows. A row whose declared parent does not exist (a NOT VALID key) is an
//! orphan: left out and counted. Pure over the [`RowSource`] trait; `subset_pg` reads PostgreSQL.

pub(crate) mod closure;
pub(crate) mod pg;
pub(crate) mod spill;

use std::collections::BTreeMap;

use roaring::RoaringTreemap;

use crate::data::pg::catalog::QualifiedName;
use crate::error::Error;

/// A row's position: `ctid` packed as `block << 11 | offset` (offsets stay below 2048 for
/// every PostgreSQL page size).
pub fn pack_ctid(block: u32, offset: u16) -> u64 {
    (u64::from(block) << 11) | u64::from(offset & 0x7ff)
}

/// The `(block,offset)` text of a packed ctid.
pub fn ctid_text(code: u64) -> String {
    format!("({},{})", code >> 11, code & 0x7ff)
}

/// Parse PostgreSQL's `(block,offset)` ctid text.
pub fn parse_ctid(text: &str) -> Option<u64> {
    let (b, o) = text
        .trim()
        .strip_prefix('(')?
        .strip_suffix(')')?
        .split_once(',')?;
    Some(pack_ctid(b.parse().ok()?, o.parse().ok()?))
}

/// How an edge is followed from parent rows down to the rows referencing them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Down {
    /// Never (only child → parent).
    Never,
    /// From rows that came in as roots or children.
    Children,
    /// From every included row (aggregate parts).
    Always,
}

/// A foreign key, declared or virtual, between logical tables (partitions are their parent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    /// Constraint name, or `virtual: …`.
    pub name: String,
    /// The referencing table.
    pub child: QualifiedName,
    /// SQL expressions on the referencing rows, one per referenced column.
    pub child_exprs: Vec<String>,
    /// Their SQL types (to compare typed).
    pub child_types: Vec<String>,
    /// A condition on the referencing rows (polymorphic keys), or none.
    pub child_filter: Option<String>,
    /// The referenced table.
    pub parent: QualifiedName,
    /// SQL expressions (quoted columns) on the referenced rows.
    pub parent_exprs: Vec<String>,
    /// Their SQL types.
    pub parent_types: Vec<String>,
    /// How it is followed downward.
    pub down: Down,
    /// A validated foreign key: in a snapshot every non-NULL key has its parent, so no orphan
    /// can turn up and the parent lookup may wait (virtual and NOT VALID keys are checked at
    /// once).
    pub certain: bool,
}

/// A leaf table as the row source numbers it (PostgreSQL: its oid).
pub type Leaf = u32;

/// A row: its leaf table and its packed ctid.
pub type Row = (Leaf, u64);

/// A row found by a lookup: its leaf table, its ctid, the looked-up key values and the values
/// of the expressions asked for alongside (so the row need not be read again).
pub type Found = (Leaf, u64, Vec<String>, Vec<Option<String>>);

/// Where rows are read (the source under the snapshot, or a test double).
#[allow(async_fn_in_trait)]
pub trait RowSource {
    /// The name of a leaf table.
    fn leaf_name(&self, leaf: Leaf) -> QualifiedName;

    /// For rows of `leaf`, the text of each of `exprs` (`None`: NULL), by ctid.
    async fn values(
        &mut self,
        leaf: Leaf,
        ctids: &[u64],
        exprs: &[String],
    ) -> Result<Vec<(u64, Vec<Option<String>>)>, Error>;

    /// Rows of the logical `table` (any partition) whose `exprs`, compared as `types`, equal one
    /// of `tuples`, and satisfy `filter`; with the text of each of `want`. They are handed to
    /// `each` in batches of at most [`FOUND_BATCH`] as they arrive, so one lookup that matches
    /// millions of rows never sits in memory whole.
    #[allow(clippy::too_many_arguments)]
    async fn find(
        &mut self,
        table: &QualifiedName,
        exprs: &[String],
        types: &[String],
        filter: Option<&str>,
        tuples: &[Vec<&str>],
        want: &[String],
        each: &mut (dyn FnMut(Vec<Found>) -> Result<(), Error> + Send),
    ) -> Result<(), Error>;
}

/// Rows a subset starts from, or that a step brings.
#[derive(Debug, Clone)]
pub struct Work {
    /// The logical table.
    pub table: QualifiedName,
    /// `(leaf, ctid)`.
    pub rows: Vec<Row>,
    /// Whether these rows bring their children.
    pub expand: bool,
    /// Levels below the roots.
    pub depth: u32,
    /// Why they come (`root`, `parent of x`, `child of y`, `part of z`).
    pub reason: String,
    /// The table's wanted values of each row, when the lookup that found them read them too.
    pub values: Option<Vec<Vec<Option<String>>>>,
}

/// The outcome.
#[derive(Debug, Default)]
pub struct Closure {
    /// Included rows per leaf table.
    pub rows: BTreeMap<QualifiedName, RoaringTreemap>,
    /// Rows per logical table and reason.
    pub reasons: BTreeMap<QualifiedName, BTreeMap<String, u64>>,
    /// Rows left out per foreign key because their parent does not exist.
    pub orphans: BTreeMap<String, u64>,
    /// Bytes of pending work written to the encrypted spill file (0: it all fit in memory).
    pub spilled_bytes: u64,
}

impl Closure {
    /// Rows included in all.
    pub fn total(&self) -> u64 {
        self.rows.values().map(RoaringTreemap::len).sum()
    }

    /// Bytes the key sets take in memory.
    pub fn key_bytes(&self) -> u64 {
        self.rows.values().map(|r| r.serialized_size() as u64).sum()
    }
}

/// Rows a lookup hands over at a time.
pub const FOUND_BATCH: usize = 25_000;
