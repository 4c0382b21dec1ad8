//! Presets: column-name and value rules that classify columns (`rules/pii.toml` is the
//! built-in one, embedded), parsed with `deny_unknown_fields` and checked once at load, every bad
//! line of a file reported at once. A catalog in, a proposal per column out: which transform and
//! why. No database here (`classify` samples values from one).

use regex::Regex;
use serde::Deserialize;

use crate::data::mask::Transform;
use crate::data::mask::parse::parse_transform;
use schemars::JsonSchema;

use crate::data::pg::catalog::QualifiedName;
use crate::error::{Error, Location, Problem};

/// The built-in presets.
pub(crate) const BUILTIN_PII: &str = include_str!("../../../rules/pii.toml");

/// A presets file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PresetFile {
    /// Always 1.
    #[allow(dead_code, reason = "checked while parsing: only version 1 exists")]
    pub version: u32,
    /// Column-name presets, first match wins.
    pub columns: Vec<ColumnPreset>,
    /// Value detectors for sampled columns, first match wins.
    #[serde(default)]
    pub values: Vec<ValuePreset>,
    /// What makes a table one that holds people (for presets with `context = "people"`).
    #[serde(default)]
    pub people: Option<PeopleRules>,
}

/// How a table is recognised as holding people, or postal addresses.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PeopleRules {
    /// Case-insensitive regex over table names of people (`users`, `customers`).
    pub tables: String,
    /// Case-insensitive regex over column names only people have (`email`, `birth_date`).
    pub columns: String,
    /// Case-insensitive regex over column names of a postal address (`street`, `address_line1`).
    pub address_columns: String,
}

/// Where a column-name preset applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Context {
    /// Only in a table that holds people.
    People,
    /// Only in a table that holds people or a postal address.
    Address,
}

/// One value detector.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ValuePreset {
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
pub(crate) struct ColumnPreset {
    /// Case-insensitive regex over the column name.
    pub name: String,
    /// The transform to propose, in compact form.
    pub transform: String,
    /// Why, for people.
    pub reason: String,
    /// Apply only where the table says the name means what the preset thinks (`people`: a
    /// product's `name` is no person's; `address`: a city in a lookup table of cities is none).
    /// Elsewhere the column stays unclassified.
    #[serde(default)]
    pub context: Option<Context>,
}

/// Compiled presets.
#[derive(Debug)]
pub(crate) struct Presets {
    rules: Vec<(Regex, Transform, String, String, Option<Context>)>,
    detectors: Vec<(Regex, Transform, String, String, f64)>,
    people: Option<(Regex, Regex, Regex)>,
}

/// The length limit of `character varying(n)` and `character(n)` columns.
pub(crate) fn max_len(type_name: &str) -> Option<usize> {
    let rest = type_name
        .strip_prefix("character varying(")
        .or_else(|| type_name.strip_prefix("character("))?;
    rest.strip_suffix(')')?.parse().ok()
}

/// Whether a transform can produce values of a column's type. Types sluice does not know
/// (enums, domains, geometric, ranges, extension types) are left to the load to judge.
pub(crate) fn fits_type(type_name: &str, t: &Transform) -> Result<(), String> {
    if let (Some(max), Some(need)) = (max_len(type_name), t.min_len())
        && max < need
    {
        return Err(format!(
            "needs at least {need} characters and the column holds {max}: a value cut to fit would not be what the transform promises. Use hash:{max}, redact or shape (they fit the column), or widen the column"
        ));
    }
    let base = type_name.split('(').next().unwrap_or("").trim();
    let universal = matches!(
        t,
        Transform::Null | Transform::Constant(_) | Transform::Keep | Transform::Regex { .. }
    );
    if universal {
        return Ok(());
    }
    let (kind, ok) = if type_name.ends_with("[]") {
        ("an array", matches!(t, Transform::Array { .. }))
    } else {
        match base {
            "smallint" | "integer" | "bigint" | "numeric" | "real" | "double precision"
            | "money" => (
                "numbers",
                matches!(t, Transform::NumberNoise { .. } | Transform::Shape),
            ),
            "date" => ("dates", matches!(t, Transform::DateShift { .. })),
            b if b.starts_with("timestamp") => {
                ("timestamps", matches!(t, Transform::DateShift { .. }))
            }
            "uuid" => ("UUIDs", matches!(t, Transform::Uuid)),
            "inet" | "cidr" => ("addresses", matches!(t, Transform::Ip { .. })),
            "json" | "jsonb" => (
                "JSON",
                matches!(t, Transform::Json { .. } | Transform::Scrub(_)),
            ),
            "boolean" | "bytea" => ("these values", false),
            _ => return Ok(()),
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "cannot produce {kind}; use keep, null, constant or a transform for {kind}"
        ))
    }
}

