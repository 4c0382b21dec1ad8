//! Subsetting against PostgreSQL: the plan's `subset:` met with the catalog (edges, static
//! reachability: a table no root reaches must be declared `full` or `empty`), root rows picked
//! under the snapshot, and [`PgRows`], the [`RowSource`] that looks rows up by key in batches
//! (`= ANY`) and reads them back by `ctid`. Nothing is written to the source: key sets live in
//! sluice.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use futures_util::StreamExt;
use tokio_postgres::Transaction;

use crate::config::refresh::{Children, Root, SampleMethod, Subset};
use crate::data::mask::MaskKey;
use crate::data::pg::catalog::{Catalog, QualifiedName, sql_ident};
use crate::data::pg::catalog::{parse_table, yaml_table};
use crate::data::pg::pg_error;
use crate::data::subset::{Down, Edge, FOUND_BATCH, Found, Leaf, Row, RowSource, Work, parse_ctid};
use crate::error::Error;

/// A subset met with the catalog.
#[derive(Debug, Clone)]
pub(crate) struct SubsetPlan {
    /// Every edge, declared and virtual.
    pub edges: Vec<Edge>,
    /// The roots as configured, with their tables resolved.
    pub roots: Vec<(QualifiedName, Root)>,
    /// Copied whole.
    pub full: Vec<QualifiedName>,
    /// Created empty.
    pub empty: Vec<QualifiedName>,
    /// Levels for `children: all`.
    pub depth_limit: Option<u32>,
    /// Memory the closure's pending work may take before it spills.
    pub memory_budget: usize,
}

