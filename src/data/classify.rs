//! Proposing how to mask columns: the catalog in, one proposal per column whose name matches a
//! PII preset out. Presets are data (`rules/pii.toml`, embedded); every transform is written in
//! the compact form sluice.yaml uses (`email`, `card:keep_last4`, `date_shift:30`).

use regex::Regex;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::data::mask::{FakeKind, Locale, Transform};
use crate::data::pg::catalog::{Catalog, QualifiedName};
use crate::error::{Error, Location, Problem};

/// The built-in presets.
pub const BUILTIN_PII: &str = include_str!("../../rules/pii.toml");

/// A presets file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PresetFile {
    /// Always 1.
    pub version: u32,
    /// Column-name presets, first match wins.
    pub columns: Vec<ColumnPreset>,
    /// Value detectors for sampled columns, first match wins.
    #[serde(default)]
    pub values: Vec<ValuePreset>,
}

/// One value detector.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ValuePreset {
    /// Case-insensitive regex over the whole value (or anywhere in it, with `contains`).
    pub value: String,
    /// The transform to propose, in compact form.
    pub transform: String,
    /// What the values are, for people.
    pub reason: String,
    /// The share of sampled values (0..1) that must match.
    pub share: f64,
    /// Match anywhere inside the value (free text).
    #[serde(default)]
    pub contains: bool,
}

/// One column-name preset.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ColumnPreset {
    /// Case-insensitive regex over the column name.
    pub name: String,
    /// The transform to propose, in compact form.
    pub transform: String,
    /// Why, for people.
    pub reason: String,
}

/// Compiled presets.
#[derive(Debug)]
pub struct Presets {
    rules: Vec<(Regex, Transform, String, String)>,
    detectors: Vec<(Regex, Transform, String, String, f64)>,
}

/// A proposed classification of one column.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    /// The table.
    pub table: QualifiedName,
    /// The column.
    pub column: String,
    /// The proposed transform.
    pub transform: Transform,
    /// The transform as written in sluice.yaml.
    pub spec: String,
    /// Why.
    pub reason: String,
}

/// Parse the compact transform form: `name` or `name:argument`.
pub fn parse_transform(spec: &str) -> Result<Transform, String> {
    let (name, arg) = match spec.split_once(':') {
        Some((n, a)) => (n, Some(a)),
        None => (spec, None),
    };
    let number = |default: f64| -> Result<f64, String> {
        match arg {
            None => Ok(default),
            Some(a) => a
                .parse()
                .map_err(|_| format!("`{spec}`: `{a}` is not a number")),
        }
    };
    let no_arg = |t: Transform| match arg {
        None => Ok(t),
        Some(_) => Err(format!("`{spec}`: `{name}` takes no argument")),
    };
    match name {
        "null" => no_arg(Transform::Null),
        "keep" => no_arg(Transform::Keep),
        "redact" => no_arg(Transform::Redact),
        "email" => no_arg(Transform::Email),
        "phone" => no_arg(Transform::Phone),
        "iban" => no_arg(Transform::Iban),
        "uuid" => no_arg(Transform::Uuid),
        "scrub" => no_arg(Transform::Scrub),
        "shape" | "national_id" => no_arg(Transform::Shape),
        n if FakeKind::parse(n).is_some() => {
            let kind = FakeKind::parse(n).unwrap_or(FakeKind::FullName);
            let locale = match arg {
                None => Locale::En,
                Some(a) => Locale::ALL
                    .iter()
                    .find(|(name, _)| *name == a)
                    .map(|(_, l)| *l)
                    .ok_or_else(|| {
                        let names: Vec<&str> = Locale::ALL.iter().map(|(n, _)| *n).collect();
                        format!(
                            "`{spec}`: unknown locale `{a}`; use one of {}",
                            names.join(", ")
                        )
                    })?,
            };
            Ok(Transform::Fake { kind, locale })
        }
        "constant" => Ok(Transform::Constant(arg.unwrap_or("").to_string())),
        "card" => match arg {
            None => Ok(Transform::Card { keep_last4: false }),
            Some("keep_last4") => Ok(Transform::Card { keep_last4: true }),
            Some(a) => Err(format!("`{spec}`: card takes `keep_last4`, not `{a}`")),
        },
        "hash" => {
            // hash, hash:LEN, hash:base64, hash:LEN:base64 (hex is the default).
            let mut len = 16;
            let mut base64 = false;
            for part in arg.into_iter().flat_map(|a| a.split(':')) {
                match part {
                    "base64" => base64 = true,
                    "hex" => base64 = false,
                    n => {
                        len = n.parse().map_err(|_| {
                            format!("`{spec}`: `{n}` is not a length, `hex` or `base64`")
                        })?
                    }
                }
            }
            Ok(Transform::Hash { len, base64 })
        }
        "ip" => Ok(Transform::Ip {
            keep_prefix_bits: number(0.0)? as u8,
        }),
        "date_shift" => Ok(Transform::DateShift {
            max_days: number(30.0)? as u32,
        }),
        "number_noise" => Ok(Transform::NumberNoise {
            percent: number(10.0)?,
        }),
        other => Err(format!(
            "unknown transform `{other}`; use null, keep, redact, constant:TEXT, hash[:LEN], email, phone, iban, card[:keep_last4], ip[:BITS], uuid, date_shift[:DAYS], number_noise[:PERCENT], scrub, shape, first_name|last_name|full_name|street|city|postcode[:LOCALE]"
        )),
    }
}

