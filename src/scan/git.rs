//! Git sources: history (`--git`), a change (`--diff BASE..HEAD`) and the index (`--staged`).
//!
//! A repository path in, findings out. The `git` command line is the interface: `git log --raw`
//! lists which blob each commit introduced at which path, `git cat-file --batch` streams blob
//! contents, `git diff --unified=0` tells which lines a change adds. Each distinct blob is scanned
//! once, in parallel; a finding lists every commit and path that introduced its blob.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use rayon::iter::{ParallelBridge, ParallelIterator};

use super::sources::{Outcome, Stats, scan_bytes};
use super::{Occurrence, Scanner};
use crate::error::Error;

/// How many blobs may wait between the reader and the scanning threads.
const BLOB_QUEUE: usize = 256;

fn git_command(repo: &Path) -> Command {
    let mut c = Command::new("git");
    c.arg("-C")
        .arg(repo)
        .args(["-c", "core.quotePath=false", "--no-pager"]);
    c
}

fn external(detail: impl Into<String>) -> Error {
    Error::External {
        what: "git".into(),
        detail: detail.into(),
    }
}

/// Run git to completion; only failing to start it is an error here.
fn git_output(repo: &Path, args: &[&str]) -> Result<std::process::Output, Error> {
    git_command(repo)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            external(format!(
                "cannot run git ({e}); install git or put it on PATH"
            ))
        })
}

