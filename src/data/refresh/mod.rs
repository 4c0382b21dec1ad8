//! A refresh: the plan ([`plan`]: config x catalog, coverage), one table's stream
//! ([`stream`]), progress ([`progress`]), the whole run ([`pipeline`]: snapshot, schema,
//! parallel streams), the copy tasks ([`tasks`]: splits, subsets, shards), the finish
//! ([`post`]: sequences, post-data), what goes in and comes out ([`report`]), the swap ([`swap`]: lock, recover, rename) and signals
//! ([`interrupt`]).

pub mod interrupt;
pub mod pipeline;
pub mod plan;
pub mod post;
pub mod progress;
pub mod report;
pub mod stream;
pub mod swap;
pub mod tasks;
