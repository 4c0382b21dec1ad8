//! The plan: a `refresh:` entry of sluice.yaml met with the source catalog. Config, presets and
//! a [`Catalog`] in; which tables move and how every column of each is treated out, or every
//! reason the refresh must not start (unclassified columns with a paste-ready snippet, column
//! keys naming nothing, transforms that would break a unique or foreign key). Pure: no server.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::refresh::{ColumnRule, RefreshPlan, Unclassified};
use crate::data::mask::Transform;
use crate::data::mask::parse::{parse_transform, transform_name};
use crate::data::mask::presets::Presets;
use crate::data::mask::rows::ColumnPlan;
use crate::data::pg::catalog::{Catalog, QualifiedName, Table, TableKind, quote_ident};
use crate::data::pg::catalog::{parse_column_key, parse_table, yaml_column_key};
use crate::error::{Error, Location, Problem};

/// One table whose rows move.
#[derive(Debug, Clone)]
pub(crate) struct TablePlan {
    /// The table (a leaf: partitions are copied one by one, their parents hold no rows).
    pub name: QualifiedName,
    /// Every stored column, in order (generated columns are left to the target).
    pub columns: Vec<ColumnPlan>,
    /// The planner's row estimate.
    pub estimated_rows: i64,
    /// Size on disk, for scheduling the largest first.
    pub bytes: i64,
}

/// What a refresh will do.
#[derive(Debug, Clone, Default)]
pub(crate) struct Plan {
    /// Tables whose rows move, largest first.
    pub tables: Vec<TablePlan>,
    /// Tables created empty (not under `tables:`).
    pub schema_only: Vec<QualifiedName>,
    /// Columns copied unmasked although nobody classified them (`unclassified: warn`).
    pub unclassified: Vec<(QualifiedName, String)>,
    /// Materialized views, refreshed after the load.
    pub materialized_views: Vec<QualifiedName>,
    /// Which rows move, when the plan subsets.
    pub subset: Option<crate::data::subset::pg::SubsetPlan>,
    /// What the user should know before the run (not errors).
    pub warnings: Vec<String>,
}

/// A column's decided treatment and why.
#[derive(Debug, Clone, PartialEq)]
struct Decision {
    transform: Transform,
    domain: String,
    unique: bool,
    why: String,
}

struct Resolver<'a> {
    catalog: &'a Catalog,
    presets: &'a [Presets],
    explicit: BTreeMap<(QualifiedName, String), (Decision, String)>,
    wildcard: BTreeMap<QualifiedName, (Decision, String)>,
}

impl Resolver<'_> {
    /// The partitioned table at the top of `t`'s partition tree (or `t`).
    fn root<'t>(&'t self, mut t: &'t QualifiedName) -> &'t QualifiedName {
        for _ in 0..32 {
            match self
                .catalog
                .tables
                .get(t)
                .and_then(|x| x.partition_of.as_ref())
            {
                Some(p) => t = p,
                None => break,
            }
        }
        t
    }

    fn explicit(&self, table: &QualifiedName, column: &str) -> Option<Decision> {
        let root = self.root(table);
        [table, root]
            .into_iter()
            .find_map(|t| self.explicit.get(&(t.clone(), column.to_string())))
            .map(|(d, _)| d.clone())
    }

    fn wildcard(&self, table: &QualifiedName) -> Option<Decision> {
        let root = self.root(table);
        [table, root]
            .into_iter()
            .find_map(|t| self.wildcard.get(t))
            .map(|(d, _)| d.clone())
    }

    /// The column's own rule, else the rule of the column a foreign key points at (so parent
    /// and child mask alike), else the table's `*` rule, else a preset.
    fn decide(&self, table: &QualifiedName, column: &str, depth: usize) -> Option<Decision> {
        if let Some(d) = self.explicit(table, column) {
            return Some(d);
        }
        if depth < 16
            && let Some(t) = self.catalog.tables.get(self.root(table))
        {
            for fk in &t.foreign_keys {
                if let Some(i) = fk.columns.iter().position(|c| c == column)
                    && let Some(pc) = fk.referenced_columns.get(i)
                    && let Some(d) = self.decide(&fk.references, pc, depth + 1)
                    && d.transform != Transform::Keep
                {
                    return Some(Decision {
                        why: format!("foreign key {} to {}.{}", fk.name, fk.references, pc),
                        unique: false,
                        ..d
                    });
                }
            }
        }
        if let Some(d) = self.wildcard(table) {
            return Some(d);
        }
        // A preset, fitted to the column (NOT NULL, unique); none that fits leaves it to the user.
        let t = self.catalog.tables.get(self.root(table));
        let col = t.and_then(|t| t.columns.iter().find(|c| c.name == column));
        let unique = t.is_some_and(|t| {
            t.unique_keys
                .iter()
                .chain(std::iter::once(&t.primary_key))
                .any(|k| k.len() == 1 && k[0] == column)
        });
        // A foreign key's column follows its parent (above); a name alone never masks it.
        if t.is_some_and(|t| {
            t.foreign_keys
                .iter()
                .any(|fk| fk.columns.iter().any(|c| c == column))
        }) {
            return None;
        }
        let (tr, spec, reason) = self.presets.iter().find_map(|p| p.lookup(t, column))?;
        let (tr, spec) = match col {
            Some(c) => crate::data::mask::presets::fit(tr, spec, c, unique)?,
            None => (tr.clone(), spec.to_string()),
        };
        Some(Decision {
            domain: tr.default_domain().to_string(),
            transform: tr,
            unique: false,
            why: format!("preset {spec} ({reason})"),
        })
    }
}

