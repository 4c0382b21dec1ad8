//! Ephemeral environments: databases on a plan's target server, each carrying a mark (owner,
//! plan, creation and expiry) in its comment, filled either by a refresh of the plan (streamed)
//! or by cloning the plan's masked template (`CREATE DATABASE … TEMPLATE`, seconds instead of a
//! stream). In: a resolved target URL, a name, a mark, a clock reading. Out: what was made,
//! listed or dropped. Only databases whose mark says sluice made them as environments are
//! ever replaced or dropped.

use std::time::{Duration, Instant};

use tokio_postgres::Client;

use crate::data::marks::{Mark, Role};
use crate::data::pg::admin::{
    databases, drop_database, drop_loading, open_marked, take_refresh_lock, unlock,
};
use crate::data::pg::catalog::sql_ident;
use crate::data::pg::guard::{SourceId, check_target};
use crate::data::pg::pg_error;
use crate::data::pg::{connect_admin, parse_url, runtime};
use crate::data::refresh::swap::{
    DISPLACED_SUFFIX, LOADING_SUFFIX, PREVIOUS_SUFFIX, check_replaceable, recover, replace,
};
use crate::error::Error;
use crate::secrets::SecretValue;

/// What must never be dropped or replaced on a target server: the plans' source databases
/// (asked of the servers by [`crate::data::pg::guard::identify`]), and, unless `same_server`, anything
/// on a source's own server.
#[derive(Debug, Clone, Default)]
pub(crate) struct Guard {
    /// The sources of the plans involved.
    pub sources: Vec<SourceId>,
    /// The plans allow a target on a source's server (`same_server: true`).
    pub same_server: bool,
}

/// Suffix of a plan's template database, beside its target: `staging` → `staging_template`.
pub(crate) const TEMPLATE_SUFFIX: &str = "_template";

/// The template database of a target database.
pub(crate) fn template_name(target_db: &str) -> String {
    format!("{target_db}{TEMPLATE_SUFFIX}")
}

/// The database a URL names.
pub(crate) fn database_of(url: &SecretValue) -> Result<String, Error> {
    parse_url(url, "target")?
        .get_dbname()
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .ok_or_else(|| Error::Usage("the target URL names no database; add /dbname to it".into()))
}

/// An environment's name must be a plain PostgreSQL identifier that leaves room for sluice's
/// suffixes and does not pose as one of sluice's own databases.
pub(crate) fn check_name(name: &str, target_db: &str) -> Result<(), Error> {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    let max = 63 - LOADING_SUFFIX.len();
    if !plain || name.len() > max {
        return Err(Error::Usage(format!(
            "`{name}` is not a usable environment name: use lowercase letters, digits, `_` and `-`, starting with a letter, at most {max} characters (e.g. pr-1234)"
        )));
    }
    for suffix in [
        LOADING_SUFFIX,
        PREVIOUS_SUFFIX,
        TEMPLATE_SUFFIX,
        DISPLACED_SUFFIX,
    ] {
        if name.ends_with(suffix) {
            return Err(Error::Usage(format!(
                "`{name}` ends in `{suffix}`, which sluice uses for its own databases; choose another name"
            )));
        }
    }
    if name == target_db || matches!(name, "postgres" | "template0" | "template1") {
        return Err(Error::Usage(format!(
            "`{name}` is the plan's target or a maintenance database, not a name for an environment"
        )));
    }
    Ok(())
}

/// `url` with its database replaced by `db`.
pub(crate) fn with_database(url: &SecretValue, db: &str) -> Result<SecretValue, Error> {
    let text = url.expose();
    if let Some(parts) = crate::data::pg::tls::UrlParts::of(text) {
        let db: String = url::form_urlencoded::byte_serialize(db.as_bytes()).collect();
        let query = parts.query.map(|q| format!("?{q}")).unwrap_or_default();
        return Ok(SecretValue::new(format!("{}/{db}{query}", parts.authority)));
    }
    // key=value form: a later key wins.
    Ok(SecretValue::new(format!("{text} dbname={db}")))
}

