//! Is the target the source? Asked of the servers, never read off URLs: `localhost`,
//! `127.0.0.1`, a Unix socket and `host=… hostaddr=…` all reach one server, and a hot standby
//! holds its primary's data under the primary's system identifier.
//!
//! In: a connection to the source database and one to the target server's maintenance
//! database. Out: the source's identity ([`SourceId`]: `system_identifier` of
//! `pg_control_system()`, database OID and name) and a verdict on each database sluice is about
//! to create, replace or drop on the target. Same system and same database: refused, always.
//! Same system, another database: refused unless the plan says `same_server: true`.

use tokio_postgres::Client;

use crate::data::pg::pg_error;
use crate::data::pg::{connect, parse_url, runtime};
use crate::error::Error;
use crate::secrets::SecretValue;

/// Who the source database is, as its server says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SourceId {
    /// `pg_control_system().system_identifier`: shared by a primary and its standbys.
    pub system: String,
    /// The source database's name.
    pub database: String,
    /// Its OID (the same on a primary and its standbys).
    pub oid: u32,
}

/// The cluster's system identifier.
async fn system_identifier(client: &Client, side: &str) -> Result<String, Error> {
    Ok(client
        .query_one(
            "select system_identifier::text from pg_control_system()",
            &[],
        )
        .await
        .map_err(|e| pg_error(&format!("asking the {side} server who it is"), e))?
        .get(0))
}

/// Identify the database `client` is connected to.
pub(crate) async fn source_id(client: &Client) -> Result<SourceId, Error> {
    let system = system_identifier(client, "source").await?;
    let row = client
        .query_one(
            "select datname::text, oid from pg_database where datname = current_database()",
            &[],
        )
        .await
        .map_err(|e| pg_error("asking the source which database it is", e))?;
    Ok(SourceId {
        system,
        database: row.get(0),
        oid: row.get(1),
    })
}

/// Refuse to create, replace or drop `databases` on the target server (reached by `admin`) when
/// one of them is a source's database, or (unless `same_server`) when the target server holds
/// a source's data at all. `what` says what would have happened, for the message.
pub(crate) async fn check_target(
    admin: &Client,
    sources: &[SourceId],
    databases: &[&str],
    same_server: bool,
    what: &str,
) -> Result<(), Error> {
    if sources.is_empty() {
        return Ok(());
    }
    let system = system_identifier(admin, "target").await?;
    let names: Vec<String> = databases.iter().map(|d| d.to_string()).collect();
    let rows = admin
        .query(
            "select datname::text, oid from pg_database where datname = any($1)",
            &[&names],
        )
        .await
        .map_err(|e| pg_error("reading the target's databases", e))?;
    for source in sources.iter().filter(|s| s.system == system) {
        let hit = databases
            .iter()
            .find(|d| **d == source.database)
            .copied()
            .or_else(|| {
                rows.iter()
                    .find(|r| r.get::<_, u32>(1) == source.oid)
                    .map(|_| source.database.as_str())
            });
        if let Some(db) = hit {
            return Err(Error::Usage(format!(
                "the target server holds the source database `{db}` (same PostgreSQL system {system}, the same database or a standby's primary); {what} would destroy the source. Point the target at another server"
            )));
        }
        if !same_server {
            return Err(Error::Usage(format!(
                "the target server is the source's own server (PostgreSQL system {system}: the same cluster, or the primary of the source standby), where the source database is `{}`; {what} there is refused unless the plan's target says `same_server: true`",
                source.database
            )));
        }
    }
    Ok(())
}

/// Identify the source databases of `urls` (plans' sources), each asked once.
pub(crate) fn identify(urls: &[SecretValue]) -> Result<Vec<SourceId>, Error> {
    let endpoints = urls
        .iter()
        .map(|u| parse_url(u, "source"))
        .collect::<Result<Vec<_>, _>>()?;
    runtime()?.block_on(async {
        let mut ids: Vec<SourceId> = Vec::new();
        for e in &endpoints {
            let client = connect(e, "the source").await?;
            let id = source_id(&client).await?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        Ok(ids)
    })
}
