//! `sluice scan`: finds leaked credentials in files, stdin, git history, diffs and staged changes.
//!
//! Flow: [`rules`] (data) -> [`engine`] (bytes -> raw matches) -> [`Scanner::scan_buffer`]
//! (raw matches -> [`Finding`]s with line, column, inline allows, base64 decoding) ->
//! [`sources`] / [`git`] (where the bytes come from) -> [`baseline`] -> [`report`].

pub(crate) mod archive;
pub(crate) mod baseline;
pub(crate) mod decode;
pub mod engine;
pub(crate) mod fdr;
pub(crate) mod git;
pub(crate) mod known;
pub(crate) mod masks;
pub mod reach;
pub(crate) mod report;
pub mod rules;
pub(crate) mod settings;
pub(crate) mod sources;
pub mod validate;

use std::fmt;

use regex::bytes::Regex;
use sha2::{Digest, Sha256};

use engine::{Engine, RawMatch};
use rules::Severity;

/// How much of a file decides whether it is binary (as git decides: a NUL byte in the head).
pub(crate) const BINARY_PROBE: usize = 8192;

/// How deep archives are entered by default (an archive in an archive in an archive).
pub const DEFAULT_ARCHIVE_DEPTH: usize = 3;

/// Inline markers that suppress a finding on their own line.
const ALLOW_MARKERS: [&[u8]; 3] = [
    b"sluice:allow",
    b"gitleaks:allow",
    b"pragma: allowlist secret",
];
/// Markers that suppress findings on the next line.
const ALLOW_NEXT_MARKERS: [&[u8]; 2] = [
    b"sluice:allow-next-line",
    b"pragma: allowlist nextline secret",
];

/// A secret as found: bytes that never print. `Debug` and redaction show a short prefix only.
#[derive(Clone, PartialEq, Eq)]
pub struct FoundSecret(Vec<u8>);

impl FoundSecret {
    /// Wrap found bytes.
    pub fn new(bytes: Vec<u8>) -> FoundSecret {
        FoundSecret(bytes)
    }

    /// The raw bytes, for fingerprints, known-value checks and `--show-secrets`.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// A redacted form: a short prefix (at most 4 characters, at most a fifth of the value)
    /// followed by `…`.
    pub fn redacted(&self) -> String {
        let text = String::from_utf8_lossy(&self.0);
        let n = text.chars().count();
        let keep = (n / 5).min(4);
        let mut s: String = text.chars().take(keep).collect();
        s.push_str("*****");
        s
    }
}

impl fmt::Debug for FoundSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FoundSecret({})", self.redacted())
    }
}

/// Where in history a blob with a finding was introduced.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Occurrence {
    /// Commit id.
    pub commit: String,
    /// Path of the blob in that commit.
    pub path: String,
}

/// One leaked credential.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Rule id.
    pub rule: String,
    /// Rule description.
    pub description: String,
    /// Severity.
    pub severity: Severity,
    /// Rule tags.
    pub tags: Vec<String>,
    /// File path as scanned (for history, the first path the blob had).
    pub path: String,
    /// 1-based line of the secret's start.
    pub line: usize,
    /// 1-based column (characters) of the secret's start.
    pub column: usize,
    /// 1-based line of the secret's end.
    pub end_line: usize,
    /// 1-based column just past the secret's end.
    pub end_column: usize,
    /// The secret.
    pub secret: FoundSecret,
    /// Stable id that survives line moves: hash of rule, path and secret (a scan keys it: see
    /// the baseline module).
    pub fingerprint: String,
    /// For history scans: every commit and path where the blob was introduced.
    pub commits: Vec<Occurrence>,
    /// The secret was found inside a base64-encoded value at this location.
    pub decoded: bool,
    /// Byte offset of the secret (or its encoded form) in the scanned buffer.
    pub offset: usize,
    /// For rules whose check needs more than the secret (a URL's host, an AWS key pair): the
    /// whole match, never printed.
    pub context: Option<FoundSecret>,
    /// The verdict of `--validate`, when it checked this finding.
    pub validation: Option<validate::Verdict>,
}

