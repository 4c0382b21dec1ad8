//! `sluice verify PLAN`: does a refreshed target hold what the plan promised? Source and target
//! connections and the plan in; a [`Verdict`] out: row counts per table (the source is live, so
//! a difference is reported, not failed), every foreign key of the target checked by query, and
//! a bounded sample of each masked column's source values looked up in the target: by primary
//! key where the key is copied unmasked (a row still holding its own source value is a leak),
//! else anywhere in the column. A value the transform maps to itself (noise on zero) is not a
//! leak. Values are never printed, only counts.

use tokio_postgres::Client;

use crate::data::mask::parse::transform_name;
use crate::data::mask::structured::{containing, leaves, parse_array};
use crate::data::mask::{MaskKey, Transform};
use crate::data::pg::catalog::{self, sql_ident};
use crate::data::pg::pg_error;
use crate::data::pg::{connect, parse_url, runtime};
use crate::data::refresh::plan::Plan;
use crate::error::Error;
use crate::secrets::SecretValue;

/// One table's row counts.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Count {
    /// The table.
    pub table: String,
    /// Rows in the source now.
    pub source: i64,
    /// Rows in the target.
    pub target: i64,
    /// The plan copies a subset: fewer rows in the target are by design.
    pub subset: bool,
}

/// One masked column (or JSON path) checked for leaks.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct LeakCheck {
    /// `table.column`, with ` $.path` for a path inside a JSON column.
    pub column: String,
    /// Its transform.
    pub transform: String,
    /// Source values sampled (JSON leaves at the path, array elements, or column values) that
    /// the transform changes.
    pub sampled: usize,
    /// Of those, found unchanged in the target: in the same place of the same row when the
    /// primary key is copied unmasked, anywhere in the column otherwise.
    pub found: i64,
}

/// One foreign key's check.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct KeyCheck {
    /// `table.constraint`.
    pub key: String,
    /// Rows whose key points at no row (beyond those of a NOT VALID key's source).
    pub orphans: i64,
    /// Rows of a NOT VALID key that point at no row, as they do in the source.
    pub not_valid_orphans: i64,
}

/// What verification found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(crate) struct Verdict {
    /// Row counts.
    pub counts: Vec<Count>,
    /// Foreign keys.
    pub keys: Vec<KeyCheck>,
    /// Masked columns.
    pub leaks: Vec<LeakCheck>,
    /// The known-values sweep: sampled source values of the masked columns looked for in every
    /// other text-like column of the target.
    pub sweep: Sweep,
}

/// The known-values sweep's result.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub(crate) struct Sweep {
    /// Distinct source values looked for.
    pub values: usize,
    /// The masked columns they were sampled from.
    pub from: Vec<String>,
    /// Target columns searched.
    pub columns: usize,
    /// Target columns holding any of them, with the number of rows that do.
    pub found: Vec<SweepHit>,
}

/// A column where the sweep found source values.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct SweepHit {
    /// `table.column` on the target.
    pub column: String,
    /// Rows (of at most [`SWEEP_ROWS`] read) holding a sampled source value.
    pub rows: i64,
}

/// Values sampled per masked column for the sweep, and in all.
const SWEEP_PER_COLUMN: i64 = 50;
const SWEEP_VALUES: usize = 1000;
/// Rows read per target table by the sweep.
pub(crate) const SWEEP_ROWS: i64 = 100_000;

impl Verdict {
    /// No leak and no broken key.
    pub(crate) fn passed(&self) -> bool {
        self.leaks.iter().all(|l| l.found == 0)
            && self.keys.iter().all(|k| k.orphans == 0)
            && self.sweep.found.is_empty()
    }
}

async fn count(client: &Client, sql: &str, what: &str) -> Result<i64, Error> {
    Ok(client
        .query_one(sql, &[])
        .await
        .map_err(|e| pg_error(what, e))?
        .get(0))
}

