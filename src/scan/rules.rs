//! Scanner rules: data in, one compiled [`RuleSet`] out.
//!
//! Rule files are TOML in the schema of `schemas/rules.schema.json` (the Rust types below are the
//! source of that schema). The built-ins are embedded from `rules/secrets.toml`; users add files of
//! the same shape. Loading validates everything once and reports every problem of a file together,
//! each with `file:line:col`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use regex::bytes::Regex;
use regex_automata::meta;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::error::{Error, Location, Problem};

/// The built-in rule file, embedded in the binary.
pub const BUILTIN_RULES: &str = include_str!("../../rules/secrets.toml");
/// The name under which the built-in rules are reported.
pub const BUILTIN_NAME: &str = "builtin:secrets";

/// A rule file as written by a user.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    /// Schema version of the rule file; always 1.
    pub version: u32,
    /// Allow patterns that apply to every rule of every file.
    #[serde(default)]
    pub allow: GlobalAllow,
    /// The rules.
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
}

/// Allow patterns applied to every candidate secret.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GlobalAllow {
    /// A captured secret matching any of these regexes is not a finding.
    #[serde(default)]
    pub regexes: Vec<String>,
    /// Placeholder shapes (`12345678`, `abcdefgh`): a secret matching one is not a finding,
    /// unless the rule's secret names its own service (`ghp_…`, `AKIA…`, `xoxb-…`): such a
    /// token is reported however made-up it looks, as the provider's format is all that counts.
    #[serde(default)]
    pub placeholders: Vec<String>,
    /// Categories (a rule's first tag) the placeholder shapes hold for: rules that name no
    /// service (`generic`, `password`, `url-credentials`). A rule keyed to its service
    /// (`stripe_key = …`) reports what its format allows, as peers do. Empty: every rule
    /// whose secret does not name its service.
    #[serde(default)]
    pub placeholder_categories: Vec<String>,
}

/// How bad a leak of this kind is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Low impact or likely a test credential.
    Low,
    /// A credential of unknown scope.
    Medium,
    /// A credential to a production service.
    High,
    /// Keys that unlock everything (cloud root keys, private keys).
    Critical,
}

impl Severity {
    /// The lowercase name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// One rule as written in a rule file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Unique kebab-case id, e.g. `github-pat-classic`.
    pub id: String,
    /// What the rule finds, for humans.
    pub description: String,
    /// Regex (Rust `regex` syntax) with exactly one capture group: the secret.
    pub regex: String,
    /// Lowercase literals; one of them occurs in every match. Drives the prefilter.
    pub keywords: Vec<String>,
    /// Minimum Shannon entropy (bits per byte) of the captured secret.
    #[serde(default)]
    pub entropy: Option<f64>,
    /// A captured secret matching any of these regexes is not a finding.
    #[serde(default)]
    pub allow: Vec<String>,
    /// How bad a leak is.
    pub severity: Severity,
    /// Free tags; the first one is the category.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Texts the rule must find.
    pub examples: Vec<String>,
    /// Texts the rule must not find.
    pub negative_examples: Vec<String>,
    /// How far (bytes) a match may extend past a keyword hit; default 512.
    #[serde(default)]
    pub max_span: Option<usize>,
    /// How far (bytes) before a keyword hit a match may start; default 256. A rule whose
    /// matches start with their keyword needs none (that is read from the regex).
    #[serde(default)]
    pub reach_before: Option<usize>,
}

