//! The README's secrets section works verbatim: its `sluice.yaml` and every command line of its
//! command block, run as written by `sh` in a directory with the servers it names (OpenBao for
//! staging's Vault with the AppRole role id as written, moto for prod's AWS, an age store for
//! dev, the process environment for ci).

use std::path::Path;
use std::process::Command;

use crate::support::moto::Moto;
use crate::support::vault::Bao;
use crate::support::{Rng, write};

/// The first fenced block of `lang` after `heading` in README.md.
fn block(readme: &str, heading: &str, lang: &str) -> String {
    let section = &readme[readme.find(heading).expect("section")..];
    let start = section.find(&format!("```{lang}\n")).expect("block") + lang.len() + 4;
    let body = &section[start..];
    body[..body.find("```").expect("closing fence")].to_string()
}

/// The role id written in the README's AppRole example.
fn role_id(yaml: &str) -> String {
    let after = &yaml[yaml.find("role_id: ").expect("role_id") + "role_id: ".len()..];
    after[..after.find(',').expect("role_id,")].to_string()
}

/// Run every command line of `commands` with `sh` in `dir`, sluice first on PATH, in an
/// environment of only `vars` (and PATH, HOME, NO_COLOR); each must exit with `code(line)`.
/// Returns (line, stdout, stderr) per line run.
fn run_lines(
    dir: &Path,
    commands: &str,
    vars: &[(&str, String)],
    code: impl Fn(&str) -> i32,
) -> Vec<(String, String, String)> {
    let bin_dir = crate::support::sluice_bin().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut outputs = Vec::new();
    for line in commands.lines() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let out = Command::new("sh")
            .current_dir(dir)
            .args(["-c", line])
            .env_clear()
            .env("PATH", &path)
            .env("HOME", dir)
            .env("NO_COLOR", "1")
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(code(line)),
            "{line}\nstdout: {stdout}\nstderr: {stderr}"
        );
        outputs.push((line.to_string(), stdout, stderr));
    }
    outputs
}

