//! Baselines: known findings that a scan should not report again, and the key of fingerprints.
//!
//! A baseline is JSON holding fingerprints (which survive line moves) with the rule and
//! repository-relative path for humans reading it. Written atomically (temp file + rename).
//!
//! Fingerprints are keyed (HMAC-SHA256), so a baseline or SARIF file does not let anyone test
//! guesses of a weak password offline with a plain hash. The key is, in order: the secret in
//! `$SLUICE_FINGERPRINT_KEY` (a CI secret, say: then a leaked baseline tells nothing), else the
//! random salt the baseline holds (which stops precomputed tables and matching one secret across
//! repositories), else, with no baseline, the repository's first commit id.

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Finding;
use crate::error::{Error, Location, Problem};
use crate::keyed::HmacKey;

/// The variable holding a secret fingerprint key.
pub(crate) const KEY_VAR: &str = "SLUICE_FINGERPRINT_KEY";

/// The baseline file format.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BaselineFile {
    /// 2 (keyed fingerprints); 1 (plain SHA-256, still read).
    pub version: u32,
    /// Hex salt the fingerprints are keyed with (absent when keyed with `$SLUICE_FINGERPRINT_KEY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    /// `SLUICE_FINGERPRINT_KEY` when the fingerprints are keyed with that variable's value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyed_with: Option<String>,
    /// A MAC of a fixed text under the key: tells a wrong key from changed findings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_check: Option<String>,
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

/// What fingerprints are keyed with.
#[derive(Debug, Clone)]
pub(crate) enum Keying {
    /// `$SLUICE_FINGERPRINT_KEY`.
    Secret(HmacKey),
    /// A salt (hex in the baseline), or a repository's first commit id.
    Salt(String, HmacKey),
    /// Version 1 baselines: unkeyed SHA-256 of rule, path as scanned and secret.
    Legacy,
}

impl Keying {
    /// `$SLUICE_FINGERPRINT_KEY` when set and not empty.
    pub(crate) fn from_env() -> Option<Keying> {
        std::env::var(KEY_VAR)
            .ok()
            .filter(|k| !k.is_empty())
            .map(|k| Keying::Secret(HmacKey::new(k.as_bytes())))
    }

    /// Keyed with `salt`.
    pub(crate) fn salt(salt: &str) -> Keying {
        Keying::Salt(salt.to_string(), HmacKey::new(salt.as_bytes()))
    }

    /// A fresh random salt.
    pub(crate) fn random() -> Result<Keying, Error> {
        let bytes = crate::keyed::random::<16>().map_err(|e| Error::Io {
            path: "/dev/urandom".into(),
            source: e,
        })?;
        Ok(Keying::salt(&hex(&bytes)))
    }

    fn check(&self) -> Option<String> {
        match self {
            Keying::Secret(k) | Keying::Salt(_, k) => {
                Some(hex(&k.mac(&[b"sluice fingerprint key check"])[..8]))
            }
            Keying::Legacy => None,
        }
    }

    /// The fingerprint of `f`, whose repository-relative path is `path`.
    pub(crate) fn fingerprint(&self, f: &Finding, path: &str) -> String {
        match self {
            Keying::Secret(k) | Keying::Salt(_, k) => hex(&k.mac(&[
                b"sluice fingerprint v2\0",
                f.rule.as_bytes(),
                b"\0",
                path.as_bytes(),
                b"\0",
                f.secret.expose(),
            ])[..16]),
            Keying::Legacy => super::fingerprint(&f.rule, &f.path, f.secret.expose()),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A loaded baseline.
#[derive(Debug)]
pub(crate) struct Baseline {
    known: HashSet<String>,
    /// What its fingerprints are keyed with.
    pub keying: Keying,
}

impl Baseline {
    /// Read a baseline file; errors name the file, line and column.
    pub(crate) fn load(path: &Path) -> Result<Baseline, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        let name = path.display().to_string();
        let problem = |message: String| Error::Invalid {
            problems: vec![Problem::new(Location::file(&name), message)],
        };
        let file: BaselineFile = serde_json::from_str(&text).map_err(|e| Error::Invalid {
            problems: vec![Problem::new(
                Location::at(&name, e.line(), e.column()),
                format!("not a sluice baseline: {e}; regenerate it with --write-baseline"),
            )],
        })?;
        let keying = match (file.version, &file.salt, &file.keyed_with) {
            (1, None, None) => Keying::Legacy,
            (2, Some(salt), None) if salt.len() >= 16 => Keying::salt(salt),
            (2, None, Some(var)) if var == KEY_VAR => Keying::from_env().ok_or_else(|| {
                Error::Usage(format!(
                    "{name}: its fingerprints are keyed with ${KEY_VAR}; set it to the key the baseline was written with"
                ))
            })?,
            (1 | 2, ..) => {
                return Err(problem(
                    "the baseline's key fields are inconsistent (version 2 needs a salt of 16+ hex digits or `keyed_with: SLUICE_FINGERPRINT_KEY`); regenerate it with --write-baseline".into(),
                ));
            }
            (v, ..) => return Err(problem(format!("unsupported baseline version {v}"))),
        };
        if let (Keying::Secret(_), Some(check)) = (&keying, &file.key_check)
            && keying.check().as_deref() != Some(check.as_str())
        {
            return Err(Error::Usage(format!(
                "{name}: ${KEY_VAR} is not the key this baseline was written with; set the right one or regenerate the baseline"
            )));
        }
        Ok(Baseline {
            known: file.findings.into_iter().map(|e| e.fingerprint).collect(),
            keying,
        })
    }

    /// The keying of the baseline at `path` if it exists and reads (so rewriting a baseline
    /// keeps its salt and fingerprints stable), else `None`.
    pub(crate) fn existing_keying(path: &Path) -> Option<Keying> {
        Baseline::load(path)
            .ok()
            .map(|b| b.keying)
            .filter(|k| !matches!(k, Keying::Legacy))
    }

    /// Whether a finding is already known.
    pub(crate) fn contains(&self, f: &Finding) -> bool {
        self.known.contains(&f.fingerprint)
    }

    /// Write the findings as a new baseline keyed with `keying`, atomically. `paths[i]` is the
    /// repository-relative path of `findings[i]`.
    pub(crate) fn write(
        path: &Path,
        findings: &[Finding],
        paths: &[String],
        keying: &Keying,
    ) -> Result<(), Error> {
        let mut entries: Vec<BaselineEntry> = findings
            .iter()
            .zip(paths)
            .map(|(f, p)| BaselineEntry {
                fingerprint: f.fingerprint.clone(),
                rule: f.rule.clone(),
                path: p.clone(),
            })
            .collect();
        entries.sort();
        entries.dedup();
        let (version, salt, keyed_with) = match keying {
            Keying::Secret(_) => (2, None, Some(KEY_VAR.to_string())),
            Keying::Salt(s, _) => (2, Some(s.clone()), None),
            Keying::Legacy => (1, None, None),
        };
        let file = BaselineFile {
            version,
            salt,
            keyed_with,
            key_check: keying.check(),
            findings: entries,
        };
        let mut text =
            serde_json::to_string_pretty(&file).map_err(|e| Error::Usage(e.to_string()))?;
        text.push('\n');
        crate::fsio::write_atomic(path, text.as_bytes())
    }
}
