//! Reports: findings in, text out (human, json, jsonl, sarif 2.1.0, GitHub annotations).
//!
//! Secrets are redacted unless the caller opts in with `show_secrets`.

use std::io::{self, Write};

use serde_json::{Value, json};

use super::Finding;
use super::engine::Engine;

/// When to colour the human format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Color {
    /// Colour when stdout is a terminal.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// Output formats of `sluice scan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `file:line:col  rule  secret` lines, for people.
    Human,
    /// One JSON document with all findings and a summary.
    Json,
    /// One JSON object per finding per line.
    Jsonl,
    /// SARIF 2.1.0, for GitHub code scanning and other SARIF consumers.
    Sarif,
    /// GitHub Actions workflow annotations (`::error file=…`).
    Github,
}

/// How to render.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReportOptions {
    /// Show secrets in full instead of redacted.
    pub show_secrets: bool,
    /// Use ANSI colours (human format only).
    pub color: bool,
    /// End human output with a summary line.
    pub summary: bool,
}

/// Counters shown in summaries.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Summary {
    /// Files or blobs scanned.
    pub files: u64,
    /// Bytes scanned.
    pub bytes: u64,
    /// Findings suppressed by the baseline.
    pub baselined: u64,
    /// Binary files (or blobs) among them, searched for self-identifying tokens only.
    pub binary: u64,
}

fn secret_text(f: &Finding, o: ReportOptions) -> String {
    if o.show_secrets {
        String::from_utf8_lossy(f.secret.expose()).into_owned()
    } else {
        f.secret.redacted()
    }
}

fn finding_json(f: &Finding, o: ReportOptions) -> Value {
    json!({
        "rule": f.rule,
        "description": f.description,
        "severity": f.severity.as_str(),
        "tags": f.tags,
        "path": f.path,
        "line": f.line,
        "column": f.column,
        "end_line": f.end_line,
        "end_column": f.end_column,
        "secret": secret_text(f, o),
        "fingerprint": f.fingerprint,
        "decoded": f.decoded,
        "commits": f.commits,
        "validation": validation_json(f),
    })
}

fn validation_json(f: &Finding) -> Value {
    match &f.validation {
        Some(v) => json!({ "status": v.status(), "detail": v.detail() }),
        None => Value::Null,
    }
}

/// ` valid`, ` invalid (why)`, … for the human and GitHub formats; empty when not validated.
fn validation_text(f: &Finding) -> String {
    match &f.validation {
        Some(v) => format!(
            "  [{}: {}]",
            v.status(),
            crate::error::printable(v.detail())
        ),
        None => String::new(),
    }
}

/// Write findings in `format`.
pub(crate) fn write(
    out: &mut dyn Write,
    format: Format,
    findings: &[Finding],
    summary: Summary,
    engine: &Engine,
    o: ReportOptions,
) -> io::Result<()> {
    match format {
        Format::Human => human(out, findings, summary, o),
        Format::Json => {
            let doc = json!({
                "findings": findings.iter().map(|f| finding_json(f, o)).collect::<Vec<_>>(),
                "summary": {
                    "files": summary.files,
                    "bytes": summary.bytes,
                    "findings": findings.len(),
                    "baselined": summary.baselined,
                    "binary": summary.binary,
                },
            });
            serde_json::to_writer_pretty(&mut *out, &doc)?;
            writeln!(out)
        }
        Format::Jsonl => {
            for f in findings {
                serde_json::to_writer(&mut *out, &finding_json(f, o))?;
                writeln!(out)?;
            }
            Ok(())
        }
        Format::Sarif => {
            serde_json::to_writer_pretty(&mut *out, &sarif(findings, engine, o))?;
            writeln!(out)
        }
        Format::Github => {
            for f in findings {
                let level = match f.severity {
                    super::rules::Severity::Low => "warning",
                    _ => "error",
                };
                writeln!(
                    out,
                    "::{level} file={},line={},col={},endLine={},endColumn={},title={}::{}",
                    escape_property(&f.path),
                    f.line,
                    f.column,
                    f.end_line,
                    f.end_column,
                    escape_property(&f.rule),
                    escape_data(&format!(
                        "{} ({}){}",
                        f.description,
                        secret_text(f, o),
                        validation_text(f)
                    ))
                )?;
            }
            Ok(())
        }
    }
}

fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

