//! What every command shares: how it fails ([`Failure`]), finding `sluice.yaml`, the clock.

use std::io;
use std::path::Path;

use crate::config;
use crate::error::Error;

/// Why a command stopped: an error of the library (its exit code is
/// [`Error::exit_code`]), or output that could not be written.
pub enum Failure {
    /// A library error.
    Error(Error),
    /// Writing to stdout failed (a closed pipe ends quietly).
    Io(io::Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Error(e)
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Io(e)
    }
}

pub(crate) fn require_config(explicit: Option<&Path>, cwd: &Path) -> Result<config::Loaded, Error> {
    config::load_or_discover(explicit, cwd)?.ok_or_else(|| {
        Error::Usage(format!(
            "no {} in {} or its parents; pass --config FILE",
            config::FILE_NAME,
            cwd.display()
        ))
    })
}

/// Now, in seconds since the Unix epoch: `SLUICE_NOW` when set (to replay an expiry, or in
/// tests), else the system clock.
pub(crate) fn clock() -> Result<u64, Error> {
    match std::env::var("SLUICE_NOW") {
        Ok(v) => v.trim().parse().map_err(|_| {
            Error::Usage(format!(
                "SLUICE_NOW=`{v}` is not a time in seconds since 1970-01-01 UTC; unset it to use the clock"
            ))
        }),
        Err(_) => Ok(crate::data::marks::system_now()),
    }
}
