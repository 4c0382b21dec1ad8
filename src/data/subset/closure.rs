//! The closure engine: roots in, a [`Closure`] out, by the rules of the module above. Lookups
//! wait and merge (child lookups per depth and edge until no other work is left; parent lookups
//! along validated keys after every child lookup), and pending work beyond the memory budget
//! spills ([`crate::data::subset::spill`]).

use std::collections::{BTreeMap, HashMap};

use roaring::RoaringTreemap;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::data::pg::catalog::QualifiedName;
use crate::data::subset::{Closure, Down, Edge, Found, Leaf, Row, RowSource, Work};
use crate::error::Error;

/// Keys per lookup query (one hashed semi-join each).
const CHUNK: usize = 200_000;

/// Child keys gathered for one edge before its lookup runs regardless (bounds their memory).
const DEFER_KEYS: usize = 500_000;

/// Rows handled per step of the closure (bounds the memory of one step).
const WORK_CHUNK: usize = 100_000;

/// Close `roots` under the edges: see the module docs. `depth_limit` bounds `Children` edges.
pub(crate) async fn close<S: RowSource>(
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
#[path = "closure_tests.rs"]
mod tests;
