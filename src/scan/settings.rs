//! Resolved settings of one scan (command line merged with `sluice.yaml`) and the scan itself.
//!
//! [`Settings::resolve`] takes what the user asked ([`Request`], plain data: the command line
//! fills it, a default one stands for no flags) and the loaded config, and settles every choice;
//! [`run`] builds the rule set and scanner, scans the source, applies the baseline and returns the
//! findings sorted by path and position.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use regex::bytes::Regex;

use super::baseline::{Baseline, Keying};
use super::engine::Engine;
use super::git::{self, Change};
use super::known::KnownValues;
use super::report::{Color, Format, Summary};
use super::rules::RuleSet;
use super::sources::{self, Outcome, WalkOptions};
use super::{Finding, ScanOptions, Scanner};
use crate::config::Loaded;
use crate::error::{Error, Location, Problem};

/// Where the bytes come from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// Files and directories; `-` is stdin.
    Paths(Vec<PathBuf>),
    /// Every blob in a repository's history.
    History(PathBuf),
    /// Lines added by a change in a repository.
    Change(PathBuf, Change),
}

/// What the user asked of a scan, before `sluice.yaml` is merged in. Lists add to the config's,
/// a value given wins over the config's. [`Request::default`] is a scan with no flags.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    /// Files and directories (`-`: stdin); empty: the current directory.
    pub paths: Vec<PathBuf>,
    /// Every blob of the repository's history.
    pub git: bool,
    /// Only the lines a change adds (`BASE..HEAD`, `BASE...HEAD`, `BASE`).
    pub diff: Option<String>,
    /// Only the lines staged in the index.
    pub staged: bool,
    /// The repository for `git`, `diff` and `staged` (default: `.`).
    pub repo: Option<PathBuf>,
    /// Report format.
    pub format: Format,
    /// Report destination (None: stdout).
    pub output: Option<PathBuf>,
    /// Show secrets unredacted.
    pub show_secrets: bool,
    /// Extra rule files.
    pub rules: Vec<PathBuf>,
    /// Leave the built-in rules out.
    pub no_builtin_rules: bool,
    /// Only these rule ids (empty: all).
    pub only_rules: Vec<String>,
    /// Rule ids turned off.
    pub disable_rules: Vec<String>,
    /// Path globs skipped.
    pub exclude: Vec<String>,
    /// Honour .gitignore.
    pub gitignore: bool,
    /// Skip larger files.
    pub max_file_size: Option<u64>,
    /// Do not decode base64.
    pub no_decode: bool,
    /// How deep to enter archives (None: the default).
    pub archive_depth: Option<usize>,
    /// Live validation (`--validate`), when asked.
    pub validate: Option<super::validate::Options>,
    /// Baseline to apply.
    pub baseline: Option<PathBuf>,
    /// Baseline to write.
    pub write_baseline: Option<PathBuf>,
    /// Name for stdin.
    pub stdin_name: String,
    /// Worker threads (0: one per core).
    pub threads: usize,
    /// Colour choice.
    pub color: Color,
    /// No summary or warnings.
    pub quiet: bool,
}

impl Default for Request {
    fn default() -> Request {
        Request {
            paths: Vec::new(),
            git: false,
            diff: None,
            staged: false,
            repo: None,
            format: Format::Human,
            output: None,
            show_secrets: false,
            rules: Vec::new(),
            no_builtin_rules: false,
            only_rules: Vec::new(),
            disable_rules: Vec::new(),
            exclude: Vec::new(),
            gitignore: false,
            max_file_size: None,
            no_decode: false,
            archive_depth: None,
            validate: None,
            baseline: None,
            write_baseline: None,
            stdin_name: "<stdin>".into(),
            threads: 0,
            color: Color::Auto,
            quiet: false,
        }
    }
}

