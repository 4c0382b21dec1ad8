//! Known values: an environment's real secret values found verbatim, a high-precision check that
//! needs no rule. Values in, (start, end, variable name) matches out; values shorter than
//! [`MIN_LEN`] are left out (they would match everywhere).

use aho_corasick::{AhoCorasick, MatchKind};

use crate::secrets::SecretValue;

/// The rule id of known-value findings.
pub(crate) const RULE_ID: &str = "known-secret";
/// Shortest value looked for.
pub(crate) const MIN_LEN: usize = 6;

/// A matcher over an environment's values.
pub struct KnownValues {
    env: String,
    names: Vec<String>,
    matcher: Option<AhoCorasick>,
}

impl std::fmt::Debug for KnownValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KnownValues({}, {:?})", self.env, self.names)
    }
}

impl KnownValues {
    /// A matcher for the values of `env`.
    pub fn new(env: &str, values: &[(String, SecretValue)]) -> KnownValues {
        let kept: Vec<&(String, SecretValue)> = values
            .iter()
            .filter(|(_, v)| v.expose().len() >= MIN_LEN)
            .collect();
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(kept.iter().map(|(_, v)| v.expose().as_bytes()))
            .ok()
            .filter(|_| !kept.is_empty());
        KnownValues {
            env: env.to_string(),
            names: kept.iter().map(|(n, _)| n.clone()).collect(),
            matcher,
        }
    }

    /// The environment.
    pub fn env(&self) -> &str {
        &self.env
    }

    /// Every occurrence of a value: (start, end, variable name).
    pub fn find<'a>(&'a self, buf: &[u8]) -> Vec<(usize, usize, &'a str)> {
        let Some(m) = &self.matcher else {
            return Vec::new();
        };
        m.find_iter(buf)
            .map(|x| {
                (
                    x.start(),
                    x.end(),
                    self.names[x.pattern().as_usize()].as_str(),
                )
            })
            .collect()
    }
}
