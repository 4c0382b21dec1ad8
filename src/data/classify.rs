//! Proposing how to mask columns: the catalog in, one proposal per column whose name matches a
//! PII preset out. Presets are data (`rules/pii.toml`, embedded); every transform is written in
//! the compact form sluice.yaml uses (`email`, `card:keep_last4`, `date_shift:30`).

use crate::data::mask::presets::{Presets, Proposal, fit};
use crate::data::mask::{FakeKind, Transform};
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

/// Whether a column is unique by itself (primary key, unique constraint or index).
fn unique(t: &crate::data::pg::catalog::Table, column: &str) -> bool {
    t.unique_keys
        .iter()
        .chain(std::iter::once(&t.primary_key))
        .any(|k| k.len() == 1 && k[0] == column)
}

/// The lower-case words (3 letters or more) of a name, for finding it inside other values.
fn name_words(value: &str) -> impl Iterator<Item = String> + '_ {
    value
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| w.chars().count() >= 3)
        .map(str::to_lowercase)
}

/// Connect to `url` and propose a transform for every stored column that `skip` does not rule
/// out: by name (presets, in the table's context), else by sampling up to `sample` values of
/// text-like columns and running the value detectors, else `keep` with the reason. Every
/// proposal fits its column (NOT NULL, unique), so pasted as it is the plan runs. Partitions
/// are covered by their parent. Two more passes catch derived copies of masked values: a
/// full-text vector in a table with masked columns, and text whose values repeat the sampled
/// person names of the masked name columns (user names such as `first.last`).
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
        let sample_of = |t: &QualifiedName, c: &str| {
            let col = crate::data::pg::catalog::sql_ident(c);
            format!(
                "select {col}::text from {} where {col} is not null limit {sample}",
                t.sql()
            )
        };
        let mut out = Vec::new();
        // Sampled values of columns proposed `keep` after sampling, and words of person names.
        let mut kept_samples: Vec<(usize, Vec<String>)> = Vec::new();
        let mut names: std::collections::HashSet<String> = std::collections::HashSet::new();
        // Sampled values of masked identifying columns (e-mails, streets, full names…), to find
        // copies of them kept elsewhere (an order's JSON holding the customer's address).
        let mut copies: std::collections::BTreeSet<String> = Default::default();
        // Foreign key columns (proposal index, parent table, parent column): a column whose
        // parent is masked inherits its transform, so it is left out of the proposal.
        let mut children: Vec<(usize, QualifiedName, String)> = Vec::new();
        for t in catalog.tables.values().filter(|t| t.partition_of.is_none()) {
            let first = out.len();
            let mut vectors = Vec::new();
            for c in t.columns.iter().filter(|c| !c.generated) {
                if skip(&t.name, &c.name) {
                    continue;
                }
                let is_unique = unique(t, &c.name);
                let proposal = |transform: Transform, spec: String, reason: String| Proposal {
                    table: t.name.clone(),
                    column: c.name.clone(),
                    transform,
                    spec,
                    reason,
                };
                let fk = t
                    .foreign_keys
                    .iter()
                    .find(|fk| fk.columns.contains(&c.name));
                if let Some(fk) = fk {
                    let i = fk.columns.iter().position(|x| *x == c.name).unwrap_or(0);
                    let parent = fk.referenced_columns.get(i).cloned().unwrap_or_default();
                    children.push((out.len(), fk.references.clone(), parent));
                    out.push(proposal(
                        Transform::Keep,
                        "keep".into(),
                        format!(
                            "foreign key {} to {}: its key is kept",
                            fk.name, fk.references
                        ),
                    ));
                    continue;
                }
                if let Some((tr, spec, reason)) =
                    presets.iter().find_map(|p| p.lookup(Some(t), &c.name))
                {
                    let p = match fit(tr, spec, c, is_unique) {
                        Some((tr, fitted)) if fitted != spec => proposal(
                            tr,
                            fitted,
                            format!("name: {reason}; {}", fitted_why(c, is_unique)),
                        ),
                        Some((tr, fitted)) => proposal(tr, fitted, format!("name: {reason}")),
                        None => proposal(
                            Transform::Keep,
                            "keep".into(),
                            format!(
                                "name: {reason}, but no transform fits {} {}: decide",
                                if c.not_null { "NOT NULL" } else { "" },
                                c.type_name
                            ),
                        ),
                    };
                    let identifying = matches!(
                        p.transform,
                        Transform::Fake { .. }
                            | Transform::Email
                            | Transform::Phone
                            | Transform::Iban
                            | Transform::Card { .. }
                            | Transform::Shape
                    );
                    if identifying && sample > 0 {
                        for r in tx
                            .query(&sample_of(&t.name, &c.name), &[])
                            .await
                            .map_err(|e| {
                                crate::data::pg::pg_error(
                                    &format!("sampling {}.{}", t.name, c.name),
                                    e,
                                )
                            })?
                        {
                            let v: String = r.get(0);
                            if matches!(
                                p.transform,
                                Transform::Fake {
                                    kind: FakeKind::FirstName
                                        | FakeKind::LastName
                                        | FakeKind::FullName,
                                    ..
                                }
                            ) {
                                names.extend(name_words(&v));
                            }
                            if v.trim().chars().count() >= 8 {
                                copies.insert(v.trim().to_string());
                            }
                        }
                    }
                    out.push(p);
                    continue;
                }
                if c.type_name == "tsvector" {
                    vectors.push(c);
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
                let rows = tx
                    .query(&sample_of(&t.name, &c.name), &[])
                    .await
                    .map_err(|e| {
                        crate::data::pg::pg_error(&format!("sampling {}.{}", t.name, c.name), e)
                    })?;
                let values: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
                let detected = presets.iter().find_map(|p| p.detect(&values)).and_then(
                    |(tr, spec, reason)| {
                        fit(&tr, &spec, c, is_unique).map(|(tr, spec)| (tr, spec, reason))
                    },
                );
                match detected {
                    Some((tr, spec, reason)) => {
                        out.push(proposal(tr, spec, format!("values: {reason}")))
                    }
                    None => {
                        out.push(proposal(
                            Transform::Keep,
                            "keep".into(),
                            format!(
                                "{}: no PII found in {} sampled values; check",
                                c.type_name,
                                values.len()
                            ),
                        ));
                        kept_samples.push((out.len() - 1, values));
                    }
                }
            }
            // A full-text vector holds the words of its table's text: masked, if any is.
            let masked_here = out[first..]
                .iter()
                .any(|p| !matches!(p.transform, Transform::Keep));
            for c in vectors {
                let (tr, spec, reason) = if !masked_here {
                    (
                        Transform::Keep,
                        "keep".to_string(),
                        "tsvector: no masked column in its table; check".to_string(),
                    )
                } else if c.not_null {
                    (
                        Transform::Constant(String::new()),
                        "constant:".to_string(),
                        "full-text vector of masked columns: emptied".to_string(),
                    )
                } else {
                    (
                        Transform::Null,
                        "null".to_string(),
                        "full-text vector of masked columns".to_string(),
                    )
                };
                out.push(Proposal {
                    table: t.name.clone(),
                    column: c.name.clone(),
                    transform: tr,
                    spec,
                    reason,
                });
            }
        }
        // Kept text or JSON holding copies of masked values is scrubbed too.
        if !copies.is_empty() {
            let finder = aho_corasick::AhoCorasick::new(&copies).ok();
            kept_samples.retain(|(i, values)| {
                let Some(finder) = &finder else { return true };
                let hits = values.iter().filter(|v| finder.is_match(v.as_str())).count();
                let p = &out[*i];
                let Some(c) = catalog
                    .tables
                    .get(&p.table)
                    .and_then(|t| t.columns.iter().find(|c| c.name == p.column))
                else {
                    return true;
                };
                if hits == 0 || hits * 20 < values.len() {
                    return true;
                }
                match fit(&Transform::Scrub(Default::default()), "scrub", c, false) {
                    Some((tr, spec)) => {
                        let share = hits * 100 / values.len();
                        out[*i] = Proposal {
                            transform: tr,
                            spec,
                            reason: format!(
                                "values: {share}% of {} sampled values hold copies of masked values",
                                values.len()
                            ),
                            ..out[*i].clone()
                        };
                        false
                    }
                    None => true,
                }
            });
        }
        // Values that repeat masked person names (`anna.meier`, `ameier`) are names too.
        if !names.is_empty() {
            for (i, values) in kept_samples {
                let hits = values
                    .iter()
                    .filter(|v| name_words(v).any(|w| names.contains(&w)))
                    .count();
                if values.is_empty() || hits * 5 < values.len() {
                    continue;
                }
                let p = &out[i];
                let Some(t) = catalog.tables.get(&p.table) else {
                    continue;
                };
                let Some(c) = t.columns.iter().find(|c| c.name == p.column) else {
                    continue;
                };
                let text = c.type_name == "text"
                    || c.type_name == "citext"
                    || c.type_name.starts_with("character");
                if !text {
                    continue;
                }
                // Free text that names people is scrubbed; a name-made identifier is hashed.
                let spaced = values.iter().filter(|v| v.trim().contains(' ')).count();
                let (t0, spec0) = if spaced * 2 > values.len() {
                    (Transform::Scrub(Default::default()), "scrub")
                } else {
                    (
                        Transform::Hash {
                            len: 16,
                            base64: false,
                        },
                        "hash:16",
                    )
                };
                if let Some((tr, spec)) = fit(&t0, spec0, c, unique(t, &c.name)) {
                    let share = hits * 100 / values.len();
                    out[i] = Proposal {
                        transform: tr,
                        spec,
                        reason: format!(
                            "values: {share}% of {} sampled values repeat masked person names",
                            values.len()
                        ),
                        ..out[i].clone()
                    };
                }
            }
        }
        let inherits: std::collections::HashSet<usize> = children
            .into_iter()
            .filter(|(_, t, c)| {
                skip(t, c)
                    || out.iter().any(|p| {
                        p.table == *t && p.column == *c && !matches!(p.transform, Transform::Keep)
                    })
            })
            .map(|(i, ..)| i)
            .collect();
        Ok(out
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !inherits.contains(i))
            .map(|(_, p)| p)
            .collect())
    })
}

/// Why a preset's transform was fitted to a column.
fn fitted_why(c: &crate::data::pg::catalog::Column, unique: bool) -> String {
    match (c.not_null, unique) {
        (true, true) => "NOT NULL and unique".into(),
        (true, false) => "NOT NULL".into(),
        _ => "unique: a hash keeps values distinct".into(),
    }
}
