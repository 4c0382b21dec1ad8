//! The library's errors and the exit-code contract.
//!
//! Every problem about a user file carries a [`Location`] (`file:line:col`) and says what to do.
//! [`Error::exit_code`] maps errors to the documented exit codes: 2 for usage and config errors,
//! 3 when an external system (git, a database, a secret store) failed.

use std::fmt;
use std::path::PathBuf;

/// Exit code: nothing found, all good.
pub const EXIT_OK: i32 = 0;
/// Exit code: findings, or a verification failed.
pub const EXIT_FINDINGS: i32 = 1;
/// Exit code: usage or configuration error.
pub const EXIT_USAGE: i32 = 2;
/// Exit code: an external system failed.
pub const EXIT_EXTERNAL: i32 = 3;

/// A place in a user file. Line and column are 1-based; 0 means unknown.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    /// The file, as the user named it.
    pub file: String,
    /// 1-based line, 0 if unknown.
    pub line: usize,
    /// 1-based column (in characters), 0 if unknown.
    pub col: usize,
}

impl Location {
    /// A location with only a file.
    pub fn file(file: &str) -> Location {
        Location {
            file: file.to_string(),
            line: 0,
            col: 0,
        }
    }

    /// A location at a line and column.
    pub fn at(file: &str, line: usize, col: usize) -> Location {
        Location {
            file: file.to_string(),
            line,
            col,
        }
    }

    /// The location of byte `offset` within `text`.
    pub fn from_offset(file: &str, text: &str, offset: usize) -> Location {
        let offset = offset.min(text.len());
        let before = &text.as_bytes()[..offset];
        let line = memchr::memchr_iter(b'\n', before).count() + 1;
        let line_start = memchr::memrchr(b'\n', before).map_or(0, |i| i + 1);
        let col = String::from_utf8_lossy(&before[line_start..])
            .chars()
            .count()
            + 1;
        Location::at(file, line, col)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.col) {
            (0, _) => write!(f, "{}", self.file),
            (l, 0) => write!(f, "{}:{l}", self.file),
            (l, c) => write!(f, "{}:{l}:{c}", self.file),
        }
    }
}

/// One problem in a user file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// Where.
    pub at: Location,
    /// What is wrong and what to do.
    pub message: String,
    /// A breach of the environments' isolation (a protected environment's store or file used by
    /// another): the file is well-formed, but nothing may run with it. `sluice secrets check`
    /// reports these as findings (exit 1); every other command refuses the file (exit 2).
    pub isolation: bool,
}

impl Problem {
    /// A problem at a location.
    pub fn new(at: Location, message: impl Into<String>) -> Problem {
        Problem {
            at,
            message: message.into(),
            isolation: false,
        }
    }

    /// A breach of isolation between environments (see [`Problem::isolation`]).
    pub fn isolation(at: Location, message: impl Into<String>) -> Problem {
        Problem {
            isolation: true,
            ..Problem::new(at, message)
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// Errors of the sluice library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// One or more problems in a user file (config, rules, baseline).
    #[error("{}", render_problems(problems))]
    Invalid {
        /// Every problem found, in file order.
        problems: Vec<Problem>,
    },
    /// A file the user named could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The command line asks for something impossible.
    #[error("{0}")]
    Usage(String),
    /// A database refused or failed: what sluice was doing, what the server said, and the
    /// SQLSTATE (when the server sent one) for callers to branch on.
    #[error("postgresql: {doing}: {message}{}", sqlstate.as_ref().map(|c| format!(" [SQLSTATE {c}]")).unwrap_or_default())]
    Db {
        /// What sluice was doing (`creating database x on the target`).
        doing: String,
        /// The server's message (rows' contents never: see `data::pg::pg_error`).
        message: String,
        /// The five-character SQLSTATE.
        sqlstate: Option<String>,
    },
    /// Something the user named does not exist (an environment, a plan's template).
    #[error("{0}")]
    NotFound(String),
    /// The command `run` was to start could not be started: not found (exit 127) or not
    /// executable (exit 126), as shells report it.
    #[error("{message}")]
    Spawn {
        /// What happened, naming the command.
        message: String,
        /// 127 or 126.
        code: i32,
    },
    /// An external program or service failed.
    #[error("{what}: {detail}")]
    External {
        /// Which system, e.g. `git`.
        what: String,
        /// What it said.
        detail: String,
    },
}

/// Text from elsewhere (a server's error, an OS message) made safe to print: control characters
/// (escape sequences that could rewrite the terminal, line breaks that could fake a line of
/// sluice's own) shown escaped, runs of white space made one space.
pub(crate) fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text
        .split([' ', '\t', '\n', '\r'])
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        for c in word.chars() {
            if c.is_control() {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
    }
    out
}

/// An error and its causes, each said once (`a: b: c`), printable. For library errors whose
/// `Display` says only "an error occurred" and keeps the reason in `source()`.
pub(crate) fn causes(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(c) = cur {
        let text = printable(&c.to_string());
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = c.source();
    }
    parts.join(": ")
}

fn render_problems(problems: &[Problem]) -> String {
    let mut s = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            s.push('\n');
        }
        s.push_str(&p.to_string());
    }
    s
}

impl Error {
    /// A command that could not be started, with the exit code a shell would give.
    pub(crate) fn spawn(program: &std::ffi::OsStr, err: &std::io::Error) -> Error {
        let code = match err.kind() {
            std::io::ErrorKind::NotFound => 127,
            std::io::ErrorKind::PermissionDenied => 126,
            _ => 126,
        };
        Error::Spawn {
            message: format!("cannot run `{}`: {err}", program.to_string_lossy()),
            code,
        }
    }

    /// The SQLSTATE of a database error.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Error::Db { sqlstate, .. } => sqlstate.as_deref(),
            _ => None,
        }
    }

    /// The documented exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Invalid { .. } | Error::Usage(_) | Error::Io { .. } | Error::NotFound(_) => {
                EXIT_USAGE
            }
            Error::External { .. } | Error::Db { .. } => EXIT_EXTERNAL,
            Error::Spawn { code, .. } => *code,
        }
    }
}
