//! `sluice env …`, `refresh --template` and sharded refreshes end to end: a source and a target
//! throwaway cluster, the real binary.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

use crate::refresh::{Env, PASSWORD, SHOP, SHOP_SUBSET};
use crate::support::pg::PgCluster;
use crate::support::sluice_bin;

/// A fixed "now" for the clock sluice reads from `SLUICE_NOW`.
const NOW: u64 = 1_900_000_000;

fn at(offset: u64) -> String {
    (NOW + offset).to_string()
}

/// Per table of schema "Shop": a digest of every row, in a stable order.
fn digests(pg: &PgCluster, db: &str) -> BTreeMap<String, String> {
    let tables = pg.psql(
        db,
        "select string_agg(format('%I.%I', schemaname, tablename), ' ' order by tablename)
           from pg_tables where schemaname = 'Shop'",
    );
    tables
        .split_whitespace()
        .map(|t| {
            let d = pg.psql(
                db,
                &format!(
                    "select count(*) || ':' || md5(coalesce(string_agg(x::text, '|' order by x::text), '')) from {t} x"
                ),
            );
            (t.to_string(), d)
        })
        .collect()
}

fn databases(pg: &PgCluster) -> String {
    pg.psql(
        "postgres",
        "select string_agg(datname, ',' order by datname) from pg_database where datname not in ('postgres', 'template0', 'template1')",
    )
}

