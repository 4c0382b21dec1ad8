//! sluice keeps production where it belongs.
//!
//! The library behind the `sluice` command: [`scan`] finds leaked credentials, [`config`] reads
//! `sluice.yaml`. Capability modules meet through small public types ([`scan::Finding`]); the
//! command line ([`cli`]) is turned into resolved settings before any work starts.

pub mod cli;
pub mod config;
pub mod data;
pub mod error;
pub mod fsio;
pub mod keyed;
pub mod scan;
pub mod secrets;

pub use error::Error;
