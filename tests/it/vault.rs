//! The Vault provider against a real OpenBao server: KV v2 (latest and pinned versions), KV v1,
//! token and AppRole logins, a policy-restricted token denied a prod path, concurrency over many
//! refs, and values that never reach output.

use crate::support::vault::Bao;
use crate::support::{Rng, write};

fn sentinel(rng: &mut Rng) -> String {
    format!("vlt-{}", rng.string(crate::support::ALNUM, 20))
}

fn sluice(dir: &std::path::Path, envs: &[(&str, &str)], args: &[&str]) -> crate::support::Run {
    crate::support::sluice_env(dir, envs, &["VAULT_TOKEN"], args, None)
}

#[test]
fn kv2_kv1_versions_policies_and_approle() {
    let bao = Bao::start();
    let mut rng = Rng::new(41);
    let (v1, v2, legacy, prod) = (
        sentinel(&mut rng),
        sentinel(&mut rng),
        sentinel(&mut rng),
        sentinel(&mut rng),
    );
    bao.cli(&[
        "kv",
        "put",
        "secret/staging/db",
        &format!("password={v1}"),
        "user=app",
    ]);
    bao.cli(&[
        "kv",
        "put",
        "secret/staging/db",
        &format!("password={v2}"),
        "user=app",
    ]);
    bao.cli(&["kv", "put", "secret/prod/db", &format!("password={prod}")]);
    for i in 0..20 {
        bao.cli(&[
            "kv",
            "put",
            &format!("secret/staging/svc{i}"),
            &format!("key=value-{i}"),
        ]);
    }
    bao.cli(&["secrets", "enable", "-path=kv1", "-version=1", "kv"]);
    bao.cli(&[
        "kv",
        "put",
        "kv1/staging/legacy",
        &format!("token={legacy}"),
    ]);
    bao.cli_stdin(
        &["policy", "write", "staging-only", "-"],
        "path \"secret/data/staging/*\" { capabilities = [\"read\"] }\npath \"kv1/staging/*\" { capabilities = [\"read\"] }\n",
    );
    let staging_token = bao.cli(&["token", "create", "-policy=staging-only", "-field=token"]);

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut secrets = String::from(
        "  DB_PASSWORD: { staging: 'vault://db#password', prod: 'vault://db#password' }\n  DB_PASSWORD_V1: { staging: 'vault://db#password?version=1' }\n  DB_USER: { staging: 'vault://db#user' }\n",
    );
    for i in 0..20 {
        secrets.push_str(&format!("  SVC{i}: {{ staging: 'vault://svc{i}#key' }}\n"));
    }
    write(
        d,
        "sluice.yaml",
        &format!(
            "version: 1
environments:
  staging: {{ secrets: {{ provider: vault, address: '${{VAULT_ADDR}}', prefix: staging/, auth: {{ method: token, token_env: STAGING_VAULT_TOKEN }} }} }}
  legacy: {{ secrets: {{ provider: vault, address: '${{VAULT_ADDR}}', mount: kv1, kv_version: 1, prefix: staging/, auth: {{ method: token, token_env: STAGING_VAULT_TOKEN }} }} }}
  prod: {{ protected: true, secrets: {{ provider: vault, address: '${{VAULT_ADDR}}', prefix: prod/, auth: {{ method: token, token_env: PROD_VAULT_TOKEN }} }} }}
secrets:
{secrets}  LEGACY_TOKEN: {{ legacy: 'vault://legacy#token' }}
"
        ),
    );
    let env = [
        ("VAULT_ADDR", bao.addr.as_str()),
        ("STAGING_VAULT_TOKEN", staging_token.as_str()),
    ];

    let r = sluice(d, &env, &["export", "--env", "staging", "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["DB_PASSWORD"], v2.as_str(), "latest version");
    assert_eq!(v["DB_PASSWORD_V1"], v1.as_str(), "?version=1");
    assert_eq!(v["DB_USER"], "app");
    assert_eq!(v["SVC19"], "value-19");

    let r = sluice(
        d,
        &env,
        &["secrets", "get", "--env", "legacy", "LEGACY_TOKEN"],
    );
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, legacy.as_str()),
        "{}",
        r.stderr
    );

    // The staging token is denied prod: a clear error, before anything runs, no value.
    let env_prod = [
        ("VAULT_ADDR", bao.addr.as_str()),
        ("PROD_VAULT_TOKEN", staging_token.as_str()),
    ];
    let r = sluice(
        d,
        &env_prod,
        &["run", "--env", "prod", "--", "sh", "-c", "touch started"],
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("environment `prod`, variable `DB_PASSWORD` (vault://db#password): permission denied (403)"), "{}", r.stderr);
    assert!(r.stderr.contains("path `prod/db`"), "{}", r.stderr);
    assert!(!d.join("started").exists());
    assert!(!r.stderr.contains(&prod) && !r.stderr.contains(&staging_token));

    // No token at all.
    let r = sluice(
        d,
        &[("VAULT_ADDR", bao.addr.as_str())],
        &["export", "--env", "staging"],
    );
    assert_eq!(r.code, 3);
    assert!(
        r.stderr.contains("no token: set STAGING_VAULT_TOKEN"),
        "{}",
        r.stderr
    );

    // A missing key and a missing path name the reference.
    write(
        d,
        "extra.yaml",
        &std::fs::read_to_string(d.join("sluice.yaml"))
            .unwrap()
            .replace("vault://db#user", "vault://db#nope"),
    );
    let r = sluice(
        d,
        &env,
        &["--config", "extra.yaml", "export", "--env", "staging"],
    );
    assert_eq!(r.code, 3);
    assert!(
        r.stderr
            .contains("variable `DB_USER` (vault://db#nope): the secret has no key `nope`"),
        "{}",
        r.stderr
    );

    // A namespace: the same path name holds another value there.
    bao.cli(&["namespace", "create", "team-a"]);
    bao.cli(&[
        "secrets",
        "enable",
        "-namespace=team-a",
        "-path=secret",
        "kv-v2",
    ]);
    let in_ns = sentinel(&mut rng);
    bao.cli(&[
        "kv",
        "put",
        "-namespace=team-a",
        "secret/staging/db",
        &format!("password={in_ns}"),
    ]);
    write(
        d,
        "ns.yaml",
        "version: 1
environments:
  staging: { secrets: { provider: vault, address: '${VAULT_ADDR}', namespace: team-a, prefix: staging/ } }
secrets:
  DB_PASSWORD: { staging: 'vault://db#password' }
",
    );
    let r = sluice(
        d,
        &[
            ("VAULT_ADDR", bao.addr.as_str()),
            ("VAULT_TOKEN", bao.root.as_str()),
        ],
        &[
            "--config",
            "ns.yaml",
            "secrets",
            "get",
            "--env",
            "staging",
            "DB_PASSWORD",
        ],
    );
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, in_ns.as_str()),
        "{}",
        r.stderr
    );

    // AppRole login.
    bao.cli(&["auth", "enable", "approle"]);
    bao.cli(&[
        "write",
        "auth/approle/role/app",
        "token_policies=staging-only",
    ]);
    let role_id = bao.cli(&["read", "-field=role_id", "auth/approle/role/app/role-id"]);
    let secret_id = bao.cli(&[
        "write",
        "-f",
        "-field=secret_id",
        "auth/approle/role/app/secret-id",
    ]);
    write(
        d,
        "approle.yaml",
        &format!(
            "version: 1
environments:
  staging: {{ secrets: {{ provider: vault, address: '${{VAULT_ADDR}}', prefix: staging/, auth: {{ method: approle, role_id: {role_id} }} }} }}
secrets:
  DB_PASSWORD: {{ staging: 'vault://db#password' }}
"
        ),
    );
    let r = sluice(
        d,
        &[
            ("VAULT_ADDR", bao.addr.as_str()),
            ("VAULT_SECRET_ID", secret_id.as_str()),
        ],
        &[
            "--config",
            "approle.yaml",
            "secrets",
            "get",
            "--env",
            "staging",
            "DB_PASSWORD",
        ],
    );
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, v2.as_str()),
        "{}",
        r.stderr
    );
    let r = sluice(
        d,
        &[
            ("VAULT_ADDR", bao.addr.as_str()),
            ("VAULT_SECRET_ID", "wrong"),
        ],
        &[
            "--config",
            "approle.yaml",
            "secrets",
            "get",
            "--env",
            "staging",
            "DB_PASSWORD",
        ],
    );
    assert_eq!(r.code, 3);
    assert!(r.stderr.contains("AppRole login failed"), "{}", r.stderr);

    // A single-use secret id: `run --mask-output` logs in once for the child's values and the
    // values it masks alike (a second login would be refused).
    bao.cli(&[
        "write",
        "auth/approle/role/once",
        "token_policies=staging-only",
        "secret_id_num_uses=1",
    ]);
    let once_role = bao.cli(&["read", "-field=role_id", "auth/approle/role/once/role-id"]);
    let once_secret = bao.cli(&[
        "write",
        "-f",
        "-field=secret_id",
        "auth/approle/role/once/secret-id",
    ]);
    write(
        d,
        "once.yaml",
        &format!(
            "version: 1
environments:
  staging: {{ secrets: {{ provider: vault, address: '${{VAULT_ADDR}}', prefix: staging/, auth: {{ method: approle, role_id: {once_role} }} }} }}
secrets:
  DB_PASSWORD: {{ staging: 'vault://db#password' }}
  GREETING: {{ staging: {{ value: hello-world }} }}
"
        ),
    );
    let run = |secret: &str| {
        sluice(
            d,
            &[
                ("VAULT_ADDR", bao.addr.as_str()),
                ("VAULT_SECRET_ID", secret),
            ],
            &[
                "--config",
                "once.yaml",
                "run",
                "--env",
                "staging",
                "--mask-output",
                "--",
                "sh",
                "-c",
                "echo \"$GREETING $DB_PASSWORD\"",
            ],
        )
    };
    let r = run(once_secret.as_str());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.trim(), "hello-world *****", "{}", r.stderr);
    assert!(!r.stdout.contains(&v2) && !r.stderr.contains(&v2));
    // The secret id is spent: another command cannot log in with it.
    let again = run(once_secret.as_str());
    assert_eq!(again.code, 3, "{}", again.stderr);
    assert!(
        again.stderr.contains("AppRole login failed"),
        "{}",
        again.stderr
    );
}

