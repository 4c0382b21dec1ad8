//! `sluice refresh` under faults: signals, kills at every step of the swap and at random moments,
//! a second refresh at once, a source that keeps writing or stops, and a storm of connections.
//!
//! What this module proves, each time from what the databases hold rather than from messages:
//!
//! - SIGTERM and SIGINT cancel the refresh, drop the unfinished `staging_sluice_new` and exit
//!   143 / 130 (a second SIGINT too); `staging` is untouched and open.
//! - A SIGKILL at each named step of the swap (`SLUICE_FAULT`) leaves `staging` present with the
//!   old or the new copy; the next run completes a swap whose copy was finished, never discards
//!   it, and reopens `staging`.
//! - SIGKILLs at pseudo-random moments (fixed seed) never leave `staging` missing, holding a
//!   partial copy or an older copy than before, or closed to connections without a finished
//!   copy waiting to be swapped in; a normal run afterwards succeeds and leaves no leftovers.
//! - A second refresh into the same target is refused (exit 3) without harming the first.
//! - A source written to by pgbench during the refresh gives a consistent copy: the TPC-B
//!   balances agree in `staging`, and the copy is a snapshot taken during the writes.
//! - The source server stopping mid-copy fails the refresh (exit 3) and leaves `staging` as it
//!   was.
//! - Clients connecting to `staging` without pause do not stop the swap.
//!
//! Every test's first refresh passes `--adopt`: `Env::new` makes `staging` by hand. The adopted
//! original is kept, unmarked, as `staging_prev` (sluice never drops it); tests that compare
//! `staging_prev` with an earlier copy drop it first.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::refresh::{Env, assert_no_sentinel};
use crate::support::pg::PgCluster;
use crate::support::{Rng, Run, run_ok};

/// Enough rows that a copy on one connection lasts long enough to be caught and signalled.
const BIG: &str = "create table generation (n int primary key);
  insert into generation values (1);
  create table big (id int primary key, email text, note text);
  insert into big select i, 'user' || i || '@corp.example', repeat('n', 200) from generate_series(1, 300000) i;";
const BIG_ROWS: &str = "300000";
const BIG_MASKING: &str = "      columns:\n        public.generation.*: keep\n        big.id: keep\n        big.note: keep";

/// A quick copy, for tests that refresh many times. `generation.n` tells copies apart: the
/// tests bump it on the source before each refresh.
const SMALL: &str = "create table generation (n int primary key);
  insert into generation values (1);
  create table items (id int primary key, label text);
  insert into items select i, 'item ' || i from generate_series(1, 50000) i;";
const SMALL_ROWS: &str = "50000";
const SMALL_MASKING: &str =
    "      columns:\n        public.generation.*: keep\n        public.items.*: keep";

/// pgbench's four tables, every column kept (the balances must survive to be compared).
const PGBENCH_MASKING: &str = "      columns:
        public.pgbench_accounts.*: keep
        public.pgbench_branches.*: keep
        public.pgbench_tellers.*: keep
        public.pgbench_history.*: keep";

/// The databases named `staging…` on the target, comma-separated.
fn databases(env: &Env) -> String {
    env.dst.psql(
        "postgres",
        "select string_agg(datname, ',' order by datname) from pg_database where datname like 'staging%'",
    )
}

/// Whether database `db` on the target accepts connections; `None` when it does not exist.
fn open(env: &Env, db: &str) -> Option<bool> {
    match env
        .dst
        .psql(
            "postgres",
            &format!("select datallowconn from pg_database where datname = '{db}'"),
        )
        .as_str()
    {
        "" => None,
        "t" => Some(true),
        "f" => Some(false),
        other => panic!("datallowconn of {db}: {other}"),
    }
}

/// Whether `staging_sluice_new` exists marked as a finished copy waiting to be swapped in.
fn finished_copy_waiting(env: &Env) -> bool {
    env.dst.psql(
        "postgres",
        r#"select count(*) from pg_database where datname = 'staging_sluice_new' and shobj_description(oid, 'pg_database') like '%"ready":%'"#,
    ) == "1"
}

/// `generation.n` in `db`: which source state a copy was taken from.
fn generation(pg: &PgCluster, db: &str) -> i64 {
    let n = pg.psql(db, "select n from generation");
    n.parse()
        .unwrap_or_else(|_| panic!("generation in {db}: {n:?}"))
}

