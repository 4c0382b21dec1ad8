//! The units of copying: a table, a block range of a large one, or a subset's chunk of rows by
//! position; and how the shards of one load deal them out.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::data::pg::catalog::QualifiedName;
use crate::data::refresh::plan::Plan;
use crate::data::refresh::plan::TablePlan;
use crate::error::Error;

/// One unit of copying: a table, or a block range of a large one.
pub(crate) struct Task {
    /// The table.
    pub table: Arc<TablePlan>,
    /// The table's name, with `[i/n]` for a part.
    pub label: String,
    /// Which rows: a block range or a list of row positions; none for the whole table.
    pub filter: Option<String>,
    /// The planner's estimate.
    pub estimated_rows: i64,
}

/// Rows per COPY when a subset names them by position.
pub(crate) const SUBSET_CHUNK: usize = 20_000;

/// The copy tasks of a subset: `full` tables whole, every other table's selected rows by
/// position (`ctid = ANY(…)`, a TID scan), in chunks; tables with nothing selected stay empty.
pub(crate) fn subset_tasks(
    plan: &Plan,
    selection: &BTreeMap<QualifiedName, roaring::RoaringTreemap>,
    whole: &BTreeSet<QualifiedName>,
) -> Vec<Task> {
    let mut tasks = Vec::new();
    for t in &plan.tables {
        let t = Arc::new(t.clone());
        if whole.contains(&t.name) {
            tasks.push(Task {
                label: t.name.to_string(),
                filter: None,
                estimated_rows: t.estimated_rows,
                table: t,
            });
            continue;
        }
        let Some(rows) = selection.get(&t.name).filter(|r| !r.is_empty()) else {
            continue;
        };
        let ctids: Vec<u64> = rows.iter().collect();
        let parts = ctids.len().div_ceil(SUBSET_CHUNK);
        for (i, chunk) in ctids.chunks(SUBSET_CHUNK).enumerate() {
            let list = chunk
                .iter()
                .map(|&c| format!("\"{}\"", crate::data::subset::ctid_text(c)))
                .collect::<Vec<_>>()
                .join(",");
            tasks.push(Task {
                label: if parts == 1 {
                    t.name.to_string()
                } else {
                    format!("{} [{}/{parts}]", t.name, i + 1)
                },
                filter: Some(format!("ctid = any('{{{list}}}'::tid[])")),
                estimated_rows: chunk.len() as i64,
                table: Arc::clone(&t),
            });
        }
    }
    tasks
}

/// Tables of at least this size are copied in block ranges on several connections at once
/// (`SLUICE_SPLIT_MIN_BYTES` overrides it).
pub(crate) const SPLIT_BYTES: i64 = 256 << 20;

pub(crate) fn split_min_bytes() -> i64 {
    std::env::var("SLUICE_SPLIT_MIN_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&v: &i64| v > 0)
        .unwrap_or(SPLIT_BYTES)
}

/// The copy tasks, largest first: a table at least [`SPLIT_BYTES`] large is cut into up to
/// `jobs / 2` block ranges (`ctid` ranges, scanned as TID ranges since PostgreSQL 14), the last
/// one open-ended so rows on blocks added after the statistics are not missed. Each stream keeps
/// two server processes busy (the source's COPY out, the target's COPY in), so with two jobs a
/// table stays whole, and a whole table loads with COPY FREEZE, which a range cannot.
pub(crate) fn split_tasks(
    plan: &Plan,
    jobs: usize,
    server_version: i32,
    block_size: i64,
    min_bytes: i64,
) -> Vec<Task> {
    let mut tasks = Vec::new();
    for t in &plan.tables {
        let t = Arc::new(t.clone());
        let parts = if server_version >= 140000 && jobs >= 4 && t.bytes >= min_bytes {
            (jobs / 2).min((t.bytes / (min_bytes / 4).max(1)).max(1) as usize)
        } else {
            1
        };
        if parts == 1 {
            tasks.push(Task {
                label: t.name.to_string(),
                filter: None,
                estimated_rows: t.estimated_rows,
                table: t,
            });
            continue;
        }
        let blocks = (t.bytes / block_size.max(1)).max(parts as i64);
        for i in 0..parts {
            let lo = blocks * i as i64 / parts as i64;
            let hi = blocks * (i as i64 + 1) / parts as i64;
            let filter = match (i, i + 1 == parts) {
                (0, _) => format!("ctid < '({hi},0)'::tid"),
                (_, true) => format!("ctid >= '({lo},0)'::tid"),
                _ => format!("ctid >= '({lo},0)'::tid and ctid < '({hi},0)'::tid"),
            };
            tasks.push(Task {
                label: format!("{} [{}/{parts}]", t.name, i + 1),
                filter: Some(filter),
                estimated_rows: t.estimated_rows / parts as i64,
                table: Arc::clone(&t),
            });
        }
    }
    tasks
}

/// Which shard of a sharded load this process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shard {
    /// 0-based.
    pub index: u32,
    /// How many shards share the load.
    pub count: u32,
}