/// Meet a plan with a catalog. `file` names sluice.yaml for messages; `name` is the plan.
pub(crate) fn build(
    name: &str,
    cfg: &RefreshPlan,
    file: &str,
    presets: &[Presets],
    catalog: &Catalog,
) -> Result<Plan, Error> {
    let mut problems = Vec::new();
    let at = |key: &str| {
        cfg.positions
            .get(key)
            .cloned()
            .unwrap_or_else(|| Location::file(file))
    };
    let mut explicit = BTreeMap::new();
    let mut wildcard = BTreeMap::new();
    for (key, rule) in &cfg.masking.columns {
        let (table, column) = match parse_column_key(key) {
            Ok(k) => k,
            Err(e) => {
                problems.push(Problem::new(at(key), e));
                continue;
            }
        };
        let transform = match rule_transform(rule) {
            Ok(t) => t,
            Err(e) => {
                problems.push(Problem::new(at(key), format!("`{key}`: {e}")));
                continue;
            }
        };
        let (domain, unique) = match rule {
            ColumnRule::Full {
                domain,
                unique,
                element,
                ..
            } => {
                // An array's elements are masked in the column's domain: one named on the
                // element is the column's, and naming two different ones is an error.
                let inner = element.as_ref().and_then(|e| e.parts().1);
                match (domain, inner) {
                    (Some(a), Some(b)) if a != b => {
                        problems.push(Problem::new(
                            at(key),
                            format!("`{key}`: the column's domain `{a}` and its element's `{b}` differ; name one"),
                        ));
                        continue;
                    }
                    (Some(a), _) => (Some(a.clone()), *unique),
                    (None, b) => (b.map(str::to_string), *unique),
                }
            }
            ColumnRule::Short(_) => (None, false),
        };
        if let (Transform::Template(tpl), Some(c)) = (&transform, &column)
            && let Some(t) = catalog.tables.get(&table)
        {
            for name in crate::data::mask::structured::template_columns(tpl).unwrap_or_default() {
                if name == *c || !t.columns.iter().any(|x| x.name == name && !x.generated) {
                    problems.push(Problem::new(
                        at(key),
                        format!("`{key}`: the template names `{name}`, which is not another stored column of {table}"),
                    ));
                }
            }
        }
        let decision = Decision {
            domain: domain.unwrap_or_else(|| transform.default_domain().to_string()),
            transform,
            unique,
            why: format!("masking.columns.{key}"),
        };
        let Some(t) = catalog.tables.get(&table) else {
            problems.push(Problem::new(
                at(key),
                format!(
                    "`{key}`: the source has no table {table}{}",
                    catalog.did_you_mean(&table)
                ),
            ));
            continue;
        };
        match column {
            None => {
                wildcard.insert(table, (decision, key.clone()));
            }
            Some(c) => {
                if !t.columns.iter().any(|x| x.name == c) {
                    let names: Vec<&str> = t.columns.iter().map(|x| x.name.as_str()).collect();
                    problems.push(Problem::new(
                        at(key),
                        format!(
                            "`{key}`: {table} has no column `{c}` (columns: {})",
                            names.join(", ")
                        ),
                    ));
                    continue;
                }
                explicit.insert((table, c), (decision, key.clone()));
            }
        }
    }

    // Which tables' rows move.
    let mut selected: BTreeSet<QualifiedName> = BTreeSet::new();
    if cfg.tables.is_empty() {
        selected.extend(catalog.tables.keys().cloned());
    } else {
        for entry in &cfg.tables {
            match parse_table(entry) {
                Err(e) => problems.push(Problem::new(at(entry), e)),
                Ok(t) if !catalog.tables.contains_key(&t) => problems.push(Problem::new(
                    at(entry),
                    format!(
                        "`tables`: the source has no table {t}{}",
                        catalog.did_you_mean(&t)
                    ),
                )),
                Ok(t) => {
                    // A partitioned table brings its partitions, at any depth.
                    let mut stack = vec![t];
                    while let Some(t) = stack.pop() {
                        stack.extend(
                            catalog
                                .tables
                                .values()
                                .filter(|c| c.partition_of.as_ref() == Some(&t))
                                .map(|c| c.name.clone()),
                        );
                        selected.insert(t);
                    }
                }
            }
        }
    }

    let subset = match &cfg.subset {
        None => None,
        Some(sub) => match crate::data::subset::pg::plan_subset(sub, catalog, name) {
            Ok(s) => Some(s),
            Err(list) => {
                problems.extend(list.into_iter().map(|(k, m)| Problem::new(at(&k), m)));
                None
            }
        },
    };
    // Tables a subset leaves empty are schema only: their columns need no decision.
    if let Some(sp) = &subset {
        let root_of = |t: &QualifiedName| {
            let mut t = t.clone();
            while let Some(p) = catalog.tables.get(&t).and_then(|x| x.partition_of.clone()) {
                t = p;
            }
            t
        };
        selected.retain(|t| !sp.empty.contains(&root_of(t)));
    }
    let resolver = Resolver {
        catalog,
        presets,
        explicit,
        wildcard,
    };
    let mut plan = Plan {
        materialized_views: catalog.materialized_views.clone(),
        subset,
        ..Plan::default()
    };
    let mut unclassified: Vec<(&Table, &str, &str)> = Vec::new();
    for t in catalog.tables.values() {
        if !selected.contains(&t.name) {
            if t.kind == TableKind::Ordinary {
                plan.schema_only.push(t.name.clone());
            }
            continue;
        }
        // Every foreign key of a copied table must point at copied rows.
        for fk in &t.foreign_keys {
            if !selected.contains(&fk.references) {
                problems.push(Problem::new(
                    Location::file(file),
                    format!(
                        "refresh plan `{name}`: {} is copied but its foreign key {} points at {}, which is not; add {} to `tables:`",
                        t.name, fk.name, fk.references, fk.references
                    ),
                ));
            }
        }
        if t.kind == TableKind::Partitioned {
            continue;
        }
        let root = resolver.root(&t.name).clone();
        let root_table = catalog.tables.get(&root).unwrap_or(t);
        let mut columns = Vec::new();
        for c in t.columns.iter().filter(|c| !c.generated) {
            let unique_key = root_table
                .unique_keys
                .iter()
                .chain(std::iter::once(&root_table.primary_key))
                .any(|k| k.len() == 1 && k[0] == c.name);
            match resolver.decide(&t.name, &c.name, 0) {
                Some(d) => {
                    if (d.unique || unique_key) && !d.transform.can_be_unique() {
                        problems.push(Problem::new(
                            Location::file(file),
                            format!(
                                "{}.{}: masked by {} ({}), which cannot keep the values of a unique column distinct; use hash, email, uuid or keep",
                                t.name,
                                quote_ident(&c.name),
                                transform_name(&d.transform),
                                d.why
                            ),
                        ));
                    }
                    if let Err(e) = fits_type(&c.type_name, &d.transform) {
                        problems.push(Problem::new(
                            Location::file(file),
                            format!(
                                "{}.{} ({}): {} ({}) {e}",
                                t.name,
                                quote_ident(&c.name),
                                c.type_name,
                                transform_name(&d.transform),
                                d.why
                            ),
                        ));
                    }
                    let mut transform = d.transform;
                    if let Transform::DateShift { within, .. } = &mut transform
                        && !c.checks.is_empty()
                    {
                        let (bounds, unread) = date_bounds(&c.name, &c.type_name, &c.checks);
                        *within = bounds;
                        for check in unread {
                            plan.warnings.push(format!(
                                "{}.{}: date_shift may move a date outside `{check}`, whose bounds sluice cannot read; such a row fails the load (mask it with keep, null or a transform that cannot break the check)",
                                t.name,
                                quote_ident(&c.name)
                            ));
                        }
                    }
                    columns.push(ColumnPlan {
                        name: c.name.clone(),
                        unique: (d.unique || unique_key) && transform != Transform::Keep,
                        transform: (transform != Transform::Keep).then_some(transform),
                        domain: d.domain,
                        max_len: max_len(&c.type_name),
                        wire: c.wire,
                    });
                }
                None => {
                    unclassified.push((t, &c.name, &c.type_name));
                    columns.push(ColumnPlan {
                        name: c.name.clone(),
                        transform: None,
                        domain: String::new(),
                        unique: false,
                        max_len: None,
                        wire: c.wire,
                    });
                }
            }
        }
        plan.tables.push(TablePlan {
            name: t.name.clone(),
            columns,
            estimated_rows: t.estimated_rows,
            bytes: t.bytes,
        });
    }

    // Parent and child of a foreign key must mask alike, or the key breaks.
    for t in plan.tables.iter() {
        let Some(tt) = catalog.tables.get(resolver.root(&t.name)) else {
            continue;
        };
        for fk in &tt.foreign_keys {
            for (c, pc) in fk.columns.iter().zip(&fk.referenced_columns) {
                let mine = resolver
                    .decide(&t.name, c, 0)
                    .filter(|d| d.transform != Transform::Keep);
                let theirs = resolver
                    .decide(&fk.references, pc, 0)
                    .filter(|d| d.transform != Transform::Keep);
                let same = match (&mine, &theirs) {
                    (None, None) => true,
                    (Some(a), Some(b)) => a.transform == b.transform && a.domain == b.domain,
                    _ => false,
                };
                if !same {
                    let show = |d: &Option<Decision>| {
                        d.as_ref().map_or("kept".to_string(), |d| {
                            format!("{} ({})", transform_name(&d.transform), d.why)
                        })
                    };
                    problems.push(Problem::new(
                        Location::file(file),
                        format!(
                            "{}.{} is {} but the column its foreign key {} points at, {}.{}, is {}; mask both alike (same transform and domain) or the key breaks",
                            t.name,
                            quote_ident(c),
                            show(&mine),
                            fk.name,
                            fk.references,
                            quote_ident(pc),
                            show(&theirs)
                        ),
                    ));
                }
            }
        }
    }

    if !unclassified.is_empty() {
        match cfg.masking.unclassified {
            Unclassified::Warn => {
                plan.unclassified = unclassified
                    .iter()
                    .map(|(t, c, _)| (t.name.clone(), c.to_string()))
                    .collect();
            }
            Unclassified::Fail => {
                let mut msg = format!(
                    "refresh plan `{name}`: {} column(s) are not classified, so no row moves (fail-closed). Decide for each; paste under `refresh.{name}.masking.columns:`\n",
                    unclassified.len()
                );
                for (t, c, ty) in &unclassified {
                    let key = yaml_column_key(&t.name, c);
                    msg.push_str(&format!("        {key}: keep    # {ty}; or a transform\n"));
                }
                msg.push_str("    or set `unclassified: warn` to copy them unmasked");
                problems.push(Problem::new(Location::file(file), msg));
            }
        }
    }
    if !problems.is_empty() {
        return Err(Error::Invalid { problems });
    }
    plan.tables
        .sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
    Ok(plan)
}

