//! The AWS Secrets Manager provider against moto: string and JSON secrets (key extraction),
//! binary secrets, version stages (AWSCURRENT, AWSPREVIOUS, custom) and version ids, the
//! endpoint override, concurrency, and errors that name the reference but never a value.

use crate::support::moto::Moto;
use crate::support::{Rng, write};

fn sluice(dir: &std::path::Path, endpoint: &str, args: &[&str]) -> crate::support::Run {
    crate::support::sluice_env(
        dir,
        &[
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("MOTO_ENDPOINT", endpoint),
        ],
        &["AWS_PROFILE", "AWS_ENDPOINT_URL"],
        args,
        None,
    )
}

#[test]
fn strings_json_binary_and_version_stages() {
    let moto = Moto::start();
    let mut rng = Rng::new(51);
    let mut s = || format!("aws-{}", rng.string(crate::support::ALNUM, 20));
    let (old, new, next, api, bin) = (s(), s(), s(), s(), s());
    let version_old = moto.python(&format!(
        "r = sm.create_secret(Name='prod/db', SecretString=json.dumps({{'url': 'pg://db', 'password': '{old}', 'port': 5432}}))\nprint(r['VersionId'])"
    ));
    moto.python(&format!(
        "sm.put_secret_value(SecretId='prod/db', SecretString=json.dumps({{'url': 'pg://db', 'password': '{new}', 'port': 5432}}))\n\
         sm.put_secret_value(SecretId='prod/db', SecretString=json.dumps({{'password': '{next}'}}), VersionStages=['NEXT'])\n\
         sm.create_secret(Name='prod/stripe', SecretString='{api}')\n\
         sm.create_secret(Name='prod/blob', SecretBinary=b'{bin}')\n\
         sm.create_secret(Name='prod/raw', SecretBinary=bytes([0, 255, 1]))\n\
         sm.create_secret(Name='staging/other', SecretString='x')"
    ));
    for i in 0..15 {
        moto.python(&format!(
            "sm.create_secret(Name='prod/svc{i}', SecretString='value-{i}')"
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut secrets = format!(
        "  DB_URL: {{ prod: 'aws://db#url' }}\n  DB_PASSWORD: {{ prod: 'aws://db#password' }}\n  DB_PORT: {{ prod: 'aws://db#port' }}\n  DB_PASSWORD_PREVIOUS: {{ prod: 'aws://db#password?stage=AWSPREVIOUS' }}\n  DB_PASSWORD_NEXT: {{ prod: 'aws://db#password?stage=NEXT' }}\n  DB_PASSWORD_FIRST: {{ prod: 'aws://db#password?version={version_old}' }}\n  STRIPE: {{ prod: 'aws://stripe' }}\n  BLOB: {{ prod: 'aws://blob' }}\n  RAW: {{ prod: 'aws://raw' }}\n"
    );
    for i in 0..15 {
        secrets.push_str(&format!("  SVC{i}: {{ prod: 'aws://svc{i}' }}\n"));
    }
    write(
        d,
        "sluice.yaml",
        &format!(
            "version: 1
environments:
  prod: {{ protected: true, secrets: {{ provider: aws, region: eu-central-1, prefix: prod/, endpoint: '${{MOTO_ENDPOINT}}' }} }}
secrets:
{secrets}"
        ),
    );
    let r = sluice(
        d,
        &moto.endpoint,
        &["export", "--env", "prod", "--format", "json"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["DB_URL"], "pg://db");
    assert_eq!(v["DB_PASSWORD"], new.as_str(), "AWSCURRENT by default");
    assert_eq!(v["DB_PORT"], "5432");
    assert_eq!(v["DB_PASSWORD_PREVIOUS"], old.as_str());
    assert_eq!(v["DB_PASSWORD_NEXT"], next.as_str());
    assert_eq!(v["DB_PASSWORD_FIRST"], old.as_str());
    assert_eq!(v["STRIPE"], api.as_str());
    assert_eq!(v["BLOB"], bin.as_str());
    assert_eq!(
        v["RAW"], "AP8B",
        "non-text binary secrets come back as base64"
    );
    assert_eq!(v["SVC14"], "value-14");

    // Missing secret, missing JSON key, a string secret asked for a key: named, no values.
    write(
        d,
        "bad.yaml",
        "version: 1
environments:
  prod: { secrets: { provider: aws, region: eu-central-1, prefix: prod/, endpoint: '${MOTO_ENDPOINT}' } }
secrets:
  A: { prod: 'aws://nope' }
",
    );
    let r = sluice(
        d,
        &moto.endpoint,
        &["--config", "bad.yaml", "run", "--env", "prod", "--", "true"],
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("variable `A` (aws://nope): not found (secret `prod/nope`)"),
        "{}",
        r.stderr
    );
    for (reference, want) in [
        ("aws://db#nokey", "the JSON secret has no key `nokey`"),
        ("aws://stripe#k", "not a JSON object"),
    ] {
        std::fs::write(
            d.join("bad.yaml"),
            std::fs::read_to_string(d.join("bad.yaml"))
                .unwrap()
                .replace(
                    &std::fs::read_to_string(d.join("bad.yaml"))
                        .unwrap()
                        .lines()
                        .last()
                        .unwrap()
                        .to_string(),
                    &format!("  A: {{ prod: '{reference}' }}"),
                ),
        )
        .unwrap();
        let r = sluice(
            d,
            &moto.endpoint,
            &["--config", "bad.yaml", "export", "--env", "prod"],
        );
        assert_eq!(r.code, 3, "{}", r.stderr);
        assert!(r.stderr.contains(want), "{reference}: {}", r.stderr);
        assert!(
            !r.stderr.contains(&api) && !r.stderr.contains(&new),
            "{}",
            r.stderr
        );
    }
}

/// `optional: true` skips a secret that is not there (a missing secret, a missing JSON key)
/// and nothing else: a store that cannot be reached still fails, optional or not.
#[test]
fn optional_references_skip_what_is_absent_and_nothing_else() {
    let moto = Moto::start();
    moto.python("sm.create_secret(Name='prod/db', SecretString=json.dumps({'url': 'pg://db'}))");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = |endpoint: &str| {
        format!(
            "version: 1
environments:
  prod: {{ protected: true, secrets: {{ provider: aws, region: eu-central-1, prefix: prod/, endpoint: '{endpoint}', timeout_seconds: 2 }} }}
secrets:
  DB_URL: {{ prod: 'aws://db#url' }}
  SENTRY_DSN: {{ prod: {{ ref: aws://sentry, optional: true }} }}
  DB_REPLICA: {{ prod: {{ ref: 'aws://db#replica', optional: true }} }}
"
        )
    };
    write(d, "sluice.yaml", &config("${MOTO_ENDPOINT}"));
    let r = sluice(
        d,
        &moto.endpoint,
        &["export", "--env", "prod", "--format", "json"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v, serde_json::json!({ "DB_URL": "pg://db" }));
    let run = sluice(
        d,
        &moto.endpoint,
        &[
            "run",
            "--env",
            "prod",
            "--",
            "sh",
            "-c",
            "echo \"${SENTRY_DSN-unset} $DB_URL\"",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.trim(), "unset pg://db");

    // Not optional: the same absence fails, naming the reference.
    write(
        d,
        "sluice.yaml",
        &config("${MOTO_ENDPOINT}")
            .replace("{ ref: aws://sentry, optional: true }", "aws://sentry"),
    );
    let r = sluice(
        d,
        &moto.endpoint,
        &["export", "--env", "prod", "--format", "json"],
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("SENTRY_DSN") && r.stderr.contains("not found"),
        "{}",
        r.stderr
    );

    // Optional, but the store is unreachable: that is not absence.
    write(d, "sluice.yaml", &config("http://127.0.0.1:1"));
    let r = sluice(
        d,
        &moto.endpoint,
        &["export", "--env", "prod", "--format", "json"],
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stdout.is_empty(), "{}", r.stdout);
}

/// Each environment can bring its own AWS credentials (`credentials_prefix`) and role
/// (`role_arn`, assumed through STS): staging resolves with `STAGING_AWS_*` when no standard
/// credentials exist at all, says which variables are missing when they are not set, and the
/// app never inherits them.
#[test]
fn per_environment_credentials_and_roles() {
    let moto = Moto::start();
    moto.python("sm.create_secret(Name='staging/db', SecretString='pg://staging')");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = |extra: &str| {
        format!(
            "version: 1
environments:
  staging: {{ secrets: {{ provider: aws, region: eu-central-1, prefix: staging/, endpoint: '${{MOTO_ENDPOINT}}', credentials_prefix: STAGING_, timeout_seconds: 5{extra} }} }}
secrets:
  DB_URL: {{ staging: 'aws://db' }}
"
        )
    };
    let run = |set: &[(&str, &str)], args: &[&str]| {
        let mut all = vec![("MOTO_ENDPOINT", moto.endpoint.as_str())];
        all.extend_from_slice(set);
        crate::support::sluice_env(
            d,
            &all,
            &[
                "AWS_PROFILE",
                "AWS_ENDPOINT_URL",
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN",
            ],
            args,
            None,
        )
    };
    let own = [
        ("STAGING_AWS_ACCESS_KEY_ID", "AKIASTAGINGEXAMPLE01"),
        (
            "STAGING_AWS_SECRET_ACCESS_KEY",
            "staging-secret-key-sentinel",
        ),
    ];
    let show = [
        "run",
        "--env",
        "staging",
        "--",
        "sh",
        "-c",
        "echo \"$DB_URL ${STAGING_AWS_SECRET_ACCESS_KEY-gone}\"",
    ];
    for extra in [
        "",
        ", role_arn: 'arn:aws:iam::123456789012:role/staging-secrets'",
        ", role_arn: 'arn:aws:iam::123456789012:role/staging-secrets', external_id: team-42, session_name: deploy@staging",
    ] {
        write(d, "sluice.yaml", &config(extra));
        let r = run(&own, &show);
        assert_eq!(r.code, 0, "{extra}: {}", r.stderr);
        assert_eq!(r.stdout.trim(), "pg://staging gone", "{extra}");

        let r = run(&[], &["export", "--env", "staging", "--format", "json"]);
        assert_eq!(r.code, 3, "{}", r.stderr);
        assert!(
            r.stderr.contains("STAGING_AWS_ACCESS_KEY_ID")
                && r.stderr.contains("STAGING_AWS_SECRET_ACCESS_KEY"),
            "{}",
            r.stderr
        );
    }
    // A session name STS would refuse is refused by `check`.
    write(
        d,
        "sluice.yaml",
        &config(", role_arn: 'arn:aws:iam::123456789012:role/x', session_name: 'has space'"),
    );
    let r = run(&own, &["check"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("is not a role session name"),
        "{}",
        r.stderr
    );
    // A role that is not a role is refused by `check`, before any request.
    write(d, "sluice.yaml", &config(", role_arn: 'not-an-arn'"));
    let r = run(&own, &["check"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("sluice.yaml:3:")
            && r.stderr.contains(
                "`environments.staging.secrets.role_arn`: `not-an-arn` is not an IAM role ARN"
            ),
        "{}",
        r.stderr
    );
}

/// AWS Systems Manager Parameter Store through the environment's AWS store: one parameter
/// (`ssm://NAME`, SecureString decrypted), every parameter under a path (`ssm://PATH/`, one
/// variable each, named after the path's variable and the parameter), an optional one that
/// is absent, and a missing one named in the error.
#[test]
fn parameter_store_parameters_and_paths() {
    let moto = Moto::start();
    let mut rng = Rng::new(58);
    let (secret, url) = (
        rng.string(crate::support::ALNUM, 20),
        rng.string(crate::support::ALNUM, 20),
    );
    moto.python(&format!(
        "ssm = boto3.client('ssm', endpoint_url='{}', region_name='eu-central-1', aws_access_key_id='testing', aws_secret_access_key='testing')\n\
         ssm.put_parameter(Name='/prod/single', Value='{secret}', Type='SecureString')\n\
         ssm.put_parameter(Name='/prod/app/db_url', Value='{url}', Type='SecureString')\n\
         ssm.put_parameter(Name='/prod/app/nested/port', Value='5432', Type='String')\n\
         ssm.put_parameter(Name='/staging/app/db_url', Value='not-prod', Type='String')",
        moto.endpoint
    ));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = |extra: &str| {
        format!(
            "version: 1
environments:
  prod: {{ protected: true, secrets: {{ provider: aws, region: eu-central-1, prefix: prod/, endpoint: '${{MOTO_ENDPOINT}}' }} }}
secrets:
  SINGLE: {{ prod: 'ssm://single' }}
  APP: {{ prod: 'ssm://app/' }}
  SENTRY: {{ prod: {{ ref: 'ssm://sentry', optional: true }} }}
{extra}"
        )
    };
    write(d, "sluice.yaml", &config(""));
    let r = sluice(
        d,
        &moto.endpoint,
        &["export", "--env", "prod", "--format", "json"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!({ "SINGLE": secret, "APP_DB_URL": url, "APP_NESTED_PORT": "5432" })
    );
    let r = sluice(
        d,
        &moto.endpoint,
        &[
            "run",
            "--env",
            "prod",
            "--",
            "sh",
            "-c",
            "echo \"$APP_DB_URL $SINGLE\"",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.trim(), format!("{url} {secret}"));

    write(
        d,
        "sluice.yaml",
        &config("  GONE: { prod: 'ssm://gone' }\n"),
    );
    let r = sluice(
        d,
        &moto.endpoint,
        &["export", "--env", "prod", "--format", "json"],
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("GONE") && r.stderr.contains("/prod/gone"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains(&secret) && r.stdout.is_empty());
}

/// Several stores in one environment: references without `store:` read `secrets:`, and
/// `{ store: NAME, ref: … }` reads a named store; an unknown store name is refused with the
/// declared ones; the protected-environment check covers named stores too.
#[test]
fn several_stores_in_one_environment() {
    let moto = Moto::start();
    moto.python("sm.create_secret(Name='staging/legacy-db', SecretString='legacy-value')\nsm.create_secret(Name='prod/db', SecretString='prod-value')");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = |extra_env: &str, extra: &str| {
        format!(
            "version: 1
environments:
  prod: {{ protected: true, stores: {{ main: {{ provider: aws, region: eu-central-1, prefix: prod/, endpoint: '${{MOTO_ENDPOINT}}' }} }} }}
  staging:
    secrets: {{ provider: env, prefix: STG_ }}
    stores:
      legacy: {{ provider: aws, region: eu-central-1, prefix: staging/, endpoint: '${{MOTO_ENDPOINT}}' }}
{extra_env}secrets:
  NEW: {{ staging: env://NEW }}
  OLD: {{ staging: {{ store: legacy, ref: aws://legacy-db }} }}
  DB: {{ prod: {{ store: main, ref: aws://db }} }}
{extra}"
        )
    };
    let run = |args: &[&str]| {
        crate::support::sluice_env(
            d,
            &[
                ("AWS_ACCESS_KEY_ID", "testing"),
                ("AWS_SECRET_ACCESS_KEY", "testing"),
                ("MOTO_ENDPOINT", moto.endpoint.as_str()),
                ("STG_NEW", "from-env"),
            ],
            &["AWS_PROFILE", "AWS_ENDPOINT_URL"],
            args,
            None,
        )
    };
    write(d, "sluice.yaml", &config("", ""));
    let r = run(&[
        "export", "--env", "staging", "--only", "NEW,OLD", "--format", "json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!({ "NEW": "from-env", "OLD": "legacy-value" })
    );
    let r = run(&["secrets", "get", "--env", "prod", "DB"]);
    assert_eq!(
        (r.code, r.stdout.as_str()),
        (0, "prod-value"),
        "{}",
        r.stderr
    );

    write(
        d,
        "sluice.yaml",
        &config("", "  TYPO: { staging: { store: legcy, ref: aws://x } }\n"),
    );
    let r = run(&["check"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("has no store `legcy` under `stores:` (declared: legacy)"),
        "{}",
        r.stderr
    );

    // Staging's named store reaching into prod's named store: refused.
    write(
        d,
        "sluice.yaml",
        &config(
            "  qa: { stores: { x: { provider: aws, region: eu-central-1, prefix: '', endpoint: '${MOTO_ENDPOINT}' } } }\n",
            "  LEAK: { qa: { store: x, ref: aws://prod/db } }\n",
        ),
    );
    let r = run(&["check"]);
    assert_ne!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("protected environment `prod`"),
        "{}",
        r.stderr
    );
    let r = run(&["export", "--env", "qa", "--format", "json"]);
    assert_ne!(r.code, 0);
    assert!(!r.stdout.contains("prod-value"));
}

/// Reads one HTTP request from a connection on `listener` (the address a Vault store points at),
/// answers it with Vault's "permission denied", and returns the request's body.
fn capture_one_request(listener: std::net::TcpListener) -> std::thread::JoinHandle<String> {
    use std::io::{BufRead, BufReader, Read, Write};
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let answer = r#"{"errors":["permission denied"]}"#;
        write!(
            &stream,
            "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
            answer.len()
        )
        .unwrap();
        String::from_utf8(body).unwrap()
    })
}

/// Vault's AWS IAM login without a stored token: sluice signs `sts:GetCallerIdentity` with the
/// machine's credentials and sends it to the auth mount. This machine has no Vault server with
/// the AWS auth method (OpenBao does not ship it), so the test takes the login request sluice
/// sends and does what the Vault server does with it: decodes it and replays it against STS
/// (moto, checking signatures with a real IAM user's key). STS must name that user; a request
/// altered after signing, or signed with a wrong secret, is refused; the server-id header is
/// signed; the refusal names the method and no credential.
#[test]
fn vault_aws_iam_login_is_a_request_sts_accepts() {
    let moto = Moto::start();
    let keys = moto.python(&format!(
        "iam = boto3.client('iam', endpoint_url='{0}', region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing')\n\
         iam.create_user(UserName='deployer')\n\
         k = iam.create_access_key(UserName='deployer')['AccessKey']\n\
         print(k['AccessKeyId'], k['SecretAccessKey'])",
        moto.endpoint
    ));
    moto.check_signatures();
    let (key_id, secret) = keys.split_once(' ').unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "sluice.yaml",
        "version: 1
environments:
  ci: { secrets: { provider: vault, address: '${VAULT_ADDR}', prefix: ci/, auth: { method: aws, role: deploy-ci, server_id: vault.example.test, sts_endpoint: '${MOTO_ENDPOINT}/' } } }
secrets:
  DB_PASSWORD: { ci: 'vault://db#password' }
",
    );
    let login = |secret: &str| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let captured = capture_one_request(listener);
        let r = crate::support::sluice_env(
            d,
            &[
                ("VAULT_ADDR", addr.as_str()),
                ("MOTO_ENDPOINT", moto.endpoint.as_str()),
                ("AWS_ACCESS_KEY_ID", key_id),
                ("AWS_SECRET_ACCESS_KEY", secret),
                ("AWS_CONFIG_FILE", "/nonexistent"),
                ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
            ],
            &["AWS_PROFILE", "AWS_SESSION_TOKEN", "VAULT_TOKEN"],
            &["run", "--env", "ci", "--", "true"],
            None,
        );
        assert_eq!(r.code, 3, "{}", r.stdout);
        assert!(
            r.stderr.contains("AWS IAM login failed") && r.stderr.contains("permission denied"),
            "{}",
            r.stderr
        );
        assert!(!r.stderr.contains(secret) && !r.stdout.contains(secret));
        captured.join().unwrap()
    };
    // What the Vault server does: decode, check the role and server id, replay to STS.
    let replay = |body: &str, tamper: bool| {
        moto.python(&format!(
            "import urllib.request, urllib.error\n\
             login = json.loads({body:?})\n\
             assert login['role'] == 'deploy-ci', login\n\
             assert login['iam_http_request_method'] == 'POST'\n\
             url = base64.b64decode(login['iam_request_url']).decode()\n\
             assert url == '{}/', url\n\
             headers = {{k: v[0] for k, v in json.loads(base64.b64decode(login['iam_request_headers'])).items()}}\n\
             lower = {{k.lower(): v for k, v in headers.items()}}\n\
             assert lower['x-vault-aws-iam-server-id'] == 'vault.example.test'\n\
             assert 'x-vault-aws-iam-server-id' in lower['authorization']\n\
             body = base64.b64decode(login['iam_request_body'])\n\
             if {}: body = body.replace(b'2011-06-15', b'2011-06-16')\n\
             try:\n    print(urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers, method='POST')).read().decode())\n\
             except urllib.error.HTTPError as e:\n    print('refused', e.code, e.read().decode())",
            moto.endpoint,
            if tamper { "True" } else { "False" }
        ))
    };
    let body = login(secret);
    assert!(
        !body.contains(secret),
        "the login request holds the secret key"
    );
    let answer = replay(&body, false);
    assert!(
        answer.contains("<Arn>arn:aws:iam::123456789012:user/deployer</Arn>"),
        "{answer}"
    );
    let answer = replay(&body, true);
    assert!(answer.starts_with("refused 403"), "{answer}");
    let wrong = format!("{}x", &secret[..secret.len() - 1]);
    let answer = replay(&login(&wrong), false);
    assert!(
        answer.starts_with("refused 403") && answer.contains("SignatureDoesNotMatch"),
        "{answer}"
    );
}
