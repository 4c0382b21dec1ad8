//! The swap and what makes it safe: the names sluice loads under, recovery from a run that was
//! killed (drop a half-loaded copy, finish a swap whose copy was ready, reopen a closed target),
//! which databases a run may replace, and the swap itself, step by step.

use std::time::Duration;

use tokio_postgres::Client;

use crate::data::marks::{Mark, Role, is_ours};
use crate::data::pg::admin::connectable;
use crate::data::pg::admin::databases;
use crate::data::pg::admin::drop_database;
use crate::data::pg::admin::drop_loading;
use crate::data::pg::admin::end_sessions;
use crate::data::pg::admin::set_mark;
use crate::data::pg::catalog::sql_ident;
use crate::data::pg::pg_error;
use crate::data::pg::quote_literal;
use crate::error::Error;

/// Suffix of the database a refresh loads into before the swap.
pub(crate) const LOADING_SUFFIX: &str = "_sluice_new";

/// Suffix of the previous target, kept until the next success.
pub(crate) const PREVIOUS_SUFFIX: &str = "_prev";

/// Suffix the replaced target takes for a moment when `<target>_prev` is not sluice's (an
/// adopted database, kept): it is dropped right after the swap.
pub(crate) const DISPLACED_SUFFIX: &str = "_sluice_old";

/// What [`recover`] did.
#[derive(Debug, Clone, Default)]
pub(crate) struct Recovered {
    /// Half-loaded databases dropped.
    pub removed: Vec<String>,
    /// A finished copy whose swap was cut short, swapped in (the database it now is).
    pub completed: Option<String>,
}

/// Whether `loading` is one sluice created and was killed before marking: sluice creates its
/// loading databases closed to connections and opens them only with the mark, so a closed,
/// unmarked, empty-commented `<name>_sluice_new` is a CREATE whose run died right after.
pub(crate) async fn born_here(
    admin: &Client,
    dbs: &[(String, Option<String>)],
    loading: &str,
) -> Result<bool, Error> {
    let uncommented = dbs.iter().any(|(n, c)| n == loading && c.is_none());
    let closed = connectable(admin)
        .await?
        .iter()
        .any(|(n, allowed)| n == loading && !allowed);
    Ok(uncommented && closed && loading.ends_with(LOADING_SUFFIX))
}

/// Undo or finish what a killed run left. A half-loaded database is dropped; a finished one
/// whose swap was cut short (marked `ready`) is swapped in; a swap cut short after the target
/// was closed to connections reopens it. Only databases carrying sluice's mark are touched.
pub(crate) async fn recover(
    admin: &Client,
    target_db: &str,
    loading: &str,
    previous: &str,
) -> Result<Recovered, Error> {
    let dbs = databases(admin).await?;
    let ours = |name: &str| dbs.iter().any(|(n, c)| n == name && is_ours(c.as_deref()));
    let exists = |name: &str| dbs.iter().any(|(n, _)| n == name);
    let mut done = Recovered::default();
    if exists(loading) && !ours(loading) && born_here(admin, &dbs, loading).await? {
        drop_database(admin, loading).await?;
        done.removed.push(loading.to_string());
    } else if exists(loading) {
        if !ours(loading) {
            return Err(Error::External {
                what: "postgresql".into(),
                detail: format!(
                    "database `{loading}` exists on the target but sluice did not create it; rename or drop it yourself"
                ),
            });
        }
        let mark = dbs
            .iter()
            .find(|(n, _)| n == loading)
            .and_then(|(_, c)| Mark::parse(c.as_deref()?));
        match mark {
            Some(m) if m.ready.is_some() && m.snapshot.is_none() => {
                let role = m.ready.unwrap_or(Role::Current);
                let finished = Mark {
                    ready: None,
                    ..m.with_role(role)
                };
                // As the interrupted run would have: staging keeps its previous copy, an
                // environment or template does not.
                replace(admin, target_db, &finished, role == Role::Current).await?;
                done.completed = Some(target_db.to_string());
            }
            _ => {
                drop_database(admin, loading).await?;
                done.removed.push(loading.to_string());
            }
        }
    }
    let dbs = databases(admin).await?;
    let ours = |name: &str| dbs.iter().any(|(n, c)| n == name && is_ours(c.as_deref()));
    let exists = |name: &str| dbs.iter().any(|(n, _)| n == name);
    let displaced = format!("{target_db}{DISPLACED_SUFFIX}");
    if exists(target_db) && ours(&displaced) {
        drop_database(admin, &displaced).await?;
        done.removed.push(displaced);
    }
    if !exists(target_db) && ours(previous) {
        admin
            .batch_execute(&format!(
                "alter database {} rename to {}; alter database {} with allow_connections true",
                sql_ident(previous),
                sql_ident(target_db),
                sql_ident(target_db)
            ))
            .await
            .map_err(|e| pg_error(&format!("restoring {target_db} from {previous}"), e))?;
    }
    // A swap cut short between closing the target and the rename left it closed.
    let closed = connectable(admin)
        .await?
        .into_iter()
        .any(|(n, allowed)| n == target_db && !allowed);
    let role = dbs
        .iter()
        .find(|(n, _)| n == target_db)
        .and_then(|(_, c)| Mark::parse(c.as_deref()?))
        .map(|m| m.role);
    if closed && matches!(role, Some(Role::Current | Role::Env | Role::Previous)) {
        admin
            .batch_execute(&format!(
                "alter database {} with allow_connections true",
                sql_ident(target_db)
            ))
            .await
            .map_err(|e| pg_error(&format!("reopening {target_db} to connections"), e))?;
    }
    Ok(done)
}