/// Everything a scan needs, resolved.
#[derive(Debug)]
pub(crate) struct Settings {
    /// What to scan.
    pub source: Source,
    /// Load the built-in rules.
    pub builtin_rules: bool,
    /// Extra rule files.
    pub rule_files: Vec<PathBuf>,
    /// Only these rule ids (empty: all).
    pub only_rules: Vec<String>,
    /// Rule ids turned off.
    pub disable_rules: Vec<String>,
    /// Walk options.
    pub walk: WalkOptions,
    /// Decode base64.
    pub decode_base64: bool,
    /// How deep to enter archives.
    pub archive_depth: usize,
    /// Live validation, when asked.
    pub validate: Option<super::validate::Options>,
    /// User allow regexes (source text).
    pub allow: Vec<String>,
    /// Baseline to apply.
    pub baseline: Option<PathBuf>,
    /// Baseline to write.
    pub write_baseline: Option<PathBuf>,
    /// Report format.
    pub format: Format,
    /// Report destination (None: stdout).
    pub output: Option<PathBuf>,
    /// Show secrets unredacted.
    pub show_secrets: bool,
    /// Colour choice.
    pub color: Color,
    /// Name for stdin.
    pub stdin_name: String,
    /// No summary or warnings.
    pub quiet: bool,
    /// An environment's secret values to find verbatim: (environment, named values).
    pub known: Option<(String, Vec<(String, crate::secrets::SecretValue)>)>,
}

impl Settings {
    /// Merge command-line arguments with the config (flags add to config lists; a flag given
    /// wins over the config's value).
    pub(crate) fn resolve(args: Request, config: Option<&Loaded>) -> Settings {
        let scan = config.map(|c| &c.config.scan);
        let rel = |p: &str| config.map_or_else(|| PathBuf::from(p), |c| c.relative(p));
        let repo = args.repo.clone().unwrap_or_else(|| PathBuf::from("."));
        let source = if args.git {
            Source::History(repo)
        } else if let Some(r) = args.diff {
            Source::Change(repo, Change::Range(r))
        } else if args.staged {
            Source::Change(repo, Change::Staged)
        } else if args.paths.is_empty() {
            Source::Paths(vec![PathBuf::from(".")])
        } else {
            Source::Paths(args.paths)
        };
        let mut rule_files: Vec<PathBuf> = scan
            .map(|s| s.rules.iter().map(|r| rel(r)).collect())
            .unwrap_or_default();
        rule_files.extend(args.rules);
        let mut disable_rules = scan.map(|s| s.disable_rules.clone()).unwrap_or_default();
        disable_rules.extend(args.disable_rules);
        let mut exclude = scan.map(|s| s.exclude.clone()).unwrap_or_default();
        exclude.extend(args.exclude);
        Settings {
            source,
            builtin_rules: !args.no_builtin_rules,
            rule_files,
            only_rules: args.only_rules,
            disable_rules,
            walk: WalkOptions {
                gitignore: args.gitignore || scan.is_some_and(|s| s.gitignore),
                exclude,
                max_file_size: args.max_file_size.or(scan.and_then(|s| s.max_file_size)),
                threads: args.threads,
            },
            decode_base64: !args.no_decode && scan.and_then(|s| s.decode_base64).unwrap_or(true),
            archive_depth: args
                .archive_depth
                .or(scan.and_then(|s| s.archive_depth))
                .unwrap_or(super::DEFAULT_ARCHIVE_DEPTH),
            validate: args.validate,
            allow: scan.map(|s| s.allow.clone()).unwrap_or_default(),
            baseline: args
                .baseline
                .or_else(|| scan.and_then(|s| s.baseline.as_deref()).map(rel)),
            write_baseline: args.write_baseline,
            format: args.format,
            output: args.output,
            show_secrets: args.show_secrets,
            color: args.color,
            stdin_name: args.stdin_name,
            quiet: args.quiet,
            known: None,
        }
    }
}

/// The result of a scan.
#[derive(Debug)]
pub(crate) struct ScanResult {
    /// Findings to report, sorted by path, line and column.
    pub findings: Vec<Finding>,
    /// Problems that did not stop the scan.
    pub warnings: Vec<String>,
    /// Counters.
    pub summary: Summary,
    /// The scanner (for rule metadata in reports).
    pub scanner: Scanner,
    /// Each finding's path relative to its repository (what its fingerprint hashes).
    pub repo_paths: Vec<String>,
    /// What the fingerprints are keyed with.
    pub keying: Keying,
}