impl Presets {
    /// The embedded presets.
    pub fn builtin() -> Result<Presets, Error> {
        Presets::parse("builtin:pii", BUILTIN_PII)
    }

    /// Parse and compile a presets file; every problem is reported with its position.
    pub fn parse(name: &str, text: &str) -> Result<Presets, Error> {
        let file: PresetFile = toml::from_str(text).map_err(|e| Error::Invalid {
            problems: vec![Problem::new(
                e.span().map_or_else(
                    || Location::file(name),
                    |s| Location::from_offset(name, text, s.start),
                ),
                e.message().to_string(),
            )],
        })?;
        let mut rules = Vec::new();
        let mut problems = Vec::new();
        for p in file.columns {
            let at = text.find(&p.name).map_or_else(
                || Location::file(name),
                |o| Location::from_offset(name, text, o),
            );
            let re = regex::RegexBuilder::new(&p.name)
                .case_insensitive(true)
                .build();
            match (re, parse_transform(&p.transform)) {
                (Ok(re), Ok(t)) => rules.push((re, t, p.transform, p.reason)),
                (Err(e), _) => {
                    problems.push(Problem::new(at, format!("regex does not compile: {e}")))
                }
                (_, Err(e)) => problems.push(Problem::new(at, e)),
            }
        }
        let mut detectors = Vec::new();
        for v in file.values {
            let at = text.find(&v.value).map_or_else(
                || Location::file(name),
                |o| Location::from_offset(name, text, o),
            );
            let pattern = if v.contains {
                v.value.clone()
            } else {
                format!("^(?:{})$", v.value)
            };
            let re = regex::RegexBuilder::new(&pattern)
                .case_insensitive(true)
                .build();
            match (re, parse_transform(&v.transform)) {
                _ if !(0.0..=1.0).contains(&v.share) => {
                    problems.push(Problem::new(at, "`share` must be between 0 and 1"))
                }
                (Ok(re), Ok(t)) => detectors.push((re, t, v.transform, v.reason, v.share)),
                (Err(e), _) => {
                    problems.push(Problem::new(at, format!("regex does not compile: {e}")))
                }
                (_, Err(e)) => problems.push(Problem::new(at, e)),
            }
        }
        if problems.is_empty() {
            Ok(Presets { rules, detectors })
        } else {
            Err(Error::Invalid { problems })
        }
    }

    /// The first preset matching a column name: its transform, compact form and reason.
    pub fn lookup(&self, column: &str) -> Option<(&Transform, &str, &str)> {
        self.rules
            .iter()
            .find(|(re, ..)| re.is_match(column))
            .map(|(_, t, spec, reason)| (t, spec.as_str(), reason.as_str()))
    }

