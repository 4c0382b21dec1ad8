//! Corpus-based precision / recall check for the built-in rule set.
//!
//! **In:** nothing committed to the repository except the `sluice` binary under
//! test. At test time a deterministic generator (splitmix64, fixed seed) builds
//! a labelled corpus:
//!
//! * **positives** — fake credentials in the real token shapes of the providers
//!   the built-in rules cover (cloud keys, VCS tokens, chat webhooks, payment
//!   keys, package-registry tokens, private keys, JWTs, passwords in URLs,
//!   generic `password` / `secret` / `api_key` / `token` / `client_secret`
//!   assignments), always with random bodies;
//! * **hard negatives** — placeholders, env / template / code references,
//!   documented example keys, hashes, lockfile checksums, image digests, UUIDs,
//!   public keys and certificates, minified JS, password-less URLs and
//!   context-free random blobs.
//!
//! Every sample is embedded in a realistic file (`.env`, YAML, JSON, TOML, Java
//! properties, HCL, INI, XML, shell, Python, JS/TS, Go, Java, PEM, lockfiles,
//! ...) on a known line range, and files are written to `sNNNN/<file name>`
//! under a fresh temp dir.
//!
//! **Out:** one `sluice scan --format json <dir>` run over that dir. Findings
//! are matched to samples by (path relative to the corpus root, line). A
//! positive sample is *detected* when at least one finding lands in its line
//! range; a finding is a *true positive* when it lands on a positive sample and
//! a *false positive* otherwise (on a hard negative, or on any other line). The
//! test prints a per-kind table, per-rule counts, every missed positive and
//! every false positive (visible with `--nocapture`, and always on failure),
//! then asserts overall recall >= 0.95 and overall precision >= 0.95.
//!
//! Notes:
//! * Generated file names are never dot-files (`app.env`, `npmrc`, `pypirc`)
//!   so the walker's hidden-file policy cannot influence the numbers.
//! * Random bodies are re-drawn while they contain placeholder-ish substrings
//!   (`test`, `xxx`, `1234`, runs of one character, ...), so a miss always
//!   points at a rule rather than at an unlucky draw.
//! * Set `SLUICE_CORPUS_DIR=/path/to/empty/dir` to write the corpus there and
//!   keep it for inspection instead of using a temp dir.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

/// Fixed seed: the corpus is identical on every run, so failures reproduce.
const SEED: u64 = 0x5115_CE00_C0FF_EE42;
const MIN_RECALL: f64 = 0.95;
const MIN_PRECISION: f64 = 0.95;

// ---------------------------------------------------------------- alphabets

const DIGITS: &str = "0123456789";
const HEX: &str = "0123456789abcdef";
const ALPHA: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const UPPER_ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const LOWER_ALNUM: &str = "abcdefghijklmnopqrstuvwxyz0123456789";
const B64: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const BASE32: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/// Symbols mixed into generic passwords: nothing that needs escaping or
/// starts a comment / variable reference in any of the file formats.
const PASSWORD_SYMBOLS: &str = "-_.!*+~^@";
/// Symbols allowed in the password part of a URL (unreserved + sub-delims).
const URL_PASSWORD_SYMBOLS: &str = "-_.~!*";

/// Substrings that would make a random body look like a placeholder.
const STOPWORDS: &[&str] = &[
    "test",
    "exampl",
    "sampl",
    "dummy",
    "fake",
    "xxx",
    "redact",
    "chang",
    "placeholder",
    "secret",
    "passw",
    "token",
    "todo",
    "0000",
    "1234",
    "abcd",
];

// ---------------------------------------------------------------- randomness

/// splitmix64: tiny, deterministic, and plenty random for token bodies.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (modulo bias is irrelevant here).
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    fn coin(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }

    /// `len` characters drawn uniformly from the ASCII `alphabet`.
    fn chars(&mut self, alphabet: &str, len: usize) -> String {
        let a = alphabet.as_bytes();
        (0..len).map(|_| a[self.below(a.len())] as char).collect()
    }

    fn hex(&mut self, len: usize) -> String {
        self.chars(HEX, len)
    }

    /// Random credential body, re-drawn while it could pass for a placeholder.
    fn body(&mut self, alphabet: &str, len: usize) -> String {
        loop {
            let s = self.chars(alphabet, len);
            if !looks_placeholder(&s) {
                return s;
            }
        }
    }

    /// A decimal number of exactly `len` digits, no leading zero.
    fn digits(&mut self, len: usize) -> String {
        loop {
            let s = format!(
                "{}{}",
                self.chars("123456789", 1),
                self.chars(DIGITS, len - 1)
            );
            if !looks_placeholder(&s) {
                return s;
            }
        }
    }

    /// Mixed-class password: starts with a letter and contains upper case,
    /// lower case and a digit; `symbols` are mixed into the alphabet.
    fn password(&mut self, len: usize, symbols: &str) -> String {
        let alphabet = format!("{ALNUM}{symbols}");
        loop {
            let s = format!("{}{}", self.chars(ALPHA, 1), self.chars(&alphabet, len - 1));
            let mixed = s.bytes().any(|b| b.is_ascii_uppercase())
                && s.bytes().any(|b| b.is_ascii_lowercase())
                && s.bytes().any(|b| b.is_ascii_digit());
            if mixed && !looks_placeholder(&s) {
                return s;
            }
        }
    }

    /// A random version-4 UUID.
    fn uuid(&mut self) -> String {
        format!(
            "{}-{}-4{}-{}{}-{}",
            self.hex(8),
            self.hex(4),
            self.hex(3),
            self.chars("89ab", 1),
            self.hex(3),
            self.hex(12)
        )
    }

    /// A plausible package version such as `4.17.21`.
    fn version(&mut self) -> String {
        format!(
            "{}.{}.{}",
            self.range(0, 9),
            self.range(0, 30),
            self.range(0, 20)
        )
    }
}

fn looks_placeholder(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    STOPWORDS.iter().any(|w| lower.contains(w))
        || s.as_bytes()
            .windows(4)
            .any(|w| w.iter().all(|&c| c == w[0]))
}

