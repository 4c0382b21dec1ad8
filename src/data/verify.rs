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
    /// Rows whose key points at no row.
    pub orphans: i64,
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
}

impl Verdict {
    /// No leak and no broken key.
    pub(crate) fn passed(&self) -> bool {
        self.leaks.iter().all(|l| l.found == 0) && self.keys.iter().all(|k| k.orphans == 0)
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
        // Every foreign key of the target, checked by query (MATCH SIMPLE: a NULL part skips).
        for t in catalog::load(&dst).await?.tables.values() {
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
                verdict.keys.push(KeyCheck {
                    key: format!("{}.{}", t.name, catalog::quote_ident(&fk.name)),
                    orphans: count(&dst, &sql, &format!("checking foreign key {}", fk.name)).await?,
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
    // No key to match rows by: a sampled value anywhere in the target column is a leak.
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
                let found: i64 = dst
                    .query_one(
                        &format!("select count(distinct probe) from only {table}, unnest($1::text[]) probe where {col}::jsonb @> probe::jsonb"),
                        &[&probes],
                    )
                    .await
                    .map_err(|e| pg_error(&what, e))?
                    .get(0);
                out.push(check(
                    format!("{} {}", c.label, p.path),
                    transform_name(&p.transform),
                    probes.len(),
                    found,
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
            let found: i64 = dst
                .query_one(
                    &format!("select count(distinct e) from only {table}, unnest({col}::text::text[]) e where e = any($1::text[])"),
                    &[&values],
                )
                .await
                .map_err(|e| pg_error(&what, e))?
                .get(0);
            vec![check(
                c.label.clone(),
                transform_name(c.transform),
                values.len(),
                found,
            )]
        }
        t => {
            let values: Vec<&str> = sampled
                .iter()
                .map(|(_, v)| v.as_str())
                .filter(|v| changes(t, key, c.domain, v))
                .collect();
            let found: i64 = dst
                .query_one(
                    &format!("select count(distinct {col}::text) from only {table} where {col}::text = any($1::text[])"),
                    &[&values],
                )
                .await
                .map_err(|e| pg_error(&what, e))?
                .get(0);
            vec![check(
                c.label.clone(),
                transform_name(t),
                values.len(),
                found,
            )]
        }
    })
}
