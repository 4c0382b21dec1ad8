//! Never destroy what is not yours: a refresh (and `env up`/`down`/`gc`) asks the servers
//! whether the target is the source, however the URLs spell them; a database sluice did not
//! make is replaced only with `--adopt` and never dropped; weak masking keys, role timeouts,
//! Unix sockets and too-short columns are handled before anything is lost.

use crate::refresh::{BIG, BIG_MASKING, Env, KEY, PASSWORD};
use crate::support::pg::PgCluster;

const SMALL: &str = "create table t (id int primary key, email text);
  insert into t select i, 'u' || i || '@corp.example' from generate_series(1, 500) i;";
const SMALL_MASKING: &str = "      columns:\n        t.id: keep";

/// The source database `app` on `pg` holds its 500 unmasked rows and nothing sits beside it.
fn source_intact(pg: &PgCluster) {
    assert_eq!(
        pg.psql(
            "app",
            "select count(*) from t where email like '%@corp.example'"
        ),
        "500"
    );
    assert_eq!(
        pg.psql(
            "postgres",
            "select string_agg(datname, ',' order by datname) from pg_database where datname like 'app%'"
        ),
        "app"
    );
}

fn databases(pg: &PgCluster, like: &str) -> String {
    pg.psql(
        "postgres",
        &format!(
            "select coalesce(string_agg(datname, ',' order by datname), '') from pg_database where datname like '{like}'"
        ),
    )
}

/// Append a plan `beside` to the Env's sluice.yaml: like `nightly`, with `same_server: true`.
fn add_same_server_plan(env: &Env) {
    let path = env.dir.path().join("sluice.yaml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(
        "  beside:
    source: { env: prod, url: 'secret:DATABASE_URL' }
    target: { env: staging, url: 'secret:DATABASE_URL' }
    same_server: true
    masking:
      key: 'secret:MASKING_KEY'
      columns:
        t.id: keep
",
    );
    std::fs::write(&path, text).unwrap();
}

