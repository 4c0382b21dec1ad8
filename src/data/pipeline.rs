//! The whole refresh: resolved settings in, a [`Report`] out, staging replaced atomically or
//! left exactly as it was.
//!
//! Order of work: the source's snapshot is exported and the catalog read under it; the plan is
//! met with the catalog (nothing moves if a column is unclassified); a fresh database
//! `<target>_sluice_new` is created on the target server; pre-data schema (`pg_dump` under the
//! same snapshot, applied by `psql`); rows, several tables at once, each worker on the shared
//! snapshot; sequences; post-data (indexes, constraints, triggers: they never fire during the
//! load and FKs are checked once, here); materialized views; then one transaction renames the
//! current target to `<target>_prev` and the fresh one into place. Any failure before that
//! transaction drops the fresh database; a killed run leaves it behind marked as sluice's, and
//! the next run removes it. Nothing is ever written to the source.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_postgres::Client;
use tokio_postgres::config::Host;

use super::tls::Endpoint;
use zeroize::Zeroizing;

use super::catalog::{self, Catalog, QualifiedName, sql_ident};
use super::marks::{Mark, Role, is_ours};
use super::pg_error;
use super::plan::{Plan, TablePlan};
use super::stream::{CopyOptions, Moved, adopt_snapshot, copy_table_with, export_snapshot};
use crate::error::Error;
use crate::secrets::SecretValue;

/// Suffix of the database a refresh loads into before the swap.
pub const LOADING_SUFFIX: &str = "_sluice_new";
/// Suffix of the previous target, kept until the next success.
pub const PREVIOUS_SUFFIX: &str = "_prev";
/// Suffix the replaced target takes for a moment when `<target>_prev` is not sluice's (an
/// adopted database, kept): it is dropped right after the swap.
pub const DISPLACED_SUFFIX: &str = "_sluice_old";

/// Everything a refresh needs, resolved (secrets already fetched).
pub struct Settings {
    /// The plan's name (for messages and the database comment).
    pub name: String,
    /// The source database's URL.
    pub source_url: SecretValue,
    /// The target database's URL; its database name is the one replaced.
    pub target_url: SecretValue,
    /// The masking key.
    pub key: SecretValue,
    /// Tables copied at once.
    pub jobs: usize,
    /// Only work out which rows a subset moves, and why; touch no target.
    pub explain: bool,
    /// The mark the finished database carries (role `current`, `template` or `env`).
    pub mark: Mark,
    /// Keep the replaced database as `<name>_prev` until the next success (staging); drop it
    /// once the swap is done (templates and environments).
    pub keep_previous: bool,
    /// Read under this snapshot, exported and held by another process, instead of a new one.
    pub snapshot: Option<String>,
    /// Copy only this shard's share of the rows (see [`Shard`]).
    pub shard: Option<Shard>,
    /// The plan allows a target on the source's own server (another database there).
    pub same_server: bool,
    /// Replace a target database sluice did not make (`--adopt`): it is kept, unmarked, as
    /// `<name>_prev` and never dropped by sluice.
    pub adopt: bool,
}

/// What a subset selected.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SubsetReport {
    /// Rows per table and reason (`root`, `full`, `parent of …`, `child of …`, `part of …`).
    pub tables: BTreeMap<String, BTreeMap<String, u64>>,
    /// Rows left out per foreign key because their parent does not exist.
    pub orphans: BTreeMap<String, u64>,
    /// Rows selected.
    pub rows: u64,
    /// Memory the key sets take (compressed bitmaps of row positions).
    pub key_bytes: u64,
    /// Bytes of pending work spilled to the encrypted temporary file (the memory budget).
    pub spilled_bytes: u64,
}

/// Something worth telling the user while a refresh runs.
#[derive(Debug, Clone)]
pub enum Event {
    /// A step began.
    Step(String),
    /// A table's copy (or one part of a large table's) began.
    TableStarted {
        /// The table, with `[i/n]` for a part.
        label: String,
        /// The planner's estimate.
        estimated_rows: i64,
    },
    /// Running totals of a table or part.
    TableProgress {
        /// As in `TableStarted`.
        label: String,
        /// So far.
        moved: Moved,
    },
    /// A table or part is done.
    TableDone {
        /// As in `TableStarted`.
        label: String,
        /// What it moved.
        report: TableReport,
    },
}

/// One unit of copying: a table, or a block range of a large one.
struct Task {
    table: Arc<TablePlan>,
    label: String,
    filter: Option<String>,
    estimated_rows: i64,
}

/// Rows per COPY when a subset names them by position.
const SUBSET_CHUNK: usize = 20_000;

/// The copy tasks of a subset: `full` tables whole, every other table's selected rows by
/// position (`ctid = ANY(…)`, a TID scan), in chunks; tables with nothing selected stay empty.
fn subset_tasks(
    plan: &Plan,
    selection: &BTreeMap<QualifiedName, roaring::RoaringTreemap>,
    whole: &BTreeSet<QualifiedName>,
) -> Vec<Task> {
    let mut tasks = Vec::new();
    for t in &plan.tables {
        let t = Arc::new(t.clone());
        if whole.contains(&t.name) {
            tasks.push(Task {
                label: t.name.to_string(),
                filter: None,
                estimated_rows: t.estimated_rows,
                table: t,
            });
            continue;
        }
        let Some(rows) = selection.get(&t.name).filter(|r| !r.is_empty()) else {
            continue;
        };
        let ctids: Vec<u64> = rows.iter().collect();
        let parts = ctids.len().div_ceil(SUBSET_CHUNK);
        for (i, chunk) in ctids.chunks(SUBSET_CHUNK).enumerate() {
            let list = chunk
                .iter()
                .map(|&c| format!("\"{}\"", super::subset::ctid_text(c)))
                .collect::<Vec<_>>()
                .join(",");
            tasks.push(Task {
                label: if parts == 1 {
                    t.name.to_string()
                } else {
                    format!("{} [{}/{parts}]", t.name, i + 1)
                },
                filter: Some(format!("ctid = any('{{{list}}}'::tid[])")),
                estimated_rows: chunk.len() as i64,
                table: Arc::clone(&t),
            });
        }
    }
    tasks
}

/// Tables of at least this size are copied in block ranges on several connections at once
/// (`SLUICE_SPLIT_MIN_BYTES` overrides it).
const SPLIT_BYTES: i64 = 256 << 20;

fn split_min_bytes() -> i64 {
    std::env::var("SLUICE_SPLIT_MIN_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&v: &i64| v > 0)
        .unwrap_or(SPLIT_BYTES)
}

/// The copy tasks, largest first: a table at least [`SPLIT_BYTES`] large is cut into up to
/// `jobs / 2` block ranges (`ctid` ranges, scanned as TID ranges since PostgreSQL 14), the last
/// one open-ended so rows on blocks added after the statistics are not missed. Each stream keeps
/// two server processes busy (the source's COPY out, the target's COPY in), so with two jobs a
/// table stays whole, and a whole table loads with COPY FREEZE, which a range cannot.
fn split_tasks(
    plan: &Plan,
    jobs: usize,
    server_version: i32,
    block_size: i64,
    min_bytes: i64,
) -> Vec<Task> {
    let mut tasks = Vec::new();
    for t in &plan.tables {
        let t = Arc::new(t.clone());
        let parts = if server_version >= 140000 && jobs >= 4 && t.bytes >= min_bytes {
            (jobs / 2).min((t.bytes / (min_bytes / 4).max(1)).max(1) as usize)
        } else {
            1
        };
        if parts == 1 {
            tasks.push(Task {
                label: t.name.to_string(),
                filter: None,
                estimated_rows: t.estimated_rows,
                table: t,
            });
            continue;
        }
        let blocks = (t.bytes / block_size.max(1)).max(parts as i64);
        for i in 0..parts {
            let lo = blocks * i as i64 / parts as i64;
            let hi = blocks * (i as i64 + 1) / parts as i64;
            let filter = match (i, i + 1 == parts) {
                (0, _) => format!("ctid < '({hi},0)'::tid"),
                (_, true) => format!("ctid >= '({lo},0)'::tid"),
                _ => format!("ctid >= '({lo},0)'::tid and ctid < '({hi},0)'::tid"),
            };
            tasks.push(Task {
                label: format!("{} [{}/{parts}]", t.name, i + 1),
                filter: Some(filter),
                estimated_rows: t.estimated_rows / parts as i64,
                table: Arc::clone(&t),
            });
        }
    }
    tasks
}

/// One table's outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableReport {
    /// The table.
    #[serde(serialize_with = "display")]
    pub table: QualifiedName,
    /// Rows copied.
    pub rows: u64,
    /// COPY text bytes read.
    pub bytes: u64,
    /// Seconds spent.
    pub seconds: f64,
    /// Columns transformed.
    pub masked_columns: usize,
    /// The COPY format the rows moved in: `binary` or `text`.
    pub format: &'static str,
}

