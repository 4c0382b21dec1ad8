//! The environment model of `sluice.yaml`: `environments:` (where each environment's secrets
//! live, and whether it is protected) and `secrets:` (what the app needs, per environment).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

/// One environment (dev, staging, prod, pr-123…).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// A protected environment's secrets are never referenced from another environment, and its
    /// data only reaches others through masking.
    #[serde(default)]
    pub protected: bool,
    /// Where this environment's secrets are stored; refs without a scheme-specific setting
    /// resolve against it.
    #[serde(default)]
    pub secrets: Option<Store>,
}

/// A secret store, selected by `provider`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "provider", rename_all = "lowercase", deny_unknown_fields)]
pub enum Store {
    /// An age-encrypted YAML map in a file (works with no server).
    Age {
        /// The encrypted store, relative to sluice.yaml.
        file: String,
        /// Identity file (age X25519 keys or an SSH private key). Default: `$SLUICE_AGE_KEY`,
        /// `$SLUICE_AGE_KEY_FILE`, then `~/.config/sluice/keys/<env>.txt`.
        #[serde(default)]
        identity: Option<String>,
        /// Recipients to encrypt to (age or SSH public keys). Default: the identity's own.
        #[serde(default)]
        recipients: Vec<String>,
    },
    /// The process environment (for CI systems that already inject variables).
    Env {
        /// Prefix added to every `env://NAME` lookup.
        #[serde(default)]
        prefix: Option<String>,
    },
}

/// What one variable resolves to in one environment.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Source {
    /// A reference: `age://KEY`, `env://VAR`, `vault://path#key`, `aws://name#json.key`,
    /// `sops://file.yaml#a.b`.
    Ref(String),
    /// A literal value for non-secret defaults (`{ value: … }`).
    Literal {
        /// The value, used as is.
        value: String,
    },
    /// A reference with options.
    Detailed {
        /// The reference.
        #[serde(rename = "ref")]
        reference: String,
        /// A missing secret is skipped instead of failing.
        #[serde(default)]
        optional: bool,
    },
}

/// A variable the app needs: its source per environment, keyed by environment name.
pub type SecretSpec = BTreeMap<String, Source>;
