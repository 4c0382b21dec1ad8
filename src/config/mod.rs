//! `sluice.yaml`: discovery, loading and validation.
//!
//! A path (or the working directory) in, a typed [`Config`] out, or every problem of the file at
//! once, each at `file:line:col`. Steps: parse YAML with positions ([`yaml`]), interpolate
//! `${ENV_VAR}`, validate against the JSON Schema generated from the types below ([`validate`]),
//! then deserialize. `schemas/sluice.schema.json` is that generated schema; a test keeps it fresh.

pub mod validate;
pub mod yaml;

use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Deserialize;

use crate::error::{Error, Location, Problem};

/// The file name looked for when no `--config` is given.
pub const FILE_NAME: &str = "sluice.yaml";

/// The whole `sluice.yaml`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "sluice.yaml")]
pub struct Config {
    /// Schema version of this file; always 1.
    #[schemars(range(min = 1, max = 1))]
    pub version: u32,
    /// Settings of `sluice scan`.
    #[serde(default)]
    pub scan: ScanConfig,
}

/// Settings of `sluice scan`. Command-line flags add to these.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanConfig {
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
}

/// A loaded configuration and where it came from.
#[derive(Debug)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// The file it was read from.
    pub path: PathBuf,
}

impl Loaded {
    /// Resolve a path written in the config relative to the config's directory.
    pub fn relative(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            return p.to_path_buf();
        }
        self.path.parent().unwrap_or(Path::new(".")).join(p)
    }
}

/// The JSON Schema of `sluice.yaml`, generated from [`Config`].
pub fn schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Config)).unwrap_or_default()
}

/// Find `sluice.yaml` in `start` or the nearest parent directory.
pub fn discover(start: &Path) -> Option<PathBuf> {
    let start = start.canonicalize().unwrap_or_else(|_| start.to_path_buf());
    start
        .ancestors()
        .map(|d| d.join(FILE_NAME))
        .find(|p| p.is_file())
}

/// Load the config named by `explicit`, else the discovered one, else none.
pub fn load_or_discover(explicit: Option<&Path>, cwd: &Path) -> Result<Option<Loaded>, Error> {
    match explicit {
        Some(p) => load(p).map(Some),
        None => discover(cwd).map(|p| load(&p)).transpose(),
    }
}

/// Load and validate one config file, interpolating from the process environment.
pub fn load(path: &Path) -> Result<Loaded, Error> {
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
pub fn parse(
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
    validate::validate(file, &node, &schema(), &mut problems);
    check_semantics(file, &node, &mut problems);
    if !problems.is_empty() {
        problems.sort();
        problems.dedup();
        return Err(Error::Invalid { problems });
    }
    serde_json::from_value(node.to_json()).map_err(|e| Error::Invalid {
        problems: vec![Problem::new(Location::file(file), e.to_string())],
    })
}

/// Checks the schema cannot express: regexes compile, globs parse.
fn check_semantics(file: &str, root: &yaml::Node, problems: &mut Vec<Problem>) {
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
