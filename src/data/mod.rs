//! Moving production data into staging (the `refresh` capability). Pure cores: the COPY text
//! codec ([`copy`]), the keyed masking transforms ([`mask`]), presets and proposals
//! ([`classify`]) and the plan ([`plan`]: config x catalog, coverage). At the edges: the catalog
//! reader ([`catalog`]), one table's stream ([`stream`]) and the whole refresh ([`pipeline`]:
//! snapshot, schema, parallel streams, atomic swap), ephemeral environments and templates
//! ([`envs`], with the database marks of [`marks`]).

pub mod binary;
pub mod catalog;
pub mod classify;
pub mod copy;
pub mod ddl;
pub mod envs;
pub mod guard;
pub mod interrupt;
pub mod marks;
pub mod mask;
pub mod pipeline;
pub mod plan;
pub mod progress;
pub mod spill;
pub mod stream;
pub mod structured;
pub mod subset;
pub mod subset_pg;
pub mod tls;
pub mod verify;

/// A database error as sluice reports it: what was being done, the server's message and its
/// SQLSTATE (so callers and users can branch on it).
pub(crate) fn pg_error(what: &str, e: tokio_postgres::Error) -> crate::error::Error {
    let code = e
        .code()
        .map(|c| format!(" [SQLSTATE {}]", c.code()))
        .unwrap_or_default();
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
    crate::error::Error::External {
        what: "postgresql".into(),
        detail: format!("{what}: {message}{code}"),
    }
}
