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
            .current_dir(d)
            .args(["-c", line])
            .env_clear()
            .env("PATH", &path)
            .env("HOME", d)
            .env("NO_COLOR", "1")
            .env("VALUE", &dev_url)
            .env("VAULT_ADDR", &bao.addr)
            .env("STAGING_SECRET_ID", secret_id.trim())
            .env("AWS_ENDPOINT_URL", &moto.endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("CI_DATABASE_URL", &ci_url)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let code = out.status.code().unwrap_or(-1);
        let want = if line.starts_with("sluice secrets diff") {
            1
        } else {
            0
        };
        assert_eq!(code, want, "{line}\nstdout: {stdout}\nstderr: {stderr}");
        outputs.push((line.to_string(), stdout, stderr));
    }
    let out = |prefix: &str| {
        outputs
            .iter()
            .find(|(l, _, _)| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no README line `{prefix}`"))
            .1
            .clone()
    };
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