    /// The first value detector that enough of `samples` satisfy: transform, compact form and a
    /// reason naming the share.
    pub fn detect(&self, samples: &[String]) -> Option<(Transform, String, String)> {
        if samples.is_empty() {
            return None;
        }
        self.detectors
            .iter()
            .find_map(|(re, t, spec, reason, share)| {
                let hits = samples.iter().filter(|v| re.is_match(v.trim())).count();
                let got = hits as f64 / samples.len() as f64;
                (got >= *share && hits > 0).then(|| {
                    (
                        t.clone(),
                        spec.clone(),
                        format!(
                            "{reason}: {:.0}% of {} sampled values",
                            got * 100.0,
                            samples.len()
                        ),
                    )
                })
            })
    }

    /// A proposal for every column of every table whose name matches a preset. Generated
    /// columns are left out: the target recomputes them.
    pub fn classify(&self, catalog: &Catalog) -> Vec<Proposal> {
        let mut out = Vec::new();
        for t in catalog.tables.values() {
            for c in t.columns.iter().filter(|c| !c.generated) {
                if let Some((_, tr, spec, reason)) =
                    self.rules.iter().find(|(re, ..)| re.is_match(&c.name))
                {
                    out.push(Proposal {
                        table: t.name.clone(),
                        column: c.name.clone(),
                        transform: tr.clone(),
                        spec: spec.clone(),
                        reason: reason.clone(),
                    });
                }
            }
        }
        out
    }
}

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
pub fn classify_database(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::pg::catalog::{Column, Table, TableKind};

    fn table(name: &str, cols: &[&str]) -> Table {
        Table {
            name: QualifiedName {
                schema: "public".into(),
                name: name.into(),
            },
            kind: TableKind::Ordinary,
            partition_of: None,
            columns: cols
                .iter()
                .map(|c| Column {
                    name: c.to_string(),
                    type_name: "text".into(),
                    not_null: false,
                    generated: c.ends_with("_gen"),
                    identity: None,
                    wire: Default::default(),
                })
                .collect(),
            primary_key: vec![],
            unique_keys: vec![],
            foreign_keys: vec![],
            triggers: vec![],
            estimated_rows: 0,
            bytes: 0,
        }
    }

    #[test]
    fn builtin_presets_classify_typical_columns() {
        let mut cat = Catalog::default();
        for t in [
            table(
                "customers",
                &[
                    "id",
                    "Email",
                    "first_name",
                    "phone",
                    "date_of_birth",
                    "notes",
                    "created_at",
                    "email_gen",
                ],
            ),
            table(
                "payments",
                &["id", "iban", "card_number", "client_ip", "amount"],
            ),
        ] {
            cat.tables.insert(t.name.clone(), t);
        }
        let p = Presets::builtin().unwrap().classify(&cat);
        let got: Vec<(String, String)> = p
            .iter()
            .map(|x| (x.column.clone(), x.spec.clone()))
            .collect();
        assert_eq!(
            got,
            [
                ("Email", "email"),
                ("first_name", "first_name"),
                ("phone", "phone"),
                ("date_of_birth", "date_shift:180"),
                ("notes", "scrub"),
                ("iban", "iban"),
                ("card_number", "card:keep_last4"),
                ("client_ip", "ip:16"),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
    }

    #[test]
    fn compact_transform_forms() {
        assert_eq!(
            parse_transform("hash:12").unwrap(),
            Transform::Hash {
                len: 12,
                base64: false
            }
        );
        assert_eq!(
            parse_transform("number_noise").unwrap(),
            Transform::NumberNoise { percent: 10.0 }
        );
        assert_eq!(
            parse_transform("constant:n/a").unwrap(),
            Transform::Constant("n/a".into())
        );
        assert!(
            parse_transform("email:x")
                .unwrap_err()
                .contains("takes no argument")
        );
        assert!(
            parse_transform("date_shift:soon")
                .unwrap_err()
                .contains("not a number")
        );
        assert!(
            parse_transform("rot13")
                .unwrap_err()
                .contains("unknown transform `rot13`")
        );
    }

    #[test]
    fn bad_presets_report_positions() {
        let text = "version = 1\n[[columns]]\nname = '(open'\ntransform = 'email'\nreason = 'x'\n[[columns]]\nname = 'ok'\ntransform = 'nope'\nreason = 'y'\n";
        let err = Presets::parse("p.toml", text).unwrap_err().to_string();
        assert!(err.contains("p.toml:3:9: regex does not compile"), "{err}");
        assert!(
            err.contains("p.toml:7:9: unknown transform `nope`"),
            "{err}"
        );
    }
}