/// The transform a column rule describes: the compact form, or the long form with the
/// parameters `regex`, `json`, `array` and `template` need.
pub(crate) fn rule_transform(rule: &ColumnRule) -> Result<Transform, String> {
    let ColumnRule::Full {
        transform,
        pattern,
        replace,
        paths,
        element,
        template,
        ..
    } = rule
    else {
        return parse_transform(rule.transform());
    };
    let stray = |field: &str, set: bool| {
        if set {
            Err(format!(
                "`{field}` does not go with transform `{transform}`"
            ))
        } else {
            Ok(())
        }
    };
    let name = transform.as_str();
    if name != "regex" {
        stray("pattern", pattern.is_some())?;
        stray("replace", replace.is_some())?;
    }
    if name != "json" {
        stray("paths", !paths.is_empty())?;
    }
    if name != "array" {
        stray("element", element.is_some())?;
    }
    if name != "template" {
        stray("template", template.is_some())?;
    }
    match name {
        "regex" => {
            let (Some(p), Some(r)) = (pattern, replace) else {
                return Err("`regex` needs `pattern` and `replace`".into());
            };
            let re = regex::Regex::new(p).map_err(|e| {
                format!(
                    "`pattern` does not compile: {}",
                    e.to_string()
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ")
                )
            })?;
            Ok(Transform::Regex {
                pattern: crate::data::mask::Pattern(re),
                replace: r.clone(),
            })
        }
        "json" => {
            if paths.is_empty() {
                return Err("`json` needs `paths` (a transform per JSON path)".into());
            }
            let mut out = Vec::new();
            for (path, spec) in paths {
                let steps = crate::data::mask::structured::parse_path(path)?;
                let (spec, domain) = spec.parts();
                let t = parse_transform(spec).map_err(|e| format!("path `{path}`: {e}"))?;
                if matches!(t, Transform::Json { .. } | Transform::Template(_)) {
                    return Err(format!("path `{path}`: `{spec}` cannot mask a JSON leaf"));
                }
                out.push(crate::data::mask::JsonPath {
                    path: path.clone(),
                    steps,
                    domain: domain.unwrap_or(t.default_domain()).to_string(),
                    transform: t,
                });
            }
            Ok(Transform::Json { paths: out })
        }
        "array" => {
            let (e, _) = element
                .as_ref()
                .ok_or("`array` needs `element` (the transform of each element)")?
                .parts();
            Ok(Transform::Array {
                element: Box::new(parse_transform(e)?),
            })
        }
        "template" => {
            let t = template.as_deref().ok_or("`template` needs `template`")?;
            crate::data::mask::structured::template_columns(t)?;
            Ok(Transform::Template(t.to_string()))
        }
        _ => parse_transform(transform),
    }
}

