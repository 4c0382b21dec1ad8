//! Proposing how to mask columns: the catalog in, one proposal per column whose name matches a
//! PII preset out. Presets are data (`rules/pii.toml`, embedded); every transform is written in
//! the compact form sluice.yaml uses (`email`, `card:keep_last4`, `date_shift:30`).

use crate::data::mask::Transform;
use crate::data::mask::presets::{Presets, Proposal};
use crate::data::pg::catalog::QualifiedName;
use crate::error::Error;

/// Types whose values are never personal data by themselves; unnamed columns of these types are
/// proposed `keep` without sampling.
fn plain_type(type_name: &str) -> bool {
    let t = type_name.split('(').next().unwrap_or("").trim();
    matches!(
        t,
        "boolean"
            | "smallint"
            | "integer"
            | "bigint"
            | "real"
            | "double precision"
            | "numeric"
            | "money"
            | "oid"
            | "interval"
            | "date"
    ) || t.starts_with("timestamp")
        || t.starts_with("time ")
        || t == "time"
}

/// Connect to `url` and propose a transform for every stored column that `skip` does not rule
/// out: by name (presets), else by sampling up to `sample` values of text-like columns and
/// running the value detectors, else `keep` with the reason. Partitions are covered by their
/// parent.
pub(crate) fn classify_database(
    url: &str,
    presets: &[Presets],
    sample: usize,
    skip: &dyn Fn(&QualifiedName, &str) -> bool,
) -> Result<Vec<Proposal>, Error> {
    let config =
        crate::data::pg::parse_url(&crate::secrets::SecretValue::new(url.to_string()), "source")?;
    crate::data::pg::runtime()?.block_on(async {
        let mut client = crate::data::pg::connect(&config, "the source").await?;
        let (tx, _) = crate::data::pg::snapshot::export_snapshot(&mut client).await?;
        let catalog = crate::data::pg::catalog::load(&tx).await?;
        let mut out = Vec::new();
        for t in catalog.tables.values().filter(|t| t.partition_of.is_none()) {
            for c in t.columns.iter().filter(|c| !c.generated) {
                if skip(&t.name, &c.name) {
                    continue;
                }
                let proposal = |transform: Transform, spec: String, reason: String| Proposal {
                    table: t.name.clone(),
                    column: c.name.clone(),
                    transform,
                    spec,
                    reason,
                };
                if let Some((tr, spec, reason)) = presets.iter().find_map(|p| p.lookup(&c.name)) {
                    out.push(proposal(
                        tr.clone(),
                        spec.to_string(),
                        format!("name: {reason}"),
                    ));
                    continue;
                }
                if plain_type(&c.type_name) || sample == 0 {
                    out.push(proposal(
                        Transform::Keep,
                        "keep".into(),
                        format!("{}: not personal by type", c.type_name),
                    ));
                    continue;
                }
                let col = crate::data::pg::catalog::sql_ident(&c.name);
                let rows = tx
                    .query(
                        &format!(
                            "select {col}::text from {} where {col} is not null limit {sample}",
                            t.name.sql()
                        ),
                        &[],
                    )
                    .await
                    .map_err(|e| {
                        crate::data::pg::pg_error(&format!("sampling {}.{}", t.name, c.name), e)
                    })?;
                let values: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
                match presets.iter().find_map(|p| p.detect(&values)) {
                    Some((tr, spec, reason)) => {
                        out.push(proposal(tr, spec, format!("values: {reason}")))
                    }
                    None => out.push(proposal(
                        Transform::Keep,
                        "keep".into(),
                        format!(
                            "{}: no PII found in {} sampled values; check",
                            c.type_name,
                            values.len()
                        ),
                    )),
                }
            }
        }
        Ok(out)
    })
}