/// An environment or template replaces only a database sluice made for the same purpose; the
/// staging target replaces a database sluice made, or (with `adopt`) one it did not make, which
/// is then kept unmarked as `<name>_prev`. A `<name>_prev` sluice did not make is never dropped,
/// so it stops the refresh before anything is loaded.
pub(crate) fn check_replaceable(
    dbs: &[(String, Option<String>)],
    target_db: &str,
    role: Role,
    adopt: bool,
) -> Result<(), Error> {
    let previous = format!("{target_db}{PREVIOUS_SUFFIX}");
    let foreign_previous = dbs
        .iter()
        .any(|(n, c)| *n == previous && !is_ours(c.as_deref()));
    let Some((_, comment)) = dbs.iter().find(|(n, _)| n == target_db) else {
        return Ok(());
    };
    if role == Role::Current {
        if is_ours(comment.as_deref()) {
            return Ok(());
        }
        if adopt && foreign_previous {
            return Err(Error::Usage(format!(
                "database `{target_db}` is to be adopted, but `{previous}`, where it would be kept, is not sluice's either; sluice never drops either. Rename or drop one of them yourself, then run again"
            )));
        }
        if adopt {
            return Ok(());
        }
        return Err(Error::Usage(format!(
            "database `{target_db}` exists on the target server and sluice did not make it; sluice replaces only its own databases. Pass --adopt to replace it once (it is kept, unmarked, as `{previous}`, and sluice never drops it), or drop or rename it yourself"
        )));
    }
    let found = comment.as_deref().and_then(Mark::parse).map(|m| m.role);
    if found == Some(role) {
        return Ok(());
    }
    let what = match role {
        Role::Env => "an environment made by `sluice env up`",
        _ => "a template made by `sluice refresh --template`",
    };
    Err(Error::Usage(format!(
        "database `{target_db}` exists on the target server and is not {what}; sluice replaces only its own databases. Choose another name, or drop or rename it yourself"
    )))
}

/// Swap `<target_db>_sluice_new` into place with `mark`; a template stays closed to
/// connections (so clones never wait on a session), and the replaced database is dropped
/// unless `keep_previous` (only if sluice made it). Returns the name the replaced database is
/// kept under.
pub(crate) async fn replace(
    admin: &Client,
    target_db: &str,
    mark: &Mark,
    keep_previous: bool,
) -> Result<Option<String>, Error> {
    let loading = format!("{target_db}{LOADING_SUFFIX}");
    let previous = format!("{target_db}{PREVIOUS_SUFFIX}");
    let Some(previous) = swap(admin, target_db, &loading, &previous, mark).await? else {
        return Ok(None);
    };
    let previous_ours = databases(admin)
        .await?
        .iter()
        .any(|(n, c)| *n == previous && is_ours(c.as_deref()));
    if keep_previous || !previous_ours {
        return Ok(Some(previous));
    }
    end_sessions(admin, std::slice::from_ref(&previous)).await?;
    drop_database(admin, &previous).await?;
    Ok(None)
}

/// Replace `target_db` by `loading`; the old one becomes `previous` (or, when `previous` is a
/// database sluice did not make, is dropped), and `loading` takes `mark`. Returns where the
/// old target is kept. Signals wait for the swap to end (see [`crate::data::refresh::interrupt`]).
pub(crate) async fn swap(
    admin: &Client,
    target_db: &str,
    loading: &str,
    previous: &str,
    mark: &Mark,
) -> Result<Option<String>, Error> {
    use crate::data::refresh::interrupt::{Stage, set_stage, stage};
    let resume = stage();
    set_stage(Stage::Swapping);
    let swapped = swap_steps(admin, target_db, loading, previous, mark).await;
    set_stage(resume);
    swapped
}