/// `url` for people: the password replaced by `*****` unless `show_secret`.
pub(crate) fn display_url(url: &SecretValue, show_secret: bool) -> String {
    let text = url.expose();
    if show_secret {
        return text.to_string();
    }
    if let Some(parts) = crate::data::pg::tls::UrlParts::of(text) {
        // user:password@host — the password ends at the last `@` of the authority.
        let scheme_end = parts.authority.find("://").map_or(0, |i| i + 3);
        let mut authority = parts.authority.to_string();
        if let Some(at) = authority.rfind('@')
            && let Some(colon) = authority[scheme_end..at].find(':')
        {
            authority.replace_range(scheme_end + colon + 1..at, "*****");
        }
        let query = parts.query.map(|q| {
            let pairs: Vec<String> = q
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some(("password", _)) => "password=*****".to_string(),
                    _ => pair.to_string(),
                })
                .collect();
            format!("?{}", pairs.join("&"))
        });
        return format!("{authority}{}{}", parts.path, query.unwrap_or_default());
    }
    crate::data::pg::tls::kv_pairs(text)
        .into_iter()
        .map(|(k, v)| {
            if k == "password" {
                "password=*****".to_string()
            } else {
                format!("{k}={v}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One database sluice made, as `env list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Listed {
    /// The database.
    pub name: String,
    /// Its mark.
    pub mark: Mark,
    /// Its size on disk.
    pub bytes: u64,
}

async fn listed(admin: &Client) -> Result<Vec<Listed>, Error> {
    let rows = admin
        .query(
            "select datname, shobj_description(oid, 'pg_database'), pg_database_size(oid)
               from pg_database where shobj_description(oid, 'pg_database') like 'sluice:%'
              order by datname",
            &[],
        )
        .await
        .map_err(|e| pg_error("listing sluice's databases on the target", e))?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            let comment: Option<String> = r.get(1);
            let mark = Mark::parse(comment.as_deref()?)?;
            let bytes: i64 = r.get(2);
            Some(Listed {
                name: r.get(0),
                mark,
                bytes: bytes.max(0) as u64,
            })
        })
        .collect())
}

/// Environments and templates on the server `target_url` points at.
pub(crate) fn list(target_url: &SecretValue) -> Result<Vec<Listed>, Error> {
    let target = parse_url(target_url, "target")?;
    runtime()?.block_on(async {
        let admin = connect_admin(&target).await?;
        Ok(listed(&admin)
            .await?
            .into_iter()
            .filter(|l| matches!(l.mark.role, Role::Env | Role::Template))
            .collect())
    })
}

/// What a clone did.
#[derive(Debug, Clone)]
pub(crate) struct Cloned {
    /// The template it copied.
    pub template: String,
    /// The template's mark (when it was filled).
    pub template_mark: Mark,
    /// Seconds the clone took.
    pub seconds: f64,
}

/// Fill environment `name` by cloning the plan's template, then swap it into place (an existing
/// environment of that name is replaced atomically). `Ok(None)`: the plan has no template.
pub(crate) fn clone_template(
    target_url: &SecretValue,
    name: &str,
    mark: &Mark,
    guard: &Guard,
) -> Result<Option<Cloned>, Error> {
    let started = Instant::now();
    let target = parse_url(target_url, "target")?;
    let target_db = database_of(target_url)?;
    let template = template_name(&target_db);
    runtime()?.block_on(async {
        let admin = connect_admin(&target).await?;
        let dbs = databases(&admin).await?;
        let Some(template_mark) = dbs
            .iter()
            .find(|(n, _)| *n == template)
            .and_then(|(_, c)| Mark::parse(c.as_deref()?))
            .filter(|m| m.role == Role::Template && m.plan == mark.plan)
        else {
            return Ok(None);
        };
        let loading = format!("{name}{LOADING_SUFFIX}");
        let previous = format!("{name}{PREVIOUS_SUFFIX}");
        check_target(
            &admin,
            &guard.sources,
            &[name, &loading, &previous],
            guard.same_server,
            &format!("making environment `{name}`"),
        )
        .await?;
        take_refresh_lock(&admin, name, false).await?;
        recover(&admin, name, &loading, &previous).await?;
        check_replaceable(&databases(&admin).await?, name, Role::Env, false)?;
        // A clone needs the template free of sessions; it is closed to connections, so only a
        // refresh swapping it (a moment) or another clone's bookkeeping can be in the way.
        let create = format!(
            "create database {} template {} allow_connections false",
            sql_ident(&loading),
            sql_ident(&template)
        );
        let mut attempt = 0u64;
        loop {
            match admin.batch_execute(&create).await {
                Ok(()) => break,
                Err(e) if e.code().is_some_and(|c| c.code() == "55006") && attempt < 100 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => {
                    return Err(pg_error(&format!("cloning {template} into {loading}"), e));
                }
            }
        }
        let fill = async {
            open_marked(&admin, &loading, &mark.with_role(Role::Loading)).await?;
            replace(&admin, name, mark, false).await
        };
        if let Err(e) = fill.await {
            drop_loading(&admin, &loading).await;
            return Err(e);
        }
        Ok(Some(Cloned {
            template,
            template_mark,
            seconds: started.elapsed().as_secs_f64(),
        }))
    })
}

