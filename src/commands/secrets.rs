//! `sluice run`, `export`, `render` and `sluice secrets …`: secrets of an environment, resolved
//! in it and handed to a process, a file or stdout.

use std::io::{self, IsTerminal, Write};

use crate::cli::SecretsCommand;
use crate::commands::shared::{Failure, require_config};
use crate::error::{EXIT_FINDINGS, EXIT_OK, Error};
use crate::secrets::{SecretValue, inject, resolve};

pub(crate) fn secrets_command(
    cmd: SecretsCommand,
    explicit: Option<&std::path::Path>,
    cwd: &std::path::Path,
) -> Result<i32, Failure> {
    let loaded = match require_config(explicit, cwd) {
        // `check` reports a breach of isolation as a finding: the file is well-formed.
        Err(Error::Invalid { problems })
            if matches!(cmd, SecretsCommand::Check { .. })
                && problems.iter().all(|p| p.isolation) =>
        {
            for p in &problems {
                eprintln!("problem: {p}");
            }
            return Ok(EXIT_FINDINGS);
        }
        other => other?,
    };
    let age = |env: &str| -> Result<crate::secrets::age_store::AgeStore, Error> {
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
            let values =
                resolve::Resolver::new(&loaded).values(&env, std::slice::from_ref(&name))?;
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
            note_leases();
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
            let lines = crate::secrets::audit::diff(&resolve::Resolver::new(&loaded), &a, &b)?;
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
        SecretsCommand::Check { env } => {
            let problems = crate::secrets::audit::check(&resolve::Resolver::new(&loaded), &env)?;
            for p in &problems {
                eprintln!("problem: {p}");
            }
            if problems.is_empty() {
                let scope = if env.is_empty() {
                    "every environment".to_string()
                } else {
                    format!("environment {}", env.join(", "))
                };
                println!(
                    "{}: every variable resolves in {scope}",
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

/// `sluice run --env E -- CMD`: every reference of E fetched once; the values go into CMD's
/// environment (and, with --mask-output, the secret ones are masked in its output).
pub(crate) fn run(
    args: crate::cli::RunArgs,
    explicit: Option<&std::path::Path>,
    cwd: &std::path::Path,
) -> Result<i32, Failure> {
    let loaded = require_config(explicit, cwd)?;
    let secrets = resolve::Resolver::new(&loaded);
    let resolved = match secrets.marked(&args.env, &args.only) {
        Ok(r) => r,
        Err(e) => {
            // Nothing starts: credentials issued on the way are given back at once.
            for l in crate::secrets::vault::take_leases() {
                let _ = l.revoke();
            }
            return Err(e.into());
        }
    };
    let remove = if args.keep_credentials {
        Vec::new()
    } else {
        secrets.credential_vars(&args.env)?
    };
    // Dynamic credentials issued while resolving: `run` keeps them alive and revokes them.
    let leases = crate::secrets::vault::take_leases();
    let as_files = secrets.as_files(&args.env, &args.only)?;
    let literals: Vec<String> = resolved
        .iter()
        .filter(|(_, _, secret)| !*secret)
        .map(|(k, _, _)| k.clone())
        .collect();
    let values: Vec<(String, SecretValue)> = resolved.into_iter().map(|(k, v, _)| (k, v)).collect();
    let override_existing = args.override_existing || args.pristine;
    // `as: file` values live in memory-backed files that must be removed when the command
    // ends, so sluice stays to supervise it instead of replacing itself with it.
    let files: std::sync::Mutex<Option<inject::SecretFiles>> = std::sync::Mutex::new(None);
    let mut first = true;
    let mut start = |values: &[(String, SecretValue)]| -> Result<(inject::ChildEnv, Option<Vec<SecretValue>>), Error> {
        let (file_values, plain): (Vec<_>, Vec<_>) = values
            .iter()
            .cloned()
            .partition(|(k, _)| as_files.contains(k));
        let (mut vars, kept) = inject::child_env(&plain, inject::RunOptions { override_existing });
        if !file_values.is_empty() {
            let mut guard = files.lock().map_err(|_| Error::Usage("a thread failed".into()))?;
            match guard.as_ref() {
                Some(f) => vars.extend(f.update(&file_values)?),
                None => {
                    let (f, paths) = inject::SecretFiles::write(&file_values)?;
                    vars.extend(paths);
                    *guard = Some(f);
                }
            }
        }
        if first {
            for k in kept {
                eprintln!(
                    "sluice: {k} is already set in the environment; keeping it (use --override to replace it)"
                );
            }
        }
        let mask = args.mask_output.then(|| {
            let hidden: Vec<(String, SecretValue)> = values
                .iter()
                .filter(|(k, _)| !literals.contains(k))
                .cloned()
                .collect();
            let short = crate::secrets::supervise::unmaskable(&hidden);
            if first && !short.is_empty() {
                eprintln!(
                    "sluice: --mask-output cannot mask {} (under {} characters: masking them would garble ordinary output)",
                    short.join(", "),
                    crate::secrets::supervise::MIN_MASKED_LEN
                );
            }
            hidden.into_iter().map(|(_, v)| v).collect()
        });
        first = false;
        Ok((
            inject::ChildEnv {
                set: vars,
                remove: remove.clone(),
                pristine: args.pristine,
            },
            mask,
        ))
    };
    if args.watch.watch {
        let on_change = crate::secrets::watch::parse_on_change(&args.watch.on_change)
            .map_err(|e| Error::Usage(format!("--on-change {e}")))?;
        let watch = crate::secrets::watch::Watch {
            interval: std::time::Duration::from_secs_f64(args.watch.interval.max(0.1)),
            on_change,
            grace: std::time::Duration::from_secs_f64(args.watch.grace.max(0.0)),
        };
        // The poll re-reads what can change in place; dynamic credentials stay as issued
        // (their lease keeps them alive).
        let dynamic = secrets.dynamic(&args.env, &args.only)?;
        let kept_dynamic: Vec<(String, SecretValue)> = values
            .iter()
            .filter(|(k, _)| dynamic.contains(k))
            .cloned()
            .collect();
        let watched: Vec<String> = values
            .iter()
            .map(|(k, _)| k.clone())
            .filter(|k| !dynamic.contains(k))
            .collect();
        let env_name = args.env.clone();
        let poll = || -> Result<Vec<(String, SecretValue)>, Error> {
            let mut out = if watched.is_empty() {
                Vec::new()
            } else {
                resolve::Resolver::new(&loaded).values(&env_name, &watched)?
            };
            out.extend(kept_dynamic.iter().cloned());
            out.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(out)
        };
        let refresh_files = |values: &[(String, SecretValue)]| -> Result<(), Error> {
            let file_values: Vec<(String, SecretValue)> = values
                .iter()
                .filter(|(k, _)| as_files.contains(k))
                .cloned()
                .collect();
            if let Some(f) = files.lock().ok().as_ref().and_then(|g| g.as_ref()) {
                f.update(&file_values)?;
            }
            Ok(())
        };
        let mut sorted = values;
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let done = crate::secrets::watch::run(
            &args.command,
            sorted,
            leases,
            &watch,
            crate::secrets::watch::Hooks {
                poll: &poll,
                refresh_files: &refresh_files,
                start: &mut start,
            },
        );
        drop(files);
        return Ok(finish_leases(done?, args.keep_lease));
    }
    let (env, mask) = start(&values)?;
    drop(values);
    if mask.is_some() || !leases.is_empty() || files.lock().is_ok_and(|f| f.is_some()) {
        let done = crate::secrets::supervise::supervise(&args.command, env, mask, leases, None);
        drop(files);
        return Ok(finish_leases(done?, args.keep_lease));
    }
    Err(inject::exec(&args.command, env).into())
}

/// After a supervised command: revoke its dynamic credentials (unless `keep`), then its code.
fn finish_leases((code, leases): (i32, Vec<crate::secrets::vault::Lease>), keep: bool) -> i32 {
    for l in &leases {
        if keep {
            eprintln!(
                "sluice: the credentials of {} stay valid until {} (--keep-lease)",
                l.what,
                crate::secrets::trail::rfc3339(l.expires)
            );
        } else if let Err(e) = l.revoke() {
            eprintln!(
                "sluice: could not revoke the lease of {} ({e}); the credentials live until {}",
                l.what,
                crate::secrets::trail::rfc3339(l.expires)
            );
        }
    }
    code
}

/// `sluice export --env E`.
pub(crate) fn export(
    args: crate::cli::ExportArgs,
    explicit: Option<&std::path::Path>,
    cwd: &std::path::Path,
) -> Result<i32, Failure> {
    let loaded = require_config(explicit, cwd)?;
    let values = resolve::Resolver::new(&loaded).values(&args.env, &args.only)?;
    let name = args.name.unwrap_or_else(|| format!("{}-secrets", args.env));
    inject::check_export(args.format, &values, &name)?;
    let mut text = zeroize::Zeroizing::new(Vec::new());
    inject::export(&mut *text, args.format, &values, &name)?;
    match &args.output {
        Some(path) => crate::secrets::age_store::write_private(path, &text)?,
        None => {
            let mut out = io::stdout().lock();
            out.write_all(&text)?;
            out.flush()?;
        }
    }
    note_leases();
    Ok(EXIT_OK)
}

/// Dynamic credentials handed out by `export`, `render` or `secrets get` outlive the command:
/// say until when (on stderr, never the lease id).
fn note_leases() {
    for l in crate::secrets::vault::take_leases() {
        eprintln!(
            "sluice: the credentials of {} expire at {} unless renewed (a lease of {} s{})",
            l.what,
            crate::secrets::trail::rfc3339(l.expires),
            l.duration.as_secs(),
            if l.renewable { ", renewable" } else { "" }
        );
    }
}

/// `sluice render --env E TEMPLATE` (with `--watch`: again whenever the secrets change, until
/// stopped).
pub(crate) fn render(
    env: &str,
    template: &std::path::Path,
    output: Option<&std::path::Path>,
    watch: &crate::cli::WatchArgs,
    explicit: Option<&std::path::Path>,
    cwd: &std::path::Path,
) -> Result<i32, Failure> {
    let loaded = require_config(explicit, cwd)?;
    let name = template.display().to_string();
    let text = std::fs::read_to_string(template).map_err(|e| Error::Io {
        path: template.to_path_buf(),
        source: e,
    })?;
    let wanted = crate::secrets::template::names(&name, &text)?;
    let known: Vec<String> = wanted
        .into_iter()
        .filter(|n| loaded.config.secrets.contains_key(n))
        .collect();
    let write = |values: &[(String, SecretValue)]| -> Result<(), Failure> {
        let rendered = crate::secrets::template::render(&name, &text, values)?;
        match output {
            Some(path) => crate::secrets::age_store::write_private(path, rendered.as_bytes())?,
            None => {
                let mut out = io::stdout().lock();
                out.write_all(rendered.as_bytes())?;
                out.flush()?;
            }
        }
        Ok(())
    };
    if watch.watch {
        let dynamic = resolve::Resolver::new(&loaded).dynamic(env, &known)?;
        if !dynamic.is_empty() {
            return Err(Error::Usage(format!(
                "render --watch cannot keep dynamic credentials ({}) alive; use run --watch, which renews their lease",
                dynamic.join(", ")
            ))
            .into());
        }
    }
    let values = resolve::Resolver::new(&loaded).values(env, &known)?;
    write(&values)?;
    note_leases();
    if !watch.watch {
        return Ok(EXIT_OK);
    }
    let Some(path) = output else {
        return Err(Error::Usage("render --watch needs -o FILE to write again".into()).into());
    };
    // Until SIGINT/SIGTERM: every write is atomic, so stopping at any moment leaves a whole file.
    let key = crate::secrets::watch::process_key();
    let mut last = crate::secrets::watch::digest(&key, &values);
    drop(values);
    let never = std::sync::atomic::AtomicBool::new(false);
    let interval = std::time::Duration::from_secs_f64(watch.interval.max(0.1));
    let mut failing = false;
    while crate::secrets::watch::nap(crate::secrets::watch::jittered(interval), &never) {
        match resolve::Resolver::new(&loaded).values(env, &known) {
            Ok(values) => {
                failing = false;
                let now = crate::secrets::watch::digest(&key, &values);
                if now != last {
                    write(&values)?;
                    eprintln!(
                        "sluice: --watch: the secrets changed; {} written again",
                        path.display()
                    );
                    last = now;
                }
            }
            Err(e) if !failing => {
                eprintln!(
                    "sluice: --watch: cannot resolve the secrets ({e}); keeping {} and trying again",
                    path.display()
                );
                failing = true;
            }
            Err(_) => {}
        }
    }
    Ok(EXIT_OK)
}