fn human(
    out: &mut dyn Write,
    findings: &[Finding],
    s: Summary,
    o: ReportOptions,
) -> io::Result<()> {
    let (bold, red, dim, reset) = if o.color {
        ("\x1b[1m", "\x1b[31m", "\x1b[2m", "\x1b[0m")
    } else {
        ("", "", "", "")
    };
    for f in findings {
        writeln!(
            out,
            "{bold}{}:{}:{}{reset}  {red}{}{reset}  {}  {}{}{}",
            shown_path(&f.path),
            f.line,
            f.column,
            f.rule,
            f.severity.as_str(),
            secret_text(f, o),
            if f.decoded { "  (base64-decoded)" } else { "" },
            validation_text(f)
        )?;
        if !f.commits.is_empty() {
            let shown: Vec<String> = f
                .commits
                .iter()
                .take(3)
                .map(|c| {
                    format!(
                        "{} {}",
                        &c.commit[..c.commit.len().min(12)],
                        shown_path(&c.path)
                    )
                })
                .collect();
            let more = f.commits.len().saturating_sub(3);
            writeln!(
                out,
                "    {dim}in {}{}{reset}",
                shown.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            )?;
        }
    }
    if !o.summary {
        return Ok(());
    }
    let mb = s.bytes as f64 / 1e6;
    let mut baselined = if s.baselined > 0 {
        format!(", {} known from the baseline", s.baselined)
    } else {
        String::new()
    };
    if s.binary > 0 {
        baselined.push_str(&format!(
            ", {} binary searched for prefixed tokens only",
            s.binary
        ));
    }
    writeln!(
        out,
        "{dim}{} finding{} in {} file{} ({mb:.1} MB){baselined}{reset}",
        findings.len(),
        if findings.len() == 1 { "" } else { "s" },
        s.files,
        if s.files == 1 { "" } else { "s" },
    )
}

fn sarif(findings: &[Finding], engine: &Engine, o: ReportOptions) -> Value {
    let rules: Vec<Value> = engine
        .rules()
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.id,
                "shortDescription": { "text": r.description },
                "fullDescription": { "text": r.description },
                "defaultConfiguration": { "level": sarif_level(r.severity) },
                "properties": { "tags": r.tags, "security-severity": security_severity(r.severity) },
            })
        })
        .collect();
    let index_of = |id: &str| engine.rules().iter().position(|r| r.id == id).unwrap_or(0);
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            let mut result = json!({
                "ruleId": f.rule,
                "ruleIndex": index_of(&f.rule),
                "level": sarif_level(f.severity),
                "message": { "text": format!("{}: {}", f.description, secret_text(f, o)) },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": sarif_uri(&f.path) },
                        "region": {
                            "startLine": f.line,
                            "startColumn": f.column,
                            "endLine": f.end_line,
                            "endColumn": f.end_column,
                        }
                    }
                }],
                "partialFingerprints": { "sluiceFingerprint/v2": f.fingerprint },
            });
            if !f.commits.is_empty() {
                result["properties"] = json!({ "commits": f.commits });
            }
            if f.validation.is_some() {
                result["properties"]["validation"] = validation_json(f);
            }
            result
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "sluice",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }]
    })
}

/// A path as a SARIF `uri` (RFC 3986): relative as it is, absolute as `file://`, every byte
/// but the unreserved ones and `/` percent-encoded (spaces, `#`, `?`, `%`, control characters,
/// non-ASCII).
fn sarif_uri(path: &str) -> String {
    let p = path.strip_prefix("./").unwrap_or(path);
    let p = p.replace('\\', "/");
    let mut out = String::with_capacity(p.len() + 8);
    if p.starts_with('/') {
        out.push_str("file://");
    }
    for b in p.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A path for a terminal: control characters (a newline, an escape sequence in a file name)
/// shown escaped, so a name cannot fake a line of the report or rewrite the screen.
fn shown_path(path: &str) -> std::borrow::Cow<'_, str> {
    if !path.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(path);
    }
    std::borrow::Cow::Owned(
        path.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

fn sarif_level(s: super::rules::Severity) -> &'static str {
    match s {
        super::rules::Severity::Low => "warning",
        _ => "error",
    }
}

fn security_severity(s: super::rules::Severity) -> &'static str {
    match s {
        super::rules::Severity::Low => "3.0",
        super::rules::Severity::Medium => "5.5",
        super::rules::Severity::High => "8.0",
        super::rules::Severity::Critical => "9.5",
    }
}
