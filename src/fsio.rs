//! Writing user-visible files safely: bytes in, a file that holds either its old content or the
//! new one, never a part (temporary file in the same directory, fsync, rename).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::Error;

/// Write `bytes` to `path` atomically. Targets that are not regular files (`/dev/null`, a FIFO)
/// are written through: renaming over them would replace the device.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    write_impl(path, bytes, None)
}

/// Write `bytes` to `path` atomically, readable by its owner only (0600), creating the parent
/// directory when needed. For anything that holds a secret.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    write_impl(path, bytes, Some(0o600))
}

fn write_impl(path: &Path, bytes: &[u8], mode: Option<u32>) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e| Error::Io {
        path: PathBuf::from(path),
        source: e,
    };
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        return std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|mut f| f.write_all(bytes))
            .map_err(io);
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if mode.is_some() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        if let Some(m) = mode {
            opts.mode(m);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}