/// A validated, compiled rule.
#[derive(Debug)]
pub struct Rule {
    /// Unique id.
    pub id: String,
    /// What the rule finds.
    pub description: String,
    /// The regex; group 1 is the secret.
    pub regex: LazyRegex,
    /// Lowercase keyword literals.
    pub keywords: Vec<String>,
    /// Minimum entropy of the secret.
    pub entropy: Option<f64>,
    /// Per-rule allow patterns.
    pub allow: Vec<LazyRegex>,
    /// Severity.
    pub severity: Severity,
    /// Tags; the first is the category.
    pub tags: Vec<String>,
    /// Bytes a match may reach past a keyword hit.
    pub max_span: usize,
    /// Bytes before a keyword hit a match may start.
    pub reach_before: usize,
    /// The longest match and whether matches start at a keyword, read from the regex when
    /// first needed.
    reach: OnceLock<super::reach::Reach>,
    /// The regex taken apart at its leading exclusions, compiled when first needed.
    split: OnceLock<Option<SplitRegex>>,
    /// What the bytes at a hit must be for the searched regex to match there, read when first
    /// needed.
    guard: OnceLock<super::reach::Guard>,
    /// Examples kept for `rules check`.
    pub examples: Vec<String>,
    /// Negative examples kept for `rules check`.
    pub negative_examples: Vec<String>,
    /// The file the rule came from.
    pub origin: String,
    /// The secret carries the rule's own keyword (a prefix such as `ghp_`, `AKIA`, `xoxb-`),
    /// decided from the rule's examples when first needed: it stays precise without the text
    /// around it.
    self_identifying: OnceLock<bool>,
}

/// A rule's regex taken apart at its leading exclusions ([`super::reach::Split`]).
#[derive(Debug)]
pub struct SplitRegex {
    /// The branches that start before a keyword and capture nothing.
    pub exclusions: meta::Regex,
    /// The branches that start with a keyword, holding the secret's group.
    pub main: meta::Regex,
}

/// A regex compiled when first used. The built-in rules are compiled only as a scan needs them
/// (most never meet their keyword), so a small scan starts at once and holds only what it ran;
/// `rules check` and the tests compile every one. A user's rule file is compiled as it loads,
/// so its mistakes are reported there with their file and line.
#[derive(Debug)]
pub struct LazyRegex {
    pattern: String,
    cell: OnceLock<meta::Regex>,
}

impl LazyRegex {
    fn lazy(pattern: &str) -> LazyRegex {
        LazyRegex {
            pattern: pattern.to_string(),
            cell: OnceLock::new(),
        }
    }

    /// The compiled regex.
    pub fn get(&self) -> &meta::Regex {
        self.cell.get_or_init(|| {
            compile_meta(&self.pattern).unwrap_or_else(|e| {
                panic!(
                    "a built-in rule regex does not compile ({e}); `sluice rules check` names it"
                )
            })
        })
    }

    /// Compile now, or say why it does not compile.
    fn try_get(&self) -> Result<&meta::Regex, String> {
        if let Some(r) = self.cell.get() {
            return Ok(r);
        }
        let r = compile_meta(&self.pattern).map_err(|e| one_line(&e.to_string()))?;
        Ok(self.cell.get_or_init(|| r))
    }

    /// The pattern's text.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }
}

impl Rule {
    /// Compile the regex and allow patterns now; what is wrong with them, as the loader of a
    /// user's rule file says it.
    pub fn check_compiles(&self) -> Result<(), String> {
        match compile_problems(&self.regex, &self.allow).as_slice() {
            [] => Ok(()),
            problems => Err(problems.join("; ")),
        }
    }

    /// Whether the secret carries the rule's own keyword (see the field).
    pub fn self_identifying(&self) -> bool {
        *self
            .self_identifying
            .get_or_init(|| self.identifies_itself())
    }

    /// How far around its keyword hits a match can lie.
    /// A split rule (see [`Rule::split`]) is anchored: its matches are searched at its hits.
    pub fn reach(&self) -> super::reach::Reach {
        *self.reach.get_or_init(|| {
            let mut reach = super::reach::Reach::of(self.regex.as_str(), &self.keywords);
            reach.anchored |= self.split().is_some();
            reach
        })
    }