/// Build the rule set the settings ask for.
pub(crate) fn rule_set(s: &Settings) -> Result<RuleSet, Error> {
    let mut set = if s.builtin_rules {
        RuleSet::builtin()?
    } else {
        RuleSet::default()
    };
    let mut problems = Vec::new();
    for f in &s.rule_files {
        match set.add_file(f) {
            Ok(()) => {}
            Err(Error::Invalid { problems: mut p }) => problems.append(&mut p),
            Err(e) => return Err(e),
        }
    }
    if !problems.is_empty() {
        return Err(Error::Invalid { problems });
    }
    let unknown: Vec<&String> = s
        .only_rules
        .iter()
        .chain(&s.disable_rules)
        .filter(|id| !set.rules.iter().any(|r| &r.id == *id))
        .collect();
    if let Some(id) = unknown.first() {
        return Err(Error::Usage(format!(
            "no rule has the id `{id}`; `sluice rules list` shows them"
        )));
    }
    set.select(&s.only_rules, &s.disable_rules);
    if set.rules.is_empty() {
        return Err(Error::Usage("no rules to run".into()));
    }
    Ok(set)
}

/// Run a scan.
pub(crate) fn run(s: &Settings) -> Result<ScanResult, Error> {
    let mut allow = Vec::new();
    for a in &s.allow {
        allow.push(Regex::new(a).map_err(|e| Error::Invalid {
            problems: vec![Problem::new(
                Location::file("scan.allow"),
                format!("regex does not compile: {e}"),
            )],
        })?);
    }
    let baseline = s.baseline.as_deref().map(Baseline::load).transpose()?;
    let scanner = Scanner::new(
        Engine::new(rule_set(s)?)?,
        ScanOptions {
            decode_base64: s.decode_base64,
            archive_depth: s.archive_depth,
            allow,
            known: s
                .known
                .as_ref()
                .map(|(env, values)| std::sync::Arc::new(KnownValues::new(env, values))),
        },
    );
    if s.walk.threads > 0 {
        // Only the first call configures the global pool; later calls keep it.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(s.walk.threads)
            .build_global();
    }
    let outcome = match &s.source {
        Source::Paths(paths) => {
            let (stdin, files): (Vec<PathBuf>, Vec<PathBuf>) =
                paths.iter().cloned().partition(|p| p.as_os_str() == "-");
            let mut out = Outcome::default();
            if !stdin.is_empty() {
                out.merge(sources::scan_stdin(&scanner, &s.stdin_name)?);
            }
            if !files.is_empty() {
                out.merge(sources::scan_paths(&scanner, &files, &s.walk)?);
            }
            out
        }
        Source::History(repo) => git::scan_history(&scanner, repo)?,
        Source::Change(repo, change) => git::scan_change(&scanner, repo, change)?,
    };
    let mut findings = outcome.findings;
    findings.sort_by(|a, b| {
        (&a.path, a.line, a.column, &a.rule).cmp(&(&b.path, b.line, b.column, &b.rule))
    });
    findings.dedup_by(|a, b| {
        a.path == b.path && a.line == b.line && a.column == b.column && a.rule == b.rule
    });
    let mut warnings = outcome.warnings;
    warnings.extend(
        outcome
            .stats
            .notes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..),
    );
    let cwd = std::env::current_dir().unwrap_or_default();
    let mut roots = std::collections::HashMap::new();
    let mut repo_paths: Vec<String> = findings
        .iter()
        .map(|f| match &s.source {
            Source::Paths(_) if f.path != s.stdin_name => repo_relative(&f.path, &cwd, &mut roots),
            _ => f.path.clone(),
        })
        .collect();
    let keying = match (&s.write_baseline, &baseline) {
        (Some(w), _) => match Keying::from_env().or_else(|| Baseline::existing_keying(w)) {
            Some(k) => k,
            None => Keying::random()?,
        },
        (None, Some(b)) => b.keying.clone(),
        (None, None) if findings.is_empty() => Keying::Legacy,
        (None, None) => {
            Keying::from_env().unwrap_or_else(|| Keying::salt(&repository_salt(&s.source, &cwd)))
        }
    };
    if let (Some(path), Keying::Legacy) = (&s.baseline, &keying) {
        warnings.push(format!(
            "{} holds unkeyed fingerprints of an older sluice; regenerate it with --write-baseline {0} (keyed, repository-relative)",
            path.display()
        ));
    }
    for (f, p) in findings.iter_mut().zip(&repo_paths) {
        f.fingerprint = keying.fingerprint(f, p);
    }
    let mut baselined = 0;
    if let Some(b) = &baseline {
        let before = findings.len();
        (findings, repo_paths) = findings
            .into_iter()
            .zip(repo_paths)
            .filter(|(f, _)| !b.contains(f))
            .unzip();
        baselined = (before - findings.len()) as u64;
    }
    if let Some(v) = &s.validate {
        let subjects: Vec<super::validate::Subject<'_>> = findings
            .iter()
            .map(|f| super::validate::Subject {
                rule: &f.rule,
                path: &f.path,
                secret: f.secret.expose(),
                context: f.context.as_ref().map(|c| c.expose()),
            })
            .collect();
        let verdicts = super::validate::validate(&subjects, v);
        for (f, verdict) in findings.iter_mut().zip(verdicts) {
            f.validation = verdict;
        }
    }
    warnings.sort();
    Ok(ScanResult {
        findings,
        warnings,
        summary: Summary {
            files: outcome.stats.files.load(Ordering::Relaxed),
            bytes: outcome.stats.bytes.load(Ordering::Relaxed),
            baselined,
            binary: outcome.stats.binary.load(Ordering::Relaxed),
        },
        scanner,
        repo_paths,
        keying,
    })
}

