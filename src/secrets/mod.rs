//! Environment-scoped secrets: references in `sluice.yaml` resolved in their own environment and
//! handed to the app at the last moment (`run`, `export`, `get`).
//!
//! Flow: [`refs`] (text -> [`refs::Ref`]) -> [`resolve`] (an environment's refs -> named
//! [`SecretValue`]s, one store read per distinct secret) -> [`inject`] (exec env, export formats).
//! Stores: [`age_store`] (the embedded default, no server) and the process environment.

pub(crate) mod age_store;
pub(crate) mod audit;
pub(crate) mod aws;
pub(crate) mod inject;
pub(crate) mod place;
pub(crate) mod refs;
pub(crate) mod resolve;
pub(crate) mod sops;
pub(crate) mod ssm;
pub(crate) mod supervise;
pub(crate) mod template;
pub(crate) mod trail;
pub(crate) mod vault;
pub(crate) mod watch;

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

/// A secret value: no `Display`, a redacting `Debug`, zeroized on drop. Read it only where it
/// leaves sluice (exec environment, an export the user asked for).
#[derive(Clone)]
pub struct SecretValue(SecretString);

impl SecretValue {
    /// Wrap a value.
    pub fn new(value: String) -> SecretValue {
        SecretValue(SecretString::from(value))
    }

    /// The value itself; call only at the edge where it must leave the process.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(*****)")
    }
}

/// Why a store gave no value for a reference: the secret (path, name, JSON key, SOPS key) is
/// not there, which an `optional: true` reference skips; or reading failed (denied,
/// unreachable, undecryptable), which fails even an optional one. Messages hold no values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Miss {
    /// Not in the store.
    Absent(String),
    /// The store could not be read.
    Failed(String),
}

impl fmt::Display for Miss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Miss::Absent(m) | Miss::Failed(m) => f.write_str(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let v = SecretValue::new("hunter2-sentinel".into());
        assert_eq!(format!("{v:?}"), "SecretValue(*****)");
        assert_eq!(v.expose(), "hunter2-sentinel");
    }
}