/// Unpadded base64url, as used by JWT segments.
fn b64url(data: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(data.len() * 4 / 3 + 3);
    for chunk in data.chunks(3) {
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let n = (u32::from(chunk[0]) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        for i in 0..=chunk.len() {
            out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Base64 text split into lines of `width` columns, `lines` lines in total
/// (the last one shorter), starting with `prefix`.
fn b64_lines(rng: &mut Rng, prefix: &str, width: usize, lines: usize) -> Vec<String> {
    let last = rng.range(width / 4, width - 4);
    let total = (width * (lines - 1) + last) / 4 * 4;
    let mut body = format!("{prefix}{}", rng.chars(B64, total - prefix.len()));
    if rng.coin() {
        body.pop();
        body.push('=');
    }
    body.as_bytes()
        .chunks(width)
        .map(|c| String::from_utf8(c.to_vec()).expect("ascii"))
        .collect()
}

/// A PEM block (`-----BEGIN {label}-----` ... `-----END {label}-----`),
/// without a trailing newline.
fn pem(rng: &mut Rng, label: &str, prefix: &str, width: usize, lines: usize) -> String {
    let body = b64_lines(rng, prefix, width, lines).join("\n");
    format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----")
}

/// An ASCII-armored OpenPGP block with a blank line after the header and a
/// CRC24 checksum line.
fn pgp_armor(rng: &mut Rng, label: &str, prefix: &str, lines: usize) -> String {
    let body = b64_lines(rng, prefix, 64, lines).join("\n");
    let crc = rng.chars(B64, 4);
    format!("-----BEGIN {label}-----\n\n{body}\n={crc}\n-----END {label}-----")
}

/// A JWT: base64url of real JSON header and payload, random HS256-sized signature.
fn jwt(rng: &mut Rng) -> String {
    let header = match rng.below(3) {
        0 => r#"{"alg":"HS256","typ":"JWT"}"#.to_string(),
        1 => format!(r#"{{"alg":"RS256","typ":"JWT","kid":"{}"}}"#, rng.hex(16)),
        _ => r#"{"typ":"JWT","alg":"HS256"}"#.to_string(),
    };
    let sub = rng.digits(8);
    let name = rng.pick(&["Jane Doe", "Ada Lovelace", "Grace Hopper", "Alan Turing"]);
    let user = rng.pick(USERS);
    let iat = 1_700_000_000 + rng.below(50_000_000);
    let exp = iat + 3600;
    let payload = format!(
        r#"{{"sub":"{sub}","name":"{name}","email":"{user}@acme.io","iat":{iat},"exp":{exp},"iss":"https://auth.acme.io/","scope":"read:invoices write:invoices"}}"#
    );
    let signature = rng.body(B64URL, 43);
    format!(
        "{}.{}.{signature}",
        b64url(header.as_bytes()),
        b64url(payload.as_bytes())
    )
}

/// An OpenSSH public key line (`<algo> <blob> <comment>`); `variant` picks the algorithm.
fn ssh_public_key(rng: &mut Rng, variant: usize, comment: bool) -> String {
    let key = match variant % 3 {
        0 => format!(
            "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ{}",
            rng.chars(B64, 342)
        ),
        1 => format!(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{}",
            rng.chars(B64, 47)
        ),
        _ => format!(
            "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBB{}=",
            rng.chars(B64, 87)
        ),
    };
    if comment {
        let user = rng.pick(USERS);
        let host = rng.pick(&["laptop", "ci", "bastion", "build-01"]);
        format!("{key} {user}@{host}")
    } else {
        key
    }
}

/// Replaces `%NAME%` markers; used for templates full of literal braces.
fn fill(template: &str, vars: &[(&str, &str)]) -> String {
    vars.iter().fold(template.to_string(), |acc, (k, v)| {
        acc.replace(&format!("%{k}%"), v)
    })
}

fn indent(text: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    text.lines()
        .map(|l| format!("{pad}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

// ---------------------------------------------------------------- corpus model

/// What a labelled line range holds.
#[derive(Clone, Copy)]
struct Label {
    kind: &'static str,
    positive: bool,
}

const fn pos(kind: &'static str) -> Label {
    Label {
        kind,
        positive: true,
    }
}

const fn neg(kind: &'static str) -> Label {
    Label {
        kind,
        positive: false,
    }
}

/// One labelled sample: lines `start..=end` (1-based) of `Corpus::files[file]`.
struct Sample {
    kind: &'static str,
    positive: bool,
    file: usize,
    start: usize,
    end: usize,
}

/// A generated file; `rel` is its path relative to the corpus root.
struct GenFile {
    rel: String,
    content: String,
}

#[derive(Default)]
struct Corpus {
    files: Vec<GenFile>,
    samples: Vec<Sample>,
}

impl Corpus {
    fn write_to(&self, root: &Path) {
        for f in &self.files {
            let path = root.join(&f.rel);
            std::fs::create_dir_all(path.parent().expect("parent dir"))
                .unwrap_or_else(|e| panic!("creating dir for {}: {e}", path.display()));
            std::fs::write(&path, &f.content)
                .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        }
    }

    fn count(&self, positive: bool) -> usize {
        self.samples
            .iter()
            .filter(|s| s.positive == positive)
            .count()
    }

    /// Line `line` (1-based) of file `file`, trimmed and shortened for display.
    fn excerpt(&self, file: usize, line: usize) -> String {
        let text = self.files[file]
            .content
            .lines()
            .nth(line.saturating_sub(1))
            .unwrap_or("");
        let text = text.trim();
        if text.chars().count() > 140 {
            format!("{}...", text.chars().take(140).collect::<String>())
        } else {
            text.to_string()
        }
    }
}

/// A file under construction: its lines plus labelled line ranges.
#[derive(Default)]
struct Doc {
    lines: Vec<String>,
    marks: Vec<(Label, usize, usize)>,
}

impl Doc {
    fn push(&mut self, line: impl Into<String>) {
        self.lines.push(line.into());
    }

    /// Appends `text` (possibly several lines) as one labelled sample.
    fn sample(&mut self, label: Label, text: &str) {
        let start = self.lines.len() + 1;
        self.lines.extend(text.split('\n').map(str::to_owned));
        self.marks.push((label, start, self.lines.len()));
    }
}

/// One `key = value` entry of a config-style file. `key` is given as
/// space-separated words and rendered in the file format's naming convention,
/// unless it already contains `.`, `_` or capitals (then it is used verbatim).
struct Entry {
    key: String,
    exact: bool,
    value: String,
    /// Emit `value` verbatim (no quoting / escaping): references such as
    /// `var.db_password` or `${API_KEY}` in shell syntax.
    raw: bool,
    label: Option<Label>,
}

impl Entry {
    fn new(key: &str, value: impl Into<String>, label: Option<Label>) -> Self {
        let exact = !key.contains(' ')
            && key.contains(|c: char| c == '.' || c == '_' || c.is_ascii_uppercase());
        Entry {
            key: key.to_string(),
            exact,
            value: value.into(),
            raw: false,
            label,
        }
    }

    fn raw(mut self) -> Self {
        self.raw = true;
        self
    }
}

/// Innocuous settings surrounding every sample in config-style files.
const FILLER: &[(&str, &str)] = &[
    ("region", "us-east-1"),
    ("port", "8080"),
    ("log level", "info"),
    ("service name", "billing-api"),
    ("db host", "db.internal"),
    ("timeout seconds", "30"),
    ("environment", "production"),
    ("max connections", "50"),
    ("retry count", "3"),
    ("cache ttl", "300"),
    ("bucket name", "assets-prod"),
    ("queue name", "jobs-default"),
    ("enable metrics", "true"),
    ("base url", "https://api.acme.io"),
    ("username", "svc-deploy"),
    ("project id", "acme-prod"),
];

const SERVICES: &[&str] = &[
    "billing-api",
    "checkout",
    "notifier",
    "ingest",
    "reports",
    "auth-gateway",
    "search",
    "payments-worker",
];
const SECTIONS: &[&str] = &[
    "default",
    "app",
    "service",
    "database",
    "integrations",
    "auth",
    "production",
];
const USERS: &[&str] = &["jane", "deploy", "ops", "ci", "mlopez", "akumar"];
const XML_DECL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fmt {
    Env,
    Shell,
    Yaml,
    Json,
    Toml,
    Properties,
    Hcl,
    Ini,
    Xml,
    Python,
    Js,
    Ts,
    Go,
    Java,
}

const ALL_FMTS: [Fmt; 14] = [
    Fmt::Env,
    Fmt::Yaml,
    Fmt::Json,
    Fmt::Toml,
    Fmt::Properties,
    Fmt::Hcl,
    Fmt::Ini,
    Fmt::Xml,
    Fmt::Shell,
    Fmt::Python,
    Fmt::Js,
    Fmt::Ts,
    Fmt::Go,
    Fmt::Java,
];

#[derive(Clone, Copy)]
enum Case {
    UpperSnake,
    LowerSnake,
    Camel,
    Dotted,
}

impl Fmt {
    fn case(self) -> Case {
        match self {
            Fmt::Env | Fmt::Shell | Fmt::Python | Fmt::Java => Case::UpperSnake,
            Fmt::Yaml | Fmt::Toml | Fmt::Hcl | Fmt::Ini => Case::LowerSnake,
            Fmt::Json | Fmt::Js | Fmt::Ts | Fmt::Go | Fmt::Xml => Case::Camel,
            Fmt::Properties => Case::Dotted,
        }
    }

    fn file_names(self) -> &'static [&'static str] {
        match self {
            Fmt::Env => &[
                "app.env",
                "production.env",
                "local.env",
                "docker.env",
                "service.env",
            ],
            Fmt::Shell => &["deploy.sh", "bootstrap.sh", "entrypoint.sh", "release.sh"],
            Fmt::Yaml => &[
                "config.yaml",
                "application.yml",
                "values.yaml",
                "settings.yml",
                "secrets.yaml",
            ],
            Fmt::Json => &[
                "config.json",
                "appsettings.json",
                "settings.json",
                "local.settings.json",
            ],
            Fmt::Toml => &["config.toml", "settings.toml", "app.toml"],
            Fmt::Properties => &[
                "application.properties",
                "app.properties",
                "gradle.properties",
            ],
            Fmt::Hcl => &["main.tf", "provider.tf", "secrets.tf", "vault.hcl"],
            Fmt::Ini => &["config.ini", "settings.ini", "app.cfg", "service.conf"],
            Fmt::Xml => &["config.xml", "settings.xml", "web.config", "app.config"],
            Fmt::Python => &["settings.py", "config.py", "local_settings.py", "client.py"],
            Fmt::Js => &["config.js", "index.js", "server.js", "keys.js"],
            Fmt::Ts => &["config.ts", "env.ts", "client.ts", "constants.ts"],
            Fmt::Go => &["config.go", "main.go", "client.go"],
            Fmt::Java => &["Config.java", "Settings.java", "ApiClient.java"],
        }
    }
}

/// The format for the `i`-th sample of a kind: rotates through all formats,
/// starting at a per-kind random offset `base`.
fn fmt_at(base: usize, i: usize) -> Fmt {
    ALL_FMTS[(base + i) % ALL_FMTS.len()]
}

fn key_case(words: &str, case: Case) -> String {
    let parts: Vec<&str> = words.split_whitespace().collect();
    match case {
        Case::UpperSnake => parts.join("_").to_ascii_uppercase(),
        Case::LowerSnake => parts.join("_"),
        Case::Dotted => parts.join("."),
        Case::Camel => {
            let mut out = String::new();
            for (i, p) in parts.iter().enumerate() {
                if i == 0 {
                    out.push_str(p);
                } else {
                    out.push_str(&capitalize(p));
                }
            }
            out
        }
    }
}

fn capitalize(s: &str) -> String {
    let mut cs = s.chars();
    match cs.next() {
        Some(first) => format!("{}{}", first.to_ascii_uppercase(), cs.as_str()),
        None => String::new(),
    }
}

fn dq(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}

fn sq(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn xml_escape(v: &str) -> String {
    v.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn yaml_scalar(rng: &mut Rng, v: &str) -> String {
    let special = v.is_empty()
        || v.starts_with(|c: char| "!&*{}[]|>'\"%@`#,?:-<".contains(c))
        || v.contains(": ")
        || v.contains(" #");
    match (special, rng.below(3)) {
        (true, _) | (false, 0) => dq(v),
        (false, 1) => format!("'{}'", v.replace('\'', "''")),
        _ => v.to_string(),
    }
}

/// Quotes / escapes `v` the way the format would usually spell a string.
fn render_value(rng: &mut Rng, fmt: Fmt, v: &str, raw: bool) -> String {
    if raw {
        return v.to_string();
    }
    match fmt {
        Fmt::Env => {
            let needs_quotes = v.is_empty() || v.contains(|c: char| " ;&|<>$`'\"()#*".contains(c));
            if needs_quotes || rng.below(3) == 0 {
                dq(v)
            } else {
                v.to_string()
            }
        }
        Fmt::Shell => {
            if rng.below(4) == 0 {
                sq(v)
            } else {
                dq(v)
            }
        }
        Fmt::Yaml => yaml_scalar(rng, v),
        Fmt::Ini | Fmt::Properties => v.to_string(),
        Fmt::Xml => xml_escape(v),
        Fmt::Python | Fmt::Js | Fmt::Ts => {
            if rng.coin() {
                dq(v)
            } else {
                sq(v)
            }
        }
        Fmt::Json | Fmt::Toml | Fmt::Hcl | Fmt::Go | Fmt::Java => dq(v),
    }
}

/// Renders a config-style file of `entries` in `fmt`, with the wrapper the
/// format needs (JSON braces, XML root, HCL block, Java class, ...).
fn render_kv(rng: &mut Rng, fmt: Fmt, file: &str, entries: Vec<Entry>) -> Doc {
    let mut doc = Doc::default();
    let svc = rng.pick(SERVICES);
    let section = rng.pick(SECTIONS);
    let dotnet = file.ends_with(".config");
    let js_object = matches!(fmt, Fmt::Js | Fmt::Ts) && rng.coin();
    let n = entries.len();

    let indent: &str = match fmt {
        Fmt::Env => {
            if rng.coin() {
                doc.push(format!("# {svc}"));
            }
            ""
        }
        Fmt::Shell => {
            doc.push("#!/usr/bin/env bash");
            doc.push("set -euo pipefail");
            doc.push("");
            ""
        }
        Fmt::Yaml => {
            if rng.coin() {
                doc.push(format!("{section}:"));
                "  "
            } else {
                ""
            }
        }
        Fmt::Json => {
            doc.push("{");
            "  "
        }
        Fmt::Toml | Fmt::Ini => {
            doc.push(format!("[{section}]"));
            ""
        }
        Fmt::Properties => {
            doc.push(format!("# {svc}"));
            ""
        }
        Fmt::Hcl => {
            if rng.coin() {
                doc.push(format!("module \"{svc}\" {{"));
                doc.push(format!("  source = \"./modules/{svc}\""));
            } else {
                doc.push("locals {");
            }
            "  "
        }
        Fmt::Xml if dotnet => {
            doc.push(XML_DECL);
            doc.push("<configuration>");
            doc.push("  <appSettings>");
            "    "
        }
        Fmt::Xml => {
            doc.push(XML_DECL);
            doc.push("<config>");
            "  "
        }
        Fmt::Python => {
            doc.push("import os");
            doc.push("");
            ""
        }
        Fmt::Js if js_object => {
            doc.push("module.exports = {");
            "  "
        }
        Fmt::Js => {
            doc.push("\"use strict\";");
            doc.push("");
            ""
        }
        Fmt::Ts if js_object => {
            doc.push("export const config = {");
            "  "
        }
        Fmt::Ts => "",
        Fmt::Go => {
            doc.push("package config");
            doc.push("");
            doc.push("var (");
            "\t"
        }
        Fmt::Java => {
            doc.push(format!("package com.acme.{};", svc.replace('-', "")));
            doc.push("");
            doc.push(format!(
                "public final class {} {{",
                file.trim_end_matches(".java")
            ));
            "    "
        }
    };

    for (i, e) in entries.into_iter().enumerate() {
        let key = if e.exact {
            e.key.clone()
        } else {
            key_case(&e.key, fmt.case())
        };
        let value = render_value(rng, fmt, &e.value, e.raw);
        let comma = if i + 1 == n { "" } else { "," };
        let line = match fmt {
            Fmt::Env => format!("{key}={value}"),
            Fmt::Shell => format!("export {key}={value}"),
            Fmt::Yaml => format!("{indent}{key}: {value}"),
            Fmt::Json => format!("{indent}\"{key}\": {value}{comma}"),
            Fmt::Toml | Fmt::Hcl | Fmt::Go => format!("{indent}{key} = {value}"),
            Fmt::Ini => format!("{key} = {value}").trim_end().to_string(),
            Fmt::Properties => format!("{key}={value}"),
            Fmt::Xml if dotnet => format!(
                "{indent}<add key=\"{}\" value=\"{value}\" />",
                capitalize(&key)
            ),
            Fmt::Xml => format!("{indent}<{key}>{value}</{key}>"),
            Fmt::Python => format!("{key} = {value}"),
            Fmt::Js | Fmt::Ts if js_object => format!("{indent}{key}: {value},"),
            Fmt::Js => format!("const {key} = {value};"),
            Fmt::Ts => format!("export const {key}: string = {value};"),
            Fmt::Java => format!("{indent}static final String {key} = {value};"),
        };
        match e.label {
            Some(label) => doc.sample(label, &line),
            None => doc.push(line),
        }
    }

    match fmt {
        Fmt::Shell => {
            doc.push("");
            doc.push(format!("exec /usr/local/bin/{svc} \"$@\""));
        }
        Fmt::Json | Fmt::Hcl | Fmt::Java => doc.push("}"),
        Fmt::Xml if dotnet => {
            doc.push("  </appSettings>");
            doc.push("</configuration>");
        }
        Fmt::Xml => doc.push("</config>"),
        Fmt::Js if js_object => doc.push("};"),
        Fmt::Ts if js_object => doc.push("} as const;"),
        Fmt::Go => doc.push(")"),
        _ => {}
    }
    doc
}

/// Corpus generator: the RNG plus the corpus being built.
struct Gen {
    rng: Rng,
    out: Corpus,
}

impl Gen {
    /// Adds `doc` as `sNNNN/<name>`, recording its labelled ranges.
    fn add(&mut self, name: &str, doc: Doc) {
        let file = self.out.files.len();
        for (label, start, end) in doc.marks {
            self.out.samples.push(Sample {
                kind: label.kind,
                positive: label.positive,
                file,
                start,
                end,
            });
        }
        let mut content = doc.lines.join("\n");
        content.push('\n');
        self.out.files.push(GenFile {
            rel: format!("s{file:04}/{name}"),
            content,
        });
    }

    /// Adds a hand-written file; every line starting with `@@` (marker
    /// stripped) is a one-line sample labelled `label`.
    fn snippet(&mut self, name: &str, label: Label, text: &str) {
        let mut doc = Doc::default();
        for line in text.trim_start_matches('\n').lines() {
            match line.strip_prefix("@@") {
                Some(l) => doc.sample(label, l),
                None => doc.push(line),
            }
        }
        self.add(name, doc);
    }

    /// Adds a config-style file holding `entries` between a few filler settings.
    fn kv(&mut self, fmt: Fmt, name: Option<&str>, entries: Vec<Entry>) {
        let before = self.rng.range(1, 3);
        let after = self.rng.range(0, 2);
        let start = self.rng.below(FILLER.len());
        let mut fill: Vec<Entry> = (0..before + after)
            .map(|i| {
                let (k, v) = FILLER[(start + i) % FILLER.len()];
                Entry::new(k, v, None)
            })
            .collect();
        let tail = fill.split_off(before);
        fill.extend(entries);
        fill.extend(tail);
        let file = match name {
            Some(n) => n.to_string(),
            None => self.rng.pick(fmt.file_names()).to_string(),
        };
        let doc = render_kv(&mut self.rng, fmt, &file, fill);
        self.add(&file, doc);
    }

    /// A config-style file with a single labelled `key = value` sample.
    fn kv1(&mut self, fmt: Fmt, label: Label, key_words: &str, value: String) {
        self.kv(fmt, None, vec![Entry::new(key_words, value, Some(label))]);
    }

    /// Adds a multi-line block (private key, public key, certificate) in one
    /// of eight containers: its own file, a Kubernetes Secret, a Python
    /// triple-quoted string, a Go raw string, a TOML multi-line string, a
    /// shell heredoc, a JSON string with `\n` escapes, or a `.env` line.
    fn block(
        &mut self,
        container: usize,
        own_names: &[&str],
        key_words: &str,
        label: Label,
        block: &str,
    ) {
        let svc = self.rng.pick(SERVICES);
        let own_name = self.rng.pick(own_names);
        let escaped = block.replace('\n', "\\n");
        let mut doc = Doc::default();
        let name = match container % 8 {
            0 => {
                doc.sample(label, block);
                own_name.to_string()
            }
            1 => {
                doc.push("apiVersion: v1");
                doc.push("kind: Secret");
                doc.push("metadata:");
                doc.push(format!("  name: {svc}-keys"));
                doc.push("type: Opaque");
                doc.push("stringData:");
                let key = key_case(key_words, Case::LowerSnake);
                doc.sample(label, &format!("  {key}: |\n{}", indent(block, 4)));
                "secret.yaml".to_string()
            }
            2 => {
                doc.push("import base64");
                doc.push("");
                let key = key_case(key_words, Case::UpperSnake);
                doc.sample(label, &format!("{key} = \"\"\"{block}\n\"\"\""));
                "keys.py".to_string()
            }
            3 => {
                doc.push("package keys");
                doc.push("");
                let key = key_case(key_words, Case::Camel);
                doc.sample(label, &format!("const {key} = `{block}`"));
                "keys.go".to_string()
            }
            4 => {
                doc.push("[tls]");
                doc.push(format!("server_name = \"{svc}.internal\""));
                let key = key_case(key_words, Case::LowerSnake);
                doc.sample(label, &format!("{key} = \"\"\"\n{block}\n\"\"\""));
                "tls.toml".to_string()
            }
            5 => {
                doc.push("#!/bin/sh");
                doc.push("set -eu");
                doc.push(format!("install -d -m 700 /etc/{svc}"));
                doc.sample(
                    label,
                    &format!("cat > /etc/{svc}/{own_name} <<'EOF'\n{block}\nEOF"),
                );
                doc.push(format!("chmod 600 /etc/{svc}/{own_name}"));
                "install-keys.sh".to_string()
            }
            6 => {
                doc.push("{");
                doc.push(format!("  \"name\": \"{svc}\","));
                let key = key_case(key_words, Case::LowerSnake);
                doc.sample(label, &format!("  \"{key}\": \"{escaped}\\n\","));
                doc.push("  \"algorithm\": \"RS256\"");
                doc.push("}");
                "signing.json".to_string()
            }
            _ => {
                doc.push(format!("# {svc}"));
                let key = key_case(key_words, Case::UpperSnake);
                doc.sample(label, &format!("{key}=\"{escaped}\\n\""));
                doc.push("LOG_LEVEL=info");
                "keys.env".to_string()
            }
        };
        self.add(&name, doc);
    }
}

// ---------------------------------------------------------------- positives

/// `n` samples of `kind`: a config-style file per sample, rotating through
/// every format, under a key picked from `keys`.
fn provider(
    g: &mut Gen,
    kind: &'static str,
    n: usize,
    keys: &[&str],
    make: impl Fn(&mut Rng) -> String,
) {
    let base = g.rng.below(ALL_FMTS.len());
    for i in 0..n {
        let fmt = fmt_at(base, i);
        let key = g.rng.pick(keys);
        let value = make(&mut g.rng);
        g.kv1(fmt, pos(kind), key, value);
    }
}

/// Like [`provider`], but every `every`-th sample is written by `special`
/// (returns a file name and a `@@`-marked snippet) instead, for the places a
/// credential usually lives (`npmrc`, `pypirc`, a `curl` call, ...).
fn provider_special(
    g: &mut Gen,
    kind: &'static str,
    n: usize,
    keys: &[&str],
    make: impl Fn(&mut Rng) -> String,
    every: usize,
    special: impl Fn(&mut Rng, &str) -> (String, String),
) {
    let base = g.rng.below(ALL_FMTS.len());
    for i in 0..n {
        let value = make(&mut g.rng);
        if i % every == 0 {
            let (name, text) = special(&mut g.rng, &value);
            g.snippet(&name, pos(kind), &text);
        } else {
            let fmt = fmt_at(base, i);
            let key = g.rng.pick(keys);
            g.kv1(fmt, pos(kind), key, value);
        }
    }
}

/// `n` files holding an AWS access key id and secret access key side by side
/// (an `~/.aws/credentials` file when the format is INI).
fn aws_pairs(
    g: &mut Gen,
    n: usize,
    labels: (Label, Label),
    mut make: impl FnMut(&mut Rng, usize) -> (String, String),
) {
    let base = g.rng.below(ALL_FMTS.len());
    for i in 0..n {
        let fmt = fmt_at(base, i);
        let (id, secret) = make(&mut g.rng, i);
        let name = (fmt == Fmt::Ini).then_some("credentials");
        let entries = vec![
            Entry::new("aws access key id", id, Some(labels.0)),
            Entry::new("aws secret access key", secret, Some(labels.1)),
        ];
        g.kv(fmt, name, entries);
    }
}

fn gcp_service_accounts(g: &mut Gen, n: usize) {
    for i in 0..n {
        let r = &mut g.rng;
        let project = format!(
            "{}-{}",
            r.pick(&["acme-prod", "billing", "data-platform", "ml-infra"]),
            r.digits(6)
        );
        let account = r.pick(&["deployer", "ci-runner", "bq-loader", "terraform"]);
        let key_id = r.hex(40);
        let lines = r.range(16, 26);
        let body = b64_lines(r, "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", 64, lines).join("\\n");
        let client_id = r.digits(21);
        let text = format!(
            r#"{{
  "type": "service_account",
  "project_id": "{project}",
  "private_key_id": "{key_id}",
  "private_key": "-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n",
  "client_email": "{account}@{project}.iam.gserviceaccount.com",
  "client_id": "{client_id}",
  "auth_uri": "https://accounts.google.com/o/oauth2/auth",
  "token_uri": "https://oauth2.googleapis.com/token",
  "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
  "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/{account}%40{project}.iam.gserviceaccount.com",
  "universe_domain": "googleapis.com"
}}"#
        );
        let name = match i % 4 {
            0 => "service-account.json".to_string(),
            1 => "credentials.json".to_string(),
            2 => format!("{project}-{}.json", &key_id[..12]),
            _ => "gcp-key.json".to_string(),
        };
        let mut doc = Doc::default();
        doc.sample(pos("gcp-service-account"), &text);
        g.add(&name, doc);
    }
}

struct KeySpec {
    kind: &'static str,
    label: &'static str,
    prefix: &'static str,
    width: usize,
    lines: (usize, usize),
    count: usize,
    files: &'static [&'static str],
}

const PRIVATE_KEYS: &[KeySpec] = &[
    KeySpec {
        kind: "private-key-rsa",
        label: "RSA PRIVATE KEY",
        prefix: "MIIEowIBAAKCAQEA",
        width: 64,
        lines: (12, 25),
        count: 10,
        files: &["id_rsa", "server.key", "private.pem", "tls.key"],
    },
    KeySpec {
        kind: "private-key-ec",
        label: "EC PRIVATE KEY",
        prefix: "MHcCAQEEI",
        width: 64,
        lines: (3, 4),
        count: 8,
        files: &["ec.key", "jwt-signing.pem", "es256.key"],
    },
    KeySpec {
        kind: "private-key-openssh",
        label: "OPENSSH PRIVATE KEY",
        prefix: "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAA",
        width: 70,
        lines: (5, 27),
        count: 8,
        files: &["id_ed25519", "id_ecdsa", "deploy_key"],
    },
    KeySpec {
        kind: "private-key-pkcs8",
        label: "PRIVATE KEY",
        prefix: "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
        width: 64,
        lines: (10, 26),
        count: 8,
        files: &["key.pem", "signing-key.pem", "app.key"],
    },
    KeySpec {
        kind: "private-key-pgp",
        label: "PGP PRIVATE KEY BLOCK",
        prefix: "lQOYBG",
        width: 64,
        lines: (12, 30),
        count: 6,
        files: &["private.asc", "signing-key.asc", "secring.asc"],
    },
];

fn private_keys(g: &mut Gen) {
    const KEYS: &[&str] = &[
        "private key",
        "signing key",
        "tls key",
        "ssh private key",
        "jwt private key",
        "deploy key",
    ];
    for (k, spec) in PRIVATE_KEYS.iter().enumerate() {
        for i in 0..spec.count {
            let lines = g.rng.range(spec.lines.0, spec.lines.1);
            let block = if spec.label.contains("PGP") {
                pgp_armor(&mut g.rng, spec.label, spec.prefix, lines)
            } else {
                pem(&mut g.rng, spec.label, spec.prefix, spec.width, lines)
            };
            let key = g.rng.pick(KEYS);
            g.block(i + k, spec.files, key, pos(spec.kind), &block);
        }
    }
}

fn url_credentials(g: &mut Gen, n: usize) {
    let base = g.rng.below(ALL_FMTS.len());
    for i in 0..n {
        let r = &mut g.rng;
        let user = r.pick(&[
            "app",
            "svc_billing",
            "admin",
            "deploy",
            "reporting",
            "etl_user",
        ]);
        let len = r.range(12, 28);
        let pw = r.password(len, URL_PASSWORD_SYMBOLS);
        let db = r.pick(&["app", "billing", "orders", "analytics"]);
        let (keys, url): (&[&str], String) = match i % 6 {
            0 => {
                let scheme = r.pick(&["postgres", "postgresql"]);
                (
                    &["database url", "db url", "postgres dsn"],
                    format!("{scheme}://{user}:{pw}@db.internal:5432/{db}"),
                )
            }
            1 => (
                &["database url", "mysql url"],
                format!("mysql://{user}:{pw}@mysql.prod.internal:3306/{db}"),
            ),
            2 => {
                let cluster = r.chars(LOWER_ALNUM, 5);
                (
                    &["mongo uri", "mongodb url"],
                    format!(
                        "mongodb+srv://{user}:{pw}@cluster0.{cluster}.mongodb.net/{db}?retryWrites=true&w=majority"
                    ),
                )
            }
            3 => {
                let url = if r.coin() {
                    format!("redis://:{pw}@redis.internal:6379/0")
                } else {
                    format!(
                        "rediss://default:{pw}@cache-{}.upstash.io:6379",
                        r.chars(LOWER_ALNUM, 6)
                    )
                };
                (&["redis url", "cache url"], url)
            }
            4 => (
                &["broker url", "amqp url", "celery broker url"],
                format!("amqp://{user}:{pw}@rabbitmq.internal:5672/{db}"),
            ),
            _ => (
                &["index url", "registry url", "artifactory url"],
                format!("https://{user}:{pw}@artifacts.acme.io/repository/pypi/simple"),
            ),
        };
        let key = r.pick(keys);
        let fmt = fmt_at(base, i);
        g.kv1(fmt, pos("url-credentials"), key, url);
    }
}

fn generic_assignments(g: &mut Gen) {
    const KINDS: &[(&str, usize, &[&str])] = &[
        (
            "generic-password",
            24,
            &[
                "password",
                "db password",
                "database password",
                "admin password",
                "smtp password",
                "mysql root password",
                "ldap bind password",
                "keystore password",
            ],
        ),
        (
            "generic-secret",
            22,
            &[
                "secret",
                "app secret",
                "jwt secret",
                "session secret",
                "secret key",
                "webhook secret",
                "signing secret",
                "encryption secret",
            ],
        ),
        (
            "generic-api-key",
            22,
            &[
                "api key",
                "apikey",
                "service api key",
                "partner api key",
                "backend api key",
                "analytics api key",
                "internal api key",
            ],
        ),
        (
            "generic-token",
            22,
            &[
                "token",
                "auth token",
                "access token",
                "api token",
                "bearer token",
                "refresh token",
                "service token",
            ],
        ),
        (
            "generic-client-secret",
            20,
            &[
                "client secret",
                "oauth client secret",
                "azure client secret",
                "okta client secret",
                "auth0 client secret",
            ],
        ),
    ];
    for &(kind, n, keys) in KINDS {
        provider(g, kind, n, keys, |r| {
            let len = r.range(12, 32);
            let symbols = if r.coin() { PASSWORD_SYMBOLS } else { "" };
            r.password(len, symbols)
        });
    }
}

fn positives(g: &mut Gen) {
    aws_pairs(
        g,
        16,
        (pos("aws-access-key-id"), pos("aws-secret-access-key")),
        |r, _| (format!("AKIA{}", r.body(BASE32, 16)), r.body(B64, 40)),
    );
    provider(
        g,
        "gcp-api-key",
        16,
        &[
            "google api key",
            "gcp api key",
            "maps api key",
            "firebase api key",
            "youtube api key",
        ],
        |r| format!("AIza{}", r.body(B64URL, 35)),
    );
    gcp_service_accounts(g, 12);
    provider(
        g,
        "azure-storage-connection-string",
        14,
        &[
            "azure storage connection string",
            "storage connection string",
            "azure web jobs storage",
        ],
        |r| {
            let account = format!(
                "{}{}",
                r.pick(&["acmeprod", "billingstore", "assets", "datalake"]),
                r.digits(3)
            );
            let key = r.body(B64, 86);
            format!(
                "DefaultEndpointsProtocol=https;AccountName={account};AccountKey={key}==;EndpointSuffix=core.windows.net"
            )
        },
    );
    provider(
        g,
        "digitalocean-pat",
        14,
        &[
            "digitalocean token",
            "do token",
            "digitalocean access token",
        ],
        |r| format!("dop_v1_{}", r.body(HEX, 64)),
    );

    const GITHUB_KEYS: &[&str] = &[
        "github token",
        "gh token",
        "github pat",
        "github access token",
    ];
    provider(g, "github-pat-classic", 16, GITHUB_KEYS, |r| {
        format!("ghp_{}", r.body(ALNUM, 36))
    });
    provider(g, "github-pat-fine-grained", 14, GITHUB_KEYS, |r| {
        format!("github_pat_{}_{}", r.body(ALNUM, 22), r.body(ALNUM, 59))
    });
    provider(
        g,
        "github-oauth-token",
        12,
        &["github oauth token", "gh oauth token"],
        |r| format!("gho_{}", r.body(ALNUM, 36)),
    );
    provider(
        g,
        "github-app-token",
        14,
        &[
            "github app token",
            "installation token",
            "github user token",
        ],
        |r| {
            let prefix = if r.coin() { "ghs" } else { "ghu" };
            format!("{prefix}_{}", r.body(ALNUM, 36))
        },
    );
    provider(
        g,
        "gitlab-pat",
        14,
        &[
            "gitlab token",
            "gitlab pat",
            "gitlab private token",
            "gitlab api token",
        ],
        |r| format!("glpat-{}", r.body(B64URL, 20)),
    );

    provider(
        g,
        "slack-bot-token",
        14,
        &["slack bot token", "slack token"],
        |r| {
            let (a, b) = (r.range(10, 13), r.range(10, 13));
            format!("xoxb-{}-{}-{}", r.digits(a), r.digits(b), r.body(ALNUM, 24))
        },
    );
    provider(
        g,
        "slack-user-token",
        12,
        &["slack user token", "slack oauth token"],
        |r| {
            let (a, b, c) = (r.range(10, 13), r.range(10, 13), r.range(10, 13));
            format!(
                "xoxp-{}-{}-{}-{}",
                r.digits(a),
                r.digits(b),
                r.digits(c),
                r.body(HEX, 32)
            )
        },
    );
    provider_special(
        g,
        "slack-webhook",
        14,
        &["slack webhook url", "slack webhook", "alerts webhook url"],
        |r| {
            let (t, b) = (r.range(8, 10), r.range(8, 10));
            format!(
                "https://hooks.slack.com/services/T{}/B{}/{}",
                r.body(UPPER_ALNUM, t),
                r.body(UPPER_ALNUM, b),
                r.body(ALNUM, 24)
            )
        },
        4,
        |_, url| {
            let text = format!(
                "#!/bin/sh\n# post a deploy notification\n@@curl -fsS -X POST -H 'Content-type: application/json' --data '{{\"text\":\"deploy finished\"}}' {url}"
            );
            ("notify.sh".to_string(), text)
        },
    );
    provider_special(
        g,
        "discord-webhook",
        14,
        &["discord webhook url", "discord webhook"],
        |r| {
            let host = if r.below(4) == 0 {
                "discordapp.com"
            } else {
                "discord.com"
            };
            format!(
                "https://{host}/api/webhooks/{}/{}",
                r.digits(18),
                r.body(B64URL, 68)
            )
        },
        4,
        |_, url| {
            let text = format!(
                "#!/usr/bin/env bash\n@@curl -fsS -H \"Content-Type: application/json\" -d '{{\"content\":\"build failed\"}}' \"{url}\""
            );
            ("alert.sh".to_string(), text)
        },
    );
    provider(g, "telegram-bot-token", 14, &["telegram bot token"], |r| {
        format!("{}:AA{}", r.digits(9), r.body(B64URL, 33))
    });
    provider(
        g,
        "twilio-api-key",
        14,
        &["twilio api key", "twilio key"],
        |r| format!("SK{}", r.body(HEX, 32)),
    );
    provider(
        g,
        "sendgrid-api-key",
        14,
        &["sendgrid api key", "sendgrid key"],
        |r| format!("SG.{}.{}", r.body(B64URL, 22), r.body(B64URL, 43)),
    );
    provider(
        g,
        "mailgun-api-key",
        14,
        &["mailgun api key", "mailgun key"],
        |r| format!("key-{}", r.body(HEX, 32)),
    );
    provider(
        g,
        "stripe-secret-key",
        14,
        &["stripe secret key", "stripe api key", "stripe key"],
        |r| {
            let len = match r.below(4) {
                0 => 24,
                1 => 99,
                _ => r.range(24, 99),
            };
            format!("sk_live_{}", r.body(ALNUM, len))
        },
    );
    provider(
        g,
        "stripe-restricted-key",
        12,
        &["stripe restricted key", "stripe rk"],
        |r| {
            let len = r.range(24, 99);
            format!("rk_live_{}", r.body(ALNUM, len))
        },
    );
    provider(
        g,
        "square-access-token",
        12,
        &["square access token", "square token"],
        |r| format!("sq0atp-{}", r.body(B64URL, 22)),
    );
    provider(
        g,
        "shopify-access-token",
        12,
        &["shopify access token", "shopify admin token"],
        |r| format!("shpat_{}", r.body(HEX, 32)),
    );

    provider_special(
        g,
        "npm-token",
        14,
        &["npm token", "npm auth token"],
        |r| format!("npm_{}", r.body(ALNUM, 36)),
        3,
        |_, tok| {
            let text = format!(
                "registry=https://registry.npmjs.org/\n@@//registry.npmjs.org/:_authToken={tok}\nalways-auth=true"
            );
            ("npmrc".to_string(), text)
        },
    );
    provider_special(
        g,
        "pypi-token",
        12,
        &["pypi token", "pypi api token", "twine password"],
        |r| {
            let len = r.range(70, 160);
            format!("pypi-AgEIcHlwaS5vcmc{}", r.body(B64URL, len))
        },
        3,
        |_, tok| {
            let text = format!(
                "[distutils]\nindex-servers =\n    pypi\n\n[pypi]\nusername = __token__\n@@password = {tok}"
            );
            ("pypirc".to_string(), text)
        },
    );
    provider_special(
        g,
        "dockerhub-pat",
        12,
        &["docker hub token", "dockerhub token", "docker password"],
        |r| format!("dckr_pat_{}", r.body(B64URL, 27)),
        3,
        |r, tok| {
            let svc = r.pick(SERVICES);
            let text = format!(
                "#!/usr/bin/env bash\nset -euo pipefail\n@@echo \"{tok}\" | docker login -u acmebot --password-stdin\ndocker push acme/{svc}:latest"
            );
            ("publish.sh".to_string(), text)
        },
    );
    provider_special(
        g,
        "rubygems-api-key",
        12,
        &["rubygems api key", "gem host api key"],
        |r| format!("rubygems_{}", r.body(HEX, 48)),
        3,
        |_, tok| {
            (
                "credentials".to_string(),
                format!("---\n@@:rubygems_api_key: {tok}"),
            )
        },
    );

    // Datadog keys are bare hex: only the variable name says what they are.
    let base = g.rng.below(ALL_FMTS.len());
    for i in 0..14 {
        let fmt = fmt_at(base, i);
        let key = match fmt {
            Fmt::Env | Fmt::Shell | Fmt::Python | Fmt::Java => "dd api key",
            _ => "datadog api key",
        };
        let value = g.rng.body(HEX, 32);
        g.kv1(fmt, pos("datadog-api-key"), key, value);
    }
    provider(
        g,
        "newrelic-api-key",
        12,
        &[
            "new relic api key",
            "newrelic api key",
            "new relic user key",
        ],
        |r| format!("NRAK-{}", r.body(UPPER_ALNUM, 27)),
    );
    provider_special(
        g,
        "sentry-dsn",
        14,
        &["sentry dsn"],
        |r| {
            format!(
                "https://{}@o{}.ingest.sentry.io/{}",
                r.body(HEX, 32),
                r.digits(6),
                r.digits(7)
            )
        },
        3,
        |r, dsn| {
            if r.coin() {
                let text = format!(
                    "import * as Sentry from \"@sentry/node\";\n\nSentry.init({{\n@@  dsn: \"{dsn}\",\n  tracesSampleRate: 0.1,\n}});"
                );
                ("instrument.js".to_string(), text)
            } else {
                let text = format!(
                    "import sentry_sdk\n\nsentry_sdk.init(\n@@    dsn=\"{dsn}\",\n    traces_sample_rate=0.1,\n)"
                );
                ("observability.py".to_string(), text)
            }
        },
    );
    provider(
        g,
        "openai-api-key",
        16,
        &["openai api key", "openai key"],
        |r| {
            if r.coin() {
                let len = r.range(40, 60);
                format!("sk-proj-{}", r.body(B64URL, len))
            } else {
                format!("sk-{}T3BlbkFJ{}", r.body(ALNUM, 20), r.body(ALNUM, 20))
            }
        },
    );
    provider(
        g,
        "anthropic-api-key",
        14,
        &["anthropic api key", "claude api key"],
        |r| format!("sk-ant-api03-{}AA", r.body(B64URL, 93)),
    );
    provider(
        g,
        "huggingface-token",
        14,
        &["hf token", "huggingface token", "hugging face hub token"],
        |r| format!("hf_{}", r.body(ALPHA, 34)),
    );
    provider(g, "vault-token", 14, &["vault token"], |r| {
        format!("hvs.{}", r.body(B64URL, 90))
    });

    private_keys(g);
    provider_special(
        g,
        "jwt",
        20,
        &[
            "access token",
            "id token",
            "jwt",
            "auth token",
            "bearer token",
            "service jwt",
        ],
        jwt,
        3,
        |r, token| {
            if r.coin() {
                let text = format!(
                    "### list invoices\nGET https://api.acme.io/v1/invoices\n@@Authorization: Bearer {token}\nAccept: application/json"
                );
                ("requests.http".to_string(), text)
            } else {
                let text = format!(
                    "#!/usr/bin/env bash\n@@curl -fsS -H \"Authorization: Bearer {token}\" https://api.acme.io/v1/me"
                );
                ("smoke.sh".to_string(), text)
            }
        },
    );
    url_credentials(g, 30);
    generic_assignments(g);
}

// ---------------------------------------------------------------- hard negatives

const GENERIC_KEYS: &[&str] = &[
    "password",
    "db password",
    "admin password",
    "secret",
    "app secret",
    "jwt secret",
    "api key",
    "service api key",
    "token",
    "auth token",
    "access token",
    "client secret",
    "oauth client secret",
];

const PLACEHOLDERS: &[&str] = &[
    "changeme",
    "CHANGEME",
    "change-me",
    "REDACTED",
    "<redacted>",
    "dummy",
    "xxxxxxxxxxxxxxxx",
    "XXXXXXXXXXXX",
    "********",
    "******",
    "<your-token>",
    "<YOUR_API_KEY>",
    "your-api-key-here",
    "",
    "TODO",
    "replace-me",
    "placeholder",
    "example",
    "secret",
    "password",
    "null",
    "none",
    "test",
    "foobar",
    "<password>",
    "insert-token-here",
    "PUT_YOUR_KEY_HERE",
    "...",
];

fn placeholders(g: &mut Gen, n: usize) {
    let base = g.rng.below(ALL_FMTS.len());
    for i in 0..n {
        let fmt = fmt_at(base, i);
        let key = g.rng.pick(GENERIC_KEYS);
        let value = g.rng.pick(PLACEHOLDERS).to_string();
        g.kv1(fmt, neg("placeholder"), key, value);
    }
}

/// Documentation placeholders that keep a provider prefix.
fn prefixed_placeholders(g: &mut Gen) {
    let items = [
        ("github token", format!("ghp_{}", "x".repeat(36))),
        ("stripe secret key", format!("sk_live_{}", "x".repeat(24))),
        ("aws access key id", "AKIAXXXXXXXXXXXXXXXX".to_string()),
        ("slack bot token", "xoxb-your-bot-token-here".to_string()),
        ("gitlab token", format!("glpat-{}", "x".repeat(20))),
        ("npm token", format!("npm_{}", "X".repeat(36))),
        ("openai api key", format!("sk-{}", "x".repeat(48))),
        ("hf token", format!("hf_{}", "x".repeat(34))),
    ];
    let base = g.rng.below(ALL_FMTS.len());
    for (i, (key, value)) in items.into_iter().enumerate() {
        let fmt = fmt_at(base, i);
        g.kv1(fmt, neg("placeholder-prefixed"), key, value);
    }
}

fn template_references(g: &mut Gen) {
    const LABEL: Label = neg("template-reference");
    /// (format, key, value, emit verbatim)
    const ITEMS: &[(Fmt, &str, &str, bool)] = &[
        (Fmt::Env, "api key", "${API_KEY}", true),
        (Fmt::Env, "db password", "${DB_PASSWORD:-}", true),
        (Fmt::Env, "github token", "$GITHUB_TOKEN", true),
        (Fmt::Shell, "pgpassword", "\"$DB_PASSWORD\"", true),
        (
            Fmt::Shell,
            "github token",
            "\"${GH_TOKEN:?GH_TOKEN is not set}\"",
            true,
        ),
        (Fmt::Yaml, "password", "${POSTGRES_PASSWORD}", false),
        (
            Fmt::Yaml,
            "secret key base",
            "<%= ENV[\"SECRET_KEY_BASE\"] %>",
            true,
        ),
        (Fmt::Yaml, "token", "{{ .Values.token }}", false),
        (
            Fmt::Yaml,
            "password",
            "{{ .Values.postgresql.auth.password | b64enc | quote }}",
            true,
        ),
        (
            Fmt::Yaml,
            "password",
            "{{ with secret \"database/creds/app\" }}{{ .Data.password }}{{ end }}",
            true,
        ),
        (Fmt::Yaml, "client secret", "$(OAUTH_CLIENT_SECRET)", false),
        (Fmt::Json, "password", "${DB_PASSWORD}", false),
        (Fmt::Json, "api key", "{{API_KEY}}", false),
        (Fmt::Toml, "token", "${GITHUB_TOKEN}", false),
        (
            Fmt::Properties,
            "spring.datasource.password",
            "${DB_PASSWORD}",
            false,
        ),
        (Fmt::Properties, "api key", "${API_KEY:}", false),
        (Fmt::Hcl, "password", "var.db_password", true),
        (Fmt::Hcl, "token", "\"${var.github_token}\"", true),
        (
            Fmt::Hcl,
            "api key",
            "data.vault_generic_secret.datadog.data[\"api_key\"]",
            true,
        ),
        (Fmt::Ini, "password", "%(db_password)s", false),
        (Fmt::Ini, "secret", "${APP_SECRET}", false),
        (Fmt::Xml, "password", "${env.DB_PASSWORD}", false),
    ];
    for round in 0..2 {
        for &(fmt, key, value, raw) in ITEMS {
            let entry = Entry::new(key, value, Some(LABEL));
            let entry = if raw { entry.raw() } else { entry };
            let name = (round == 1 && fmt == Fmt::Yaml).then_some("docker-compose.yml");
            g.kv(fmt, name, vec![entry]);
        }
    }

    const WORKFLOW: &str = r#"
name: release
on:
  push:
    tags: ["v*"]
jobs:
  publish-%SVC%:
    runs-on: ubuntu-latest
    env:
@@      GITHUB_TOKEN: ${{ secrets.GITHUB_TOKEN }}
    steps:
      - uses: actions/checkout@v4
      - uses: docker/login-action@v3
        with:
          username: acmebot
@@          password: ${{ secrets.DOCKERHUB_TOKEN }}
      - run: npm publish
        env:
@@          NODE_AUTH_TOKEN: ${{ secrets.NPM_TOKEN }}
"#;
    const COMPOSE: &str = r#"
services:
  db:
    image: postgres:16
    environment:
@@      POSTGRES_PASSWORD: ${POSTGRES_PASSWORD}
  %SVC%:
    build: .
    environment:
@@      API_TOKEN: ${API_TOKEN:?required}
"#;
    const CURL: &str = r#"
#!/usr/bin/env bash
set -euo pipefail
@@curl -fsS -H "Authorization: token ${GITHUB_TOKEN}" https://api.github.com/user
@@curl -fsS -u "admin:${ADMIN_PASSWORD}" https://jenkins.acme.io/api/json
"#;
    for i in 0..8 {
        let svc = g.rng.pick(SERVICES);
        let (name, template) = match i % 4 {
            0 | 2 => ("release.yml", WORKFLOW),
            1 => ("docker-compose.yml", COMPOSE),
            _ => ("ci-check.sh", CURL),
        };
        g.snippet(name, LABEL, &fill(template, &[("SVC", svc)]));
    }
}

/// Variables read from the environment / config / arguments in source code.
fn code_references(g: &mut Gen) {
    const FILES: &[(&str, &str)] = &[
        (
            "settings.py",
            r#"
import os

@@DB_PASSWORD = os.environ["DB_PASSWORD"]
@@password = os.environ["DB_PASSWORD"]
@@API_KEY = os.environ.get("API_KEY")
@@token = os.getenv("GITHUB_TOKEN", "")
"#,
        ),
        (
            "config.py",
            r#"
from dataclasses import dataclass
from typing import Optional


@dataclass
class DatabaseConfig:
    host: str
    user: str
@@    password: str
@@    api_key: str = ""
@@    token: Optional[str] = None
"#,
        ),
        (
            "db.py",
            r#"
from .client import Client, get_token
from . import settings


@@def connect(host, user, password=None):
@@    token = get_token()
@@    secret = settings.SECRET_KEY
@@    return Client(host, user=user, password=password, token=token, secret=secret)
"#,
        ),
        (
            "api_client.py",
            r#"
class ApiClient:
    def __init__(self, api_key, client_secret):
@@        self.api_key = api_key
@@        self.client_secret = client_secret

    def refresh(self):
        resp = self.session.post(self.token_url)
@@        self.token = resp.json()["access_token"]
"#,
        ),
        (
            "accounts.py",
            r#"
def change_password(user, old_password, new_password, confirm_password):
@@    if new_password != confirm_password:
        raise ValueError("passwords do not match")
@@    user.set_password(new_password)
    user.save()
"#,
        ),
        (
            "handler.js",
            r#"
@@const token = process.env.GITHUB_TOKEN;
@@const apiKey = process.env.STRIPE_SECRET_KEY || "";

export async function handler(req, res) {
@@  const { username, password } = req.body;
  const user = await db.users.find(username);
  res.json({ ok: await user.verify(password) });
}
"#,
        ),
        (
            "types.ts",
            r#"
import { z } from "zod";

export interface Credentials {
@@  apiKey: string;
@@  clientSecret?: string;
@@  password: string | undefined;
}

export const schema = z.object({
@@  password: z.string().min(12),
@@  token: z.string().optional(),
});
"#,
        ),
        (
            "invoices.js",
            r#"
export async function fetchInvoices(token) {
  const res = await fetch(`${BASE_URL}/invoices`, {
@@    headers: { Authorization: `Bearer ${token}` },
  });
  return res.json();
}

@@const secret = await getSecret("jwt-signing-key");
"#,
        ),
        (
            "config.go",
            r#"
package config

import "os"

type Config struct {
@@	Token    string `json:"token"`
@@	Password string `yaml:"password"`
	Host     string `yaml:"host"`
}

func Load() Config {
	return Config{
@@		Token:    os.Getenv("GITHUB_TOKEN"),
@@		Password: os.Getenv("DB_PASSWORD"),
		Host:     "db.internal",
	}
}
"#,
        ),
        (
            "PaymentClient.java",
            r#"
package com.acme.billing;

import org.springframework.beans.factory.annotation.Value;

public class PaymentClient {
@@    @Value("${stripe.secret-key}")
@@    private String apiKey;
@@    private final String clientSecret;

    public PaymentClient(String clientSecret) {
@@        this.clientSecret = clientSecret;
@@        String password = System.getenv("DB_PASSWORD");
    }
}
"#,
        ),
        (
            "rotate.sh",
            r#"
#!/usr/bin/env bash
set -euo pipefail
@@read -rsp "Password: " password
@@TOKEN=$(vault kv get -field=token secret/ci/github)
@@export AWS_SECRET_ACCESS_KEY="$(aws configure get aws_secret_access_key)"
@@curl -fsS -H "Authorization: Bearer ${TOKEN}" https://api.acme.io/health
"#,
        ),
        (
            "production.rb",
            r#"
Rails.application.configure do
@@  config.secret_key_base = ENV.fetch("SECRET_KEY_BASE")
@@  config.x.db_password = Rails.application.credentials.dig(:db, :password)
end
"#,
        ),
        (
            "auth.go",
            r#"
package auth

func Login(ctx context.Context, username, password string) (*Session, error) {
@@	token, err := issueToken(ctx, username, password)
	if err != nil {
		return nil, err
	}
@@	return &Session{Token: token, APIKey: cfg.APIKey}, nil
}
"#,
        ),
        (
            "settings.ts",
            r#"
@@export const apiKey = import.meta.env.VITE_API_KEY;
@@export const clientSecret: string = requireEnv("OAUTH_CLIENT_SECRET");
@@const password = await prompt({ type: "password", message: "Password" });
"#,
        ),
    ];
    for &(name, text) in FILES {
        g.snippet(name, neg("code-reference"), text);
    }
}

/// The access key pairs from the AWS documentation.
fn example_aws_keys(g: &mut Gen, n: usize) {
    const PAIRS: [(&str, &str); 2] = [
        (
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ),
        (
            "AKIAI44QH8DHBEXAMPLE",
            "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
        ),
    ];
    let label = neg("example-aws-key");
    aws_pairs(g, n, (label, label), |_, i| {
        let (id, secret) = PAIRS[i % PAIRS.len()];
        (id.to_string(), secret.to_string())
    });
}

fn hex_hashes(g: &mut Gen, n: usize) {
    let label = neg("hex-hash");
    for i in 0..n {
        let r = &mut g.rng;
        let (h1, h2, h3) = (r.hex(64), r.hex(64), r.hex(64));
        let (c1, c2, c3) = (r.hex(40), r.hex(40), r.hex(40));
        let (m1, m2) = (r.hex(32), r.hex(32));
        let ver = r.version();
        let (name, text) = match i % 9 {
            0 => (
                "manifest.yaml",
                format!(
                    "artifacts:\n  - name: sluice-linux-amd64.tar.gz\n    url: https://releases.acme.io/sluice/{ver}/sluice-linux-amd64.tar.gz\n@@    sha256: {h1}\n  - name: sluice-darwin-arm64.tar.gz\n    url: https://releases.acme.io/sluice/{ver}/sluice-darwin-arm64.tar.gz\n@@    sha256: {h2}"
                ),
            ),
            1 => (
                "MD5SUMS",
                format!("@@{m1}  release-{ver}.tar.gz\n@@{m2}  release-{ver}.zip"),
            ),
            2 => (
                "build-info.yaml",
                format!(
                    "build:\n@@  commit: {c1}\n  branch: main\n  number: 1842\n@@  md5sum: {m1}"
                ),
            ),
            3 => (
                "git-log.txt",
                format!(
                    "@@commit {c1}\nAuthor: Jane Doe <jane@acme.io>\nDate:   Tue Mar 4 10:12:33 2025 +0100\n\n    fix: handle empty token list\n\n@@commit {c2}\nMerge: {} {}\nAuthor: Ops Bot <ops@acme.io>\nDate:   Mon Mar 3 18:01:02 2025 +0100\n\n    Merge pull request #412 from acme/rotate-keys",
                    &c3[..7],
                    &h3[..7]
                ),
            ),
            4 => (
                "SHA256SUMS",
                format!(
                    "@@{h1}  sluice-x86_64-unknown-linux-gnu.tar.gz\n@@{h2}  sluice-aarch64-apple-darwin.tar.gz\n@@{h3}  sluice-x86_64-pc-windows-msvc.zip"
                ),
            ),
            5 => (
                "Dockerfile",
                format!(
                    "FROM debian:bookworm-slim\nARG NODE_VERSION={ver}\n@@ENV NODE_SHA256={h1}\nRUN curl -fsSLO https://nodejs.org/dist/v$NODE_VERSION/node-v$NODE_VERSION-linux-x64.tar.xz \\\n@@ && echo \"{h1}  node-v$NODE_VERSION-linux-x64.tar.xz\" | sha256sum -c -"
                ),
            ),
            6 => (
                "release.json",
                format!(
                    "{{\n  \"version\": \"{ver}\",\n@@  \"sha1\": \"{c1}\",\n@@  \"etag\": \"{m1}\",\n@@  \"revision\": \"{c2}\"\n}}"
                ),
            ),
            7 => (
                "Cargo.toml",
                format!(
                    "[package]\nname = \"{}\"\nversion = \"{ver}\"\nedition = \"2021\"\n\n[dependencies]\n@@patched = {{ git = \"https://github.com/acme/patched\", rev = \"{c1}\" }}",
                    r.pick(SERVICES)
                ),
            ),
            _ => (
                "ci.yml",
                format!(
                    "jobs:\n  build:\n    runs-on: ubuntu-latest\n    steps:\n@@      - uses: actions/checkout@{c1} # v4.1.1\n@@      - uses: actions/setup-node@{c2} # v4.0.2"
                ),
            ),
        };
        g.snippet(name, label, &text);
    }
}

fn lockfile_checksums(g: &mut Gen, n: usize) {
    const NPM: &[&str] = &[
        "lodash", "react", "express", "chalk", "debug", "semver", "zod", "axios",
    ];
    const CRATES: &[&str] = &["serde", "regex", "memchr", "itoa", "ryu", "libc"];
    const GO: &[&str] = &[
        "github.com/spf13/cobra",
        "golang.org/x/sys",
        "github.com/stretchr/testify",
        "gopkg.in/yaml.v3",
    ];
    const PY: &[&str] = &[
        "requests",
        "urllib3",
        "certifi",
        "idna",
        "charset-normalizer",
    ];
    let label = neg("lockfile-checksum");
    for i in 0..n {
        let r = &mut g.rng;
        let mut lines: Vec<String> = Vec::new();
        let name = match i % 8 {
            0 => {
                lines.extend(
                    [
                        "{",
                        "  \"name\": \"web\",",
                        "  \"lockfileVersion\": 3,",
                        "  \"requires\": true,",
                        "  \"packages\": {",
                    ]
                    .map(String::from),
                );
                for k in 0..3 {
                    let (pkg, ver) = (NPM[(i + k) % NPM.len()], r.version());
                    lines.push(format!("    \"node_modules/{pkg}\": {{"));
                    lines.push(format!("      \"version\": \"{ver}\","));
                    lines.push(format!("      \"resolved\": \"https://registry.npmjs.org/{pkg}/-/{pkg}-{ver}.tgz\","));
                    lines.push(format!(
                        "@@      \"integrity\": \"sha512-{}==\",",
                        r.chars(B64, 86)
                    ));
                    lines.push("      \"license\": \"MIT\"".to_string());
                    lines.push(if k < 2 {
                        "    },".to_string()
                    } else {
                        "    }".to_string()
                    });
                }
                lines.push("  }".to_string());
                lines.push("}".to_string());
                "package-lock.json"
            }
            1 => {
                lines.push(
                    "# THIS IS AN AUTOGENERATED FILE. DO NOT EDIT THIS FILE DIRECTLY.".to_string(),
                );
                lines.push("# yarn lockfile v1".to_string());
                for k in 0..3 {
                    let (pkg, ver) = (NPM[(i + k) % NPM.len()], r.version());
                    lines.push(String::new());
                    lines.push(format!("{pkg}@^{ver}:"));
                    lines.push(format!("  version \"{ver}\""));
                    lines.push(format!(
                        "@@  resolved \"https://registry.yarnpkg.com/{pkg}/-/{pkg}-{ver}.tgz#{}\"",
                        r.hex(40)
                    ));
                    lines.push(format!("@@  integrity sha512-{}==", r.chars(B64, 86)));
                }
                "yarn.lock"
            }
            2 => {
                lines.push("# This file is automatically @generated by Cargo.".to_string());
                lines.push("# It is not intended for manual editing.".to_string());
                lines.push("version = 4".to_string());
                for k in 0..3 {
                    let (pkg, ver) = (CRATES[(i + k) % CRATES.len()], r.version());
                    lines.push(String::new());
                    lines.push("[[package]]".to_string());
                    lines.push(format!("name = \"{pkg}\""));
                    lines.push(format!("version = \"{ver}\""));
                    lines.push(
                        "source = \"registry+https://github.com/rust-lang/crates.io-index\""
                            .to_string(),
                    );
                    lines.push(format!("@@checksum = \"{}\"", r.hex(64)));
                }
                "Cargo.lock"
            }
            3 => {
                for k in 0..2 {
                    let (module, ver) = (GO[(i + k) % GO.len()], r.version());
                    lines.push(format!("@@{module} v{ver} h1:{}=", r.chars(B64, 43)));
                    lines.push(format!("@@{module} v{ver}/go.mod h1:{}=", r.chars(B64, 43)));
                }
                "go.sum"
            }
            4 => {
                let (pkg, ver) = (PY[i % PY.len()], r.version());
                lines.push("[[package]]".to_string());
                lines.push(format!("name = \"{pkg}\""));
                lines.push(format!("version = \"{ver}\""));
                lines.push("optional = false".to_string());
                lines.push("python-versions = \">=3.8\"".to_string());
                lines.push("files = [".to_string());
                lines.push(format!(
                    "@@    {{file = \"{pkg}-{ver}-py3-none-any.whl\", hash = \"sha256:{}\"}},",
                    r.hex(64)
                ));
                lines.push(format!(
                    "@@    {{file = \"{pkg}-{ver}.tar.gz\", hash = \"sha256:{}\"}},",
                    r.hex(64)
                ));
                lines.push("]".to_string());
                "poetry.lock"
            }
            5 => {
                for k in 0..2 {
                    let (pkg, ver) = (PY[(i + k) % PY.len()], r.version());
                    lines.push(format!("{pkg}=={ver} \\"));
                    lines.push(format!("@@    --hash=sha256:{} \\", r.hex(64)));
                    lines.push(format!("@@    --hash=sha256:{}", r.hex(64)));
                }
                "requirements.txt"
            }
            6 => {
                lines.push("<!doctype html>".to_string());
                lines.push("<html>".to_string());
                lines.push("<head>".to_string());
                lines.push(format!(
                    "@@  <link rel=\"stylesheet\" href=\"https://cdn.jsdelivr.net/npm/bootstrap@5.3.3/dist/css/bootstrap.min.css\" integrity=\"sha384-{}\" crossorigin=\"anonymous\">",
                    r.chars(B64, 64)
                ));
                lines.push(format!(
                    "@@  <script src=\"https://cdn.jsdelivr.net/npm/bootstrap@5.3.3/dist/js/bootstrap.bundle.min.js\" integrity=\"sha384-{}\" crossorigin=\"anonymous\"></script>",
                    r.chars(B64, 64)
                ));
                lines.push("</head>".to_string());
                lines.push("</html>".to_string());
                "index.html"
            }
            _ => {
                lines.push("lockfileVersion: '9.0'".to_string());
                lines.push(String::new());
                lines.push("packages:".to_string());
                for k in 0..3 {
                    let (pkg, ver) = (NPM[(i + k) % NPM.len()], r.version());
                    lines.push(String::new());
                    lines.push(format!("  {pkg}@{ver}:"));
                    lines.push(format!(
                        "@@    resolution: {{integrity: sha512-{}==}}",
                        r.chars(B64, 86)
                    ));
                }
                "pnpm-lock.yaml"
            }
        };
        g.snippet(name, label, &lines.join("\n"));
    }
}

fn image_digests(g: &mut Gen, n: usize) {
    let label = neg("image-digest");
    for i in 0..n {
        let r = &mut g.rng;
        let app = r.pick(SERVICES);
        let (h1, h2) = (r.hex(64), r.hex(64));
        let (name, text) = match i % 5 {
            0 => (
                "deployment.yaml",
                format!(
                    "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {app}\nspec:\n  template:\n    spec:\n      containers:\n        - name: {app}\n@@          image: registry.io/acme/{app}@sha256:{h1}\n          ports:\n            - containerPort: 8080"
                ),
            ),
            1 => (
                "Dockerfile",
                format!(
                    "@@FROM python:3.12-slim@sha256:{h1} AS build\nWORKDIR /src\nCOPY . .\nRUN pip wheel -w /wheels .\n@@FROM gcr.io/distroless/python3@sha256:{h2}\nCOPY --from=build /wheels /wheels"
                ),
            ),
            2 => (
                "docker-compose.yml",
                format!(
                    "services:\n  db:\n@@    image: postgres:16@sha256:{h1}\n    volumes:\n      - pgdata:/var/lib/postgresql/data"
                ),
            ),
            3 => (
                "kustomization.yaml",
                format!(
                    "resources:\n  - deployment.yaml\nimages:\n  - name: acme/{app}\n    newName: registry.io/acme/{app}\n@@    digest: sha256:{h1}"
                ),
            ),
            _ => (
                "containers.tf",
                format!(
                    "resource \"docker_container\" \"{app}\" {{\n  name  = \"{app}\"\n@@  image = \"ghcr.io/acme/{app}@sha256:{h1}\"\n  restart = \"unless-stopped\"\n}}"
                ),
            ),
        };
        g.snippet(name, label, &text);
    }
}

fn uuids(g: &mut Gen, n: usize) {
    let label = neg("uuid");
    for i in 0..n {
        let r = &mut g.rng;
        let (u1, u2, u3) = (r.uuid(), r.uuid(), r.uuid());
        let ms = r.range(3, 900);
        let (name, text) = match i % 7 {
            0 => (
                "fixtures.yaml",
                format!(
                    "users:\n@@  - id: {u1}\n    email: jane@acme.io\n    role: admin\n@@  - id: {u2}\n    email: ops@acme.io\n    role: viewer"
                ),
            ),
            1 => (
                "app.log",
                format!(
                    "@@2025-03-04T10:12:33Z INFO http: request_id={u1} method=GET path=/v1/invoices status=200 duration_ms={ms}\n@@2025-03-04T10:12:34Z WARN http: request_id={u2} method=POST path=/v1/login status=401 duration_ms=12\n@@2025-03-04T10:12:35Z INFO http: request_id={u3} method=GET path=/healthz status=200 duration_ms=1"
                ),
            ),
            2 => (
                "azure.json",
                format!(
                    "{{\n@@  \"tenant_id\": \"{u1}\",\n@@  \"client_id\": \"{u2}\",\n@@  \"subscription_id\": \"{u3}\",\n  \"location\": \"westeurope\"\n}}"
                ),
            ),
            3 => (
                "provider.tf",
                format!(
                    "provider \"azurerm\" {{\n  features {{}}\n@@  tenant_id       = \"{u1}\"\n@@  subscription_id = \"{u2}\"\n}}"
                ),
            ),
            4 => (
                "requests.http",
                format!(
                    "GET https://api.acme.io/v1/orders\n@@X-Request-ID: {u1}\nAccept: application/json"
                ),
            ),
            5 => (
                "ids.go",
                format!(
                    "package ids\n\nimport \"github.com/google/uuid\"\n\n@@var namespace = uuid.MustParse(\"{u1}\")"
                ),
            ),
            _ => (
                "seed.sql",
                format!(
                    "@@INSERT INTO users (id, email) VALUES ('{u1}', 'jane@acme.io');\n@@INSERT INTO users (id, email) VALUES ('{u2}', 'ops@acme.io');"
                ),
            ),
        };
        g.snippet(name, label, &text);
    }
}

fn public_keys_and_certs(g: &mut Gen) {
    const PUB_KEYS: &[&str] = &["public key", "jwt public key", "verification key"];
    const CERT_KEYS: &[&str] = &["ca cert", "tls cert", "client certificate"];
    // PEM / PGP public keys, in the same containers as private keys.
    for i in 0..14 {
        let r = &mut g.rng;
        let block = match i % 4 {
            0 | 1 => {
                let lines = r.range(6, 7);
                pem(
                    r,
                    "PUBLIC KEY",
                    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA",
                    64,
                    lines,
                )
            }
            2 => pem(
                r,
                "PUBLIC KEY",
                "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE",
                64,
                2,
            ),
            _ => {
                let lines = r.range(12, 20);
                pgp_armor(r, "PGP PUBLIC KEY BLOCK", "mQINBG", lines)
            }
        };
        let key = r.pick(PUB_KEYS);
        g.block(
            i,
            &["public.pem", "jwt-public.pem", "pubkey.asc"],
            key,
            neg("public-key"),
            &block,
        );
    }
    // Certificates: single ones in containers, plus CA bundles of two.
    for i in 0..10 {
        let lines = g.rng.range(16, 22);
        let block = pem(&mut g.rng, "CERTIFICATE", "MIID", 64, lines);
        let key = g.rng.pick(CERT_KEYS);
        g.block(
            i,
            &["tls.crt", "ca.pem", "server.crt"],
            key,
            neg("certificate"),
            &block,
        );
    }
    for _ in 0..3 {
        let mut doc = Doc::default();
        for issuer in ["Acme Root CA", "Acme Issuing CA 2"] {
            doc.push(format!("# Issuer: CN={issuer}, O=Acme Corp"));
            let lines = g.rng.range(16, 22);
            let block = pem(&mut g.rng, "CERTIFICATE", "MIIF", 64, lines);
            doc.sample(neg("certificate"), &block);
        }
        g.add("ca-bundle.pem", doc);
    }
}

fn ssh_public_keys(g: &mut Gen) {
    let label = neg("ssh-public-key");
    for i in 0..4 {
        let lines: Vec<String> = (0..3)
            .map(|k| format!("@@{}", ssh_public_key(&mut g.rng, i + k, true)))
            .collect();
        g.snippet("authorized_keys", label, &lines.join("\n"));
    }
    for i in 0..2 {
        let mut lines = Vec::new();
        for (k, host) in ["github.com", "gitlab.com", "bastion.acme.io"]
            .iter()
            .enumerate()
        {
            lines.push(format!(
                "@@{host} {}",
                ssh_public_key(&mut g.rng, i + k, false)
            ));
        }
        g.snippet("known_hosts", label, &lines.join("\n"));
    }
    for i in 0..4 {
        let key = ssh_public_key(&mut g.rng, i, true);
        let text = format!(
            "resource \"aws_key_pair\" \"deployer\" {{\n  key_name   = \"deployer-{i}\"\n@@  public_key = \"{key}\"\n}}"
        );
        g.snippet("keys.tf", label, &text);
    }
    for i in 0..3 {
        let (a, b) = (
            ssh_public_key(&mut g.rng, i, true),
            ssh_public_key(&mut g.rng, i + 1, true),
        );
        let text = format!(
            "#cloud-config\nusers:\n  - name: deploy\n    ssh_authorized_keys:\n@@      - {a}\n@@      - {b}"
        );
        g.snippet("cloud-init.yaml", label, &text);
    }
    for i in 0..4 {
        let key = ssh_public_key(&mut g.rng, i, true);
        let name = if i % 3 == 1 {
            "id_ed25519.pub"
        } else {
            "id_rsa.pub"
        };
        g.snippet(name, label, &format!("@@{key}"));
    }
}

/// Single-line minified bundles full of `token` / `password` / `apiKey` identifiers.
fn minified_js(g: &mut Gen, n: usize) {
    const PROLOGUE: &str = r#"!function(e,t){"object"==typeof exports&&"undefined"!=typeof module?module.exports=t():"function"==typeof define&&define.amd?define(t):(e=e||self).App=t()}(this,function(){"use strict";"#;
    const FRAGMENTS: &[&str] = &[
        "function $a($b){return $b.token}",
        "$a.password=$b.password||\"\"",
        "var $a={apiKey:null,token:void 0,secret:\"\"}",
        "$a.headers.Authorization=\"Bearer \"+$b.token",
        "$a.u=function($b){return\"static/js/\"+$b+\".\"+{$n:\"$h\"}[$b]+\".chunk.js\"}",
        "if(!$a.token)throw new Error(\"missing token\")",
        "localStorage.setItem(\"token\",$a.access_token)",
        "$a={username:$b.username,password:$b.password}",
        "Object.defineProperty($a,\"__esModule\",{value:!0})",
        "$a.prototype.getToken=function(){return this.token}",
        "$a=$b.apiKey||$a.apiKey",
        "return $a&&$a.secret?$b($a.secret):null",
        "for(var $a=0;$a<$b.length;$a++)$b[$a]=255^$b[$a]",
        "$a.set(\"csrfToken\",$b)",
        "const $a=$b=>$b.split(\".\")[1]",
        "$a.exports=function($b){return $b&&$b.__esModule?$b:{default:$b}}",
        "$a.clientSecret=$b.clientSecret",
        "$a[$n]=\"$h\"",
    ];
    fn ident(r: &mut Rng) -> String {
        let len = r.range(1, 2);
        r.chars(ALPHA, len)
    }
    for _ in 0..n {
        let count = g.rng.range(40, 90);
        let mut parts = Vec::with_capacity(count);
        for _ in 0..count {
            let fragment = g.rng.pick(FRAGMENTS);
            let (a, b) = (ident(&mut g.rng), ident(&mut g.rng));
            let num = g.rng.range(10, 999).to_string();
            let hash = g.rng.hex(8);
            parts.push(fill_js(fragment, &a, &b, &num, &hash));
        }
        let hash = g.rng.hex(8);
        let name = match g.rng.below(3) {
            0 => format!("main.{hash}.min.js"),
            1 => format!("vendor.{hash}.js"),
            _ => "bundle.min.js".to_string(),
        };
        let text = format!(
            "@@{PROLOGUE}{}}});\n//# sourceMappingURL={name}.map",
            parts.join(";")
        );
        g.snippet(&name, neg("minified-js"), &text);
    }
}

fn fill_js(fragment: &str, a: &str, b: &str, num: &str, hash: &str) -> String {
    fragment
        .replace("$a", a)
        .replace("$b", b)
        .replace("$n", num)
        .replace("$h", hash)
}

fn urls_without_password(g: &mut Gen, n: usize) {
    let base = g.rng.below(ALL_FMTS.len());
    for i in 0..n {
        let svc = g.rng.pick(SERVICES);
        let (key, url) = match i % 16 {
            0 => ("database url", "postgres://app@localhost/db".to_string()),
            1 => (
                "database url",
                "postgres://app:${DB_PASS}@db.internal:5432/app".to_string(),
            ),
            2 => (
                "database url",
                "postgresql://postgres@localhost:5432/app_dev".to_string(),
            ),
            3 => ("mysql url", "mysql://root@127.0.0.1:3306/app".to_string()),
            4 => ("redis url", "redis://localhost:6379/0".to_string()),
            5 => (
                "redis url",
                "redis://:${REDIS_PASSWORD}@redis:6379/0".to_string(),
            ),
            6 => ("mongo uri", "mongodb://mongo:27017/app".to_string()),
            7 => ("broker url", "amqp://localhost:5672/".to_string()),
            8 => (
                "api base url",
                format!("https://api.github.com/repos/acme/{svc}/releases?per_page=100"),
            ),
            9 => (
                "repo url",
                format!("https://x-access-token:${{GITHUB_TOKEN}}@github.com/acme/{svc}.git"),
            ),
            10 => ("repo url", format!("git@github.com:acme/{svc}.git")),
            11 => (
                "repo url",
                format!("https://deploy@bitbucket.org/acme/{svc}.git"),
            ),
            12 => (
                "database url",
                "postgres://user:{password}@localhost:5432/db".to_string(),
            ),
            13 => (
                "database url",
                "mysql://user:<password>@db.example.com:3306/app".to_string(),
            ),
            14 => (
                "jdbc url",
                "jdbc:postgresql://db:5432/app?user=app&password=${DB_PASSWORD}".to_string(),
            ),
            _ => (
                "callback url",
                format!("https://{svc}.acme.io/oauth/callback?state=login"),
            ),
        };
        let fmt = fmt_at(base, i);
        g.kv1(fmt, neg("url-without-password"), key, url);
    }
}

/// Hex / base64 blobs with no credential context at all.
fn random_blobs(g: &mut Gen, n: usize) {
    let label = neg("random-blob");
    for i in 0..n {
        let r = &mut g.rng;
        let (h32, h64, h96, h128) = (r.hex(32), r.hex(64), r.hex(96), r.hex(128));
        let h40 = r.hex(40);
        let b40 = r.chars(B64, 40);
        let blob_len = r.range(120, 200) / 4 * 4;
        let blob = r.chars(B64, blob_len);
        let (name, text) = match i % 8 {
            0 => (
                "SHA256ShortMsg.rsp",
                format!(
                    "#  CAVS 11.0\n#  \"SHA-256 ShortMsg\" information\n[L = 32]\n\nLen = 512\n@@Msg = {h128}\n@@MD = {h64}"
                ),
            ),
            1 => ("vectors.txt", format!("@@{h128}\n@@{h64}\n@@{h40}")),
            2 => (
                "test_digest.py",
                format!(
                    "def test_digest_matches_reference():\n    data = bytes.fromhex(\n@@        \"{h96}\"\n    )\n@@    assert sha384(data).hexdigest() == \"{}\"",
                    &h128[..96]
                ),
            ),
            3 => (
                "event.json",
                format!(
                    "{{\n  \"id\": 1842,\n@@  \"payload\": \"{blob}\",\n  \"encoding\": \"base64\"\n}}"
                ),
            ),
            4 => (
                "logo.css",
                format!(
                    ".logo {{\n@@  background-image: url(\"data:image/png;base64,{blob}\");\n  width: 32px;\n}}"
                ),
            ),
            5 => (
                "digest_test.go",
                format!(
                    "package digest\n\nvar cases = []struct{{ in, want string }}{{\n@@\t{{\"{h64}\", \"{}\"}},\n@@\t{{\"{h32}\", \"{}\"}},\n}}",
                    &h128[..64],
                    &h96[..64]
                ),
            ),
            6 => (
                "Info.plist",
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\">\n<dict>\n  <key>Icon</key>\n@@  <data>{blob}</data>\n</dict>\n</plist>"
                ),
            ),
            _ => (
                "fixtures.txt",
                format!("@@{b40}\n@@{h32}\n@@{}", &h64[..40]),
            ),
        };
        g.snippet(name, label, &text);
    }
}

fn negatives(g: &mut Gen) {
    placeholders(g, 130);
    prefixed_placeholders(g);
    template_references(g);
    code_references(g);
    example_aws_keys(g, 12);
    hex_hashes(g, 30);
    lockfile_checksums(g, 16);
    image_digests(g, 20);
    uuids(g, 24);
    public_keys_and_certs(g);
    ssh_public_keys(g);
    minified_js(g, 24);
    urls_without_password(g, 36);
    random_blobs(g, 28);
}

fn build_corpus() -> Corpus {
    let mut g = Gen {
        rng: Rng(SEED),
        out: Corpus::default(),
    };
    positives(&mut g);
    negatives(&mut g);
    g.out
}

// ---------------------------------------------------------------- scanning

struct Finding {
    rule: String,
    path: String,
    line: usize,
}

struct ScanOutput {
    findings: Vec<Finding>,
    exit_code: i32,
    summary: String,
}

fn run_sluice(root: &Path) -> ScanOutput {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["scan", "--format", "json"])
        .arg(root)
        .current_dir(root)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("failed to spawn sluice");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let exit_code = out.status.code().unwrap_or(-1);
    assert!(
        exit_code == 0 || exit_code == 1,
        "`sluice scan --format json {}` exited with {:?} (expected 0 or 1)\nstderr:\n{stderr}",
        root.display(),
        out.status
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        let head = String::from_utf8_lossy(&out.stdout[..out.stdout.len().min(400)]).into_owned();
        panic!("sluice stdout is not JSON: {e}\nstdout starts with: {head}\nstderr:\n{stderr}")
    });
    let list = json
        .get("findings")
        .and_then(|f| f.as_array())
        .unwrap_or_else(|| panic!("sluice JSON output has no `findings` array"));
    let findings = list
        .iter()
        .map(|f| Finding {
            rule: f
                .get("rule")
                .and_then(|v| v.as_str())
                .unwrap_or("<no rule>")
                .to_string(),
            path: f
                .get("path")
                .and_then(|v| v.as_str())
                .expect("finding without `path`")
                .to_string(),
            line: f
                .get("line")
                .and_then(|v| v.as_u64())
                .expect("finding without `line`") as usize,
        })
        .collect();
    let summary = json
        .get("summary")
        .map(|s| s.to_string())
        .unwrap_or_else(|| "<none>".to_string());
    ScanOutput {
        findings,
        exit_code,
        summary,
    }
}

// ---------------------------------------------------------------- evaluation

/// Findings matched against the corpus.
struct Eval {
    /// Per finding: the corpus file it points into, if any.
    file: Vec<Option<usize>>,
    /// Per finding: the sample whose line range it lands in, if any.
    sample: Vec<Option<usize>>,
    /// Per sample: number of findings that landed on it.
    hits: Vec<usize>,
}

/// Maps a reported path to a corpus file. Paths are reported as walked (the
/// root argument joined with the relative path), so compare the trailing
/// `sNNNN/<name>` components; fall back to `Path::ends_with`.
fn resolve(corpus: &Corpus, index: &HashMap<&str, usize>, path: &str) -> Option<usize> {
    let p = Path::new(path);
    let parts: Vec<&str> = p
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect();
    let by_tail = match parts.as_slice() {
        [.., dir, name] => index.get(format!("{dir}/{name}").as_str()).copied(),
        _ => None,
    };
    by_tail.or_else(|| corpus.files.iter().position(|f| p.ends_with(&f.rel)))
}

fn evaluate(corpus: &Corpus, findings: &[Finding]) -> Eval {
    let index: HashMap<&str, usize> = corpus
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.rel.as_str(), i))
        .collect();
    let mut by_file: Vec<Vec<usize>> = vec![Vec::new(); corpus.files.len()];
    for (i, s) in corpus.samples.iter().enumerate() {
        by_file[s.file].push(i);
    }
    let mut eval = Eval {
        file: Vec::new(),
        sample: Vec::new(),
        hits: vec![0; corpus.samples.len()],
    };
    for f in findings {
        let file = resolve(corpus, &index, &f.path);
        let sample = file.and_then(|fi| {
            by_file[fi].iter().copied().find(|&s| {
                let s = &corpus.samples[s];
                s.start <= f.line && f.line <= s.end
            })
        });
        if let Some(s) = sample {
            eval.hits[s] += 1;
        }
        eval.file.push(file);
        eval.sample.push(sample);
    }
    eval
}

impl Eval {
    fn is_true_positive(&self, corpus: &Corpus, finding: usize) -> bool {
        self.sample[finding].is_some_and(|s| corpus.samples[s].positive)
    }

    /// (detected positives, all positives)
    fn recall_counts(&self, corpus: &Corpus) -> (usize, usize) {
        let positives = corpus
            .samples
            .iter()
            .enumerate()
            .filter(|(_, s)| s.positive);
        let (mut detected, mut total) = (0, 0);
        for (i, _) in positives {
            total += 1;
            if self.hits[i] > 0 {
                detected += 1;
            }
        }
        (detected, total)
    }

    /// (true-positive findings, all findings)
    fn precision_counts(&self, corpus: &Corpus) -> (usize, usize) {
        let tp = (0..self.sample.len())
            .filter(|&f| self.is_true_positive(corpus, f))
            .count();
        (tp, self.sample.len())
    }
}

fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 {
        1.0
    } else {
        num as f64 / den as f64
    }
}

