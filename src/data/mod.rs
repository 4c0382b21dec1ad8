//! Moving production data into staging (the `refresh` capability). The byte-level cores so far:
//! the COPY text codec ([`copy`]) every table stream goes through, and the keyed masking
//! transforms ([`mask`]) that rows pass through on the way. No database access lives here yet.

pub mod catalog;
pub mod classify;
pub mod copy;
pub mod mask;
pub mod stream;

/// A database error as sluice reports it: what was being done, the server's message and its
/// SQLSTATE (so callers and users can branch on it).
pub(crate) fn pg_error(what: &str, e: tokio_postgres::Error) -> crate::error::Error {
    let code = e
        .code()
        .map(|c| format!(" [SQLSTATE {}]", c.code()))
        .unwrap_or_default();
    crate::error::Error::External {
        what: "postgresql".into(),
        detail: format!("{what}: {e}{code}"),
    }
}