/// Options that shape how a buffer is scanned.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Decode base64 values and scan the decoded text.
    pub decode_base64: bool,
    /// Secret values to ignore (user allow list), matched against the captured secret.
    pub allow: Vec<Regex>,
    /// Real secret values of an environment, found verbatim.
    pub known: Option<std::sync::Arc<known::KnownValues>>,
    /// How deep archives (zip, tar, gzip) are entered: 0 never, 1 the archives themselves, 2
    /// archives inside those, ….
    pub archive_depth: usize,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            decode_base64: true,
            allow: Vec::new(),
            known: None,
            archive_depth: DEFAULT_ARCHIVE_DEPTH,
        }
    }
}

/// The engine plus options: turns a named buffer into findings.
#[derive(Debug)]
pub struct Scanner {
    engine: Engine,
    options: ScanOptions,
}

impl Scanner {
    /// A scanner over compiled rules.
    pub fn new(engine: Engine, options: ScanOptions) -> Scanner {
        Scanner { engine, options }
    }

    /// The options it scans with.
    pub fn options(&self) -> &ScanOptions {
        &self.options
    }

    /// The engine (for rule metadata).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether a buffer looks binary: a NUL byte in its first 8 KiB, as git decides.
    pub fn is_binary(buf: &[u8]) -> bool {
        memchr::memchr(0, &buf[..buf.len().min(BINARY_PROBE)]).is_some()
    }

    /// All findings in one buffer named `path`.
    pub fn scan_buffer(&self, path: &str, buf: &[u8]) -> Vec<Finding> {
        self.scan_with(path, buf, false)
    }

    /// Findings in a binary buffer: only rules whose secret carries its own keyword (a prefix
    /// such as `ghp_`, `AKIA`, `xoxb-`, decided from the rule's examples), which stay precise
    /// without text around them, and an environment's known values. No base64 decoding.
    pub fn scan_binary(&self, path: &str, buf: &[u8]) -> Vec<Finding> {
        self.scan_with(path, buf, true)
    }

    fn scan_with(&self, path: &str, buf: &[u8], binary: bool) -> Vec<Finding> {
        let mut findings = Vec::new();
        let mut lines = LineIndex::new();
        let mut inline = Inline::new(buf);
        let mut matches = if binary {
            self.engine.find_self_identifying(buf)
        } else {
            self.engine.find(buf)
        };
        // In buffer order, so line positions and inline markers are found in one pass.
        matches.sort_by_key(|m| (m.start, m.end));
        for m in matches {
            if self.user_allowed(&buf[m.start..m.end]) || inline.suppressed(m.start) {
                continue;
            }
            findings.push(self.finding(path, buf, &mut lines, &m, None));
        }
        if let Some(known) = &self.options.known {
            for (start, end, name) in known.find(buf) {
                if inline.suppressed(start) {
                    continue;
                }
                let (line, column) = lines.position(buf, start);
                let (end_line, end_column) = lines.position(buf, end);
                // The finding carries the variable's name, never its value.
                let shown = format!("<{name}>");
                findings.push(Finding {
                    rule: known::RULE_ID.to_string(),
                    description: format!("the value of {name} in environment {}", known.env()),
                    severity: Severity::Critical,
                    tags: vec!["known".into()],
                    path: path.to_string(),
                    line,
                    column,
                    end_line,
                    end_column,
                    fingerprint: fingerprint(known::RULE_ID, path, shown.as_bytes()),
                    secret: FoundSecret::new(shown.into_bytes()),
                    commits: Vec::new(),
                    decoded: false,
                    offset: start,
                    context: None,
                    validation: None,
                });
            }
        }
        if !binary && self.options.decode_base64 && decode::worth_decoding(path, buf) {
            for blob in decode::base64_values(buf) {
                if inline.suppressed(blob.start) {
                    continue;
                }
                for m in self.engine.find(&blob.text) {
                    let secret = &blob.text[m.start..m.end];
                    if self.user_allowed(secret) {
                        continue;
                    }
                    findings.push(self.finding(
                        path,
                        buf,
                        &mut lines,
                        &m,
                        Some((blob.start, blob.end, secret)),
                    ));
                }
            }
        }
        findings
    }

    fn user_allowed(&self, secret: &[u8]) -> bool {
        self.options.allow.iter().any(|a| a.is_match(secret))
    }

