//! The `sluice` binary: parse arguments, call the library, print, map errors to exit codes.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use clap::Parser;

use sluice::cli::{Cli, ColorChoice, Command, RulesCommand, SchemaKind, SecretsCommand};
use sluice::data::envs;
use sluice::data::marks::{Mark, Role};
use sluice::error::{EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, Error};
use sluice::fsio::write_atomic;
use sluice::scan::engine::Engine;
use sluice::scan::report::{self, ReportOptions};
use sluice::scan::rules::{BUILTIN_NAME, RuleFile, RuleSet};
use sluice::scan::settings::{self, Settings};
use sluice::secrets::{SecretValue, inject, resolve};
use sluice::{config, scan};

/// mimalloc: the subset closure and the scanner make millions of small, short-lived
/// allocations (key texts, per-file buffers), where glibc's allocator spent about half the
/// closure's CPU consolidating free lists.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = run(cli);
    // A refresh that got SIGINT or SIGTERM ends on the signal thread, after its clean-up.
    sluice::data::refresh::interrupt::hold_if_signalled();
    let code = match outcome {
        Ok(code) => code,
        Err(Failure::Error(Error::Invalid { problems })) => {
            for p in &problems {
                eprintln!("error: {p}");
            }
            EXIT_USAGE
        }
        Err(Failure::Error(e)) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
        Err(Failure::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => EXIT_OK,
        Err(Failure::Io(e)) => {
            eprintln!("error: cannot write output: {e}");
            EXIT_USAGE
        }
    };
    ExitCode::from(code as u8)
}

enum Failure {
    Error(Error),
    Io(io::Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Error(e)
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Io(e)
    }
}