/// An RSA key pair in `dir`: `{stem}.key` (private, PEM) and `{stem}.pub`, made by openssl.
fn rsa_key_pair(dir: &std::path::Path, stem: &str) {
    let key = format!("{stem}.key");
    let public = format!("{stem}.pub");
    for args in [
        vec![
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            &key,
        ],
        vec!["pkey", "-in", &key, "-pubout", "-out", &public],
    ] {
        crate::support::run_ok(
            std::process::Command::new("openssl")
                .current_dir(dir)
                .args(&args),
        );
    }
}

/// A service-account token as Kubernetes issues it: RS256 over the claims, signed with `key`.
pub(crate) fn service_account_token(dir: &std::path::Path, key: &str, account: &str) -> String {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = b64(br#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = b64(serde_json::json!({
        "iss": "kubernetes/serviceaccount",
        "sub": format!("system:serviceaccount:apps:{account}"),
        "aud": ["vault"],
        "iat": now,
        "nbf": now - 5,
        "exp": now + 600,
        "kubernetes.io/serviceaccount/namespace": "apps",
        "kubernetes.io/serviceaccount/service-account.name": account,
    })
    .to_string()
    .as_bytes());
    let signing_input = format!("{header}.{claims}");
    write(dir, "signing-input", &signing_input);
    let signature = crate::support::run_ok(
        std::process::Command::new("openssl")
            .current_dir(dir)
            .args(["dgst", "-sha256", "-sign", key, "signing-input"]),
    );
    format!("{signing_input}.{}", b64(&signature))
}