/// A preset's transform fitted to the column it would mask: `null` cannot fill a NOT NULL
/// column (text there is redacted instead, or hashed when unique), and a transform that
/// repeats values cannot mask a unique column (a keyed hash of text instead). `None`: nothing
/// fits; the column is left to the user.
pub(crate) fn fit(
    t: &Transform,
    spec: &str,
    column: &crate::data::pg::catalog::Column,
    unique: bool,
) -> Option<(Transform, String)> {
    let ty = column.type_name.as_str();
    fits_type(ty, t).ok()?;
    let text = ty == "text"
        || ty == "citext"
        || ty.starts_with("character varying")
        || ty.starts_with("character(");
    let hash = || {
        let len = max_len(ty).unwrap_or(32).min(32);
        (text && len >= 12).then(|| {
            (
                Transform::Hash { len, base64: false },
                format!("hash:{len}"),
            )
        })
    };
    if matches!(t, Transform::Null) && column.not_null {
        return match (text, unique) {
            (true, true) => hash(),
            (true, false) => Some((Transform::Redact, "redact".into())),
            (false, _) => None,
        };
    }
    if unique && !t.can_be_unique() {
        return hash();
    }
    Some((t.clone(), spec.to_string()))
}

/// A proposed classification of one column.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Proposal {
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

impl Presets {
    /// The embedded presets.
    pub(crate) fn builtin() -> Result<Presets, Error> {
        Presets::parse("builtin:pii", BUILTIN_PII)
    }

