//! `scan --validate` against real servers: AWS keys through moto's STS (signatures checked),
//! Vault tokens through OpenBao's lookup-self, PostgreSQL URLs through a login, HTTP basic-auth
//! URLs through a server that checks them; loopback addresses refused without
//! `--validate-allow-private`; verdicts in every format, never a secret.

use crate::support::moto::Moto;
use crate::support::vault::Bao;
use crate::support::{Rng, write};

/// An IAM user's key pair whose id the key-id rule recognises (moto draws ids from A-Z0-9; AWS's
/// own are base32), with moto then checking every signature.
fn moto_key(moto: &Moto) -> (String, String) {
    let out = moto.python(&format!(
        "import re\n\
         iam = boto3.client('iam', endpoint_url='{0}', region_name='us-east-1', aws_access_key_id='testing', aws_secret_access_key='testing')\n\
         for n in range(40):\n\
         \x20   iam.create_user(UserName=f'u{{n}}')\n\
         \x20   k = iam.create_access_key(UserName=f'u{{n}}')['AccessKey']\n\
         \x20   if re.fullmatch('AKIA[A-Z2-7]{{16}}', k['AccessKeyId']) and re.fullmatch('[A-Za-z0-9/+]{{40}}', k['SecretAccessKey']) and not re.search('(?i)example|x{{6}}|0{{8}}', k['SecretAccessKey']): break\n\
         print(k['AccessKeyId'], k['SecretAccessKey'])",
        moto.endpoint
    ));
    moto.check_signatures();
    let (id, secret) = out.split_once(' ').unwrap();
    (id.to_string(), secret.to_string())
}

/// A tiny HTTP server (Python's http.server) that answers 200 to `user:pass` in basic auth and
/// 401 to anything else; killed on drop.
struct BasicAuthServer(std::process::Child, u16);

impl BasicAuthServer {
    fn start(user: &str, pass: &str) -> BasicAuthServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let script = format!(
            "import base64, http.server\n\
             want = 'Basic ' + base64.b64encode(b'{user}:{pass}').decode()\n\
             class H(http.server.BaseHTTPRequestHandler):\n\
             \x20   def do_GET(self):\n\
             \x20       ok = self.headers.get('Authorization') == want\n\
             \x20       self.send_response(200 if ok else 401); self.end_headers()\n\
             \x20   def log_message(self, *a): pass\n\
             http.server.HTTPServer(('127.0.0.1', {port}), H).serve_forever()\n"
        );
        let child = std::process::Command::new("python3")
            .args(["-c", &script])
            .spawn()
            .unwrap();
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        BasicAuthServer(child, port)
    }
}