#[test]
fn kubernetes_service_account_login() {
    let (bao, value) = bao_with_staging_secret(43);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    rsa_key_pair(d, "sa");
    // The server validates service-account tokens against the cluster's signing key (what its
    // `kubernetes` mount does through TokenReview, here without a cluster): the same login
    // request, at the default `kubernetes` mount.
    bao.cli(&["auth", "enable", "-path=kubernetes", "jwt"]);
    let public = d.join("sa.pub").display().to_string();
    bao.cli(&[
        "write",
        "auth/kubernetes/config",
        &format!("jwt_validation_pubkeys=@{public}"),
        "bound_issuer=kubernetes/serviceaccount",
    ]);
    bao.cli(&[
        "write",
        "auth/kubernetes/role/payments",
        "role_type=jwt",
        "user_claim=sub",
        "bound_subject=system:serviceaccount:apps:payments",
        "bound_audiences=vault",
        "token_policies=staging-only",
    ]);
    let good = service_account_token(d, "sa.key", "payments");
    let intruder = service_account_token(d, "sa.key", "intruder");
    write(d, "token", &good);
    write(d, "intruder-token", &intruder);
    let config = |jwt: &str| {
        format!(
            "version: 1
environments:
  staging: {{ secrets: {{ provider: vault, address: '${{VAULT_ADDR}}', prefix: staging/, auth: {{ method: kubernetes, role: payments, jwt_file: {jwt} }} }} }}
secrets:
  DB_PASSWORD: {{ staging: 'vault://db#password' }}
"
        )
    };
    write(d, "k8s.yaml", &config("token"));
    write(d, "intruder.yaml", &config("intruder-token"));
    let get = |file: &str| {
        sluice(
            d,
            &[("VAULT_ADDR", bao.addr.as_str())],
            &[
                "--config",
                file,
                "secrets",
                "get",
                "--env",
                "staging",
                "DB_PASSWORD",
            ],
        )
    };
    let r = get("k8s.yaml");
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, value.as_str()),
        "{}",
        r.stderr
    );
    let r = get("intruder.yaml");
    assert_eq!(r.code, 3, "{}", r.stdout);
    assert!(r.stderr.contains("Kubernetes login failed"), "{}", r.stderr);
    assert!(!r.stderr.contains(&intruder) && !r.stdout.contains(&value));
    // A missing token file says which file.
    write(d, "missing.yaml", &config("no-such-token"));
    let r = get("missing.yaml");
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("no-such-token"), "{}", r.stderr);
}