fn display<S: serde::Serializer>(v: &QualifiedName, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&v.to_string())
}

/// What a refresh did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// The plan.
    pub plan: String,
    /// The database that now holds the copy.
    pub target_database: String,
    /// Where the previous contents are kept, if there were any.
    pub previous_database: Option<String>,
    /// Per table, largest first.
    pub tables: Vec<TableReport>,
    /// Tables created empty.
    pub schema_only: usize,
    /// Sequences set.
    pub sequences: usize,
    /// Materialized views refreshed.
    pub materialized_views: usize,
    /// Leftovers of earlier runs removed.
    pub removed_leftovers: Vec<String>,
    /// A finished copy whose swap an earlier run did not complete, swapped in before this run
    /// began its own load.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_swap: Option<String>,
    /// What the subset selected, when the plan subsets.
    pub subset: Option<SubsetReport>,
    /// A shard's part, when the refresh ran as one of several shards.
    pub shard: Option<ShardReport>,
    /// Seconds for the whole refresh.
    pub seconds: f64,
}

/// A progress callback.
pub type Progress = dyn Fn(Event) + Send + Sync;

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::External {
            what: "runtime".into(),
            detail: e.to_string(),
        })
}

pub(crate) fn parse_url(url: &SecretValue, side: &str) -> Result<Endpoint, Error> {
    // Errors say only which URL is wrong: it may hold a password.
    super::tls::endpoint(url.expose(), side)
}

pub(crate) async fn connect(endpoint: &Endpoint, what: &str) -> Result<Client, Error> {
    endpoint
        .connect()
        .await
        .map_err(|e| pg_error(&format!("connecting to {what} (the URL is not shown)"), e))
}

/// Read the source catalog (under a fresh snapshot) so a plan can be built or explained.
pub fn read_catalog(source_url: &SecretValue) -> Result<Catalog, Error> {
    let config = parse_url(source_url, "source")?;
    runtime()?.block_on(async {
        let mut client = connect(&config, "the source").await?;
        let (tx, _) = export_snapshot(&mut client).await?;
        catalog::load(&tx).await
    })
}

/// Export a snapshot of the source and hold it while `while_held` runs with its ID: the shards
/// of one refresh (`--snapshot ID --shard i/N`) adopt it from anywhere that reaches the source.
pub fn hold_snapshot<R>(
    source_url: &SecretValue,
    while_held: impl FnOnce(&str) -> R,
) -> Result<R, Error> {
    let config = parse_url(source_url, "source")?;
    runtime()?.block_on(async {
        let mut client = connect(&config, "the source").await?;
        let (tx, id) = export_snapshot(&mut client).await?;
        let out = tokio::task::block_in_place(|| while_held(&id));
        drop(tx);
        Ok(out)
    })
}

/// Find a PostgreSQL client program: `$SLUICE_PG_BIN`, `PATH`, then the newest
/// `/usr/lib/postgresql/*/bin`.
fn pg_program(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("SLUICE_PG_BIN") {
        return PathBuf::from(dir).join(name);
    }
    if let Some(p) = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
    {
        return p;
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("bin").join(name)))
        })
        .filter(|(_, p)| p.is_file())
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, p)| p)
        .unwrap_or_else(|| PathBuf::from(name))
}

/// The libpq environment for `config`, so child programs never see the URL on their command
/// line.
fn libpq_env(config: &Endpoint) -> Vec<(&'static str, Zeroizing<String>)> {
    let mut env = Vec::new();
    if let Some(h) = config.get_hosts().first() {
        let h = match h {
            Host::Tcp(h) => h.clone(),
            Host::Unix(p) => p.display().to_string(),
        };
        env.push(("PGHOST", Zeroizing::new(h)));
    }
    if let Some(p) = config.get_ports().first() {
        env.push(("PGPORT", Zeroizing::new(p.to_string())));
    }
    if let Some(u) = config.get_user() {
        env.push(("PGUSER", Zeroizing::new(u.to_string())));
    }
    if let Some(p) = config.get_password() {
        env.push((
            "PGPASSWORD",
            Zeroizing::new(String::from_utf8_lossy(p).into_owned()),
        ));
    }
    if let Some(d) = config.get_dbname() {
        env.push(("PGDATABASE", Zeroizing::new(d.to_string())));
    }
    for (k, v) in config.libpq_tls() {
        env.push((k, Zeroizing::new(v)));
    }
    env
}

fn run_program(
    name: &str,
    args: &[&str],
    config: &Endpoint,
    stdin: Option<&[u8]>,
) -> Result<Vec<u8>, Error> {
    use std::io::Write;
    let program = pg_program(name);
    let mut cmd = Command::new(&program);
    cmd.args(args)
        .env_remove("PGSERVICE")
        .env_remove("PGSERVICEFILE")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in libpq_env(config) {
        cmd.env(k, v.as_str());
    }
    let mut child = cmd.spawn().map_err(|e| Error::External {
        what: name.into(),
        detail: format!(
            "cannot run {}: {e}; install the PostgreSQL client (Debian: apt-get install postgresql-client) or set SLUICE_PG_BIN",
            program.display()
        ),
    })?;
    let pid = child.id();
    super::interrupt::child_started(pid);
    let writer = match (stdin, child.stdin.take()) {
        (Some(data), Some(mut pipe)) => {
            let data = data.to_vec();
            Some(std::thread::spawn(move || pipe.write_all(&data)))
        }
        _ => None,
    };
    let out = child.wait_with_output().map_err(|e| Error::External {
        what: name.into(),
        detail: e.to_string(),
    });
    super::interrupt::child_ended(pid);
    let out = out?;
    if let Some(w) = writer {
        let _ = w.join();
    }
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(Error::External {
            what: name.into(),
            detail: format!("{} failed: {}", program.display(), stderr.trim()),
        });
    }
    Ok(out.stdout)
}

/// One schema section of the source, as pg_dump reads it under the refresh's snapshot.
fn dump_section(source: &Endpoint, snapshot: &str, section: &str) -> Result<Vec<u8>, Error> {
    run_program(
        "pg_dump",
        &[
            "--schema-only",
            &format!("--section={section}"),
            "--no-owner",
            "--no-privileges",
            "--no-comments",
            &format!("--snapshot={snapshot}"),
        ],
        source,
        None,
    )
}