/// The stdout of the line that starts with `prefix`.
fn output_of(outputs: &[(String, String, String)], prefix: &str) -> String {
    outputs
        .iter()
        .find(|(l, _, _)| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no README line `{prefix}`"))
        .1
        .clone()
}

#[test]
fn the_readme_secrets_example_runs_verbatim() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let heading = "## Secrets: `sluice run`";
    let yaml = block(&readme, heading, "yaml");
    let commands = block(&readme, heading, "sh");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "sluice.yaml", &yaml);

    let mut rng = Rng::new(404);
    let mut s = |p: &str| format!("{p}-{}", rng.string(crate::support::ALNUM, 16));
    let (dev_url, staging_url, prod_url, ci_url) = (s("dev"), s("stg"), s("prd"), s("ci"));
    let (stripe3, stripe_prod) = (s("sk3"), s("skp"));

    // staging: OpenBao, an AppRole whose role id is the README's, three versions of stripe.
    let bao = Bao::start();
    bao.cli(&[
        "kv",
        "put",
        "secret/staging/db",
        &format!("url={staging_url}"),
    ]);
    for v in ["sk1", "sk2", stripe3.as_str()] {
        bao.cli(&["kv", "put", "secret/staging/stripe", &format!("key={v}")]);
    }
    bao.cli_stdin(
        &["policy", "write", "staging", "-"],
        "path \"secret/data/staging/*\" { capabilities = [\"read\"] }\n",
    );
    bao.cli(&["auth", "enable", "approle"]);
    bao.cli(&["write", "auth/approle/role/app", "token_policies=staging"]);
    bao.cli(&[
        "write",
        "auth/approle/role/app/role-id",
        &format!("role_id={}", role_id(&yaml)),
    ]);
    let secret_id = bao.cli(&[
        "write",
        "-f",
        "-field=secret_id",
        "auth/approle/role/app/secret-id",
    ]);
    // prod: moto, through the standard AWS_ENDPOINT_URL (the README's store names no endpoint).
    let moto = Moto::start();
    moto.python(&format!(
        "sm.create_secret(Name='prod/db', SecretString=json.dumps({{'url': '{prod_url}'}}))\n\
         sm.create_secret(Name='prod/stripe', SecretString='{stripe_prod}')"
    ));

    for (name, body) in [
        (
            "app",
            "echo \"app $* db=${DATABASE_URL:+set} stripe=${STRIPE_KEY:+set}\"",
        ),
        (
            "migrate",
            "echo \"migrate db=${DATABASE_URL:+set} stripe=${STRIPE_KEY:-none}\"",
        ),
        ("job", "echo \"job $DATABASE_URL $STRIPE_KEY\""),
    ] {
        let path = d.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    write(d, "app.conf.tmpl", "db = {{ secret \"DATABASE_URL\" }}\n");

    let outputs = run_lines(
        d,
        &commands,
        &[
            ("VALUE", dev_url.clone()),
            ("VAULT_ADDR", bao.addr.clone()),
            ("STAGING_SECRET_ID", secret_id.trim().to_string()),
            ("AWS_ENDPOINT_URL", moto.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("CI_DATABASE_URL", ci_url.clone()),
        ],
        |line| i32::from(line.starts_with("sluice secrets diff")),
    );
    let out = |prefix: &str| output_of(&outputs, prefix);
    assert!(out("sluice run --env staging -- ./app").contains("app --port 8080 db=set stripe=set"));
    assert!(out("sluice run --env staging --only").contains("db=set stripe=none"));
    assert!(out("sluice run --env prod --mask-output").contains("job ***** *****"));
    assert_eq!(
        out("sluice run --env prod --pristine").trim(),
        format!("job {prod_url} {stripe_prod}")
    );
    assert_eq!(
        out("sluice export --env staging --format dotenv"),
        format!("DATABASE_URL={staging_url}\nSTRIPE_KEY={stripe3}\n")
    );
    assert_eq!(out("sluice secrets get --env dev DATABASE_URL"), dev_url);
    assert_eq!(
        std::fs::read_to_string(d.join("app.conf")).unwrap(),
        format!("db = {prod_url}\n")
    );
    let list = out("sluice secrets list --env prod");
    assert!(
        list.contains("aws://db#url") && !list.contains(&prod_url),
        "{list}"
    );
    // Values only where a value was asked for.
    for (line, stdout, stderr) in &outputs {
        for v in [&staging_url, &prod_url, &stripe3, &stripe_prod, &ci_url] {
            assert!(!stderr.contains(v.as_str()), "{line}: a value on stderr");
        }
        if line.contains("secrets list")
            || line.contains("secrets diff")
            || line.contains("secrets check")
            || line.contains("--mask-output")
        {
            for v in [&dev_url, &staging_url, &prod_url, &stripe3, &stripe_prod] {
                assert!(!stdout.contains(v.as_str()), "{line}: a value on stdout");
            }
        }
    }
}

/// The README's "Deploy-time secrets that live" example runs verbatim: OpenBao with the
/// database engine on a PostgreSQL cluster that requires passwords, JWT auth with a key made
/// here, a KV secret; moto for the `legacy` store's Secrets Manager secret and Parameter Store
/// path. The command logs in with credentials issued for it, which are gone afterwards; the
/// audit trail names what was resolved and holds no value.
#[test]
fn the_readme_live_secrets_example_runs_verbatim() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let heading = "### Deploy-time secrets that live: one example";
    let yaml = block(&readme, heading, "yaml");
    let commands = block(&readme, heading, "sh");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "sluice.yaml", &yaml);
    std::fs::create_dir(d.join("logs")).unwrap();
    let runtime = d.join("runtime");
    std::fs::create_dir(&runtime).unwrap();
    let mut rng = Rng::new(405);
    let mut s = |p: &str| format!("{p}-{}", rng.string(crate::support::ALNUM, 16));
    let (tls, api, feature) = (s("tls"), s("api"), s("feat"));

    let (pg, bao) = crate::vault::database_engine(&[("app", "60s", "120s")]);
    bao.cli(&["kv", "put", "secret/staging/tls", &format!("key={tls}")]);
    bao.cli_stdin(
        &["policy", "write", "deploy-staging", "-"],
        "path \"secret/data/staging/*\" { capabilities = [\"read\"] }\npath \"database/creds/app\" { capabilities = [\"read\"] }\npath \"sys/leases/renew\" { capabilities = [\"update\"] }\npath \"sys/leases/revoke\" { capabilities = [\"update\"] }\n",
    );
    crate::vault::jwt_auth(&bao, d, "deploy-staging");
    let jwt = crate::vault::service_account_token(d, "ci.key", "deployer");

    let moto = Moto::start();
    moto.python(&format!(
        "sm.create_secret(Name='staging/api', SecretString=json.dumps({{'key': '{api}'}}))\n\
         ssm = boto3.client('ssm', endpoint_url='{}', region_name='eu-central-1', aws_access_key_id='testing', aws_secret_access_key='testing')\n\
         ssm.put_parameter(Name='/staging/features/new_checkout', Value='{feature}', Type='String')",
        moto.endpoint
    ));

    for (name, body) in [
        (
            "migrate",
            "PGPASSWORD=\"$DB_PASSWORD\" psql -X -q -A -t -U \"$DB_USER\" -d postgres -c 'select current_user' > logged-in-as\n\
             echo \"tls=$(cat \"$TLS_KEY\") api=$OLD_API_KEY feature=$FEATURES_NEW_CHECKOUT level=$LOG_LEVEL\"",
        ),
        (
            "server",
            "echo \"serving with $(cat \"$TLS_KEY\")\"; sleep 1",
        ),
    ] {
        let path = d.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let outputs = run_lines(
        d,
        &commands,
        &[
            ("VAULT_ADDR", bao.addr.clone()),
            ("CI_OIDC_TOKEN", jwt.clone()),
            ("AWS_ENDPOINT_URL", moto.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("XDG_RUNTIME_DIR", runtime.display().to_string()),
            ("PGHOST", "127.0.0.1".into()),
            ("PGPORT", pg.port().to_string()),
        ],
        |_| 0,
    );
    let out = |prefix: &str| output_of(&outputs, prefix);
    assert_eq!(
        out("sluice run --env staging -- ./migrate").trim(),
        format!("tls={tls} api={api} feature={feature} level=info")
    );
    let user = std::fs::read_to_string(d.join("logged-in-as"))
        .unwrap()
        .trim()
        .to_string();
    assert!(user.starts_with("v-"), "{user}");
    assert_eq!(
        pg.psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_roles WHERE rolname = '{user}'")
        ),
        "0",
        "the issued role is revoked after the run"
    );
    assert_eq!(
        out("sluice run --env staging --watch").trim(),
        format!("serving with {tls}")
    );
    let v: serde_json::Value =
        serde_json::from_str(&out("sluice export --env staging --only")).unwrap();
    assert_eq!(
        v,
        serde_json::json!({ "LOG_LEVEL": "info", "OLD_API_KEY": api })
    );
    let trail = std::fs::read_to_string(d.join("logs/sluice-audit.jsonl")).unwrap();
    assert!(
        trail.contains("\"vault-db://app#username\"") && trail.contains("\"command\":\"run\""),
        "{trail}"
    );
    for v in [&tls, &api, &feature, &jwt] {
        assert!(!trail.contains(v.as_str()), "a value in the audit trail");
    }
    assert_eq!(std::fs::read_dir(&runtime).unwrap().count(), 0);
}
