//! Snapshots: one exported by a REPEATABLE READ, READ ONLY transaction, adopted by every other
//! connection of a refresh (and by other processes: `sluice snapshot`), so all reads see one
//! moment of the source. Nothing is written to the source.

use tokio_postgres::{Client, IsolationLevel, Transaction};

use crate::data::pg::catalog::{self, Catalog};
use crate::data::pg::connect;
use crate::data::pg::parse_url;
use crate::data::pg::pg_error;
use crate::data::pg::runtime;
use crate::error::Error;
use crate::secrets::SecretValue;

/// Open the refresh's snapshot on `client`: a REPEATABLE READ, READ ONLY transaction whose
/// snapshot id other connections adopt with [`adopt_snapshot`]. Nothing is written to the source.
pub async fn export_snapshot(client: &mut Client) -> Result<(Transaction<'_>, String), Error> {
    let tx = read_only_snapshot_tx(client, "starting the snapshot transaction").await?;
    let id: String = tx
        .query_one("select pg_export_snapshot()", &[])
        .await
        .map_err(|e| pg_error("exporting the snapshot", e))?
        .get(0);
    Ok((tx, id))
}

/// Start a worker transaction on `client` that sees exactly the snapshot `id`.
pub async fn adopt_snapshot<'a>(
    client: &'a mut Client,
    id: &str,
) -> Result<Transaction<'a>, Error> {
    // Snapshot ids are server-generated (`00000003-0000001B-1`); reject anything else.
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        return Err(Error::Usage(format!("`{id}` is not a snapshot id")));
    }
    let tx = read_only_snapshot_tx(client, "starting a worker transaction").await?;
    tx.batch_execute(&format!("set transaction snapshot '{id}'"))
        .await
        .map_err(|e| pg_error(&format!("adopting snapshot {id}"), e))?;
    Ok(tx)
}

/// Read the source catalog (under a fresh snapshot) so a plan can be built or explained.
pub fn read_catalog(source_url: &SecretValue) -> Result<Catalog, Error> {
    let config = parse_url(source_url, "source")?;
    runtime()?.block_on(async {
        let mut client = connect(&config, "the source").await?;
        let (tx, _) = export_snapshot(&mut client).await?;
        catalog::load(&tx).await
    })
}

/// Export a snapshot of the source and hold it while `while_held` runs with its ID: the shards
/// of one refresh (`--snapshot ID --shard i/N`) adopt it from anywhere that reaches the source.
pub fn hold_snapshot<R>(
    source_url: &SecretValue,
    while_held: impl FnOnce(&str) -> R,
) -> Result<R, Error> {
    let config = parse_url(source_url, "source")?;
    runtime()?.block_on(async {
        let mut client = connect(&config, "the source").await?;
        let (tx, id) = export_snapshot(&mut client).await?;
        let out = tokio::task::block_in_place(|| while_held(&id));
        drop(tx);
        Ok(out)
    })
}

/// A REPEATABLE READ, READ ONLY transaction: what every reader of a refresh runs in.
pub(crate) async fn read_only_snapshot_tx<'a>(
    client: &'a mut Client,
    what: &str,
) -> Result<Transaction<'a>, Error> {
    client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(|e| pg_error(what, e))
}