/// `pg_dump` can only dump servers up to its own major version.
fn check_pg_dump(server_version_num: i32) -> Result<(), Error> {
    let program = pg_program("pg_dump");
    let out = Command::new(&program)
        .arg("--version")
        .output()
        .map_err(|e| Error::External {
            what: "pg_dump".into(),
            detail: format!(
                "cannot run {}: {e}; install the PostgreSQL client of the source's major version or newer (Debian: apt-get install postgresql-client) or set SLUICE_PG_BIN",
                program.display()
            ),
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let major: Option<i32> = text
        .split_whitespace()
        .find_map(|w| w.split('.').next()?.parse().ok());
    let server_major = server_version_num / 10000;
    match major {
        Some(m) if m >= server_major => Ok(()),
        Some(m) => Err(Error::External {
            what: "pg_dump".into(),
            detail: format!(
                "{} is version {m}, but the source server is version {server_major}; pg_dump cannot dump a newer server. Install the PostgreSQL {server_major} client or newer, or point SLUICE_PG_BIN at its bin directory",
                program.display()
            ),
        }),
        None => Err(Error::External {
            what: "pg_dump".into(),
            detail: format!(
                "cannot tell the version of {} from `{}`",
                program.display(),
                text.trim()
            ),
        }),
    }
}

pub(crate) fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Databases on the target server: name → comment.
pub(crate) async fn databases(admin: &Client) -> Result<Vec<(String, Option<String>)>, Error> {
    Ok(admin
        .query(
            "select datname, shobj_description(oid, 'pg_database') from pg_database",
            &[],
        )
        .await
        .map_err(|e| pg_error("listing databases on the target", e))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// Connect to the target server's maintenance database.
pub(crate) async fn connect_admin(target: &Endpoint) -> Result<Client, Error> {
    let mut last = None;
    for db in ["postgres", "template1"] {
        let mut c = target.clone();
        c.dbname(db);
        match connect(&c, "the target server").await {
            Ok(client) => return Ok(client),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::Usage("no maintenance database".into())))
}

/// Run a refresh: see the module docs for the order of work.
pub fn refresh(
    settings: &Settings,
    build: &dyn Fn(&Catalog) -> Result<Plan, Error>,
    progress: Arc<Progress>,
) -> Result<Report, Error> {
    let started = Instant::now();
    let source = parse_url(&settings.source_url, "source")?;
    let target = parse_url(&settings.target_url, "target")?;
    let target_db = target
        .get_dbname()
        .filter(|d| !d.is_empty())
        .ok_or_else(|| Error::Usage("the target URL names no database; add /dbname to it".into()))?
        .to_string();
    if target_db.len() + LOADING_SUFFIX.len() > 63 {
        return Err(Error::Usage(format!(
            "target database `{target_db}` is too long: with `{LOADING_SUFFIX}` it would exceed PostgreSQL's 63-byte names"
        )));
    }
    if matches!(target_db.as_str(), "postgres" | "template0" | "template1") {
        return Err(Error::Usage(format!(
            "the target URL names `{target_db}`, a maintenance database; name the staging database instead"
        )));
    }
    let rt = runtime()?;
    if !settings.explain {
        super::interrupt::watch(&target, &target_db, &format!("{target_db}{LOADING_SUFFIX}"));
    }
    rt.block_on(async {
        let step = |s: &str| progress(Event::Step(s.to_string()));
        step("opening the source snapshot");
        let mut leader = connect(&source, "the source").await?;
        let source_id = super::guard::source_id(&leader).await?;
        let server_version: i32 = leader
            .query_one("select current_setting('server_version_num')::int", &[])
            .await
            .map_err(|e| pg_error("reading the source version", e))?
            .get(0);
        check_pg_dump(server_version)?;
        let (snapshot_tx, snapshot) = match &settings.snapshot {
            None => export_snapshot(&mut leader).await?,
            Some(id) => (adopt_held_snapshot(&mut leader, id).await?, id.clone()),
        };
        let catalog = catalog::load(&snapshot_tx).await?;
        let plan = build(&catalog)?;
        // A subset: which rows of which leaves, worked out on the source before the target is
        // touched.
        let mut selection: Option<BTreeMap<QualifiedName, roaring::RoaringTreemap>> = None;
        let mut whole: BTreeSet<QualifiedName> = BTreeSet::new();
        let mut subset_report = None;
        if let Some(sp) = &plan.subset {
            step("selecting the subset");
            let key = super::mask::MaskKey::new(settings.key.expose().as_bytes());
            let mut rows = super::subset_pg::PgRows::new(&snapshot_tx).await?;
            let work = super::subset_pg::starting_rows(&rows, sp, &catalog, &key).await?;
            let closure = super::subset::close(
                &sp.edges,
                work,
                &mut rows,
                sp.depth_limit,
                sp.memory_budget,
            )
            .await?;
            subset_report = Some(SubsetReport {
                tables: super::subset_pg::explain(&closure),
                orphans: closure.orphans.clone(),
                rows: closure.total(),
                key_bytes: closure.key_bytes(),
                spilled_bytes: closure.spilled_bytes,
            });
            for t in catalog.tables.values() {
                let mut root = t.name.clone();
                while let Some(p) = catalog.tables.get(&root).and_then(|x| x.partition_of.clone()) {
                    root = p;
                }
                if sp.full.contains(&root) {
                    whole.insert(t.name.clone());
                }
            }
            selection = Some(closure.rows);
        }
        let mut report = Report {
            plan: settings.name.clone(),
            target_database: target_db.clone(),
            previous_database: None,
            tables: Vec::new(),
            schema_only: plan.schema_only.len(),
            sequences: 0,
            materialized_views: 0,
            removed_leftovers: Vec::new(),
            completed_swap: None,
            subset: subset_report,
            shard: None,
            seconds: 0.0,
        };
        if settings.explain {
            report.seconds = started.elapsed().as_secs_f64();
            return Ok(report);
        }
        step("preparing the target");
        let admin = connect_admin(&target).await?;
        let loading = format!("{target_db}{LOADING_SUFFIX}");
        let previous = format!("{target_db}{PREVIOUS_SUFFIX}");
        super::guard::check_target(
            &admin,
            std::slice::from_ref(&source_id),
            &[&target_db, &loading, &previous, &format!("{target_db}{DISPLACED_SUFFIX}")],
            settings.same_server,
            &format!("replacing `{target_db}`"),
        )
        .await?;
        take_refresh_lock(&admin, &target_db, settings.shard.is_some()).await?;
        super::interrupt::set_stage(super::interrupt::Stage::Loading);
        let encoding: String = snapshot_tx
            .query_one("select pg_encoding_to_char(encoding) from pg_database where datname = current_database()", &[])
            .await
            .map_err(|e| pg_error("reading the source encoding", e))?
            .get(0);
        let mut load_cfg = target.clone();
        load_cfg.dbname(&loading);
        let block_size: i64 = snapshot_tx
            .query_one("select current_setting('block_size')::int8", &[])
            .await
            .map_err(|e| pg_error("reading the block size", e))?
            .get(0);
        let mut tasks = match &selection {
            None => split_tasks(
                &plan,
                settings.jobs,
                server_version,
                block_size,
                split_min_bytes(),
            ),
            Some(sel) => subset_tasks(&plan, sel, &whole),
        };
        if let Some(shard) = settings.shard {
            tasks = share(tasks, shard);
        }
        let target_side = TargetSide {
            admin: &admin,
            target_db: &target_db,
            loading: &loading,
            load_cfg: &load_cfg,
            encoding: &encoding,
        };
        // The loading database with the pre-data schema: made here, or (a shard) by whichever
        // shard of this snapshot came first.
        let (removed, post_dump) = match settings.shard {
            None => {
                let removed = prepare(&target_side, settings, &source, &snapshot, None, &progress).await?;
                // The post-data dump reads the same snapshot: fetch it while the rows stream.
                (removed, Some(spawn_post_dump(&source, &snapshot)))
            }
            Some(shard) => {
                let removed = join_shards(&target_side, settings, &source, &snapshot, shard, &progress).await?;
                (removed, None)
            }
        };
        report.removed_leftovers = removed.removed;
        report.completed_swap = removed.completed;

        step("copying rows");
        let binary = binary_copy(server_version, &encoding, &admin).await?;
        let copied = copy_rows(settings, &source, &load_cfg, &snapshot, tasks, binary, &progress).await;
        report.tables = match copied {
            Ok(t) => t,
            Err(e) => {
                drop_loading(&admin, &loading).await;
                return Err(e);
            }
        };
        if let Some(shard) = settings.shard {
            let done = shard_done(&target_side, shard).await?;
            let finished = done as u32 == shard.count;
            report.shard = Some(ShardReport {
                index: shard.index,
                count: shard.count,
                done,
                swapped: finished,
            });
            if !finished {
                report.seconds = started.elapsed().as_secs_f64();
                return Ok(report);
            }
        }
        let post_dump = post_dump.unwrap_or_else(|| spawn_post_dump(&source, &snapshot));
        let finished = finish(settings, &load_cfg, &snapshot_tx, &catalog, &plan, post_dump, &progress).await;
        report.sequences = match finished {
            Ok(n) => n,
            Err(e) => {
                drop_loading(&admin, &loading).await;
                return Err(e);
            }
        };
        report.materialized_views = plan.materialized_views.len();
        drop(snapshot_tx);

        step("swapping the new database into place");
        report.previous_database =
            replace(&admin, &target_db, &settings.mark, settings.keep_previous).await?;
        super::interrupt::set_stage(super::interrupt::Stage::Done);
        step("done");
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    })
}

/// The target server as the load sees it.
struct TargetSide<'a> {
    admin: &'a Client,
    target_db: &'a str,
    loading: &'a str,
    load_cfg: &'a Endpoint,
    encoding: &'a str,
}

/// Adopt a snapshot another process exported and holds (`sluice snapshot`).
async fn adopt_held_snapshot<'a>(
    client: &'a mut Client,
    id: &str,
) -> Result<tokio_postgres::Transaction<'a>, Error> {
    adopt_snapshot(client, id).await.map_err(|e| match e {
        Error::External { detail, .. } if detail.contains("22023") => Error::External {
            what: "postgresql".into(),
            detail: format!(
                "snapshot `{id}` is not held on the source (the transaction that exported it has ended, or it was exported on another server); start `sluice snapshot PLAN` again and pass its ID"
            ),
        },
        other => other,
    })
}

/// One refresh at a time per target database; the shards of one sharded load share the lock.
pub(crate) async fn take_refresh_lock(
    admin: &Client,
    target_db: &str,
    shared: bool,
) -> Result<(), Error> {
    let function = if shared {
        "pg_try_advisory_lock_shared"
    } else {
        "pg_try_advisory_lock"
    };
    let lock: bool = admin
        .query_one(
            &format!("select {function}(hashtext('sluice refresh ' || $1))"),
            &[&target_db],
        )
        .await
        .map_err(|e| pg_error("taking the refresh lock", e))?
        .get(0);
    if lock {
        return Ok(());
    }
    Err(Error::External {
        what: "postgresql".into(),
        detail: format!("another refresh into `{target_db}` is running; try again when it ends"),
    })
}

/// Remove leftovers, create the loading database with `extra` marked on it, and apply the
/// pre-data schema. Returns the leftovers removed.
async fn prepare(
    side: &TargetSide<'_>,
    settings: &Settings,
    source: &Endpoint,
    snapshot: &str,
    extra: Option<&Mark>,
    progress: &Arc<Progress>,
) -> Result<Recovered, Error> {
    let previous = format!("{}{PREVIOUS_SUFFIX}", side.target_db);
    let removed = recover(side.admin, side.target_db, side.loading, &previous).await?;
    check_replaceable(
        &databases(side.admin).await?,
        side.target_db,
        settings.mark.role,
        settings.adopt,
    )?;
    let mark = extra
        .cloned()
        .unwrap_or_else(|| settings.mark.with_role(Role::Loading));
    super::interrupt::hold_if_signalled();
    side.admin
        .batch_execute(&format!(
            // Closed until marked: a kill between CREATE and COMMENT (which cannot share a
            // transaction) leaves a closed, unmarked `_sluice_new` that `recover` knows as
            // sluice's (see `born_here`).
            "create database {} template template0 encoding {} allow_connections false",
            sql_ident(side.loading),
            quote_literal(side.encoding)
        ))
        .await
        .map_err(|e| {
            pg_error(
                &format!("creating database {} on the target", side.loading),
                e,
            )
        })?;
    let filled = async {
        open_marked(side.admin, side.loading, &mark).await?;
        progress(Event::Step("creating the schema (pre-data)".into()));
        let pre = tokio::task::block_in_place(|| dump_section(source, snapshot, "pre-data"))?;
        tokio::task::block_in_place(|| apply_sql(side.load_cfg, &pre))?;
        Ok::<(), Error>(())
    };
    if let Err(e) = filled.await {
        drop_loading(side.admin, side.loading).await;
        return Err(e);
    }
    Ok(removed)
}

/// Mark a database sluice just created closed, and open it, in one transaction.
pub(crate) async fn open_marked(admin: &Client, db: &str, mark: &Mark) -> Result<(), Error> {
    admin
        .batch_execute(&format!(
            "begin; comment on database {db} is {}; alter database {db} with allow_connections true; commit",
            quote_literal(&mark.render()),
            db = sql_ident(db),
        ))
        .await
        .map_err(|e| pg_error(&format!("marking {db}"), e))
}

async fn set_mark(admin: &Client, db: &str, mark: &Mark) -> Result<(), Error> {
    admin
        .batch_execute(&format!(
            "comment on database {} is {}",
            sql_ident(db),
            quote_literal(&mark.render())
        ))
        .await
        .map_err(|e| pg_error(&format!("marking {db}"), e))
}

/// Drop a database (sessions on it are ended by `WITH (FORCE)`); gone already is fine.
pub(crate) async fn drop_database(admin: &Client, db: &str) -> Result<(), Error> {
    admin
        .batch_execute(&format!(
            "drop database if exists {} with (force)",
            sql_ident(db)
        ))
        .await
        .map_err(|e| pg_error(&format!("dropping {db}"), e))
}

/// Drop a half-loaded database on the way out of a failure: the failure is what is reported.
pub(crate) async fn drop_loading(admin: &Client, loading: &str) {
    let _ = drop_database(admin, loading).await;
}

/// Which shard of a sharded load this process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 0-based.
    pub index: u32,
    /// How many shards share the load.
    pub count: u32,
}

