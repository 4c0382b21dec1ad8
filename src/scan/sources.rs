//! Where scanned bytes come from: paths (walked in parallel) and stdin.
//!
//! Paths in, findings and statistics out. Hidden files are scanned; `.gitignore` is honoured only
//! when asked, because ignored files are where secrets hide. `.git/` itself is never walked (use
//! `--git` for history). Unreadable files and broken symlinks become warnings; the scan goes on.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use ignore::overrides::OverrideBuilder;
use ignore::{WalkBuilder, WalkState};

use super::{Finding, Scanner, archive};
use crate::error::Error;

/// Files above this size are memory-mapped instead of read.
const MMAP_THRESHOLD: u64 = 1 << 20;

/// What a walk should include.
#[derive(Debug, Clone, Default)]
pub(crate) struct WalkOptions {
    /// Honour `.gitignore`, `.ignore` and git's exclude files.
    pub gitignore: bool,
    /// Glob patterns (gitignore syntax) of paths to skip.
    pub exclude: Vec<String>,
    /// Skip files larger than this many bytes (None: no limit).
    pub max_file_size: Option<u64>,
    /// Worker threads (0: one per core).
    pub threads: usize,
}

/// Counters of one scan.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Files (or blobs) scanned.
    pub files: AtomicU64,
    /// Bytes scanned.
    pub bytes: AtomicU64,
    /// Binary files searched for self-identifying tokens only.
    pub binary: AtomicU64,
    /// Problems met inside inputs (archive limits, corrupt archives), reported as warnings.
    pub notes: Mutex<Vec<String>>,
}

/// The result of scanning a source.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Every finding.
    pub findings: Vec<Finding>,
    /// Problems that did not stop the scan (unreadable files, broken symlinks).
    pub warnings: Vec<String>,
    /// Counters.
    pub stats: Stats,
}

