//! sluice's integration tests: one binary, a module per capability.

#[path = "../support/mod.rs"]
mod support;

mod aws;
mod catalog;
mod cli;
mod config;
mod copy_codec;
mod envs;
mod examples;
mod faults;
mod git_sources;
mod masking_groups;
mod pg_support;
mod readme_secrets;
mod real_world;
mod refresh;
mod rules;
mod safety;
mod sarif;
mod scan;
mod scan_corpus;
mod schemas;
mod secrets;
mod sentinel_sweep;
mod sops;
mod stream;
mod subset_checks;
mod tls;
mod validate;
pub(crate) mod vault;
