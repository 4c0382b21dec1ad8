//! `--git`, `--diff` and `--staged` against real repositories built by the test.

use crate::support::{Rng, fake_github_token, fake_stripe_key, git, git_repo, sluice, write};

fn findings(stdout: &str) -> Vec<serde_json::Value> {
    let v: serde_json::Value =
        serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    v["findings"].as_array().unwrap().clone()
}

#[test]
fn history_scans_each_blob_once_and_lists_every_commit_and_path() {
    let mut rng = Rng::new(21);
    let repo = git_repo();
    let d = repo.path();
    let token = fake_github_token(&mut rng);
    write(d, "config/app.env", &format!("GITHUB_TOKEN={token}\n"));
    git(d, &["add", "."]);
    git(d, &["commit", "-qm", "add config"]);
    let first = git(d, &["rev-parse", "HEAD"]).trim().to_string();
    // The same content under a second path on a branch: one blob, two places.
    git(d, &["checkout", "-qb", "copy"]);
    write(d, "backup/app.env", &format!("GITHUB_TOKEN={token}\n"));
    git(d, &["add", "."]);
    git(d, &["commit", "-qm", "copy it"]);
    let second = git(d, &["rev-parse", "HEAD"]).trim().to_string();
    git(d, &["checkout", "-q", "main"]);
    // Removed from main: history still has it.
    git(d, &["rm", "-q", "config/app.env"]);
    git(d, &["commit", "-qm", "remove"]);

    let r = sluice(d, &["scan", "--git", "--format", "json"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let f = findings(&r.stdout);
    assert_eq!(f.len(), 1, "one blob, one finding: {f:?}");
    let commits = f[0]["commits"].as_array().unwrap();
    let pairs: Vec<(String, String)> = commits
        .iter()
        .map(|c| {
            (
                c["commit"].as_str().unwrap().to_string(),
                c["path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        pairs.contains(&(first.clone(), "config/app.env".into())),
        "{pairs:?}"
    );
    assert!(
        pairs.contains(&(second, "backup/app.env".into())),
        "{pairs:?}"
    );
    assert!(!r.stdout.contains(&token[4..]));
}

#[test]
fn history_outside_a_repository_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let r = sluice(dir.path(), &["scan", "--git"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("is not a git repository"), "{}", r.stderr);
}

#[test]
fn diff_reports_only_added_lines_with_head_line_numbers() {
    let mut rng = Rng::new(22);
    let repo = git_repo();
    let d = repo.path();
    let old = fake_github_token(&mut rng);
    write(d, "app.env", &format!("OLD={old}\nA=1\nB=2\n"));
    git(d, &["add", "."]);
    git(d, &["commit", "-qm", "base"]);
    git(d, &["checkout", "-qb", "feature"]);
    let new = fake_stripe_key(&mut rng);
    write(d, "app.env", &format!("OLD={old}\nA=1\nNEW={new}\nB=2\n"));
    write(d, "docs/readme.md", "no secrets\n");
    git(d, &["add", "."]);
    git(d, &["commit", "-qm", "feature"]);
    // Uncommitted edits are not part of the range.
    write(
        d,
        "app.env",
        &format!("X={}\n", fake_github_token(&mut rng)),
    );

    for range in ["main..feature", "main...HEAD", "main"] {
        let r = sluice(d, &["scan", "--diff", range, "--format", "json"]);
        assert_eq!(r.code, 1, "{range}: {}", r.stderr);
        let f = findings(&r.stdout);
        assert_eq!(f.len(), 1, "{range}: only the added line: {f:?}");
        assert_eq!(f[0]["path"], "app.env");
        assert_eq!(f[0]["line"], 3);
    }
    let r = sluice(d, &["scan", "--diff", "main..nope"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
}

#[test]
fn staged_scans_the_index_only() {
    let mut rng = Rng::new(23);
    let repo = git_repo();
    let d = repo.path();
    write(d, "a.txt", "hello\n");
    git(d, &["add", "."]);
    git(d, &["commit", "-qm", "init"]);
    assert_eq!(sluice(d, &["scan", "--staged"]).code, 0);
    write(
        d,
        "a.txt",
        &format!("hello\ntoken={}\n", fake_github_token(&mut rng)),
    );
    // Not staged yet: clean.
    assert_eq!(sluice(d, &["scan", "--staged"]).code, 0);
    git(d, &["add", "a.txt"]);
    let r = sluice(d, &["scan", "--staged", "--format", "json"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let f = findings(&r.stdout);
    assert_eq!(
        (f[0]["path"].as_str(), f[0]["line"].as_u64()),
        (Some("a.txt"), Some(2))
    );
    // The working tree changing afterwards does not matter: the index is what gets committed.
    write(d, "a.txt", "hello\n");
    assert_eq!(sluice(d, &["scan", "--staged"]).code, 1);
}

#[test]
fn staged_works_before_the_first_commit() {
    let mut rng = Rng::new(24);
    let repo = git_repo();
    let d = repo.path();
    write(
        d,
        "first.env",
        &format!("T={}\n", fake_github_token(&mut rng)),
    );
    git(d, &["add", "."]);
    let r = sluice(d, &["scan", "--staged"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
}

/// File names with a newline, a quote, a tab or invalid UTF-8 before an ordinary one: each file
/// is read with its own content and reported under its own name, in `--staged` and `--diff`
/// (a newline once desynchronised the blob stream: later files got earlier files' content).
#[test]
fn odd_file_names_keep_their_own_content_in_staged_and_diff() {
    use std::os::unix::ffi::OsStrExt;
    let mut rng = Rng::new(25);
    let repo = git_repo();
    let d = repo.path();
    write(d, "base.txt", "base\n");
    git(d, &["add", "."]);
    git(d, &["commit", "-qm", "base"]);
    git(d, &["checkout", "-qb", "feature"]);
    let names: Vec<&[u8]> = vec![
        b"a\nb.env",
        b"quote\"d.env",
        b"tab\there.env",
        b"\xff\xfe.env",
        b"z-plain.env",
    ];
    // File k holds its token on line k + 1, so a name paired with another file's content shows.
    for (k, name) in names.iter().enumerate() {
        let text = format!("{}T={}\n", "x\n".repeat(k), fake_github_token(&mut rng));
        std::fs::write(d.join(std::ffi::OsStr::from_bytes(name)), text).unwrap();
    }
    git(d, &["add", "-A"]);
    let check = |r: crate::support::Run, mode: &str| {
        assert_eq!(r.code, 1, "{mode}: {}", r.stderr);
        let mut got: Vec<(String, u64)> = findings(&r.stdout)
            .iter()
            .map(|f| {
                (
                    f["path"].as_str().unwrap().to_string(),
                    f["line"].as_u64().unwrap(),
                )
            })
            .collect();
        got.sort();
        let mut want: Vec<(String, u64)> = names
            .iter()
            .enumerate()
            .map(|(k, n)| (String::from_utf8_lossy(n).into_owned(), k as u64 + 1))
            .collect();
        want.sort();
        assert_eq!(got, want, "{mode}");
    };
    check(
        sluice(d, &["scan", "--staged", "--format", "json"]),
        "staged",
    );
    git(d, &["commit", "-qm", "odd names"]);
    check(
        sluice(d, &["scan", "--diff", "main...feature", "--format", "json"]),
        "diff",
    );
}

/// A change to one line inside a private key brings the key into the change: the finding starts
/// on an unchanged line but spans an added one.
#[test]
fn a_changed_line_inside_a_private_key_is_found_by_diff() {
    let mut rng = Rng::new(26);
    let repo = git_repo();
    let d = repo.path();
    let lines: Vec<String> = (0..12)
        .map(|_| rng.string(crate::support::ALNUM, 64))
        .collect();
    let pem = |body: &[String]| {
        format!(
            "intro\n-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----\noutro\n",
            body.join("\n")
        )
    };
    write(d, "deploy/key.pem", "placeholder\n");
    git(d, &["add", "."]);
    git(d, &["commit", "-qm", "base"]);
    write(d, "deploy/key.pem", &pem(&lines));
    git(d, &["commit", "-qam", "add key"]);
    git(d, &["checkout", "-qb", "feature"]);
    let mut changed = lines.clone();
    changed[6] = rng.string(crate::support::ALNUM, 64);
    write(d, "deploy/key.pem", &pem(&changed));
    git(d, &["commit", "-qam", "rotate one line"]);
    let r = sluice(d, &["scan", "--diff", "main..feature", "--format", "json"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let f = findings(&r.stdout);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(
        (f[0]["line"].as_u64(), f[0]["end_line"].as_u64()),
        (Some(3), Some(14))
    );
    // Only the line after the key changed: no finding.
    git(d, &["checkout", "-qb", "outro", "main"]);
    write(
        d,
        "deploy/key.pem",
        &pem(&lines).replace("outro", "changed"),
    );
    git(d, &["commit", "-qam", "change the outro"]);
    let r = sluice(d, &["scan", "--diff", "main..outro", "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
}

/// One baseline serves every spelling of a path and every mode: written from `scan .`, it knows
/// the finding in `./x`, `x`, an absolute path, a subdirectory's relative path, `--staged`,
/// `--diff` and `--git`. Its fingerprints are keyed: not the plain hash of rule, path and
/// secret; a rewrite keeps its salt; a key in `$SLUICE_FINGERPRINT_KEY` is required and checked;
/// a baseline of the older unkeyed kind still applies, with a warning.
#[test]
fn one_baseline_serves_every_mode_and_its_fingerprints_are_keyed() {
    let mut rng = Rng::new(27);
    let repo = git_repo();
    let d = repo.path();
    let token = fake_github_token(&mut rng);
    write(d, "config/app.env", "A=1\n");
    git(d, &["add", "."]);
    git(d, &["commit", "-qm", "base"]);
    git(d, &["checkout", "-qb", "feature"]);
    write(d, "config/app.env", &format!("A=1\nGITHUB_TOKEN={token}\n"));
    git(d, &["add", "."]);
    let no_key = ["SLUICE_FINGERPRINT_KEY"];
    let run = |cwd: &std::path::Path, args: &[&str], key: Option<&str>| {
        let env: Vec<(&str, &str)> = key
            .map(|k| vec![("SLUICE_FINGERPRINT_KEY", k)])
            .unwrap_or_default();
        crate::support::sluice_env(cwd, &env, &no_key, args, None)
    };
    let r = run(
        d,
        &["scan", "--write-baseline", ".baseline.json", "."],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let text = std::fs::read_to_string(d.join(".baseline.json")).unwrap();
    let file: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(file["version"], 2);
    assert_eq!(file["findings"][0]["path"], "config/app.env");
    let salt = file["salt"].as_str().unwrap().to_string();
    let fp = file["findings"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    let rule = file["findings"][0]["rule"].as_str().unwrap().to_string();
    for p in ["config/app.env", "./config/app.env"] {
        assert_ne!(fp, sluice::scan::fingerprint(&rule, p, token.as_bytes()));
    }
    let abs = d.join("config/app.env").display().to_string();
    let known = |cwd: &std::path::Path, args: &[&str]| {
        let mut all = vec!["scan", "--baseline"];
        all.extend_from_slice(args);
        let r = run(cwd, &all, None);
        assert_eq!(r.code, 0, "{args:?}: {}{}", r.stdout, r.stderr);
        assert!(
            r.stdout.contains("1 known from the baseline"),
            "{args:?}: {}",
            r.stdout
        );
    };
    known(d, &[".baseline.json", "./config/app.env"]);
    known(d, &[".baseline.json", "config/app.env"]);
    known(d, &[".baseline.json", &abs]);
    known(d, &[".baseline.json", d.to_str().unwrap()]);
    known(&d.join("config"), &["../.baseline.json", "app.env"]);
    known(d, &[".baseline.json", "--staged"]);
    git(d, &["commit", "-qm", "token"]);
    known(d, &[".baseline.json", "--diff", "main...feature"]);
    known(d, &[".baseline.json", "--git"]);
    // Rewriting keeps the salt, so fingerprints stay put.
    let r = run(
        d,
        &["scan", "--write-baseline", ".baseline.json", "."],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let again: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join(".baseline.json")).unwrap()).unwrap();
    assert_eq!(
        (
            again["salt"].as_str(),
            again["findings"][0]["fingerprint"].as_str()
        ),
        (Some(salt.as_str()), Some(fp.as_str()))
    );
    // A secret key: required, and checked.
    let key = rng.string(crate::support::ALNUM, 32);
    let r = run(
        d,
        &["scan", "--write-baseline", "keyed.json", "."],
        Some(&key),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let keyed = std::fs::read_to_string(d.join("keyed.json")).unwrap();
    assert!(keyed.contains("\"keyed_with\": \"SLUICE_FINGERPRINT_KEY\"") && !keyed.contains(&key));
    let r = run(d, &["scan", "--baseline", "keyed.json", "."], Some(&key));
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let r = run(d, &["scan", "--baseline", "keyed.json", "."], None);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("set it to the key"), "{}", r.stderr);
    let r = run(
        d,
        &["scan", "--baseline", "keyed.json", "."],
        Some("another key"),
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("not the key"), "{}", r.stderr);
    // An older, unkeyed baseline still applies to the spelling it was written with.
    let legacy = serde_json::json!({"version": 1, "findings": [{
        "fingerprint": sluice::scan::fingerprint(&rule, "./config/app.env", token.as_bytes()),
        "rule": rule, "path": "./config/app.env"}]});
    write(d, "old.json", &legacy.to_string());
    let r = run(
        d,
        &["scan", "--baseline", "old.json", "./config/app.env"],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stderr.contains("regenerate it with --write-baseline"),
        "{}",
        r.stderr
    );
}

fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes) in files {
        w.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

fn tar_gz_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut b = tar::Builder::new(Vec::new());
    for (name, bytes) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, *bytes).unwrap();
    }
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(&b.into_inner().unwrap()).unwrap();
    e.finish().unwrap()
}

/// Archives are entered (zip, a zip inside a tar.gz, a plain .gz), findings are named
/// `archive!member` with the member's own line, in a directory scan and in `--staged`;
/// `--archive-depth 0` leaves them shut; a bomb is stopped with a warning.
#[test]
fn archives_are_entered_in_files_and_the_index() {
    use std::io::Write;
    let mut rng = Rng::new(28);
    let repo = git_repo();
    let d = repo.path();
    let env = |rng: &mut Rng| format!("# app\nGITHUB_TOKEN={}\n", fake_github_token(rng));
    let inner = zip_of(&[("x.env", env(&mut rng).as_bytes())]);
    std::fs::write(
        d.join("bundle.jar"),
        zip_of(&[("conf/app.env", env(&mut rng).as_bytes())]),
    )
    .unwrap();
    std::fs::write(
        d.join("release.tgz"),
        tar_gz_of(&[("pkg/readme.txt", b"nothing\n"), ("pkg/inner.zip", &inner)]),
    )
    .unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(env(&mut rng).as_bytes()).unwrap();
    std::fs::write(d.join("app.log.gz"), gz.finish().unwrap()).unwrap();
    let listed = |r: &crate::support::Run| {
        let mut v: Vec<String> = findings(&r.stdout)
            .iter()
            .map(|f| format!("{}:{}", f["path"].as_str().unwrap(), f["line"]))
            .collect();
        v.sort();
        v
    };
    let r = sluice(d, &["scan", "--format", "json", "."]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(
        listed(&r),
        vec![
            "./app.log.gz!app.log:2",
            "./bundle.jar!conf/app.env:2",
            "./release.tgz!pkg/inner.zip!x.env:2"
        ]
    );
    let r = sluice(
        d,
        &[
            "scan",
            "--archive-depth",
            "1",
            "--format",
            "json",
            "release.tgz",
        ],
    );
    // One level: the zip inside the tarball is not entered (its bytes are searched as a binary
    // file, where a small member's stored text can still show).
    assert!(
        listed(&r).iter().all(|p| !p.contains("x.env")),
        "{}",
        r.stdout
    );
    let r = sluice(
        d,
        &["scan", "--archive-depth", "0", "--format", "json", "."],
    );
    assert!(
        listed(&r).iter().all(|p| !p.contains('!')),
        "archives stay shut (searched as binary files only): {}",
        r.stdout
    );
    git(d, &["add", "bundle.jar"]);
    let r = sluice(d, &["scan", "--staged", "--format", "json"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(listed(&r), vec!["bundle.jar!conf/app.env:2"]);
    // 64 MiB of zeros in a zip: stopped, said, not scanned.
    std::fs::create_dir(d.join("bomb")).unwrap();
    std::fs::write(
        d.join("bomb/zeros.zip"),
        zip_of(&[("zeros", &vec![0u8; 64 << 20])]),
    )
    .unwrap();
    let r = sluice(d, &["scan", "bomb"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stderr.contains("bomb/zeros.zip!zeros") && r.stderr.contains("archive bomb"),
        "{}",
        r.stderr
    );
}

/// An archive committed once and deleted since is entered by `--git`: its member's secret is
/// found, named `archive!member` with the member's line and the commit that added it; and a
/// pull request adding an archive is blamed for it by `--diff`.
#[test]
fn archives_in_history_and_in_a_diff_are_entered() {
    let mut rng = Rng::new(29);
    let repo = git_repo();
    let d = repo.path();
    write(d, "README.md", "# app\n");
    git(d, &["add", "."]);
    git(d, &["commit", "-qm", "init"]);
    let env = |rng: &mut Rng| format!("# app\nGITHUB_TOKEN={}\n", fake_github_token(rng));
    git(d, &["checkout", "-qb", "feature"]);
    std::fs::write(
        d.join("bundle.jar"),
        zip_of(&[("conf/app.env", env(&mut rng).as_bytes())]),
    )
    .unwrap();
    git(d, &["add", "bundle.jar"]);
    git(d, &["commit", "-qm", "add the bundle"]);
    let added = git(d, &["rev-parse", "HEAD"]).trim().to_string();
    let r = sluice(d, &["scan", "--diff", "main...feature", "--format", "json"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let f = findings(&r.stdout);
    assert_eq!(f.len(), 1, "{}", r.stdout);
    assert_eq!(f[0]["path"], "bundle.jar!conf/app.env");
    assert_eq!(f[0]["line"], 2);
    git(d, &["rm", "-q", "bundle.jar"]);
    git(d, &["commit", "-qm", "remove the bundle"]);
    let r = sluice(d, &["scan", "--git", "--format", "json"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let f = findings(&r.stdout);
    assert_eq!(f.len(), 1, "{}", r.stdout);
    assert_eq!(f[0]["path"], "bundle.jar!conf/app.env");
    assert_eq!(f[0]["line"], 2);
    let commits: Vec<&str> = f[0]["commits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["commit"].as_str().unwrap())
        .collect();
    assert_eq!(commits, vec![added.as_str()], "{}", r.stdout);
    // With archives shut, the zip's compressed member is not read as text.
    let r = sluice(
        d,
        &["scan", "--git", "--archive-depth", "0", "--format", "json"],
    );
    assert!(
        findings(&r.stdout)
            .iter()
            .all(|f| !f["path"].as_str().unwrap().contains('!')),
        "{}",
        r.stdout
    );
}