/// Verify the target against the source. `build` meets the plan with the source catalog.
pub(crate) fn verify(
    source_url: &SecretValue,
    target_url: &SecretValue,
    key: &SecretValue,
    sample: usize,
    build: &dyn Fn(&catalog::Catalog) -> Result<Plan, Error>,
) -> Result<Verdict, Error> {
    let source = parse_url(source_url, "source")?;
    let target = parse_url(target_url, "target")?;
    let key = MaskKey::new(key.expose().as_bytes());
    runtime()?.block_on(async {
        let src = connect(&source, "the source").await?;
        let dst = connect(&target, "the target").await?;
        let cat = catalog::load(&src).await?;
        let plan = build(&cat)?;
        let mut verdict = Verdict::default();
        for t in &plan.tables {
            let sql = format!("select count(*) from only {}", t.name.sql());
            verdict.counts.push(Count {
                table: t.name.to_string(),
                source: count(&src, &sql, &format!("counting {}", t.name)).await?,
                target: count(&dst, &sql, &format!("counting {} on the target", t.name)).await?,
                subset: plan.subset.is_some(),
            });
            for c in &t.columns {
                let Some(tr) = &c.transform else { continue };
                if matches!(tr, Transform::Null) {
                    continue;
                }
                let mut table = cat.tables.get(&t.name);
                while let Some(p) = table
                    .filter(|x| x.primary_key.is_empty())
                    .and_then(|x| x.partition_of.as_ref())
                {
                    table = cat.tables.get(p);
                }
                let pk: Vec<&String> = table
                    .map(|x| x.primary_key.iter().collect())
                    .unwrap_or_default();
                let by_key = !pk.is_empty()
                    && pk.iter().all(|k| {
                        t.columns
                            .iter()
                            .any(|c| &c.name == *k && c.transform.is_none())
                    });
                let column = Column {
                    table: t.name.sql(),
                    label: format!("{}.{}", t.name, catalog::quote_ident(&c.name)),
                    col: sql_ident(&c.name),
                    transform: tr,
                    domain: &c.domain,
                    key_expr: by_key.then(|| {
                        format!(
                            "row({})::text",
                            pk.iter().map(|k| sql_ident(k)).collect::<Vec<_>>().join(", ")
                        )
                    }),
                };
                verdict
                    .leaks
                    .extend(check_column(&src, &dst, &key, sample, &column).await?);
            }
        }
        let target = catalog::load(&dst).await?;
        verdict.sweep = sweep(&src, &dst, &target, &plan, sample).await?;
        // Every foreign key of the target, checked by query (MATCH SIMPLE: a NULL part skips).
        for t in target.tables.values() {
            for fk in &t.foreign_keys {
                let not_null = fk
                    .columns
                    .iter()
                    .map(|c| format!("c.{} is not null", sql_ident(c)))
                    .collect::<Vec<_>>()
                    .join(" and ");
                let joined = fk
                    .columns
                    .iter()
                    .zip(&fk.referenced_columns)
                    .map(|(c, p)| format!("p.{} = c.{}", sql_ident(p), sql_ident(c)))
                    .collect::<Vec<_>>()
                    .join(" and ");
                let sql = format!(
                    "select count(*) from {} c where {not_null} and not exists (select 1 from {} p where {joined})",
                    t.name.sql(),
                    fk.references.sql()
                );
                let orphans = count(&dst, &sql, &format!("checking foreign key {}", fk.name)).await?;
                // A NOT VALID key may have orphans in the source too; a copy holding no more
                // than those is faithful.
                let in_source = if fk.validated || orphans == 0 {
                    0
                } else {
                    count(&src, &sql, &format!("checking foreign key {} on the source", fk.name))
                        .await
                        .unwrap_or(0)
                };
                verdict.keys.push(KeyCheck {
                    key: format!("{}.{}", t.name, catalog::quote_ident(&fk.name)),
                    orphans: orphans - orphans.min(in_source),
                    not_valid_orphans: orphans.min(in_source),
                });
            }
        }
        Ok(verdict)
    })
}

/// What one masked column's check needs.
struct Column<'a> {
    /// The table, quoted for SQL.
    table: String,
    /// `table.column`, for the report.
    label: String,
    /// The column, quoted for SQL.
    col: String,
    transform: &'a Transform,
    domain: &'a str,
    /// The primary key as one text (`row(a, b)::text`) when it is copied unmasked.
    key_expr: Option<String>,
}

/// Whether the transform changes `v` (a value it maps to itself cannot leak).
fn changes(t: &Transform, key: &MaskKey, domain: &str, v: &str) -> bool {
    t.apply(key, domain, v)
        .map(|m| m.as_deref() != Some(v))
        .unwrap_or(true)
}

/// The source leaves of one JSON value at one path that the path's transform changes.
fn json_leaves(
    doc: &str,
    p: &crate::data::mask::JsonPath,
    key: &MaskKey,
) -> Vec<(String, serde_json::Value)> {
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(doc) else {
        return Vec::new();
    };
    leaves(&doc, &p.steps)
        .into_iter()
        .filter(|(_, v)| {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            changes(&p.transform, key, &p.domain, &text)
        })
        .collect()
}