impl Drop for BasicAuthServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn validate_against_real_servers_in_every_format() {
    let mut rng = Rng::new(71);
    let moto = Moto::start();
    let (id, secret) = moto_key(&moto);
    let bao = Bao::start();
    let token = bao
        .cli(&["token", "create", "-field=token", "-policy=default"])
        .trim()
        .to_string();
    let pg = crate::support::pg::PgCluster::start();
    pg.require_passwords();
    let pg_pass = rng.string(crate::support::ALNUM, 20);
    pg.psql(
        "postgres",
        &format!("CREATE ROLE app LOGIN PASSWORD '{pg_pass}'"),
    );
    pg.psql("postgres", "CREATE DATABASE app OWNER app");
    let web_pass = rng.string(crate::support::ALNUM, 16);
    let web = BasicAuthServer::start("deploy", &web_pass);

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let wrong = |s: &str| {
        let last = if s.ends_with('Q') { 'R' } else { 'Q' };
        format!("{}{last}", &s[..s.len() - 1])
    };
    let port = pg.port();
    let files = [
        (
            "good/aws.env",
            format!("AWS_ACCESS_KEY_ID={id}\nAWS_SECRET_ACCESS_KEY={secret}\n"),
        ),
        (
            "bad/aws.env",
            format!(
                "AWS_ACCESS_KEY_ID={id}\nAWS_SECRET_ACCESS_KEY={}\n",
                wrong(&secret)
            ),
        ),
        ("good/vault.env", format!("VAULT_TOKEN={token}\n")),
        ("bad/vault.env", format!("VAULT_TOKEN={}\n", wrong(&token))),
        (
            "good/db.env",
            format!("DATABASE_URL=postgres://app:{pg_pass}@127.0.0.1:{port}/app\n"),
        ),
        (
            "bad/db.env",
            format!(
                "DATABASE_URL=postgres://app:{}@127.0.0.1:{port}/app\n",
                wrong(&pg_pass)
            ),
        ),
        (
            "good/web.env",
            format!("HOOK=http://deploy:{web_pass}@127.0.0.1:{}/hook\n", web.1),
        ),
        // `localhost`, not 127.0.0.1: it may resolve to ::1 first, where nothing listens.
        (
            "good/web-local.env",
            format!("HOOK=http://deploy:{web_pass}@localhost:{}/hook\n", web.1),
        ),
        (
            "good/db-local.env",
            format!("DATABASE_URL=postgres://app:{pg_pass}@localhost:{port}/app\n"),
        ),
        (
            "bad/web.env",
            format!(
                "HOOK=http://deploy:{}@127.0.0.1:{}/hook\n",
                wrong(&web_pass),
                web.1
            ),
        ),
    ];
    for (name, text) in &files {
        write(d, name, text);
    }
    let run = |args: &[&str]| {
        crate::support::sluice_env(
            d,
            &[
                ("AWS_ENDPOINT_URL_STS", moto.endpoint.as_str()),
                ("VAULT_ADDR", bao.addr.as_str()),
            ],
            &[
                "AWS_ENDPOINT_URL",
                "VAULT_TOKEN",
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY",
            ],
            args,
            None,
        )
    };
    let r = run(&[
        "scan",
        "--validate",
        "--validate-allow-private",
        "--format",
        "json",
        ".",
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let mut verdicts: Vec<(String, String, String)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["rule"].as_str().unwrap().to_string(),
                f["validation"]["status"]
                    .as_str()
                    .unwrap_or("none")
                    .to_string(),
            )
        })
        .collect();
    verdicts.sort();
    for (path, rule, status) in &verdicts {
        let want = if path.starts_with("./good/") {
            "valid"
        } else {
            "invalid"
        };
        assert_eq!(status, want, "{path} {rule}: {verdicts:?}\n{}", r.stdout);
    }
    let paths: std::collections::BTreeSet<&str> =
        verdicts.iter().map(|(p, _, _)| p.as_str()).collect();
    assert_eq!(paths.len(), files.len(), "{verdicts:?}");
    assert!(
        r.stdout.contains("user/u"),
        "the STS answer names the user: {}",
        r.stdout
    );
    for s in [&secret, &token, &pg_pass, &web_pass] {
        assert!(!r.stdout.contains(s.as_str()) && !r.stderr.contains(s.as_str()));
    }
    // Loopback is refused without the flag: unknown, and said why.
    let r = run(&["scan", "--validate", "--format", "jsonl", "good"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let mut checked = 0;
    for line in r.stdout.lines().filter(|l| l.contains("\"rule\"")) {
        let f: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(f["validation"]["status"], "unknown", "{line}");
        let detail = f["validation"]["detail"].as_str().unwrap();
        assert!(detail.contains("--validate-allow-private"), "{line}");
        checked += 1;
    }
    assert!(checked >= 4, "{}", r.stdout);
    // Human, SARIF and GitHub formats carry the verdict too.
    let r = run(&[
        "scan",
        "--validate",
        "--validate-allow-private",
        "good/db.env",
    ]);
    assert!(
        r.stdout.contains("[valid: logged in to 127.0.0.1"),
        "{}",
        r.stdout
    );
    let r = run(&[
        "scan",
        "--validate",
        "--validate-allow-private",
        "--format",
        "sarif",
        "bad/db.env",
    ]);
    let sarif: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        sarif["runs"][0]["results"][0]["properties"]["validation"]["status"],
        "invalid"
    );
    let r = run(&[
        "scan",
        "--validate",
        "--validate-allow-private",
        "--format",
        "github",
        "bad/web.env",
    ]);
    assert!(
        r.stdout.contains("[invalid: http://127.0.0.1"),
        "{}",
        r.stdout
    );
    // Never on by default.
    let r = run(&["scan", "--format", "json", "good"]);
    assert!(!r.stdout.contains("\"status\""), "{}", r.stdout);
}
