//! `sluice verify PLAN`: does a refreshed target hold what the plan promised? Source and target
//! connections and the plan in; a [`Verdict`] out: row counts per table (the source is live, so
//! a difference is reported, not failed), every foreign key of the target checked by query, and
//! a bounded sample of each masked column's source values looked up in the target: by primary
//! key where the key is copied unmasked (a row still holding its own source value is a leak),
//! else anywhere in the column. A value the transform maps to itself (noise on zero) is not a
//! leak. Values are never printed, only counts.

use tokio_postgres::Client;

use crate::data::mask::parse::transform_name;
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
}

/// One masked column's leak check.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct LeakCheck {
    /// `table.column`.
    pub column: String,
    /// Its transform.
    pub transform: String,
    /// Source values sampled.
    pub sampled: usize,
    /// Of those, found verbatim in the target column.
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
            });
            for c in &t.columns {
                let Some(tr) = &c.transform else { continue };
                if matches!(tr, Transform::Null) {
                    continue;
                }
                let col = sql_ident(&c.name);
                // Rows are matched by primary key when it is copied unmasked: a leak is a row
                // whose masked column still holds its own source value. Otherwise any sampled
                // source value present anywhere in the target column counts.
                let mut table = cat.tables.get(&t.name);
                while let Some(p) = table.filter(|x| x.primary_key.is_empty()).and_then(|x| x.partition_of.as_ref()) {
                    table = cat.tables.get(p);
                }
                let pk: Vec<&String> = table.map(|x| x.primary_key.iter().collect()).unwrap_or_default();
                let by_key = !pk.is_empty()
                    && pk.iter().all(|k| t.columns.iter().any(|c| &c.name == *k && c.transform.is_none()));
                let key_expr = if by_key {
                    format!("row({})::text", pk.iter().map(|k| sql_ident(k)).collect::<Vec<_>>().join(", "))
                } else {
                    "''".to_string()
                };
                let rows = src
                    .query(
                        &format!(
                            "select {key_expr}, {col}::text from only {} where {col} is not null limit {sample}",
                            t.name.sql()
                        ),
                        &[],
                    )
                    .await
                    .map_err(|e| pg_error(&format!("sampling {}.{}", t.name, c.name), e))?;
                // A value the transform maps to itself is not a leak.
                let (keys, values): (Vec<String>, Vec<String>) = rows
                    .iter()
                    .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
                    .filter(|(_, v)| {
                        tr.apply(&key, &c.domain, v)
                            .map(|m| m.as_deref() != Some(v.as_str()))
                            .unwrap_or(true)
                    })
                    .unzip();
                let sql = if by_key {
                    format!(
                        "select count(*) from only {} where ({key_expr}, {col}::text) in (select * from unnest($1::text[], $2::text[]))",
                        t.name.sql()
                    )
                } else {
                    format!(
                        "select count(distinct {col}::text) from only {} where {col}::text = any($2) and cardinality($1::text[]) >= 0",
                        t.name.sql()
                    )
                };
                let found: i64 = dst
                    .query_one(&sql, &[&keys, &values])
                    .await
                    .map_err(|e| pg_error(&format!("checking {}.{} on the target", t.name, c.name), e))?
                    .get(0);
                verdict.leaks.push(LeakCheck {
                    column: format!("{}.{}", t.name, catalog::quote_ident(&c.name)),
                    transform: transform_name(tr),
                    sampled: values.len(),
                    found,
                });
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