/// The first refresh of a test: replaces the hand-made `staging` (`--adopt`), then drops the
/// adopted original (`staging_prev`, unmarked) so that later refreshes may run.
fn adopt_and_drop_the_original(env: &Env) -> Duration {
    let started = Instant::now();
    let run = env.sluice(&["refresh", "nightly", "--adopt"]);
    let took = started.elapsed();
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(
        env.dst.psql("staging_prev", "select what from marker"),
        "before",
        "the adopted original is kept as staging_prev"
    );
    env.dst
        .psql("postgres", "drop database staging_prev with (force)");
    took
}

/// Send signal `name` (`TERM`, `INT`) to a process this test started.
fn signal(child: &Child, name: &str) -> bool {
    Command::new("kill")
        .args(["-s", name, &child.id().to_string()])
        .status()
        .is_ok_and(|s| s.success())
}

/// Wait for a spawned sluice to exit (reading its output meanwhile), at most `limit`.
fn wait_run(mut child: Child, limit: Duration) -> Run {
    fn drain(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<String> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    }
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for sluice") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "sluice did not exit within {limit:?}; stderr:\n{}",
                stderr.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// Wait until no session but psql's own is connected to `db` on `pg`.
fn wait_until_no_sessions(pg: &PgCluster, db: &str) {
    let started = Instant::now();
    loop {
        let n = pg.psql(
            "postgres",
            &format!(
                "select count(*) from pg_stat_activity where datname = '{db}' and pid <> pg_backend_pid()"
            ),
        );
        if n == "0" {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{n} session(s) of the interrupted refresh still on {db}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A PostgreSQL client program (pgbench, psql): beside initdb on PATH, else the newest under
/// /usr/lib/postgresql (the programs in /usr/bin may be Debian's wrappers), else by name.
fn pg_tool(tool: &str) -> PathBuf {
    if let Ok(path) = std::env::var("PATH") {
        for d in std::env::split_paths(&path) {
            if d.join("initdb").is_file() && d.join(tool).is_file() {
                return d.join(tool);
            }
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dir| {
            dir.filter_map(|e| e.ok().map(|e| e.path().join("bin").join(tool)))
                .filter(|p| p.is_file())
                .collect::<Vec<PathBuf>>()
        })
        .unwrap_or_default();
    found.sort();
    found.pop().unwrap_or_else(|| PathBuf::from(tool))
}

/// pgbench against database `app` of `pg`, with `args` before the connection options.
fn pgbench(pg: &PgCluster, args: &[&str]) -> Command {
    let mut cmd = Command::new(pg_tool("pgbench"));
    cmd.args(args)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &pg.port().to_string(),
            "-U",
            "postgres",
            "app",
        ])
        .stdin(Stdio::null());
    cmd
}

/// A child process killed and reaped when dropped, also when a test fails.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Threads connecting to `staging` on the target without pause, through psql, ignoring
/// failures: one with quick queries, one holding each session for a while.
struct Storm {
    stop: Arc<AtomicBool>,
    connected: Arc<AtomicUsize>,
    saw_a_copy: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<()>>,
}

impl Storm {
    fn start(port: u16) -> Storm {
        let stop = Arc::new(AtomicBool::new(false));
        let connected = Arc::new(AtomicUsize::new(0));
        let saw_a_copy = Arc::new(AtomicUsize::new(0));
        let psql = pg_tool("psql");
        let url = format!("postgresql://postgres@127.0.0.1:{port}/staging?connect_timeout=2");
        let mut threads = Vec::new();
        for sql in [
            // "1" once staging is one of sluice's copies (the hand-made one has no `items`).
            "select count(*) from pg_class where relname = 'items'",
            "select count(*) from pg_class, pg_sleep(0.3) where relname = 'items'",
        ] {
            let (stop, connected, saw_a_copy) =
                (stop.clone(), connected.clone(), saw_a_copy.clone());
            let (psql, url) = (psql.clone(), url.clone());
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let out = Command::new(&psql)
                        .args(["-X", "-q", "-A", "-t", "-d", &url, "-c", sql])
                        .stdin(Stdio::null())
                        .output();
                    if let Ok(o) = out
                        && o.status.success()
                    {
                        connected.fetch_add(1, Ordering::SeqCst);
                        if String::from_utf8_lossy(&o.stdout).trim() == "1" {
                            saw_a_copy.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            }));
        }
        Storm {
            stop,
            connected,
            saw_a_copy,
            threads,
        }
    }

    /// Stop the threads: how many sessions connected, and how many of them found a copy.
    fn stop(mut self) -> (usize, usize) {
        self.halt();
        (
            self.connected.load(Ordering::SeqCst),
            self.saw_a_copy.load(Ordering::SeqCst),
        )
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Storm {
    fn drop(&mut self) {
        self.halt();
    }
}

#[test]
fn sigterm_drops_the_unfinished_copy_and_exits_143() {
    let env = Env::new(BIG, BIG_MASKING);
    let mut child = env.spawn(&["refresh", "nightly", "--adopt", "--jobs", "1"]);
    env.wait_for_copy(&mut child);
    assert!(signal(&child, "TERM"), "cannot send SIGTERM to sluice");
    let run = wait_run(child, Duration::from_secs(60));
    assert_eq!(run.code, 143, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("dropped the unfinished database"),
        "{}",
        run.stderr
    );
    assert_no_sentinel(&run, env.dir.path());
    // The half-loaded database is gone, staging is as it was and open, and nothing of the
    // cancelled run still reads the source.
    assert_eq!(databases(&env), "staging");
    assert_eq!(env.dst.psql("staging", "select what from marker"), "before");
    assert_eq!(open(&env, "staging"), Some(true));
    wait_until_no_sessions(&env.src, "app");

    let again = env.sluice(&["refresh", "nightly", "--adopt"]);
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    assert!(
        !again.stdout.contains("removed `staging_sluice_new`"),
        "SIGTERM had dropped it already: {}",
        again.stdout
    );
    assert_eq!(databases(&env), "staging,staging_prev");
    assert_eq!(
        env.dst.psql("staging", "select count(*) from big"),
        BIG_ROWS
    );
}

#[test]
fn sigint_twice_exits_130_and_the_next_run_cleans_up() {
    let env = Env::new(BIG, BIG_MASKING);
    let mut child = env.spawn(&["refresh", "nightly", "--adopt", "--jobs", "1"]);
    env.wait_for_copy(&mut child);
    assert!(signal(&child, "INT"), "cannot send SIGINT to sluice");
    // The impatient second Ctrl-C: exits at once, or finds the clean-up already done.
    std::thread::sleep(Duration::from_millis(30));
    let _ = signal(&child, "INT");
    let run = wait_run(child, Duration::from_secs(60));
    assert_eq!(run.code, 130, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("SIGINT"), "{}", run.stderr);
    assert_no_sentinel(&run, env.dir.path());
    assert_eq!(env.dst.psql("staging", "select what from marker"), "before");
    assert_eq!(open(&env, "staging"), Some(true));
    let left = databases(&env);
    assert!(
        left == "staging" || left == "staging,staging_sluice_new",
        "{left}"
    );

    next_run_adopts_and_copies_all(&env);
}

#[test]
fn a_kill_at_each_step_of_the_swap_leaves_old_or_new_and_the_next_run_completes() {
    let env = Env::new(SMALL, SMALL_MASKING);
    adopt_and_drop_the_original(&env);
    for point in ["swap-ready", "swap-closed", "swap-ended", "swap-renamed"] {
        let old = generation(&env.dst, "staging");
        env.src.psql("app", "update generation set n = n + 1");
        let new = generation(&env.src, "app");

        let killed = env.sluice_with(&[("SLUICE_FAULT", point)], &["refresh", "nightly"]);
        assert_eq!(
            killed.code, -1,
            "{point}: sluice should have killed itself there\n{}\n{}",
            killed.stdout, killed.stderr
        );
        let state = open(&env, "staging");
        assert!(state.is_some(), "{point}: staging is missing");
        if point == "swap-renamed" {
            // The rename committed: the new copy is in place and open, the old one kept.
            assert_eq!(state, Some(true), "{point}");
            assert_eq!(generation(&env.dst, "staging"), new, "{point}");
            assert_eq!(generation(&env.dst, "staging_prev"), old, "{point}");
            assert_eq!(databases(&env), "staging,staging_prev", "{point}");
        } else {
            // Before the rename: the old copy is still staging, and the finished copy waits.
            assert!(
                finished_copy_waiting(&env),
                "{point}: the finished copy should wait, marked ready: {}",
                databases(&env)
            );
            if point == "swap-ready" {
                assert_eq!(state, Some(true), "{point}: nothing was closed yet");
            }
            if state == Some(true) {
                assert_eq!(generation(&env.dst, "staging"), old, "{point}");
            }
        }

        let next = env.sluice(&["refresh", "nightly"]);
        assert_eq!(
            next.code, 0,
            "{point}: the run after the kill\n{}\n{}",
            next.stdout, next.stderr
        );
        assert_eq!(
            next.stdout.contains("completed the swap"),
            point != "swap-renamed",
            "{point}: {}",
            next.stdout
        );
        assert!(
            !next.stdout.contains("removed `staging_sluice_new`"),
            "{point}: a finished copy is swapped in, never discarded: {}",
            next.stdout
        );
        assert_eq!(databases(&env), "staging,staging_prev", "{point}");
        assert_eq!(open(&env, "staging"), Some(true), "{point}: reopened");
        assert_eq!(open(&env, "staging_prev"), Some(true), "{point}");
        assert_eq!(generation(&env.dst, "staging"), new, "{point}");
        // The killed run's copy went into place before this run's own: it is now staging_prev
        // (had it been discarded, staging_prev would hold the old generation).
        assert_eq!(generation(&env.dst, "staging_prev"), new, "{point}");
        assert_eq!(
            env.dst.psql("staging", "select count(*) from items"),
            SMALL_ROWS,
            "{point}"
        );
    }
}

#[test]
fn random_kills_never_leave_staging_missing_or_closed() {
    let env = Env::new(SMALL, SMALL_MASKING);
    // One untimed-by-kill run measures how long a refresh takes here.
    let took = adopt_and_drop_the_original(&env);
    let mut rng = Rng::new(42);
    let mut seen = generation(&env.dst, "staging");
    let (mut killed, mut finished) = (0, 0);
    for round in 0..7 {
        env.src.psql("app", "update generation set n = n + 1");
        let newest = generation(&env.src, "app");
        let fraction = 0.1 + (rng.next() % 1000) as f64 / 1000.0 * 0.95;
        let delay = took.mul_f64(fraction);
        let mut child = env.spawn(&["refresh", "nightly"]);
        std::thread::sleep(delay);
        if child.try_wait().expect("poll sluice").is_some() {
            let out = child.wait_with_output().expect("sluice's output");
            assert!(
                out.status.success(),
                "round {round}: a refresh that was not killed failed ({}):\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            finished += 1;
        } else {
            child.kill().expect("SIGKILL sluice");
            child.wait().expect("reap sluice");
            killed += 1;
        }
        let at = format!("round {round}, killed after {delay:?} of a {took:?} run");
        match open(&env, "staging") {
            None => panic!("{at}: staging is missing ({})", databases(&env)),
            Some(true) => {
                // A whole copy, never older than the one before.
                let n = generation(&env.dst, "staging");
                assert!(
                    n >= seen && n <= newest,
                    "{at}: staging holds generation {n}; before it held {seen}, the source is at {newest}"
                );
                assert_eq!(
                    env.dst.psql("staging", "select count(*) from items"),
                    SMALL_ROWS,
                    "{at}"
                );
                seen = n;
            }
            // Closed only inside a swap, which the next run completes.
            Some(false) => assert!(
                finished_copy_waiting(&env),
                "{at}: staging is closed to connections and no finished copy waits to be swapped in ({})",
                databases(&env)
            ),
        }
    }
    assert!(
        killed >= 3,
        "too few rounds were cut short to prove anything: {killed} killed, {finished} finished"
    );

    let last = env.sluice(&["refresh", "nightly"]);
    assert_eq!(last.code, 0, "{}\n{}", last.stdout, last.stderr);
    assert_eq!(databases(&env), "staging,staging_prev");
    assert_eq!(open(&env, "staging"), Some(true));
    assert_eq!(generation(&env.dst, "staging"), generation(&env.src, "app"));
    assert_eq!(
        env.dst.psql("staging", "select count(*) from items"),
        SMALL_ROWS
    );
}

#[test]
fn concurrent_refreshes_are_refused() {
    let env = Env::new(BIG, BIG_MASKING);
    let mut first = env.spawn(&["refresh", "nightly", "--adopt", "--jobs", "1"]);
    env.wait_for_copy(&mut first);
    let second = env.sluice(&["refresh", "nightly", "--adopt"]);
    assert_eq!(second.code, 3, "{}\n{}", second.stdout, second.stderr);
    assert!(
        second.stderr.contains("another refresh into"),
        "{}",
        second.stderr
    );
    // The refused run did not touch the first one's load: it completes.
    let first = wait_run(first, Duration::from_secs(120));
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    assert_eq!(databases(&env), "staging,staging_prev");
    assert_eq!(
        env.dst.psql("staging", "select count(*) from big"),
        BIG_ROWS
    );
    assert_eq!(
        env.dst.psql("staging_prev", "select what from marker"),
        "before"
    );

    // The lock went with the first run.
    env.dst
        .psql("postgres", "drop database staging_prev with (force)");
    let third = env.sluice(&["refresh", "nightly"]);
    assert_eq!(third.code, 0, "{}\n{}", third.stdout, third.stderr);
    assert_eq!(databases(&env), "staging,staging_prev");
}

#[test]
fn writes_to_the_source_during_a_refresh_keep_pgbench_balances_consistent() {
    let env = Env::new("select 1", PGBENCH_MASKING);
    run_ok(&mut pgbench(&env.src, &["-i", "-s", "1", "-q"]));
    let mut bench = Reaped(
        pgbench(&env.src, &["-n", "-c", "2", "-j", "2", "-T", "300"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run pgbench"),
    );
    let history = |pg: &PgCluster, db: &str| -> u64 {
        pg.psql(db, "select count(*) from pgbench_history")
            .parse()
            .unwrap()
    };
    let started = Instant::now();
    while history(&env.src, "app") < 50 {
        if let Ok(Some(status)) = bench.0.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = bench.0.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("pgbench ended early ({status}): {err}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "pgbench wrote nothing"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let before = history(&env.src, "app");
    let run = env.sluice(&["refresh", "nightly", "--adopt"]);
    let after = history(&env.src, "app");
    assert!(
        bench.0.try_wait().expect("poll pgbench").is_none(),
        "pgbench must still be writing when the refresh ends"
    );
    drop(bench);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);

    // Every transaction adds its delta to one account, branch, teller and a history row: in a
    // consistent snapshot the four sums agree.
    let sums = env.dst.psql(
        "staging",
        "select (select coalesce(sum(abalance), 0) from pgbench_accounts),
                (select coalesce(sum(bbalance), 0) from pgbench_branches),
                (select coalesce(sum(tbalance), 0) from pgbench_tellers),
                (select coalesce(sum(delta), 0) from pgbench_history)",
    );
    let parts: Vec<&str> = sums.split('|').collect();
    assert_eq!(parts.len(), 4, "{sums}");
    assert!(
        parts.iter().all(|p| *p == parts[0]),
        "accounts|branches|tellers|history sums differ in staging: {sums}"
    );
    // The snapshot was taken while pgbench wrote: after the first writes, before the last.
    let copied = history(&env.dst, "staging");
    assert!(
        copied >= before && copied < after,
        "staging has {copied} history rows; the source had {before} before the refresh and {after} after"
    );
    assert_eq!(
        env.dst
            .psql("staging", "select count(*) from pgbench_accounts"),
        "100000"
    );
    assert_eq!(
        env.dst.psql("staging_prev", "select what from marker"),
        "before"
    );
}

#[test]
fn the_source_stopping_mid_copy_leaves_staging_untouched() {
    let env = Env::new(BIG, BIG_MASKING);
    let mut child = env.spawn(&["refresh", "nightly", "--adopt", "--jobs", "1"]);
    env.wait_for_copy(&mut child);
    env.src.stop();
    let run = wait_run(child, Duration::from_secs(120));
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert_no_sentinel(&run, env.dir.path());
    assert_eq!(env.dst.psql("staging", "select what from marker"), "before");
    assert_eq!(open(&env, "staging"), Some(true));
    env.src.restart();

    next_run_adopts_and_copies_all(&env);
}

#[test]
fn a_connection_storm_does_not_stop_the_swap() {
    let env = Env::new(SMALL, SMALL_MASKING);
    let storm = Storm::start(env.dst.port());
    let first = env.sluice(&["refresh", "nightly", "--adopt"]);
    assert_eq!(first.code, 0, "{}\n{}", first.stdout, first.stderr);
    env.dst
        .psql("postgres", "drop database staging_prev with (force)");
    for _ in 0..2 {
        env.src.psql("app", "update generation set n = n + 1");
        let run = env.sluice(&["refresh", "nightly"]);
        assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
        assert_eq!(generation(&env.dst, "staging"), generation(&env.src, "app"));
    }
    // Let the storm reach the last copy before stopping it.
    std::thread::sleep(Duration::from_millis(500));
    let (connected, saw_a_copy) = storm.stop();
    assert!(
        connected > 10,
        "the storm barely connected ({connected} sessions): it proves nothing"
    );
    assert!(
        saw_a_copy > 0,
        "no storm session ever reached one of sluice's copies ({connected} connected)"
    );
    assert_eq!(databases(&env), "staging,staging_prev");
    assert_eq!(open(&env, "staging"), Some(true));
    assert_eq!(
        env.dst.psql("staging", "select count(*) from items"),
        SMALL_ROWS
    );
}

/// The next run adopts the hand-made `staging` (kept as `staging_prev`) and copies every row.
fn next_run_adopts_and_copies_all(env: &Env) {
    let again = env.sluice(&["refresh", "nightly", "--adopt"]);
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);
    assert_eq!(databases(env), "staging,staging_prev");
    assert_eq!(
        env.dst.psql("staging", "select count(*) from big"),
        BIG_ROWS
    );
    assert_eq!(
        env.dst.psql("staging_prev", "select what from marker"),
        "before"
    );
}
