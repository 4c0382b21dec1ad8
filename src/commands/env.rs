//! `sluice env up|list|down|gc`: ephemeral databases on the plans' target servers.

use std::io::{self, Write};

use crate::commands::refresh::{jobs, resolve_plan, run_refresh};
use crate::commands::shared::{Failure, clock, require_config};
use crate::data::envs;
use crate::data::marks::{Mark, Role};
use crate::error::{EXIT_OK, Error};
use crate::secrets::SecretValue;
use crate::secrets::resolve;

/// The distinct target servers of the plans to look at (one plan, or every plan), each with the
/// target URL of the first plan that points there.
pub(crate) fn target_servers(
    secrets: &resolve::Resolver<'_>,
    plan: Option<&str>,
) -> Result<Vec<(String, SecretValue)>, Failure> {
    let loaded = secrets.loaded();
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
        let r = resolve_plan(secrets, &name)?;
        let url = r.target_url(&name)?;
        let cfg = crate::data::pg::tls::endpoint(url.expose(), &format!("refresh.{name}.target"))?;
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

pub(crate) fn env_command(
    cmd: crate::cli::EnvCommand,
    explicit: Option<&std::path::Path>,
    cwd: &std::path::Path,
) -> Result<i32, Failure> {
    use crate::cli::{EnvCommand, EnvSource};
    use crate::data::marks::{human_bytes, human_span};
    let loaded = require_config(explicit, cwd)?;
    let secrets = resolve::Resolver::new(&loaded);
    let now = clock()?;
    match cmd {
        EnvCommand::Up(args) => {
            let r = resolve_plan(&secrets, &args.plan)?;
            let target_url = r.target_url(&args.plan)?;
            envs::check_name(&args.name, &envs::database_of(&target_url)?)?;
            let ttl = crate::data::marks::parse_ttl(&args.ttl)
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
                    sources: crate::data::pg::guard::identify(std::slice::from_ref(&r.source_url))?,
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
                    let settings = crate::data::refresh::pipeline::Settings {
                        name: args.plan.clone(),
                        target_url: env_url.clone(),
                        key: r.key(&args.plan)?,
                        source_url: r.source_url.clone(),
                        explain: false,
                        jobs: jobs(args.jobs, r.cfg.jobs),
                        mark: mark.clone(),
                        keep_previous: false,
                        snapshot: None,
                        shard: None,
                        same_server: r.cfg.same_server,
                        grants: r.cfg.grants,
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
            for (_, url) in target_servers(&secrets, plan.as_deref())? {
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
            let servers = target_servers(&secrets, plan.as_deref())?;
            let guard = plans_guard(&secrets, plan.as_deref())?;
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
            Err(Error::NotFound(format!(
                "there is no environment `{name}` on the plans' target servers; `sluice env list` shows them"
            ))
            .into())
        }
        EnvCommand::Gc { plan, dry_run } => {
            let mut out = io::stdout().lock();
            let mut n = 0;
            let guard = plans_guard(&secrets, plan.as_deref())?;
            for (_, url) in target_servers(&secrets, plan.as_deref())? {
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
pub(crate) fn plans_guard(
    secrets: &resolve::Resolver<'_>,
    plan: Option<&str>,
) -> Result<envs::Guard, Failure> {
    let loaded = secrets.loaded();
    let names: Vec<String> = match plan {
        Some(p) => vec![p.to_string()],
        None => loaded.config.refresh.keys().cloned().collect(),
    };
    let mut urls = Vec::new();
    for name in &names {
        urls.push(resolve_plan(secrets, name)?.source_url);
    }
    Ok(envs::Guard {
        sources: crate::data::pg::guard::identify(&urls)?,
        same_server: true,
    })
}

/// Who an environment is for, when --owner is not given.
pub(crate) fn default_owner() -> String {
    ["SLUICE_OWNER", "GITHUB_ACTOR", "USER"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".into())
}
