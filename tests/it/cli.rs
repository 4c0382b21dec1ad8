//! CLI behaviour as snapshots: exit code, stdout and stderr together, temp paths filtered.
//!
//! Pattern for new commands: build inputs in a tempdir, `sluice(dir, args)`, then
//! `insta::assert_snapshot!(run.snapshot(dir))`. Review changes with `cargo insta review` or
//! accept with `INSTA_UPDATE=always`.

use crate::support::{Rng, fake_github_token, sluice, write};

#[test]
fn scan_human_report() {
    let mut rng = Rng::new(31);
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "deploy/.env",
        &format!("# prod\nGITHUB_TOKEN={}\n", fake_github_token(&mut rng)),
    );
    write(
        dir.path(),
        "src/main.rs",
        "fn main() { println!(\"hi\"); }\n",
    );
    let r = sluice(dir.path(), &["scan", "deploy", "src"]);
    insta::assert_snapshot!(r.snapshot(dir.path()));
}

#[test]
fn scan_quiet_prints_findings_only() {
    let mut rng = Rng::new(32);
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a.env",
        &format!("T={}\n", fake_github_token(&mut rng)),
    );
    let r = sluice(dir.path(), &["scan", "-q", "a.env"]);
    insta::assert_snapshot!(r.snapshot(dir.path()));
}

#[test]
fn check_reports_problems() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "sluice.yaml",
        "version: 1\nscan:\n  exclude: 3\n  baselines: x.json\n",
    );
    let r = sluice(dir.path(), &["check"]);
    insta::assert_snapshot!(r.snapshot(dir.path()));
}

#[test]
fn conflicting_sources_are_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let r = sluice(dir.path(), &["scan", "--git", "--staged"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("cannot be used with"), "{}", r.stderr);
}
