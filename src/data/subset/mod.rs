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

pub mod pg;
pub mod spill;

use std::collections::{BTreeMap, HashMap};

use rustc_hash::{FxHashMap, FxHashSet};

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

/// Keys per lookup query (one hashed semi-join each).
const CHUNK: usize = 200_000;

/// Rows a lookup hands over at a time.
pub const FOUND_BATCH: usize = 25_000;

/// Child keys gathered for one edge before its lookup runs regardless (bounds their memory).
const DEFER_KEYS: usize = 500_000;

/// Rows handled per step of the closure (bounds the memory of one step).
const WORK_CHUNK: usize = 100_000;

/// Close `roots` under the edges: see the module docs. `depth_limit` bounds `Children` edges.
pub async fn close<S: RowSource>(
    edges: &[Edge],
    roots: Vec<Work>,
    source: &mut S,
    depth_limit: Option<u32>,
    memory_budget: usize,
) -> Result<Closure, Error> {
    // Every expression each logical table must show for its edges, in a fixed order.
    let mut wanted: HashMap<QualifiedName, Vec<String>> = HashMap::new();
    for e in edges {
        let w = wanted.entry(e.child.clone()).or_default();
        for x in e.child_exprs.iter().chain(e.child_filter.iter()) {
            if !w.contains(x) {
                w.push(x.clone());
            }
        }
        let w = wanted.entry(e.parent.clone()).or_default();
        for x in &e.parent_exprs {
            if !w.contains(x) {
                w.push(x.clone());
            }
        }
    }
    let mut out = Closure::default();
    let mut included: BTreeMap<Leaf, RoaringTreemap> = BTreeMap::new();
    let mut expanded: BTreeMap<Leaf, RoaringTreemap> = BTreeMap::new();
    let mut orphaned: BTreeMap<Leaf, RoaringTreemap> = BTreeMap::new();
    let mut queue = crate::data::subset::spill::SpillQueue::new(memory_budget, roots)?;
    // Lookups wait here, per (depth, direction, edge, expand), until no other work is left or
    // enough keys gathered: child lookups (a child key column rarely has an index, so each is
    // a scan of the child table) and parent lookups along validated keys (which cannot find
    // orphans). One query for many steps' keys beats one per step. Which rows end up included
    // does not depend on the order (a fixpoint); the shallowest wait ends first and parents
    // last, so a root's children are found as children before deeper rows reach them as
    // parents (what `--explain` says of them).
    let mut deferred: BTreeMap<Waiting, Keys> = BTreeMap::new();
    // Run every waiting lookup up to and including `$through`, shallowest first.
    macro_rules! run_waiting {
        ($through:expr) => {
            while let Some(k) = deferred.keys().next().copied() {
                if k > $through {
                    break;
                }
                let keys = deferred.remove(&k).unwrap_or_default();
                let e = &edges[k.2];
                if k.1 == DOWN {
                    let want = wanted.get(&e.child).cloned().unwrap_or_default();
                    look_up(source, e, true, keys, k.3, k.0, &want, &mut queue).await?;
                } else {
                    let want = wanted.get(&e.parent).cloned().unwrap_or_default();
                    look_up(source, e, false, keys, false, 0, &want, &mut queue).await?;
                }
            }
        };
    }
    loop {
        let Some(mut w) = queue.pop_merged(WORK_CHUNK)? else {
            // Nothing else to do: the first waiting lookup runs, and what it finds is worked
            // through before the next one (which may gather more keys meanwhile).
            let Some(first) = deferred.keys().next().copied() else {
                break;
            };
            run_waiting!(first);
            continue;
        };
        // Work on bounded slices so memory does not grow with the size of one step.
        if w.rows.len() > WORK_CHUNK {
            let rest_rows = w.rows.split_off(WORK_CHUNK);
            let rest_values = w.values.as_mut().map(|v| v.split_off(WORK_CHUNK));
            queue.push_front(Work {
                table: w.table.clone(),
                rows: rest_rows,
                expand: w.expand,
                depth: w.depth,
                reason: w.reason.clone(),
                values: rest_values,
            })?;
        }
        // Which rows are new, and which were included before but must now bring children.
        let mut new: Vec<Row> = Vec::new();
        let mut redo: Vec<Row> = Vec::new();
        let mut seen = FxHashSet::default();
        seen.reserve(w.rows.len());
        let mut prefetched: FxHashMap<Row, Vec<Option<String>>> = FxHashMap::default();
        if let Some(vals) = w.values.take() {
            for (row, v) in w.rows.iter().zip(vals) {
                prefetched.insert(*row, v);
            }
        }
        for (leaf, c) in w.rows {
            if !seen.insert((leaf, c)) || orphaned.get(&leaf).is_some_and(|o| o.contains(c)) {
                continue;
            }
            if !included.get(&leaf).is_some_and(|r| r.contains(c)) {
                new.push((leaf, c));
            } else if w.expand && !expanded.get(&leaf).is_some_and(|r| r.contains(c)) {
                redo.push((leaf, c));
            }
        }
        if new.is_empty() && redo.is_empty() {
            continue;
        }
        let exprs = wanted.get(&w.table).cloned().unwrap_or_default();
        let index = |x: &str| exprs.iter().position(|e| e == x);
        let mut values: FxHashMap<Row, Vec<Option<String>>> = FxHashMap::default();
        if !exprs.is_empty() {
            let mut by_leaf: BTreeMap<Leaf, Vec<u64>> = BTreeMap::new();
            for row in new.iter().chain(&redo) {
                match prefetched.remove(row) {
                    Some(v) => {
                        values.insert(*row, v);
                    }
                    None => by_leaf.entry(row.0).or_default().push(row.1),
                }
            }
            for (leaf, ctids) in by_leaf {
                for chunk in ctids.chunks(CHUNK) {
                    for (c, v) in source.values(leaf, chunk, &exprs).await? {
                        values.insert((leaf, c), v);
                    }
                }
            }
        }
        let tuple = |row: &Row, xs: &[String]| -> Option<Vec<&str>> {
            let v = values.get(row)?;
            xs.iter()
                .map(|x| index(x).and_then(|i| v.get(i)?.as_deref()))
                .collect()
        };

        // Parents of the new rows; a row whose parent is missing is an orphan.
        let mut orphans: FxHashSet<Row> = FxHashSet::default();
        for (ei, e) in edges.iter().enumerate().filter(|(_, e)| e.child == w.table) {
            let applies = |row: &Row| match &e.child_filter {
                None => true,
                Some(f) => {
                    index(f)
                        .and_then(|i| values.get(row).and_then(|v| v.get(i).cloned().flatten()))
                        .as_deref()
                        == Some("true")
                }
            };
            let keyed: Vec<(&Row, Vec<&str>)> = new
                .iter()
                .filter(|r| applies(r))
                .filter_map(|r| tuple(r, &e.child_exprs).map(|t| (r, t)))
                .collect();
            if keyed.is_empty() {
                continue;
            }
            if e.certain {
                // After every child lookup: rows are found as children first (no second
                // look to expand them), and parent keys of all depths share one query. A
                // parent row's depth matters nowhere (it brings no children).
                let at: Waiting = (u32::MAX, UP, ei, false);
                let pending = deferred.entry(at).or_default();
                for (_, t) in &keyed {
                    pending.push(t);
                }
                if pending.len() >= DEFER_KEYS {
                    run_waiting!(at);
                }
                continue;
            }
            let mut distinct: Vec<Vec<&str>> = keyed.iter().map(|(_, t)| t.clone()).collect();
            distinct.sort_unstable();
            distinct.dedup();
            let mut found_keys: FxHashSet<Vec<String>> = FxHashSet::default();
            let parent_want = wanted.get(&e.parent).cloned().unwrap_or_default();
            let reason = format!("parent of {}", w.table);
            for chunk in distinct.chunks(CHUNK) {
                source
                    .find(
                        &e.parent,
                        &e.parent_exprs,
                        &e.parent_types,
                        None,
                        chunk,
                        &parent_want,
                        &mut |batch: Vec<Found>| {
                            let mut rows = Vec::with_capacity(batch.len());
                            let mut values = Vec::with_capacity(batch.len());
                            for (leaf, c, key, v) in batch {
                                found_keys.insert(key);
                                rows.push((leaf, c));
                                values.push(v);
                            }
                            queue.push_back(Work {
                                table: e.parent.clone(),
                                rows,
                                expand: false,
                                depth: w.depth,
                                reason: reason.clone(),
                                values: Some(values),
                            })
                        },
                    )
                    .await?;
            }
            // Every distinct key found: no orphans (the common case, checked without a lookup
            // per row).
            if found_keys.len() < distinct.len() {
                for (row, t) in &keyed {
                    let key: Vec<String> = t.iter().map(|s| s.to_string()).collect();
                    if !found_keys.contains(&key) && orphans.insert(**row) {
                        *out.orphans.entry(e.name.clone()).or_default() += 1;
                    }
                }
            }
        }
        let new: Vec<Row> = new
            .into_iter()
            .filter(|r| {
                if orphans.contains(r) {
                    orphaned.entry(r.0).or_default().insert(r.1);
                    false
                } else {
                    true
                }
            })
            .collect();
        for (leaf, c) in &new {
            included.entry(*leaf).or_default().insert(*c);
        }
        if !new.is_empty() {
            *out.reasons
                .entry(w.table.clone())
                .or_default()
                .entry(w.reason.clone())
                .or_default() += new.len() as u64;
        }

        // Children: from rows that bring them, and aggregate parts from every new row.
        let bring: Vec<Row> = if w.expand {
            new.iter().chain(&redo).cloned().collect()
        } else {
            Vec::new()
        };
        for (leaf, c) in &bring {
            expanded.entry(*leaf).or_default().insert(*c);
        }
        for (ei, e) in edges
            .iter()
            .enumerate()
            .filter(|(_, e)| e.parent == w.table)
        {
            let (rows, expand, depth) = match e.down {
                Down::Never => continue,
                Down::Children => {
                    if bring.is_empty() || depth_limit.is_some_and(|l| w.depth >= l) {
                        continue;
                    }
                    (&bring, true, w.depth + 1)
                }
                Down::Always => (if w.expand { &bring } else { &new }, w.expand, w.depth),
            };
            let at: Waiting = (depth, DOWN, ei, expand);
            let pending = deferred.entry(at).or_default();
            for t in rows.iter().filter_map(|r| tuple(r, &e.parent_exprs)) {
                pending.push(&t);
            }
            if pending.len() >= DEFER_KEYS {
                run_waiting!(at);
            }
        }
    }
    out.spilled_bytes = queue.spilled_bytes;
    out.rows = included
        .into_iter()
        .map(|(leaf, r)| (source.leaf_name(leaf), r))
        .collect();
    Ok(out)
}

