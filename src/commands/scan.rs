//! `sluice scan`, `sluice rules …` and `sluice check`.

use std::io::{self, IsTerminal, Write};

use crate::cli::ColorChoice;
use crate::commands::shared::Failure;
use crate::error::{EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, Error};
use crate::fsio::write_atomic;
use crate::scan::engine::Engine;
use crate::scan::report::{self, ReportOptions};
use crate::scan::rules::{BUILTIN_NAME, RuleSet};
use crate::scan::settings::{self, Settings};
use crate::secrets::resolve;
use crate::{config, scan};

pub(crate) fn rules_check(files: &[std::path::PathBuf]) -> Result<i32, Failure> {
    let mut failures = Vec::new();
    let mut sets = Vec::new();
    if files.is_empty() {
        sets.push((BUILTIN_NAME.to_string(), RuleSet::builtin()));
    }
    for f in files {
        let mut set = RuleSet::default();
        let r = set.add_file(f).map(|_| set);
        sets.push((f.display().to_string(), r));
    }
    let mut total = 0;
    for (name, set) in sets {
        match set {
            Ok(set) => {
                let n = set.rules.len();
                let engine = Engine::new(set)?;
                let problems = engine.check_examples();
                if problems.is_empty() {
                    total += n;
                    println!("{name}: {n} rules ok");
                } else {
                    failures.extend(problems);
                }
            }
            Err(Error::Invalid { problems }) => {
                failures.extend(problems.into_iter().map(|p| p.to_string()));
            }
            Err(e) => return Err(e.into()),
        }
    }
    if failures.is_empty() {
        if files.len() > 1 {
            println!("{total} rules ok");
        }
        Ok(EXIT_OK)
    } else {
        for f in &failures {
            eprintln!("error: {f}");
        }
        Ok(EXIT_USAGE)
    }
}

pub(crate) fn scan_command(s: &Settings) -> Result<i32, Failure> {
    let result = settings::run(s)?;
    if let Some(path) = &s.write_baseline {
        scan::baseline::Baseline::write(
            path,
            &result.findings,
            &result.repo_paths,
            &result.keying,
        )?;
        if !s.quiet {
            eprintln!(
                "wrote {} finding{} to {}",
                result.findings.len(),
                if result.findings.len() == 1 { "" } else { "s" },
                path.display()
            );
        }
        return Ok(EXIT_OK);
    }
    if !s.quiet {
        for w in &result.warnings {
            eprintln!("warning: {w}");
        }
    }
    let color = match s.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            s.output.is_none()
                && io::stdout().is_terminal()
                && std::env::var_os("NO_COLOR").is_none()
        }
    };
    let opts = ReportOptions {
        show_secrets: s.show_secrets,
        color,
        summary: !s.quiet,
    };
    let mut text = Vec::new();
    report::write(
        &mut text,
        s.format,
        &result.findings,
        result.summary,
        result.scanner.engine(),
        opts,
    )?;
    match &s.output {
        Some(path) => write_atomic(path, &text)?,
        None => {
            let mut out = io::stdout().lock();
            out.write_all(&text)?;
            out.flush()?;
        }
    }
    Ok(if result.findings.is_empty() {
        EXIT_OK
    } else {
        EXIT_FINDINGS
    })
}

/// `sluice scan`.
pub(crate) fn scan(
    args: crate::cli::ScanArgs,
    explicit: Option<&std::path::Path>,
    cwd: &std::path::Path,
) -> Result<i32, Failure> {
    let loaded = config::load_or_discover(explicit, cwd)?;
    let known = match (&args.env, &loaded) {
        (Some(env), Some(l)) => {
            let secret: Vec<(String, crate::secrets::SecretValue)> = resolve::Resolver::new(l)
                .marked(env, &[])?
                .into_iter()
                .filter(|(_, _, secret)| *secret)
                .map(|(k, v, _)| (k, v))
                .collect();
            Some((env.clone(), secret))
        }
        (Some(_), None) => {
            return Err(Error::Usage(format!(
                "--env needs a {} declaring the environment; none found from {}",
                config::FILE_NAME,
                cwd.display()
            ))
            .into());
        }
        _ => None,
    };
    let mut settings = Settings::resolve(args.into(), loaded.as_ref());
    settings.known = known;
    scan_command(&settings)
}

/// `sluice rules list`.
pub(crate) fn rules_list(
    rules: &[std::path::PathBuf],
    explicit: Option<&std::path::Path>,
    cwd: &std::path::Path,
) -> Result<i32, Failure> {
    let loaded = config::load_or_discover(explicit, cwd)?;
    let mut set = RuleSet::builtin()?;
    if let Some(l) = &loaded {
        for r in &l.config.scan.rules {
            set.add_file(&l.relative(r))?;
        }
    }
    for r in rules {
        set.add_file(r)?;
    }
    let mut out = io::stdout().lock();
    for r in &set.rules {
        writeln!(
            out,
            "{:<40} {:<9} {:<16} {}",
            r.id,
            r.severity.as_str(),
            r.tags.first().map_or("", String::as_str),
            r.description
        )?;
    }
    Ok(EXIT_OK)
}

/// `sluice check`: the config file loads, validates and its scan rules compile.
pub(crate) fn check(
    explicit: Option<&std::path::Path>,
    cwd: &std::path::Path,
) -> Result<i32, Failure> {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => config::discover(cwd).ok_or_else(|| {
            Error::Usage(format!(
                "no {} in {} or its parents; pass --config FILE",
                config::FILE_NAME,
                cwd.display()
            ))
        })?,
    };
    let loaded = config::load(&path)?;
    let settings = Settings::resolve(settings::Request::default(), Some(&loaded));
    let set = settings::rule_set(&settings)?;
    println!(
        "{}: ok ({} scan rules in force)",
        loaded.path.display(),
        set.rules.len()
    );
    Ok(EXIT_OK)
}
