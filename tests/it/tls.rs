//! TLS to PostgreSQL: both clusters accept only TLS over TCP; sslmode and sslrootcert in the
//! URLs decide what sluice (and the pg_dump and psql it runs) accept.

use std::path::Path;
use std::process::Command;

use crate::support::pg::PgCluster;
use crate::support::{run_ok, sluice_env, write};

const PASSWORD: &str = "Sentinel-TLS-Password-51be07";

fn openssl(dir: &Path, args: &[&str]) {
    run_ok(Command::new("openssl").current_dir(dir).args(args));
}

/// A CA (`name`.pem) and, when `server` is set, a server certificate signed by it for
/// `DNS:localhost` only (server.crt, server.key).
fn ca(dir: &Path, name: &str, server: bool) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
    if server {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
        );
        write(dir, "san.ext", "subjectAltName = DNS:localhost\n");
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                &format!("{name}.pem"),
                "-CAkey",
                &format!("{name}.key"),
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "san.ext",
                "-out",
                "server.crt",
            ],
        );
    }
}

#[test]
fn refresh_over_tls_verifies_the_server_as_sslmode_says() {
    let certs = tempfile::tempdir().unwrap();
    ca(certs.path(), "test-ca", true);
    ca(certs.path(), "other-ca", false);
    let (crt, key) = (
        certs.path().join("server.crt"),
        certs.path().join("server.key"),
    );
    let src = PgCluster::start_tls(&crt, &key);
    let dst = PgCluster::start_tls(&crt, &key);
    src.psql("postgres", "create database app");
    src.psql(
        "app",
        "create table people (id int primary key, email text);
         insert into people select i, 'p' || i || '@example.test' from generate_series(1, 50) i",
    );
    dst.psql("postgres", "create database staging");
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "sluice.yaml",
        "version: 1
environments:
  prod: { protected: true, secrets: { provider: env, prefix: PROD_ } }
  staging: { secrets: { provider: env, prefix: STAGING_ } }
secrets:
  DATABASE_URL: { prod: env://DATABASE_URL, staging: env://DATABASE_URL }
  MASKING_KEY: { prod: env://MASKING_KEY }
refresh:
  nightly:
    source: { env: prod, url: 'secret:DATABASE_URL' }
    target: { env: staging, url: 'secret:DATABASE_URL' }
    jobs: 2
    masking:
      key: 'secret:MASKING_KEY'
      columns: { people.id: keep }
",
    );
    let ca_file = certs.path().join("test-ca.pem").display().to_string();
    let other_ca = certs.path().join("other-ca.pem").display().to_string();
    let sluice_with = |host: &str, query: &str, args: &[&str]| {
        let url = |pg: &PgCluster, db: &str| {
            format!(
                "postgresql://postgres:{PASSWORD}@{host}:{}/{db}?{query}",
                pg.port()
            )
        };
        let (s, t) = (url(&src, "app"), url(&dst, "staging"));
        let r = sluice_env(
            dir.path(),
            &[
                ("PROD_DATABASE_URL", s.as_str()),
                ("STAGING_DATABASE_URL", t.as_str()),
                ("PROD_MASKING_KEY", "tls-test-key-8d1f0c3a9b7e"),
            ],
            &[],
            args,
            None,
        );
        assert!(
            !r.stdout.contains(PASSWORD) && !r.stderr.contains(PASSWORD),
            "{}{}",
            r.stdout,
            r.stderr
        );
        r
    };
    let run =
        |host: &str, query: &str| sluice_with(host, query, &["refresh", "nightly", "--adopt"]);

    // verify-full against the right CA, by the name on the certificate: sluice's own
    // connections and pg_dump/psql all pass the server's hostssl-only rules.
    let ok = run(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca_file}"),
    );
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    assert_eq!(dst.psql("staging", "select count(*) from people"), "50");
    assert_eq!(
        dst.psql(
            "staging",
            "select count(*) from people where email like '%@example.test'"
        ),
        "0",
        "masked by the built-in presets"
    );

    // The environment commands read the same URLs (sslmode and sslrootcert included).
    let list = sluice_with(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca_file}"),
        &["env", "list"],
    );
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(list.stdout.starts_with("name "), "{}", list.stdout);

    // The certificate does not name 127.0.0.1: verify-full refuses, verify-ca (chain only)
    // accepts.
    let wrong_name = run(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={ca_file}"),
    );
    assert_eq!(wrong_name.code, 3, "{}", wrong_name.stderr);
    assert!(
        wrong_name.stderr.contains("connecting to the source"),
        "{}",
        wrong_name.stderr
    );
    let chain_only = run(
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={ca_file}"),
    );
    assert_eq!(chain_only.code, 0, "{}", chain_only.stderr);

    // Another CA: refused. require without a root: encrypted, accepted. disable: the server
    // refuses plain connections.
    let untrusted = run(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={other_ca}"),
    );
    assert_eq!(untrusted.code, 3, "{}", untrusted.stderr);
    assert!(
        untrusted.stderr.to_lowercase().contains("certificate"),
        "{}",
        untrusted.stderr
    );
    let require = run("127.0.0.1", "sslmode=require");
    assert_eq!(require.code, 0, "{}", require.stderr);
    let plain = run("127.0.0.1", "sslmode=disable");
    assert_eq!(plain.code, 3, "{}", plain.stderr);
    assert!(
        plain.stderr.contains("no encryption"),
        "the server's hba rule says why: {}",
        plain.stderr
    );
    let bad_mode = run("127.0.0.1", "sslmode=sometimes");
    assert_eq!(bad_mode.code, 2, "{}", bad_mode.stderr);
    assert!(
        bad_mode.stderr.contains("sslmode=sometimes"),
        "{}",
        bad_mode.stderr
    );
}