    fn finding(
        &self,
        path: &str,
        buf: &[u8],
        lines: &mut LineIndex,
        m: &RawMatch,
        decoded: Option<(usize, usize, &[u8])>,
    ) -> Finding {
        let rule = &self.engine.rules()[m.rule];
        let (start, end, secret) = match decoded {
            Some((s, e, secret)) => (s, e, secret),
            None => (m.start, m.end, &buf[m.start..m.end]),
        };
        let (line, column) = lines.position(buf, start);
        let (end_line, end_column) = lines.position(buf, end);
        Finding {
            rule: rule.id.clone(),
            description: rule.description.clone(),
            severity: rule.severity,
            tags: rule.tags.clone(),
            path: path.to_string(),
            line,
            column,
            end_line,
            end_column,
            fingerprint: fingerprint(&rule.id, path, secret),
            secret: FoundSecret::new(secret.to_vec()),
            commits: Vec::new(),
            decoded: decoded.is_some(),
            offset: start,
            context: (decoded.is_none() && validate::WITH_CONTEXT.contains(&rule.id.as_str()))
                .then(|| {
                    let end = validate::context_end(&rule.id, buf, m.match_end);
                    FoundSecret::new(buf[m.match_start..end].to_vec())
                }),
            validation: None,
        }
    }
}

/// Inline allow markers of one buffer. A buffer is searched for markers once, when its first
/// candidate is (most buffers have none and are never searched); a buffer without any marker
/// answers at once; otherwise each line is decided once, so a one-line file of 100 MB with
/// thousands of candidates is not re-read for each of them.
struct Inline<'a> {
    buf: &'a [u8],
    /// Whether the buffer holds any marker (not searched yet: `None`).
    any: Option<bool>,
    /// The last line decided: its start, end and whether it allows findings.
    last: Option<(usize, usize, bool)>,
}

