//! Environment-scoped secrets end to end with the age store: init, set, list, get, export, run,
//! interop with the `age` CLI both ways, SSH keys, hostile passphrase files, and sentinel values
//! that must never show up where they should not.

use std::path::Path;
use std::process::Command;

use crate::support::{Rng, age_keygen, run_ok, sluice_with, write};

/// A sentinel value, different per test, built at run time.
fn sentinel(seed: u64) -> String {
    format!("sntnl-{}", Rng::new(seed).string(crate::support::ALNUM, 24))
}

fn config(dir: &Path, extra_env: &str) {
    write(
        dir,
        "sluice.yaml",
        &format!(
            "version: 1
environments:
  dev: {{ secrets: {{ provider: age, file: secrets/dev.age, identity: keys/dev.txt }} }}
  prod: {{ protected: true, secrets: {{ provider: age, file: secrets/prod.age, identity: keys/prod.txt }} }}
{extra_env}secrets:
  API_TOKEN: {{ dev: age://API_TOKEN, prod: age://API_TOKEN }}
  LOG_LEVEL: {{ dev: {{ value: debug }}, prod: {{ value: info }} }}
  OPTIONAL_THING: {{ dev: {{ ref: age://NOPE, optional: true }} }}
"
        ),
    );
}

fn run(dir: &Path, args: &[&str], stdin: Option<&str>) -> crate::support::Run {
    sluice_with(dir, args, stdin.map(str::as_bytes))
}

/// Create `env`'s age store and set `API_TOKEN` in it.
fn store_with_token(dir: &Path, env: &str, value: &str) {
    assert_eq!(run(dir, &["secrets", "init", "--env", env], None).code, 0);
    assert_eq!(
        run(
            dir,
            &["secrets", "set", "--env", env, "API_TOKEN"],
            Some(value)
        )
        .code,
        0
    );
}

fn assert_absent(value: &str, r: &crate::support::Run, what: &str) {
    assert!(
        !r.stdout.contains(value),
        "{what}: value in stdout: {}",
        r.stdout
    );
    assert!(
        !r.stderr.contains(value),
        "{what}: value in stderr: {}",
        r.stderr
    );
}

#[test]
fn init_set_list_get_export_and_nothing_leaks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    config(d, "");
    let secret = sentinel(1);

    let r = run(d, &["secrets", "init", "--env", "dev"], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("public key age1"), "{}", r.stderr);
    let r = run(d, &["secrets", "init", "--env", "dev"], None);
    assert_eq!(r.code, 2, "init never overwrites a store");

    let r = run(
        d,
        &["secrets", "set", "--env", "dev", "API_TOKEN"],
        Some(&format!("{secret}\n")),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_absent(&secret, &r, "set");
    let on_disk = std::fs::read_to_string(d.join("secrets/dev.age")).unwrap();
    assert!(on_disk.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
    assert!(!on_disk.contains(&secret));
    use std::os::unix::fs::PermissionsExt;
    for f in ["secrets/dev.age", "keys/dev.txt"] {
        let mode = std::fs::metadata(d.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(d.join("secrets")).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temp files left behind");

    let r = run(d, &["secrets", "list", "--env", "dev"], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_absent(&secret, &r, "list");
    assert!(
        r.stdout.contains("API_TOKEN") && r.stdout.contains("age://API_TOKEN"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("age://NOPE (optional)"), "{}", r.stdout);

    let r = run(d, &["secrets", "get", "--env", "dev", "API_TOKEN"], None);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, secret.as_str()),
        "{}",
        r.stderr
    );

    let r = run(d, &["export", "--env", "dev", "--format", "dotenv"], None);
    assert_eq!(r.stdout, format!("API_TOKEN={secret}\nLOG_LEVEL=debug\n"));
    let r = run(d, &["export", "--env", "dev", "--format", "shell"], None);
    assert_eq!(
        r.stdout,
        format!("export API_TOKEN='{secret}'\nexport LOG_LEVEL='debug'\n")
    );
    let r = run(d, &["export", "--env", "dev", "--format", "json"], None);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["API_TOKEN"], secret.as_str());
    let r = run(
        d,
        &[
            "export",
            "--env",
            "dev",
            "--format",
            "k8s-secret",
            "--name",
            "app",
        ],
        None,
    );
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&secret);
    assert!(
        r.stdout.contains("kind: Secret") && r.stdout.contains("name: app"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!("  API_TOKEN: {b64}")),
        "{}",
        r.stdout
    );

    // A value that moves on: a second `set` keeps the other keys.
    let other = sentinel(2);
    run(
        d,
        &["secrets", "set", "--env", "dev", "OTHER"],
        Some(&other),
    );
    let r = run(d, &["secrets", "get", "--env", "dev", "API_TOKEN"], None);
    assert_eq!(r.stdout, secret);
}

#[test]
fn run_injects_keeps_existing_unless_override_and_propagates_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    config(d, "");
    let secret = sentinel(3);
    store_with_token(d, "dev", &secret);

    let r = run(
        d,
        &[
            "run",
            "--env",
            "dev",
            "--",
            "sh",
            "-c",
            "printf '%s %s' \"$API_TOKEN\" \"$LOG_LEVEL\" > out.txt",
        ],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_absent(&secret, &r, "run");
    assert_eq!(
        std::fs::read_to_string(d.join("out.txt")).unwrap(),
        format!("{secret} debug")
    );

    let r = run(
        d,
        &["run", "--env", "dev", "--", "sh", "-c", "exit 7"],
        None,
    );
    assert_eq!(r.code, 7, "the app's exit code is its own");

    let mut cmd = assert_cmd::Command::new(crate::support::sluice_bin());
    cmd.current_dir(d).env("LOG_LEVEL", "warn");
    let out = cmd
        .args([
            "run",
            "--env",
            "dev",
            "--",
            "sh",
            "-c",
            "printf %s \"$LOG_LEVEL\"",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "warn");
    assert!(String::from_utf8_lossy(&out.stderr).contains("LOG_LEVEL is already set"));
    let mut cmd = assert_cmd::Command::new(crate::support::sluice_bin());
    cmd.current_dir(d).env("LOG_LEVEL", "warn");
    let out = cmd
        .args([
            "run",
            "--env",
            "dev",
            "--override",
            "--",
            "sh",
            "-c",
            "printf %s \"$LOG_LEVEL\"",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "debug");

    let r = run(
        d,
        &[
            "run",
            "--env",
            "dev",
            "--only",
            "LOG_LEVEL",
            "--",
            "sh",
            "-c",
            "printf %s \"${API_TOKEN:-unset}\"",
        ],
        None,
    );
    assert_eq!(r.stdout, "unset");
    // As shells do: 127 for a command that is not there, 126 for one that cannot be run,
    // whether sluice execs it or supervises it.
    std::fs::write(d.join("not-executable.sh"), "echo hi\n").unwrap();
    for mask in [false, true] {
        for (program, code) in [("no-such-program-here", 127), ("./not-executable.sh", 126)] {
            let mut args = vec!["run", "--env", "dev"];
            if mask {
                args.push("--mask-output");
            }
            args.extend_from_slice(&["--", program]);
            let r = run(d, &args, None);
            assert_eq!(r.code, code, "{program} (mask {mask}): {}", r.stderr);
            assert!(
                r.stderr.contains(&format!("cannot run `{program}`")),
                "{}",
                r.stderr
            );
        }
    }
}

#[test]
fn a_missing_secret_fails_before_the_app_starts_naming_env_variable_and_ref() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    config(d, "");
    assert_eq!(run(d, &["secrets", "init", "--env", "prod"], None).code, 0);
    let r = run(
        d,
        &["run", "--env", "prod", "--", "sh", "-c", "touch started"],
        None,
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "environment `prod`, variable `API_TOKEN` (age://API_TOKEN): not found in the store"
        ),
        "{}",
        r.stderr
    );
    assert!(!d.join("started").exists(), "the app never started");
    let r = run(d, &["run", "--env", "nope", "--", "true"], None);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("no environment `nope`; declared: dev, prod"),
        "{}",
        r.stderr
    );

    // The wrong identity: a clear error, no value.
    let secret = sentinel(4);
    store_with_token(d, "dev", &secret);
    std::fs::copy(d.join("keys/prod.txt"), d.join("keys/dev.txt")).unwrap();
    let r = run(d, &["secrets", "get", "--env", "dev", "API_TOKEN"], None);
    assert_eq!(r.code, 3);
    assert!(r.stderr.contains("cannot decrypt"), "{}", r.stderr);
    assert_absent(&secret, &r, "wrong identity");
}

#[test]
fn interop_with_the_age_cli_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    config(d, "");
    std::fs::create_dir_all(d.join("keys")).unwrap();
    std::fs::create_dir_all(d.join("secrets")).unwrap();
    let public = age_keygen(&d.join("keys/dev.txt"));
    let secret = sentinel(5);

    // age CLI encrypts, sluice reads.
    let plain = d.join("plain.yaml");
    std::fs::write(&plain, format!("API_TOKEN: {secret}\nPORT: 5432\n")).unwrap();
    let st = Command::new("age")
        .args(["-r", &public, "-a", "-o"])
        .arg(d.join("secrets/dev.age"))
        .arg(&plain)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::remove_file(&plain).unwrap();
    let r = run(d, &["secrets", "get", "--env", "dev", "API_TOKEN"], None);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, secret.as_str()),
        "{}",
        r.stderr
    );

    // sluice writes, the age CLI reads.
    let newer = sentinel(6);
    assert_eq!(
        run(
            d,
            &["secrets", "set", "--env", "dev", "API_TOKEN"],
            Some(&newer)
        )
        .code,
        0
    );
    let out = run_ok(
        Command::new("age")
            .args(["-d", "-i"])
            .arg(d.join("keys/dev.txt"))
            .arg(d.join("secrets/dev.age")),
    );
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains(&format!("API_TOKEN: \"{newer}\"")), "{text}");
    assert!(text.contains("PORT: \"5432\""), "{text}");

    // SLUICE_AGE_KEY (key text) and SLUICE_AGE_KEY_FILE take precedence over the config.
    let key_text = std::fs::read_to_string(d.join("keys/dev.txt")).unwrap();
    std::fs::write(d.join("keys/dev.txt"), "garbage\n").unwrap();
    let mut cmd = assert_cmd::Command::new(crate::support::sluice_bin());
    let out = cmd
        .current_dir(d)
        .env("SLUICE_AGE_KEY", &key_text)
        .args(["secrets", "get", "--env", "dev", "API_TOKEN"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), newer);
    std::fs::write(d.join("elsewhere.txt"), &key_text).unwrap();
    let mut cmd = assert_cmd::Command::new(crate::support::sluice_bin());
    let out = cmd
        .current_dir(d)
        .env("SLUICE_AGE_KEY_FILE", d.join("elsewhere.txt"))
        .args(["secrets", "get", "--env", "dev", "API_TOKEN"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), newer);

    // The child never sees the key sluice decrypted with, unless asked; --pristine gives it
    // only the secrets and a minimal PATH/HOME/LANG set.
    let child = |extra: &[&str]| {
        let mut args = vec!["run", "--env", "dev"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[
            "--",
            "sh",
            "-c",
            "printf '%s|%s|%s|%s' \"${SLUICE_AGE_KEY:+key}\" \"${API_TOKEN:+token}\" \"${UNRELATED-gone}\" \"${PATH:+path}\"",
        ]);
        let out = assert_cmd::Command::new(crate::support::sluice_bin())
            .current_dir(d)
            .env("SLUICE_AGE_KEY", &key_text)
            .env("UNRELATED", "here")
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(child(&[]), "|token|here|path");
    assert_eq!(child(&["--keep-credentials"]), "key|token|here|path");
    assert_eq!(child(&["--pristine"]), "|token|gone|path");
}

#[test]
fn ssh_keys_as_identity_and_recipient() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("keys")).unwrap();
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(d.join("keys/id_ed25519"))
        .status()
        .expect("ssh-keygen");
    assert!(st.success());
    let public = std::fs::read_to_string(d.join("keys/id_ed25519.pub")).unwrap();
    let public = public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    write(
        d,
        "sluice.yaml",
        &format!(
            "version: 1\nenvironments:\n  dev: {{ secrets: {{ provider: age, file: dev.age, identity: keys/id_ed25519, recipients: ['{public}'] }} }}\nsecrets:\n  A: {{ dev: age://A }}\n"
        ),
    );
    let secret = sentinel(7);
    let r = run(d, &["secrets", "init", "--env", "dev"], None);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        run(d, &["secrets", "set", "--env", "dev", "A"], Some(&secret)).code,
        0
    );
    let r = run(d, &["secrets", "get", "--env", "dev", "A"], None);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, secret.as_str()),
        "{}",
        r.stderr
    );
}