/// The swap, step by step. A kill at any step leaves the old or the new database under the
/// target name; from the `ready` mark on, the next run completes the swap instead of
/// discarding the copy.
pub(crate) async fn swap_steps(
    admin: &Client,
    target_db: &str,
    loading: &str,
    previous: &str,
    mark: &Mark,
) -> Result<Option<String>, Error> {
    use crate::data::refresh::interrupt::fault;
    let dbs = databases(admin).await?;
    let exists = |name: &str| dbs.iter().any(|(n, _)| n == name);
    let ours = |name: &str| dbs.iter().any(|(n, c)| n == name && is_ours(c.as_deref()));
    let had_target = exists(target_db);
    let target_ours = ours(target_db);
    // A `<target>_prev` sluice did not make (an adopted database) is never dropped: the
    // replaced copy goes aside for a moment and is dropped after the swap instead.
    let displaced = format!("{target_db}{DISPLACED_SUFFIX}");
    let foreign_previous = exists(previous) && !ours(previous);
    if foreign_previous && had_target && !target_ours {
        return Err(Error::External {
            what: "postgresql".into(),
            detail: format!(
                "neither `{target_db}` nor `{previous}` was made by sluice; sluice drops neither, so the loaded copy was discarded. Rename or drop one of them yourself, then run again"
            ),
        });
    }
    let previous = if foreign_previous {
        displaced.as_str()
    } else {
        previous
    };
    for leftover in [previous, displaced.as_str()] {
        if ours(leftover) {
            end_sessions(admin, &[leftover.to_string()]).await?;
            drop_database(admin, leftover).await?;
        }
    }
    // 1. The copy is complete: from here a swap cut short is finished by the next run.
    let ready = Mark {
        ready: Some(mark.role),
        ..mark.with_role(Role::Loading)
    };
    set_mark(admin, loading, &ready).await?;
    fault("swap-ready");
    // 2. Close both to new connections, so that ending their sessions sticks: under a
    // connection storm clients otherwise reconnect between the end and the rename.
    let mut close = format!(
        "alter database {} with allow_connections false;",
        sql_ident(loading)
    );
    if had_target {
        close.push_str(&format!(
            "alter database {} with allow_connections false;",
            sql_ident(target_db)
        ));
    }
    admin
        .batch_execute(&close)
        .await
        .map_err(|e| pg_error(&format!("closing {target_db} to new connections"), e))?;
    fault("swap-closed");
    // 3. One transaction renames both and opens the new target (a template stays closed).
    let mut sql = String::from("begin;");
    if had_target {
        sql.push_str(&format!(
            "alter database {t} rename to {p};alter database {p} with allow_connections true;",
            t = sql_ident(target_db),
            p = sql_ident(previous),
        ));
        // An adopted database keeps its own comment: sluice never marks what it did not make.
        if target_ours {
            sql.push_str(&format!(
                "comment on database {} is {};",
                sql_ident(previous),
                quote_literal(&mark.with_role(Role::Previous).render())
            ));
        }
    }
    sql.push_str(&format!(
        "alter database {l} rename to {t};comment on database {t} is {m};alter database {t} with allow_connections {open};commit;",
        l = sql_ident(loading),
        t = sql_ident(target_db),
        m = quote_literal(&mark.render()),
        open = mark.role != Role::Template,
    ));
    let both = [target_db.to_string(), loading.to_string()];
    let mut attempt = 0;
    loop {
        end_sessions(admin, &both).await?;
        fault("swap-ended");
        match admin.batch_execute(&sql).await {
            Ok(()) => break,
            Err(e) => {
                let _ = admin.batch_execute("rollback").await;
                // A session that slipped in before the close (or a superuser's) holds on.
                let busy = e.code().is_some_and(|c| c.code() == "55006");
                attempt += 1;
                if !busy || attempt >= 50 {
                    if had_target {
                        let _ = admin
                            .batch_execute(&format!(
                                "alter database {} with allow_connections true",
                                sql_ident(target_db)
                            ))
                            .await;
                    }
                    drop_loading(admin, loading).await;
                    return Err(pg_error(&format!("swapping {loading} into {target_db}"), e));
                }
                tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
            }
        }
    }
    fault("swap-renamed");
    if !had_target {
        return Ok(None);
    }
    if foreign_previous {
        end_sessions(admin, std::slice::from_ref(&displaced)).await?;
        drop_database(admin, &displaced).await?;
        return Ok(None);
    }
    Ok(Some(previous.to_string()))
}