#[test]
fn env_up_list_down_and_gc_end_to_end_with_template_clones_equal_to_streams() {
    let env = Env::new(SHOP, SHOP_SUBSET);
    let now = at(0);
    let clock = [("SLUICE_NOW", now.as_str()), ("SLUICE_OWNER", "alice")];

    // No template yet: `up` streams the plan (subset and masking) and says so.
    let up = env.sluice_with(
        &clock,
        &["env", "up", "pr-1", "--plan", "nightly", "--ttl", "2h"],
    );
    assert_eq!(up.code, 0, "{}", up.stderr);
    assert!(
        up.stdout
            .contains("environment `pr-1` streamed from plan `nightly`"),
        "{}",
        up.stdout
    );
    assert!(
        up.stdout.contains(&format!(
            "url       postgresql://postgres:*****@127.0.0.1:{}/pr-1",
            env.dst.port()
        )),
        "{}",
        up.stdout
    );
    assert!(up.stdout.contains("expires   in 2h00m"), "{}", up.stdout);
    let streamed = digests(&env.dst, "pr-1");
    assert!(streamed.len() >= 10, "{streamed:?}");
    let customers = &streamed["\"Shop\".customers"];
    assert!(
        !customers.starts_with("0:"),
        "the subset moved no customers"
    );
    let all_customers = env
        .src
        .psql("app", "select count(*) from \"Shop\".customers");
    assert!(
        !customers.starts_with(&format!("{all_customers}:")),
        "a subset, not the whole table: {customers}"
    );
    // Masked: no source e-mail is in the environment.
    let leaked = env.dst.psql(
        "pr-1",
        "select count(*) from \"Shop\".customers where email like '%@shop.example'",
    );
    assert_eq!(leaked, "0");

    // A template, then `up` clones it and says so; the clone equals the streamed environment.
    let tpl = env.sluice_with(&clock, &["refresh", "nightly", "--template"]);
    assert_eq!(tpl.code, 0, "{}", tpl.stderr);
    assert!(
        tpl.stdout.contains("refreshed `staging_template`"),
        "{}",
        tpl.stdout
    );
    assert_eq!(
        env.dst.psql(
            "postgres",
            "select datallowconn from pg_database where datname = 'staging_template'"
        ),
        "f",
        "a template takes no sessions, so clones never wait"
    );
    // (Not through `env.sluice`, which fails on a password in the output: here it is wanted.)
    let vars = env.vars();
    let mut set: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    set.extend_from_slice(&clock);
    let up2 = crate::support::sluice_env(
        env.dir.path(),
        &set,
        &[],
        &[
            "env",
            "up",
            "pr-2",
            "--plan",
            "nightly",
            "--ttl",
            "5h",
            "--show-secrets",
        ],
        None,
    );
    assert_eq!(up2.code, 0, "{}", up2.stderr);
    assert!(
        up2.stdout
            .contains("environment `pr-2` cloned from template `staging_template`"),
        "{}",
        up2.stdout
    );
    assert!(
        up2.stdout.contains(&format!(
            "postgres:{PASSWORD}@127.0.0.1:{}/pr-2",
            env.dst.port()
        )),
        "--show-secrets prints the password: {}",
        up2.stdout
    );
    assert_eq!(digests(&env.dst, "pr-2"), streamed);
    // Staging itself was never touched by any of it.
    assert_eq!(env.dst.psql("staging", "select what from marker"), "before");

    // List: both environments and the template, with owner, age and expiry.
    let later = at(3600);
    let list = env.sluice_with(
        &[("SLUICE_NOW", later.as_str())],
        &["env", "list", "--json"],
    );
    assert_eq!(list.code, 0, "{}", list.stderr);
    let listed: serde_json::Value = serde_json::from_str(&list.stdout).unwrap();
    let by_name: BTreeMap<&str, &serde_json::Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["name"].as_str().unwrap(), &l["mark"]))
        .collect();
    assert_eq!(
        by_name.keys().copied().collect::<Vec<_>>(),
        ["pr-1", "pr-2", "staging_template"]
    );
    assert_eq!(by_name["pr-1"]["owner"], "alice");
    assert_eq!(by_name["pr-1"]["plan"], "nightly");
    assert_eq!(by_name["pr-1"]["at"], NOW);
    assert_eq!(by_name["pr-1"]["expires"], NOW + 7200);
    assert_eq!(by_name["pr-1"]["via"], "stream");
    assert_eq!(by_name["pr-2"]["via"], "template");
    assert_eq!(by_name["staging_template"]["role"], "template");
    let text = env.sluice_with(&[("SLUICE_NOW", later.as_str())], &["env", "list"]);
    let line = text
        .stdout
        .lines()
        .find(|l| l.starts_with("pr-1 "))
        .unwrap_or_default();
    assert!(
        line.contains(" env ") && line.contains("alice") && line.contains("in 1h00m"),
        "{}",
        text.stdout
    );

    // `up` on an existing environment refreshes it atomically: what was written there is gone,
    // nothing is left beside it.
    env.dst.psql(
        "pr-1",
        "create table scratch (x int); insert into scratch values (1)",
    );
    let again = env.sluice_with(
        &clock,
        &[
            "env", "up", "pr-1", "--plan", "nightly", "--from", "stream", "--ttl", "2h",
        ],
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(
        env.dst.psql(
            "pr-1",
            "select count(*) from pg_tables where tablename = 'scratch'"
        ),
        "0"
    );
    assert_eq!(digests(&env.dst, "pr-1"), streamed);
    assert_eq!(databases(&env.dst), "pr-1,pr-2,staging,staging_template");

    // Databases sluice did not make as environments are refused, and stay.
    env.dst.psql("postgres", "create database handmade");
    env.dst.psql(
        "handmade",
        "create table precious (x int); insert into precious values (42)",
    );
    for args in [
        vec!["env", "down", "handmade"],
        vec!["env", "up", "handmade", "--plan", "nightly"],
        vec!["env", "down", "staging"],
    ] {
        let refused = env.sluice_with(&clock, &args);
        assert_eq!(refused.code, 2, "{args:?}: {}", refused.stdout);
        assert!(
            refused
                .stderr
                .contains("sluice drops only the environments it made")
                || refused
                    .stderr
                    .contains("sluice replaces only its own databases")
                || refused.stderr.contains("not a name for an environment"),
            "{args:?}: {}",
            refused.stderr
        );
    }
    assert_eq!(env.dst.psql("handmade", "select x from precious"), "42");
    assert_eq!(env.dst.psql("staging", "select what from marker"), "before");
    let bad_ttl = env.sluice_with(
        &clock,
        &["env", "up", "pr-3", "--plan", "nightly", "--ttl", "soon"],
    );
    assert_eq!(bad_ttl.code, 2);
    assert!(
        bad_ttl.stderr.contains("--ttl: `soon` is not a duration"),
        "{}",
        bad_ttl.stderr
    );

    // gc at now + 3h: pr-1 (2h) has expired, pr-2 (5h) has not; the template never expires.
    let gc_time = at(3 * 3600);
    let dry = env.sluice_with(
        &[("SLUICE_NOW", gc_time.as_str())],
        &["env", "gc", "--dry-run"],
    );
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(dry.stdout.contains("would drop `pr-1`"), "{}", dry.stdout);
    assert!(!dry.stdout.contains("pr-2"), "{}", dry.stdout);
    assert!(databases(&env.dst).contains("pr-1"));
    let gc = env.sluice_with(&[("SLUICE_NOW", gc_time.as_str())], &["env", "gc"]);
    assert_eq!(gc.code, 0, "{}", gc.stderr);
    assert!(gc.stdout.contains("dropped `pr-1`"), "{}", gc.stdout);
    assert_eq!(
        databases(&env.dst),
        "handmade,pr-2,staging,staging_template"
    );

    let down = env.sluice_with(&clock, &["env", "down", "pr-2"]);
    assert_eq!(down.code, 0, "{}", down.stderr);
    assert_eq!(databases(&env.dst), "handmade,staging,staging_template");
    let gone = env.sluice_with(&clock, &["env", "down", "pr-2"]);
    assert_eq!(gone.code, 2);
    assert!(
        gone.stderr.contains("there is no environment `pr-2`"),
        "{}",
        gone.stderr
    );
}

