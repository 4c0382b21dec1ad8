//! Ephemeral environments: databases on a plan's target server, each carrying a mark (owner,
//! plan, creation and expiry) in its comment, filled either by a refresh of the plan (streamed)
//! or by cloning the plan's masked template (`CREATE DATABASE … TEMPLATE`, seconds instead of a
//! stream). In: a resolved target URL, a name, a mark, a clock reading. Out: what was made,
//! listed or dropped. Only databases whose mark says sluice made them as environments are
//! ever replaced or dropped.

use std::time::{Duration, Instant};

use tokio_postgres::Client;

use super::catalog::sql_ident;
use super::marks::{Mark, Role};
use super::pg_error;
use super::pipeline::{
    LOADING_SUFFIX, PREVIOUS_SUFFIX, check_replaceable, connect_admin, databases, drop_database,
    drop_loading, parse_url, quote_literal, recover, replace, runtime, take_refresh_lock,
};
use crate::error::Error;
use crate::secrets::SecretValue;

/// Suffix of a plan's template database, beside its target: `staging` → `staging_template`.
pub const TEMPLATE_SUFFIX: &str = "_template";

/// The template database of a target database.
pub fn template_name(target_db: &str) -> String {
    format!("{target_db}{TEMPLATE_SUFFIX}")
}

/// The database a URL names.
pub fn database_of(url: &SecretValue) -> Result<String, Error> {
    parse_url(url, "target")?
        .get_dbname()
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .ok_or_else(|| Error::Usage("the target URL names no database; add /dbname to it".into()))
}

/// An environment's name must be a plain PostgreSQL identifier that leaves room for sluice's
/// suffixes and does not pose as one of sluice's own databases.
pub fn check_name(name: &str, target_db: &str) -> Result<(), Error> {
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
    for suffix in [LOADING_SUFFIX, PREVIOUS_SUFFIX, TEMPLATE_SUFFIX] {
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
pub fn with_database(url: &SecretValue, db: &str) -> Result<SecretValue, Error> {
    let text = url.expose();
    if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        let mut u = url::Url::parse(text).map_err(|_| {
            Error::Usage("the target URL is not a valid URL; it is not shown".into())
        })?;
        u.set_path(&format!("/{db}"));
        return Ok(SecretValue::new(u.to_string()));
    }
    // key=value form: a later key wins.
    Ok(SecretValue::new(format!("{text} dbname={db}")))
}

/// `url` for people: the password replaced by `*****` unless `show_secret`.
pub fn display_url(url: &SecretValue, show_secret: bool) -> String {
    let text = url.expose();
    if show_secret {
        return text.to_string();
    }
    if let Ok(mut u) = url::Url::parse(text)
        && matches!(u.scheme(), "postgres" | "postgresql")
    {
        if u.password().is_some() {
            let _ = u.set_password(Some("*****"));
        }
        let redacted: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "password" {
                    "*****".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        if !redacted.is_empty() {
            u.query_pairs_mut().clear().extend_pairs(redacted);
        }
        return u.to_string();
    }
    super::tls::kv_pairs(text)
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
pub struct Listed {
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
pub fn list(target_url: &SecretValue) -> Result<Vec<Listed>, Error> {
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
pub struct Cloned {
    /// The template it copied.
    pub template: String,
    /// The template's mark (when it was filled).
    pub template_mark: Mark,
    /// Seconds the clone took.
    pub seconds: f64,
}

/// Fill environment `name` by cloning the plan's template, then swap it into place (an existing
/// environment of that name is replaced atomically). `Ok(None)`: the plan has no template.
pub fn clone_template(
    target_url: &SecretValue,
    name: &str,
    mark: &Mark,
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
        take_refresh_lock(&admin, name, false).await?;
        let loading = format!("{name}{LOADING_SUFFIX}");
        recover(&admin, name, &loading, &format!("{name}{PREVIOUS_SUFFIX}")).await?;
        check_replaceable(&databases(&admin).await?, name, Role::Env)?;
        // A clone needs the template free of sessions; it is closed to connections, so only a
        // refresh swapping it (a moment) or another clone's bookkeeping can be in the way.
        let create = format!(
            "create database {} template {}",
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
            admin
                .batch_execute(&format!(
                    "alter database {db} with allow_connections true; comment on database {db} is {}",
                    quote_literal(&mark.with_role(Role::Loading).render()),
                    db = sql_ident(&loading),
                ))
                .await
                .map_err(|e| pg_error("marking the clone", e))?;
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

/// Drop environment `name` and what a cut-short `up` of it left behind. `Ok(false)`: there was
/// no such database.
async fn drop_env(admin: &Client, name: &str) -> Result<bool, Error> {
    if own_env(admin, name).await?.is_none() {
        return Ok(false);
    }
    take_refresh_lock(admin, name, false).await?;
    let dbs = databases(admin).await?;
    for db in [
        name.to_string(),
        format!("{name}{PREVIOUS_SUFFIX}"),
        format!("{name}{LOADING_SUFFIX}"),
    ] {
        let ours = dbs
            .iter()
            .any(|(n, c)| *n == db && super::marks::is_ours(c.as_deref()));
        if ours {
            drop_database(admin, &db).await?;
        }
    }
    admin
        .execute(
            "select pg_advisory_unlock(hashtext('sluice refresh ' || $1))",
            &[&name],
        )
        .await
        .map_err(|e| pg_error("releasing the environment's lock", e))?;
    Ok(true)
}

/// `env down`: drop environment `name`. Errors when there is none, or when the database of
/// that name is not an environment sluice made.
pub fn down(target_url: &SecretValue, name: &str) -> Result<(), Error> {
    let target = parse_url(target_url, "target")?;
    runtime()?.block_on(async {
        let admin = connect_admin(&target).await?;
        if drop_env(&admin, name).await? {
            Ok(())
        } else {
            Err(Error::Usage(format!(
                "there is no environment `{name}` on the target server; `sluice env list` shows them"
            )))
        }
    })
}

/// `env gc`: the environments expired at `now`, dropped unless `dry_run`.
pub fn gc(target_url: &SecretValue, now: u64, dry_run: bool) -> Result<Vec<Listed>, Error> {
    let target = parse_url(target_url, "target")?;
    runtime()?.block_on(async {
        let admin = connect_admin(&target).await?;
        let expired: Vec<Listed> = listed(&admin)
            .await?
            .into_iter()
            .filter(|l| l.mark.role == Role::Env && l.mark.expired(now))
            .collect();
        if !dry_run {
            for l in &expired {
                drop_env(&admin, &l.name).await?;
            }
        }
        Ok(expired)
    })
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
            "postgresql://app:s3cr%2Ft@db.internal:6432/staging?sslmode=disable&password=x".into(),
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
    }
}
