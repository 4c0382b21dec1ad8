//! Moving production data into staging and per-PR databases (the `refresh` capability), in
//! rooms with one job each; a room uses the ones listed before it, never one after:
//!
//! - [`marks`]: what sluice writes into the comment of every database it makes (pure).
//! - [`pg`]: PostgreSQL itself: connections and TLS, the catalog, the COPY codecs (text,
//!   binary), pg_dump's DDL and the pg_dump/psql runners, snapshots, database administration
//!   (create, drop, rename, comments, locks) and the source/target identity check.
//! - [`mask`]: the masking transforms, their one parser and printer, presets, structured values
//!   and row masking: a pure core that needs no database.
//! - [`subset`]: the closure engine over a row source, its spill file, and the PostgreSQL row
//!   source.
//! - [`refresh`]: the plan (config x catalog), the stream of one table, progress, the pipeline,
//!   and the swap (lock, recover, rename) in a file of its own.
//! - [`classify`], [`verify`], [`envs`]: proposals from a catalog, checks of a finished copy,
//!   ephemeral environments; they use [`pg`] and [`refresh`]'s public pieces.

pub(crate) mod classify;
pub(crate) mod envs;
pub(crate) mod marks;
pub mod mask;
pub mod pg;
pub mod refresh;
pub mod subset;
pub(crate) mod verify;