/// Human-readable report: per-kind table, per-rule counts, misses and false positives.
fn report(corpus: &Corpus, scan: &ScanOutput, eval: &Eval) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nsluice corpus: {} files, {} positive samples, {} hard negatives",
        corpus.files.len(),
        corpus.count(true),
        corpus.count(false)
    );
    let _ = writeln!(
        out,
        "sluice exit code {}, summary {}",
        scan.exit_code, scan.summary
    );
    if (scan.exit_code == 1) == scan.findings.is_empty() {
        let _ = writeln!(
            out,
            "note: exit code {} does not match {} findings",
            scan.exit_code,
            scan.findings.len()
        );
    }

    // Per kind: (samples, samples hit, findings landing on them); positives first.
    let mut kinds: BTreeMap<(bool, &str), (usize, usize, usize)> = BTreeMap::new();
    for (i, s) in corpus.samples.iter().enumerate() {
        let e = kinds.entry((!s.positive, s.kind)).or_default();
        e.0 += 1;
        e.1 += usize::from(eval.hits[i] > 0);
        e.2 += eval.hits[i];
    }
    let _ = writeln!(
        out,
        "\n{:<34} {:>4} {:>8} {:>6} {:>8} {:>9}",
        "kind", "type", "samples", "hit", "rate", "findings"
    );
    for (&(negative, kind), &(samples, hit, findings)) in &kinds {
        let label = if negative { "neg" } else { "pos" };
        let rate = 100.0 * ratio(hit, samples);
        let flag = if negative && hit > 0 {
            "  <-- false positives"
        } else if !negative && hit < samples {
            "  <-- misses"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "{kind:<34} {label:>4} {samples:>8} {hit:>6} {rate:>7.1}% {findings:>9}{flag}"
        );
    }
    let elsewhere = eval.sample.iter().filter(|s| s.is_none()).count();
    let _ = writeln!(
        out,
        "{:<34} {:>4} {:>8} {:>6} {:>8} {:>9}",
        "(unlabelled lines)", "neg", "-", "-", "-", elsewhere
    );

    let (detected, positives) = eval.recall_counts(corpus);
    let (tp, total) = eval.precision_counts(corpus);
    let _ = writeln!(
        out,
        "\noverall recall    {detected}/{positives} = {:.2}%",
        100.0 * ratio(detected, positives)
    );
    let _ = writeln!(
        out,
        "overall precision {tp}/{total} = {:.2}% ({} false positives)",
        100.0 * ratio(tp, total),
        total - tp
    );

    let mut rules: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (i, f) in scan.findings.iter().enumerate() {
        let e = rules.entry(f.rule.as_str()).or_default();
        e.0 += 1;
        e.1 += usize::from(!eval.is_true_positive(corpus, i));
    }
    let _ = writeln!(out, "\n{:<40} {:>8} {:>6}", "rule", "findings", "fp");
    for (rule, (n, fp)) in &rules {
        let _ = writeln!(out, "{rule:<40} {n:>8} {fp:>6}");
    }

    let misses: Vec<&Sample> = corpus
        .samples
        .iter()
        .enumerate()
        .filter(|&(i, s)| s.positive && eval.hits[i] == 0)
        .map(|(_, s)| s)
        .collect();
    let _ = writeln!(out, "\nmissed positives ({}):", misses.len());
    for s in misses {
        let extra = if s.end > s.start {
            format!(" (+{} lines)", s.end - s.start)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  MISS {:<32} {}:{}-{}  {}{extra}",
            s.kind,
            corpus.files[s.file].rel,
            s.start,
            s.end,
            corpus.excerpt(s.file, s.start)
        );
    }

    let _ = writeln!(out, "\nfalse positives ({}):", total - tp);
    for (i, f) in scan.findings.iter().enumerate() {
        if eval.is_true_positive(corpus, i) {
            continue;
        }
        let (kind, text) = match (eval.sample[i], eval.file[i]) {
            (Some(s), Some(file)) => (corpus.samples[s].kind, corpus.excerpt(file, f.line)),
            (None, Some(file)) => ("unlabelled line", corpus.excerpt(file, f.line)),
            _ => ("unknown file", String::new()),
        };
        let _ = writeln!(
            out,
            "  FP   {:<32} {}:{}  [{kind}]  {text}",
            f.rule, f.path, f.line
        );
    }
    out
}