/// The environment `name` on the server, if sluice made it; a database of that name that sluice
/// did not make as an environment is an error naming it.
async fn own_env(admin: &Client, name: &str) -> Result<Option<Mark>, Error> {
    let dbs = databases(admin).await?;
    let Some((_, comment)) = dbs.iter().find(|(n, _)| n == name) else {
        return Ok(None);
    };
    match comment.as_deref().and_then(Mark::parse) {
        Some(m) if m.role == Role::Env => Ok(Some(m)),
        _ => Err(Error::Usage(format!(
            "database `{name}` was not created by `sluice env up`; sluice drops only the environments it made. Drop it yourself if it should go"
        ))),
    }
}

/// Whether a database comment marks the loading copy of an environment (`env up` marks its
/// loading database with the environment's owner; a staging refresh's has none, and a sharded
/// load's waits between shards without a lock, so neither is a leftover of `env up`).
fn env_leftover(mark: Option<&Mark>) -> bool {
    mark.is_some_and(|m| m.role == Role::Loading && m.owner.is_some() && m.snapshot.is_none())
}

/// Drop environment `name` and what a cut-short `up` of it left behind (`<name>_sluice_new`
/// even when the environment itself was never swapped in). `Ok(false)`: there was no such
/// database. Refuses while an `up` of the environment is running.
async fn drop_env(admin: &Client, name: &str, guard: &Guard) -> Result<bool, Error> {
    let loading = format!("{name}{LOADING_SUFFIX}");
    let previous = format!("{name}{PREVIOUS_SUFFIX}");
    let exists = own_env(admin, name).await?.is_some();
    let dbs = databases(admin).await?;
    let leftover = dbs
        .iter()
        .any(|(n, c)| *n == loading && env_leftover(c.as_deref().and_then(Mark::parse).as_ref()));
    if !exists && !leftover {
        return Ok(false);
    }
    check_target(
        admin,
        &guard.sources,
        &[name, &previous, &loading],
        true,
        &format!("dropping environment `{name}`"),
    )
    .await?;
    take_refresh_lock(admin, name, false).await?;
    let dbs = databases(admin).await?;
    for db in [name.to_string(), previous, loading] {
        let ours = dbs
            .iter()
            .any(|(n, c)| *n == db && crate::data::marks::is_ours(c.as_deref()));
        if ours {
            drop_database(admin, &db).await?;
        }
    }
    unlock(admin, name).await?;
    Ok(true)
}

/// `env down`: drop environment `name` (or what a cut-short `up` of it left). `Ok(false)`:
/// there is none on this server; a database of that name that is not an environment sluice
/// made is an error.
pub(crate) fn down(target_url: &SecretValue, name: &str, guard: &Guard) -> Result<bool, Error> {
    let target = parse_url(target_url, "target")?;
    runtime()?.block_on(async {
        let admin = connect_admin(&target).await?;
        drop_env(&admin, name, guard).await
    })
}

/// What `env gc` found.
#[derive(Debug, Clone, Default)]
pub(crate) struct Collected {
    /// Environments expired at `now`.
    pub expired: Vec<Listed>,
    /// Loading copies left by an `env up` that was killed (no `up` of them is running).
    pub leftovers: Vec<Listed>,
}