/// Key tuples waiting for a lookup, packed: each tuple's fields joined by NUL (which no
/// PostgreSQL text holds), about 12 bytes per integer key instead of 55 as vectors of strings.
#[derive(Debug, Default)]
struct Keys {
    text: String,
    ends: Vec<usize>,
}

impl Keys {
    fn push(&mut self, tuple: &[&str]) {
        for (i, f) in tuple.iter().enumerate() {
            if i > 0 {
                self.text.push('\0');
            }
            self.text.push_str(f);
        }
        self.ends.push(self.text.len());
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn tuples(&self) -> Vec<Vec<&str>> {
        let mut start = 0;
        self.ends
            .iter()
            .map(|&end| {
                let t = self.text[start..end].split('\0').collect();
                start = end;
                t
            })
            .collect()
    }
}

/// A waiting lookup: depth (`u32::MAX` for parent lookups), direction ([`DOWN`] before
/// [`UP`]), edge index, and whether the rows found bring their children.
type Waiting = (u32, u8, usize, bool);
/// Looking up children (rows referencing the keys).
const DOWN: u8 = 0;
/// Looking up parents (rows the keys reference).
const UP: u8 = 1;

/// Look up the rows `keys` lead to along `e` (`down`: the children holding them; else the
/// parents they reference), queueing what is found.
#[allow(clippy::too_many_arguments)]
async fn look_up<S: RowSource>(
    source: &mut S,
    e: &Edge,
    down: bool,
    keys: Keys,
    expand: bool,
    depth: u32,
    want: &[String],
    queue: &mut crate::data::subset::spill::SpillQueue,
) -> Result<(), Error> {
    let mut tuples = keys.tuples();
    tuples.sort_unstable();
    tuples.dedup();
    let (table, exprs, types, filter, reason) = if down {
        let reason = match e.down {
            Down::Always => format!("part of {}", e.parent),
            _ => format!("child of {}", e.parent),
        };
        (
            &e.child,
            &e.child_exprs,
            &e.child_types,
            e.child_filter.as_deref(),
            reason,
        )
    } else {
        let reason = format!("parent of {}", e.child);
        (&e.parent, &e.parent_exprs, &e.parent_types, None, reason)
    };
    for chunk in tuples.chunks(DEFER_KEYS) {
        source
            .find(
                table,
                exprs,
                types,
                filter,
                chunk,
                want,
                &mut |batch: Vec<Found>| {
                    let (rows, values) = batch.into_iter().map(|(l, c, _, v)| ((l, c), v)).unzip();
                    queue.push_back(Work {
                        table: table.clone(),
                        rows,
                        expand,
                        depth,
                        reason: reason.clone(),
                        values: Some(values),
                    })
                },
            )
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tables in memory: rows are maps of column → value; ctid = row index.
    #[derive(Default)]
    struct Memory {
        names: Vec<QualifiedName>,
        tables: Vec<Vec<BTreeMap<String, Option<String>>>>,
    }

    fn qn(s: &str) -> QualifiedName {
        QualifiedName {
            schema: "public".into(),
            name: s.into(),
        }
    }

    impl Memory {
        fn id(&self, table: &QualifiedName) -> Leaf {
            self.names.iter().position(|n| n == table).unwrap() as Leaf
        }

        fn add(&mut self, table: &str, rows: &[&[(&str, Option<&str>)]]) {
            self.names.push(qn(table));
            self.tables.push(Vec::new());
            let t = self.tables.last_mut().unwrap();
            for r in rows {
                t.push(
                    r.iter()
                        .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                        .collect(),
                );
            }
        }

        fn eval(row: &BTreeMap<String, Option<String>>, expr: &str) -> Option<String> {
            match expr.split_once(" = ") {
                Some((col, lit)) => Some(
                    (row.get(col).cloned().flatten().as_deref() == Some(lit.trim_matches('\'')))
                        .to_string(),
                ),
                None => row.get(expr).cloned().flatten(),
            }
        }
    }

    impl RowSource for Memory {
        fn leaf_name(&self, leaf: Leaf) -> QualifiedName {
            self.names[leaf as usize].clone()
        }

        async fn values(
            &mut self,
            leaf: Leaf,
            ctids: &[u64],
            exprs: &[String],
        ) -> Result<Vec<(u64, Vec<Option<String>>)>, Error> {
            let t = &self.tables[leaf as usize];
            Ok(ctids
                .iter()
                .map(|&c| {
                    let row = &t[c as usize];
                    (c, exprs.iter().map(|x| Memory::eval(row, x)).collect())
                })
                .collect())
        }

        async fn find(
            &mut self,
            table: &QualifiedName,
            exprs: &[String],
            _types: &[String],
            filter: Option<&str>,
            tuples: &[Vec<&str>],
            want: &[String],
            each: &mut (dyn FnMut(Vec<Found>) -> Result<(), Error> + Send),
        ) -> Result<(), Error> {
            let id = self.id(table);
            let t = &self.tables[id as usize];
            let found: Vec<Found> = t
                .iter()
                .enumerate()
                .filter(|(_, row)| {
                    filter.is_none_or(|f| Memory::eval(row, f).as_deref() == Some("true"))
                })
                .filter_map(|(i, row)| {
                    let key: Option<Vec<String>> =
                        exprs.iter().map(|x| Memory::eval(row, x)).collect();
                    key.filter(|k| tuples.iter().any(|t| t == k)).map(|k| {
                        let v = want.iter().map(|x| Memory::eval(row, x)).collect();
                        (id, i as u64, k, v)
                    })
                })
                .collect();
            // Batches of two, so the tests cover results that arrive in parts.
            for part in found.chunks(2) {
                each(part.to_vec())?;
            }
            Ok(())
        }
    }

    fn edge(name: &str, child: &str, cc: &[&str], parent: &str, pc: &[&str], down: Down) -> Edge {
        Edge {
            name: name.into(),
            child: qn(child),
            child_exprs: cc.iter().map(|s| s.to_string()).collect(),
            child_types: cc.iter().map(|_| "text".to_string()).collect(),
            child_filter: None,
            parent: qn(parent),
            parent_exprs: pc.iter().map(|s| s.to_string()).collect(),
            parent_types: pc.iter().map(|_| "text".to_string()).collect(),
            down,
            certain: false,
        }
    }

    fn root(m: &Memory, table: &str, ctids: &[u64]) -> Work {
        Work {
            table: qn(table),
            rows: ctids.iter().map(|&c| (m.id(&qn(table)), c)).collect(),
            expand: true,
            depth: 0,
            reason: "root".into(),
            values: None,
        }
    }

    fn rows(c: &Closure, table: &str) -> Vec<u64> {
        c.rows
            .get(&qn(table))
            .map(|r| r.iter().collect())
            .unwrap_or_default()
    }

    /// users ← orders ← items; orders.referrer → users (second FK to the same parent);
    /// users.manager → users (self); users.team → teams, teams.lead → users (a cycle).
    fn shop() -> Memory {
        let mut m = Memory::default();
        m.add(
            "teams",
            &[
                &[("id", Some("t1")), ("lead", Some("u2"))],
                &[("id", Some("t2")), ("lead", Some("u4"))],
            ],
        );
        m.add(
            "users",
            &[
                &[
                    ("id", Some("u1")),
                    ("manager", Some("u2")),
                    ("team", Some("t1")),
                ],
                &[("id", Some("u2")), ("manager", None), ("team", Some("t1"))],
                &[("id", Some("u3")), ("manager", Some("u1")), ("team", None)],
                &[("id", Some("u4")), ("manager", None), ("team", Some("t2"))],
            ],
        );
        m.add(
            "orders",
            &[
                &[
                    ("id", Some("o1")),
                    ("user", Some("u1")),
                    ("referrer", Some("u3")),
                ],
                &[("id", Some("o2")), ("user", Some("u2")), ("referrer", None)],
                &[("id", Some("o3")), ("user", Some("u4")), ("referrer", None)],
                &[("id", Some("o4")), ("user", Some("u9")), ("referrer", None)],
            ],
        );
        m.add(
            "items",
            &[
                &[("order", Some("o1")), ("sku", Some("a"))],
                &[("order", Some("o2")), ("sku", Some("b"))],
                &[("order", Some("o3")), ("sku", Some("c"))],
            ],
        );
        m
    }

    fn shop_edges(users_orders: Down, items: Down) -> Vec<Edge> {
        vec![
            edge(
                "orders_user",
                "orders",
                &["user"],
                "users",
                &["id"],
                users_orders,
            ),
            edge(
                "orders_referrer",
                "orders",
                &["referrer"],
                "users",
                &["id"],
                Down::Never,
            ),
            edge("items_order", "items", &["order"], "orders", &["id"], items),
            edge(
                "users_manager",
                "users",
                &["manager"],
                "users",
                &["id"],
                Down::Never,
            ),
            edge(
                "users_team",
                "users",
                &["team"],
                "teams",
                &["id"],
                Down::Never,
            ),
            edge(
                "teams_lead",
                "teams",
                &["lead"],
                "users",
                &["id"],
                Down::Never,
            ),
        ]
    }

    fn run(edges: &[Edge], roots: Vec<Work>, m: &mut Memory) -> Closure {
        run_limited(edges, roots, m, None)
    }

    fn run_limited(
        edges: &[Edge],
        roots: Vec<Work>,
        m: &mut Memory,
        depth: Option<u32>,
    ) -> Closure {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(close(edges, roots, m, depth, usize::MAX))
            .unwrap()
    }

    #[test]
    fn children_stop_at_the_depth_limit() {
        let mut m = shop();
        let edges = shop_edges(Down::Children, Down::Children);
        // users → orders is one level, orders → items a second.
        let c = run_limited(&edges, vec![root(&m, "users", &[0])], &mut m, Some(1));
        assert_eq!(rows(&c, "orders"), [0]);
        assert!(
            rows(&c, "items").is_empty(),
            "two levels down is past the limit"
        );
        let mut m = shop();
        let c = run_limited(&edges, vec![root(&m, "users", &[0])], &mut m, Some(2));
        assert_eq!(rows(&c, "items"), [0]);
    }

    #[test]
    fn parents_close_through_self_references_second_keys_and_cycles() {
        let mut m = shop();
        let c = run(
            &shop_edges(Down::Never, Down::Never),
            vec![root(&m, "orders", &[0])],
            &mut m,
        );
        // o1 → u1 (user) and u3 (referrer); u1 → u2 (manager) and t1; u3 → u1; t1 → u2.
        assert_eq!(rows(&c, "orders"), [0]);
        assert_eq!(rows(&c, "users"), [0, 1, 2]);
        assert_eq!(rows(&c, "teams"), [0]);
        assert!(rows(&c, "items").is_empty(), "no children asked for");
        assert_eq!(c.reasons[&qn("users")]["parent of public.orders"], 2);
    }

    #[test]
    fn children_come_from_roots_not_from_rows_pulled_in_as_parents() {
        let mut m = shop();
        let c = run(
            &shop_edges(Down::Children, Down::Children),
            vec![root(&m, "users", &[0])],
            &mut m,
        );
        // u1's order o1 and its item; u2 and u3 came in only as parents: o2 stays out.
        assert_eq!(rows(&c, "orders"), [0]);
        assert_eq!(rows(&c, "items"), [0]);
        assert_eq!(rows(&c, "users"), [0, 1, 2]);
    }

    #[test]
    fn validated_keys_wait_for_their_parents_and_select_the_same_rows() {
        // Certain edges defer their parent lookups (merged across steps, after the children):
        // with no orphans in the data, the rows are exactly those of immediate lookups.
        for (down, parts) in [
            (Down::Children, Down::Children),
            (Down::Never, Down::Always),
            (Down::Children, Down::Always),
        ] {
            for (table, start) in [
                ("users", vec![0]),
                ("items", vec![1]),
                ("orders", vec![0, 2]),
            ] {
                let mut m = shop();
                let plain = shop_edges(down, parts);
                let certain: Vec<Edge> = plain
                    .iter()
                    .cloned()
                    .map(|e| Edge { certain: true, ..e })
                    .collect();
                let a = run(&plain, vec![root(&m, table, &start)], &mut m);
                let b = run(&certain, vec![root(&m, table, &start)], &mut m);
                for t in ["users", "orders", "items", "teams"] {
                    assert_eq!(rows(&a, t), rows(&b, t), "{t} from {table} {start:?}");
                }
                assert_eq!(a.total(), b.total());
            }
        }
    }

    #[test]
    fn packed_keys_come_back_as_tuples() {
        let mut k = Keys::default();
        k.push(&["1"]);
        k.push(&["a", ""]);
        k.push(&["", "b c"]);
        assert_eq!(k.len(), 3);
        assert_eq!(k.tuples(), vec![vec!["1"], vec!["a", ""], vec!["", "b c"]]);
    }

    #[test]
    fn always_parts_follow_every_included_row() {
        let mut m = shop();
        // Root: u2's team t1 pulls nothing down, but an order entering as a parent of nothing…
        // here: root items of o2 only → o2 as parent → its items always (all of them).
        let c = run(
            &shop_edges(Down::Never, Down::Always),
            vec![root(&m, "items", &[1])],
            &mut m,
        );
        assert_eq!(rows(&c, "orders"), [1]);
        assert_eq!(rows(&c, "items"), [1]);
        let c = run(
            &shop_edges(Down::Never, Down::Always),
            vec![root(&m, "orders", &[0, 2])],
            &mut m,
        );
        assert_eq!(
            rows(&c, "items"),
            [0, 2],
            "every included order brings its items"
        );
    }

    #[test]
    fn orphans_are_left_out_and_counted() {
        let mut m = shop();
        let c = run(
            &shop_edges(Down::Never, Down::Never),
            vec![root(&m, "orders", &[3, 2])],
            &mut m,
        );
        assert_eq!(rows(&c, "orders"), [2], "o4's user u9 does not exist");
        assert_eq!(c.orphans["orders_user"], 1);
        assert_eq!(
            rows(&c, "users"),
            [3],
            "o3's user u4, whose team t2 it leads"
        );
        assert_eq!(rows(&c, "teams"), [1]);
    }

    #[test]
    fn polymorphic_edges_follow_only_their_type() {
        let mut m = shop();
        m.add(
            "comments",
            &[
                &[("kind", Some("order")), ("target", Some("o1"))],
                &[("kind", Some("user")), ("target", Some("u4"))],
                &[("kind", Some("user")), ("target", Some("o1"))],
            ],
        );
        let mut edges = shop_edges(Down::Never, Down::Never);
        let mut poly = edge(
            "virtual: comments(target) -> orders",
            "comments",
            &["target"],
            "orders",
            &["id"],
            Down::Children,
        );
        poly.child_filter = Some("kind = 'order'".into());
        edges.push(poly);
        let c = run(&edges, vec![root(&m, "orders", &[0])], &mut m);
        assert_eq!(rows(&c, "comments"), [0]);
        let c = run(&edges, vec![root(&m, "comments", &[1])], &mut m);
        assert!(
            rows(&c, "orders").is_empty(),
            "a user comment has no order parent"
        );
        assert_eq!(rows(&c, "comments"), [1]);
    }

    #[test]
    fn ctids_pack_and_print() {
        assert_eq!(ctid_text(pack_ctid(12, 7)), "(12,7)");
        assert_eq!(
            parse_ctid("(4294967295,1165)"),
            Some(pack_ctid(u32::MAX, 1165))
        );
        assert_eq!(parse_ctid("x"), None);
    }
}
