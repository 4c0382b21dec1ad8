//! Moving production data into staging (the `refresh` capability). So far: the COPY text codec,
//! the byte-level core every table stream goes through.

pub mod copy;
