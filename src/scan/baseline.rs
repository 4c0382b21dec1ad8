//! Baselines: known findings that a scan should not report again.
//!
//! A baseline is JSON holding fingerprints (which survive line moves) with the rule and path for
//! humans reading it. Written atomically (temp file + rename).

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Finding;
use crate::error::{Error, Location, Problem};

/// The baseline file format.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BaselineFile {
    /// Always 1.
    pub version: u32,
    /// Known findings.
    pub findings: Vec<BaselineEntry>,
}

/// One known finding.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(deny_unknown_fields)]
pub(crate) struct BaselineEntry {
    /// The finding's fingerprint.
    pub fingerprint: String,
    /// Rule id, for humans.
    pub rule: String,
    /// Path, for humans.
    pub path: String,
}

/// A loaded baseline.
#[derive(Debug, Default)]
pub(crate) struct Baseline {
    known: HashSet<String>,
}

impl Baseline {
    /// Read a baseline file; errors name the file, line and column.
    pub(crate) fn load(path: &Path) -> Result<Baseline, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        let name = path.display().to_string();
        let file: BaselineFile = serde_json::from_str(&text).map_err(|e| Error::Invalid {
            problems: vec![Problem::new(
                Location::at(&name, e.line(), e.column()),
                format!("not a sluice baseline: {e}; regenerate it with --write-baseline"),
            )],
        })?;
        if file.version != 1 {
            return Err(Error::Invalid {
                problems: vec![Problem::new(
                    Location::file(&name),
                    format!("unsupported baseline version {}", file.version),
                )],
            });
        }
        Ok(Baseline {
            known: file.findings.into_iter().map(|e| e.fingerprint).collect(),
        })
    }

    /// Whether a finding is already known.
    pub(crate) fn contains(&self, f: &Finding) -> bool {
        self.known.contains(&f.fingerprint)
    }

    /// Write the findings as a new baseline, atomically.
    pub(crate) fn write(path: &Path, findings: &[Finding]) -> Result<(), Error> {
        let mut entries: Vec<BaselineEntry> = findings
            .iter()
            .map(|f| BaselineEntry {
                fingerprint: f.fingerprint.clone(),
                rule: f.rule.clone(),
                path: f.path.clone(),
            })
            .collect();
        entries.sort();
        entries.dedup();
        let file = BaselineFile {
            version: 1,
            findings: entries,
        };
        let mut text =
            serde_json::to_string_pretty(&file).map_err(|e| Error::Usage(e.to_string()))?;
        text.push('\n');
        crate::fsio::write_atomic(path, text.as_bytes())
    }
}