fn run(cli: Cli) -> Result<i32, Failure> {
    let cwd =
        std::env::current_dir().map_err(|e| Error::Usage(format!("no working directory: {e}")))?;
    match cli.command {
        Command::Scan(args) => {
            let loaded = config::load_or_discover(cli.config.as_deref(), &cwd)?;
            let known = match (&args.env, &loaded) {
                (Some(env), Some(l)) => Some((env.clone(), resolve::resolve_secrets(l, env, &[])?)),
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
            let mut settings = Settings::resolve(*args, loaded.as_ref());
            settings.known = known;
            scan_command(&settings)
        }
        Command::Rules(RulesCommand::Check { files }) => rules_check(&files),
        Command::Rules(RulesCommand::List { rules }) => {
            let loaded = config::load_or_discover(cli.config.as_deref(), &cwd)?;
            let mut set = RuleSet::builtin()?;
            if let Some(l) = &loaded {
                for r in &l.config.scan.rules {
                    set.add_file(&l.relative(r))?;
                }
            }
            for r in &rules {
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
        Command::Check => {
            let path = match &cli.config {
                Some(p) => p.clone(),
                None => config::discover(&cwd).ok_or_else(|| {
                    Error::Usage(format!(
                        "no {} in {} or its parents; pass --config FILE",
                        config::FILE_NAME,
                        cwd.display()
                    ))
                })?,
            };
            let loaded = config::load(&path)?;
            let settings = Settings::resolve(empty_scan_args(), Some(&loaded));
            let set = settings::rule_set(&settings)?;
            println!(
                "{}: ok ({} scan rules in force)",
                loaded.path.display(),
                set.rules.len()
            );
            Ok(EXIT_OK)
        }
        Command::Run(args) => {
            let loaded = require_config(cli.config.as_deref(), &cwd)?;
            let values = resolve::resolve(&loaded, &args.env, &args.only)?;
            let (vars, kept) = inject::child_env(
                &values,
                inject::RunOptions {
                    override_existing: args.override_existing,
                },
            );
            for k in kept {
                eprintln!(
                    "sluice: {k} is already set in the environment; keeping it (use --override to replace it)"
                );
            }
            if args.mask_output {
                drop(values);
                let hidden: Vec<SecretValue> =
                    resolve::resolve_secrets(&loaded, &args.env, &args.only)?
                        .into_iter()
                        .map(|(_, v)| v)
                        .collect();
                return Ok(sluice::secrets::supervise::run_masked(
                    &args.command,
                    vars,
                    hidden,
                )?);
            }
            drop(values);
            Err(inject::exec(&args.command, vars).into())
        }
        Command::Export(args) => {
            let loaded = require_config(cli.config.as_deref(), &cwd)?;
            let values = resolve::resolve(&loaded, &args.env, &args.only)?;
            let name = args.name.unwrap_or_else(|| format!("{}-secrets", args.env));
            let mut text = zeroize::Zeroizing::new(Vec::new());
            inject::export(&mut *text, args.format, &values, &name)?;
            match &args.output {
                Some(path) => sluice::secrets::age_store::write_private(path, &text)?,
                None => {
                    let mut out = io::stdout().lock();
                    out.write_all(&text)?;
                    out.flush()?;
                }
            }
            Ok(EXIT_OK)
        }
        Command::Secrets(cmd) => secrets_command(cmd, cli.config.as_deref(), &cwd),
        Command::Refresh(args) => refresh_command(args, cli.config.as_deref(), &cwd),
        Command::Env(cmd) => env_command(cmd, cli.config.as_deref(), &cwd),
        Command::Snapshot { plan, command } => {
            snapshot_command(&plan, command, cli.config.as_deref(), &cwd)
        }
        Command::Verify { plan, sample, json } => {
            verify_command(&plan, sample, json, cli.config.as_deref(), &cwd)
        }
        Command::Classify {
            plan,
            env,
            var,
            url,
            sample,
        } => classify_command(plan, env, var, url, sample, cli.config.as_deref(), &cwd),
        Command::Render {
            env,
            template,
            output,
        } => {
            let loaded = require_config(cli.config.as_deref(), &cwd)?;
            let name = template.display().to_string();
            let text = std::fs::read_to_string(&template).map_err(|e| Error::Io {
                path: template.clone(),
                source: e,
            })?;
            let wanted = sluice::secrets::template::names(&name, &text)?;
            let known: Vec<String> = wanted
                .into_iter()
                .filter(|n| loaded.config.secrets.contains_key(n))
                .collect();
            let values = resolve::resolve(&loaded, &env, &known)?;
            let rendered = sluice::secrets::template::render(&name, &text, &values)?;
            match &output {
                Some(path) => sluice::secrets::age_store::write_private(path, rendered.as_bytes())?,
                None => {
                    let mut out = io::stdout().lock();
                    out.write_all(rendered.as_bytes())?;
                    out.flush()?;
                }
            }
            Ok(EXIT_OK)
        }
        Command::Schema { kind } => {
            let schema = match kind {
                SchemaKind::Config => config::schema(),
                SchemaKind::Rules => serde_json::to_value(schemars::schema_for!(RuleFile))
                    .map_err(|e| Error::Usage(e.to_string()))?,
            };
            let mut out = io::stdout().lock();
            serde_json::to_writer_pretty(&mut out, &schema).map_err(io::Error::other)?;
            writeln!(out)?;
            Ok(EXIT_OK)
        }
    }
}

fn require_config(
    explicit: Option<&std::path::Path>,
    cwd: &std::path::Path,
) -> Result<config::Loaded, Error> {
    config::load_or_discover(explicit, cwd)?.ok_or_else(|| {
        Error::Usage(format!(
            "no {} in {} or its parents; pass --config FILE",
            config::FILE_NAME,
            cwd.display()
        ))
    })
}

fn secrets_command(
    cmd: SecretsCommand,
    explicit: Option<&std::path::Path>,
    cwd: &std::path::Path,
) -> Result<i32, Failure> {
    let loaded = match require_config(explicit, cwd) {
        // `check` reports a breach of isolation as a finding: the file is well-formed.
        Err(Error::Invalid { problems })
            if matches!(cmd, SecretsCommand::Check) && problems.iter().all(|p| p.isolation) =>
        {
            for p in &problems {
                eprintln!("problem: {p}");
            }
            return Ok(EXIT_FINDINGS);
        }
        other => other?,
    };
    let age = |env: &str| -> Result<sluice::secrets::age_store::AgeStore, Error> {
        resolve::age_store(&loaded, env)?.ok_or_else(|| {
            Error::Usage(format!(
                "environment `{env}` has no age store; set `secrets: {{ provider: age, file: secrets/{env}.age }}` on it"
            ))
        })
    };
    match cmd {
        SecretsCommand::List { env } => {
            let entries = resolve::entries(&loaded, &env, &[])?;
            let mut out = io::stdout().lock();
            for e in &entries {
                writeln!(out, "{:<32} {}", e.name, e.source_text())?;
            }
            Ok(EXIT_OK)
        }
        SecretsCommand::Get { env, name } => {
            let values = resolve::resolve(&loaded, &env, std::slice::from_ref(&name))?;
            let Some((_, v)) = values.into_iter().next() else {
                return Err(Error::Usage(format!(
                    "variable `{name}` has no source in environment `{env}`"
                ))
                .into());
            };
            let mut out = io::stdout().lock();
            out.write_all(v.expose().as_bytes())?;
            if io::stdout().is_terminal() {
                writeln!(out)?;
            }
            Ok(EXIT_OK)
        }
        SecretsCommand::Set { env, name } => {
            let store = age(&env)?;
            let mut raw = zeroize::Zeroizing::new(Vec::new());
            io::Read::read_to_end(&mut io::stdin().lock(), &mut raw)?;
            let mut text = String::from_utf8(raw.to_vec())
                .map_err(|_| Error::Usage("the value on stdin is not UTF-8 text".into()))?;
            if text.ends_with('\n') {
                text.pop();
                if text.ends_with('\r') {
                    text.pop();
                }
            }
            store.set(&name, SecretValue::new(text))?;
            eprintln!("set {name} in {}", store.file.display());
            Ok(EXIT_OK)
        }
        SecretsCommand::Diff { a, b } => {
            let lines = sluice::secrets::audit::diff(&loaded, &a, &b)?;
            let mut out = io::stdout().lock();
            let mut differs = false;
            for l in &lines {
                let status = match (&l.left, &l.right) {
                    (None, _) => format!("only in {b}"),
                    (_, None) => format!("only in {a}"),
                    _ if l.left != l.right && l.same_value == Some(true) => {
                        "references differ, same value".to_string()
                    }
                    _ if l.left != l.right => "references and values differ".to_string(),
                    _ if l.same_value == Some(false) => "values differ".to_string(),
                    _ if l.same_value.is_none() => "no value on one side".to_string(),
                    _ => "same".to_string(),
                };
                differs |= l.differs();
                writeln!(
                    out,
                    "{:<28} {:<28} {:<28} {status}",
                    l.name,
                    l.left.as_deref().unwrap_or("-"),
                    l.right.as_deref().unwrap_or("-")
                )?;
            }
            Ok(if differs { EXIT_FINDINGS } else { EXIT_OK })
        }
        SecretsCommand::Check => {
            let problems = sluice::secrets::audit::check(&loaded)?;
            for p in &problems {
                eprintln!("problem: {p}");
            }
            if problems.is_empty() {
                println!(
                    "{}: every variable resolves in every environment",
                    loaded.path.display()
                );
                Ok(EXIT_OK)
            } else {
                Ok(EXIT_FINDINGS)
            }
        }
        SecretsCommand::Init {
            env,
            passphrase: true,
        } => {
            let store = age(&env)?;
            store.init_passphrase()?;
            eprintln!("created {} (passphrase-encrypted)", store.file.display());
            Ok(EXIT_OK)
        }
        SecretsCommand::Init {
            env,
            passphrase: false,
        } => {
            let store = age(&env)?;
            if let Some(public) = store.init()? {
                eprintln!(
                    "created identity {} (public key {public})",
                    store
                        .identity_path()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                );
            }
            eprintln!("created {}", store.file.display());
            Ok(EXIT_OK)
        }
    }
}

fn empty_scan_args() -> sluice::cli::ScanArgs {
    match Cli::parse_from(["sluice", "scan"]).command {
        Command::Scan(a) => *a,
        _ => unreachable!("`sluice scan` parses as the scan command"),
    }
}

fn rules_check(files: &[std::path::PathBuf]) -> Result<i32, Failure> {
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

fn scan_command(s: &Settings) -> Result<i32, Failure> {
    let result = settings::run(s)?;
    if let Some(path) = &s.write_baseline {
        scan::baseline::Baseline::write(path, &result.findings)?;
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

/// A plan with everything resolved: presets loaded, URLs and key fetched from their stores.
struct ResolvedPlan<'a> {
    file: String,
    cfg: &'a sluice::config::refresh::RefreshPlan,
    presets: Vec<sluice::data::mask::presets::Presets>,
    source_url: SecretValue,
}

fn resolve_plan<'a>(loaded: &'a config::Loaded, name: &str) -> Result<ResolvedPlan<'a>, Failure> {
    use sluice::data::mask::presets::Presets;
    let file = loaded.path.display().to_string();
    let cfg = loaded.config.refresh.get(name).ok_or_else(|| {
        let known: Vec<&str> = loaded.config.refresh.keys().map(String::as_str).collect();
        Error::Usage(format!(
            "{file}: no refresh plan `{name}` (plans: {}); add it under `refresh:`",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ))
    })?;
    let mut presets = Vec::new();
    for p in &cfg.masking.presets {
        if p == "builtin:pii" {
            presets.push(Presets::builtin()?);
            continue;
        }
        let path = loaded.relative(p);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::Io {
            path: path.clone(),
            source: e,
        })?;
        presets.push(Presets::parse(&path.display().to_string(), &text)?);
    }
    let source_url = resolve::resolve_setting(
        loaded,
        cfg.source.env.as_deref(),
        &cfg.source.url,
        &format!("{file}: refresh.{name}.source.url"),
    )?;
    Ok(ResolvedPlan {
        file,
        cfg,
        presets,
        source_url,
    })
}

impl ResolvedPlan<'_> {
    fn target_url(&self, loaded: &config::Loaded, name: &str) -> Result<SecretValue, Error> {
        resolve::resolve_setting(
            loaded,
            self.cfg.target.env.as_deref(),
            &self.cfg.target.url,
            &format!("{}: refresh.{name}.target.url", self.file),
        )
    }

    fn key(&self, loaded: &config::Loaded, name: &str) -> Result<SecretValue, Error> {
        let at = format!("{}: refresh.{name}.masking.key", self.file);
        let key = resolve::resolve_setting(
            loaded,
            self.cfg.source.env.as_deref(),
            &self.cfg.masking.key,
            &at,
        )?;
        sluice::data::mask::key::check_key(key.expose().as_bytes()).map_err(|why| {
            // A literal key (no `secret:`) is itself the secret: name only a reference.
            let from = match self.cfg.masking.key.strip_prefix("secret:") {
                Some(var) => format!(" (variable `{var}`)"),
                None => String::new(),
            };
            Error::Usage(format!("{at}{from}: {why}"))
        })?;
        Ok(key)
    }

    fn build(
        &self,
        name: &str,
        catalog: &sluice::data::pg::catalog::Catalog,
    ) -> Result<sluice::data::refresh::plan::Plan, Error> {
        sluice::data::refresh::plan::build(name, self.cfg, &self.file, &self.presets, catalog)
    }
}

fn verify_command(
    plan: &str,
    sample: usize,
    json: bool,
    explicit: Option<&std::path::Path>,
    cwd: &std::path::Path,
) -> Result<i32, Failure> {
    let loaded = require_config(explicit, cwd)?;
    let r = resolve_plan(&loaded, plan)?;
    let verdict = sluice::data::verify::verify(
        &r.source_url,
        &r.target_url(&loaded, plan)?,
        &r.key(&loaded, plan)?,
        sample,
        &|catalog| r.build(plan, catalog),
    )?;
    let mut out = io::stdout().lock();
    if json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&verdict).unwrap_or_default()
        )?;
    } else {
        for c in &verdict.counts {
            let note = if c.source == c.target {
                ""
            } else {
                "  (differs: the source has changed since the refresh, or rows are missing)"
            };
            writeln!(
                out,
                "rows      {:<40} source {:>10}  target {:>10}{note}",
                c.table, c.source, c.target
            )?;
        }
        for k in &verdict.keys {
            let status = if k.orphans == 0 {
                "ok".to_string()
            } else {
                format!("BROKEN: {} row(s) point at nothing", k.orphans)
            };
            writeln!(out, "key       {:<40} {status}", k.key)?;
        }
        for l in &verdict.leaks {
            let status = if l.found == 0 {
                format!(
                    "ok ({} source values sampled, none in the target)",
                    l.sampled
                )
            } else {
                format!(
                    "LEAK: {} of {} sampled source values appear in the target",
                    l.found, l.sampled
                )
            };
            writeln!(
                out,
                "masked    {:<40} {:<16} {status}",
                l.column, l.transform
            )?;
        }
        writeln!(
            out,
            "{}",
            if verdict.passed() {
                "verified: no leak, every foreign key holds"
            } else {
                "verification FAILED"
            }
        )?;
    }
    Ok(if verdict.passed() {
        EXIT_OK
    } else {
        EXIT_FINDINGS
    })
}

