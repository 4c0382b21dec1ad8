//! The `refresh:` section of `sluice.yaml`: named plans that copy a source database into a target
//! one, masking on the way. Types only; `data::plan` meets them with a catalog.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::error::Location;

/// One refresh plan (`sluice refresh NAME`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshPlan {
    /// Where rows come from (read only: a replica is fine).
    pub source: Endpoint,
    /// Where they go. The database named by the URL is replaced atomically: rows are loaded into
    /// a fresh database on the same server, which is renamed into place; the previous one is kept
    /// as `<name>_prev` until the next success. The user needs CREATEDB.
    pub target: Endpoint,
    /// Tables whose rows are copied (`schema.table`, `table` for `public`); default all. Every
    /// table's schema is copied; the others stay empty.
    #[serde(default)]
    pub tables: Vec<String>,
    /// Tables copied at once (default: the number of cores). `--jobs` overrides it.
    #[serde(default)]
    #[schemars(range(min = 1, max = 64))]
    pub jobs: Option<usize>,
    /// How columns are masked.
    pub masking: Masking,
    /// Where each column key and table name stands in the file (filled in by the loader).
    #[serde(skip)]
    #[schemars(skip)]
    pub positions: BTreeMap<String, Location>,
}

/// A database: a connection URL, or a variable of `secrets:` resolved in an environment.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// The environment this database belongs to; `secret:NAME` URLs resolve in it. A refresh
    /// never targets a protected environment.
    #[serde(default)]
    pub env: Option<String>,
    /// `secret:NAME` (the variable `NAME` of `secrets:`, resolved in `env`) or a
    /// `postgres://` URL (use `${VAR}` rather than writing a password here).
    pub url: String,
}

/// Masking settings of a plan.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Masking {
    /// The masking key, `secret:NAME`, resolved in the source environment. The same key gives
    /// the same masked values every night and in every table.
    pub key: String,
    /// Column-name presets: `builtin:pii` (the default) and/or preset files relative to this
    /// file. `[]` turns presets off.
    #[serde(default = "default_presets")]
    pub presets: Vec<String>,
    /// Per-column transforms, keyed `schema.table.column` (`table.column` for `public`;
    /// `schema.table.*` for every column of a table; double quotes for odd identifiers). A value
    /// is a compact transform (`email`, `hash:12`, `keep`) or `{ transform, domain, unique }`.
    #[serde(default)]
    pub columns: BTreeMap<String, ColumnRule>,
    /// What an unclassified column does: `fail` (default) stops the refresh before any row
    /// moves; `warn` copies it unmasked and says so.
    #[serde(default)]
    pub unclassified: Unclassified,
}

fn default_presets() -> Vec<String> {
    vec!["builtin:pii".into()]
}

/// How one column is masked.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ColumnRule {
    /// The compact form: `email`, `hash:12`, `card:keep_last4`, `keep`.
    Short(String),
    /// The long form.
    Full {
        /// The transform, in the compact form.
        transform: String,
        /// Determinism domain: columns sharing it mask equal inputs to equal outputs (default:
        /// one per transform kind, so an e-mail masks alike in every table).
        #[serde(default)]
        domain: Option<String>,
        /// Masked values must stay distinct (implied by a unique index on the column).
        #[serde(default)]
        unique: bool,
        /// `regex`: the pattern whose matches are replaced.
        #[serde(default)]
        pattern: Option<String>,
        /// `regex`: the replacement (`$1`, `${name}` for groups).
        #[serde(default)]
        replace: Option<String>,
        /// `json`: a transform (compact form) per JSON path (`$.contact.phone`,
        /// `$.items[*].email`).
        #[serde(default)]
        paths: BTreeMap<String, String>,
        /// `array`: the transform (compact form) of every element.
        #[serde(default)]
        element: Option<String>,
        /// `template`: text from the row's other columns after masking, `{first} {last}`.
        #[serde(default)]
        template: Option<String>,
    },
}

impl ColumnRule {
    /// The transform text.
    pub fn transform(&self) -> &str {
        match self {
            ColumnRule::Short(s) => s,
            ColumnRule::Full { transform, .. } => transform,
        }
    }
}

/// What an unclassified column does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Unclassified {
    /// Stop before any row moves, listing every such column.
    #[default]
    Fail,
    /// Copy it unmasked, with a warning.
    Warn,
}