#[test]
fn two_envs_up_at_once_do_not_interfere() {
    let env = Env::new(SHOP, SHOP_SUBSET);
    let a = env.spawn(&[
        "env", "up", "env-a", "--plan", "nightly", "--from", "stream",
    ]);
    let b = env.spawn(&[
        "env", "up", "env-b", "--plan", "nightly", "--from", "stream",
    ]);
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let da = digests(&env.dst, "env-a");
    assert!(!da["\"Shop\".orders"].starts_with("0:"));
    assert_eq!(da, digests(&env.dst, "env-b"));
    assert_eq!(databases(&env.dst), "env-a,env-b,staging");

    // Two clones of one template at once.
    let tpl = env.sluice(&["refresh", "nightly", "--template"]);
    assert_eq!(tpl.code, 0, "{}", tpl.stderr);
    let c = env.spawn(&[
        "env", "up", "env-c", "--plan", "nightly", "--from", "template",
    ]);
    let d = env.spawn(&[
        "env", "up", "env-d", "--plan", "nightly", "--from", "template",
    ]);
    for child in [c, d] {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(digests(&env.dst, "env-c"), da);
    assert_eq!(digests(&env.dst, "env-d"), da);

    // The next night's template replaces the last one (closed to connections as it is), and
    // clones keep working from it.
    let again = env.sluice(&["refresh", "nightly", "--template"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(
        databases(&env.dst),
        "env-a,env-b,env-c,env-d,staging,staging_template"
    );
    let e = env.sluice(&[
        "env", "up", "env-e", "--plan", "nightly", "--from", "template",
    ]);
    assert_eq!(e.code, 0, "{}", e.stderr);
    assert_eq!(digests(&env.dst, "env-e"), da);
}

/// Hold a snapshot with `sluice snapshot` (stdin kept open); returns the child and the ID.
fn hold(env: &Env) -> (std::process::Child, String) {
    let mut cmd = std::process::Command::new(sluice_bin());
    cmd.current_dir(env.dir.path())
        .args(["snapshot", "nightly"])
        .env("HOME", env.dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env.vars() {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let id = line.trim().to_string();
    assert!(
        id.len() > 5 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'),
        "not a snapshot id: {line:?}"
    );
    (child, id)
}

#[test]
fn shards_under_one_held_snapshot_load_what_one_run_loads() {
    let env = Env::new(SHOP, SHOP_SUBSET);
    let (mut holder, id) = hold(&env);
    // Written after the snapshot: no shard may see it.
    env.src.psql(
        "app",
        "insert into \"Shop\".customers (id, email, region, country) values (100001, 'late@shop.example', 'DE', 'DE')",
    );

    let single = env.sluice(&["refresh", "nightly", "--adopt", "--snapshot", &id]);
    assert_eq!(single.code, 0, "{}", single.stderr);
    let expected = digests(&env.dst, "staging");
    assert_eq!(
        env.dst.psql(
            "staging",
            "select count(*) from \"Shop\".customers where id = 100001"
        ),
        "0"
    );

    // Three shards at once; only the last to finish swaps.
    let shards: Vec<_> = (0..3)
        .map(|i| {
            let mut cmd = std::process::Command::new(sluice_bin());
            cmd.current_dir(env.dir.path())
                .args([
                    "refresh",
                    "nightly",
                    "--adopt",
                    "--shard",
                    &format!("{i}/3"),
                ])
                .env("HOME", env.dir.path())
                .env("SLUICE_SNAPSHOT", &id)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            for (k, v) in env.vars() {
                cmd.env(k, v);
            }
            cmd.spawn().unwrap()
        })
        .collect();
    let mut swapped = 0;
    for child in shards {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!stdout.contains(PASSWORD));
        if stdout.contains("refreshed `staging`") {
            swapped += 1;
        } else {
            assert!(
                stdout.contains("the last to finish builds indexes and swaps"),
                "{stdout}"
            );
        }
    }
    assert_eq!(swapped, 1, "exactly one shard swaps");
    assert_eq!(digests(&env.dst, "staging"), expected);
    assert_eq!(
        env.dst.psql(
            "staging",
            "select count(*) from pg_constraint where contype = 'f'"
        ),
        env.src.psql(
            "app",
            "select count(*) from pg_constraint where contype = 'f'"
        ),
        "post-data ran once, after every shard"
    );

    // A shard started again under the same snapshot abandons the load, fail-closed.
    let first = env.sluice(&[
        "refresh",
        "nightly",
        "--adopt",
        "--shard",
        "0/2",
        "--snapshot",
        &id,
    ]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let retry = env.sluice(&[
        "refresh",
        "nightly",
        "--adopt",
        "--shard",
        "0/2",
        "--snapshot",
        &id,
    ]);
    assert_eq!(retry.code, 3, "{}", retry.stdout);
    assert!(
        retry.stderr.contains("already started under snapshot"),
        "{}",
        retry.stderr
    );
    assert_eq!(databases(&env.dst), "staging,staging_prev");
    assert_eq!(digests(&env.dst, "staging"), expected);

    // Released: the ID no longer works, and the error says what to do.
    holder.stdin.take().unwrap().write_all(b"").unwrap();
    assert!(holder.wait().unwrap().success());
    let stale = env.sluice(&["refresh", "nightly", "--adopt", "--snapshot", &id]);
    assert_eq!(stale.code, 3, "{}", stale.stdout);
    assert!(
        stale.stderr.contains("is not held on the source"),
        "{}",
        stale.stderr
    );

    // With a command: the snapshot is held while it runs, passed as SLUICE_SNAPSHOT, and its
    // exit code is sluice's.
    let run = env.sluice(&[
        "snapshot",
        "nightly",
        "--",
        "sh",
        "-c",
        "test -n \"$SLUICE_SNAPSHOT\" && echo \"held $SLUICE_SNAPSHOT\"; exit 7",
    ]);
    assert_eq!(run.code, 7, "{}", run.stderr);
    assert!(run.stdout.starts_with("held "), "{}", run.stdout);
}
