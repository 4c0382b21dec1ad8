//! `sluice refresh`, `verify`, `classify` and `snapshot`: a plan resolved (presets loaded,
//! URLs and key fetched from their stores) and handed to `data`.

use std::io::{self, IsTerminal, Write};

use crate::commands::shared::{Failure, clock, require_config};
use crate::data::envs;
use crate::data::marks::{Mark, Role};
use crate::error::{EXIT_FINDINGS, EXIT_OK, Error};
use crate::fsio::write_atomic;
use crate::secrets::{SecretValue, resolve};

/// A plan with everything resolved: presets loaded, URLs and key fetched from their stores.
pub(crate) struct ResolvedPlan<'a> {
    /// Resolves the plan's URLs and key: every reference once per command.
    pub(crate) secrets: &'a resolve::Resolver<'a>,
    pub(crate) file: String,
    pub(crate) cfg: &'a crate::config::refresh::RefreshPlan,
    pub(crate) presets: Vec<crate::data::mask::presets::Presets>,
    pub(crate) source_url: SecretValue,
}

pub(crate) fn resolve_plan<'a>(
    secrets: &'a resolve::Resolver<'a>,
    name: &str,
) -> Result<ResolvedPlan<'a>, Failure> {
    use crate::data::mask::presets::Presets;
    let loaded = secrets.loaded();
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
    let source_url = secrets.setting(
        cfg.source.env.as_deref(),
        &cfg.source.url,
        &format!("{file}: refresh.{name}.source.url"),
    )?;
    Ok(ResolvedPlan {
        secrets,
        file,
        cfg,
        presets,
        source_url,
    })
}

impl ResolvedPlan<'_> {
    pub(crate) fn target_url(&self, name: &str) -> Result<SecretValue, Error> {
        self.secrets.setting(
            self.cfg.target.env.as_deref(),
            &self.cfg.target.url,
            &format!("{}: refresh.{name}.target.url", self.file),
        )
    }

    pub(crate) fn key(&self, name: &str) -> Result<SecretValue, Error> {
        let at = format!("{}: refresh.{name}.masking.key", self.file);
        let key =
            self.secrets
                .setting(self.cfg.source.env.as_deref(), &self.cfg.masking.key, &at)?;
        crate::data::mask::key::check_key(key.expose().as_bytes()).map_err(|why| {
            // A literal key (no `secret:`) is itself the secret: name only a reference.
            let from = match self.cfg.masking.key.strip_prefix("secret:") {
                Some(var) => format!(" (variable `{var}`)"),
                None => String::new(),
            };
            Error::Usage(format!("{at}{from}: {why}"))
        })?;
        Ok(key)
    }

    pub(crate) fn build(
        &self,
        name: &str,
        catalog: &crate::data::pg::catalog::Catalog,
    ) -> Result<crate::data::refresh::plan::Plan, Error> {
        crate::data::refresh::plan::build(name, self.cfg, &self.file, &self.presets, catalog)
    }
}

/// Check a signed refresh report against the plan's public key: `Ok(Err(why))` when it does
/// not hold, `Err` when it cannot be checked at all (no file, no public key configured).
fn check_report(
    r: &ResolvedPlan<'_>,
    loaded: &crate::config::Loaded,
    plan: &str,
    path: &std::path::Path,
) -> Result<Result<String, String>, Error> {
    let Some(signing) = &r.cfg.signing else {
        return Err(Error::Usage(format!(
            "{}: refresh.{plan} has no `signing:` (key and public_key) to check a report against",
            r.file
        )));
    };
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).map_err(|e| Error::Io {
            path: p.to_path_buf(),
            source: e,
        })
    };
    let key_path = loaded.relative(&signing.public_key);
    let key = crate::data::refresh::signing::public_key(&read(&key_path)?)
        .map_err(|why| Error::Usage(format!("{}: {why}", key_path.display())))?;
    let report: serde_json::Value = serde_json::from_str(&read(path)?)
        .map_err(|e| Error::Usage(format!("{}: not a refresh report ({e})", path.display())))?;
    if let Err(why) = crate::data::refresh::signing::check(&report, &key) {
        return Ok(Err(why));
    }
    if report.get("plan").and_then(|p| p.as_str()) != Some(plan) {
        return Ok(Err(format!(
            "signed, but for plan `{}`",
            report.get("plan").and_then(|p| p.as_str()).unwrap_or("?")
        )));
    }
    let tables = report["tables"].as_array().map_or(0, Vec::len);
    let masked: usize = report["tables"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|t| t["masked_columns"].as_u64())
                .sum::<u64>() as usize
        })
        .unwrap_or(0);
    Ok(Ok(format!(
        "signature valid (ed25519); {tables} table(s), {masked} masked column(s)"
    )))
}