/// A bounded sample of one masked column's source values, looked for in the target. JSON is
/// compared as JSON, path by path (a document without the path has nothing to leak there);
/// arrays element by element.
async fn check_column(
    src: &Client,
    dst: &Client,
    key: &MaskKey,
    sample: usize,
    c: &Column<'_>,
) -> Result<Vec<LeakCheck>, Error> {
    let (table, col) = (&c.table, &c.col);
    let key_expr = c.key_expr.as_deref().unwrap_or("''");
    let rows = src
        .query(
            &format!("select {key_expr}, {col}::text from only {table} where {col} is not null limit {sample}"),
            &[],
        )
        .await
        .map_err(|e| pg_error(&format!("sampling {}", c.label), e))?;
    let sampled: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let what = format!("checking {} on the target", c.label);
    let check = |column: String, transform: String, sampled: usize, found: i64| LeakCheck {
        column,
        transform,
        sampled,
        found,
    };
    if c.key_expr.is_some() {
        // The same rows on the target, by primary key, compared in place.
        let keys: Vec<&str> = sampled.iter().map(|(k, _)| k.as_str()).collect();
        let rows = dst
            .query(
                &format!("select {key_expr}, {col}::text from only {table} where {key_expr} = any($1::text[]) and {col} is not null"),
                &[&keys],
            )
            .await
            .map_err(|e| pg_error(&what, e))?;
        let target: std::collections::HashMap<String, String> =
            rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        return Ok(match c.transform {
            Transform::Json { paths } => paths
                .iter()
                .map(|p| {
                    let (mut n, mut found) = (0, 0);
                    for (k, v) in &sampled {
                        let mine = json_leaves(v, p, key);
                        n += mine.len();
                        let Some(theirs) = target.get(k) else {
                            continue;
                        };
                        let Ok(theirs) = serde_json::from_str::<serde_json::Value>(theirs) else {
                            continue;
                        };
                        let theirs = leaves(&theirs, &p.steps);
                        found += mine.iter().filter(|l| theirs.contains(l)).count();
                    }
                    check(
                        format!("{} {}", c.label, p.path),
                        transform_name(&p.transform),
                        n,
                        found as i64,
                    )
                })
                .collect(),
            Transform::Array { element } => {
                let (mut n, mut found) = (0, 0);
                for (k, v) in &sampled {
                    let mine = parse_array(v).unwrap_or_default();
                    let theirs = target
                        .get(k)
                        .and_then(|t| parse_array(t).ok())
                        .unwrap_or_default();
                    for (i, e) in mine.iter().enumerate() {
                        let Some(e) = e else { continue };
                        if !changes(element, key, c.domain, e) {
                            continue;
                        }
                        n += 1;
                        found += usize::from(theirs.get(i) == Some(&Some(e.clone())));
                    }
                }
                vec![check(
                    c.label.clone(),
                    transform_name(c.transform),
                    n,
                    found as i64,
                )]
            }
            t => {
                let mut n = 0;
                let mut found = 0;
                for (k, v) in &sampled {
                    if changes(t, key, c.domain, v) {
                        n += 1;
                        found += usize::from(target.get(k) == Some(v));
                    }
                }
                vec![check(c.label.clone(), transform_name(t), n, found as i64)]
            }
        });
    }
    // No key to match rows by: a sampled value anywhere in the target column is a leak. `sql`
    // counts how many of the texts in $1 the target holds.
    let found = |sql: String, values: Vec<String>| {
        let what = &what;
        async move {
            dst.query_one(&sql, &[&values])
                .await
                .map_err(|e| pg_error(what, e))
                .map(|r| r.get::<_, i64>(0))
        }
    };
    Ok(match c.transform {
        Transform::Json { paths } => {
            let mut out = Vec::new();
            for p in paths {
                let probes: Vec<String> = sampled
                    .iter()
                    .flat_map(|(_, v)| json_leaves(v, p, key))
                    .map(|(_, leaf)| containing(&p.steps, leaf).to_string())
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                let n = probes.len();
                let hits = found(
                    format!("select count(distinct probe) from only {table}, unnest($1::text[]) probe where {col}::jsonb @> probe::jsonb"),
                    probes,
                )
                .await?;
                out.push(check(
                    format!("{} {}", c.label, p.path),
                    transform_name(&p.transform),
                    n,
                    hits,
                ));
            }
            out
        }
        Transform::Array { element } => {
            let values: Vec<String> = sampled
                .iter()
                .flat_map(|(_, v)| parse_array(v).unwrap_or_default())
                .flatten()
                .filter(|e| changes(element, key, c.domain, e))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let n = values.len();
            let hits = found(
                format!("select count(distinct e) from only {table}, unnest({col}::text::text[]) e where e = any($1::text[])"),
                values,
            )
            .await?;
            vec![check(c.label.clone(), transform_name(c.transform), n, hits)]
        }
        t => {
            let values: Vec<String> = sampled
                .iter()
                .map(|(_, v)| v.clone())
                .filter(|v| changes(t, key, c.domain, v))
                .collect();
            let n = values.len();
            let hits = found(
                format!("select count(distinct {col}::text) from only {table} where {col}::text = any($1::text[])"),
                values,
            )
            .await?;
            vec![check(c.label.clone(), transform_name(t), n, hits)]
        }
    })
}