impl Outcome {
    /// Add another outcome into this one.
    pub(crate) fn merge(&mut self, other: Outcome) {
        self.findings.extend(other.findings);
        self.warnings.extend(other.warnings);
        for (a, b) in [
            (&self.stats.files, &other.stats.files),
            (&self.stats.bytes, &other.stats.bytes),
            (&self.stats.binary, &other.stats.binary),
        ] {
            a.fetch_add(b.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        lock(&self.stats.notes).extend(lock(&other.stats.notes).drain(..));
    }
}

/// Scan files and directories. A path that does not exist is an error before anything runs.
pub(crate) fn scan_paths(
    scanner: &Scanner,
    paths: &[PathBuf],
    opts: &WalkOptions,
) -> Result<Outcome, Error> {
    // Named inputs that are neither files nor directories: a pipe (`<(cmd)`, `/dev/stdin`
    // fed by a pipe) is read as a stream; anything else is refused, never passed over as if
    // it were clean.
    let mut streamed = Outcome::default();
    let mut walked = Vec::new();
    for p in paths {
        use std::os::unix::fs::FileTypeExt;
        let meta = std::fs::metadata(p).map_err(|e| {
            Error::Usage(if std::fs::symlink_metadata(p).is_ok() {
                format!("{}: cannot read ({e}); check the path", p.display())
            } else {
                format!("{}: no such file or directory; check the path", p.display())
            })
        })?;
        let t = meta.file_type();
        if t.is_file() || t.is_dir() {
            walked.push(p.clone());
        } else if t.is_fifo() {
            let name = p.display().to_string();
            let file = File::open(p).map_err(|e| Error::Io {
                path: p.clone(),
                source: e,
            })?;
            let found =
                scan_stream(scanner, &name, file, &streamed.stats).map_err(|e| Error::Io {
                    path: p.clone(),
                    source: e,
                })?;
            streamed.findings.extend(found);
        } else {
            let kind = if t.is_char_device() || t.is_block_device() {
                "a device"
            } else if t.is_socket() {
                "a socket"
            } else {
                "not a regular file"
            };
            return Err(Error::Usage(format!(
                "{}: {kind}, which sluice does not read; pipe its contents in: sluice scan - < {0}",
                p.display()
            )));
        }
    }
    let paths = &walked[..];
    let Some((first, rest)) = paths.split_first() else {
        return Ok(streamed);
    };
    let mut builder = WalkBuilder::new(first);
    for p in rest {
        builder.add(p);
    }
    builder
        .hidden(false)
        .parents(opts.gitignore)
        .ignore(opts.gitignore)
        .git_ignore(opts.gitignore)
        .git_global(opts.gitignore)
        .git_exclude(opts.gitignore)
        .require_git(false)
        .follow_links(false)
        .threads(opts.threads)
        .filter_entry(|e| !(e.file_name() == ".git" && e.file_type().is_some_and(|t| t.is_dir())));
    if !opts.exclude.is_empty() {
        let mut ov = OverrideBuilder::new(first);
        for g in &opts.exclude {
            ov.add(&format!("!{g}"))
                .map_err(|e| Error::Usage(format!("bad --exclude pattern `{g}`: {e}")))?;
        }
        builder.overrides(
            ov.build()
                .map_err(|e| Error::Usage(format!("bad exclude patterns: {e}")))?,
        );
    }
    let findings = Mutex::new(streamed.findings);
    let warnings = Mutex::new(Vec::new());
    let stats = {
        let s = Stats::default();
        s.files.store(
            streamed.stats.files.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        s.bytes.store(
            streamed.stats.bytes.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        s.binary.store(
            streamed.stats.binary.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        s
    };
    builder.build_parallel().run(|| {
        let (findings, warnings, stats) = (&findings, &warnings, &stats);
        Box::new(move |entry| {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    lock(warnings).push(format!("skipped: {e}"));
                    return WalkState::Continue;
                }
            };
            let Some(t) = entry.file_type() else {
                return WalkState::Continue;
            };
            if t.is_dir() {
                return WalkState::Continue;
            }
            if !(t.is_file() || t.is_symlink()) {
                lock(warnings).push(format!(
                    "skipped {}: not a regular file (a pipe, socket or device)",
                    entry.path().display()
                ));
                return WalkState::Continue;
            }
            match scan_file(scanner, entry.path(), opts.max_file_size, stats) {
                Ok(mut f) => {
                    if !f.is_empty() {
                        lock(findings).append(&mut f);
                    }
                }
                Err(w) => lock(warnings).push(w),
            }
            WalkState::Continue
        })
    });
    Ok(Outcome {
        findings: findings.into_inner().unwrap_or_else(|e| e.into_inner()),
        warnings: warnings.into_inner().unwrap_or_else(|e| e.into_inner()),
        stats,
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Scan one file; a problem reading it is returned as a warning text.
fn scan_file(
    scanner: &Scanner,
    path: &Path,
    max: Option<u64>,
    stats: &Stats,
) -> Result<Vec<Finding>, String> {
    let shown = path.display().to_string();
    // Opened without blocking: a symlink to a pipe would otherwise wait for a writer. What it
    // opened is then asked whether it is a regular file; nothing else is read.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            let link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
            if link && std::fs::metadata(path).is_err() {
                format!("skipped {shown}: broken symlink ({e})")
            } else if link {
                format!("skipped {shown}: links to something that cannot be opened ({e})")
            } else {
                format!("skipped {shown}: cannot read ({e})")
            }
        })?;
    let meta = file
        .metadata()
        .map_err(|e| format!("skipped {shown}: cannot stat ({e})"))?;
    if !meta.is_file() {
        if meta.is_dir() {
            return Ok(Vec::new()); // a link to a directory: links are not followed
        }
        return Err(format!(
            "skipped {shown}: links to something that is not a regular file"
        ));
    }
    let len = meta.len();
    if max.is_some_and(|m| len > m) {
        return Err(format!(
            "skipped {shown}: {len} bytes is above --max-file-size"
        ));
    }
    let found = if len >= MMAP_THRESHOLD {
        // SAFETY: the map is read-only and dropped before we return; a file truncated by another
        // process while we read it can fault, which is the accepted trade-off of every mmap-based
        // scanner (ripgrep makes the same one) for the speed on large files.
        let map = unsafe { memmap2::Mmap::map(&file) }
            .map_err(|e| format!("skipped {shown}: cannot map ({e})"))?;
        scan_bytes(scanner, &shown, &map, stats)
    } else {
        let mut buf = Vec::with_capacity(len as usize + 1);
        (&file)
            .read_to_end(&mut buf)
            .map_err(|e| format!("skipped {shown}: cannot read ({e})"))?;
        scan_bytes(scanner, &shown, &buf, stats)
    };
    Ok(found)
}

/// Scan one named buffer and count it: text as text, UTF-16 text as its UTF-8 transcoding,
/// other binary content for self-identifying tokens only ([`Scanner::scan_binary`]).
pub(crate) fn scan_bytes(scanner: &Scanner, name: &str, buf: &[u8], stats: &Stats) -> Vec<Finding> {
    let mut budget = archive::Budget::default();
    scan_nested(scanner, name, buf, stats, &mut budget, 0)
}

/// [`scan_bytes`] at archive depth `depth`, under the budget of the input it came from: an
/// archive's members are scanned as `name!member`.
fn scan_nested(
    scanner: &Scanner,
    name: &str,
    buf: &[u8],
    stats: &Stats,
    budget: &mut archive::Budget,
    depth: usize,
) -> Vec<Finding> {
    if depth < scanner.options().archive_depth
        && let Some(kind) = archive::kind(buf)
    {
        let mut found = Vec::new();
        let mut notes = Vec::new();
        archive::members(
            name,
            buf,
            kind,
            budget,
            &mut notes,
            &mut |member, bytes, budget| {
                let inner = format!("{name}!{member}");
                found.extend(scan_nested(
                    scanner,
                    &inner,
                    bytes,
                    stats,
                    budget,
                    depth + 1,
                ));
            },
        );
        lock(&stats.notes).extend(notes);
        return found;
    }
    stats.files.fetch_add(1, Ordering::Relaxed);
    stats.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
    if !Scanner::is_binary(buf) {
        return scanner.scan_buffer(name, buf);
    }
    if let Some(text) = super::decode::utf16_text(buf) {
        return scanner.scan_buffer(name, &text);
    }
    stats.binary.fetch_add(1, Ordering::Relaxed);
    scanner.scan_binary(name, buf)
}

/// How much of a stream is scanned at once.
const STREAM_CHUNK: usize = 8 << 20;
/// How much of each chunk is scanned again with the next one: more than any rule's reach, so a
/// secret that straddles two chunks is whole in one of them.
const STREAM_OVERLAP: usize = 64 << 10;

/// Scan standard input as one stream named `name`.
pub(crate) fn scan_stdin(scanner: &Scanner, name: &str) -> Result<Outcome, Error> {
    let stats = Stats::default();
    let findings =
        scan_stream(scanner, name, std::io::stdin().lock(), &stats).map_err(|e| Error::Io {
            path: PathBuf::from("<stdin>"),
            source: e,
        })?;
    Ok(Outcome {
        findings,
        warnings: Vec::new(),
        stats,
    })
}

/// Scan a stream of any length in overlapping chunks, in bounded memory. Each chunk ends at a
/// line start where one is near, so line numbers carry over; findings in the overlap are
/// reported by the chunk that holds them whole.
pub(crate) fn scan_stream(
    scanner: &Scanner,
    name: &str,
    mut src: impl Read,
    stats: &Stats,
) -> std::io::Result<Vec<Finding>> {
    let mut findings = Vec::new();
    let mut buf: Vec<u8> = Vec::with_capacity(STREAM_CHUNK + STREAM_OVERLAP);
    let mut lines_before = 0usize;
    let mut first = true;
    // A binary stream is searched for self-identifying tokens only (no UTF-16 transcoding
    // across chunks).
    let mut binary = false;
    loop {
        let carried = buf.len();
        let mut eof = false;
        // Read until the chunk is full (or the stream ends); always read something new.
        while buf.len() < STREAM_CHUNK.max(carried + 1) {
            let old = buf.len();
            buf.resize(old + (64 << 10), 0);
            let n = src.read(&mut buf[old..])?;
            buf.truncate(old + n);
            if n == 0 {
                eof = true;
                break;
            }
        }
        if first && Scanner::is_binary(&buf) {
            binary = true;
            stats.binary.fetch_add(1, Ordering::Relaxed);
        }
        // The next chunk starts here: at a line start within the overlap when there is one.
        let cut = if eof {
            buf.len()
        } else {
            let floor = buf.len().saturating_sub(STREAM_OVERLAP);
            let lo = floor.saturating_sub(STREAM_OVERLAP);
            memchr::memrchr(b'\n', &buf[lo..floor]).map_or(floor, |i| lo + i + 1)
        };
        // Findings from `cut` on are left to the next chunk, which starts there and holds them
        // whole; the previous chunk reported only what lies before this one's start.
        let found = if binary {
            scanner.scan_binary(name, &buf)
        } else {
            scanner.scan_buffer(name, &buf)
        };
        for mut f in found {
            if f.offset >= cut {
                continue;
            }
            f.line += lines_before;
            f.end_line += lines_before;
            findings.push(f);
        }
        stats.bytes.fetch_add(cut as u64, Ordering::Relaxed);
        if eof {
            break;
        }
        lines_before += memchr::memchr_iter(b'\n', &buf[..cut]).count();
        buf.drain(..cut);
        first = false;
    }
    stats.files.fetch_add(1, Ordering::Relaxed);
    Ok(findings)
}
