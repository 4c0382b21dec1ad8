//! `sluice.yaml`: discovery, loading and validation.
//!
//! A path (or the working directory) in, a typed [`Config`] out, or every problem of the file at
//! once, each at `file:line:col`. Steps: parse YAML with positions ([`yaml`]), interpolate
//! `${ENV_VAR}`, validate against the JSON Schema generated from the types below ([`validate`]),
//! then deserialize. `schemas/sluice.schema.json` is that generated schema; a test keeps it fresh.

pub(crate) mod envs;
pub(crate) mod refresh;
pub(crate) mod validate;
pub(crate) mod yaml;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;

use crate::error::{Error, Location, Problem};
use crate::secrets::place;
use envs::Store;

/// The file name looked for when no `--config` is given.
pub(crate) const FILE_NAME: &str = "sluice.yaml";

/// The whole `sluice.yaml`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "sluice.yaml")]
pub(crate) struct Config {
    /// Schema version of this file; always 1.
    #[schemars(range(min = 1, max = 1))]
    #[allow(dead_code, reason = "checked while parsing: only version 1 exists")]
    pub version: u32,
    /// Settings of `sluice scan`.
    #[serde(default)]
    pub scan: ScanConfig,
    /// The environments (dev, staging, prod…) and where each keeps its secrets.
    #[serde(default)]
    pub environments: BTreeMap<String, envs::Environment>,
    /// The variables the app needs, each with its source per environment.
    #[serde(default)]
    pub secrets: BTreeMap<String, envs::SecretSpec>,
    /// Refresh plans: which database is copied where, and how its columns are masked.
    #[serde(default)]
    pub refresh: BTreeMap<String, refresh::RefreshPlan>,
    /// Audit trail of every secret resolution, as JSON lines (never values): a file path
    /// (relative to this file), `stderr` or `syslog`.
    #[serde(default)]
    pub audit: Option<String>,
}

/// Settings of `sluice scan`. Command-line flags add to these.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScanConfig {
    /// Extra rule files (same schema as the built-ins), relative to this file.
    #[serde(default)]
    pub rules: Vec<String>,
    /// Built-in or custom rule ids to turn off.
    #[serde(default)]
    pub disable_rules: Vec<String>,
    /// Paths to skip, as gitignore-style globs (`tests/fixtures/**`, `*.min.js`).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Regexes; a found secret matching one is not reported (known test values).
    #[serde(default)]
    pub allow: Vec<String>,
    /// Baseline file of known findings, relative to this file.
    #[serde(default)]
    pub baseline: Option<String>,
    /// Honour .gitignore files (off by default: ignored files are where secrets hide).
    #[serde(default)]
    pub gitignore: bool,
    /// Skip files larger than this many bytes.
    #[serde(default)]
    pub max_file_size: Option<u64>,
    /// Decode base64 values (Kubernetes Secret `data:` and similar) and scan them; default true.
    #[serde(default)]
    pub decode_base64: Option<bool>,
    /// How deep to enter archives (zip, jar, tar, tar.gz, gz) found among the inputs: 0 never;
    /// default 3.
    #[serde(default)]
    pub archive_depth: Option<usize>,
}

/// A loaded configuration and where it came from.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// The configuration.
    pub config: Config,
    /// The file it was read from.
    pub path: PathBuf,
}

impl Loaded {
    /// Resolve a path written in the config relative to the config's directory.
    pub(crate) fn relative(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            return p.to_path_buf();
        }
        self.path.parent().unwrap_or(Path::new(".")).join(p)
    }
}

/// The schema as committed (`schemas/sluice.schema.json`, which `config::schemas_are_fresh`
/// keeps equal to [`schema`]), parsed once: generating it costs every command a millisecond
/// of start-up.
fn committed_schema() -> &'static serde_json::Value {
    static SCHEMA: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    SCHEMA.get_or_init(|| {
        serde_json::from_str(include_str!("../../schemas/sluice.schema.json"))
            .unwrap_or_else(|_| schema())
    })
}

/// The JSON Schema of `sluice.yaml`, generated from [`Config`].
pub(crate) fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Config)).unwrap_or_default()
}