    /// The regex taken apart at its leading exclusions, when it has them and its other branches
    /// start with a keyword (see [`super::reach::Split`]). A part that does not compile (a size
    /// limit) leaves the rule whole: it is then searched as any other, around its hits.
    pub fn split(&self) -> Option<&SplitRegex> {
        self.split
            .get_or_init(|| {
                let split = super::reach::Split::of(self.regex.as_str(), &self.keywords)?;
                let compile = |hir| {
                    meta::Builder::new()
                        .configure(meta_config())
                        .build_from_hir(hir)
                        .ok()
                };
                Some(SplitRegex {
                    exclusions: compile(&split.exclusions)?,
                    main: compile(&split.main)?,
                })
            })
            .as_ref()
    }

    /// What the bytes at a keyword hit must be for [`Rule::searched`] to match from there
    /// ([`super::reach::Guard`]); meaningful for a rule whose matches start at its hits.
    pub fn guard(&self) -> &super::reach::Guard {
        self.guard.get_or_init(|| {
            super::reach::Guard::of(self.regex.as_str(), &self.keywords, self.split().is_some())
        })
    }

    /// The regex a search runs: the main branches of a split rule, else the whole regex.
    pub fn searched(&self) -> &meta::Regex {
        self.split().map_or_else(|| self.regex.get(), |s| &s.main)
    }

    /// Generic rules (first tag `generic`) give way to provider rules on the same secret.
    pub fn is_generic(&self) -> bool {
        self.tags.first().is_some_and(|t| t == "generic")
    }

    /// Whether every example's secret holds one of the rule's keywords (and the rule is not
    /// generic).
    fn identifies_itself(&self) -> bool {
        !self.is_generic()
            && !self.examples.is_empty()
            && self.examples.iter().all(|ex| {
                let re = self.regex.get();
                let mut caps = re.create_captures();
                re.captures(ex.as_bytes(), &mut caps);
                caps.get_group(1)
                    .or_else(|| caps.get_match().map(|m| m.span()))
                    .is_some_and(|span| {
                        let secret = ex.as_bytes()[span.range()].to_ascii_lowercase();
                        self.keywords.iter().any(|k| {
                            let k = k.as_bytes();
                            !k.is_empty() && secret.windows(k.len()).any(|w| w == k)
                        })
                    })
            })
    }
}

/// All rules in force, plus the global allow list.
#[derive(Debug, Default)]
pub struct RuleSet {
    /// The rules, in load order.
    pub rules: Vec<Rule>,
    /// Patterns that drop a candidate secret for every rule.
    pub global_allow: Vec<Regex>,
    /// Placeholder shapes, allowed for rules that are not self-identifying.
    pub placeholder_allow: Vec<Regex>,
    /// Categories the placeholder shapes are limited to (empty: all).
    pub placeholder_categories: Vec<String>,
}

/// Default reach of a match past its keyword.
pub const DEFAULT_MAX_SPAN: usize = 512;
/// Default reach of a match before its keyword.
pub const DEFAULT_REACH_BEFORE: usize = 256;

impl RuleSet {
    /// Whether the placeholder shapes hold for a rule: it does not name its service in its
    /// secret, and its category is one they are limited to.
    pub fn placeholders_apply(&self, rule: &Rule) -> bool {
        !rule.self_identifying()
            && (self.placeholder_categories.is_empty()
                || rule
                    .tags
                    .first()
                    .is_some_and(|t| self.placeholder_categories.contains(t)))
    }

    /// The embedded built-in rules.
    pub fn builtin() -> Result<RuleSet, Error> {
        let mut set = RuleSet::default();
        set.add(BUILTIN_NAME, BUILTIN_RULES, false)?;
        Ok(set)
    }

