//! sluice keeps production where it belongs.
//!
//! The library behind the `sluice` command. Data flows one way: the command line ([`cli`],
//! clap types only) -> [`commands`] (one file per command family: arguments into plain settings,
//! the capability called, its result printed) -> [`config`] (`sluice.yaml`) -> the capabilities:
//! [`scan`] finds leaked credentials, [`secrets`] resolves an environment's secrets and hands
//! them to a process, [`data`] refreshes databases with masked data. Capabilities meet through
//! small public types ([`scan::Finding`], [`secrets::SecretValue`]); errors are [`error::Error`].

pub mod cli;
pub mod commands;
pub(crate) mod config;
pub mod data;
pub mod error;
pub(crate) mod fsio;
pub(crate) mod keyed;
pub mod scan;
pub(crate) mod secrets;

pub use error::Error;