/// `schema.table(a, b)` → the table and the parts between the parentheses (split at top-level
/// commas; quotes of either kind keep commas and parentheses). A part that is a column name
/// (`user_id`, `"User"`) comes back as the name, folded as SQL folds it; any other part (an
/// expression such as `payload->>'id'`) as written.
pub(crate) fn parse_key_ref(s: &str) -> Result<(QualifiedName, Vec<String>), String> {
    let mut in_ident = false;
    let open = s.char_indices().find_map(|(i, c)| match c {
        '"' => {
            in_ident = !in_ident;
            None
        }
        '(' if !in_ident => Some(i),
        _ => None,
    });
    let Some(open) = open else {
        return Ok((parse_table(s.trim())?, Vec::new()));
    };
    let (table, rest) = (&s[..open], &s[open + 1..]);
    let inner = rest
        .trim_end()
        .strip_suffix(')')
        .ok_or_else(|| format!("`{s}`: missing `)`"))?;
    let mut parts = Vec::new();
    let (mut depth, mut quote, mut cur) = (0, None, String::new());
    for c in inner.chars() {
        match (c, quote) {
            ('\'' | '"', None) => quote = Some(c),
            (c, Some(q)) if c == q => quote = None,
            ('(', None) => depth += 1,
            (')', None) => depth -= 1,
            (',', None) if depth == 0 => {
                parts.push(key_part(&cur));
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    parts.push(key_part(&cur));
    if parts.iter().any(String::is_empty) {
        return Err(format!("`{s}`: an empty part between the parentheses"));
    }
    Ok((parse_table(table.trim())?, parts))
}

/// One part of a key reference: a column name when it is one, else the expression.
fn key_part(s: &str) -> String {
    let t = s.trim();
    match crate::data::pg::catalog::split_path(t) {
        Ok(p) if p.len() == 1 && (t.starts_with('"') || is_identifier(t)) => p[0].clone(),
        _ => t.to_string(),
    }
}

fn root_of(catalog: &Catalog, t: &QualifiedName) -> QualifiedName {
    let mut t = t.clone();
    for _ in 0..32 {
        match catalog.tables.get(&t).and_then(|x| x.partition_of.clone()) {
            Some(p) => t = p,
            None => break,
        }
    }
    t
}

fn column_type(catalog: &Catalog, t: &QualifiedName, c: &str) -> Option<String> {
    catalog
        .tables
        .get(t)?
        .columns
        .iter()
        .find(|x| x.name == c)
        .map(|x| x.type_name.clone())
}

fn is_identifier(s: &str) -> bool {
    s.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_alphanumeric() || c == '_')
}

/// Meet `subset:` with the catalog. Every problem is listed at once; `file` and `plan` name
/// the place for the user.
pub(crate) fn plan_subset(
    cfg: &Subset,
    catalog: &Catalog,
    plan: &str,
) -> Result<SubsetPlan, Vec<(String, String)>> {
    // Each problem with the position key of its entry (`subset.children:<entry>`).
    let mut problems: Vec<(String, String)> = Vec::new();
    let mut table = |s: &str, what: &str| -> Option<QualifiedName> {
        let at = format!("subset.{what}:{s}");
        match parse_table(s) {
            Ok(t) if catalog.tables.contains_key(&t) => Some(root_of(catalog, &t)),
            Ok(t) => {
                problems.push((
                    at,
                    format!("`subset.{what}` entry `{s}`: the source has no table {t}"),
                ));
                None
            }
            Err(e) => {
                problems.push((at, format!("`subset.{what}` entry `{s}`: {e}")));
                None
            }
        }
    };
    let roots: Vec<(QualifiedName, Root)> = cfg
        .roots
        .iter()
        .filter_map(|r| table(&r.table, "roots").map(|t| (t, r.clone())))
        .collect();
    let full: Vec<QualifiedName> = cfg.full.iter().filter_map(|t| table(t, "full")).collect();
    let empty: Vec<QualifiedName> = cfg.empty.iter().filter_map(|t| table(t, "empty")).collect();
    for r in &cfg.roots {
        if r.percent.is_some_and(|p| !(p > 0.0 && p <= 100.0)) {
            problems.push((
                format!("subset.roots:{}", r.table),
                format!("`subset.roots` of {}: percent must be in (0, 100]", r.table),
            ));
        }
    }

    // Which downward rule applies to an edge from `child` over `columns`. Each entry keeps its
    // text and list, to be checked against the edges once they are known.
    type Entry = (QualifiedName, Vec<String>, String, &'static str);
    let mut rule_refs = |list: &[String], what: &'static str| -> Vec<Entry> {
        list.iter()
            .filter_map(|s| match parse_key_ref(s) {
                Ok((t, cols)) if catalog.tables.contains_key(&t) => {
                    Some((root_of(catalog, &t), cols, s.clone(), what))
                }
                Ok((t, _)) => {
                    problems.push((
                        format!("subset.{what}:{s}"),
                        format!(
                            "`subset.{what}` entry `{s}`: the source has no table {t}{}",
                            catalog.did_you_mean(&t)
                        ),
                    ));
                    None
                }
                Err(e) => {
                    problems.push((
                        format!("subset.{what}:{s}"),
                        format!("`subset.{what}` entry `{s}`: {e}"),
                    ));
                    None
                }
            })
            .collect()
    };
    let always = rule_refs(&cfg.always, "always");
    let (children_all, children) = match &cfg.children {
        Children::All(_) => (true, Vec::new()),
        Children::Listed(l) => (false, rule_refs(l, "children")),
    };
    let matches = |rules: &[Entry], child: &QualifiedName, cols: &[String]| {
        rules
            .iter()
            .any(|(t, c, _, _)| t == child && (c.is_empty() || c.as_slice() == cols))
    };
    // Every edge as the user names it: (child, columns, how to show it).
    let mut named: Vec<(QualifiedName, Vec<String>, String)> = Vec::new();
    let down = |child: &QualifiedName, cols: &[String]| {
        if matches(&always, child, cols) {
            Down::Always
        } else if children_all || matches(&children, child, cols) {
            Down::Children
        } else {
            Down::Never
        }
    };

    let mut edges: Vec<Edge> = Vec::new();
    for t in catalog.tables.values() {
        for fk in &t.foreign_keys {
            let child = root_of(catalog, &t.name);
            let parent = root_of(catalog, &fk.references);
            named.push((
                child.clone(),
                fk.columns.clone(),
                format!(
                    "{} ({}) -> {}",
                    crate::data::pg::catalog::quote_ident(&fk.name),
                    fk.columns
                        .iter()
                        .map(|c| crate::data::pg::catalog::quote_ident(c))
                        .collect::<Vec<_>>()
                        .join(", "),
                    parent
                ),
            ));
            let e = Edge {
                name: fk.name.clone(),
                child_exprs: fk.columns.iter().map(|c| sql_ident(c)).collect(),
                child_types: fk
                    .columns
                    .iter()
                    .map(|c| column_type(catalog, &t.name, c).unwrap_or_else(|| "text".into()))
                    .collect(),
                child_filter: None,
                parent_exprs: fk.referenced_columns.iter().map(|c| sql_ident(c)).collect(),
                parent_types: fk
                    .referenced_columns
                    .iter()
                    .map(|c| {
                        column_type(catalog, &fk.references, c).unwrap_or_else(|| "text".into())
                    })
                    .collect(),
                down: down(&child, &fk.columns),
                child,
                parent,
                certain: fk.validated,
            };
            // One key declared on a partitioned table shows on every partition: one edge,
            // certain only if every copy is validated.
            match edges.iter_mut().find(|x| {
                x.child == e.child && x.child_exprs == e.child_exprs && x.parent == e.parent
            }) {
                Some(x) => x.certain &= e.certain,
                None => edges.push(e),
            }
        }
    }
    for v in &cfg.virtual_keys {
        let (from, to) = match (parse_key_ref(&v.from), parse_key_ref(&v.to)) {
            (Ok(f), Ok(t)) => (f, t),
            (Err(e), _) | (_, Err(e)) => {
                problems.push((String::new(), format!("`subset.virtual_keys`: {e}")));
                continue;
            }
        };
        let ((ct, cexprs), (pt, pcols)) = (from, to);
        if !catalog.tables.contains_key(&ct) || !catalog.tables.contains_key(&pt) {
            problems.push((
                String::new(),
                format!(
                    "`subset.virtual_keys`: {} -> {}: the source has no such table",
                    v.from, v.to
                ),
            ));
            continue;
        }
        if cexprs.len() != pcols.len() || cexprs.is_empty() {
            problems.push((
                String::new(),
                format!(
                    "`subset.virtual_keys`: {} -> {}: name as many referencing parts as referenced columns",
                    v.from, v.to
                ),
            ));
            continue;
        }
        let mut bad = false;
        for c in &pcols {
            if column_type(catalog, &pt, c).is_none() {
                problems.push((
                    String::new(),
                    format!("`subset.virtual_keys`: {pt} has no column `{c}`"),
                ));
                bad = true;
            }
        }
        let child_filter = match (&v.type_column, &v.type_value) {
            (Some(c), Some(val)) => {
                if column_type(catalog, &ct, c).is_none() {
                    problems.push((
                        String::new(),
                        format!("`subset.virtual_keys`: {ct} has no column `{c}`"),
                    ));
                    bad = true;
                }
                Some(format!("{} = '{}'", sql_ident(c), val.replace('\'', "''")))
            }
            (None, None) => None,
            _ => {
                problems.push((
                    String::new(),
                    "`subset.virtual_keys`: give both `type_column` and `type_value`".into(),
                ));
                bad = true;
                None
            }
        };
        if bad {
            continue;
        }
        let child = root_of(catalog, &ct);
        let (child_exprs, child_types): (Vec<String>, Vec<String>) = cexprs
            .iter()
            .map(|x| match column_type(catalog, &ct, x) {
                Some(ty) => (sql_ident(x), ty),
                None => (format!("({x})"), "text".to_string()),
            })
            .unzip();
        named.push((
            child.clone(),
            cexprs.clone(),
            format!(
                "virtual ({}) -> {}",
                cexprs.join(", "),
                root_of(catalog, &pt)
            ),
        ));
        edges.push(Edge {
            name: format!("virtual: {} -> {}", v.from, v.to),
            down: down(&child, &cexprs),
            child,
            child_exprs,
            child_types,
            child_filter,
            parent: root_of(catalog, &pt),
            parent_exprs: pcols.iter().map(|c| sql_ident(c)).collect(),
            parent_types: pcols
                .iter()
                .map(|c| column_type(catalog, &pt, c).unwrap_or_else(|| "text".into()))
                .collect(),
            certain: false,
        });
    }

    // Every `children` and `always` entry must name edges that exist: a wrong column would
    // otherwise match nothing and the subset would silently shrink.
    for (t, cols, text, what) in always.iter().chain(&children) {
        let keys: Vec<&(QualifiedName, Vec<String>, String)> =
            named.iter().filter(|(c, _, _)| c == t).collect();
        if keys.iter().any(|(_, c, _)| cols.is_empty() || c == cols) {
            continue;
        }
        let unknown: Vec<&String> = cols
            .iter()
            .filter(|c| is_identifier(c) || !c.contains(['(', '-', '>', ' ', ':']))
            .filter(|c| column_type(catalog, t, c).is_none())
            .collect();
        let why = if !unknown.is_empty() {
            format!(
                "{t} has no column {}",
                unknown
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else if cols.is_empty() {
            format!("{t} has no foreign key, so no row of it can follow another")
        } else {
            format!(
                "{t} has no foreign key on ({})",
                cols.iter()
                    .map(|c| crate::data::pg::catalog::quote_ident(c))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let have = if keys.is_empty() {
            "; declare the relationship under `subset.virtual_keys`".to_string()
        } else {
            format!(
                "; its keys: {}",
                keys.iter()
                    .map(|(_, _, d)| d.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        };
        problems.push((
            format!("subset.{what}:{text}"),
            format!("`subset.{what}` entry `{text}`: {why}{have}"),
        ));
    }

    // Every table must be reached by a root (up to parents, down the chosen edges), or be
    // declared full or empty.
    let mut reached: BTreeSet<QualifiedName> = roots.iter().map(|(t, _)| t.clone()).collect();
    reached.extend(full.iter().cloned());
    loop {
        let before = reached.len();
        for e in &edges {
            if reached.contains(&e.child) {
                reached.insert(e.parent.clone());
            }
            if e.down != Down::Never && reached.contains(&e.parent) {
                reached.insert(e.child.clone());
            }
        }
        if reached.len() == before {
            break;
        }
    }
    let unreached: Vec<&QualifiedName> = catalog
        .tables
        .values()
        .filter(|t| t.partition_of.is_none())
        .map(|t| &t.name)
        .filter(|t| !reached.contains(t) && !empty.contains(t))
        .collect();
    if !unreached.is_empty() {
        let list = unreached
            .iter()
            .map(|t| yaml_table(t))
            .collect::<Vec<_>>()
            .join(", ");
        problems.push((
            String::new(),
            format!(
                "refresh plan `{plan}`: no root reaches {} table(s) (fail-closed); say for each under `subset:` whether it is copied whole or left empty:\n      full: [{list}]    # lookup tables: every row\n      empty: [{list}]   # schema only",
                unreached.len()
            ),
        ));
    }
    let memory_budget = match cfg
        .memory
        .as_deref()
        .map(crate::data::subset::spill::parse_size)
    {
        None => crate::data::subset::spill::DEFAULT_BUDGET,
        Some(Ok(n)) => n,
        Some(Err(e)) => {
            problems.push((
                String::new(),
                format!("refresh plan `{plan}`: subset.memory: {e}"),
            ));
            0
        }
    };
    if problems.is_empty() {
        Ok(SubsetPlan {
            edges,
            roots,
            full,
            empty,
            memory_budget,
            depth_limit: match cfg.children {
                Children::All(_) => Some(cfg.depth.unwrap_or(3)),
                Children::Listed(_) => None,
            },
        })
    } else {
        Err(problems)
    }
}

/// Reads rows of the source under the refresh's snapshot.
pub(crate) struct PgRows<'a> {
    tx: &'a Transaction<'a>,
    names: HashMap<u32, QualifiedName>,
}

impl<'a> PgRows<'a> {
    /// A row source over `tx` (a transaction on the snapshot).
    pub(crate) async fn new(tx: &'a Transaction<'a>) -> Result<PgRows<'a>, Error> {
        // Lookups are hashed semi-joins over up to half a million keys: give this read-only
        // transaction the memory to hash them without spilling to temporary files.
        tx.batch_execute("set local work_mem = '64MB'")
            .await
            .map_err(|e| pg_error("setting work_mem for the subset lookups", e))?;
        let names = tx
            .query(
                "select c.oid, n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.relkind in ('r', 'p')",
                &[],
            )
            .await
            .map_err(|e| pg_error("reading table names", e))?
            .iter()
            .map(|r| {
                (
                    r.get::<_, u32>(0),
                    QualifiedName {
                        schema: r.get(1),
                        name: r.get(2),
                    },
                )
            })
            .collect();
        Ok(PgRows { tx, names })
    }

    fn leaf(&self, oid: u32) -> Result<QualifiedName, Error> {
        self.names
            .get(&oid)
            .cloned()
            .ok_or_else(|| Error::External {
                what: "postgresql".into(),
                detail: format!("a row of relation {oid}, which the catalog did not list"),
            })
    }

    /// The rows a root picks, as `(leaf, ctid)`. Keyed sampling hashes each row's primary key
    /// (or whole row) with the masking key: the same key and data give the same rows.
    pub(crate) async fn root_rows(
        &self,
        table: &QualifiedName,
        root: &Root,
        primary_key: &[String],
        key: &MaskKey,
    ) -> Result<Vec<Row>, Error> {
        let cond = root.condition.as_deref().unwrap_or("true");
        let identity = if primary_key.is_empty() {
            "t::text".to_string()
        } else {
            format!(
                "row({})::text",
                primary_key
                    .iter()
                    .map(|c| format!("t.{}", sql_ident(c)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let order = if primary_key.is_empty() {
            "t.tableoid, t.ctid".to_string()
        } else {
            primary_key
                .iter()
                .map(|c| format!("t.{}", sql_ident(c)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let limit = root
            .limit
            .map(|l| format!(" limit {l}"))
            .unwrap_or_default();
        let what = format!("picking the roots of {table}");
        let rows: Vec<(u32, String)> = match (root.percent, root.method) {
            (Some(p), SampleMethod::Keyed) => {
                // Hash every candidate in sluice; keep the share, smallest hashes first.
                let stream = self
                    .tx
                    .query_raw(
                        &format!(
                            "select t.tableoid, t.ctid::text, {identity} from {} t where {cond}",
                            table.sql()
                        ),
                        Vec::<String>::new(),
                    )
                    .await
                    .map_err(|e| pg_error(&what, e))?;
                futures_util::pin_mut!(stream);
                let threshold = (p / 100.0 * u64::MAX as f64) as u64;
                let mut kept: Vec<(u64, u32, String)> = Vec::new();
                while let Some(r) = stream.next().await {
                    let r = r.map_err(|e| pg_error(&what, e))?;
                    let id: String = r.get(2);
                    let h = key.mac(&[
                        b"subset\0",
                        table.to_string().as_bytes(),
                        b"\0",
                        id.as_bytes(),
                    ]);
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&h[..8]);
                    let v = u64::from_le_bytes(b);
                    if v <= threshold {
                        kept.push((v, r.get(0), r.get(1)));
                    }
                }
                kept.sort();
                if let Some(l) = root.limit {
                    kept.truncate(l as usize);
                }
                kept.into_iter().map(|(_, o, c)| (o, c)).collect()
            }
            (percent, _) => {
                // TABLESAMPLE, or the first rows by primary key.
                let (sample, order) = match percent {
                    Some(p) => (format!(" tablesample system ({p})"), String::new()),
                    None => (String::new(), format!(" order by {order}")),
                };
                self.tx
                    .query(
                        &format!(
                            "select t.tableoid, t.ctid::text from {} t{sample} where {cond}{order}{limit}",
                            table.sql()
                        ),
                        &[],
                    )
                    .await
                    .map_err(|e| pg_error(&what, e))?
                    .iter()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect()
            }
        };
        rows.into_iter()
            .map(|(oid, c)| {
                self.leaf(oid)?;
                Ok((
                    oid,
                    parse_ctid(&c).ok_or_else(|| Error::External {
                        what: "postgresql".into(),
                        detail: format!("unexpected ctid `{c}`"),
                    })?,
                ))
            })
            .collect()
    }

    /// Every row of `table` (`full:` tables), as `(leaf, ctid)`.
    pub(crate) async fn all_rows(&self, table: &QualifiedName) -> Result<Vec<Row>, Error> {
        let root = Root {
            table: String::new(),
            condition: None,
            percent: None,
            method: SampleMethod::Keyed,
            limit: None,
        };
        self.root_rows(table, &root, &[], &MaskKey::new(b"")).await
    }
}

impl RowSource for PgRows<'_> {
    fn leaf_name(&self, leaf: Leaf) -> QualifiedName {
        self.names
            .get(&leaf)
            .cloned()
            .unwrap_or_else(|| QualifiedName {
                schema: String::new(),
                name: format!("relation {leaf}"),
            })
    }

    async fn values(
        &mut self,
        leaf: Leaf,
        ctids: &[u64],
        exprs: &[String],
    ) -> Result<Vec<(u64, Vec<Option<String>>)>, Error> {
        let list = exprs
            .iter()
            .map(|x| format!("({x})::text"))
            .collect::<Vec<_>>()
            .join(", ");
        let texts: Vec<String> = ctids
            .iter()
            .map(|&c| crate::data::subset::ctid_text(c))
            .collect();
        let leaf = self.leaf(leaf)?.clone();
        let rows = self
            .tx
            .query(
                &format!(
                    "select ctid::text, {list} from only {} t where ctid = any($1::text[]::tid[])",
                    leaf.sql()
                ),
                &[&texts],
            )
            .await
            .map_err(|e| pg_error(&format!("reading keys of {leaf}"), e))?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let c = parse_ctid(&r.get::<_, String>(0))?;
                Some((
                    c,
                    (1..=exprs.len())
                        .map(|i| r.get::<_, Option<String>>(i))
                        .collect(),
                ))
            })
            .collect())
    }

    async fn find(
        &mut self,
        table: &QualifiedName,
        exprs: &[String],
        types: &[String],
        filter: Option<&str>,
        tuples: &[Vec<&str>],
        want: &[String],
        each: &mut (dyn FnMut(Vec<Found>) -> Result<(), Error> + Send),
    ) -> Result<(), Error> {
        let keys = exprs.join(", ");
        let texts = exprs
            .iter()
            .chain(want)
            .map(|x| format!("({x})::text"))
            .collect::<Vec<_>>()
            .join(", ");
        let unnest = (1..=exprs.len())
            .map(|i| format!("${i}::text[]::{}[]", types[i - 1]))
            .collect::<Vec<_>>()
            .join(", ");
        // One key column: `= any(array)`, which PostgreSQL hashes (a seq scan with a hashed
        // filter) or probes in index order, as the keys' number warrants. An `in (select …
        // unnest)` semi-join is planned as if the keys repeated (200 distinct, by default), so
        // 270 000 keys became 270 000 nested index probes: 2.1 s against 0.6 s. Composite keys
        // keep the semi-join.
        let matching = if exprs.len() == 1 {
            format!("{keys} = any({unnest})")
        } else {
            format!("({keys}) in (select * from unnest({unnest}))")
        };
        let sql = format!(
            "select t.tableoid, t.ctid::text, {texts} from {} t where {matching}{}",
            table.sql(),
            filter.map(|f| format!(" and ({f})")).unwrap_or_default()
        );
        let columns: Vec<Vec<&str>> = (0..exprs.len())
            .map(|i| tuples.iter().map(|t| t[i]).collect())
            .collect();
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = columns
            .iter()
            .map(|c| c as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let failed = |e| pg_error(&format!("looking up rows of {table}"), e);
        // Streamed: rows are handed on in batches as they arrive.
        let stream = self.tx.query_raw(&sql, params).await.map_err(failed)?;
        futures_util::pin_mut!(stream);
        let mut batch = Vec::with_capacity(FOUND_BATCH);
        while let Some(r) = stream.next().await {
            let r = r.map_err(failed)?;
            let c: String = r.get(1);
            let oid: u32 = r.get(0);
            self.leaf(oid)?;
            batch.push((
                oid,
                parse_ctid(&c).unwrap_or(0),
                (2..2 + exprs.len())
                    .map(|i| r.get::<_, Option<String>>(i).unwrap_or_default())
                    .collect(),
                (2 + exprs.len()..2 + exprs.len() + want.len())
                    .map(|i| r.get::<_, Option<String>>(i))
                    .collect(),
            ));
            if batch.len() >= FOUND_BATCH {
                each(std::mem::replace(
                    &mut batch,
                    Vec::with_capacity(FOUND_BATCH),
                ))?;
            }
        }
        if !batch.is_empty() {
            each(batch)?;
        }
        Ok(())
    }
}

/// Root and `full:` work for the closure.
pub(crate) async fn starting_rows(
    rows: &PgRows<'_>,
    plan: &SubsetPlan,
    catalog: &Catalog,
    key: &MaskKey,
) -> Result<Vec<Work>, Error> {
    let mut work = Vec::new();
    for (t, r) in &plan.roots {
        let pk = catalog
            .tables
            .get(t)
            .map(|x| x.primary_key.clone())
            .unwrap_or_default();
        work.push(Work {
            table: t.clone(),
            rows: rows.root_rows(t, r, &pk, key).await?,
            expand: true,
            depth: 0,
            reason: "root".into(),
            values: None,
        });
    }
    for t in &plan.full {
        work.push(Work {
            table: t.clone(),
            rows: rows.all_rows(t).await?,
            expand: false,
            depth: 0,
            reason: "full".into(),
            values: None,
        });
    }
    Ok(work)
}

/// Per table, rows by reason, for `--explain` and the report.
pub(crate) fn explain(
    closure: &crate::data::subset::Closure,
) -> BTreeMap<String, BTreeMap<String, u64>> {
    closure
        .reasons
        .iter()
        .map(|(t, r)| (t.to_string(), r.clone()))
        .collect()
}
