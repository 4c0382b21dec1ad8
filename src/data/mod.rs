//! Moving production data into staging (the `refresh` capability). The byte-level cores so far:
//! the COPY text codec ([`copy`]) every table stream goes through, and the keyed masking
//! transforms ([`mask`]) that rows pass through on the way. No database access lives here yet.

pub mod catalog;
pub mod copy;
pub mod mask;
pub mod stream;