    /// Parse and compile a presets file; every problem is reported with its position.
    pub(crate) fn parse(name: &str, text: &str) -> Result<Presets, Error> {
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
                (Ok(re), Ok(t)) => rules.push((re, t, p.transform, p.reason, p.context)),
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
        let ci = |s: &str| regex::RegexBuilder::new(s).case_insensitive(true).build();
        let people = match &file.people {
            None => None,
            Some(p) => match (ci(&p.tables), ci(&p.columns), ci(&p.address_columns)) {
                (Ok(a), Ok(b), Ok(c)) => Some((a, b, c)),
                (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => {
                    let at = text.find("[people]").map_or_else(
                        || Location::file(name),
                        |o| Location::from_offset(name, text, o),
                    );
                    problems.push(Problem::new(at, format!("regex does not compile: {e}")));
                    None
                }
            },
        };
        if rules.iter().any(|r| r.4.is_some()) && people.is_none() && problems.is_empty() {
            problems.push(Problem::new(
                Location::file(name),
                "a preset has a `context` but the file has no `[people]` section saying what a table of people is",
            ));
        }
        if problems.is_empty() {
            Ok(Presets {
                rules,
                detectors,
                people,
            })
        } else {
            Err(Error::Invalid { problems })
        }
    }

    /// The first preset matching a column name: its transform, compact form and reason. `None`
    /// when none matches, or when the first that does needs a context `table` does not give
    /// (then the column is left to the user rather than guessed).
    pub(crate) fn lookup(
        &self,
        table: Option<&crate::data::pg::catalog::Table>,
        column: &str,
    ) -> Option<(&Transform, &str, &str)> {
        let (_, t, spec, reason, context) = self.rules.iter().find(|r| r.0.is_match(column))?;
        match (context, table) {
            (Some(c), Some(table)) if !self.in_context(*c, table, column) => None,
            _ => Some((t, spec.as_str(), reason.as_str())),
        }
    }

    /// Whether `table` holds people (by its name, or another column only people have), or for
    /// [`Context::Address`] also a postal address.
    fn in_context(
        &self,
        context: Context,
        table: &crate::data::pg::catalog::Table,
        column: &str,
    ) -> bool {
        let Some((tables, people, address)) = &self.people else {
            return true;
        };
        let others = || table.columns.iter().filter(|c| c.name != column);
        tables.is_match(&table.name.name)
            || others().any(|c| people.is_match(&c.name))
            || (context == Context::Address && others().any(|c| address.is_match(&c.name)))
    }

    /// The first value detector that enough of `samples` satisfy: transform, compact form and a
    /// reason naming the share.
    pub(crate) fn detect(&self, samples: &[String]) -> Option<(Transform, String, String)> {
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
    #[cfg(test)]
    pub(crate) fn classify(&self, catalog: &crate::data::pg::catalog::Catalog) -> Vec<Proposal> {
        let mut out = Vec::new();
        for t in catalog.tables.values() {
            for c in t.columns.iter().filter(|c| !c.generated) {
                if let Some((tr, spec, reason)) = self.lookup(Some(t), &c.name) {
                    out.push(Proposal {
                        table: t.name.clone(),
                        column: c.name.clone(),
                        transform: tr.clone(),
                        spec: spec.to_string(),
                        reason: reason.to_string(),
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::pg::catalog::Catalog;
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
                    checks: Vec::new(),
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
    fn reference_data_is_not_masked_by_name_alone() {
        let p = Presets::builtin().unwrap();
        let spec = |t: &Table, c: &str| p.lookup(Some(t), c).map(|(_, s, _)| s.to_string());
        // Lookup tables: a country's, a category's, a product's or a plan's name is nobody's.
        for t in [
            table("countries", &["id", "name", "iso_code"]),
            table("product_categories", &["id", "name", "description"]),
            table("products", &["id", "name", "description", "price"]),
            table("price_plans", &["id", "name", "monthly_fee"]),
            table("cities", &["id", "city", "postal_code", "country_id"]),
        ] {
            for c in ["name", "description", "city", "postal_code"] {
                assert_eq!(spec(&t, c), None, "{}.{c}", t.name);
            }
        }
        // Tables of people: by their name, or by a column only people have.
        let users = table("users", &["id", "name", "description"]);
        assert_eq!(spec(&users, "name").as_deref(), Some("full_name"));
        let contacts = table("crm_entries", &["id", "name", "email", "city", "zip"]);
        assert_eq!(spec(&contacts, "name").as_deref(), Some("full_name"));
        assert_eq!(spec(&contacts, "city").as_deref(), Some("city"));
        // An address beside a street line, even without people.
        let sites = table("warehouses", &["id", "street", "city", "postal_code"]);
        assert_eq!(spec(&sites, "city").as_deref(), Some("city"));
        assert_eq!(spec(&sites, "street").as_deref(), Some("street"));
        assert_eq!(spec(&sites, "name"), None);
        // Credentials and user names anywhere.
        let any = table(
            "settings",
            &["id", "encrypted_password", "otp_backup_codes", "username"],
        );
        assert_eq!(spec(&any, "encrypted_password").as_deref(), Some("null"));
        assert_eq!(spec(&any, "otp_backup_codes").as_deref(), Some("null"));
        assert_eq!(
            spec(&any, "runners_token_encrypted").as_deref(),
            Some("null")
        );
        assert_eq!(spec(&any, "authorization").as_deref(), Some("null"));
        assert_eq!(spec(&any, "username").as_deref(), Some("hash:16"));
    }

    #[test]
    fn presets_fit_not_null_and_unique_columns() {
        let col = |ty: &str, not_null: bool| Column {
            name: "c".into(),
            type_name: ty.into(),
            not_null,
            generated: false,
            identity: None,
            wire: Default::default(),
            checks: Vec::new(),
        };
        let null = Transform::Null;
        assert_eq!(
            fit(&null, "null", &col("text", false), true).unwrap().1,
            "null"
        );
        assert_eq!(
            fit(&null, "null", &col("text", true), false).unwrap().1,
            "redact"
        );
        assert_eq!(
            fit(&null, "null", &col("character varying(255)", true), true)
                .unwrap()
                .1,
            "hash:32"
        );
        assert_eq!(fit(&null, "null", &col("bytea", true), false), None);
        let name = parse_transform("full_name").unwrap();
        assert_eq!(
            fit(&name, "full_name", &col("text", false), true)
                .unwrap()
                .1,
            "hash:32"
        );
        assert_eq!(
            fit(
                &name,
                "full_name",
                &col("character varying(8)", false),
                true
            ),
            None
        );
        assert_eq!(fit(&name, "full_name", &col("integer", false), false), None);
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
