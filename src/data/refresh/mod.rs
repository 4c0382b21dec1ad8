//! A refresh: the plan ([`plan`]: config x catalog, coverage), the names `scrub` looks for
//! ([`names`]), one table's stream
//! ([`stream`]), progress ([`progress`]), the whole run ([`pipeline`]: snapshot, schema,
//! parallel streams), the copy tasks ([`tasks`]: splits, subsets, shards), the finish
//! ([`post`]: sequences, post-data), what goes in and comes out ([`report`]), the swap ([`swap`]: lock, recover, rename) and signals
//! ([`interrupt`]).

pub mod interrupt;
pub(crate) mod names;
pub(crate) mod pipeline;
pub(crate) mod plan;
pub(crate) mod post;
pub(crate) mod progress;
pub(crate) mod report;
pub(crate) mod signing;
pub mod stream;
pub(crate) mod swap;
pub(crate) mod tasks;
