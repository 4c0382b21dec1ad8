//! The `refresh:` section of `sluice.yaml`: named plans that copy a source database into a target
//! one, masking on the way. Types only; `data::plan` meets them with a catalog.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::error::Location;

/// One refresh plan (`sluice refresh NAME`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefreshPlan {
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
    /// Which rows move (default: all of every table under `tables`).
    #[serde(default)]
    pub subset: Option<Subset>,
    /// How columns are masked.
    pub masking: Masking,
    /// The target may live on the source's own server (another database of the same cluster,
    /// or the primary of a source standby). Off by default: sluice asks both servers for their
    /// system identifier and refuses such a target unless this says so. A target that is the
    /// source database itself is refused always.
    #[serde(default)]
    pub same_server: bool,
    /// Sign the `--report` file (ed25519), so `sluice verify PLAN --report FILE` can prove which
    /// transform each column got.
    #[serde(default)]
    pub signing: Option<Signing>,
    /// Copy GRANTs and default privileges to the roles that exist on the target (each one
    /// missing there is reported and its grants left out). Off by default: the loading user
    /// owns the copy and nobody else is granted anything.
    #[serde(default)]
    pub grants: bool,
    /// Where each column key and table name stands in the file (filled in by the loader).
    #[serde(skip)]
    #[schemars(skip)]
    pub positions: BTreeMap<String, Location>,
}

/// A database: a connection URL, or a variable of `secrets:` resolved in an environment.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Endpoint {
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
pub(crate) struct Masking {
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
pub(crate) enum ColumnRule {
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
        /// `json`: a transform per JSON path (`$.contact.phone`, `$.items[*].email`): compact
        /// (`phone`) or `{ transform, domain }`.
        #[serde(default)]
        paths: BTreeMap<String, InnerRule>,
        /// `array`: the transform of every element: compact (`email`) or
        /// `{ transform, domain }`.
        #[serde(default)]
        element: Option<InnerRule>,
        /// `template`: text from the row's other columns after masking, `{first} {last}`.
        #[serde(default)]
        template: Option<String>,
    },
}

/// How refresh reports are signed.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Signing {
    /// The ed25519 private key, PKCS#8 PEM (`openssl genpkey -algorithm ed25519`), as
    /// `secret:NAME` resolved in the source environment.
    pub key: String,
    /// The matching public key, SPKI PEM (`openssl pkey -pubout`), a file relative to this one:
    /// what `verify --report` checks a signature against.
    pub public_key: String,
}

/// The transform of the values inside a structured column (a JSON path's leaves, an array's
/// elements).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub(crate) enum InnerRule {
    /// The compact form: `email`, `phone`, `hash:12`.
    Short(String),
    /// With a determinism domain of its own.
    Full(InnerFull),
}

/// The long form of an [`InnerRule`].
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct InnerFull {
    /// The transform, in the compact form.
    pub transform: String,
    /// Determinism domain (default: the transform's kind). Name a column's domain here to mask
    /// a value inside JSON or an array exactly as that column masks it.
    #[serde(default)]
    pub domain: Option<String>,
}

impl InnerRule {
    /// The transform text and the domain, if one is named.
    pub(crate) fn parts(&self) -> (&str, Option<&str>) {
        match self {
            InnerRule::Short(s) => (s, None),
            InnerRule::Full(f) => (&f.transform, f.domain.as_deref()),
        }
    }
}

impl ColumnRule {
    /// The transform text.
    pub(crate) fn transform(&self) -> &str {
        match self {
            ColumnRule::Short(s) => s,
            ColumnRule::Full { transform, .. } => transform,
        }
    }
}

/// What an unclassified column does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Unclassified {
    /// Stop before any row moves, listing every such column.
    #[default]
    Fail,
    /// Copy it unmasked, with a warning.
    Warn,
}

/// A referentially complete slice: roots, their required parents, chosen children.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Subset {
    /// Where the slice starts: rows picked per table.
    pub roots: Vec<Root>,
    /// Tables (`schema.table`: every foreign key of it into included rows) or foreign keys
    /// (`schema.table(col, …)`) whose rows come along when they reference a root or a child row.
    /// `all` follows every foreign key downward, up to `depth` levels.
    #[serde(default)]
    pub children: Children,
    /// Levels followed downward with `children: all` (default 3).
    #[serde(default)]
    pub depth: Option<u32>,
    /// Aggregate parts (`schema.table` or `schema.table(col, …)`): every included row of the
    /// referenced table brings them, however it came in (an order is always copied whole).
    #[serde(default)]
    pub always: Vec<String>,
    /// Relationships the schema does not declare.
    #[serde(default)]
    pub virtual_keys: Vec<VirtualKey>,
    /// Tables copied whole although no root reaches them (lookup tables).
    #[serde(default)]
    pub full: Vec<String>,
    /// Tables created empty although no root reaches them.
    #[serde(default)]
    pub empty: Vec<String>,
    /// Memory the closure's pending work may take before it spills to an encrypted temporary
    /// file (`256MB`, `1GiB`; default 256MiB).
    #[serde(default)]
    pub memory: Option<String>,
}

/// Which children to follow.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub(crate) enum Children {
    /// `all`.
    All(AllChildren),
    /// Tables or foreign keys.
    Listed(Vec<String>),
}

impl Default for Children {
    fn default() -> Self {
        Children::Listed(Vec::new())
    }
}

/// The word `all`.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AllChildren {
    /// Every foreign key downward.
    All,
}

/// Rows a subset starts from.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Root {
    /// The table (`schema.table`).
    pub table: String,
    /// An SQL condition on the table's rows.
    #[serde(default, rename = "where")]
    pub condition: Option<String>,
    /// A share of the rows, in percent (0 < p ≤ 100).
    #[serde(default)]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub percent: Option<f64>,
    /// How `percent` picks rows: `keyed` (default: by a keyed hash of the primary key, the same
    /// rows every night for the same key and data) or `tablesample` (faster, not repeatable).
    #[serde(default)]
    pub method: SampleMethod,
    /// At most this many rows (after `where` and `percent`).
    #[serde(default)]
    pub limit: Option<u64>,
}

/// How a percent is sampled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SampleMethod {
    /// A keyed hash of the primary key (or of the whole row without one): repeatable.
    #[default]
    Keyed,
    /// `TABLESAMPLE SYSTEM`: block sampling, fast, different rows each run.
    Tablesample,
}

/// A foreign key the schema does not declare.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VirtualKey {
    /// The referencing side: `schema.table(column, …)`, or `schema.table(meta->>'user_id')`
    /// for a key inside a JSON column (one SQL expression per referenced column).
    pub from: String,
    /// The referenced side: `schema.table(column, …)`.
    pub to: String,
    /// For a polymorphic pair: only rows whose `type_column` equals `type_value` reference
    /// this table.
    #[serde(default)]
    pub type_column: Option<String>,
    /// See `type_column`.
    #[serde(default)]
    pub type_value: Option<String>,
}