/// `env gc`: the environments expired at `now` and the leftovers of interrupted `env up`s,
/// dropped unless `dry_run`.
pub(crate) fn gc(
    target_url: &SecretValue,
    now: u64,
    dry_run: bool,
    guard: &Guard,
) -> Result<Collected, Error> {
    let target = parse_url(target_url, "target")?;
    runtime()?.block_on(async {
        let admin = connect_admin(&target).await?;
        let all = listed(&admin).await?;
        let mut found = Collected::default();
        for l in all {
            if l.mark.role == Role::Env && l.mark.expired(now) {
                found.expired.push(l);
            } else if env_leftover(Some(&l.mark))
                && let Some(base) = l.name.strip_suffix(LOADING_SUFFIX)
                && !up_running(&admin, base).await?
            {
                found.leftovers.push(l);
            }
        }
        if !dry_run {
            for l in &found.expired {
                drop_env(&admin, &l.name, guard).await?;
            }
            for l in &found.leftovers {
                check_target(
                    &admin,
                    &guard.sources,
                    &[&l.name],
                    true,
                    "removing a leftover",
                )
                .await?;
                let base = l.name.strip_suffix(LOADING_SUFFIX).unwrap_or(&l.name);
                // Taken and kept until the drop: an `up` starting now waits for it.
                take_refresh_lock(&admin, base, false).await?;
                drop_database(&admin, &l.name).await?;
                unlock(&admin, base).await?;
            }
        }
        Ok(found)
    })
}

/// Whether an `up` (or a refresh) into `name` holds its lock right now.
async fn up_running(admin: &Client, name: &str) -> Result<bool, Error> {
    let free: bool = admin
        .query_one(
            "select pg_try_advisory_lock(hashtext('sluice refresh ' || $1))",
            &[&name],
        )
        .await
        .map_err(|e| pg_error("checking for a running `env up`", e))?
        .get(0);
    if free {
        unlock(admin, name).await?;
    }
    Ok(!free)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_leave_room_for_suffixes_and_never_pose_as_sluice_databases() {
        assert!(check_name("pr-1234", "staging").is_ok());
        assert!(check_name("feature_x", "staging").is_ok());
        for bad in [
            "",
            "PR-1",
            "1pr",
            "pr 1",
            "pr\"1",
            "staging",
            "postgres",
            "x_prev",
            "x_template",
            "x_sluice_new",
        ] {
            assert!(check_name(bad, "staging").is_err(), "{bad}");
        }
        assert!(check_name(&"a".repeat(52), "staging").is_ok());
        assert!(check_name(&"a".repeat(53), "staging").is_err());
    }

    #[test]
    fn urls_change_database_and_hide_passwords() {
        let url = SecretValue::new(
            "postgresql://app:s3cr%2Ft@db.internal:6432/staging?sslmode=disable&password=x".into(), // sluice:allow (a test URL)
        );
        let env = with_database(&url, "pr-7").unwrap();
        assert_eq!(
            display_url(&env, false),
            "postgresql://app:*****@db.internal:6432/pr-7?sslmode=disable&password=*****"
        );
        assert!(display_url(&env, true).contains("s3cr%2Ft"));
        let quoted = SecretValue::new("host=db password='hunter 2' dbname=staging".into());
        let shown = display_url(&quoted, false);
        assert_eq!(shown, "host=db password=***** dbname=staging");
        let kv = SecretValue::new("host=db user=app password=hunter2 dbname=staging".into());
        let env = with_database(&kv, "pr-7").unwrap();
        assert_eq!(
            display_url(&env, false),
            "host=db user=app password=***** dbname=staging dbname=pr-7"
        );
        let parsed: tokio_postgres::Config = env.expose().parse().unwrap();
        assert_eq!(parsed.get_dbname(), Some("pr-7"));
        // A Unix socket: the host is empty, the socket directory a parameter.
        let socket = SecretValue::new(
            "postgresql://app:hunter2@/staging?host=/run/postgresql&port=5433&password=x".into(),
        );
        let env = with_database(&socket, "pr-7").unwrap();
        assert_eq!(
            display_url(&env, false),
            "postgresql://app:*****@/pr-7?host=/run/postgresql&port=5433&password=*****"
        );
        let parsed: tokio_postgres::Config = env.expose().parse().unwrap();
        assert_eq!(parsed.get_dbname(), Some("pr-7"));
        assert_eq!(
            display_url(&SecretValue::new("postgres://h/db".into()), false),
            "postgres://h/db"
        );
    }
}