fn refresh_command(
    args: sluice::cli::RefreshArgs,
    explicit: Option<&std::path::Path>,
    cwd: &std::path::Path,
) -> Result<i32, Failure> {
    use sluice::data::refresh::{pipeline, progress};
    let loaded = require_config(explicit, cwd)?;
    let r = resolve_plan(&loaded, &args.plan)?;
    let build = |catalog: &sluice::data::pg::catalog::Catalog| r.build(&args.plan, catalog);
    if args.dry_run {
        let catalog = sluice::data::pg::snapshot::read_catalog(&r.source_url)?;
        let plan = build(&catalog)?;
        let mut out = io::stdout().lock();
        writeln!(
            out,
            "plan `{}`: {} table(s) move, {} schema only",
            args.plan,
            plan.tables.len(),
            plan.schema_only.len()
        )?;
        for t in &plan.tables {
            writeln!(out, "{}  ~{} rows", t.name, t.estimated_rows.max(0))?;
            for c in &t.columns {
                let how = match &c.transform {
                    None => "keep".to_string(),
                    Some(tr) => format!(
                        "{}{}",
                        sluice::data::mask::parse::transform_name(tr),
                        if c.unique { " (unique)" } else { "" }
                    ),
                };
                writeln!(out, "  {:<30} {how}", c.name)?;
            }
        }
        for t in &plan.schema_only {
            writeln!(out, "{t}  schema only")?;
        }
        for (t, c) in &plan.unclassified {
            writeln!(
                out,
                "warning: {t}.{} is not classified and would be copied unmasked",
                sluice::data::pg::catalog::quote_ident(c)
            )?;
        }
        return Ok(EXIT_OK);
    }
    let mut target_url = r.target_url(&loaded, &args.plan)?;
    let mut mark = Mark::new(Role::Current, &args.plan, clock()?);
    if args.template {
        let db = envs::database_of(&target_url)?;
        target_url = envs::with_database(&target_url, &envs::template_name(&db))?;
        mark.role = Role::Template;
    }
    let settings = pipeline::Settings {
        name: args.plan.clone(),
        target_url,
        key: r.key(&loaded, &args.plan)?,
        source_url: r.source_url.clone(),
        explain: args.explain,
        jobs: jobs(args.jobs, r.cfg.jobs),
        keep_previous: !args.template,
        mark,
        snapshot: args.snapshot.clone(),
        shard: args
            .shard
            .as_deref()
            .map(sluice::data::refresh::tasks::Shard::parse)
            .transpose()?,
        same_server: r.cfg.same_server,
        adopt: args.adopt,
    };
    let report = run_refresh(&r, &args.plan, &settings)?;
    if let Some(path) = &args.report {
        let json = serde_json::to_vec_pretty(&report).unwrap_or_default();
        write_atomic(path, &json)?;
    }
    if args.explain {
        let mut out = io::stdout().lock();
        match &report.subset {
            None => writeln!(
                out,
                "plan `{}` copies every row of its tables (no `subset:`)",
                args.plan
            )?,
            Some(s) => {
                for (table, reasons) in &s.tables {
                    let total: u64 = reasons.values().sum();
                    let why = reasons
                        .iter()
                        .map(|(r, n)| format!("{n} {r}"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    writeln!(out, "{table:<32} {total:>10} rows  ({why})")?;
                }
                for (fk, n) in &s.orphans {
                    writeln!(
                        out,
                        "orphans left out: {n} row(s) whose {fk} points at no row"
                    )?;
                }
                writeln!(
                    out,
                    "{} rows selected; key sets take {} bytes ({:.2} bytes per row)",
                    s.rows,
                    s.key_bytes,
                    s.key_bytes as f64 / s.rows.max(1) as f64
                )?;
                if s.spilled_bytes > 0 {
                    writeln!(
                        out,
                        "pending work beyond subset.memory spilled: {} bytes, encrypted, to a temporary file that is already unlinked",
                        s.spilled_bytes
                    )?;
                }
            }
        }
        return Ok(EXIT_OK);
    }
    progress::summary(&report, &mut io::stdout().lock())?;
    Ok(EXIT_OK)
}

/// Tables copied at once: the flag, the plan's `jobs`, else the number of cores.
fn jobs(flag: Option<u16>, plan: Option<usize>) -> usize {
    flag.map(usize::from)
        .or(plan)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
}

/// Run a refresh with progress on stderr.
fn run_refresh(
    r: &ResolvedPlan<'_>,
    name: &str,
    settings: &sluice::data::refresh::pipeline::Settings,
) -> Result<sluice::data::refresh::pipeline::Report, Error> {
    use sluice::data::refresh::{pipeline, progress};
    let renderer = std::sync::Arc::new(progress::Renderer::new(
        Box::new(io::stderr()),
        io::stderr().is_terminal(),
        0,
    ));
    let events = std::sync::Arc::clone(&renderer);
    pipeline::refresh(
        settings,
        &|catalog| {
            let plan = r.build(name, catalog)?;
            for (t, c) in &plan.unclassified {
                events.event(pipeline::Event::Step(format!(
                    "warning: {t}.{} is not classified; copied unmasked (unclassified: warn)",
                    sluice::data::pg::catalog::quote_ident(c)
                )));
            }
            Ok(plan)
        },
        std::sync::Arc::new(move |e| renderer.event(e)),
    )
}

/// Now, in seconds since the Unix epoch: `SLUICE_NOW` when set (to replay an expiry, or in
/// tests), else the system clock.
fn clock() -> Result<u64, Error> {
    match std::env::var("SLUICE_NOW") {
        Ok(v) => v.trim().parse().map_err(|_| {
            Error::Usage(format!(
                "SLUICE_NOW=`{v}` is not a time in seconds since 1970-01-01 UTC; unset it to use the clock"
            ))
        }),
        Err(_) => Ok(sluice::data::marks::system_now()),
    }
}

/// The distinct target servers of the plans to look at (one plan, or every plan), each with the
/// target URL of the first plan that points there.
fn target_servers(
    loaded: &config::Loaded,
    plan: Option<&str>,
) -> Result<Vec<(String, SecretValue)>, Failure> {
    let names: Vec<String> = match plan {
        Some(p) => vec![p.to_string()],
        None => loaded.config.refresh.keys().cloned().collect(),
    };
    if names.is_empty() {
        return Err(Error::Usage(format!(
            "{}: no refresh plans; environments live on a plan's target server, so add one under `refresh:`",
            loaded.path.display()
        ))
        .into());
    }
    let mut servers: Vec<(String, SecretValue)> = Vec::new();
    let mut seen = Vec::new();
    for name in names {
        let r = resolve_plan(loaded, &name)?;
        let url = r.target_url(loaded, &name)?;
        let cfg = sluice::data::pg::tls::endpoint(url.expose(), &format!("refresh.{name}.target"))?;
        let key = format!(
            "{:?} {:?} {:?}",
            cfg.get_hosts(),
            cfg.get_ports(),
            cfg.get_user()
        );
        if !seen.contains(&key) {
            seen.push(key);
            servers.push((name, url));
        }
    }
    Ok(servers)
}

fn env_command(
    cmd: sluice::cli::EnvCommand,
    explicit: Option<&std::path::Path>,
    cwd: &std::path::Path,
) -> Result<i32, Failure> {
    use sluice::cli::{EnvCommand, EnvSource};
    use sluice::data::marks::{human_bytes, human_span};
    let loaded = require_config(explicit, cwd)?;
    let now = clock()?;
    match cmd {
        EnvCommand::Up(args) => {
            let r = resolve_plan(&loaded, &args.plan)?;
            let target_url = r.target_url(&loaded, &args.plan)?;
            envs::check_name(&args.name, &envs::database_of(&target_url)?)?;
            let ttl = sluice::data::marks::parse_ttl(&args.ttl)
                .map_err(|e| Error::Usage(format!("--ttl: {e}")))?;
            let mut mark = Mark::new(Role::Env, &args.plan, now);
            mark.expires = ttl.map(|t| now.saturating_add(t));
            mark.owner = Some(args.owner.clone().unwrap_or_else(default_owner));
            let env_url = envs::with_database(&target_url, &args.name)?;
            let mut out = io::stdout().lock();
            let mut cloned = None;
            if args.from != EnvSource::Stream {
                mark.via = Some("template".into());
                let guard = envs::Guard {
                    sources: sluice::data::pg::guard::identify(std::slice::from_ref(
                        &r.source_url,
                    ))?,
                    same_server: r.cfg.same_server,
                };
                cloned = envs::clone_template(&target_url, &args.name, &mark, &guard)?;
                if cloned.is_none() && args.from == EnvSource::Template {
                    return Err(Error::Usage(format!(
                        "plan `{}` has no template on its target server; make one with `sluice refresh {} --template`, or use --from stream",
                        args.plan, args.plan
                    ))
                    .into());
                }
            }
            match cloned {
                Some(c) => writeln!(
                    out,
                    "environment `{}` cloned from template `{}` (filled {} ago) in {:.1} s",
                    args.name,
                    c.template,
                    human_span(now.saturating_sub(c.template_mark.at)),
                    c.seconds
                )?,
                None => {
                    mark.via = Some("stream".into());
                    let settings = sluice::data::refresh::pipeline::Settings {
                        name: args.plan.clone(),
                        target_url: env_url.clone(),
                        key: r.key(&loaded, &args.plan)?,
                        source_url: r.source_url.clone(),
                        explain: false,
                        jobs: jobs(args.jobs, r.cfg.jobs),
                        mark: mark.clone(),
                        keep_previous: false,
                        snapshot: None,
                        shard: None,
                        same_server: r.cfg.same_server,
                        adopt: false,
                    };
                    let report = run_refresh(&r, &args.plan, &settings)?;
                    let rows: u64 = report.tables.iter().map(|t| t.rows).sum();
                    writeln!(
                        out,
                        "environment `{}` streamed from plan `{}` ({rows} rows) in {:.1} s{}",
                        args.name,
                        args.plan,
                        report.seconds,
                        if args.from == EnvSource::Auto {
                            format!(
                                " (no template; `sluice refresh {} --template` makes one for faster clones)",
                                args.plan
                            )
                        } else {
                            String::new()
                        }
                    )?;
                }
            }
            writeln!(
                out,
                "expires   {}",
                match mark.expires {
                    Some(e) => format!("in {} (sluice env gc drops it then)", human_span(e - now)),
                    None => "never".into(),
                }
            )?;
            writeln!(
                out,
                "url       {}",
                envs::display_url(&env_url, args.show_secrets)
            )?;
            Ok(EXIT_OK)
        }
        EnvCommand::List { plan, json } => {
            let mut all = Vec::new();
            for (_, url) in target_servers(&loaded, plan.as_deref())? {
                all.extend(envs::list(&url)?);
            }
            let mut out = io::stdout().lock();
            if json {
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&all).unwrap_or_default()
                )?;
                return Ok(EXIT_OK);
            }
            writeln!(
                out,
                "{:<24} {:<9} {:<14} {:<14} {:>8} {:>13} {:>9}  via",
                "name", "kind", "plan", "owner", "age", "expires", "size"
            )?;
            for l in &all {
                let m = &l.mark;
                let expires = match m.expires {
                    None => "never".to_string(),
                    Some(e) if e <= now => "EXPIRED".to_string(),
                    Some(e) => format!("in {}", human_span(e - now)),
                };
                writeln!(
                    out,
                    "{:<24} {:<9} {:<14} {:<14} {:>8} {:>13} {:>9}  {}",
                    l.name,
                    if m.role == Role::Template {
                        "template"
                    } else {
                        "env"
                    },
                    m.plan,
                    m.owner.as_deref().unwrap_or("-"),
                    human_span(now.saturating_sub(m.at)),
                    expires,
                    human_bytes(l.bytes),
                    m.via.as_deref().unwrap_or("-")
                )?;
            }
            Ok(EXIT_OK)
        }
        EnvCommand::Down {
            name,
            plan,
            if_exists,
        } => {
            let servers = target_servers(&loaded, plan.as_deref())?;
            let guard = plans_guard(&loaded, plan.as_deref())?;
            for (plan, url) in &servers {
                if envs::down(url, &name, &guard)? {
                    writeln!(
                        io::stdout().lock(),
                        "dropped environment `{name}` (server of plan `{plan}`)"
                    )?;
                    return Ok(EXIT_OK);
                }
            }
            if if_exists {
                writeln!(
                    io::stdout().lock(),
                    "no environment `{name}`; nothing to drop"
                )?;
                return Ok(EXIT_OK);
            }
            Err(Error::Usage(format!(
                "there is no environment `{name}` on the plans' target servers; `sluice env list` shows them"
            ))
            .into())
        }
        EnvCommand::Gc { plan, dry_run } => {
            let mut out = io::stdout().lock();
            let mut n = 0;
            let guard = plans_guard(&loaded, plan.as_deref())?;
            for (_, url) in target_servers(&loaded, plan.as_deref())? {
                let found = envs::gc(&url, now, dry_run, &guard)?;
                for l in &found.leftovers {
                    writeln!(
                        out,
                        "{} `{}`, left by an interrupted `env up` (plan `{}`, {})",
                        if dry_run { "would remove" } else { "removed" },
                        l.name,
                        l.mark.plan,
                        human_bytes(l.bytes)
                    )?;
                }
                for l in found.expired {
                    n += 1;
                    writeln!(
                        out,
                        "{} `{}` (plan `{}`, owner {}, expired {} ago, {})",
                        if dry_run { "would drop" } else { "dropped" },
                        l.name,
                        l.mark.plan,
                        l.mark.owner.as_deref().unwrap_or("-"),
                        human_span(now.saturating_sub(l.mark.expires.unwrap_or(now))),
                        human_bytes(l.bytes)
                    )?;
                }
            }
            writeln!(
                out,
                "{n} expired environment(s){}",
                if dry_run {
                    " (dry run: nothing dropped)"
                } else {
                    " dropped"
                }
            )?;
            Ok(EXIT_OK)
        }
    }
}