#[test]
fn a_target_that_is_the_source_is_refused_however_the_url_spells_it() {
    let env = Env::new(SMALL, SMALL_MASKING);
    let port = env.src.port();
    let sock = env.src.socket_dir().display().to_string();
    let spellings = [
        format!("postgresql://postgres:{PASSWORD}@localhost:{port}/app"),
        format!("postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/app"),
        format!("postgresql://postgres:{PASSWORD}@/app?host={sock}&port={port}"),
        format!(
            "host=localhost hostaddr=127.0.0.1 port={port} user=postgres password={PASSWORD} dbname=app"
        ),
    ];
    for target in &spellings {
        let run = env.sluice_with(
            &[("STAGING_DATABASE_URL", target.as_str())],
            &["refresh", "nightly", "--adopt"],
        );
        assert_eq!(run.code, 2, "{target}: {}\n{}", run.stdout, run.stderr);
        assert!(
            run.stderr.contains("holds the source database `app`"),
            "{}",
            run.stderr
        );
        source_intact(&env.src);
    }
    // The source spelled as a socket, the target as a host name: the same database still.
    let run = env.sluice_with(
        &[
            (
                "PROD_DATABASE_URL",
                format!("postgresql://postgres:{PASSWORD}@/app?host={sock}&port={port}").as_str(),
            ),
            (
                "STAGING_DATABASE_URL",
                format!("postgresql://postgres:{PASSWORD}@localhost:{port}/app").as_str(),
            ),
        ],
        &["refresh", "nightly", "--adopt"],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    source_intact(&env.src);

    // Another database of the source's server: refused unless the plan says so.
    let other = format!("postgresql://postgres:{PASSWORD}@localhost:{port}/copy");
    let run = env.sluice_with(
        &[("STAGING_DATABASE_URL", other.as_str())],
        &["refresh", "nightly"],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("same_server: true"), "{}", run.stderr);
    assert_eq!(databases(&env.src, "copy%"), "");
    add_same_server_plan(&env);
    let run = env.sluice_with(
        &[("STAGING_DATABASE_URL", other.as_str())],
        &["refresh", "beside"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        env.src.psql(
            "copy",
            "select count(*) from t where email not like '%@corp.example'"
        ),
        "500"
    );
    source_intact(&env.src);
    // Even with `same_server: true`, the source database itself is refused.
    let run = env.sluice_with(
        &[(
            "STAGING_DATABASE_URL",
            format!("postgresql://postgres:{PASSWORD}@/app?host={sock}&port={port}").as_str(),
        )],
        &["refresh", "beside", "--adopt"],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    source_intact(&env.src);
}

#[test]
fn a_standby_source_never_replaces_its_primary() {
    let env = Env::new(SMALL, SMALL_MASKING);
    let standby = PgCluster::standby_of(&env.src);
    let from_standby = format!(
        "postgresql://postgres:{PASSWORD}@127.0.0.1:{}/app",
        standby.port()
    );
    for (target, why) in [
        (
            format!(
                "postgresql://postgres:{PASSWORD}@localhost:{}/app",
                env.src.port()
            ),
            "holds the source database `app`",
        ),
        (
            format!(
                "postgresql://postgres:{PASSWORD}@localhost:{}/copy",
                env.src.port()
            ),
            "same_server: true",
        ),
    ] {
        let run = env.sluice_with(
            &[
                ("PROD_DATABASE_URL", from_standby.as_str()),
                ("STAGING_DATABASE_URL", target.as_str()),
            ],
            &["refresh", "nightly", "--adopt"],
        );
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert!(run.stderr.contains(why), "{}", run.stderr);
        source_intact(&env.src);
    }
}

#[test]
fn a_database_sluice_did_not_make_is_replaced_only_when_adopted_and_never_dropped() {
    let env = Env::new(SMALL, SMALL_MASKING);
    let comment = |db: &str| {
        env.dst.psql(
            "postgres",
            &format!(
                "select coalesce(shobj_description(oid, 'pg_database'), '') from pg_database where datname = '{db}'"
            ),
        )
    };
    let run = env.sluice(&["refresh", "nightly"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--adopt"), "{}", run.stderr);
    assert_eq!(databases(&env.dst, "staging%"), "staging");
    assert_eq!(env.dst.psql("staging", "select what from marker"), "before");

    let run = env.sluice(&["refresh", "nightly", "--adopt"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(databases(&env.dst, "staging%"), "staging,staging_prev");
    assert_eq!(
        env.dst.psql("staging_prev", "select what from marker"),
        "before"
    );
    assert_eq!(
        comment("staging_prev"),
        "",
        "an adopted database is never marked"
    );
    assert!(comment("staging").starts_with("sluice:"));

    // Two more nights: the adopted original stays, untouched, and the runs go on.
    for _ in 0..2 {
        let run = env.sluice(&["refresh", "nightly"]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(databases(&env.dst, "staging%"), "staging,staging_prev");
        assert_eq!(
            env.dst.psql("staging_prev", "select what from marker"),
            "before"
        );
        assert_eq!(comment("staging_prev"), "");
    }
    // Dropped by hand, the next night keeps sluice's own copy there.
    env.dst.psql("postgres", "drop database staging_prev");
    let run = env.sluice(&["refresh", "nightly"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(comment("staging_prev").starts_with("sluice:"));
}

#[test]
fn weak_masking_keys_are_refused_without_showing_them() {
    let env = Env::new(SMALL, SMALL_MASKING);
    for weak in ["", "k", "0123456789", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"] {
        let run = env.sluice_with(
            &[("PROD_MASKING_KEY", weak)],
            &["refresh", "nightly", "--adopt"],
        );
        assert_eq!(run.code, 2, "{weak:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("masking key is too weak")
                && run.stderr.contains("openssl rand -base64 32"),
            "{}",
            run.stderr
        );
        if weak.len() > 3 {
            assert!(!run.stderr.contains(weak), "{}", run.stderr);
        }
        assert_eq!(databases(&env.dst, "staging%"), "staging");
        assert_eq!(env.dst.psql("staging", "select what from marker"), "before");
    }
    assert!(KEY.len() >= 16);
}

#[test]
fn timeouts_set_on_the_source_role_do_not_break_the_copy() {
    let env = Env::new(BIG, BIG_MASKING);
    env.src.psql(
        "postgres",
        "create role reader login superuser;
         alter role reader set statement_timeout = '20ms';
         alter role reader set idle_in_transaction_session_timeout = '20ms';",
    );
    let reader = format!(
        "postgresql://reader:{PASSWORD}@127.0.0.1:{}/app",
        env.src.port()
    );
    let run = env.sluice_with(
        &[("PROD_DATABASE_URL", reader.as_str())],
        &["refresh", "nightly", "--adopt", "--jobs", "1"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        env.dst.psql("staging", "select count(*) from big"),
        "400000"
    );
}

#[test]
fn a_session_the_server_ends_is_reported_with_its_reason() {
    // The snapshot's session sits idle in its transaction while rows stream; ended by the
    // server then, it fails only when sluice next uses it (for the sequence), where the query
    // itself sees nothing but a closed connection. The error must still say why.
    let env = Env::new(
        &format!(
            "{BIG}; create table counter (id serial primary key); insert into counter default values;"
        ),
        &format!("{BIG_MASKING}\n        counter.id: keep"),
    );
    let mut child = env.spawn(&["refresh", "nightly", "--adopt", "--jobs", "1"]);
    env.wait_for_copy(&mut child);
    let ended = env.src.psql(
        "postgres",
        "select count(pg_terminate_backend(pid)) from (select pid from pg_stat_activity
           where datname = 'app' and state = 'idle in transaction' order by backend_start limit 1) s",
    );
    assert_eq!(ended, "1");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("the server ended the session")
            && stderr.contains("terminating connection due to administrator command")
            && stderr.contains("57P01"),
        "the server's reason is named: {stderr}"
    );
    assert_eq!(env.dst.psql("staging", "select what from marker"), "before");
    assert_eq!(databases(&env.dst, "staging%"), "staging");
}

#[test]
fn a_unix_socket_url_works_with_the_default_sslmode() {
    let env = Env::new(SMALL, SMALL_MASKING);
    let source = format!(
        "postgresql://postgres:{PASSWORD}@/app?host={}&port={}",
        env.src.socket_dir().display(),
        env.src.port()
    );
    let target = format!(
        "host={} port={} user=postgres password={PASSWORD} dbname=staging",
        env.dst.socket_dir().display(),
        env.dst.port()
    );
    let run = env.sluice_with(
        &[
            ("PROD_DATABASE_URL", source.as_str()),
            ("STAGING_DATABASE_URL", target.as_str()),
        ],
        &["refresh", "nightly", "--adopt"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        env.dst.psql(
            "staging",
            "select count(*) from t where email not like '%@corp.example'"
        ),
        "500"
    );
}

#[test]
fn a_transform_that_cannot_fit_the_column_is_refused_at_plan_time() {
    let env = Env::new(
        "create table people (id int primary key, email varchar(5));
         insert into people values (1, 'a@b.c');",
        "      columns:\n        people.id: keep\n        people.email: email",
    );
    let run = env.sluice(&["refresh", "nightly", "--adopt"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("people.email") && run.stderr.contains("at least 13"),
        "{}",
        run.stderr
    );
    assert_eq!(databases(&env.dst, "staging%"), "staging");
}

/// Start `env up NAME`, wait until its rows stream into `NAME_sluice_new`, then SIGKILL it.
fn kill_env_up(env: &Env, name: &str) {
    let mut child = env.spawn(&["env", "up", name, "--plan", "nightly", "--from", "stream"]);
    env.wait_for_copy_into(&format!("{name}_sluice_new"), &mut child);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        databases(&env.dst, &format!("{name}%")),
        format!("{name}_sluice_new")
    );
}

#[test]
fn what_an_interrupted_env_up_leaves_is_removed_by_down_and_by_gc() {
    let env = Env::new(BIG, BIG_MASKING);
    kill_env_up(&env, "pr-7");
    let down = env.sluice(&["env", "down", "pr-7"]);
    assert_eq!(down.code, 0, "{}", down.stderr);
    assert_eq!(databases(&env.dst, "pr-7%"), "");

    kill_env_up(&env, "pr-8");
    let dry = env.sluice(&["env", "gc", "--dry-run"]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(
        dry.stdout.contains("would remove `pr-8_sluice_new`"),
        "{}",
        dry.stdout
    );
    assert_eq!(databases(&env.dst, "pr-8%"), "pr-8_sluice_new");
    let gc = env.sluice(&["env", "gc"]);
    assert_eq!(gc.code, 0, "{}", gc.stderr);
    assert!(
        gc.stdout.contains("removed `pr-8_sluice_new`"),
        "{}",
        gc.stdout
    );
    assert_eq!(databases(&env.dst, "pr-8%"), "");
    // The hand-made staging database is never touched.
    assert_eq!(env.dst.psql("staging", "select what from marker"), "before");
}

#[test]
fn env_up_template_and_gc_never_touch_the_source_server_unasked() {
    let env = Env::new(SMALL, SMALL_MASKING);
    let same = format!(
        "postgresql://postgres:{PASSWORD}@localhost:{}/staging",
        env.src.port()
    );
    let vars = [("STAGING_DATABASE_URL", same.as_str())];
    let up = env.sluice_with(&vars, &["env", "up", "pr-1", "--plan", "nightly"]);
    assert_eq!(up.code, 2, "{}", up.stderr);
    assert!(up.stderr.contains("same_server: true"), "{}", up.stderr);
    let tpl = env.sluice_with(&vars, &["refresh", "nightly", "--template"]);
    assert_eq!(tpl.code, 2, "{}", tpl.stderr);
    assert_eq!(databases(&env.src, "pr-1%"), "");
    assert_eq!(databases(&env.src, "staging%"), "");

    // A source database that carries an expired environment's mark (a hostile or mistaken
    // comment) is never collected.
    env.src.psql("postgres", "create database \"pr-9\"");
    env.src.psql("pr-9", SMALL);
    env.src.psql(
        "postgres",
        r#"comment on database "pr-9" is 'sluice:{"role":"env","plan":"nightly","at":1,"expires":2}'"#,
    );
    let source = format!(
        "postgresql://postgres:{PASSWORD}@127.0.0.1:{}/pr-9",
        env.src.port()
    );
    let gc = env.sluice_with(
        &[
            ("PROD_DATABASE_URL", source.as_str()),
            ("STAGING_DATABASE_URL", same.as_str()),
        ],
        &["env", "gc"],
    );
    assert_eq!(gc.code, 2, "{}\n{}", gc.stdout, gc.stderr);
    assert!(
        gc.stderr.contains("source database `pr-9`"),
        "{}",
        gc.stderr
    );
    assert_eq!(env.src.psql("pr-9", "select count(*) from t"), "500");
}