/// Find `sluice.yaml` in `start` or the nearest parent directory.
pub(crate) fn discover(start: &Path) -> Option<PathBuf> {
    let start = start.canonicalize().unwrap_or_else(|_| start.to_path_buf());
    start
        .ancestors()
        .map(|d| d.join(FILE_NAME))
        .find(|p| p.is_file())
}

/// Load the config named by `explicit`, else the discovered one, else none.
pub(crate) fn load_or_discover(
    explicit: Option<&Path>,
    cwd: &Path,
) -> Result<Option<Loaded>, Error> {
    match explicit {
        Some(p) => load(p).map(Some),
        None => discover(cwd).map(|p| load(&p)).transpose(),
    }
}

/// Load and validate one config file, interpolating from the process environment.
pub(crate) fn load(path: &Path) -> Result<Loaded, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let config = parse(&path.display().to_string(), &text, &|k| {
        std::env::var(k).ok()
    })?;
    Ok(Loaded {
        config,
        path: path.to_path_buf(),
    })
}

/// Parse config text; `lookup` resolves `${VAR}`.
pub(crate) fn parse(
    file: &str,
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, Error> {
    let mut node = yaml::parse(file, text).map_err(|p| Error::Invalid { problems: vec![p] })?;
    if node.value == yaml::Value::Null {
        return Err(Error::Invalid {
            problems: vec![Problem::new(
                Location::file(file),
                "the file is empty; start it with `version: 1`",
            )],
        });
    }
    let mut problems = Vec::new();
    yaml::interpolate(file, &mut node, lookup, &mut problems);
    validate::validate(file, &node, committed_schema(), &mut problems);
    check_semantics(file, &node, &mut problems);
    if !problems.is_empty() {
        problems.sort();
        problems.dedup();
        return Err(Error::Invalid { problems });
    }
    let mut config: Config =
        serde_json::from_value(node.to_json()).map_err(|e| Error::Invalid {
            problems: vec![Problem::new(Location::file(file), e.to_string())],
        })?;
    // Plans are met with a catalog later; keep where their keys stand for those messages.
    if let Some(plans) = get(&node, "refresh") {
        for (name, plan_node) in entries(plans) {
            let Some(plan) = config.refresh.get_mut(&name.key_text()) else {
                continue;
            };
            if let Some(columns) = get(plan_node, "masking").and_then(|m| get(m, "columns")) {
                for (k, _) in entries(columns) {
                    plan.positions.insert(k.key_text(), k.at(file));
                }
            }
            for t in list(plan_node, "tables") {
                if let yaml::Value::Str(text) = &t.value {
                    plan.positions.insert(text.clone(), t.at(file));
                }
            }
            // `subset:` entries, keyed `subset.<list>:<entry>` for the catalog's messages.
            if let Some(subset) = get(plan_node, "subset") {
                for what in ["children", "always", "full", "empty"] {
                    for t in list(subset, what) {
                        if let yaml::Value::Str(text) = &t.value {
                            plan.positions
                                .insert(format!("subset.{what}:{text}"), t.at(file));
                        }
                    }
                }
                for r in list(subset, "roots") {
                    if let Some(t) = get(r, "table")
                        && let yaml::Value::Str(text) = &t.value
                    {
                        plan.positions
                            .insert(format!("subset.roots:{text}"), t.at(file));
                    }
                }
            }
        }
    }
    Ok(config)
}

/// `refresh:` plans: environments exist, `secret:NAME` names a variable of that environment,
/// no plan writes into a protected environment, column keys and transforms parse.
fn check_refresh(file: &str, root: &yaml::Node, problems: &mut Vec<Problem>) {
    let Some(plans) = get(root, "refresh") else {
        return;
    };
    let envs = get(root, "environments");
    let env_node = |e: &str| envs.and_then(|n| get(n, e));
    let secrets = get(root, "secrets");
    for (name, plan) in entries(plans) {
        let name = name.key_text();
        let mut env_of = |side: &str| -> Option<String> {
            let ep = get(plan, side)?;
            let env = get(ep, "env");
            let env_name = str_of(env).map(str::to_string);
            if let (Some(n), Some(e)) = (env, &env_name)
                && env_node(e).is_none()
            {
                problems.push(Problem::new(
                    n.at(file),
                    format!(
                        "`refresh.{name}.{side}.env`: no environment `{e}` under `environments:`"
                    ),
                ));
            }
            if let Some(u) = get(ep, "url")
                && let Some(text) = str_of(Some(u))
            {
                check_secret_use(
                    file,
                    &name,
                    &format!("{side}.url"),
                    text,
                    u,
                    env_name.as_deref(),
                    secrets,
                    problems,
                );
            }
            env_name
        };
        let source_env = env_of("source");
        let target_env = env_of("target");
        if let Some(t) = &target_env
            && let Some(n) = env_node(t)
            && matches!(
                get(n, "protected").map(|p| &p.value),
                Some(yaml::Value::Bool(true))
            )
        {
            problems.push(Problem::new(
                get(plan, "target").map_or_else(|| plan.at(file), |n| n.at(file)),
                format!("`refresh.{name}.target`: environment `{t}` is protected; a refresh never writes into a protected environment"),
            ));
        }
        let Some(masking) = get(plan, "masking") else {
            continue;
        };
        if let Some(k) = get(masking, "key")
            && let Some(text) = str_of(Some(k))
        {
            if !text.starts_with("secret:") {
                problems.push(Problem::new(
                    k.at(file),
                    format!("`refresh.{name}.masking.key`: write `secret:NAME` (a variable of `secrets:`, resolved in the source environment); a key in the file would be a leaked key"),
                ));
            } else {
                check_secret_use(
                    file,
                    &name,
                    "masking.key",
                    text,
                    k,
                    source_env.as_deref(),
                    secrets,
                    problems,
                );
            }
        }
        if let Some(columns) = get(masking, "columns") {
            for (k, v) in entries(columns) {
                let key = k.key_text();
                if let Err(e) = crate::data::pg::catalog::parse_column_key(&key) {
                    problems.push(Problem::new(k.at(file), e));
                }
                // The long forms of regex, json, array and template are checked with the catalog.
                let spec = match &v.value {
                    yaml::Value::Str(t) => Some((t.as_str(), v)),
                    yaml::Value::Map(_) => get(v, "transform")
                        .and_then(|n| str_of(Some(n)).map(|t| (t, n)))
                        .filter(|(t, _)| !matches!(*t, "regex" | "json" | "array" | "template")),
                    _ => None,
                };
                if let Some((t, at)) = spec
                    && let Err(e) = crate::data::mask::parse::parse_transform(t)
                {
                    problems.push(Problem::new(at.at(file), e));
                }
            }
        }
    }
}

/// `secret:NAME` in a plan must name a variable with a source in `env`.
#[allow(clippy::too_many_arguments)]
fn check_secret_use(
    file: &str,
    plan: &str,
    field: &str,
    text: &str,
    at: &yaml::Node,
    env: Option<&str>,
    secrets: Option<&yaml::Node>,
    problems: &mut Vec<Problem>,
) {
    let Some(var) = text.strip_prefix("secret:") else {
        return;
    };
    let Some(env) = env else {
        problems.push(Problem::new(
            at.at(file),
            format!("`refresh.{plan}.{field}`: `{text}` needs an environment to resolve in; add `env:` to the plan's source/target"),
        ));
        return;
    };
    let defined = secrets.and_then(|s| get(s, var)).is_some_and(|spec| {
        get(spec, env)
            .or_else(|| get(spec, envs::DEFAULT))
            .is_some()
    });
    if !defined {
        problems.push(Problem::new(
            at.at(file),
            format!("`refresh.{plan}.{field}`: no variable `{var}` with a source for environment `{env}` under `secrets:`"),
        ));
    }
}

/// Checks the schema cannot express: regexes compile, globs parse, secret references parse and
/// fit their environment's store, protected environments keep their stores to themselves.
fn check_semantics(file: &str, root: &yaml::Node, problems: &mut Vec<Problem>) {
    check_environments(file, root, problems);
    check_refresh(file, root, problems);
    let Some(scan) = get(root, "scan") else {
        return;
    };
    for n in list(scan, "allow") {
        if let yaml::Value::Str(s) = &n.value
            && let Err(e) = regex::bytes::Regex::new(s)
        {
            let msg = e
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            problems.push(Problem::new(
                n.at(file),
                format!("`scan.allow` regex does not compile: {msg}"),
            ));
        }
    }
    for n in list(scan, "exclude") {
        if let yaml::Value::Str(s) = &n.value
            && let Err(e) = ignore::overrides::OverrideBuilder::new("/")
                .add(&format!("!{s}"))
                .map(|_| ())
        {
            problems.push(Problem::new(
                n.at(file),
                format!("`scan.exclude` glob is invalid: {e}"),
            ));
        }
    }
}

fn str_of(node: Option<&yaml::Node>) -> Option<&str> {
    match node.map(|n| &n.value) {
        Some(yaml::Value::Str(s)) => Some(s),
        _ => None,
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`: a name every shell, `env` and Kubernetes accept as a variable.
pub(crate) fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The `provider:` name of a store.
fn store_provider(store: &Store) -> &'static str {
    match store {
        Store::Age { .. } => "age",
        Store::Vault { .. } => "vault",
        Store::Aws { .. } => "aws",
        Store::Sops { .. } => "sops",
        Store::Env { .. } => "env",
    }
}

/// `arn:PARTITION:iam::ACCOUNT:role/PATH/NAME`.
fn is_role_arn(text: &str) -> bool {
    let parts: Vec<&str> = text.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", partition, "iam", "", account, role]
        if partition.starts_with("aws")
            && account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && role.strip_prefix("role/").is_some_and(|n| !n.is_empty() && !n.ends_with('/')))
}

fn entries(node: &yaml::Node) -> &[(yaml::Node, yaml::Node)] {
    match &node.value {
        yaml::Value::Map(e) => e,
        _ => &[],
    }
}

fn check_environments(file: &str, root: &yaml::Node, problems: &mut Vec<Problem>) {
    let envs = get(root, "environments");
    let declared: Vec<(String, &yaml::Node)> = envs
        .map(|e| entries(e).iter().map(|(k, v)| (k.key_text(), v)).collect())
        .unwrap_or_default();
    let provider_of = |env: &str| {
        declared
            .iter()
            .find(|(n, _)| n == env)
            .and_then(|(_, v)| str_of(get(v, "secrets").and_then(|s| get(s, "provider"))))
    };
    // A protected environment's store is its own: compared by where it reads (see
    // `secrets::place`), never by its text.
    let base = Path::new(file).parent().unwrap_or(Path::new("."));
    let is_protected = |v: &yaml::Node| {
        matches!(
            get(v, "protected").map(|p| &p.value),
            Some(yaml::Value::Bool(true))
        )
    };
    let store_of = |v: &yaml::Node| -> Option<Store> {
        serde_json::from_value(get(v, "secrets")?.to_json()).ok()
    };
    let mut stores: Vec<(&str, bool, Option<Store>, &yaml::Node)> = declared
        .iter()
        .map(|(n, v)| (n.as_str(), is_protected(v), store_of(v), *v))
        .collect();
    // Named stores (`stores:`): (environment, name, store). Each is also a row of `stores`, after
    // the environments' own, so that the isolation checks cover it.
    let mut named_stores: Vec<(&str, String, Option<Store>)> = Vec::new();
    for (n, v) in &declared {
        if let Some(list) = get(v, "stores") {
            for (k, snode) in entries(list) {
                let store: Option<Store> = serde_json::from_value(snode.to_json()).ok();
                named_stores.push((n.as_str(), k.key_text(), store.clone()));
                stores.push((n.as_str(), is_protected(v), store, snode));
            }
        }
    }
    let named_store = |env: &str, name: &str| {
        named_stores
            .iter()
            .find(|(e, n, _)| *e == env && n == name)
            .map(|(_, _, s)| s.as_ref())
    };
    if let Some(envs_node) = envs {
        for (k, _) in entries(envs_node) {
            if k.key_text() == envs::DEFAULT {
                problems.push(Problem::new(
                    k.at(file),
                    "`environments.default`: `default` names a variable's source for every environment under `secrets:`; give this environment another name".to_string(),
                ));
            }
        }
    }
    // Addresses and role names that would only fail at the first request.
    for (name, _, store, node) in &stores {
        let field = |k: &str| get(node, "secrets").and_then(|s| get(s, k)).unwrap_or(node);
        let mut bad = |k: &str, what: String| {
            problems.push(Problem::new(
                field(k).at(file),
                format!("`environments.{name}.secrets.{k}`: {what}"),
            ));
        };
        match store {
            Some(Store::Vault { address, .. }) if place::address(address).is_none() => bad(
                "address",
                format!(
                    "`{}` is not an http(s) URL; write e.g. https://vault.example.com:8200",
                    address.escape_debug()
                ),
            ),
            Some(Store::Aws {
                endpoint,
                role_arn,
                session_name,
                ..
            }) => {
                // STS: 2 to 64 of `[A-Za-z0-9+=,.@_-]`.
                if let Some(n) = session_name
                    && (!(2..=64).contains(&n.len())
                        || n.chars()
                            .any(|c| !(c.is_ascii_alphanumeric() || "+=,.@_-".contains(c))))
                {
                    bad(
                        "session_name",
                        format!(
                            "`{}` is not a role session name: 2 to 64 letters, digits or + = , . @ _ -",
                            n.escape_debug()
                        ),
                    );
                }
                if let Some(e) = endpoint
                    && place::address(e).is_none()
                {
                    bad(
                        "endpoint",
                        format!(
                            "`{}` is not an http(s) URL; write e.g. https://secretsmanager.eu-central-1.amazonaws.com",
                            e.escape_debug()
                        ),
                    );
                }
                if let Some(r) = role_arn
                    && !is_role_arn(r)
                {
                    bad(
                        "role_arn",
                        format!(
                            "`{}` is not an IAM role ARN; write arn:aws:iam::ACCOUNT_ID:role/NAME",
                            r.escape_debug()
                        ),
                    );
                }
            }
            _ => {}
        }
    }
    // What each protected environment owns: its store's territory, plus the places its own
    // references read (filled in below).
    let mut owned: Vec<(&str, place::Territory, Option<place::Place>)> = stores
        .iter()
        .filter(|(_, p, _, _)| *p)
        .filter_map(|(n, _, s, _)| {
            let s = s.as_ref()?;
            Some((*n, place::territory(s, base)?, place::start(s, base)))
        })
        .collect();
    for (name, protected, store, node) in &stores {
        if *protected {
            continue;
        }
        let same_env_store = |o: &Option<Store>| match (store, o) {
            (Some(Store::Env { prefix: a }), Some(Store::Env { prefix: b })) => {
                a.as_deref().unwrap_or("") == b.as_deref().unwrap_or("")
            }
            _ => false,
        };
        let breach = stores
            .iter()
            .filter(|(_, p, _, _)| *p)
            .find(|(_, _, o, _)| same_env_store(o))
            .map(|(owner, ..)| *owner)
            .or_else(|| {
                let start = place::start(store.as_ref()?, base)?;
                owned
                    .iter()
                    .find(|(_, t, s)| t.holds(&start) || s.as_ref() == Some(&start))
                    .map(|(owner, ..)| *owner)
            });
        if let Some(owner) = breach {
            problems.push(Problem::isolation(
                node.at(file),
                format!(
                    "environment `{name}` uses the store of protected environment `{owner}`; give it its own store"
                ),
            ));
        }
    }
    let Some(secrets) = get(root, "secrets") else {
        return;
    };
    let env_protected = |env: &str| stores.iter().any(|(n, p, _, _)| *n == env && *p);
    let env_store = |env: &str| {
        stores
            .iter()
            .find(|(n, ..)| *n == env)
            .and_then(|(_, _, s, _)| s.as_ref())
    };
    // Every reference's place: (environment, variable, place, where it is written).
    let mut uses: Vec<(String, String, place::Place, &yaml::Node)> = Vec::new();
    for (var_node, spec) in entries(secrets) {
        let var = var_node.key_text();
        if !is_env_name(&var) {
            // It becomes an environment variable and a line of `export --format shell`, which
            // is eval'd: `$(…)` in a name would run.
            problems.push(Problem::new(
                var_node.at(file),
                format!(
                    "`secrets.{}`: not a usable environment variable name; use letters, digits and `_`, not starting with a digit (e.g. DATABASE_URL)",
                    var.escape_debug()
                ),
            ));
        }
        let named: Vec<String> = entries(spec).iter().map(|(k, _)| k.key_text()).collect();
        for (env_node, source) in entries(spec) {
            let key = env_node.key_text();
            // `default:` stands for every declared environment that names no source.
            let targets: Vec<String> = if key == envs::DEFAULT {
                declared
                    .iter()
                    .map(|(n, _)| n.clone())
                    .filter(|n| !named.contains(n))
                    .collect()
            } else if !declared.iter().any(|(n, _)| *n == key) {
                let known: Vec<&str> = declared.iter().map(|(n, _)| n.as_str()).collect();
                problems.push(Problem::new(
                    env_node.at(file),
                    format!(
                        "`secrets.{var}`: no environment `{key}` under `environments:` (declared: {}; or `default:` for all of them)",
                        if known.is_empty() { "none".to_string() } else { known.join(", ") }
                    ),
                ));
                continue;
            } else {
                vec![key.clone()]
            };
            if let Some(n) = get(source, "none")
                && !matches!(n.value, yaml::Value::Bool(true))
            {
                problems.push(Problem::new(
                    n.at(file),
                    format!("`secrets.{var}.{key}.none`: write `none: true` (deliberately not set in `{key}`), or remove the entry"),
                ));
            }
            let (text, at) = match &source.value {
                yaml::Value::Str(t) => (t.as_str(), source),
                yaml::Value::Map(_) => match get(source, "ref") {
                    Some(
                        n @ yaml::Node {
                            value: yaml::Value::Str(t),
                            ..
                        },
                    ) => (t.as_str(), n),
                    _ => continue,
                },
                _ => continue,
            };
            // `{ store: NAME, ref: … }` reads one of the environment's `stores:`.
            let store_name = str_of(get(source, "store"));
            let r = match crate::secrets::refs::parse(text) {
                Err(e) => {
                    problems.push(Problem::new(
                        at.at(file),
                        format!("`secrets.{var}.{key}`: {e}"),
                    ));
                    continue;
                }
                Ok(r) => r,
            };
            for env in targets {
                let (store, provider) = match store_name {
                    None => (env_store(&env), provider_of(&env)),
                    Some(sn) => match named_store(&env, sn) {
                        Some(st) => (st, st.map(store_provider)),
                        None => {
                            let known: Vec<&str> = named_stores
                                .iter()
                                .filter(|(e, _, _)| *e == env)
                                .map(|(_, n, _)| n.as_str())
                                .collect();
                            problems.push(Problem::new(
                                get(source, "store").unwrap_or(source).at(file),
                                format!(
                                    "`secrets.{var}.{key}`: environment `{env}` has no store `{sn}` under `stores:` (declared: {})",
                                    if known.is_empty() { "none".to_string() } else { known.join(", ") }
                                ),
                            ));
                            continue;
                        }
                    },
                };
                if let Some(p) = place::of(store, &r, base) {
                    uses.push((env.clone(), var.clone(), p, at));
                }
                let scheme = r.scheme();
                let needs = r.provider();
                if needs != "env" && provider != Some(needs) {
                    let via = if key == envs::DEFAULT {
                        format!("`secrets.{var}.default` (used by `{env}`)")
                    } else {
                        format!("`secrets.{var}.{env}`")
                    };
                    problems.push(Problem::new(
                        at.at(file),
                        format!(
                            "{via}: {scheme}:// refs resolve in environment `{env}`, which needs `secrets: {{ provider: {needs}, … }}`"
                        ),
                    ));
                }
            }
        }
    }
    for (env, _, p, _) in &uses {
        if env_protected(env) {
            match owned.iter_mut().find(|(o, ..)| o == env) {
                Some((_, t, _)) if t.store == p.store => t.exact.push(p.name.clone()),
                _ => owned.push((
                    stores
                        .iter()
                        .find(|(n, ..)| n == env)
                        .map_or("", |(n, ..)| *n),
                    place::Territory {
                        store: p.store.clone(),
                        prefix: None,
                        exact: vec![p.name.clone()],
                    },
                    None,
                )),
            }
        }
    }
    for (env, var, p, at) in &uses {
        if env_protected(env) {
            continue;
        }
        if let Some((owner, ..)) = owned.iter().find(|(_, t, _)| t.holds(p)) {
            problems.push(Problem::isolation(
                at.at(file),
                format!(
                    "`secrets.{var}.{env}` reads {}, a secret of protected environment `{owner}`; give environment `{env}` its own",
                    p.shown
                ),
            ));
        }
    }
}

fn get<'a>(node: &'a yaml::Node, key: &str) -> Option<&'a yaml::Node> {
    match &node.value {
        yaml::Value::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.key_text() == key)
            .map(|(_, v)| v),
        _ => None,
    }
}

fn list<'a>(node: &'a yaml::Node, key: &str) -> &'a [yaml::Node] {
    match get(node, key).map(|n| &n.value) {
        Some(yaml::Value::Seq(items)) => items,
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn minimal_config_loads() {
        let c = parse("s.yaml", "version: 1\n", &no_env).unwrap();
        assert_eq!(c.version, 1);
        assert!(!c.scan.gitignore);
    }

    #[test]
    fn all_problems_at_once() {
        let text = "version: 2\nscan:\n  allow: ['(unclosed']\n  exclude: ['a/**']\n  bogus: 1\n  baseline: ${NOT_SET_ANYWHERE}\n";
        let err = parse("s.yaml", text, &no_env).unwrap_err().to_string();
        assert!(
            err.contains("s.yaml:1:10: `version`: must be at most 1")
                || err.contains("s.yaml:1:10"),
            "{err}"
        );
        assert!(err.contains("s.yaml:5:3: unknown key `bogus`"), "{err}");
        assert!(
            err.contains("s.yaml:6:13: environment variable NOT_SET_ANYWHERE"),
            "{err}"
        );
    }

    /// Each pair: prod's side and staging's side, spelled differently but reading prod's
    /// secret. Every one must be refused.
    #[test]
    fn protected_secrets_are_compared_by_where_they_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("secrets")).unwrap();
        std::fs::write(dir.path().join("secrets/dev.age"), "x").unwrap();
        std::fs::write(dir.path().join("x.enc.yaml"), "x").unwrap();
        std::os::unix::fs::symlink("x.enc.yaml", dir.path().join("alias.enc.yaml")).unwrap();
        let path = dir.path().join("sluice.yaml");
        let path = path.to_str().unwrap();
        let vault = |prod: &str, staging: &str| {
            format!(
                "  prod: {{ protected: true, secrets: {{ provider: vault, {prod} }} }}\n  staging: {{ secrets: {{ provider: vault, {staging} }} }}\n"
            )
        };
        let aws = |prod: &str, staging: &str| {
            format!(
                "  prod: {{ protected: true, secrets: {{ provider: aws, {prod} }} }}\n  staging: {{ secrets: {{ provider: aws, {staging} }} }}\n"
            )
        };
        let cases: Vec<(String, &str, &str)> = vec![
            (
                aws("region: eu-west-1, prefix: prod/", "region: eu-west-1, prefix: ''"),
                "aws://db#url",
                "aws://prod/db#url",
            ),
            (
                aws("region: eu-west-1, prefix: prod/", "region: eu-west-1, prefix: prod/"),
                "aws://db",
                "aws://other",
            ),
            (
                aws("region: eu-west-1", "region: EU-WEST-1, endpoint: 'https://secretsmanager.eu-west-1.amazonaws.com/'"),
                "aws://db",
                "aws://db#password",
            ),
            (
                "  prod: { protected: true, secrets: { provider: age, file: ./secrets/dev.age } }\n  staging: { secrets: { provider: age, file: secrets/dev.age } }\n".into(),
                "age://DB",
                "age://OTHER",
            ),
            (
                "  prod: { protected: true, secrets: { provider: sops } }\n  staging: { secrets: { provider: sops } }\n".into(),
                "sops://./x.enc.yaml#db.url",
                "sops://x.enc.yaml#db.password",
            ),
            (
                "  prod: { protected: true, secrets: { provider: sops } }\n  staging: { secrets: { provider: sops } }\n".into(),
                "sops://x.enc.yaml#db.url",
                "sops://alias.enc.yaml#db.url",
            ),
            (
                vault("address: 'http://127.0.0.1:8200'", "address: 'http://localhost:8200/'"),
                "vault://db#url",
                "vault://db#url",
            ),
            (
                vault("address: 'https://vault.example.com', prefix: staging/", "address: 'https://vault.example.com', prefix: ''"),
                "vault://db#url",
                "vault://staging/db#url",
            ),
            (
                vault("address: 'https://vault.example.com', prefix: prod", "address: 'https://vault.example.com/', mount: /secret/, prefix: prod//app/"),
                "vault://db#url",
                "vault://db#url",
            ),
        ];
        for (envs, prod, staging) in &cases {
            let text = format!(
                "version: 1\nenvironments:\n{envs}secrets:\n  DB: {{ prod: '{prod}', staging: '{staging}' }}\n"
            );
            let err = match parse(path, &text, &no_env) {
                Ok(_) => panic!("accepted:\n{text}"),
                Err(e) => e,
            };
            let Error::Invalid { problems } = &err else {
                panic!("{err}")
            };
            assert!(
                problems
                    .iter()
                    .any(|p| p.isolation && (p.message.contains("protected environment `prod`"))),
                "{text}\n{err}"
            );
        }
        // Different places stay allowed: another Vault server, mount or namespace, another
        // region, another file, a sibling prefix.
        let fine = [
            vault(
                "address: 'http://127.0.0.1:8200'",
                "address: 'http://127.0.0.1:8201'",
            ),
            vault(
                "address: 'http://127.0.0.1:8200'",
                "address: 'http://127.0.0.1:8200', mount: kv",
            ),
            vault(
                "address: 'http://127.0.0.1:8200'",
                "address: 'http://127.0.0.1:8200', namespace: team",
            ),
            aws("region: eu-west-1", "region: eu-west-2"),
            aws(
                "region: eu-west-1, prefix: prod/",
                "region: eu-west-1, prefix: staging/",
            ),
        ];
        for envs in &fine {
            let text = format!(
                "version: 1\nenvironments:\n{envs}secrets:\n  DB: {{ prod: '{0}://db#url', staging: '{0}://db#url' }}\n",
                if envs.contains("vault") {
                    "vault"
                } else {
                    "aws"
                }
            );
            if let Err(e) = parse(path, &text, &no_env) {
                panic!("refused:\n{text}\n{e}");
            }
        }
    }

    #[test]
    fn environments_and_secret_refs_are_checked_with_positions() {
        let text = "version: 1
environments:
  dev: { secrets: { provider: age, file: dev.age } }
  prod: { protected: true, secrets: { provider: age, file: prod.age } }
  staging: { secrets: { provider: age, file: prod.age } }
secrets:
  DB: { dev: age://DB, prod: vault://db#url, stg: age://DB }
  KEY: { dev: 'age://A#b', prod: { ref: env://KEY, optional: true } }
  LIT: { dev: { value: plain } }
";
        let err = parse("s.yaml", text, &no_env).unwrap_err().to_string();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 4, "{err}");
        assert!(
            lines[0].starts_with(
                "s.yaml:5:12: environment `staging` uses the store of protected environment `prod`"
            ),
            "{err}"
        );
        assert!(
            lines[1].starts_with(
                "s.yaml:7:30: `secrets.DB.prod`: vault:// refs resolve in environment `prod`"
            ),
            "{err}"
        );
        assert!(
            lines[2].starts_with("s.yaml:7:46: `secrets.DB`: no environment `stg`"),
            "{err}"
        );
        assert!(
            lines[3].starts_with("s.yaml:8:15: `secrets.KEY.dev`: `age://A#b`: write age://NAME"),
            "{err}"
        );
    }

    #[test]
    fn unprotected_environments_cannot_read_protected_sops_files() {
        let text = "version: 1
environments:
  prod: { protected: true, secrets: { provider: sops } }
  staging: { secrets: { provider: sops } }
secrets:
  A: { prod: 'sops://prod.yaml#a', staging: 'sops://prod.yaml#a' }
  B: { prod: 'sops://prod.yaml#b', staging: 'sops://staging.yaml#b' }
";
        let err = parse("s.yaml", text, &no_env).unwrap_err().to_string();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("s.yaml:6:45: `secrets.A.staging` reads prod.yaml, a secret of protected environment `prod`"), "{err}");
    }

    #[test]
    fn interpolates_env() {
        let look = |k: &str| (k == "BL").then(|| "known.json".to_string());
        let c = parse(
            "s.yaml",
            "version: 1\nscan: { baseline: \"${BL}\" }\n",
            &look,
        )
        .unwrap();
        assert_eq!(c.scan.baseline.as_deref(), Some("known.json"));
    }
}