    /// Load a rule file from disk and add its rules.
    pub fn add_file(&mut self, path: &Path) -> Result<(), Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
            path: PathBuf::from(path),
            source: e,
        })?;
        self.add_source(&path.display().to_string(), &text)
    }

    /// Parse, validate and add the rules of one file's text. All problems of the file are
    /// reported together.
    pub fn add_source(&mut self, name: &str, text: &str) -> Result<(), Error> {
        self.add(name, text, true)
    }

    /// [`RuleSet::add_source`], compiling each regex now (`eager`) or when first used.
    fn add(&mut self, name: &str, text: &str, eager: bool) -> Result<(), Error> {
        let file: RuleFile = toml::from_str(text).map_err(|e| {
            let loc = e
                .span()
                .map(|s| Location::from_offset(name, text, s.start))
                .unwrap_or_else(|| Location::file(name));
            Error::Invalid {
                problems: vec![Problem::new(loc, e.message().to_string())],
            }
        })?;
        let mut problems = Vec::new();
        let loc_of = |needle: &str| locate(name, text, needle);
        if file.version != 1 {
            problems.push(Problem::new(
                loc_of("version"),
                format!(
                    "unsupported rule file version {}; use `version = 1`",
                    file.version
                ),
            ));
        }
        for (pat, placeholder) in file
            .allow
            .regexes
            .iter()
            .map(|p| (p, false))
            .chain(file.allow.placeholders.iter().map(|p| (p, true)))
        {
            match compile_regex(pat) {
                Ok(r) if placeholder => self.placeholder_allow.push(r),
                Ok(r) => self.global_allow.push(r),
                Err(e) => problems.push(Problem::new(
                    loc_of(pat),
                    format!("allow regex does not compile: {}", one_line(&e.to_string())),
                )),
            }
        }
        self.placeholder_categories
            .extend(file.allow.placeholder_categories.iter().cloned());
        let mut seen: HashSet<String> = self.rules.iter().map(|r| r.id.clone()).collect();
        // A rule's line is looked up only for a problem: finding it is a search of the file.
        for spec in file.rules {
            let id = spec.id.clone();
            match compile(spec, name, eager) {
                Ok(rule) => {
                    if !seen.insert(rule.id.clone()) {
                        problems.push(Problem::new(
                            locate_rule(name, text, &id),
                            format!("duplicate rule id `{}`; ids must be unique", rule.id),
                        ));
                    } else {
                        self.rules.push(rule);
                    }
                }
                Err(msgs) => {
                    let at = locate_rule(name, text, &id);
                    problems.extend(msgs.into_iter().map(|m| Problem::new(at.clone(), m)));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid { problems })
        }
    }

    /// Keep only rules whose id is in `ids` (when non-empty) and drop those in `disable`.
    pub fn select(&mut self, enable: &[String], disable: &[String]) {
        self.rules.retain(|r| {
            (enable.is_empty() || enable.iter().any(|e| e == &r.id))
                && !disable.iter().any(|d| d == &r.id)
        });
    }
}