// ---------------------------------------------------------------- the test

#[test]
fn corpus_precision_and_recall() {
    let corpus = build_corpus();
    assert!(
        corpus.count(true) >= 600,
        "generator produced only {} positives",
        corpus.count(true)
    );
    assert!(
        corpus.count(false) >= 600,
        "generator produced only {} negatives",
        corpus.count(false)
    );
    for s in &corpus.samples {
        let lines = corpus.files[s.file].content.lines().count();
        assert!(
            1 <= s.start && s.start <= s.end && s.end <= lines,
            "bad sample range in {}",
            corpus.files[s.file].rel
        );
    }

    // Keep the TempDir guard alive until the scan has run.
    let (_guard, root): (Option<tempfile::TempDir>, PathBuf) =
        match std::env::var_os("SLUICE_CORPUS_DIR") {
            Some(dir) => {
                let root = PathBuf::from(dir);
                std::fs::create_dir_all(&root).expect("creating SLUICE_CORPUS_DIR");
                (None, root)
            }
            None => {
                let tmp = tempfile::Builder::new()
                    .prefix("sluice-corpus-")
                    .tempdir()
                    .expect("creating temp dir");
                let root = tmp.path().to_path_buf();
                (Some(tmp), root)
            }
        };
    corpus.write_to(&root);

    let scan = run_sluice(&root);
    let eval = evaluate(&corpus, &scan.findings);
    eprintln!("{}", report(&corpus, &scan, &eval));

    let (detected, positives) = eval.recall_counts(&corpus);
    let (tp, total) = eval.precision_counts(&corpus);
    let recall = ratio(detected, positives);
    let precision = ratio(tp, total);
    assert!(
        recall >= MIN_RECALL,
        "recall {:.2}% ({detected}/{positives}) is below {:.0}%; see the MISS lines above",
        100.0 * recall,
        100.0 * MIN_RECALL
    );
    assert!(
        precision >= MIN_PRECISION,
        "precision {:.2}% ({tp}/{total}) is below {:.0}%; see the FP lines above",
        100.0 * precision,
        100.0 * MIN_PRECISION
    );
}