#[test]
fn a_hostile_passphrase_file_is_refused_quickly() {
    // An age header asking for scrypt work factor 2^40: decrypting it honestly would need
    // terabytes. sluice refuses before doing the work.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    config(d, "");
    std::fs::create_dir_all(d.join("secrets")).unwrap();
    // 21 is just past sluice's cap (20): the age library alone would attempt it.
    for factor in [40, 21] {
        let header = format!(
            "age-encryption.org/v1\n-> scrypt {} {factor}\n{}\n--- {}\n",
            b64.encode([7u8; 16]),
            b64.encode([9u8; 32]),
            b64.encode([1u8; 32])
        );
        let mut file = header.into_bytes();
        file.extend_from_slice(&[0u8; 64]);
        std::fs::write(d.join("secrets/dev.age"), file).unwrap();
        let started = std::time::Instant::now();
        let mut cmd = assert_cmd::Command::new(crate::support::sluice_bin());
        let out = cmd
            .current_dir(d)
            .env("SLUICE_AGE_PASSPHRASE", "correct horse")
            .args(["secrets", "get", "--env", "dev", "API_TOKEN"])
            .timeout(std::time::Duration::from_secs(60))
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(3),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Excessive work parameter"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            started.elapsed().as_secs() < 30,
            "refused without doing the work"
        );
    }
}