/// `path` (as a walk spelled it: `./x`, `x`, `/abs/x`, `a/../x`) relative to the root of the git
/// work tree holding it, so one file has one fingerprint in every mode; outside a work tree,
/// relative to `cwd` (or absolute when outside it). `roots` caches each directory's root.
pub(crate) fn repo_relative(
    path: &str,
    cwd: &std::path::Path,
    roots: &mut std::collections::HashMap<PathBuf, Option<PathBuf>>,
) -> String {
    let p = std::path::Path::new(path);
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        cwd.join(p)
    };
    let abs = abs.canonicalize().unwrap_or(abs);
    let dir = abs
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let root = roots
        .entry(dir.clone())
        .or_insert_with(|| {
            dir.ancestors()
                .find(|a| a.join(".git").exists())
                .map(std::path::Path::to_path_buf)
        })
        .clone();
    let cwd = cwd.canonicalize().unwrap_or_else(|_| cwd.to_path_buf());
    let rel = root
        .as_deref()
        .and_then(|r| abs.strip_prefix(r).ok())
        .or_else(|| abs.strip_prefix(&cwd).ok())
        .unwrap_or(&abs);
    rel.to_string_lossy().into_owned()
}

/// The salt of fingerprints without a baseline or key: the first commit of the repository
/// scanned (stable for the repository's life, different between repositories), else a constant.
fn repository_salt(source: &Source, cwd: &std::path::Path) -> String {
    let dir = match source {
        Source::History(r) | Source::Change(r, _) => r.clone(),
        Source::Paths(paths) => paths
            .iter()
            .find(|p| p.as_os_str() != "-")
            .map(|p| {
                let p = cwd.join(p);
                if p.is_dir() {
                    p
                } else {
                    p.parent().map(std::path::Path::to_path_buf).unwrap_or(p)
                }
            })
            .unwrap_or_else(|| cwd.to_path_buf()),
    };
    std::process::Command::new("git")
        .arg("-C")
        .arg(&dir)
        .args(["rev-list", "--max-parents=0", "HEAD"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .min()
                .map(str::to_string)
        })
        .unwrap_or_else(|| "sluice".to_string())
}
