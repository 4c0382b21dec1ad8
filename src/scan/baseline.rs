//! Baselines: known findings that a scan should not report again.
//!
//! A baseline is JSON holding fingerprints (which survive line moves) with the rule and path for
//! humans reading it. Written atomically (temp file + rename).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Finding;
use crate::error::{Error, Location, Problem};

/// The baseline file format.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineFile {
    /// Always 1.
    pub version: u32,
    /// Known findings.
    pub findings: Vec<BaselineEntry>,
}

/// One known finding.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(deny_unknown_fields)]
pub struct BaselineEntry {
    /// The finding's fingerprint.
    pub fingerprint: String,
    /// Rule id, for humans.
    pub rule: String,
    /// Path, for humans.
    pub path: String,
}

/// A loaded baseline.
#[derive(Debug, Default)]
pub struct Baseline {
    known: HashSet<String>,
}

impl Baseline {
    /// Read a baseline file; errors name the file, line and column.
    pub fn load(path: &Path) -> Result<Baseline, Error> {
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
    pub fn contains(&self, f: &Finding) -> bool {
        self.known.contains(&f.fingerprint)
    }

    /// Write the findings as a new baseline, atomically.
    pub fn write(path: &Path, findings: &[Finding]) -> Result<(), Error> {
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
        write_atomic(path, text.as_bytes())
    }
}

/// Write `bytes` to `path` via a temporary file in the same directory and a rename, so readers
/// see the old file or the new one, never a part. Targets that are not regular files (`/dev/null`,
/// a FIFO, `/dev/stdout`) are written directly: renaming over them would replace the device.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    let io = |e| Error::Io {
        path: PathBuf::from(path),
        source: e,
    };
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        return std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|mut f| f.write_all(bytes))
            .map_err(io);
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}