/// Whether a transform's source values identify someone wherever they turn up (an e-mail, a
/// name, a street line), and whether they are looked for inside text (long values) or only as
/// whole values (a first name alone is a common word inside text).
fn identifying(t: &Transform) -> Option<bool> {
    use crate::data::mask::FakeKind;
    match t {
        Transform::Email
        | Transform::Phone
        | Transform::Iban
        | Transform::Card { .. }
        | Transform::Ip { .. }
        | Transform::Shape
        | Transform::Uuid => Some(true),
        Transform::Fake {
            kind: FakeKind::FullName | FakeKind::Street,
            ..
        } => Some(true),
        Transform::Fake {
            kind: FakeKind::FirstName | FakeKind::LastName,
            ..
        } => Some(false),
        _ => None,
    }
}

/// The known-values sweep: a bounded sample of each identifying masked column's source values
/// looked for in every text, JSON, array and inet column of the target that the plan does not
/// mask (inside the text for long values, whole for first and last names). A customer's street
/// kept in an invoice's billing address, or a name left in a note, is found here. Values are
/// never printed.
async fn sweep(
    src: &Client,
    dst: &Client,
    target: &catalog::Catalog,
    plan: &Plan,
    sample: usize,
) -> Result<Sweep, Error> {
    let mut inside: std::collections::BTreeSet<String> = Default::default();
    let mut whole: std::collections::BTreeSet<String> = Default::default();
    let mut from = Vec::new();
    let per = SWEEP_PER_COLUMN.min(sample as i64);
    for t in &plan.tables {
        for c in &t.columns {
            let Some(within) = c.transform.as_ref().and_then(identifying) else {
                continue;
            };
            let col = sql_ident(&c.name);
            let rows = src
                .query(
                    &format!(
                        "select distinct {col}::text from only {} where {col} is not null limit {per}",
                        t.name.sql()
                    ),
                    &[],
                )
                .await
                .map_err(|e| pg_error(&format!("sampling {}.{} for the sweep", t.name, c.name), e))?;
            from.push(format!("{}.{}", t.name, catalog::quote_ident(&c.name)));
            for r in rows {
                let v: String = r.get(0);
                let v = v.trim().to_string();
                // Short values (`Anna`, `10.0.0.1`) only count whole.
                if within && v.chars().count() >= 8 {
                    inside.insert(v);
                } else if v.chars().count() >= 3 {
                    whole.insert(v);
                }
            }
        }
    }
    let like: Vec<String> = inside
        .into_iter()
        .take(SWEEP_VALUES)
        .map(|v| {
            format!(
                "%{}%",
                v.replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            )
        })
        .collect();
    let whole: Vec<String> = whole.into_iter().take(SWEEP_VALUES).collect();
    let mut out = Sweep {
        values: like.len() + whole.len(),
        from,
        ..Sweep::default()
    };
    if out.values == 0 {
        return Ok(out);
    }
    let masked: std::collections::HashSet<(String, String)> = plan
        .tables
        .iter()
        .flat_map(|t| {
            t.columns
                .iter()
                .filter(|c| c.transform.is_some())
                .map(move |c| (t.name.to_string(), c.name.clone()))
        })
        .collect();
    for t in target.tables.values() {
        if t.kind == crate::data::pg::catalog::TableKind::Partitioned {
            continue;
        }
        let cols: Vec<&String> = t
            .columns
            .iter()
            .filter(|c| {
                let ty = c.type_name.as_str();
                ty == "text"
                    || ty == "citext"
                    || ty.starts_with("character")
                    || ty == "json"
                    || ty == "jsonb"
                    || ty == "inet"
                    || ty.ends_with("[]")
            })
            .filter(|c| !masked.contains(&(t.name.to_string(), c.name.clone())))
            .map(|c| &c.name)
            .collect();
        if cols.is_empty() {
            continue;
        }
        out.columns += cols.len();
        let counts = cols
            .iter()
            .map(|c| {
                let v = format!("s.{}::text", sql_ident(c));
                format!("count(*) filter (where {v} like any($1::text[]) or {v} = any($2::text[]))")
            })
            .collect::<Vec<_>>()
            .join(", ");
        let list = cols
            .iter()
            .map(|c| sql_ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let row = dst
            .query_one(
                &format!(
                    "select {counts} from (select {list} from only {} limit {SWEEP_ROWS}) s",
                    t.name.sql()
                ),
                &[&like, &whole],
            )
            .await
            .map_err(|e| pg_error(&format!("sweeping {} on the target", t.name), e))?;
        for (i, c) in cols.iter().enumerate() {
            let rows: i64 = row.get(i);
            if rows > 0 {
                out.found.push(SweepHit {
                    column: format!("{}.{}", t.name, catalog::quote_ident(c)),
                    rows,
                });
            }
        }
    }
    Ok(out)
}