/// The range of dates a column's CHECK constraints allow, read from comparisons of the column
/// with constants joined by AND (`BETWEEN` reads back that way), as days since 1970-01-01, and
/// the checks that say more than that (those cannot be kept by shifting within a range). For a
/// timestamp the bounds give up a day at each end, so no time of day can cross them.
pub(crate) fn date_bounds(
    column: &str,
    type_name: &str,
    checks: &[String],
) -> (Option<(i64, i64)>, Vec<String>) {
    use crate::data::mask::days_from_civil;
    static CMP: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r#"\(*\s*(?:"((?:[^"]|"")+)"|([A-Za-z_][A-Za-z0-9_$]*))\s*(>=|<=|>|<|=)\s*'(\d{4})-(\d{2})-(\d{2})[^']*'::(?:date|timestamp[a-z ]*)\s*\)*"#,
        )
        .expect("static regex")
    });
    let timestamp = type_name.starts_with("timestamp");
    let (mut lo, mut hi) = (i64::MIN, i64::MAX);
    let mut unread = Vec::new();
    for check in checks {
        let body = check.trim().strip_prefix("CHECK").unwrap_or(check);
        let mut rest = body.to_string();
        let mut understood = true;
        for c in CMP.captures_iter(body) {
            let name = c
                .get(1)
                .map(|m| m.as_str().replace("\"\"", "\""))
                .or_else(|| c.get(2).map(|m| m.as_str().to_string()))
                .unwrap_or_default();
            if name != column {
                understood = false;
                break;
            }
            let day = days_from_civil(
                c[4].parse().unwrap_or(0),
                c[5].parse().unwrap_or(0),
                c[6].parse().unwrap_or(0),
            );
            let slack = i64::from(timestamp);
            match &c[3] {
                ">=" => lo = lo.max(day + slack),
                ">" => lo = lo.max(day + 1),
                "<=" => hi = hi.min(day - slack),
                "<" => hi = hi.min(day - 1),
                _ => {
                    lo = lo.max(day);
                    hi = hi.min(day);
                }
            }
            rest = rest.replacen(&c[0], " ", 1);
        }
        // What is left must be parentheses and ANDs only.
        let left = rest.replace(['(', ')'], " ");
        if !understood
            || left
                .split_whitespace()
                .any(|w| !w.eq_ignore_ascii_case("AND"))
        {
            unread.push(check.clone());
        }
    }
    let bounds = (lo != i64::MIN || hi != i64::MAX).then_some((lo, hi));
    (bounds, unread)
}

pub(crate) use crate::data::mask::presets::{fits_type, max_len};

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
