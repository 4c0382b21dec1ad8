//! A refresh's test bed: a source and a target throwaway cluster, a sluice.yaml with plan
//! `nightly`, the real binary run against them, and the check that no sentinel secret (the
//! URLs' password, the masking key) ever reaches output or files.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::pg::PgCluster;
use crate::support::{Run, sluice_bin, sluice_env, write};

pub(crate) const PASSWORD: &str = "Sentinel-DSN-Password-7f3a91";
pub(crate) const KEY: &str = "Sentinel-Masking-Key-c0ffee42";

pub(crate) struct Env {
    pub(crate) src: PgCluster,
    pub(crate) dst: PgCluster,
    pub(crate) dir: tempfile::TempDir,
}

pub(crate) fn url(pg: &PgCluster, db: &str) -> String {
    // Trust authentication ignores the password; it is there to prove it never leaks.
    format!(
        "postgresql://postgres:{PASSWORD}@127.0.0.1:{}/{db}",
        pg.port()
    )
}

impl Env {
    /// Two clusters: `app` on the source with `schema`, `staging` on the target holding one
    /// marker row; sluice.yaml with plan `nightly` and `masking` (YAML, indented 6).
    pub(crate) fn new(schema: &str, masking: &str) -> Env {
        let src = PgCluster::start();
        let dst = PgCluster::start();
        src.psql("postgres", "create database app");
        src.psql("app", schema);
        dst.psql("postgres", "create database staging");
        dst.psql(
            "staging",
            "create table marker (what text); insert into marker values ('before')",
        );
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "sluice.yaml",
            &format!(
                "version: 1
environments:
  prod: {{ protected: true, secrets: {{ provider: env, prefix: PROD_ }} }}
  staging: {{ secrets: {{ provider: env, prefix: STAGING_ }} }}
secrets:
  DATABASE_URL:
    prod: env://DATABASE_URL
    staging: env://DATABASE_URL
  MASKING_KEY:
    prod: env://MASKING_KEY
refresh:
  nightly:
    source: {{ env: prod, url: 'secret:DATABASE_URL' }}
    target: {{ env: staging, url: 'secret:DATABASE_URL' }}
    jobs: 2
    masking:
      key: 'secret:MASKING_KEY'
{masking}
"
            ),
        );
        Env { src, dst, dir }
    }

    pub(crate) fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PROD_DATABASE_URL", url(&self.src, "app")),
            ("STAGING_DATABASE_URL", url(&self.dst, "staging")),
            ("PROD_MASKING_KEY", KEY.to_string()),
        ]
    }

    pub(crate) fn sluice(&self, args: &[&str]) -> Run {
        self.sluice_with(&[], args)
    }

    /// Like [`Env::sluice`], with more variables set.
    pub(crate) fn sluice_with(&self, extra: &[(&str, &str)], args: &[&str]) -> Run {
        let vars = self.vars();
        let mut set: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        set.extend_from_slice(extra);
        let run = sluice_env(self.dir.path(), &set, &[], args, None);
        assert_no_sentinel(&run, self.dir.path());
        run
    }

    pub(crate) fn spawn(&self, args: &[&str]) -> std::process::Child {
        let mut cmd = std::process::Command::new(sluice_bin());
        cmd.current_dir(self.dir.path())
            .args(args)
            .env("HOME", self.dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in self.vars() {
            cmd.env(k, v);
        }
        cmd.spawn().unwrap()
    }

    pub(crate) fn databases(&self) -> String {
        self.dst.psql(
            "postgres",
            "select string_agg(datname, ',' order by datname) from pg_database where datname like 'staging%'",
        )
    }

    /// Wait until rows are streaming into the loading database.
    pub(crate) fn wait_for_copy(&self, child: &mut std::process::Child) {
        self.wait_for_copy_into("staging_sluice_new", child);
    }

    /// Wait until rows are streaming into database `db` of the target.
    pub(crate) fn wait_for_copy_into(&self, db: &str, child: &mut std::process::Child) {
        let started = Instant::now();
        loop {
            let n = self.dst.psql(
                "postgres",
                &format!(
                    "select count(*) from pg_stat_activity where datname = '{db}' and query ilike 'copy%'"
                ),
            );
            if n != "0" {
                return;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("sluice ended before the load was under way: {status}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the load never started"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

pub(crate) fn assert_no_sentinel(run: &Run, dir: &Path) {
    for s in [PASSWORD, KEY] {
        assert!(!run.stdout.contains(s), "secret in stdout:\n{}", run.stdout);
        assert!(!run.stderr.contains(s), "secret in stderr:\n{}", run.stderr);
    }
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let text = std::fs::read(entry.path()).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        if entry.file_name() != "sluice.yaml" {
            assert!(!text.contains(PASSWORD) && !text.contains(KEY));
        }
    }
}
