//! sluice.yaml: discovery from parent directories, --config, `sluice check`, all errors at once,
//! and the generated JSON Schemas in schemas/ staying fresh.

use crate::support::{sluice, write};

#[test]
fn discovered_from_parent_directories() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "sluice.yaml",
        "version: 1\nscan:\n  exclude: ['vendor/**']\n",
    );
    std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
    let r = sluice(&dir.path().join("a/b"), &["check"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("sluice.yaml: ok"), "{}", r.stdout);
}

#[test]
fn check_without_config_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let r = sluice(dir.path(), &["check"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no sluice.yaml"), "{}", r.stderr);
}

#[test]
fn every_bad_line_is_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "custom.yaml",
        "version: 1\nscan:\n  exclud: [x]\n  gitignore: maybe\n  rules: missing-list\n  allow: ['(open']\n",
    );
    let r = sluice(dir.path(), &["--config", "custom.yaml", "check"]);
    assert_eq!(r.code, 2);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 4, "{}", r.stderr);
    assert!(
        lines[0].starts_with("error: custom.yaml:3:3: unknown key `exclud`"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with("error: custom.yaml:4:14: `scan.gitignore`: expected true or false"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with("error: custom.yaml:5:10: `scan.rules`: expected a list"),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].starts_with("error: custom.yaml:6:11: `scan.allow` regex does not compile"),
        "{}",
        lines[3]
    );
}

#[test]
fn env_interpolation_and_missing_rule_files() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "sluice.yaml",
        "version: 1\nscan:\n  rules: ['${RULES_DIR:-rules}/extra.toml']\n",
    );
    let r = sluice(dir.path(), &["check"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("rules/extra.toml"), "{}", r.stderr);
}

#[test]
fn yaml_syntax_error_has_position() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "sluice.yaml", "version: 1\nscan: [unclosed\n");
    let r = sluice(dir.path(), &["check"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.starts_with("error: "), "{}", r.stderr);
    assert!(
        r.stderr.contains("sluice.yaml:3:1: YAML syntax error"),
        "{}",
        r.stderr
    );
}

/// The committed schemas are what the types generate. Regenerate with
/// `SLUICE_UPDATE_SCHEMAS=1 cargo test --test it schemas_are_fresh`.
#[test]
fn schemas_are_fresh() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    for (kind, file) in [
        ("config", "schemas/sluice.schema.json"),
        ("rules", "schemas/rules.schema.json"),
    ] {
        let r = sluice(dir.path(), &["schema", kind]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let path = root.join(file);
        if std::env::var_os("SLUICE_UPDATE_SCHEMAS").is_some() {
            std::fs::write(&path, &r.stdout).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == r.stdout,
            "{file} is stale; regenerate with SLUICE_UPDATE_SCHEMAS=1 cargo test --test it schemas_are_fresh"
        );
    }
}

/// A sluice.yaml of a few hundred bytes whose nested aliases stand for 9^9 values is refused
/// at the alias that crosses the limit, instead of expanding into gigabytes.
#[test]
fn a_yaml_alias_bomb_is_refused_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("version: 1\nx0: &x0 [a, a, a, a, a, a, a, a, a]\n");
    for i in 1..10 {
        let p = i - 1;
        text.push_str(&format!(
            "x{i}: &x{i} [*x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}]\n"
        ));
    }
    write(dir.path(), "sluice.yaml", &text);
    let r = sluice(dir.path(), &["check"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("sluice.yaml:") && r.stderr.contains("expands to more than"),
        "{}",
        r.stderr
    );
}

/// Messages for the mistakes people make in `environments:` and `secrets:` say what is wrong
/// and where: the missing key, the providers there are, the typo'd key with its correction.
#[test]
fn union_mistakes_name_the_missing_key_the_providers_and_the_typo() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "environments:\n  prod: { secrets: { provider: vault } }",
            "sluice.yaml:3:20: `environments.prod.secrets`: missing required key `address`",
        ),
        (
            "environments:\n  prod: { secrets: { provider: gcp } }",
            "sluice.yaml:3:32: `environments.prod.secrets.provider`: `gcp` is not one of: age, vault, aws, sops, env",
        ),
        (
            "environments:\n  prod: { secrets: { file: x.age } }",
            "missing required key `provider` (one of: age, vault, aws, sops, env)",
        ),
        (
            "environments:\n  prod: { secrets: { provider: env } }\nsecrets:\n  A: { prod: { ref: 'env://A', optionl: true } }",
            "sluice.yaml:5:32: unknown key `optionl` in `secrets.A.prod`; did you mean `optional`?",
        ),
        (
            "environments:\n  prod: { secrets: { provider: env } }\nsecrets:\n  A: { prod: { reff: 'env://A' } }",
            "unknown key `reff` in `secrets.A.prod`; did you mean `ref`?",
        ),
        (
            "environments:\n  prod: { secrets: { provider: env } }\nsecrets:\n  A: { prod: 5 }",
            "`secrets.A.prod`: expected a string or a mapping, found an integer",
        ),
        (
            "environments:\n  prod: { secrets: { provider: vault, address: 'not a url' } }",
            "`environments.prod.secrets.address`: `not a url` is not an http(s) URL",
        ),
    ];
    for (body, want) in cases {
        write(dir.path(), "sluice.yaml", &format!("version: 1\n{body}\n"));
        let r = sluice(dir.path(), &["check"]);
        assert_eq!(r.code, 2, "{body}: {}", r.stderr);
        assert!(
            r.stderr.contains(want),
            "{body}\nwant: {want}\n got: {}",
            r.stderr
        );
        assert!(!r.stderr.contains("or a mapping or"), "{}", r.stderr);
    }
    write(dir.path(), "sluice.yaml", "- version: 1\n- b\n");
    let r = sluice(dir.path(), &["check"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("sluice.yaml:1:1: the document: expected a mapping, found a list"),
        "{}",
        r.stderr
    );
}
