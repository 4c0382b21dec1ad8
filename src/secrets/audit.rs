//! `sluice secrets check` and `sluice secrets diff`: whole-configuration views that never show a
//! value.
//!
//! `check` resolves every environment and lists every problem (a variable with no source in an
//! environment, a reference that does not resolve). `diff` compares two environments by name, by
//! reference and by keyed hash of the values (HMAC-SHA256 under a key drawn for this run only,
//! so not even a digest can be correlated across runs).

use std::collections::BTreeMap;

use crate::keyed::hmac_sha256;

use super::resolve::{Resolver, entries};
use crate::error::Error;

/// Every problem of the environments `only` (all when empty), one line each: a variable with
/// no source in an environment (unless marked `{ none: true }` there), a reference that does not
/// resolve, a store that cannot be reached or logged in to. One environment's failure does not
/// hide another's.
pub(crate) fn check(secrets: &Resolver<'_>, only: &[String]) -> Result<Vec<String>, Error> {
    let loaded = secrets.loaded();
    let envs: Vec<&String> = loaded.config.environments.keys().collect();
    for o in only {
        if !envs.contains(&o) {
            return Err(Error::Usage(format!(
                "--env {o}: no such environment under `environments:` (declared: {})",
                envs.iter()
                    .map(|e| e.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    let envs: Vec<&String> = envs
        .into_iter()
        .filter(|e| only.is_empty() || only.contains(e))
        .collect();
    let mut problems = Vec::new();
    for env in envs {
        for (name, spec) in &loaded.config.secrets {
            if crate::config::envs::source_in(spec, env).is_none() {
                problems.push(format!(
                    "environment `{env}`: variable `{name}` has no source; add `{env}: …` under secrets.{name} (or `{env}: {{ none: true }}` if it is deliberately unset there)"
                ));
            }
        }
        match secrets.each(env, &[]) {
            Ok(each) => problems.extend(
                each.into_iter()
                    .filter_map(|(_, r)| r.err())
                    .map(|e| e.to_string()),
            ),
            Err(e) => problems.push(format!("environment `{env}`: {e}")),
        }
    }
    Ok(problems)
}

/// How one variable compares between two environments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DiffLine {
    /// The variable.
    pub name: String,
    /// Its source in the first environment, if any.
    pub left: Option<String>,
    /// Its source in the second environment, if any.
    pub right: Option<String>,
    /// Whether the values are equal (None when one side has no value).
    pub same_value: Option<bool>,
}

impl DiffLine {
    /// Whether the two sides differ in any way.
    pub(crate) fn differs(&self) -> bool {
        self.left != self.right || self.same_value != Some(true)
    }
}

/// Compare environments `a` and `b`.
pub(crate) fn diff(secrets: &Resolver<'_>, a: &str, b: &str) -> Result<Vec<DiffLine>, Error> {
    let loaded = secrets.loaded();
    let key = super::watch::process_key();
    // Per variable: its source text and the keyed hash of its value.
    type Side = BTreeMap<String, (String, Option<[u8; 32]>)>;
    let side = |env: &str| -> Result<Side, Error> {
        let sources: BTreeMap<String, String> = entries(loaded, env, &[])?
            .into_iter()
            .map(|e| {
                let text = e.source_text();
                (e.name, text)
            })
            .collect();
        let mut out = BTreeMap::new();
        for (name, result) in secrets.each(env, &[])? {
            let digest = result?.map(|v| hmac_sha256(&key, v.expose().as_bytes()));
            let source = sources.get(&name).cloned().unwrap_or_default();
            out.insert(name, (source, digest));
        }
        Ok(out)
    };
    let left = side(a)?;
    let right = side(b)?;
    let mut names: Vec<&String> = left.keys().chain(right.keys()).collect();
    names.sort();
    names.dedup();
    Ok(names
        .into_iter()
        .map(|n| {
            let l = left.get(n);
            let r = right.get(n);
            DiffLine {
                name: n.clone(),
                left: l.map(|x| x.0.clone()),
                right: r.map(|x| x.0.clone()),
                same_value: match (l.and_then(|x| x.1), r.and_then(|x| x.1)) {
                    (Some(x), Some(y)) => Some(x == y),
                    _ => None,
                },
            }
        })
        .collect())
}