/// Run git and return stdout, or an error with git's own message.
fn run_git(repo: &Path, args: &[&str]) -> Result<Vec<u8>, Error> {
    let out = git_output(repo, args)?;
    if !out.status.success() {
        return Err(external(format!(
            "`git {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}

/// Fail clearly when `repo` is not inside a git work tree or repository.
pub(crate) fn ensure_repository(repo: &Path) -> Result<(), Error> {
    if git_output(repo, &["rev-parse", "--git-dir"])?
        .status
        .success()
    {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "{} is not a git repository; run inside one or pass --repo DIR",
            repo.display()
        )))
    }
}

/// Undo git's C-style quoting of unusual path names.
fn unquote(path: &str) -> String {
    let Some(inner) = path.strip_prefix('"').and_then(|p| p.strip_suffix('"')) else {
        return path.to_string();
    };
    let mut out = Vec::new();
    let b = inner.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            i += 1;
            match b[i] {
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'"' => out.push(b'"'),
                b'\\' => out.push(b'\\'),
                d @ b'0'..=b'7' if i + 2 < b.len() => {
                    let oct = std::str::from_utf8(&b[i..i + 3]).unwrap_or("0");
                    out.push(u8::from_str_radix(oct, 8).unwrap_or(d));
                    i += 2;
                }
                other => out.push(other),
            }
        } else {
            out.push(b[i]);
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Blobs introduced by every commit reachable from any ref: blob id -> where.
/// Blob ids in first-seen order, and where each was introduced.
type Introduced = (Vec<String>, HashMap<String, Vec<Occurrence>>);

fn introduced_blobs(repo: &Path) -> Result<Introduced, Error> {
    let mut child = git_command(repo)
        .args([
            "log",
            "--all",
            "--raw",
            "--no-abbrev",
            "--no-renames",
            "-c",
            "--no-textconv",
            "--format=%x01%H",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| external(format!("cannot run git ({e})")))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| external("no stdout from git log"))?;
    let mut order = Vec::new();
    let mut blobs: HashMap<String, Vec<Occurrence>> = HashMap::new();
    let mut commit = String::new();
    for line in BufReader::new(stdout).split(b'\n') {
        let line = line.map_err(|e| external(format!("reading git log: {e}")))?;
        let line = String::from_utf8_lossy(&line);
        if let Some(c) = line.strip_prefix('\u{1}') {
            commit = c.trim().to_string();
            continue;
        }
        let Some(raw) = line.strip_prefix(':') else {
            continue;
        };
        let parents = 1 + raw.bytes().take_while(|&b| b == b':').count();
        let Some((meta, path)) = raw.trim_start_matches(':').split_once('\t') else {
            continue;
        };
        let fields: Vec<&str> = meta.split_whitespace().collect();
        // parents+1 modes, parents+1 ids, status.
        if fields.len() < 2 * (parents + 1) {
            continue;
        }
        let mode = fields[parents];
        let id = fields[2 * parents + 1];
        if !mode.starts_with("100") || id.bytes().all(|b| b == b'0') {
            continue; // deleted, symlink or submodule
        }
        let occ = Occurrence {
            commit: commit.clone(),
            path: unquote(path),
        };
        match blobs.get_mut(id) {
            Some(v) => v.push(occ),
            None => {
                order.push(id.to_string());
                blobs.insert(id.to_string(), vec![occ]);
            }
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| external(e.to_string()))?;
    if !out.status.success() {
        return Err(external(format!(
            "`git log` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok((order, blobs))
}

/// Stream objects named by `specs` (ids or `rev:path`) through `git cat-file --batch`, calling
/// `each(index, contents)` in parallel. Missing objects are skipped.
fn cat_files<F>(repo: &Path, specs: Vec<String>, each: F) -> Result<(), Error>
where
    F: Fn(usize, &[u8]) + Sync + Send,
{
    let mut child = git_command(repo)
        .args(["cat-file", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| external(format!("cannot run git ({e})")))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| external("no stdin for git cat-file"))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| external("no stdout from git cat-file"))?;
    let count = specs.len();
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut w = std::io::BufWriter::new(&mut stdin);
        for s in specs {
            w.write_all(s.as_bytes())?;
            w.write_all(b"\n")?;
        }
        w.flush()
    });
    let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, Vec<u8>)>(BLOB_QUEUE);
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        let failure = &failure;
        s.spawn(move || {
            let mut r = BufReader::with_capacity(1 << 20, stdout);
            let mut header = Vec::new();
            for i in 0..count {
                header.clear();
                if let Err(e) = r.read_until(b'\n', &mut header) {
                    *failure.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(external(format!("reading git cat-file: {e}")));
                    return;
                }
                let h = String::from_utf8_lossy(&header);
                let parts: Vec<&str> = h.split_whitespace().collect();
                if parts.len() != 3 {
                    continue; // "<spec> missing" or ambiguous
                }
                let size: usize = parts[2].parse().unwrap_or(0);
                let mut body = vec![0u8; size + 1];
                if let Err(e) = r.read_exact(&mut body) {
                    *failure.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(external(format!("reading git cat-file: {e}")));
                    return;
                }
                body.truncate(size);
                if parts[1] == "blob" && tx.send((i, body)).is_err() {
                    return;
                }
            }
        });
        rx.into_iter()
            .par_bridge()
            .for_each(|(i, body)| each(i, &body));
    });
    let _ = writer.join();
    let _ = child.wait();
    match failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Scan every distinct blob in the history of `repo` once.
pub(crate) fn scan_history(scanner: &Scanner, repo: &Path) -> Result<Outcome, Error> {
    ensure_repository(repo)?;
    let (order, mut occurrences) = introduced_blobs(repo)?;
    let stats = Stats::default();
    let found = Mutex::new(Vec::new());
    let names: Vec<String> = order
        .iter()
        .map(|id| {
            occurrences[id]
                .last()
                .map(|o| o.path.clone())
                .unwrap_or_default()
        })
        .collect();
    cat_files(repo, order.clone(), |i, body| {
        let f = scan_bytes(scanner, &names[i], body, &stats);
        if !f.is_empty() {
            found.lock().unwrap_or_else(|p| p.into_inner()).push((i, f));
        }
    })?;
    let mut findings = Vec::new();
    for (i, fs) in found.into_inner().unwrap_or_else(|p| p.into_inner()) {
        let mut occ = occurrences.remove(&order[i]).unwrap_or_default();
        occ.sort();
        occ.dedup();
        for mut f in fs {
            f.commits = occ.clone();
            findings.push(f);
        }
    }
    Ok(Outcome {
        findings,
        warnings: Vec::new(),
        stats,
    })
}

/// The new side of one file a change adds or modifies.
#[derive(Debug, PartialEq)]
struct Changed {
    /// Blob ids before and after (all zeros before for an added file).
    old: String,
    new: String,
    /// Path after the change, relative to the repository root, as git stores it (any bytes).
    path: Vec<u8>,
}

/// The regular files of `git diff --raw -z --no-abbrev` output: NUL-separated, so a name with a
/// newline, a quote or invalid UTF-8 reads as it is. Symlinks, submodules and unmerged entries
/// (no blob) are left out.
fn changed_files(raw: &[u8]) -> Vec<Changed> {
    let mut out = Vec::new();
    let mut fields = raw.split(|&b| b == 0);
    while let Some(meta) = fields.next() {
        let Some(meta) = meta.strip_prefix(b":") else {
            continue;
        };
        let meta = String::from_utf8_lossy(meta);
        let parts: Vec<&str> = meta.split_whitespace().collect();
        let [_, new_mode, old, new, status] = parts.as_slice() else {
            continue;
        };
        // Renames and copies name the source, then the destination.
        if status.starts_with(['R', 'C']) {
            fields.next();
        }
        let Some(path) = fields.next() else { break };
        if new_mode.starts_with("100") && !new.bytes().all(|b| b == b'0') {
            out.push(Changed {
                old: old.to_string(),
                new: new.to_string(),
                path: path.to_vec(),
            });
        }
    }
    out
}

/// Which lines a change adds to a file.
#[derive(Debug, Clone, PartialEq)]
enum Added {
    /// These inclusive 1-based line ranges.
    Lines(Vec<(usize, usize)>),
    /// All of it (a binary file changed: git shows no lines).
    Whole,
}

/// Added lines per (old blob, new blob) of a `git diff --unified=0 --full-index` patch. Files are
/// told apart by their `index OLD..NEW` header, never by names (which git quotes and which may
/// hold anything).
fn added_lines(diff: &[u8]) -> HashMap<(String, String), Added> {
    let mut files: HashMap<(String, String), Added> = HashMap::new();
    let mut current: Option<(String, String)> = None;
    let mut in_header = false;
    for line in diff.split(|&b| b == b'\n') {
        if line.starts_with(b"diff --git ") {
            current = None;
            in_header = true;
            continue;
        }
        if in_header {
            if let Some(ids) = line.strip_prefix(b"index ") {
                let ids = String::from_utf8_lossy(ids);
                let ids = ids.split_whitespace().next().unwrap_or("");
                current = ids
                    .split_once("..")
                    .map(|(a, b)| (a.to_string(), b.to_string()));
            } else if (line.starts_with(b"Binary files ") || line.starts_with(b"GIT binary patch"))
                && let Some(k) = &current
            {
                files.insert(k.clone(), Added::Whole);
            }
        }
        let (Some(key), Some(h)) = (&current, line.strip_prefix(b"@@ ")) else {
            continue;
        };
        in_header = false;
        // @@ -a[,b] +c[,d] @@
        let h = String::from_utf8_lossy(h);
        let Some(plus) = h.split_whitespace().find(|t| t.starts_with('+')) else {
            continue;
        };
        let mut it = plus[1..].splitn(2, ',');
        let start: usize = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let count: usize = it.next().and_then(|s| s.parse().ok()).unwrap_or(1);
        if count > 0 {
            match files
                .entry(key.clone())
                .or_insert_with(|| Added::Lines(Vec::new()))
            {
                Added::Lines(v) => v.push((start, start + count - 1)),
                Added::Whole => {}
            }
        }
    }
    files
}

/// What a change scan compares.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// `BASE..HEAD` or `BASE...HEAD` (merge base), as git understands it.
    Range(String),
    /// The index against HEAD (pre-commit).
    Staged,
}

/// Scan only the lines a change adds. Each changed file is scanned whole (so context on unchanged
/// lines counts) and findings are kept when they start on an added line.
pub(crate) fn scan_change(
    scanner: &Scanner,
    repo: &Path,
    change: &Change,
) -> Result<Outcome, Error> {
    ensure_repository(repo)?;
    let mut args = vec![
        "diff",
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        "--find-renames",
        "--diff-filter=d",
    ];
    let range = match change {
        Change::Staged => {
            args.push("--cached");
            None
        }
        Change::Range(r) => {
            let (range, head) = match r.rsplit_once("..") {
                Some((base, head)) => {
                    let head = if head.is_empty() { "HEAD" } else { head };
                    let base = base.trim_end_matches('.');
                    if base.is_empty() {
                        return Err(Error::Usage(format!(
                            "--diff {r}: give a base, e.g. --diff origin/main..HEAD"
                        )));
                    }
                    (r.clone(), head.to_string())
                }
                None => (format!("{r}..HEAD"), "HEAD".to_string()),
            };
            run_git(
                repo,
                &[
                    "rev-parse",
                    "--verify",
                    "--quiet",
                    &format!("{head}^{{commit}}"),
                ],
            )
            .map_err(|_| Error::Usage(format!("--diff {r}: `{head}` is not a commit")))?;
            Some(range)
        }
    };
    if let Some(r) = &range {
        args.push(r);
    }
    args.push("--");
    let mut raw_args = args.clone();
    raw_args.splice(1..1, ["--raw", "-z", "--no-abbrev"]);
    let changed = changed_files(&run_git(repo, &raw_args)?);
    let mut patch_args = args;
    patch_args.splice(1..1, ["--unified=0", "--full-index"]);
    let added = added_lines(&run_git(repo, &patch_args)?);
    // Only files with added lines (a pure rename or mode change adds none).
    let files: Vec<(String, &Added)> = changed
        .iter()
        .filter_map(|c| {
            added
                .get(&(c.old.clone(), c.new.clone()))
                .map(|a| (String::from_utf8_lossy(&c.path).into_owned(), a))
        })
        .collect();
    let specs: Vec<String> = changed
        .iter()
        .filter(|c| added.contains_key(&(c.old.clone(), c.new.clone())))
        .map(|c| c.new.clone())
        .collect();
    let stats = Stats::default();
    let found = Mutex::new(Vec::new());
    cat_files(repo, specs, |i, body| {
        let (path, added) = &files[i];
        let mut f = scan_bytes(scanner, path, body, &stats);
        // A finding counts when any of its lines is added: a changed line inside a PEM key
        // brings the whole key in.
        if let Added::Lines(ranges) = added {
            f.retain(|x| ranges.iter().any(|&(a, b)| x.line <= b && x.end_line >= a));
        }
        if !f.is_empty() {
            found
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .append(&mut f);
        }
    })?;
    Ok(Outcome {
        findings: found.into_inner().unwrap_or_else(|p| p.into_inner()),
        warnings: Vec::new(),
        stats,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_added_line_ranges() {
        let (a, b, c) = ("a".repeat(40), "b".repeat(40), "c".repeat(40));
        let diff = format!(
            "diff --git a/x b/x\nindex {a}..{b} 100644\n--- a/x\n+++ b/x\n@@ -1,0 +2,3 @@\n+a\n+b\n+c\n@@ -9 +12 @@\n-q\n+r\n@@ -20,2 +22,0 @@\n-gone\n\
             diff --git \"a/new\\nline\" \"b/new\\nline\"\nnew file mode 100644\nindex {z}..{c}\n--- /dev/null\n+++ \"b/new\\nline\"\n@@ -0,0 +1,2 @@\n+index {a}..{c}\n+diff --git x\n\
             diff --git a/bin b/bin\nindex {a}..{c} 100644\nBinary files a/bin and b/bin differ\n",
            z = "0".repeat(40)
        );
        let f = added_lines(diff.as_bytes());
        assert_eq!(f[&(a.clone(), b)], Added::Lines(vec![(2, 4), (12, 12)]));
        assert_eq!(f[&("0".repeat(40), c.clone())], Added::Lines(vec![(1, 2)]));
        assert_eq!(f[&(a, c)], Added::Whole);
        assert_eq!(f.len(), 3);
    }

    #[test]
    fn reads_nul_separated_raw_entries() {
        let raw = b":100644 100644 aaaa bbbb M\0with\nnewline\0:000000 100644 0000 cccc A\0\xff\xfe.txt\0:100644 100644 dddd eeee R091\0old name\0new name\0:100644 120000 ffff 1111 T\0link\0:000000 100644 0000 0000 U\0conflict\0";
        let c = changed_files(raw);
        let paths: Vec<&[u8]> = c.iter().map(|x| x.path.as_slice()).collect();
        assert_eq!(
            paths,
            vec![
                &b"with\nnewline"[..],
                &b"\xff\xfe.txt"[..],
                &b"new name"[..]
            ]
        );
        assert_eq!((c[2].old.as_str(), c[2].new.as_str()), ("dddd", "eeee"));
    }

    #[test]
    fn unquotes_git_paths() {
        assert_eq!(unquote("\"a\\tb\""), "a\tb");
        assert_eq!(unquote("\"\\303\\244.txt\""), "ä.txt");
        assert_eq!(unquote("plain"), "plain");
    }
}
