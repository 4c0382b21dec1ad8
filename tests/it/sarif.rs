//! SARIF output checked against the official OASIS SARIF 2.1.0 JSON schema.
//!
//! In: a temporary tree of files holding fake GitHub tokens made at run time.
//! Out: `sluice scan --format sarif -o OUT TREE` must exit 1, OUT must pass
//! `tests/support/validate_sarif.py` against `tests/fixtures/sarif-schema-2.1.0.json`
//! (needs python3 with `jsonschema`: the test fails, never skips, without it),
//! and OUT must hold together: version 2.1.0, results whose rules are declared,
//! 1-based lines, and no secret text.
//!
//! `PYTHON` names another interpreter than `python3`.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const INSTALL_HINT: &str = "install Python 3 and run `pip install jsonschema` \
     (or point PYTHON at an interpreter that has it)";

/// `n` random ASCII letters and digits, from std alone (a randomly keyed hasher
/// seeds an xorshift generator).
fn random_alphanumeric(n: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut x = RandomState::new().hash_one(std::process::id()) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ALPHABET[(x % ALPHABET.len() as u64) as usize] as char
        })
        .collect()
}

/// A fresh GitHub classic token, assembled here so the repository holds none.
fn fake_github_token() -> String {
    format!("ghp_{}", random_alphanumeric(36))
}

fn show(output: &Output) -> String {
    format!(
        "--- stdout ---\n{}--- stderr ---\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs the Python validator on `sarif`; panics with its report unless valid.
fn validate_against_schema(sarif: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into());
    let output = Command::new(&python)
        .arg(root.join("tests/support/validate_sarif.py"))
        .arg(root.join("tests/fixtures/sarif-schema-2.1.0.json"))
        .arg(sarif)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e}; this test needs it to validate SARIF: {INSTALL_HINT}",
                python.to_string_lossy()
            )
        });
    match output.status.code() {
        Some(0) => {}
        Some(1) => panic!(
            "sluice's SARIF output does not validate against the SARIF 2.1.0 schema\n{}\n--- {} ---\n{}",
            show(&output),
            sarif.display(),
            std::fs::read_to_string(sarif).unwrap_or_default()
        ),
        _ => panic!(
            "the SARIF validator could not run ({}): {INSTALL_HINT}\n{}",
            output.status,
            show(&output)
        ),
    }
}

#[test]
fn sarif_output_validates_against_the_schema() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    let nested = tree.join("config dir");
    std::fs::create_dir_all(&nested).unwrap();

    let secrets = [fake_github_token(), fake_github_token()];
    let files = [
        (tree.join(".env"), format!("GITHUB_TOKEN={}\n", secrets[0])),
        (
            nested.join("settings.py"),
            format!("# settings\nnäme = \"{}\"\n", secrets[1]),
        ),
    ];
    for (path, text) in &files {
        std::fs::write(path, text).unwrap();
    }

    let out = tmp.path().join("out.sarif");
    let scan = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(tmp.path())
        .args(["scan", "--format", "sarif", "-o"])
        .arg(&out)
        .arg(&tree)
        .output()
        .unwrap();
    assert_eq!(
        scan.status.code(),
        Some(1),
        "findings must exit 1\n{}",
        show(&scan)
    );

    validate_against_schema(&out);

    let raw = std::fs::read_to_string(&out).unwrap();
    for secret in &secrets {
        assert!(!raw.contains(secret.as_str()), "secret in SARIF:\n{raw}");
        let body = &secret.as_bytes()["ghp_".len()..];
        for piece in body.windows(8) {
            let piece = std::str::from_utf8(piece).unwrap();
            assert!(
                !raw.contains(piece),
                "part of a secret ({piece}) in SARIF:\n{raw}"
            );
        }
    }

    let sarif: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let run = &sarif["runs"][0];
    let rules: Vec<&str> = run["tool"]["driver"]["rules"]
        .as_array()
        .expect("tool.driver.rules is an array")
        .iter()
        .map(|r| r["id"].as_str().expect("every rule has a string id"))
        .collect();
    let results = run["results"].as_array().expect("results is an array");
    assert!(!results.is_empty(), "no results:\n{raw}");

    let mut uris = Vec::new();
    for result in results {
        let rule_id = result["ruleId"].as_str().expect("result.ruleId");
        assert!(
            rules.contains(&rule_id),
            "ruleId {rule_id} is not in tool.driver.rules {rules:?}"
        );
        if let Some(index) = result["ruleIndex"].as_u64() {
            assert_eq!(
                rules.get(index as usize),
                Some(&rule_id),
                "ruleIndex {index} does not point at rule {rule_id}"
            );
        }
        let location = &result["locations"][0]["physicalLocation"];
        let start_line = location["region"]["startLine"]
            .as_u64()
            .expect("region.startLine is an integer");
        assert!(start_line >= 1, "startLine {start_line} in {result}");
        uris.push(
            location["artifactLocation"]["uri"]
                .as_str()
                .expect("artifactLocation.uri")
                .to_owned(),
        );
    }
    for (path, _) in &files {
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(
            uris.iter().any(|u| u.ends_with(&format!("/{name}"))),
            "no result for {} among {uris:?}",
            path.display()
        );
    }
}