impl Shard {
    /// `i/N`, 0 ≤ i < N ≤ 1024.
    pub(crate) fn parse(text: &str) -> Result<Shard, Error> {
        let bad = || {
            Error::Usage(format!(
                "--shard `{text}` is not i/N with 0 <= i < N (e.g. 0/4 for the first of four shards; a Kubernetes Indexed Job passes $JOB_COMPLETION_INDEX)"
            ))
        };
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let (index, count): (u32, u32) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || count > 1024 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// This shard's tasks: every shard orders the same task list (same catalog, same snapshot) by
/// size and deals it out greedily, each task to the least-loaded shard.
pub(crate) fn share(tasks: Vec<Task>, shard: Shard) -> Vec<Task> {
    let mut order: Vec<Task> = tasks;
    order.sort_by(|a, b| {
        b.estimated_rows
            .cmp(&a.estimated_rows)
            .then_with(|| a.label.cmp(&b.label))
    });
    let mut load = vec![0i64; shard.count as usize];
    let mut mine = Vec::new();
    for t in order {
        let (least, _) = load
            .iter()
            .enumerate()
            .min_by_key(|(i, l)| (**l, *i))
            .unwrap_or((0, &0));
        load[least] += t.estimated_rows.max(1);
        if least == shard.index as usize {
            mine.push(t);
        }
    }
    mine
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::refresh::plan::TablePlan;

    fn plan(bytes: &[i64]) -> Plan {
        Plan {
            tables: bytes
                .iter()
                .enumerate()
                .map(|(i, b)| TablePlan {
                    name: QualifiedName {
                        schema: "public".into(),
                        name: format!("t{i}"),
                    },
                    columns: vec![],
                    estimated_rows: 1000,
                    bytes: *b,
                })
                .collect(),
            ..Plan::default()
        }
    }

    #[test]
    fn shards_partition_the_tasks_and_balance_them_by_size() {
        let p = plan(&[1 << 30, 1 << 20]);
        let tasks = || {
            let mut t = split_tasks(&p, 8, 150000, 8192, SPLIT_BYTES);
            for (i, task) in t.iter_mut().enumerate() {
                task.estimated_rows = [900, 100, 500, 400, 300][i % 5];
            }
            t
        };
        let all: Vec<String> = tasks().into_iter().map(|t| t.label).collect();
        let shards: Vec<Vec<String>> = (0..3)
            .map(|i| {
                share(tasks(), Shard { index: i, count: 3 })
                    .into_iter()
                    .map(|t| t.label)
                    .collect()
            })
            .collect();
        let mut dealt: Vec<String> = shards.concat();
        dealt.sort();
        let mut expected = all.clone();
        expected.sort();
        assert_eq!(dealt, expected, "every task exactly once");
        assert!(shards.iter().all(|s| !s.is_empty()));
        assert_eq!(
            share(tasks(), Shard { index: 0, count: 1 }).len(),
            all.len()
        );
        assert!(Shard::parse("2/4").is_ok());
        for bad in ["4/4", "1", "a/2", "0/0", "-1/2"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn large_tables_split_into_contiguous_block_ranges() {
        let p = plan(&[1 << 30, 1 << 20]);
        let tasks = split_tasks(&p, 8, 150000, 8192, SPLIT_BYTES);
        let big: Vec<&Task> = tasks.iter().filter(|t| t.table.name.name == "t0").collect();
        assert_eq!(big.len(), 4, "jobs / 2 streams");
        assert_eq!(big[0].filter.as_deref(), Some("ctid < '(32768,0)'::tid"));
        assert_eq!(
            big[1].filter.as_deref(),
            Some("ctid >= '(32768,0)'::tid and ctid < '(65536,0)'::tid")
        );
        assert_eq!(big[3].filter.as_deref(), Some("ctid >= '(98304,0)'::tid"));
        assert_eq!(big[2].label, "public.t0 [3/4]");
        let small: Vec<&Task> = tasks.iter().filter(|t| t.table.name.name == "t1").collect();
        assert_eq!(small.len(), 1);
        assert!(small[0].filter.is_none());
        // Two jobs, or a server before TID range scans: whole tables (and COPY FREEZE).
        assert_eq!(split_tasks(&p, 2, 150000, 8192, SPLIT_BYTES).len(), 2);
        assert_eq!(split_tasks(&p, 8, 130000, 8192, SPLIT_BYTES).len(), 2);
    }
}
