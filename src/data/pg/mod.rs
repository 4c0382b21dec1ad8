//! PostgreSQL, as every other room of `data` meets it: connections (with TLS, [`tls`]), the
//! catalog ([`catalog`]), the COPY codecs ([`copy`] text, [`binary`]), pg_dump's DDL ([`ddl`]),
//! the client programs ([`tools`]), snapshots ([`snapshot`]), database administration
//! ([`admin`]) and the refusal to write over a source ([`guard`]). Every connection and client
//! program registers as it starts, so a signal can cancel them ([`tls::cancel_all`],
//! [`tools::stop_children`]). Knows nothing of refreshes, plans or masking.

pub(crate) mod admin;
pub(crate) mod binary;
pub mod catalog;
pub mod copy;
pub(crate) mod ddl;
pub(crate) mod guard;
pub mod snapshot;
pub(crate) mod tls;
pub(crate) mod tools;

use tokio_postgres::Client;

use crate::error::Error;
use crate::secrets::SecretValue;
use tls::Endpoint;

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::External {
            what: "runtime".into(),
            detail: e.to_string(),
        })
}

pub(crate) fn parse_url(url: &SecretValue, side: &str) -> Result<Endpoint, Error> {
    // Errors say only which URL is wrong: it may hold a password.
    crate::data::pg::tls::endpoint(url.expose(), side)
}

pub(crate) async fn connect(endpoint: &Endpoint, what: &str) -> Result<Client, Error> {
    endpoint
        .connect()
        .await
        .map_err(|e| pg_error(&format!("connecting to {what} (the URL is not shown)"), e))
}

/// Connect to the target server's maintenance database.
pub(crate) async fn connect_admin(target: &Endpoint) -> Result<Client, Error> {
    let mut last = None;
    for db in ["postgres", "template1"] {
        let mut c = target.clone();
        c.dbname(db);
        match connect(&c, "the target server").await {
            Ok(client) => return Ok(client),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::Usage("no maintenance database".into())))
}

pub(crate) fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A database error as sluice reports it: what was being done, the server's message and its
/// SQLSTATE (so callers and users can branch on it).
pub(crate) fn pg_error(what: &str, e: tokio_postgres::Error) -> crate::error::Error {
    // The generic Display of a server error is only "db error"; say what the server said.
    let message = match e.as_db_error() {
        Some(db) => {
            let mut m = db.message().to_string();
            // Integrity (23) and data (22) errors quote row contents in their detail ("Failing
            // row contains …"): production data never reaches sluice's output, so name the
            // place instead.
            let quotes_rows = matches!(&db.code().code()[..2], "22" | "23");
            if quotes_rows {
                for (what, v) in [
                    ("table", db.table()),
                    ("column", db.column()),
                    ("constraint", db.constraint()),
                ] {
                    if let Some(v) = v {
                        m.push_str(&format!("; {what} {v}"));
                    }
                }
            } else if let Some(d) = db.detail() {
                m.push_str(&format!(" ({d})"));
            }
            if let Some(h) = db.hint() {
                m.push_str(&format!("; hint: {h}"));
            }
            m
        }
        None => {
            // "error performing TLS handshake" alone does not say why: add the causes.
            let mut m = e.to_string();
            if e.is_closed()
                && let Some(why) = tls::last_session_end()
            {
                m.push_str(&format!(" ({why})"));
            }
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                m.push_str(&format!(": {c}"));
                cause = c.source();
            }
            m
        }
    };
    crate::error::Error::Db {
        doing: what.to_string(),
        message,
        sqlstate: e.code().map(|c| c.code().to_string()),
    }
}