impl Shard {
    /// `i/N`, 0 ≤ i < N ≤ 1024.
    pub fn parse(text: &str) -> Result<Shard, Error> {
        let bad = || {
            Error::Usage(format!(
                "--shard `{text}` is not i/N with 0 <= i < N (e.g. 0/4 for the first of four shards; a Kubernetes Indexed Job passes $JOB_COMPLETION_INDEX)"
            ))
        };
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let (index, count): (u32, u32) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || count > 1024 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// How a shard's part of a load went.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ShardReport {
    /// This shard.
    pub index: u32,
    /// Shards in all.
    pub count: u32,
    /// Shards whose rows are in, this one included.
    pub done: usize,
    /// Whether this shard, the last to finish, built the indexes and swapped.
    pub swapped: bool,
}

/// This shard's tasks: every shard orders the same task list (same catalog, same snapshot) by
/// size and deals it out greedily, each task to the least-loaded shard.
fn share(tasks: Vec<Task>, shard: Shard) -> Vec<Task> {
    let mut order: Vec<Task> = tasks;
    order.sort_by(|a, b| {
        b.estimated_rows
            .cmp(&a.estimated_rows)
            .then_with(|| a.label.cmp(&b.label))
    });
    let mut load = vec![0i64; shard.count as usize];
    let mut mine = Vec::new();
    for t in order {
        let (least, _) = load
            .iter()
            .enumerate()
            .min_by_key(|(i, l)| (**l, *i))
            .unwrap_or((0, &0));
        load[least] += t.estimated_rows.max(1);
        if least == shard.index as usize {
            mine.push(t);
        }
    }
    mine
}

/// Run `body` while holding the lock that orders the shards' bookkeeping on the loading
/// database's mark.
async fn with_shard_lock<T>(
    admin: &Client,
    target_db: &str,
    body: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    admin
        .execute(
            "select pg_advisory_lock(hashtext('sluice shards ' || $1))",
            &[&target_db],
        )
        .await
        .map_err(|e| pg_error("waiting for the shards' lock", e))?;
    let out = body.await;
    admin
        .execute(
            "select pg_advisory_unlock(hashtext('sluice shards ' || $1))",
            &[&target_db],
        )
        .await
        .map_err(|e| pg_error("releasing the shards' lock", e))?;
    out
}

/// The loading database's mark, if it exists and is sluice's.
async fn loading_mark(side: &TargetSide<'_>) -> Result<Option<Mark>, Error> {
    Ok(databases(side.admin)
        .await?
        .into_iter()
        .find(|(n, _)| n == side.loading)
        .and_then(|(_, c)| Mark::parse(c.as_deref()?)))
}

/// A shard joins the load of its snapshot, preparing the loading database if it is the first.
/// A shard that already started under this snapshot (a retry after a crash) cannot know which
/// of its rows are in: the load is abandoned, fail-closed.
async fn join_shards(
    side: &TargetSide<'_>,
    settings: &Settings,
    source: &Endpoint,
    snapshot: &str,
    shard: Shard,
    progress: &Arc<Progress>,
) -> Result<Recovered, Error> {
    with_shard_lock(side.admin, side.target_db, async {
        let mut removed = Recovered::default();
        let mut mark = match loading_mark(side).await? {
            Some(m)
                if m.role == Role::Loading
                    && m.snapshot.as_deref() == Some(snapshot)
                    && m.shards == Some(shard.count) =>
            {
                m
            }
            _ => {
                let mut m = settings.mark.with_role(Role::Loading);
                m.snapshot = Some(snapshot.to_string());
                m.shards = Some(shard.count);
                removed = prepare(side, settings, source, snapshot, Some(&m), progress).await?;
                m
            }
        };
        if mark.started.contains(&shard.index) {
            drop_loading(side.admin, side.loading).await;
            return Err(Error::External {
                what: "refresh".into(),
                detail: format!(
                    "shard {}/{} already started under snapshot {snapshot} and did not finish, so its rows may be half in; the load is abandoned and staging is untouched. Run every shard again under a new snapshot",
                    shard.index, shard.count
                ),
            });
        }
        mark.started.push(shard.index);
        set_mark(side.admin, side.loading, &mark).await?;
        Ok(removed)
    })
    .await
}

/// Record this shard's rows as in; how many shards are done.
async fn shard_done(side: &TargetSide<'_>, shard: Shard) -> Result<usize, Error> {
    with_shard_lock(side.admin, side.target_db, async {
        let Some(mut mark) = loading_mark(side).await? else {
            return Err(Error::External {
                what: "refresh".into(),
                detail: format!(
                    "the loading database {} is gone: another shard failed and abandoned the load (its error says why); staging is untouched. Run every shard again under a new snapshot",
                    side.loading
                ),
            });
        };
        if !mark.done.contains(&shard.index) {
            mark.done.push(shard.index);
            mark.done.sort_unstable();
        }
        set_mark(side.admin, side.loading, &mark).await?;
        Ok(mark.done.len())
    })
    .await
}

/// What [`recover`] did.
#[derive(Debug, Clone, Default)]
pub(crate) struct Recovered {
    /// Half-loaded databases dropped.
    pub removed: Vec<String>,
    /// A finished copy whose swap was cut short, swapped in (the database it now is).
    pub completed: Option<String>,
}

/// Whether `loading` is one sluice created and was killed before marking: sluice creates its
/// loading databases closed to connections and opens them only with the mark, so a closed,
/// unmarked, empty-commented `<name>_sluice_new` is a CREATE whose run died right after.
async fn born_here(
    admin: &Client,
    dbs: &[(String, Option<String>)],
    loading: &str,
) -> Result<bool, Error> {
    let uncommented = dbs.iter().any(|(n, c)| n == loading && c.is_none());
    let closed = connectable(admin)
        .await?
        .iter()
        .any(|(n, allowed)| n == loading && !allowed);
    Ok(uncommented && closed && loading.ends_with(LOADING_SUFFIX))
}

/// Databases on the target server with whether they accept connections.
async fn connectable(admin: &Client) -> Result<Vec<(String, bool)>, Error> {
    Ok(admin
        .query("select datname::text, datallowconn from pg_database", &[])
        .await
        .map_err(|e| pg_error("listing databases on the target", e))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// Undo or finish what a killed run left. A half-loaded database is dropped; a finished one
/// whose swap was cut short (marked `ready`) is swapped in; a swap cut short after the target
/// was closed to connections reopens it. Only databases carrying sluice's mark are touched.
pub(crate) async fn recover(
    admin: &Client,
    target_db: &str,
    loading: &str,
    previous: &str,
) -> Result<Recovered, Error> {
    let dbs = databases(admin).await?;
    let ours = |name: &str| dbs.iter().any(|(n, c)| n == name && is_ours(c.as_deref()));
    let exists = |name: &str| dbs.iter().any(|(n, _)| n == name);
    let mut done = Recovered::default();
    if exists(loading) && !ours(loading) && born_here(admin, &dbs, loading).await? {
        drop_database(admin, loading).await?;
        done.removed.push(loading.to_string());
    } else if exists(loading) {
        if !ours(loading) {
            return Err(Error::External {
                what: "postgresql".into(),
                detail: format!(
                    "database `{loading}` exists on the target but sluice did not create it; rename or drop it yourself"
                ),
            });
        }
        let mark = dbs
            .iter()
            .find(|(n, _)| n == loading)
            .and_then(|(_, c)| Mark::parse(c.as_deref()?));
        match mark {
            Some(m) if m.ready.is_some() && m.snapshot.is_none() => {
                let role = m.ready.unwrap_or(Role::Current);
                let finished = Mark {
                    ready: None,
                    ..m.with_role(role)
                };
                // As the interrupted run would have: staging keeps its previous copy, an
                // environment or template does not.
                replace(admin, target_db, &finished, role == Role::Current).await?;
                done.completed = Some(target_db.to_string());
            }
            _ => {
                drop_database(admin, loading).await?;
                done.removed.push(loading.to_string());
            }
        }
    }
    let dbs = databases(admin).await?;
    let ours = |name: &str| dbs.iter().any(|(n, c)| n == name && is_ours(c.as_deref()));
    let exists = |name: &str| dbs.iter().any(|(n, _)| n == name);
    let displaced = format!("{target_db}{DISPLACED_SUFFIX}");
    if exists(target_db) && ours(&displaced) {
        drop_database(admin, &displaced).await?;
        done.removed.push(displaced);
    }
    if !exists(target_db) && ours(previous) {
        admin
            .batch_execute(&format!(
                "alter database {} rename to {}; alter database {} with allow_connections true",
                sql_ident(previous),
                sql_ident(target_db),
                sql_ident(target_db)
            ))
            .await
            .map_err(|e| pg_error(&format!("restoring {target_db} from {previous}"), e))?;
    }
    // A swap cut short between closing the target and the rename left it closed.
    let closed = connectable(admin)
        .await?
        .into_iter()
        .any(|(n, allowed)| n == target_db && !allowed);
    let role = dbs
        .iter()
        .find(|(n, _)| n == target_db)
        .and_then(|(_, c)| Mark::parse(c.as_deref()?))
        .map(|m| m.role);
    if closed && matches!(role, Some(Role::Current | Role::Env | Role::Previous)) {
        admin
            .batch_execute(&format!(
                "alter database {} with allow_connections true",
                sql_ident(target_db)
            ))
            .await
            .map_err(|e| pg_error(&format!("reopening {target_db} to connections"), e))?;
    }
    Ok(done)
}

/// An environment or template replaces only a database sluice made for the same purpose; the
/// staging target replaces a database sluice made, or (with `adopt`) one it did not make, which
/// is then kept unmarked as `<name>_prev`. A `<name>_prev` sluice did not make is never dropped,
/// so it stops the refresh before anything is loaded.
pub(crate) fn check_replaceable(
    dbs: &[(String, Option<String>)],
    target_db: &str,
    role: Role,
    adopt: bool,
) -> Result<(), Error> {
    let previous = format!("{target_db}{PREVIOUS_SUFFIX}");
    let foreign_previous = dbs
        .iter()
        .any(|(n, c)| *n == previous && !is_ours(c.as_deref()));
    let Some((_, comment)) = dbs.iter().find(|(n, _)| n == target_db) else {
        return Ok(());
    };
    if role == Role::Current {
        if is_ours(comment.as_deref()) {
            return Ok(());
        }
        if adopt && foreign_previous {
            return Err(Error::Usage(format!(
                "database `{target_db}` is to be adopted, but `{previous}`, where it would be kept, is not sluice's either; sluice never drops either. Rename or drop one of them yourself, then run again"
            )));
        }
        if adopt {
            return Ok(());
        }
        return Err(Error::Usage(format!(
            "database `{target_db}` exists on the target server and sluice did not make it; sluice replaces only its own databases. Pass --adopt to replace it once (it is kept, unmarked, as `{previous}`, and sluice never drops it), or drop or rename it yourself"
        )));
    }
    let found = comment.as_deref().and_then(Mark::parse).map(|m| m.role);
    if found == Some(role) {
        return Ok(());
    }
    let what = match role {
        Role::Env => "an environment made by `sluice env up`",
        _ => "a template made by `sluice refresh --template`",
    };
    Err(Error::Usage(format!(
        "database `{target_db}` exists on the target server and is not {what}; sluice replaces only its own databases. Choose another name, or drop or rename it yourself"
    )))
}

/// Swap `<target_db>_sluice_new` into place with `mark`; a template stays closed to
/// connections (so clones never wait on a session), and the replaced database is dropped
/// unless `keep_previous` (only if sluice made it). Returns the name the replaced database is
/// kept under.
pub(crate) async fn replace(
    admin: &Client,
    target_db: &str,
    mark: &Mark,
    keep_previous: bool,
) -> Result<Option<String>, Error> {
    let loading = format!("{target_db}{LOADING_SUFFIX}");
    let previous = format!("{target_db}{PREVIOUS_SUFFIX}");
    let Some(previous) = swap(admin, target_db, &loading, &previous, mark).await? else {
        return Ok(None);
    };
    let previous_ours = databases(admin)
        .await?
        .iter()
        .any(|(n, c)| *n == previous && is_ours(c.as_deref()));
    if keep_previous || !previous_ours {
        return Ok(Some(previous));
    }
    end_sessions(admin, std::slice::from_ref(&previous)).await?;
    drop_database(admin, &previous).await?;
    Ok(None)
}

/// End every other session on `databases` (autovacuum workers included) and wait until they are
/// gone, polling briefly: DROP and RENAME would otherwise wait or fail on them.
pub(crate) async fn end_sessions(admin: &Client, databases: &[String]) -> Result<(), Error> {
    let names: Vec<&str> = databases.iter().map(String::as_str).collect();
    admin
        .execute(
            "select pg_terminate_backend(pid) from pg_stat_activity where datname = any($1) and pid <> pg_backend_pid()",
            &[&names],
        )
        .await
        .map_err(|e| pg_error(&format!("ending sessions on {}", names.join(", ")), e))?;
    for _ in 0..500 {
        let left: i64 = admin
            .query_one(
                "select count(*) from pg_stat_activity where datname = any($1) and pid <> pg_backend_pid()",
                &[&names],
            )
            .await
            .map_err(|e| pg_error("waiting for sessions to end", e))?
            .get(0);
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Replace `target_db` by `loading`; the old one becomes `previous` (or, when `previous` is a
/// database sluice did not make, is dropped), and `loading` takes `mark`. Returns where the
/// old target is kept. Signals wait for the swap to end (see [`super::interrupt`]).
pub(crate) async fn swap(
    admin: &Client,
    target_db: &str,
    loading: &str,
    previous: &str,
    mark: &Mark,
) -> Result<Option<String>, Error> {
    use super::interrupt::{Stage, set_stage, stage};
    let resume = stage();
    set_stage(Stage::Swapping);
    let swapped = swap_steps(admin, target_db, loading, previous, mark).await;
    set_stage(resume);
    swapped
}

/// The swap, step by step. A kill at any step leaves the old or the new database under the
/// target name; from the `ready` mark on, the next run completes the swap instead of
/// discarding the copy.
async fn swap_steps(
    admin: &Client,
    target_db: &str,
    loading: &str,
    previous: &str,
    mark: &Mark,
) -> Result<Option<String>, Error> {
    use super::interrupt::fault;
    let dbs = databases(admin).await?;
    let exists = |name: &str| dbs.iter().any(|(n, _)| n == name);
    let ours = |name: &str| dbs.iter().any(|(n, c)| n == name && is_ours(c.as_deref()));
    let had_target = exists(target_db);
    let target_ours = ours(target_db);
    // A `<target>_prev` sluice did not make (an adopted database) is never dropped: the
    // replaced copy goes aside for a moment and is dropped after the swap instead.
    let displaced = format!("{target_db}{DISPLACED_SUFFIX}");
    let foreign_previous = exists(previous) && !ours(previous);
    if foreign_previous && had_target && !target_ours {
        return Err(Error::External {
            what: "postgresql".into(),
            detail: format!(
                "neither `{target_db}` nor `{previous}` was made by sluice; sluice drops neither, so the loaded copy was discarded. Rename or drop one of them yourself, then run again"
            ),
        });
    }
    let previous = if foreign_previous {
        displaced.as_str()
    } else {
        previous
    };
    for leftover in [previous, displaced.as_str()] {
        if ours(leftover) {
            end_sessions(admin, &[leftover.to_string()]).await?;
            drop_database(admin, leftover).await?;
        }
    }
    // 1. The copy is complete: from here a swap cut short is finished by the next run.
    let ready = Mark {
        ready: Some(mark.role),
        ..mark.with_role(Role::Loading)
    };
    set_mark(admin, loading, &ready).await?;
    fault("swap-ready");
    // 2. Close both to new connections, so that ending their sessions sticks: under a
    // connection storm clients otherwise reconnect between the end and the rename.
    let mut close = format!(
        "alter database {} with allow_connections false;",
        sql_ident(loading)
    );
    if had_target {
        close.push_str(&format!(
            "alter database {} with allow_connections false;",
            sql_ident(target_db)
        ));
    }
    admin
        .batch_execute(&close)
        .await
        .map_err(|e| pg_error(&format!("closing {target_db} to new connections"), e))?;
    fault("swap-closed");
    // 3. One transaction renames both and opens the new target (a template stays closed).
    let mut sql = String::from("begin;");
    if had_target {
        sql.push_str(&format!(
            "alter database {t} rename to {p};alter database {p} with allow_connections true;",
            t = sql_ident(target_db),
            p = sql_ident(previous),
        ));
        // An adopted database keeps its own comment: sluice never marks what it did not make.
        if target_ours {
            sql.push_str(&format!(
                "comment on database {} is {};",
                sql_ident(previous),
                quote_literal(&mark.with_role(Role::Previous).render())
            ));
        }
    }
    sql.push_str(&format!(
        "alter database {l} rename to {t};comment on database {t} is {m};alter database {t} with allow_connections {open};commit;",
        l = sql_ident(loading),
        t = sql_ident(target_db),
        m = quote_literal(&mark.render()),
        open = mark.role != Role::Template,
    ));
    let both = [target_db.to_string(), loading.to_string()];
    let mut attempt = 0;
    loop {
        end_sessions(admin, &both).await?;
        fault("swap-ended");
        match admin.batch_execute(&sql).await {
            Ok(()) => break,
            Err(e) => {
                let _ = admin.batch_execute("rollback").await;
                // A session that slipped in before the close (or a superuser's) holds on.
                let busy = e.code().is_some_and(|c| c.code() == "55006");
                attempt += 1;
                if !busy || attempt >= 50 {
                    if had_target {
                        let _ = admin
                            .batch_execute(&format!(
                                "alter database {} with allow_connections true",
                                sql_ident(target_db)
                            ))
                            .await;
                    }
                    drop_loading(admin, loading).await;
                    return Err(pg_error(&format!("swapping {loading} into {target_db}"), e));
                }
                tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
            }
        }
    }
    fault("swap-renamed");
    if !had_target {
        return Ok(None);
    }
    if foreign_previous {
        end_sessions(admin, std::slice::from_ref(&displaced)).await?;
        drop_database(admin, &displaced).await?;
        return Ok(None);
    }
    Ok(Some(previous.to_string()))
}

/// Apply SQL (a pg_dump section) to the loading database in one transaction.
fn apply_sql(load_cfg: &Endpoint, sql: &[u8]) -> Result<Vec<u8>, Error> {
    run_program(
        "psql",
        &[
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "--single-transaction",
            "-f",
            "-",
        ],
        load_cfg,
        Some(sql),
    )
}

type PostDump = std::thread::JoinHandle<Result<Vec<u8>, Error>>;

/// The post-data section, dumped under the snapshot on a thread of its own.
fn spawn_post_dump(source: &Endpoint, snapshot: &str) -> PostDump {
    let (source, snapshot) = (source.clone(), snapshot.to_string());
    std::thread::spawn(move || dump_section(&source, &snapshot, "post-data"))
}

/// Whether tables may move as binary COPY: both servers of one major version (binary formats
/// of built-in types are stable within one) and a UTF-8 database (masked strings are read as
/// UTF-8). `SLUICE_COPY_FORMAT=text` turns it off.
async fn binary_copy(
    source_version: i32,
    encoding: &str,
    target_admin: &Client,
) -> Result<bool, Error> {
    if std::env::var("SLUICE_COPY_FORMAT").is_ok_and(|f| f == "text") {
        return Ok(false);
    }
    let target_version: i32 = target_admin
        .query_one("select current_setting('server_version_num')::int", &[])
        .await
        .map_err(|e| pg_error("reading the target version", e))?
        .get(0);
    Ok(source_version / 10000 == target_version / 10000 && encoding == "UTF8")
}

/// Copy `tasks` into the loading database, `settings.jobs` at once, each worker on the
/// snapshot. Per-table reports, parts of one table added up.
async fn copy_rows(
    settings: &Settings,
    source: &Endpoint,
    load_cfg: &Endpoint,
    snapshot: &str,
    tasks: Vec<Task>,
    binary: bool,
    progress: &Arc<Progress>,
) -> Result<Vec<TableReport>, Error> {
    let queue: Arc<Mutex<Vec<Task>>> = Arc::new(Mutex::new(tasks.into_iter().rev().collect()));
    let parts: Arc<Mutex<Vec<TableReport>>> = Arc::new(Mutex::new(Vec::new()));
    let key = Arc::new(Zeroizing::new(settings.key.expose().as_bytes().to_vec()));
    let mut workers = Vec::new();
    let pending = queue.lock().map(|q| q.len()).unwrap_or(1);
    for _ in 0..settings.jobs.max(1).min(pending.max(1)) {
        let (queue, parts, key, progress) = (
            Arc::clone(&queue),
            Arc::clone(&parts),
            Arc::clone(&key),
            Arc::clone(progress),
        );
        let (source, load_cfg, snapshot) = (source.clone(), load_cfg.clone(), snapshot.to_string());
        workers.push(tokio::spawn(async move {
            let mut src = connect(&source, "the source").await?;
            let tx = adopt_snapshot(&mut src, &snapshot).await?;
            let dst = connect(&load_cfg, "the new target database").await?;
            dst.batch_execute("set synchronous_commit = off")
                .await
                .map_err(|e| pg_error("configuring the target session", e))?;
            loop {
                let next = queue.lock().map(|mut q| q.pop()).unwrap_or(None);
                let Some(task) = next else { break };
                let t = &task.table;
                progress(Event::TableStarted {
                    label: task.label.clone(),
                    estimated_rows: task.estimated_rows,
                });
                let began = Instant::now();
                let (label, p) = (task.label.clone(), Arc::clone(&progress));
                let report_progress = move |moved: Moved| {
                    p(Event::TableProgress {
                        label: label.clone(),
                        moved,
                    })
                };
                let moved = copy_table_with(
                    &tx,
                    &dst,
                    &t.name,
                    &t.columns,
                    task.filter.as_deref(),
                    &key,
                    CopyOptions {
                        freeze: true,
                        binary,
                    },
                    &report_progress,
                )
                .await?;
                let r = TableReport {
                    table: t.name.clone(),
                    rows: moved.rows,
                    bytes: moved.bytes,
                    seconds: began.elapsed().as_secs_f64(),
                    masked_columns: t.columns.iter().filter(|c| c.transform.is_some()).count(),
                    format: if moved.binary { "binary" } else { "text" },
                };
                progress(Event::TableDone {
                    label: task.label.clone(),
                    report: r.clone(),
                });
                if let Ok(mut all) = parts.lock() {
                    all.push(r);
                }
            }
            Ok::<(), Error>(())
        }));
    }
    join_workers(workers, "copy").await?;
    // Parts of one table ran side by side: rows and bytes add up, the table took the longest.
    let mut tables: Vec<TableReport> = Vec::new();
    for r in parts.lock().map(|r| r.clone()).unwrap_or_default() {
        match tables.iter_mut().find(|t| t.table == r.table) {
            Some(t) => {
                t.rows += r.rows;
                t.bytes += r.bytes;
                t.seconds = t.seconds.max(r.seconds);
            }
            None => tables.push(r),
        }
    }
    tables.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.table.cmp(&b.table)));

    Ok(tables)
}

/// Sequences, post-data and materialized views, once every row is in. Returns the number of
/// sequences set.
async fn finish(
    settings: &Settings,
    load_cfg: &Endpoint,
    snapshot_tx: &tokio_postgres::Transaction<'_>,
    catalog: &Catalog,
    plan: &Plan,
    post_dump: PostDump,
    progress: &Arc<Progress>,
) -> Result<usize, Error> {
    let step = |s: &str| progress(Event::Step(s.to_string()));
    let dst = connect(load_cfg, "the new target database").await?;
    step("setting sequences");
    let mut setvals = String::new();
    for s in &catalog.sequences {
        let row = snapshot_tx
            .query_one(
                &format!("select last_value, is_called from {}", s.sql()),
                &[],
            )
            .await
            .map_err(|e| pg_error(&format!("reading sequence {s}"), e))?;
        let (last, called): (i64, bool) = (row.get(0), row.get(1));
        setvals.push_str(&format!(
            "select pg_catalog.setval({}, {last}, {called});",
            quote_literal(&s.sql())
        ));
    }
    if !setvals.is_empty() {
        dst.batch_execute(&setvals)
            .await
            .map_err(|e| pg_error("setting sequences", e))?;
    }
    // A sequence behind its column (rows inserted with explicit ids) would hand out ids that
    // exist: move every owned sequence past its column's maximum.
    for r in dst
        .query(
            "select s.oid::regclass::text, t.oid::regclass::text, quote_ident(a.attname)
               from pg_class s
               join pg_depend d on d.classid = 'pg_class'::regclass and d.objid = s.oid
                and d.refclassid = 'pg_class'::regclass and d.deptype in ('a', 'i')
               join pg_class t on t.oid = d.refobjid
               join pg_attribute a on a.attrelid = t.oid and a.attnum = d.refobjsubid
              where s.relkind = 'S'",
            &[],
        )
        .await
        .map_err(|e| pg_error("reading sequence owners", e))?
    {
        let (seq, table, column): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        dst.batch_execute(&format!(
            "select setval({seq_lit}, m) from (select max({column})::bigint as m from {table}) x, {seq} s
              where x.m is not null and (s.last_value < x.m or (not s.is_called and s.last_value = x.m))",
            seq_lit = quote_literal(&seq),
        ))
        .await
        .map_err(|e| pg_error(&format!("moving {seq} past the maximum of {table}.{column}"), e))?;
    }

    step("creating indexes, constraints and triggers (post-data)");
    let post =
        tokio::task::block_in_place(|| post_dump.join()).map_err(|_| Error::External {
            what: "pg_dump".into(),
            detail: "the post-data dump stopped".into(),
        })??;
    post_data(
        load_cfg,
        &super::ddl::split(&String::from_utf8_lossy(&post)),
        settings.jobs,
    )
    .await?;

    if !plan.materialized_views.is_empty() {
        step("refreshing materialized views");
        // A view over another view needs that one first; retry in rounds until none is left.
        let mut left: Vec<&QualifiedName> = plan.materialized_views.iter().collect();
        while !left.is_empty() {
            let mut failed = Vec::new();
            let mut last_error = None;
            for mv in &left {
                if let Err(e) = dst
                    .batch_execute(&format!("refresh materialized view {}", mv.sql()))
                    .await
                {
                    last_error = Some(pg_error(&format!("refreshing {mv}"), e));
                    failed.push(*mv);
                }
            }
            if failed.len() == left.len() {
                return Err(last_error.unwrap_or_else(|| Error::Usage("materialized views".into())));
            }
            left = failed;
        }
    }

    Ok(catalog.sequences.len())
}

/// Wait for every worker; the first error wins (the others ran to their own end).
async fn join_workers(
    workers: Vec<tokio::task::JoinHandle<Result<(), Error>>>,
    kind: &str,
) -> Result<(), Error> {
    let mut first_error = None;
    for w in workers {
        let outcome = w.await.unwrap_or_else(|e| {
            Err(Error::External {
                what: "refresh".into(),
                detail: format!("a {kind} worker stopped: {e}"),
            })
        });
        if let Err(e) = outcome {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Run one post-data entry on `client`, setting its session settings first when they changed.
async fn run_entry(
    client: &Client,
    in_force: &mut String,
    e: &super::ddl::Entry,
) -> Result<(), Error> {
    if *in_force != e.settings {
        client
            .batch_execute(&e.settings)
            .await
            .map_err(|err| pg_error("applying pg_dump's session settings", err))?;
        in_force.clone_from(&e.settings);
    }
    client.batch_execute(&e.sql).await.map_err(|err| {
        let first = e.sql.lines().map(str::trim).collect::<Vec<_>>().join(" ");
        let first: String = first.chars().take(160).collect();
        pg_error(&format!("post-data {} `{first}`", e.kind), err)
    })
}

/// Indexes and constraints on `jobs` connections at once, then foreign keys one by one, then
/// the rest in dump order (what `pg_restore --jobs` does, from the same pg_dump output).
async fn post_data(
    cfg: &Endpoint,
    entries: &[super::ddl::Entry],
    jobs: usize,
) -> Result<(), Error> {
    use super::ddl::Phase;
    let build: std::collections::VecDeque<super::ddl::Entry> = entries
        .iter()
        .filter(|e| e.phase == Phase::Build)
        .cloned()
        .collect();
    let workers = jobs.max(1).min(build.len());
    let queue = Arc::new(Mutex::new(build));
    let mut handles = Vec::new();
    for _ in 0..workers {
        let (queue, cfg) = (Arc::clone(&queue), cfg.clone());
        handles.push(tokio::spawn(async move {
            let client = connect(&cfg, "the new target database").await?;
            let mut in_force = String::new();
            loop {
                let next = queue.lock().map(|mut q| q.pop_front()).unwrap_or(None);
                let Some(e) = next else { break };
                run_entry(&client, &mut in_force, &e).await?;
            }
            Ok::<(), Error>(())
        }));
    }
    join_workers(handles, "post-data").await?;
    let client = connect(cfg, "the new target database").await?;
    let mut in_force = String::new();
    for phase in [Phase::ForeignKeys, Phase::Rest] {
        for e in entries.iter().filter(|e| e.phase == phase) {
            run_entry(&client, &mut in_force, e).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::plan::TablePlan;

    fn plan(bytes: &[i64]) -> Plan {
        Plan {
            tables: bytes
                .iter()
                .enumerate()
                .map(|(i, b)| TablePlan {
                    name: QualifiedName {
                        schema: "public".into(),
                        name: format!("t{i}"),
                    },
                    columns: vec![],
                    estimated_rows: 1000,
                    bytes: *b,
                })
                .collect(),
            ..Plan::default()
        }
    }

    #[test]
    fn shards_partition_the_tasks_and_balance_them_by_size() {
        let p = plan(&[1 << 30, 1 << 20]);
        let tasks = || {
            let mut t = split_tasks(&p, 8, 150000, 8192, SPLIT_BYTES);
            for (i, task) in t.iter_mut().enumerate() {
                task.estimated_rows = [900, 100, 500, 400, 300][i % 5];
            }
            t
        };
        let all: Vec<String> = tasks().into_iter().map(|t| t.label).collect();
        let shards: Vec<Vec<String>> = (0..3)
            .map(|i| {
                share(tasks(), Shard { index: i, count: 3 })
                    .into_iter()
                    .map(|t| t.label)
                    .collect()
            })
            .collect();
        let mut dealt: Vec<String> = shards.concat();
        dealt.sort();
        let mut expected = all.clone();
        expected.sort();
        assert_eq!(dealt, expected, "every task exactly once");
        assert!(shards.iter().all(|s| !s.is_empty()));
        assert_eq!(
            share(tasks(), Shard { index: 0, count: 1 }).len(),
            all.len()
        );
        assert!(Shard::parse("2/4").is_ok());
        for bad in ["4/4", "1", "a/2", "0/0", "-1/2"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn large_tables_split_into_contiguous_block_ranges() {
        let p = plan(&[1 << 30, 1 << 20]);
        let tasks = split_tasks(&p, 8, 150000, 8192, SPLIT_BYTES);
        let big: Vec<&Task> = tasks.iter().filter(|t| t.table.name.name == "t0").collect();
        assert_eq!(big.len(), 4, "jobs / 2 streams");
        assert_eq!(big[0].filter.as_deref(), Some("ctid < '(32768,0)'::tid"));
        assert_eq!(
            big[1].filter.as_deref(),
            Some("ctid >= '(32768,0)'::tid and ctid < '(65536,0)'::tid")
        );
        assert_eq!(big[3].filter.as_deref(), Some("ctid >= '(98304,0)'::tid"));
        assert_eq!(big[2].label, "public.t0 [3/4]");
        let small: Vec<&Task> = tasks.iter().filter(|t| t.table.name.name == "t1").collect();
        assert_eq!(small.len(), 1);
        assert!(small[0].filter.is_none());
        // Two jobs, or a server before TID range scans: whole tables (and COPY FREEZE).
        assert_eq!(split_tasks(&p, 2, 150000, 8192, SPLIT_BYTES).len(), 2);
        assert_eq!(split_tasks(&p, 8, 130000, 8192, SPLIT_BYTES).len(), 2);
    }
}