#[test]
fn check_rejects_protected_store_sharing_and_bad_refs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    config(
        d,
        "  staging: { secrets: { provider: age, file: secrets/prod.age } }\n",
    );
    let r = run(d, &["check"], None);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("environment `staging` uses the store of protected environment `prod`"),
        "{}",
        r.stderr
    );
    // `secrets check` reports the breach as a finding (exit 1), naming the place; a command
    // that would use the file refuses it (exit 2).
    let r = run(d, &["secrets", "check"], None);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("problem: ")
            && r.stderr
                .contains("uses the store of protected environment `prod`"),
        "{}",
        r.stderr
    );
    let r = run(d, &["run", "--env", "staging", "--", "true"], None);
    assert_eq!(r.code, 2, "{}", r.stderr);
    // A malformed file stays a configuration error for `secrets check` too.
    config(
        d,
        "  staging: { secrets: { provider: age, file: secrets/prod.age }, colour: blue }\n",
    );
    let r = run(d, &["secrets", "check"], None);
    assert_eq!(r.code, 2, "{}", r.stderr);
}

#[test]
fn render_writes_0600_atomically_and_reports_template_problems() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    config(d, "");
    let secret = sentinel(8);
    store_with_token(d, "dev", &secret);
    write(
        d,
        "app.conf.tmpl",
        "token = {{ secret \"API_TOKEN\" }}\nlevel = {{ secret 'LOG_LEVEL' }}\n",
    );
    let r = run(
        d,
        &[
            "render",
            "--env",
            "dev",
            "app.conf.tmpl",
            "-o",
            "out/app.conf",
        ],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_absent(&secret, &r, "render -o");
    let text = std::fs::read_to_string(d.join("out/app.conf")).unwrap();
    assert_eq!(text, format!("token = {secret}\nlevel = debug\n"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(d.join("out/app.conf"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    // A broken template leaves the previous output untouched and names every problem.
    write(
        d,
        "bad.tmpl",
        "a {{ secret \"NOPE\" }}\nb {{ secret \"API_TOKEN\" }} {{ nonsense }}\n",
    );
    let r = run(
        d,
        &["render", "--env", "dev", "bad.tmpl", "-o", "out/app.conf"],
        None,
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("bad.tmpl:2:28: `{{ nonsense }}` is not understood"),
        "{}",
        r.stderr
    );
    let r = run(
        d,
        &["render", "--env", "dev", "bad.tmpl", "-o", "out/app.conf"],
        None,
    );
    assert_absent(&secret, &r, "render error");
    write(d, "bad2.tmpl", "a {{ secret \"NOPE\" }}\n");
    let r = run(
        d,
        &["render", "--env", "dev", "bad2.tmpl", "-o", "out/app.conf"],
        None,
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("bad2.tmpl:1:3: no variable `NOPE`"),
        "{}",
        r.stderr
    );
    assert_eq!(
        std::fs::read_to_string(d.join("out/app.conf")).unwrap(),
        text
    );
}

#[test]
fn diff_and_check_never_show_values() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    config(d, "");
    let shared = sentinel(9);
    for env in ["dev", "prod"] {
        assert_eq!(run(d, &["secrets", "init", "--env", env], None).code, 0);
    }
    let r = run(d, &["secrets", "check"], None);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("environment `prod`: variable `OPTIONAL_THING` has no source"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("environment `dev`, variable `API_TOKEN` (age://API_TOKEN): not found"),
        "{}",
        r.stderr
    );

    run(
        d,
        &["secrets", "set", "--env", "dev", "API_TOKEN"],
        Some(&shared),
    );
    run(
        d,
        &["secrets", "set", "--env", "prod", "API_TOKEN"],
        Some(&shared),
    );
    let r = run(d, &["secrets", "diff", "dev", "prod"], None);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_absent(&shared, &r, "diff");
    let line = |name: &str| {
        r.stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or("")
            .to_string()
    };
    assert!(line("API_TOKEN").ends_with(" same"), "{}", r.stdout);
    assert!(line("LOG_LEVEL").ends_with("values differ"), "{}", r.stdout);
    assert!(
        line("OPTIONAL_THING").ends_with("only in dev"),
        "{}",
        r.stdout
    );
    run(
        d,
        &["secrets", "set", "--env", "prod", "API_TOKEN"],
        Some(&sentinel(10)),
    );
    let r = run(d, &["secrets", "diff", "dev", "prod"], None);
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("API_TOKEN") && l.ends_with("values differ")),
        "{}",
        r.stdout
    );
}

#[test]
fn mask_output_replaces_values_forwards_signals_and_keeps_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    config(d, "");
    let secret = sentinel(11);
    store_with_token(d, "dev", &secret);

    // Printed whole, split across writes, and on stderr: masked everywhere.
    let (a, b) = secret.split_at(7);
    let script = format!(
        "echo \"token=$API_TOKEN\"; printf 'split=%s' '{a}'; sleep 0.2; printf '%s\\n' '{b}'; echo \"err $API_TOKEN\" >&2; echo \"level=$LOG_LEVEL\"; exit 5"
    );
    let r = run(
        d,
        &[
            "run",
            "--env",
            "dev",
            "--mask-output",
            "--",
            "sh",
            "-c",
            &script,
        ],
        None,
    );
    assert_eq!(r.code, 5, "the child's exit code: {}", r.stderr);
    assert_absent(&secret, &r, "mask-output");
    assert!(
        r.stdout.contains("token=*****\nsplit=*****\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("level=debug"),
        "literals (declared non-secret) stay readable: {}",
        r.stdout
    );
    assert!(r.stderr.contains("err *****"), "{}", r.stderr);

    // A signal to sluice reaches the child, and the exit code says so.
    let mut child = std::process::Command::new(crate::support::sluice_bin())
        .current_dir(d)
        .args([
            "run",
            "--env",
            "dev",
            "--mask-output",
            "--",
            "sh",
            "-c",
            "trap 'echo got-term; exit 42' TERM; echo ready; while true; do sleep 0.1; done",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 6];
    std::io::Read::read_exact(&mut out, &mut first).unwrap();
    assert_eq!(&first, b"ready\n");
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert_eq!(status.code(), Some(42), "{rest}");
    assert!(rest.contains("got-term"));
}

#[test]
fn mask_output_gives_the_child_a_tty_where_sluice_has_one() {
    // `script` runs sluice on a pseudo-terminal; the child reports whether its stdout is a TTY.
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("`script` (util-linux) is needed for this test: apt-get install bsdutils");
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    config(d, "");
    let secret = sentinel(12);
    store_with_token(d, "dev", &secret);
    let cmd = format!(
        "{} run --env dev --mask-output -- sh -c 'if [ -t 1 ]; then echo child-has-tty; fi; echo $API_TOKEN'",
        crate::support::sluice_bin().display()
    );
    let out = std::process::Command::new("script")
        .current_dir(d)
        .args(["-qec", &cmd, "/dev/null"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("child-has-tty"), "{text}");
    assert!(text.contains("*****") && !text.contains(&secret), "{text}");
}

#[test]
fn passphrase_stores_work_and_stay_passphrase_stores() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    config(d, "");
    let secret = sentinel(13);
    let pass = sentinel(14);
    let with_pass = |args: &[&str], stdin: Option<&str>, p: &str| {
        let mut cmd = assert_cmd::Command::new(crate::support::sluice_bin());
        cmd.current_dir(d)
            .env("SLUICE_AGE_PASSPHRASE", p)
            .args(args);
        if let Some(s) = stdin {
            cmd.write_stdin(s.to_string());
        }
        cmd.output().unwrap()
    };
    let out = with_pass(
        &["secrets", "init", "--env", "dev", "--passphrase"],
        None,
        &pass,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!d.join("keys/dev.txt").exists(), "no identity needed");
    let out = with_pass(
        &["secrets", "set", "--env", "dev", "API_TOKEN"],
        Some(&secret),
        &pass,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let header = std::fs::read_to_string(d.join("secrets/dev.age")).unwrap();
    assert!(header.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"));
    let out = with_pass(
        &["secrets", "get", "--env", "dev", "API_TOKEN"],
        None,
        &pass,
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), secret);
    let out = with_pass(
        &["secrets", "get", "--env", "dev", "API_TOKEN"],
        None,
        "wrong passphrase",
    );
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot decrypt") && !err.contains(&secret) && !err.contains(&pass),
        "{err}"
    );
}

#[test]
fn scan_env_finds_real_values_verbatim_and_never_prints_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    config(d, "");
    // A value no rule would flag: plain lowercase words.
    let value = "correct-horse-battery-staple";
    store_with_token(d, "dev", value);
    write(
        d,
        "src/notes.txt",
        &format!("remember: {value}\nlevel debug\n"),
    );
    let r = run(
        d,
        &["scan", "--env", "dev", "--format", "json", "src"],
        None,
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let f = &v["findings"][0];
    assert_eq!(f["rule"], "known-secret");
    assert_eq!(
        (f["line"].as_u64(), f["column"].as_u64()),
        (Some(1), Some(11))
    );
    assert!(f["description"].as_str().unwrap().contains("API_TOKEN"));
    assert_eq!(
        v["findings"].as_array().unwrap().len(),
        1,
        "literals (LOG_LEVEL=debug) are not hunted"
    );
    for args in [
        &["scan", "--env", "dev", "src"][..],
        &[
            "scan",
            "--env",
            "dev",
            "--show-secrets",
            "--format",
            "sarif",
            "src",
        ],
    ] {
        let r = run(d, args, None);
        assert_absent(value, &r, "scan --env");
    }
    let r = run(d, &["scan", "src"], None);
    assert_eq!(r.code, 0, "without --env the rules alone do not flag it");
}

#[test]
fn env_refs_read_the_process_environment_with_the_store_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "sluice.yaml",
        "version: 1
environments:
  ci: { secrets: { provider: env, prefix: CI_ } }
  dev: { secrets: { provider: env } }
secrets:
  DATABASE_URL: { ci: env://DATABASE_URL, dev: env://LOCAL_DB }
  TOKEN: { ci: { ref: env://TOKEN, optional: true } }
",
    );
    let value = sentinel(15);
    let r = crate::support::sluice_env(
        d,
        &[("CI_DATABASE_URL", value.as_str())],
        &["CI_TOKEN"],
        &["export", "--env", "ci"],
        None,
    );
    assert_eq!(
        (r.code, r.stdout.clone()),
        (0, format!("DATABASE_URL={value}\n")),
        "{}",
        r.stderr
    );
    let r = crate::support::sluice_env(
        d,
        &[],
        &["LOCAL_DB"],
        &["run", "--env", "dev", "--", "true"],
        None,
    );
    assert_eq!(r.code, 3);
    assert!(
        r.stderr.contains("environment `dev`, variable `DATABASE_URL` (env://LOCAL_DB): LOCAL_DB is not set in the process environment"),
        "{}",
        r.stderr
    );
}

/// Variable names become environment variables and lines of `export --format shell` (which is
/// eval'd), so a name that is not a variable name is refused before anything runs; a Secret's
/// name cannot add lines to the manifest; a NUL byte cannot pass as an environment value.
#[test]
fn hostile_names_and_values_cannot_inject_into_exports() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "sluice.yaml",
        "version: 1
environments:
  dev: { secrets: { provider: env, prefix: DEV_ } }
secrets:
  '$(touch pwned)': { dev: { value: x } }
  GOOD: { dev: { value: ok } }
",
    );
    let check = sluice_with(d, &["check"], None);
    assert_eq!(check.code, 2, "{}", check.stderr);
    assert!(
        check.stderr.contains("sluice.yaml:5:3")
            && check
                .stderr
                .contains("not a usable environment variable name"),
        "{}",
        check.stderr
    );
    let export = sluice_with(d, &["export", "--env", "dev", "--format", "shell"], None);
    assert_eq!(export.code, 2, "{}", export.stderr);
    assert!(export.stdout.is_empty(), "{}", export.stdout);
    assert!(!d.join("pwned").exists());

    write(
        d,
        "sluice.yaml",
        "version: 1
environments:
  dev: { secrets: { provider: env, prefix: DEV_ } }
secrets:
  GOOD: { dev: { value: ok } }
  NUL: { dev: { value: \"a\\0b\" } }
",
    );
    let k8s = sluice_with(
        d,
        &[
            "export",
            "--env",
            "dev",
            "--only",
            "GOOD",
            "--format",
            "k8s-secret",
            "--name",
            "app\n  namespace: kube-system",
        ],
        None,
    );
    assert_eq!(k8s.code, 2, "{}", k8s.stderr);
    assert!(
        k8s.stderr.contains("not a Kubernetes object name"),
        "{}",
        k8s.stderr
    );
    assert!(!k8s.stdout.contains("kube-system"), "{}", k8s.stdout);
    for format in ["dotenv", "python-dotenv", "shell"] {
        let r = sluice_with(d, &["export", "--env", "dev", "--format", format], None);
        assert_eq!(r.code, 2, "{format}: {}", r.stderr);
        assert!(
            r.stderr.contains("`NUL`") && r.stderr.contains("NUL byte"),
            "{}",
            r.stderr
        );
    }
    let json = sluice_with(d, &["export", "--env", "dev", "--format", "json"], None);
    assert_eq!(json.code, 0, "{}", json.stderr);
    let parsed: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(parsed["NUL"], "a\u{0}b");
}

/// Values that break naive quoting: quotes of both kinds, `$`, `${HOME}`, backticks, `$(…)`,
/// backslashes (a final one too), line breaks, CR, tab, an escape byte, `#`, spaces at both
/// ends, non-ASCII, the empty string.
fn hostile_values() -> Vec<String> {
    [
        "",
        "'",
        "\"",
        "it's \"quoted\"",
        "$",
        "$$",
        "$HOME",
        "${HOME}",
        "$${HOME}",
        "${HOME",
        "${:-$}",
        "${X:-default}",
        "`id`",
        "$(id)",
        "\\",
        "a\\",
        "\\n is not a newline",
        "\\\"",
        "line one\nline two\n",
        "crlf\r\nend",
        "lone\rcr",
        "ends in cr\r",
        "tab\there",
        "esc \u{1b}[31mred\u{1b}[0m",
        "#not a comment",
        " # spaced ",
        "  both ends  ",
        "= starts with equals",
        "unicode \u{e9}\u{2028}\u{85} \u{1f511}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// What docker's `--env-file` reader (docker/cli pkg/kvfile) makes of a file: lines split on
/// `\n` with one final `\r` dropped, leading whitespace trimmed, `#` lines and blank lines
/// skipped, the value everything after the first `=`, verbatim.
fn docker_env_file(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.split_terminator('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line.split_once('=').expect("NAME=value");
        out.push((k.to_string(), v.to_string()));
    }
    out
}

/// Every export format gives back every accepted value exactly, read by the consumer it is
/// for: `eval` in sh, python-dotenv's `dotenv_values` (the real library), docker's env-file
/// rules, JSON, and the Secret's base64. docker's format refuses what it cannot carry, naming
/// the variable and never the value.
#[test]
fn every_export_format_round_trips_hostile_values() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let values = hostile_values();
    let mut yaml = String::from(
        "version: 1\nenvironments:\n  dev: { secrets: { provider: env, prefix: DEV_ } }\nsecrets:\n",
    );
    // Through the process environment: sluice.yaml would interpolate `${…}` in a literal.
    for i in 0..values.len() {
        yaml.push_str(&format!("  V{i}: {{ dev: 'env://V{i}' }}\n"));
    }
    write(d, "sluice.yaml", &yaml);
    let vars: Vec<(String, String)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("DEV_V{i}"), v.clone()))
        .collect();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let expected: Vec<(String, String)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("V{i}"), v.clone()))
        .collect();
    let export = |format: &str, only: Option<&str>| {
        let mut args = vec!["export", "--env", "dev", "--format", format];
        if let Some(o) = only {
            args.extend(["--only", o]);
        }
        crate::support::sluice_env(d, &vars, &[], &args, None)
    };

    let json = export("json", None);
    assert_eq!(json.code, 0, "{}", json.stderr);
    let parsed: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&json.stdout).unwrap();
    for (k, v) in &expected {
        assert_eq!(parsed[k], v.as_str(), "json {k}");
    }

    let shell = export("shell", None);
    assert_eq!(shell.code, 0, "{}", shell.stderr);
    std::fs::write(d.join("out.sh"), &shell.stdout).unwrap();
    let names: Vec<String> = expected.iter().map(|(k, _)| format!("\"${k}\"")).collect();
    let out = run_ok(Command::new("sh").current_dir(d).arg("-c").arg(format!(
        "eval \"$(cat out.sh)\"; printf '%s\\0' {}",
        names.join(" ")
    )));
    let got: Vec<&[u8]> = out.split(|b| *b == 0).collect();
    for (i, (k, v)) in expected.iter().enumerate() {
        assert_eq!(got[i], v.as_bytes(), "shell {k}");
    }

    let k8s = export("k8s-secret", None);
    assert_eq!(k8s.code, 0, "{}", k8s.stderr);
    use base64::Engine as _;
    for (k, v) in &expected {
        let line = k8s
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("  {k}: ")))
            .unwrap_or_else(|| panic!("{k} missing: {}", k8s.stdout));
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(line)
            .unwrap();
        assert_eq!(decoded, v.as_bytes(), "k8s {k}");
    }

    let py = export("python-dotenv", None);
    assert_eq!(py.code, 0, "{}", py.stderr);
    std::fs::write(d.join("py.env"), &py.stdout).unwrap();
    let python = crate::support::venv_bin("python", "python-dotenv");
    let out = run_ok(Command::new(python).current_dir(d).args([
        "-c",
        "import json, dotenv; print(json.dumps(dotenv.dotenv_values('py.env')))",
    ]));
    let parsed: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&out).unwrap();
    for (k, v) in &expected {
        assert_eq!(parsed[k], v.as_str(), "python-dotenv {k}: {}", py.stdout);
    }

    // docker: everything without a line break round-trips; a line break (or a final CR) is
    // refused for that variable alone.
    for (k, v) in &expected {
        let r = export("dotenv", Some(k));
        if v.contains('\n') || v.ends_with('\r') {
            assert_eq!(r.code, 2, "docker {k}: {}", r.stdout);
            assert!(
                r.stderr.contains(&format!("`{k}`")) && r.stderr.contains("python-dotenv"),
                "{}",
                r.stderr
            );
            assert!(r.stdout.is_empty());
        } else {
            assert_eq!(r.code, 0, "{}", r.stderr);
            assert_eq!(
                docker_env_file(&r.stdout),
                vec![(k.clone(), v.clone())],
                "docker {k}"
            );
        }
    }
}