pub(crate) fn verify_command(
    plan: &str,
    sample: usize,
    json: bool,
    signed_report: Option<&std::path::Path>,
    explicit: Option<&std::path::Path>,
    cwd: &std::path::Path,
) -> Result<i32, Failure> {
    let loaded = require_config(explicit, cwd)?;
    let secrets = resolve::Resolver::new(&loaded);
    let r = resolve_plan(&secrets, plan)?;
    let report_check = match signed_report {
        Some(path) => Some((path, check_report(&r, &loaded, plan, path)?)),
        None => None,
    };
    if let Some((path, Err(why))) = &report_check {
        writeln!(
            io::stderr().lock(),
            "report    {}: signature INVALID: {why}",
            path.display()
        )?;
        return Ok(EXIT_FINDINGS);
    }
    let verdict = crate::data::verify::verify(
        &r.source_url,
        &r.target_url(plan)?,
        &r.key(plan)?,
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
        if let Some((path, Ok(what))) = &report_check {
            writeln!(out, "report    {}: {what}", path.display())?;
        }
        for c in &verdict.counts {
            let note = if c.source == c.target {
                ""
            } else if c.subset && c.target <= c.source {
                "  (a subset)"
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
            let status = if k.orphans == 0 && k.not_valid_orphans > 0 {
                format!(
                    "ok (NOT VALID: {} row(s) point at nothing, as in the source)",
                    k.not_valid_orphans
                )
            } else if k.orphans == 0 {
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
        let sw = &verdict.sweep;
        if sw.values > 0 {
            writeln!(
                out,
                "sweep     {} sampled source value(s) of {} masked column(s) looked for in {} other column(s): {}",
                sw.values,
                sw.from.len(),
                sw.columns,
                if sw.found.is_empty() {
                    "none found"
                } else {
                    "FOUND"
                }
            )?;
        }
        for h in &sw.found {
            writeln!(
                out,
                "sweep     {:<40} LEAK: {} row(s) hold source values of masked columns",
                h.column, h.rows
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

pub(crate) fn refresh_command(
    args: crate::cli::RefreshArgs,
    explicit: Option<&std::path::Path>,
    cwd: &std::path::Path,
) -> Result<i32, Failure> {
    use crate::data::refresh::{pipeline, progress};
    let loaded = require_config(explicit, cwd)?;
    let secrets = resolve::Resolver::new(&loaded);
    let r = resolve_plan(&secrets, &args.plan)?;
    let build = |catalog: &crate::data::pg::catalog::Catalog| r.build(&args.plan, catalog);
    if args.dry_run {
        let catalog = crate::data::pg::snapshot::read_catalog(&r.source_url)?;
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
                use crate::data::mask::{Transform, parse::transform_name};
                let how = match &c.transform {
                    None => "keep".to_string(),
                    Some(Transform::Json { paths }) => {
                        format!("json ({} path(s))", paths.len())
                    }
                    Some(tr @ (Transform::Keep | Transform::Null | Transform::Constant(_))) => {
                        transform_name(tr)
                    }
                    Some(tr) => format!(
                        "{}  domain {}{}",
                        transform_name(tr),
                        c.domain,
                        if c.unique { ", unique" } else { "" }
                    ),
                };
                writeln!(out, "  {:<30} {how}", c.name)?;
                if let Some(Transform::Json { paths }) = &c.transform {
                    for p in paths {
                        writeln!(
                            out,
                            "    {:<28} {}  domain {}",
                            p.path,
                            transform_name(&p.transform),
                            p.domain
                        )?;
                    }
                }
            }
        }
        for t in &plan.schema_only {
            writeln!(out, "{t}  schema only")?;
        }
        for (t, c) in &plan.unclassified {
            writeln!(
                out,
                "warning: {t}.{} is not classified and would be copied unmasked",
                crate::data::pg::catalog::quote_ident(c)
            )?;
        }
        for w in &plan.warnings {
            writeln!(out, "warning: {w}")?;
        }
        return Ok(EXIT_OK);
    }
    let mut target_url = r.target_url(&args.plan)?;
    let mut mark = Mark::new(Role::Current, &args.plan, clock()?);
    if args.template {
        let db = envs::database_of(&target_url)?;
        target_url = envs::with_database(&target_url, &envs::template_name(&db))?;
        mark.role = Role::Template;
    }
    let settings = pipeline::Settings {
        name: args.plan.clone(),
        target_url,
        key: r.key(&args.plan)?,
        source_url: r.source_url.clone(),
        explain: args.explain,
        jobs: jobs(args.jobs, r.cfg.jobs),
        keep_previous: !args.template,
        mark,
        snapshot: args.snapshot.clone(),
        shard: args
            .shard
            .as_deref()
            .map(crate::data::refresh::tasks::Shard::parse)
            .transpose()?,
        same_server: r.cfg.same_server,
        grants: r.cfg.grants,
        adopt: args.adopt,
    };
    // A signing key is fetched before anything moves: a bad one stops the run early.
    let signing_key = match (&args.report, &r.cfg.signing) {
        (Some(_), Some(s)) => Some(r.secrets.setting(
            r.cfg.source.env.as_deref(),
            &s.key,
            &format!("{}: refresh.{}.signing.key", r.file, args.plan),
        )?),
        _ => None,
    };
    if let Some(key) = &signing_key {
        crate::data::refresh::signing::sign(&serde_json::json!({}), key.expose()).map_err(
            |why| {
                Error::Usage(format!(
                    "{}: refresh.{}.signing.key: {why}",
                    r.file, args.plan
                ))
            },
        )?;
    }
    let report = run_refresh(&r, &args.plan, &settings)?;
    if let Some(path) = &args.report {
        let mut value = serde_json::to_value(&report).unwrap_or_default();
        if let Some(key) = &signing_key {
            value = crate::data::refresh::signing::sign(&value, key.expose())
                .map_err(|why| Error::Usage(format!("signing the report: {why}")))?;
        }
        let json = serde_json::to_vec_pretty(&value).unwrap_or_default();
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
pub(crate) fn jobs(flag: Option<u16>, plan: Option<usize>) -> usize {
    flag.map(usize::from)
        .or(plan)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
}

/// Run a refresh with progress on stderr.
pub(crate) fn run_refresh(
    r: &ResolvedPlan<'_>,
    name: &str,
    settings: &crate::data::refresh::pipeline::Settings,
) -> Result<crate::data::refresh::pipeline::Report, Error> {
    use crate::data::refresh::{pipeline, progress};
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
                    crate::data::pg::catalog::quote_ident(c)
                )));
            }
            for w in &plan.warnings {
                events.event(pipeline::Event::Step(format!("warning: {w}")));
            }
            Ok(plan)
        },
        std::sync::Arc::new(move |e| renderer.event(e)),
    )
}

pub(crate) fn snapshot_command(
    plan: &str,
    command: Vec<std::ffi::OsString>,
    explicit: Option<&std::path::Path>,
    cwd: &std::path::Path,
) -> Result<i32, Failure> {
    let loaded = require_config(explicit, cwd)?;
    let secrets = resolve::Resolver::new(&loaded);
    let r = resolve_plan(&secrets, plan)?;
    crate::data::pg::snapshot::hold_snapshot(&r.source_url, |id| -> Result<i32, Failure> {
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
            .map_err(|e| Error::spawn(&command[0], &e))?;
        use std::os::unix::process::ExitStatusExt;
        // A command killed by a signal exits as a shell reports it: 128 + the signal.
        Ok(status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
    })?
}

/// A transform's compact form as a YAML value that reads back as that text: `null`, `true`, an
/// empty text, a trailing `:` or a leading indicator are single-quoted.
fn yaml_scalar(spec: &str) -> String {
    let plain = !spec.is_empty()
        && !matches!(
            spec.to_ascii_lowercase().as_str(),
            "null" | "~" | "true" | "false" | "yes" | "no" | "on" | "off"
        )
        && !spec.starts_with(|c: char| "!&*{}[]|>'\"%@`#,?-: ".contains(c))
        && !spec.ends_with(':')
        && !spec.contains(": ")
        && !spec.contains(" #");
    if plain {
        spec.to_string()
    } else {
        format!("'{}'", spec.replace('\'', "''"))
    }
}

pub(crate) fn classify_command(
    plan: Option<String>,
    env: Option<String>,
    var: Option<String>,
    url: Option<String>,
    sample: usize,
    explicit: Option<&std::path::Path>,
    cwd: &std::path::Path,
) -> Result<i32, Failure> {
    use crate::data::classify;
    let mut out = io::stdout().lock();
    let indent = if plan.is_some() { 8 } else { 4 };
    let proposals = match (plan, env, var, url) {
        (Some(name), ..) => {
            let loaded = require_config(explicit, cwd)?;
            let secrets = resolve::Resolver::new(&loaded);
            let r = resolve_plan(&secrets, &name)?;
            let decided: Vec<_> = r
                .cfg
                .masking
                .columns
                .keys()
                .filter_map(|k| crate::data::pg::catalog::parse_column_key(k).ok())
                .collect();
            let skip = |t: &crate::data::pg::catalog::QualifiedName, c: &str| {
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
            let url = resolve::Resolver::new(&loaded).setting(
                Some(&env),
                &format!("secret:{var}"),
                "--var",
            )?;
            let p = classify::classify_database(
                url.expose(),
                &[crate::data::mask::presets::Presets::builtin()?],
                sample,
                &|_, _| false,
            )?;
            writeln!(out, "masking:\n  columns:")?;
            p
        }
        (None, None, None, Some(u)) => {
            let p = classify::classify_database(
                &u,
                &[crate::data::mask::presets::Presets::builtin()?],
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
        .map(|p| crate::data::pg::catalog::yaml_column_key(&p.table, &p.column).len())
        .max()
        .unwrap_or(0);
    for p in &proposals {
        writeln!(
            out,
            "{:indent$}{:<width$} {:<18} # {}",
            "",
            format!(
                "{}:",
                crate::data::pg::catalog::yaml_column_key(&p.table, &p.column)
            ),
            yaml_scalar(&p.spec),
            p.reason,
            width = width + 1
        )?;
    }
    if proposals.is_empty() {
        writeln!(out, "{:indent$}{{}}  # every column is already decided", "")?;
    }
    Ok(EXIT_OK)
}
