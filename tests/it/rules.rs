//! `sluice rules check` on the built-ins and on broken user rule files.

use crate::support::{sluice, write};

#[test]
fn builtin_rules_pass_their_own_examples() {
    let dir = tempfile::tempdir().unwrap();
    let r = sluice(dir.path(), &["rules", "check"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let n: usize = r
        .stdout
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("a rule count");
    assert!(n >= 80, "only {n} built-in rules");
}

#[test]
fn broken_rule_file_reports_every_problem_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "mine.toml",
        r#"version = 1

[[rules]]
id = "two-groups"
description = "bad: two groups"
regex = '(a)(b)'
keywords = ["ab"]
severity = "low"
examples = ["ab"]
negative_examples = ["x"]

[[rules]]
id = "no-compile"
description = "bad: does not compile"
regex = '(unclosed'
keywords = ["Upper"]
severity = "low"
examples = ["x"]
negative_examples = ["y"]

[[rules]]
id = "example-miss"
description = "example does not match"
regex = '\b(zz_[0-9]{4})\b'
keywords = ["zz_"]
severity = "low"
examples = ["zz_12"]
negative_examples = ["zz_1234"]
"#,
    );
    let r = sluice(dir.path(), &["rules", "check", "mine.toml"]);
    assert_eq!(r.code, 2, "{}", r.stdout);
    assert!(
        r.stderr.contains(
            "mine.toml:4:1: rule `two-groups`: regex must have exactly one capture group"
        ),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("mine.toml:13:1: rule `no-compile`: regex does not compile"),
        "{}",
        r.stderr
    );
    // What is wrong with the pattern, not only that something is.
    let line = r
        .stderr
        .lines()
        .find(|l| l.contains("`no-compile`: regex does not compile"))
        .unwrap_or_default();
    assert!(
        line.contains("unclosed") || line.contains("unopened"),
        "{line}"
    );
    assert!(
        r.stderr
            .contains("keyword `Upper` must be non-empty and lowercase"),
        "{}",
        r.stderr
    );

    // Fix the first two: now the examples are checked.
    let text = std::fs::read_to_string(dir.path().join("mine.toml")).unwrap();
    let fixed = text
        .replace("'(a)(b)'", "'(ab)'")
        .replace("'(unclosed'", "'(x)'")
        .replace("\"Upper\"", "\"x\"");
    write(dir.path(), "mine.toml", &fixed);
    let r = sluice(dir.path(), &["rules", "check", "mine.toml"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("rule `example-miss`: example does not match"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("rule `example-miss`: negative example matches"),
        "{}",
        r.stderr
    );
}

#[test]
fn toml_syntax_error_has_a_position() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "bad.toml", "version = 1\n[[rules]]\nid = \n");
    let r = sluice(dir.path(), &["rules", "check", "bad.toml"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.starts_with("error: bad.toml:3:"), "{}", r.stderr);
}

#[test]
fn custom_rules_extend_the_scan() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "acme.toml",
        r#"version = 1
[[rules]]
id = "acme-token"
description = "ACME internal token"
regex = '\b(acme_[a-f0-9]{16})\b'
keywords = ["acme_"]
severity = "high"
tags = ["internal"]
examples = ["acme_0123456789abcdef"]
negative_examples = ["acme_xyz"]
"#,
    );
    write(
        dir.path(),
        "src/app.py",
        "TOKEN = 'acme_9f8e7d6c5b4a3921'\n",
    );
    let r = sluice(dir.path(), &["scan", "--rules", "acme.toml", "src"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("src/app.py:1:10  acme-token"),
        "{}",
        r.stdout
    );
    let r = sluice(
        dir.path(),
        &[
            "scan",
            "--rules",
            "acme.toml",
            "--disable-rule",
            "acme-token",
            "src",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stdout);
}

#[test]
fn placeholder_shapes_hide_context_secrets_but_not_self_identifying_tokens() {
    // A made-up looking token in a provider's own format is still that provider's token; the
    // same counting run after a context keyword is a placeholder.
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "r.toml",
        r#"version = 1
[allow]
placeholders = ['''(?i)12345678''']

[[rules]]
id = "acme-token"
description = "Acme token"
regex = '''\b(acmt_[A-Za-z0-9]{30})\b'''
keywords = ["acmt_"]
severity = "high"
examples = ["acmt_Xq3v9LmT2pR8sK4wY7zB1nC6dF0gHj"]
negative_examples = ["acmt_short"]

[[rules]]
id = "widget-key"
description = "Widget API key"
regex = '''widget_key\s*=\s*([A-Za-z0-9]{24})\b'''
keywords = ["widget_key"]
severity = "high"
examples = ["widget_key = Xq3v9LmT2pR8sK4wY7zB1nC6"]
negative_examples = ["widget_key = short"]
"#,
    );
    let token = format!("acmt_{}Xq3v9LmT2pR8sK4wY7zB1n", "12345678");
    let context = format!("widget_key = {}Xq3v9LmT2pR8sK4w", "12345678");
    write(dir.path(), "a.txt", &format!("{token}\n{context}\n"));
    let run = crate::support::sluice(
        dir.path(),
        &[
            "scan",
            "--no-builtin-rules",
            "--rules",
            "r.toml",
            "--format",
            "json",
            "a.txt",
        ],
    );
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let rules: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["acme-token"], "{}", run.stdout);
}