/// `optional: true` skips a Vault path that does not exist (404), and only that: a path the
/// token may not read (403) still fails.
#[test]
fn optional_vault_references_skip_missing_paths_but_not_denied_ones() {
    let bao = Bao::start();
    bao.cli(&["kv", "put", "secret/staging/db", "password=pw-sample-1"]);
    bao.cli(&["kv", "put", "secret/staging/other", "key=k"]);
    bao.cli_stdin(
        &["policy", "write", "narrow", "-"],
        "path \"secret/data/staging/db\" { capabilities = [\"read\"] }\npath \"secret/data/staging/missing\" { capabilities = [\"read\"] }\n",
    );
    let token = bao.cli(&["token", "create", "-policy=narrow", "-field=token"]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = |extra: &str| {
        format!(
            "version: 1
environments:
  staging: {{ secrets: {{ provider: vault, address: '${{VAULT_ADDR}}', prefix: staging/, auth: {{ method: token, token_env: T }} }} }}
secrets:
  DB: {{ staging: 'vault://db#password' }}
{extra}"
        )
    };
    let env = [("VAULT_ADDR", bao.addr.as_str()), ("T", token.as_str())];
    write(
        d,
        "sluice.yaml",
        &config("  GONE: { staging: { ref: 'vault://missing#x', optional: true } }\n"),
    );
    let r = sluice(d, &env, &["export", "--env", "staging", "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v, serde_json::json!({ "DB": "pw-sample-1" }));

    write(
        d,
        "sluice.yaml",
        &config("  DENIED: { staging: { ref: 'vault://other#key', optional: true } }\n"),
    );
    let r = sluice(d, &env, &["export", "--env", "staging", "--format", "json"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("DENIED") && r.stderr.contains("403"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty());
}

/// A fake Vault on a local port: `hang` accepts and never answers; otherwise every request gets
/// a 500 whose error text carries terminal escape sequences and a line break.
fn fake_vault(hang: bool) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            if hang {
                held.push(s);
                continue;
            }
            use std::io::{Read, Write};
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let body = "{\"errors\":[\"\\u001b[2J\\u001b[31mFAKE\\nsluice: all good\"]}";
            let _ = write!(
                s,
                "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

/// Store failures say why, within the time asked, without a debug dump or a server's control
/// characters: Vault down (connection refused), Vault hanging (`timeout_seconds` is the whole
/// wait, retries included), a Vault that answers with escape sequences, a token the server does
/// not know (told apart from a policy denial), and AWS down.
#[test]
fn store_failures_are_explained_and_bounded() {
    let bao = Bao::start();
    bao.cli(&["kv", "put", "secret/staging/db", "password=x"]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = |addr: &str| {
        format!(
            "version: 1
environments:
  staging: {{ secrets: {{ provider: vault, address: '{addr}', prefix: staging/, timeout_seconds: 2 }} }}
  prod: {{ secrets: {{ provider: aws, region: eu-central-1, endpoint: 'http://127.0.0.1:1', timeout_seconds: 2 }} }}
secrets:
  DB_PASSWORD: {{ staging: 'vault://db#password', prod: 'aws://db' }}
"
        )
    };
    let get = |env: &str, token: &str| {
        crate::support::sluice_env(
            d,
            &[
                ("VAULT_TOKEN", token),
                ("AWS_ACCESS_KEY_ID", "testing"),
                ("AWS_SECRET_ACCESS_KEY", "testing"),
            ],
            &["AWS_ENDPOINT_URL", "AWS_PROFILE"],
            &["secrets", "get", "--env", env, "DB_PASSWORD"],
            None,
        )
    };
    let root = bao.root.clone();

    write(d, "sluice.yaml", &config("http://127.0.0.1:1"));
    let r = get("staging", &root);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("cannot reach the server") && r.stderr.contains("refused"),
        "{}",
        r.stderr
    );

    write(d, "sluice.yaml", &config(&fake_vault(true)));
    let started = std::time::Instant::now();
    let r = get("staging", &root);
    let took = started.elapsed();
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("no answer within"), "{}", r.stderr);
    // The old behaviour was 2 s per attempt, three attempts: over 6 s.
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");

    write(d, "sluice.yaml", &config(&fake_vault(false)));
    let r = get("staging", &root);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("FAKE"), "{}", r.stderr);
    assert!(!r.stderr.contains('\u{1b}'), "raw escape: {:?}", r.stderr);
    assert!(
        !r.stderr.contains("\nsluice: all good"),
        "a forged line: {:?}",
        r.stderr
    );

    write(d, "sluice.yaml", &config("${VAULT_ADDR}"));
    let r = crate::support::sluice_env(
        d,
        &[
            ("VAULT_ADDR", bao.addr.as_str()),
            ("VAULT_TOKEN", "s.not-a-real-token"),
        ],
        &[],
        &["secrets", "get", "--env", "staging", "DB_PASSWORD"],
        None,
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("token is invalid or expired"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("policy"), "{}", r.stderr);
    assert!(!r.stderr.contains("s.not-a-real-token"), "{}", r.stderr);

    write(d, "sluice.yaml", &config(&bao.addr));
    let r = get("prod", &root);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("cannot reach http://127.0.0.1:1")
            || r.stderr.contains("no answer within 2 s"),
        "{}",
        r.stderr
    );
    for debug in ["DispatchFailure(", "ConnectorError", "Os {", "source:"] {
        assert!(!r.stderr.contains(debug), "a debug dump: {}", r.stderr);
    }
}

/// Trust a key pair made in `dir` (`ci.key`, `ci.pub`) at OpenBao's `jwt` auth mount, with a
/// role `deploy-staging` for the subject `system:serviceaccount:apps:deployer` and `policy`:
/// what a CI system's OIDC issuer and a Vault administrator set up.
pub(crate) fn jwt_auth(bao: &Bao, dir: &std::path::Path, policy: &str) {
    rsa_key_pair(dir, "ci");
    bao.cli(&["auth", "enable", "jwt"]);
    bao.cli(&[
        "write",
        "auth/jwt/config",
        &format!("jwt_validation_pubkeys=@{}", dir.join("ci.pub").display()),
        "bound_issuer=kubernetes/serviceaccount",
    ]);
    bao.cli(&[
        "write",
        "auth/jwt/role/deploy-staging",
        "role_type=jwt",
        "user_claim=sub",
        "bound_subject=system:serviceaccount:apps:deployer",
        "bound_audiences=vault",
        &format!("token_policies={policy}"),
    ]);
}

/// CI login without a stored token: the job's OIDC token (here signed in the test with a key
/// the server trusts) is exchanged at the JWT auth mount for a token of the role's policy. A
/// token for another subject is refused, the child does not inherit the JWT, and a missing
/// token says which variable to set.
#[test]
fn jwt_login_with_a_ci_oidc_token() {
    let (bao, value) = bao_with_staging_secret(44);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    jwt_auth(&bao, d, "staging-only");
    let good = service_account_token(d, "ci.key", "deployer");
    let other = service_account_token(d, "ci.key", "someone-else");
    write(
        d,
        "sluice.yaml",
        "version: 1
environments:
  staging: { secrets: { provider: vault, address: '${VAULT_ADDR}', prefix: staging/, auth: { method: jwt, role: deploy-staging, jwt_env: CI_OIDC_TOKEN } } }
secrets:
  DB_PASSWORD: { staging: 'vault://db#password' }
",
    );
    let run = |jwt: Option<&str>| {
        let mut env = vec![("VAULT_ADDR", bao.addr.as_str())];
        if let Some(j) = jwt {
            env.push(("CI_OIDC_TOKEN", j));
        }
        crate::support::sluice_env(
            d,
            &env,
            &["VAULT_TOKEN", "CI_OIDC_TOKEN"],
            &[
                "run",
                "--env",
                "staging",
                "--",
                "sh",
                "-c",
                "echo \"$DB_PASSWORD ${CI_OIDC_TOKEN:-no-jwt}\"",
            ],
            None,
        )
    };
    let r = run(Some(&good));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.trim(), format!("{value} no-jwt"));
    let r = run(Some(&other));
    assert_eq!(r.code, 3, "{}", r.stdout);
    assert!(r.stderr.contains("JWT login failed"), "{}", r.stderr);
    assert!(!r.stderr.contains(&other) && !r.stdout.contains(&value));
    let r = run(None);
    assert_eq!(r.code, 3, "{}", r.stdout);
    assert!(r.stderr.contains("set CI_OIDC_TOKEN"), "{}", r.stderr);
}

/// A PostgreSQL cluster that requires passwords from every role but the superuser (which the
/// test and the engine use), and OpenBao's database engine on it with `roles` (name, default
/// TTL, max TTL), each creating a login role that expires with its lease.
pub(crate) fn database_engine(
    roles: &[(&str, &str, &str)],
) -> (crate::support::pg::PgCluster, Bao) {
    let pg = crate::support::pg::PgCluster::start();
    pg.require_passwords();
    let bao = Bao::start();
    bao.cli(&["secrets", "enable", "database"]);
    let names: Vec<&str> = roles.iter().map(|(n, _, _)| *n).collect();
    bao.cli(&[
        "write",
        "database/config/pg",
        "plugin_name=postgresql-database-plugin",
        &format!(
            "connection_url=postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{}/postgres?sslmode=disable",
            pg.port()
        ),
        &format!("allowed_roles={}", names.join(",")),
        "username=postgres",
        "password=unused-with-trust",
    ]);
    for (name, ttl, max) in roles {
        bao.cli(&[
            "write",
            &format!("database/roles/{name}"),
            "db_name=pg",
            "creation_statements=CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
            &format!("default_ttl={ttl}"),
            &format!("max_ttl={max}"),
        ]);
    }
    (pg, bao)
}

/// OpenBao with a secret `staging/db` (password: a fresh sentinel) and a policy `staging-only`
/// that reads `staging/*`: what the login tests log in to.
fn bao_with_staging_secret(seed: u64) -> (Bao, String) {
    let bao = Bao::start();
    let mut rng = Rng::new(seed);
    let value = sentinel(&mut rng);
    bao.cli(&[
        "kv",
        "put",
        "secret/staging/db",
        &format!("password={value}"),
    ]);
    bao.cli_stdin(
        &["policy", "write", "staging-only", "-"],
        "path \"secret/data/staging/*\" { capabilities = [\"read\"] }\n",
    );
    (bao, value)
}

/// Dynamic database credentials: OpenBao's database engine issues a PostgreSQL role per
/// `run` (a throwaway cluster that requires passwords). The command logs in with them; the
/// lease (4 s) is renewed while the command runs past it; the role is dropped when the command
/// ends (or kept with --keep-lease); a role whose maximum lifetime ends before the command does
/// stops the command with a message; `export` says when the credentials expire.
#[test]
fn dynamic_database_credentials_live_as_long_as_the_command() {
    let (pg, bao) = database_engine(&[("app", "4s", "120s"), ("short", "2s", "3s")]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "sluice.yaml",
        "version: 1
environments:
  staging: { secrets: { provider: vault, address: '${VAULT_ADDR}', auth: { method: token, token_env: BAO_ROOT } } }
secrets:
  DB_USER: { staging: 'vault-db://app#username' }
  DB_PASSWORD: { staging: 'vault-db://app#password' }
  SHORT_USER: { staging: 'vault-db://short#username' }
  SHORT_PASSWORD: { staging: 'vault-db://short#password' }
",
    );
    let login = |user: &str, pass: &str| {
        format!(
            "PGPASSWORD=\"{pass}\" psql -X -q -A -t -h 127.0.0.1 -p {} -U \"{user}\" -d postgres -c 'select current_user'",
            pg.port()
        )
    };
    let run = |only: &[&str], extra: &[&str], script: &str| {
        let mut args = vec!["run", "--env", "staging"];
        for o in only {
            args.extend(["--only", o]);
        }
        args.extend_from_slice(extra);
        args.extend(["--", "sh", "-c", script]);
        crate::support::sluice_env(
            d,
            &[
                ("VAULT_ADDR", bao.addr.as_str()),
                ("BAO_ROOT", bao.root.as_str()),
            ],
            &["VAULT_TOKEN"],
            &args,
            None,
        )
    };
    let role_exists = |user: &str| {
        pg.psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_roles WHERE rolname = '{user}'"),
        ) == "1"
    };

    // Logs in, outlives the lease's 4 s by renewal, logs in again; the role goes afterwards.
    let script = format!(
        "echo \"$DB_USER\"; {}; sleep 7; {}",
        login("$DB_USER", "$DB_PASSWORD"),
        login("$DB_USER", "$DB_PASSWORD")
    );
    let r = run(&["DB_USER", "DB_PASSWORD"], &[], &script);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    let user = lines[0].to_string();
    assert_eq!(lines[1..], [user.as_str(), user.as_str()], "{}", r.stdout);
    assert!(
        !role_exists(&user),
        "the lease is revoked when the command ends"
    );

    // --keep-lease: the credentials outlive the command.
    let r = run(
        &["DB_USER", "DB_PASSWORD"],
        &["--keep-lease"],
        "echo \"$DB_USER\"",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let kept = r.stdout.trim().to_string();
    assert!(role_exists(&kept));
    assert!(r.stderr.contains("stay valid until"), "{}", r.stderr);

    // A lease that cannot outlive the command stops it, saying why.
    let r = run(
        &["SHORT_USER", "SHORT_PASSWORD"],
        &[],
        "sleep 20; echo finished",
    );
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(!r.stdout.contains("finished"));
    assert!(
        r.stderr.contains("vault-db://short") && r.stderr.contains("ran out"),
        "{}",
        r.stderr
    );

    // A command that only checks gives what it was issued back at once.
    let count = || {
        pg.psql(
            "postgres",
            "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'v-%'",
        )
    };
    let before = count();
    let r = crate::support::sluice_env(
        d,
        &[
            ("VAULT_ADDR", bao.addr.as_str()),
            ("BAO_ROOT", bao.root.as_str()),
        ],
        &["VAULT_TOKEN"],
        &["secrets", "check", "--env", "staging"],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(count(), before, "secrets check left credentials behind");

    // export hands out credentials that outlive it: it says until when.
    let r = crate::support::sluice_env(
        d,
        &[
            ("VAULT_ADDR", bao.addr.as_str()),
            ("BAO_ROOT", bao.root.as_str()),
        ],
        &["VAULT_TOKEN"],
        &[
            "export",
            "--env",
            "staging",
            "--only",
            "DB_USER",
            "--only",
            "DB_PASSWORD",
            "--format",
            "json",
        ],
        None,
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("expire at") && r.stderr.contains("vault-db://app"),
        "{}",
        r.stderr
    );
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(!r.stderr.contains(v["DB_PASSWORD"].as_str().unwrap()));
}

/// Read lines from `r` until one satisfies `want`, or panic after `secs`.
fn wait_line(
    lines: &std::sync::mpsc::Receiver<String>,
    want: impl Fn(&str) -> bool,
    secs: u64,
    seen: &mut Vec<String>,
) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(l) => {
                seen.push(l.clone());
                if want(&l) {
                    return l;
                }
            }
            Err(_) => panic!("no such line within {secs} s; saw {seen:?}"),
        }
    }
}

/// The lines a child writes, as they come.
fn line_reader(out: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

/// `run --watch`: a KV v2 secret updated while the command runs restarts it with the new value
/// (`--on-change restart`), or rewrites its `as: file` file and sends it SIGHUP
/// (`--on-change signal:HUP`); `render --watch` writes the file again. A SIGTERM to sluice still
/// ends the command.
#[test]
fn watch_restarts_signals_and_rerenders_on_change() {
    let bao = Bao::start();
    bao.cli(&["kv", "put", "secret/staging/app", "token=first-value"]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let runtime = d.join("runtime");
    std::fs::create_dir(&runtime).unwrap();
    write(
        d,
        "sluice.yaml",
        "version: 1
environments:
  staging: { secrets: { provider: vault, address: '${VAULT_ADDR}', prefix: staging/ } }
secrets:
  TOKEN: { staging: 'vault://app#token' }
  TOKEN_FILE: { staging: { ref: 'vault://app#token', as: file } }
",
    );
    let spawn = |args: &[&str]| {
        std::process::Command::new(crate::support::sluice_bin())
            .current_dir(d)
            .env("VAULT_ADDR", &bao.addr)
            .env("VAULT_TOKEN", &bao.root)
            .env("XDG_RUNTIME_DIR", &runtime)
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let stop = |child: &mut std::process::Child| {
        std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        child.wait().unwrap()
    };
    let mut seen = Vec::new();

    // restart
    let mut child = spawn(&[
        "run",
        "--env",
        "staging",
        "--watch",
        "--interval",
        "0.5",
        "--grace",
        "3",
        "--",
        "sh",
        "-c",
        "trap 'echo stopping; exit 0' TERM; echo \"start $TOKEN\"; while :; do sleep 0.1; done",
    ]);
    let lines = line_reader(child.stdout.take().unwrap());
    wait_line(&lines, |l| l == "start first-value", 20, &mut seen);
    bao.cli(&["kv", "put", "secret/staging/app", "token=second-value"]);
    wait_line(&lines, |l| l == "stopping", 20, &mut seen);
    wait_line(&lines, |l| l == "start second-value", 20, &mut seen);
    let status = stop(&mut child);
    assert_eq!(status.code(), Some(0), "{seen:?}");

    // signal:HUP with the file rewritten in place
    let mut child = spawn(&[
        "run",
        "--env",
        "staging",
        "--only",
        "TOKEN_FILE",
        "--watch",
        "--interval",
        "0.5",
        "--on-change",
        "signal:HUP",
        "--",
        "sh",
        "-c",
        "trap 'echo \"reload $(cat \"$TOKEN_FILE\")\"' HUP; trap 'exit 0' TERM; echo \"pid $$\"; while :; do sleep 0.1; done",
    ]);
    let lines = line_reader(child.stdout.take().unwrap());
    let first_pid = wait_line(&lines, |l| l.starts_with("pid "), 20, &mut seen);
    bao.cli(&["kv", "put", "secret/staging/app", "token=third-value"]);
    wait_line(&lines, |l| l == "reload third-value", 20, &mut seen);
    let status = stop(&mut child);
    assert_eq!(status.code(), Some(0), "{seen:?}");
    assert!(
        !seen
            .iter()
            .any(|l| l.starts_with("pid ") && *l != first_pid),
        "not restarted: {seen:?}"
    );
    assert_eq!(
        std::fs::read_dir(&runtime).unwrap().count(),
        0,
        "files removed"
    );

    // render --watch
    write(d, "app.tmpl", "token={{ secret \"TOKEN\" }}\n");
    let mut child = spawn(&[
        "render",
        "--env",
        "staging",
        "app.tmpl",
        "-o",
        "app.conf",
        "--watch",
        "--interval",
        "0.5",
    ]);
    let read = || std::fs::read_to_string(d.join("app.conf")).unwrap_or_default();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while read() != "token=third-value\n" && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(read(), "token=third-value\n");
    bao.cli(&["kv", "put", "secret/staging/app", "token=fourth-value"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while read() != "token=fourth-value\n" && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(read(), "token=fourth-value\n");
    stop(&mut child);
}
