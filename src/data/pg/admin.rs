//! Database administration on a target server: list databases with their comments (sluice's
//! marks) and whether they accept connections, create-and-mark, drop, end sessions, and the
//! advisory lock that keeps two refreshes of one target apart.

use std::time::Duration;

use tokio_postgres::Client;

use crate::data::marks::Mark;
use crate::data::pg::catalog::sql_ident;
use crate::data::pg::pg_error;
use crate::data::pg::quote_literal;
use crate::error::Error;

/// Databases on the target server: name → comment.
pub(crate) async fn databases(admin: &Client) -> Result<Vec<(String, Option<String>)>, Error> {
    Ok(admin
        .query(
            "select datname, shobj_description(oid, 'pg_database') from pg_database",
            &[],
        )
        .await
        .map_err(|e| pg_error("listing databases on the target", e))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// Databases on the target server with whether they accept connections.
pub(crate) async fn connectable(admin: &Client) -> Result<Vec<(String, bool)>, Error> {
    Ok(admin
        .query("select datname::text, datallowconn from pg_database", &[])
        .await
        .map_err(|e| pg_error("listing databases on the target", e))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// One refresh at a time per target database; the shards of one sharded load share the lock.
pub(crate) async fn take_refresh_lock(
    admin: &Client,
    target_db: &str,
    shared: bool,
) -> Result<(), Error> {
    let function = if shared {
        "pg_try_advisory_lock_shared"
    } else {
        "pg_try_advisory_lock"
    };
    let lock: bool = admin
        .query_one(
            &format!("select {function}(hashtext('sluice refresh ' || $1))"),
            &[&target_db],
        )
        .await
        .map_err(|e| pg_error("taking the refresh lock", e))?
        .get(0);
    if lock {
        return Ok(());
    }
    Err(Error::External {
        what: "postgresql".into(),
        detail: format!("another refresh into `{target_db}` is running; try again when it ends"),
    })
}

/// Mark a database sluice just created closed, and open it, in one transaction.
pub(crate) async fn open_marked(admin: &Client, db: &str, mark: &Mark) -> Result<(), Error> {
    admin
        .batch_execute(&format!(
            "begin; comment on database {db} is {}; alter database {db} with allow_connections true; commit",
            quote_literal(&mark.render()),
            db = sql_ident(db),
        ))
        .await
        .map_err(|e| pg_error(&format!("marking {db}"), e))
}

pub(crate) async fn set_mark(admin: &Client, db: &str, mark: &Mark) -> Result<(), Error> {
    admin
        .batch_execute(&format!(
            "comment on database {} is {}",
            sql_ident(db),
            quote_literal(&mark.render())
        ))
        .await
        .map_err(|e| pg_error(&format!("marking {db}"), e))
}

/// Drop a database (sessions on it are ended by `WITH (FORCE)`); gone already is fine.
pub(crate) async fn drop_database(admin: &Client, db: &str) -> Result<(), Error> {
    admin
        .batch_execute(&format!(
            "drop database if exists {} with (force)",
            sql_ident(db)
        ))
        .await
        .map_err(|e| pg_error(&format!("dropping {db}"), e))
}

/// Drop a half-loaded database on the way out of a failure: the failure is what is reported.
pub(crate) async fn drop_loading(admin: &Client, loading: &str) {
    let _ = drop_database(admin, loading).await;
}

/// End every other session on `databases` (autovacuum workers included) and wait until they are
/// gone, polling briefly: DROP and RENAME would otherwise wait or fail on them.
pub(crate) async fn end_sessions(admin: &Client, databases: &[String]) -> Result<(), Error> {
    let names: Vec<&str> = databases.iter().map(String::as_str).collect();
    admin
        .execute(
            "select pg_terminate_backend(pid) from pg_stat_activity where datname = any($1) and pid <> pg_backend_pid()",
            &[&names],
        )
        .await
        .map_err(|e| pg_error(&format!("ending sessions on {}", names.join(", ")), e))?;
    for _ in 0..500 {
        let left: i64 = admin
            .query_one(
                "select count(*) from pg_stat_activity where datname = any($1) and pid <> pg_backend_pid()",
                &[&names],
            )
            .await
            .map_err(|e| pg_error("waiting for sessions to end", e))?
            .get(0);
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Release the refresh lock of `name` taken by [`take_refresh_lock`].
pub(crate) async fn unlock(admin: &Client, name: &str) -> Result<(), Error> {
    admin
        .execute(
            "select pg_advisory_unlock(hashtext('sluice refresh ' || $1))",
            &[&name],
        )
        .await
        .map_err(|e| pg_error("releasing the environment's lock", e))?;
    Ok(())
}