/// Through a terminal (`script` gives sluice a pty, and the child gets one): a PEM-like
/// multi-line secret printed whole (the pty turns `\n` into `\r\n`), one of its lines printed
/// alone, and a secret cut off at the very end of the output are all masked; a 3-character
/// value is named on stderr as one that cannot be masked.
#[test]
fn mask_output_masks_multi_line_and_cut_off_secrets_on_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "sluice.yaml",
        "version: 1
environments:
  dev: { secrets: { provider: env, prefix: DEV_ } }
secrets:
  PEM: { dev: env://PEM }
  CUT: { dev: env://CUT }
  PIN: { dev: env://PIN }
",
    );
    let mut rng = Rng::new(77);
    let lines: Vec<String> = (0..4)
        .map(|_| rng.string(crate::support::ALNUM, 48))
        .collect();
    let pem = format!(
        "-----BEGIN TEST KEY-----\n{}\n-----END TEST KEY-----",
        lines.join("\n")
    );
    let cut = sentinel(78);
    let script = format!(
        "{} run --env dev --mask-output -- sh -c 'printf \"%s\\n\" \"$PEM\"; echo \"one line: {}\"; printf \"%s\" \"${{CUT%?}}\"'",
        crate::support::sluice_bin().display(),
        lines[2]
    );
    let out = Command::new("script")
        .current_dir(d)
        .env("DEV_PEM", &pem)
        .env("DEV_CUT", &cut)
        .env("DEV_PIN", "123")
        .env("NO_COLOR", "1")
        .args(["-qec", &script, "/dev/null"])
        .output()
        .expect("script (bsdutils)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\r\n"), "a terminal: {text:?}");
    for l in &lines {
        assert!(!text.contains(l.as_str()), "a PEM line leaked: {text:?}");
    }
    assert!(
        !text.contains(&cut[..cut.len() - 1]),
        "cut-off secret leaked: {text:?}"
    );
    assert!(text.contains("one line: *****"), "{text:?}");
    assert!(text.trim_end().ends_with("*****"), "{text:?}");
    assert!(
        text.contains("cannot mask PIN (under 4 characters"),
        "{text:?}"
    );
}