impl<'a> Inline<'a> {
    fn new(buf: &'a [u8]) -> Inline<'a> {
        Inline {
            buf,
            any: None,
            last: None,
        }
    }

    /// Whether the line of `offset` (or the line above, for next-line markers) allows findings.
    fn suppressed(&mut self, offset: usize) -> bool {
        let buf = self.buf;
        let any = *self.any.get_or_insert_with(|| {
            ALLOW_MARKERS
                .iter()
                .chain(&ALLOW_NEXT_MARKERS)
                .any(|m| contains(buf, m))
        });
        if !any {
            return false;
        }
        if let Some((start, end, allowed)) = self.last
            && (start..=end).contains(&offset)
        {
            return allowed;
        }
        let start = memchr::memrchr(b'\n', &buf[..offset]).map_or(0, |i| i + 1);
        let end = memchr::memchr(b'\n', &buf[offset..]).map_or(buf.len(), |i| offset + i);
        let allowed = suppressed_inline(buf, offset);
        self.last = Some((start, end, allowed));
        allowed
    }
}

/// Whether the line of `offset` (or the line above, for next-line markers) allows findings.
fn suppressed_inline(buf: &[u8], offset: usize) -> bool {
    let line_start = memchr::memrchr(b'\n', &buf[..offset]).map_or(0, |i| i + 1);
    let line_end = memchr::memchr(b'\n', &buf[offset..]).map_or(buf.len(), |i| offset + i);
    let line = &buf[line_start..line_end];
    if ALLOW_MARKERS.iter().any(|mk| marks_own_line(line, mk)) {
        return true;
    }
    if line_start == 0 {
        return false;
    }
    let prev_end = line_start - 1;
    let prev_start = memchr::memrchr(b'\n', &buf[..prev_end]).map_or(0, |i| i + 1);
    let prev = &buf[prev_start..prev_end];
    ALLOW_NEXT_MARKERS.iter().any(|mk| contains(prev, mk))
}

/// Whether `marker` stands in `line` as a same-line marker: `sluice:allow` inside
/// `sluice:allow-next-line` is the next line's marker, not this line's.
fn marks_own_line(line: &[u8], marker: &[u8]) -> bool {
    memchr::memmem::find_iter(line, marker).any(|at| {
        let rest = &line[at + marker.len()..];
        !ALLOW_NEXT_MARKERS
            .iter()
            .any(|next| next.starts_with(marker) && rest.starts_with(&next[marker.len()..]))
    })
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(hay, needle).is_some()
}

/// The fingerprint of a finding: survives line moves, changes with rule, path or secret.
pub fn fingerprint(rule: &str, path: &str, secret: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(rule.as_bytes());
    h.update([0]);
    h.update(path.as_bytes());
    h.update([0]);
    h.update(secret);
    let d = h.finalize();
    d[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Turns byte offsets into (line, column), walking forward from the last query.
struct LineIndex {
    offset: usize,
    line: usize,
    /// Characters from the line's start to `offset`.
    column: usize,
}

impl LineIndex {
    fn new() -> LineIndex {
        LineIndex {
            offset: 0,
            line: 1,
            column: 0,
        }
    }

    /// Line and 1-based column (in characters: bytes that do not continue a UTF-8 sequence) of
    /// `offset`. Queries in increasing order cost the bytes between them, not the line's length.
    fn position(&mut self, buf: &[u8], offset: usize) -> (usize, usize) {
        let offset = offset.min(buf.len());
        if offset < self.offset {
            *self = LineIndex::new();
        }
        let seg = &buf[self.offset..offset];
        let tail = match memchr::memrchr(b'\n', seg) {
            Some(last) => {
                self.line += memchr::memchr_iter(b'\n', seg).count();
                self.column = 0;
                &seg[last + 1..]
            }
            None => seg,
        };
        self.column += tail.iter().filter(|&&b| (b as i8) >= -0x40).count();
        self.offset = offset;
        (self.line, self.column + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scanner() -> Scanner {
        let set = rules::RuleSet::builtin().unwrap();
        Scanner::new(Engine::new(set).unwrap(), ScanOptions::default())
    }

    fn token() -> String {
        // Built at run time so the repository holds no token-shaped literal.
        let body: String = (0..36).map(|i| b"aZ3kQ9mX7pL2"[i % 12] as char).collect();
        format!("ghp_{body}")
    }

    #[test]
    fn line_and_column_are_one_based_characters() {
        let buf = format!("first\nämlaut = \"{}\"\n", token());
        let f = scanner().scan_buffer("x.py", buf.as_bytes());
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!((f[0].line, f[0].column), (2, 11));
        assert_eq!(f[0].end_line, 2);
    }

    #[test]
    fn inline_markers_suppress() {
        let t = token();
        for text in [
            format!("k = \"{t}\" # sluice:allow"),
            format!("k = \"{t}\" // gitleaks:allow"),
            format!("k = \"{t}\"  # pragma: allowlist secret"),
            format!("# sluice:allow-next-line\nk = \"{t}\""),
        ] {
            assert!(
                scanner().scan_buffer("a", text.as_bytes()).is_empty(),
                "{text}"
            );
        }
        let text = format!("# sluice:allow-next-line\n\nk = \"{t}\"");
        assert_eq!(scanner().scan_buffer("a", text.as_bytes()).len(), 1);
        // A next-line marker at the end of a secret's own line allows the next line only.
        let text = format!("k = \"{t}\" # sluice:allow-next-line\nj = \"{t}\"");
        let found = scanner().scan_buffer("a", text.as_bytes());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].line, 1);
        // Both markers on one line: this line is allowed.
        let text = format!("k = \"{t}\" # sluice:allow-next-line sluice:allow");
        assert!(scanner().scan_buffer("a", text.as_bytes()).is_empty());
    }

    #[test]
    fn fingerprint_survives_line_moves() {
        let t = token();
        let a = scanner().scan_buffer("a.env", format!("T={t}\n").as_bytes());
        let b = scanner().scan_buffer("a.env", format!("\n\n\nT={t}\n").as_bytes());
        assert_eq!(a[0].fingerprint, b[0].fingerprint);
        let c = scanner().scan_buffer("b.env", format!("T={t}\n").as_bytes());
        assert_ne!(a[0].fingerprint, c[0].fingerprint);
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let t = token();
        let f = scanner().scan_buffer("a.env", format!("T={t}\n").as_bytes());
        let dbg = format!("{f:?}");
        assert!(!dbg.contains(&t), "{dbg}");
        assert!(!f[0].secret.redacted().contains(&t[4..]));
    }
}