/// One rule compiled, or what is wrong with it.
fn compile(spec: RuleSpec, file: &str, eager: bool) -> Result<Rule, Vec<String>> {
    let mut problems = Vec::new();
    let mut bad = |msg: String| problems.push(msg);
    if spec.id.is_empty()
        || !spec
            .id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        bad(format!(
            "rule id `{}` must be kebab-case (a-z, 0-9, -)",
            spec.id
        ));
    }
    let regex = LazyRegex::lazy(&spec.regex);
    if spec.keywords.is_empty() {
        bad(format!(
            "rule `{}` needs at least one keyword (a literal that occurs in every match)",
            spec.id
        ));
    }
    for k in &spec.keywords {
        if k.is_empty() || k.to_lowercase() != *k {
            bad(format!(
                "rule `{}`: keyword `{k}` must be non-empty and lowercase",
                spec.id
            ));
        }
    }
    let allow: Vec<LazyRegex> = spec.allow.iter().map(|a| LazyRegex::lazy(a)).collect();
    if eager {
        for p in compile_problems(&regex, &allow) {
            bad(format!("rule `{}`: {p}", spec.id));
        }
    }
    if spec.examples.is_empty() {
        bad(format!("rule `{}` needs at least one example", spec.id));
    }
    if spec.negative_examples.is_empty() {
        bad(format!(
            "rule `{}` needs at least one negative example",
            spec.id
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Rule {
        self_identifying: OnceLock::new(),
        reach: OnceLock::new(),
        split: OnceLock::new(),
        guard: OnceLock::new(),
        reach_before: spec.reach_before.unwrap_or(DEFAULT_REACH_BEFORE),
        id: spec.id,
        description: spec.description,
        regex,
        keywords: spec.keywords,
        entropy: spec.entropy,
        allow,
        severity: spec.severity,
        tags: spec.tags,
        max_span: spec.max_span.unwrap_or(DEFAULT_MAX_SPAN),
        examples: spec.examples,
        negative_examples: spec.negative_examples,
        origin: file.to_string(),
    })
}

/// What keeps a rule's regex and allow patterns from running: a pattern that does not compile,
/// or a regex without exactly one capture group. Compiling caches the result.
fn compile_problems(regex: &LazyRegex, allow: &[LazyRegex]) -> Vec<String> {
    let mut out = Vec::new();
    match regex.try_get() {
        Ok(r) if r.captures_len() != 2 => out.push(format!(
            "regex must have exactly one capture group (the secret), it has {}; use (?:...) for the others",
            r.captures_len().saturating_sub(1)
        )),
        Ok(_) => {}
        Err(e) => out.push(format!("regex does not compile: {e}")),
    }
    for a in allow {
        if let Err(e) = a.try_get() {
            out.push(format!("allow regex does not compile: {e}"));
        }
    }
    out
}

/// Rules match bytes, and secrets are ASCII: classes such as `\s`, `\w` and `\b` are ASCII-only,
/// which keeps the lazy DFA small and fast. A rule can still opt in with `(?u)`. The lazy DFA's
/// cache may grow to 16 MiB per regex and thread (default 2 MiB): the large generic rules
/// otherwise cleared and rebuilt it over and over (9% of a scan's CPU in determinization).
fn compile_meta(pattern: &str) -> Result<meta::Regex, String> {
    meta::Builder::new()
        .syntax(
            regex_automata::util::syntax::Config::new()
                .unicode(false)
                .utf8(false),
        )
        .configure(meta_config())
        .build(pattern)
        // The parser's own error says where and what (`unclosed group` under the pattern);
        // the builder's alone says only "error parsing pattern 0".
        .map_err(|e| {
            e.syntax_error()
                .map_or_else(|| e.to_string(), |s| s.to_string())
        })
}

/// The engine's limits, for a rule's regex and for the parts of a split one.
fn meta_config() -> meta::Config {
    meta::Config::new()
        .utf8_empty(false)
        .nfa_size_limit(Some(1 << 23))
        .onepass_size_limit(Some(1 << 23))
        .hybrid_cache_capacity(16 << 20)
        .dfa_size_limit(Some(16 << 20))
}

/// The same dialect as [`compile_meta`], for the global allow lists.
fn compile_regex(pattern: &str) -> Result<Regex, regex::Error> {
    regex::bytes::RegexBuilder::new(pattern)
        .unicode(false)
        .size_limit(1 << 23)
        .dfa_size_limit(16 << 20)
        .build()
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Where a rule's `id = "…"` line is, for error messages.
fn locate_rule(file: &str, text: &str, id: &str) -> Location {
    for quote in ['"', '\''] {
        let needle = format!("{quote}{id}{quote}");
        for (off, _) in text.match_indices(&needle) {
            let line_start = text[..off].rfind('\n').map_or(0, |i| i + 1);
            if text[line_start..off].trim_start().starts_with("id") {
                return Location::from_offset(file, text, line_start);
            }
        }
    }
    Location::file(file)
}

fn locate(file: &str, text: &str, needle: &str) -> Location {
    text.find(needle)
        .map(|off| Location::from_offset(file, text, off))
        .unwrap_or_else(|| Location::file(file))
}