/// `secrets check` reports every environment's problems, not just the first store's: an
/// unreachable Vault and an unreachable AWS endpoint are one problem each, the age environment
/// is still checked, `--env` limits the check (and needs only that environment's
/// credentials), and `{ none: true }` marks a variable deliberately unset in an environment.
#[test]
fn secrets_check_reports_every_environment_and_accepts_deliberate_absence() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = |sentry_dev: &str| {
        format!(
            "version: 1
environments:
  dev: {{ secrets: {{ provider: age, file: secrets/dev.age, identity: keys/dev.txt }} }}
  staging: {{ secrets: {{ provider: vault, address: 'http://127.0.0.1:1', timeout_seconds: 1, auth: {{ method: token, token_env: NO_SUCH_TOKEN_VAR }} }} }}
  prod: {{ protected: true, secrets: {{ provider: aws, region: eu-central-1, endpoint: 'http://127.0.0.1:1', timeout_seconds: 1 }} }}
secrets:
  API_TOKEN: {{ dev: age://API_TOKEN, staging: 'vault://api#token', prod: aws://api }}
  MISSING: {{ dev: age://MISSING, staging: {{ none: true }}, prod: {{ none: true }} }}
  SENTRY_DSN: {{ {sentry_dev}prod: {{ ref: aws://sentry, optional: true }} }}
"
        )
    };
    write(d, "sluice.yaml", &config(""));
    store_with_token(d, "dev", &sentinel(90));
    let check = |args: &[&str]| {
        crate::support::sluice_env(
            d,
            &[("AWS_ACCESS_KEY_ID", "x"), ("AWS_SECRET_ACCESS_KEY", "y")],
            &["VAULT_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL"],
            args,
            None,
        )
    };
    let r = check(&["secrets", "check"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let problems: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("problem:"))
        .collect();
    let has = |env: &str, what: &str| {
        problems
            .iter()
            .any(|p| p.contains(&format!("`{env}`")) && p.contains(what))
    };
    assert!(has("dev", "MISSING"), "{}", r.stderr);
    assert!(has("dev", "SENTRY_DSN` has no source"), "{}", r.stderr);
    assert!(has("staging", "SENTRY_DSN` has no source"), "{}", r.stderr);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("staging") && p.contains("NO_SUCH_TOKEN_VAR")),
        "{}",
        r.stderr
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("prod") && p.contains("API_TOKEN")),
        "{}",
        r.stderr
    );
    assert!(
        !problems
            .iter()
            .any(|p| p.contains("MISSING` has no source")),
        "{{ none: true }} is deliberate: {}",
        r.stderr
    );

    // Only dev, with the marker for SENTRY_DSN and the missing key set: it passes.
    write(
        d,
        "sluice.yaml",
        &config("dev: { none: true }, staging: { none: true }, "),
    );
    assert_eq!(
        run(
            d,
            &["secrets", "set", "--env", "dev", "MISSING"],
            Some("x-value")
        )
        .code,
        0
    );
    let r = check(&["secrets", "check", "--env", "dev"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("resolves in environment dev"),
        "{}",
        r.stdout
    );
    let r = check(&["secrets", "check", "--env", "nope"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("declared: dev, prod, staging"),
        "{}",
        r.stderr
    );
    // The marked variable is left out of run.
    let r = run(
        d,
        &[
            "run",
            "--env",
            "dev",
            "--",
            "sh",
            "-c",
            "echo ${SENTRY_DSN-unset}",
        ],
        None,
    );
    assert_eq!((r.code, r.stdout.trim()), (0, "unset"), "{}", r.stderr);
    // `none: false` means nothing: refused.
    write(d, "sluice.yaml", &config("dev: { none: false }, "));
    let r = check(&["check"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("write `none: true`"), "{}", r.stderr);
}

/// `default:` gives a variable's source for every environment that names none: resolved in
/// each environment's own store, shown as the default by `list` and `diff`, counted by
/// `secrets check`, and checked per environment (the provider must fit, a protected
/// environment's secret stays out of reach).
#[test]
fn defaults_are_shared_across_environments_and_checked_in_each() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = |extra: &str| {
        format!(
            "version: 1
environments:
  dev: {{ secrets: {{ provider: env, prefix: DEV_ }} }}
  staging: {{ secrets: {{ provider: env, prefix: STG_ }} }}
  prod: {{ protected: true, secrets: {{ provider: env, prefix: PRD_ }} }}
secrets:
  LOG_LEVEL: {{ default: {{ value: info }}, prod: {{ value: warn }} }}
  DB_URL: {{ default: env://DB_URL }}
{extra}"
        )
    };
    write(d, "sluice.yaml", &config(""));
    let vars = [
        ("DEV_DB_URL", "dev-db"),
        ("STG_DB_URL", "stg-db"),
        ("PRD_DB_URL", "prd-db"),
    ];
    let sl = |args: &[&str]| crate::support::sluice_env(d, &vars, &[], args, None);
    let json = |env: &str| {
        let r = sl(&["export", "--env", env, "--format", "json"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap()
    };
    assert_eq!(
        json("dev"),
        serde_json::json!({ "DB_URL": "dev-db", "LOG_LEVEL": "info" })
    );
    assert_eq!(
        json("staging"),
        serde_json::json!({ "DB_URL": "stg-db", "LOG_LEVEL": "info" })
    );
    assert_eq!(
        json("prod"),
        serde_json::json!({ "DB_URL": "prd-db", "LOG_LEVEL": "warn" })
    );
    let r = sl(&["secrets", "list", "--env", "dev"]);
    assert!(
        r.stdout.contains("literal (default)") && r.stdout.contains("env://DB_URL (default)"),
        "{}",
        r.stdout
    );
    let r = sl(&["secrets", "check"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = sl(&["secrets", "diff", "staging", "prod"]);
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("LOG_LEVEL"))
        .unwrap_or("");
    assert!(
        line.contains("literal (default)") && line.contains("values differ"),
        "{}",
        r.stdout
    );

    // A default that cannot resolve in one environment names it.
    write(d, "sluice.yaml", &config("  KEY: { default: age://KEY }\n"));
    let r = sl(&["check"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("`secrets.KEY.default` (used by `staging`): age:// refs resolve in environment `staging`"), "{}", r.stderr);
    // An environment cannot be called `default`.
    write(
        d,
        "sluice.yaml",
        &config("").replace(
            "  dev: {",
            "  default: { secrets: { provider: env } }\n  dev: {",
        ),
    );
    let r = sl(&["check"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("`environments.default`"), "{}", r.stderr);
}

/// `as: file` hands the command a path to a 0600 file in a private directory of
/// memory-backed storage (`$XDG_RUNTIME_DIR` here), holding the value exactly (a multi-line
/// key); the file is gone when the command ends, also when sluice is told to stop, and the
/// command's exit code is its own.
#[test]
fn values_as_files_live_in_memory_for_the_command_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let runtime = d.join("runtime");
    std::fs::create_dir(&runtime).unwrap();
    write(
        d,
        "sluice.yaml",
        "version: 1
environments:
  dev: { secrets: { provider: env, prefix: DEV_ } }
secrets:
  TLS_KEY: { dev: { ref: env://TLS_KEY, as: file } }
  TOKEN: { dev: env://TOKEN }
",
    );
    let key = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        sentinel(31)
    );
    let vars = [
        ("DEV_TLS_KEY", key.as_str()),
        ("DEV_TOKEN", "tok-value-1"),
        ("XDG_RUNTIME_DIR", runtime.to_str().unwrap()),
    ];
    let r = crate::support::sluice_env(
        d,
        &vars,
        &[],
        &[
            "run",
            "--env",
            "dev",
            "--",
            "sh",
            "-c",
            "echo \"$TLS_KEY\"; stat -c %a \"$TLS_KEY\"; stat -c %a \"$(dirname \"$TLS_KEY\")\"; cat \"$TLS_KEY\" > copy; echo \"$TOKEN\"; exit 7",
        ],
        None,
    );
    assert_eq!(r.code, 7, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(
        lines[0].starts_with(runtime.to_str().unwrap()),
        "{}",
        r.stdout
    );
    assert!(lines[0].ends_with("/TLS_KEY"), "{}", r.stdout);
    assert_eq!(&lines[1..], ["600", "700", "tok-value-1"], "{}", r.stdout);
    assert_eq!(std::fs::read_to_string(d.join("copy")).unwrap(), key);
    assert!(!r.stdout.contains(&key[..20]) && !r.stderr.contains(&key[28..40]));
    assert_eq!(
        std::fs::read_dir(&runtime).unwrap().count(),
        0,
        "the file and its directory are removed"
    );

    // Stopped from outside: the signal reaches the command, and the file still goes.
    let mut child = std::process::Command::new(crate::support::sluice_bin())
        .current_dir(d)
        .envs(vars)
        .args([
            "run",
            "--env",
            "dev",
            "--",
            "sh",
            "-c",
            "trap 'exit 42' TERM; echo ready; while true; do sleep 0.1; done",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 6];
    std::io::Read::read_exact(&mut out, &mut first).unwrap();
    assert_eq!(std::fs::read_dir(&runtime).unwrap().count(), 1);
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(42));
    assert_eq!(std::fs::read_dir(&runtime).unwrap().count(), 0);

    // No memory-backed storage: refused, not written to disk.
    let r = crate::support::sluice_env(
        d,
        &[
            ("DEV_TLS_KEY", "k"),
            ("DEV_TOKEN", "t"),
            ("XDG_RUNTIME_DIR", "/nonexistent"),
        ],
        &[],
        &["run", "--env", "dev", "--", "true"],
        None,
    );
    if !std::path::Path::new("/dev/shm").is_dir() {
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(r.stderr.contains("memory-backed"), "{}", r.stderr);
    } else {
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
}

/// `audit:` records every resolution as a JSON line (who, where, which command, environment,
/// variables, references and outcomes, when), never a value; the file is 0600; a trail that
/// cannot be written stops the command before any value is handed out.
#[test]
fn the_audit_trail_records_resolutions_without_values() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = |audit: &str| {
        format!(
            "version: 1
audit: {audit}
environments:
  dev: {{ secrets: {{ provider: env, prefix: DEV_ }} }}
secrets:
  TOKEN: {{ dev: env://TOKEN }}
  GONE: {{ dev: {{ ref: env://GONE, optional: true }} }}
  LEVEL: {{ dev: {{ value: debug }} }}
"
        )
    };
    write(d, "sluice.yaml", &config("logs/audit.jsonl"));
    std::fs::create_dir(d.join("logs")).unwrap();
    let value = sentinel(55);
    let sl = |args: &[&str], extra: &[(&str, &str)]| {
        let mut vars = vec![("DEV_TOKEN", value.as_str()), ("USER", "deployer")];
        vars.extend_from_slice(extra);
        crate::support::sluice_env(d, &vars, &["DEV_GONE"], args, None)
    };
    assert_eq!(
        sl(&["secrets", "get", "--env", "dev", "TOKEN"], &[]).code,
        0
    );
    assert_eq!(
        sl(
            &["run", "--env", "dev", "--", "true"],
            &[
                ("GITHUB_RUN_ID", "4242"),
                ("GITHUB_REPOSITORY", "acme/app"),
                ("GITHUB_JOB", "deploy")
            ]
        )
        .code,
        0
    );
    let log = std::fs::read_to_string(d.join("logs/audit.jsonl")).unwrap();
    assert!(!log.contains(&value), "{log}");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert_eq!(lines[0]["command"], "secrets get");
    assert_eq!(lines[0]["environment"], "dev");
    assert_eq!(lines[0]["user"], "deployer");
    assert_eq!(
        lines[0]["variables"],
        serde_json::json!([{ "name": "TOKEN", "source": "env://TOKEN", "result": "resolved" }])
    );
    assert_eq!(lines[1]["command"], "run");
    assert_eq!(lines[1]["ci_job"], "github:acme/app/4242#deploy");
    let vars = lines[1]["variables"].as_array().unwrap();
    let result = |n: &str| {
        vars.iter()
            .find(|v| v["name"] == n)
            .map(|v| v["result"].as_str().unwrap().to_string())
    };
    assert_eq!(result("GONE").as_deref(), Some("absent"));
    assert_eq!(result("LEVEL").as_deref(), Some("resolved"));
    assert!(lines[1]["time"].as_str().unwrap().ends_with('Z'));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.join("logs/audit.jsonl"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // To stderr: the line, and still no value.
    write(d, "sluice.yaml", &config("stderr"));
    let r = sl(&["export", "--env", "dev", "--format", "json"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("\"command\":\"export\"") && !r.stderr.contains(&value),
        "{}",
        r.stderr
    );

    // A trail that cannot be written: nothing handed out.
    write(d, "sluice.yaml", &config("no/such/dir/audit.jsonl"));
    let r = sl(&["secrets", "get", "--env", "dev", "TOKEN"], &[]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stdout.is_empty());
    assert!(r.stderr.contains("audit trail"), "{}", r.stderr);
}