/// The source databases of one plan or of every plan, identified by their servers: what
/// `env down` and `env gc` must never drop.
fn plans_guard(loaded: &config::Loaded, plan: Option<&str>) -> Result<envs::Guard, Failure> {
    let names: Vec<String> = match plan {
        Some(p) => vec![p.to_string()],
        None => loaded.config.refresh.keys().cloned().collect(),
    };
    let mut urls = Vec::new();
    for name in &names {
        urls.push(resolve_plan(loaded, name)?.source_url);
    }
    Ok(envs::Guard {
        sources: sluice::data::pg::guard::identify(&urls)?,
        same_server: true,
    })
}

/// Who an environment is for, when --owner is not given.
fn default_owner() -> String {
    ["SLUICE_OWNER", "GITHUB_ACTOR", "USER"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

fn snapshot_command(
    plan: &str,
    command: Vec<std::ffi::OsString>,
    explicit: Option<&std::path::Path>,
    cwd: &std::path::Path,
) -> Result<i32, Failure> {
    let loaded = require_config(explicit, cwd)?;
    let r = resolve_plan(&loaded, plan)?;
    sluice::data::pg::snapshot::hold_snapshot(&r.source_url, |id| -> Result<i32, Failure> {
        if command.is_empty() {
            let mut out = io::stdout().lock();
            writeln!(out, "{id}")?;
            out.flush()?;
            drop(out);
            eprintln!("holding snapshot {id} until stdin closes (Ctrl-D) or sluice is stopped");
            let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
            return Ok(EXIT_OK);
        }
        let status = std::process::Command::new(&command[0])
            .args(&command[1..])
            .env("SLUICE_SNAPSHOT", id)
            .status()
            .map_err(|e| {
                Error::Usage(format!("cannot run {}: {e}", command[0].to_string_lossy()))
            })?;
        use std::os::unix::process::ExitStatusExt;
        // A command killed by a signal exits as a shell reports it: 128 + the signal.
        Ok(status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
    })?
}

fn classify_command(
    plan: Option<String>,
    env: Option<String>,
    var: Option<String>,
    url: Option<String>,
    sample: usize,
    explicit: Option<&std::path::Path>,
    cwd: &std::path::Path,
) -> Result<i32, Failure> {
    use sluice::data::classify;
    let mut out = io::stdout().lock();
    let indent = if plan.is_some() { 6 } else { 4 };
    let proposals = match (plan, env, var, url) {
        (Some(name), ..) => {
            let loaded = require_config(explicit, cwd)?;
            let r = resolve_plan(&loaded, &name)?;
            let decided: Vec<_> = r
                .cfg
                .masking
                .columns
                .keys()
                .filter_map(|k| sluice::data::pg::catalog::parse_column_key(k).ok())
                .collect();
            let skip = |t: &sluice::data::pg::catalog::QualifiedName, c: &str| {
                decided
                    .iter()
                    .any(|(dt, dc)| dt == t && dc.as_deref().is_none_or(|dc| dc == c))
            };
            let p = classify::classify_database(r.source_url.expose(), &r.presets, sample, &skip)?;
            writeln!(out, "# paste under refresh.{name}.masking.columns:")?;
            p
        }
        (None, Some(env), Some(var), _) => {
            let loaded = require_config(explicit, cwd)?;
            let url =
                resolve::resolve_setting(&loaded, Some(&env), &format!("secret:{var}"), "--var")?;
            let p = classify::classify_database(
                url.expose(),
                &[sluice::data::mask::presets::Presets::builtin()?],
                sample,
                &|_, _| false,
            )?;
            writeln!(out, "masking:\n  columns:")?;
            p
        }
        (None, None, None, Some(u)) => {
            let p = classify::classify_database(
                &u,
                &[sluice::data::mask::presets::Presets::builtin()?],
                sample,
                &|_, _| false,
            )?;
            writeln!(out, "masking:\n  columns:")?;
            p
        }
        _ => {
            return Err(
                Error::Usage("give a plan, --env ENV --var NAME, or --url URL".into()).into(),
            );
        }
    };
    let width = proposals
        .iter()
        .map(|p| sluice::data::pg::catalog::yaml_column_key(&p.table, &p.column).len())
        .max()
        .unwrap_or(0);
    for p in &proposals {
        writeln!(
            out,
            "{:indent$}{:<width$} {:<18} # {}",
            "",
            format!(
                "{}:",
                sluice::data::pg::catalog::yaml_column_key(&p.table, &p.column)
            ),
            p.spec,
            p.reason,
            width = width + 1
        )?;
    }
    if proposals.is_empty() {
        writeln!(out, "{:indent$}{{}}  # every column is already decided", "")?;
    }
    Ok(EXIT_OK)
}
