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

use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, NoTls};
use zeroize::Zeroizing;

use super::catalog::{self, Catalog, QualifiedName, sql_ident};
use super::pg_error;
use super::plan::{Plan, TablePlan};
use super::stream::{Moved, adopt_snapshot, copy_table_with, export_snapshot};
use crate::error::Error;
use crate::secrets::SecretValue;

/// Suffix of the database a refresh loads into before the swap.
pub const LOADING_SUFFIX: &str = "_sluice_new";
/// Suffix of the previous target, kept until the next success.
pub const PREVIOUS_SUFFIX: &str = "_prev";
/// The marker every database sluice creates carries in its comment.
const MARK: &str = "sluice:";

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
    /// What the subset selected, when the plan subsets.
    pub subset: Option<SubsetReport>,
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

pub(crate) fn parse_url(url: &SecretValue, side: &str) -> Result<Config, Error> {
    // The parser's message may quote the URL; say only which one is wrong.
    url.expose().parse::<Config>().map_err(|_| {
        Error::Usage(format!(
            "the {side} URL is not a PostgreSQL connection URL (postgres://user:password@host:port/dbname); it is not shown"
        ))
    })
}

pub(crate) async fn connect(config: &Config, what: &str) -> Result<Client, Error> {
    let (client, conn) = config
        .connect(NoTls)
        .await
        .map_err(|e| pg_error(&format!("connecting to {what} (the URL is not shown)"), e))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
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
fn libpq_env(config: &Config) -> Vec<(&'static str, Zeroizing<String>)> {
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
    env
}

fn run_program(
    name: &str,
    args: &[&str],
    config: &Config,
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
    })?;
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
fn dump_section(source: &Config, snapshot: &str, section: &str) -> Result<Vec<u8>, Error> {
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

/// The comment sluice puts on databases it creates.
fn mark(role: &str, plan: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!(
        "{MARK}{}",
        serde_json::json!({ "role": role, "plan": plan, "at": now })
    )
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Databases on the target server: name → comment.
async fn databases(admin: &Client) -> Result<Vec<(String, Option<String>)>, Error> {
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
async fn connect_admin(target: &Config) -> Result<Client, Error> {
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
    rt.block_on(async {
        let step = |s: &str| progress(Event::Step(s.to_string()));
        step("opening the source snapshot");
        let mut leader = connect(&source, "the source").await?;
        let server_version: i32 = leader
            .query_one("select current_setting('server_version_num')::int", &[])
            .await
            .map_err(|e| pg_error("reading the source version", e))?
            .get(0);
        check_pg_dump(server_version)?;
        let (snapshot_tx, snapshot) = export_snapshot(&mut leader).await?;
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
            let closure = super::subset::close(&sp.edges, work, &mut rows, sp.depth_limit).await?;
            subset_report = Some(SubsetReport {
                tables: super::subset_pg::explain(&closure),
                orphans: closure.orphans.clone(),
                rows: closure.total(),
                key_bytes: closure.key_bytes(),
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
        if settings.explain {
            return Ok(Report {
                plan: settings.name.clone(),
                target_database: target_db.clone(),
                previous_database: None,
                tables: Vec::new(),
                schema_only: plan.schema_only.len(),
                sequences: 0,
                materialized_views: 0,
                removed_leftovers: Vec::new(),
                subset: subset_report,
                seconds: started.elapsed().as_secs_f64(),
            });
        }
        let same_server = source.get_hosts() == target.get_hosts()
            && source.get_ports() == target.get_ports();
        if same_server && source.get_dbname() == Some(target_db.as_str()) {
            return Err(Error::Usage(
                "source and target are the same database; a refresh would replace its own source".into(),
            ));
        }

        step("preparing the target");
        let admin = connect_admin(&target).await?;
        let lock: bool = admin
            .query_one(
                "select pg_try_advisory_lock(hashtext('sluice refresh ' || $1))",
                &[&target_db],
            )
            .await
            .map_err(|e| pg_error("taking the refresh lock", e))?
            .get(0);
        if !lock {
            return Err(Error::External {
                what: "postgresql".into(),
                detail: format!("another refresh into `{target_db}` is running; try again when it ends"),
            });
        }
        let loading = format!("{target_db}{LOADING_SUFFIX}");
        let previous = format!("{target_db}{PREVIOUS_SUFFIX}");
        let removed = recover(&admin, &target_db, &loading, &previous).await?;
        let encoding: String = snapshot_tx
            .query_one("select pg_encoding_to_char(encoding) from pg_database where datname = current_database()", &[])
            .await
            .map_err(|e| pg_error("reading the source encoding", e))?
            .get(0);
        admin
            .batch_execute(&format!(
                "create database {} template template0 encoding {}",
                sql_ident(&loading),
                quote_literal(&encoding)
            ))
            .await
            .map_err(|e| pg_error(&format!("creating database {loading} on the target"), e))?;
        admin
            .batch_execute(&format!(
                "comment on database {} is {}",
                sql_ident(&loading),
                quote_literal(&mark("loading", &settings.name))
            ))
            .await
            .map_err(|e| pg_error("marking the new database", e))?;
        let mut load_cfg = target.clone();
        load_cfg.dbname(&loading);

        let block_size: i64 = snapshot_tx
            .query_one("select current_setting('block_size')::int8", &[])
            .await
            .map_err(|e| pg_error("reading the block size", e))?
            .get(0);
        let result = load(
            settings,
            &source,
            &load_cfg,
            (&snapshot, &snapshot_tx),
            &catalog,
            &plan,
            (server_version, block_size),
            (selection.as_ref(), &whole),
            &progress,
        )
        .await;
        let (tables, sequences) = match result {
            Ok(r) => r,
            Err(e) => {
                let _ = admin
                    .batch_execute(&format!(
                        "drop database if exists {} with (force)",
                        sql_ident(&loading)
                    ))
                    .await;
                return Err(e);
            }
        };
        drop(snapshot_tx);

        step("swapping the new database into place");
        let had_previous = swap(&admin, &target_db, &loading, &previous, &settings.name).await?;
        step("done");
        Ok(Report {
            plan: settings.name.clone(),
            target_database: target_db.clone(),
            previous_database: had_previous.then_some(previous),
            tables,
            schema_only: plan.schema_only.len(),
            sequences,
            materialized_views: plan.materialized_views.len(),
            removed_leftovers: removed,
            subset: subset_report,
            seconds: started.elapsed().as_secs_f64(),
        })
    })
}

/// Undo what a killed run left: a half-loaded database is dropped; a swap cut short (target
/// gone, previous kept) is rolled back. Only databases carrying sluice's mark are touched.
async fn recover(
    admin: &Client,
    target_db: &str,
    loading: &str,
    previous: &str,
) -> Result<Vec<String>, Error> {
    let dbs = databases(admin).await?;
    let ours = |name: &str| {
        dbs.iter()
            .any(|(n, c)| n == name && c.as_deref().is_some_and(|c| c.starts_with(MARK)))
    };
    let exists = |name: &str| dbs.iter().any(|(n, _)| n == name);
    let mut removed = Vec::new();
    if exists(loading) {
        if !ours(loading) {
            return Err(Error::External {
                what: "postgresql".into(),
                detail: format!(
                    "database `{loading}` exists on the target but sluice did not create it; rename or drop it yourself"
                ),
            });
        }
        admin
            .batch_execute(&format!(
                "drop database {} with (force)",
                sql_ident(loading)
            ))
            .await
            .map_err(|e| pg_error(&format!("removing the leftover {loading}"), e))?;
        removed.push(loading.to_string());
    }
    if !exists(target_db) && ours(previous) {
        admin
            .batch_execute(&format!(
                "alter database {} rename to {}",
                sql_ident(previous),
                sql_ident(target_db)
            ))
            .await
            .map_err(|e| pg_error(&format!("restoring {target_db} from {previous}"), e))?;
    }
    Ok(removed)
}

/// End every other session on `databases` (autovacuum workers included) and wait until they are
/// gone, polling briefly: DROP and RENAME would otherwise wait or fail on them.
async fn end_sessions(admin: &Client, databases: &[String]) -> Result<(), Error> {
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

/// Replace `target_db` by `loading` in one transaction; the old one becomes `previous`.
async fn swap(
    admin: &Client,
    target_db: &str,
    loading: &str,
    previous: &str,
    plan: &str,
) -> Result<bool, Error> {
    let dbs = databases(admin).await?;
    let exists = |name: &str| dbs.iter().any(|(n, _)| n == name);
    if exists(previous) {
        let ours = dbs
            .iter()
            .any(|(n, c)| n == previous && c.as_deref().is_some_and(|c| c.starts_with(MARK)));
        if !ours {
            return Err(Error::External {
                what: "postgresql".into(),
                detail: format!(
                    "database `{previous}` exists on the target but sluice did not create it; rename or drop it, then run again (the loaded copy was discarded)"
                ),
            });
        }
        end_sessions(admin, &[previous.to_string()]).await?;
        admin
            .batch_execute(&format!(
                "drop database {} with (force)",
                sql_ident(previous)
            ))
            .await
            .map_err(|e| pg_error(&format!("dropping {previous}"), e))?;
    }
    let had_target = exists(target_db);
    let mut sql = String::from("begin;");
    if had_target {
        sql.push_str(&format!(
            "alter database {} rename to {};comment on database {} is {};",
            sql_ident(target_db),
            sql_ident(previous),
            sql_ident(previous),
            quote_literal(&mark("previous", plan))
        ));
    }
    sql.push_str(&format!(
        "alter database {} rename to {};comment on database {} is {};commit;",
        sql_ident(loading),
        sql_ident(target_db),
        sql_ident(target_db),
        quote_literal(&mark("current", plan))
    ));
    // Sessions on the old target (and an autovacuum worker analyzing either database) are
    // ended only now and waited for; one that connects in between makes the rename fail
    // (55006), so end them again and retry.
    let both = [target_db.to_string(), loading.to_string()];
    let mut attempt = 0;
    loop {
        end_sessions(admin, &both).await?;
        match admin.batch_execute(&sql).await {
            Ok(()) => return Ok(had_target),
            Err(e) => {
                let _ = admin.batch_execute("rollback").await;
                let busy = e.code().is_some_and(|c| c.code() == "55006");
                attempt += 1;
                if !busy || attempt >= 50 {
                    let _ = admin
                        .batch_execute(&format!(
                            "drop database if exists {} with (force)",
                            sql_ident(loading)
                        ))
                        .await;
                    return Err(pg_error(&format!("swapping {loading} into {target_db}"), e));
                }
                tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
            }
        }
    }
}

/// Schema, rows, sequences, post-data and materialized views into the fresh database.
#[allow(clippy::too_many_arguments)]
async fn load(
    settings: &Settings,
    source: &Config,
    load_cfg: &Config,
    (snapshot, snapshot_tx): (&str, &tokio_postgres::Transaction<'_>),
    catalog: &Catalog,
    plan: &Plan,
    (server_version, block_size): (i32, i64),
    (selection, whole): (
        Option<&BTreeMap<QualifiedName, roaring::RoaringTreemap>>,
        &BTreeSet<QualifiedName>,
    ),
    progress: &Arc<Progress>,
) -> Result<(Vec<TableReport>, usize), Error> {
    let step = |s: &str| progress(Event::Step(s.to_string()));
    step("creating the schema (pre-data)");
    let apply = |sql: &[u8]| {
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
    };
    let pre = tokio::task::block_in_place(|| dump_section(source, snapshot, "pre-data"))?;
    // The post-data dump reads the same snapshot: fetch it while the rows stream.
    let post_dump = {
        let (source, snapshot) = (source.clone(), snapshot.to_string());
        std::thread::spawn(move || dump_section(&source, &snapshot, "post-data"))
    };
    tokio::task::block_in_place(|| apply(&pre))?;

    step("copying rows");
    let tasks = match selection {
        None => split_tasks(
            plan,
            settings.jobs,
            server_version,
            block_size,
            split_min_bytes(),
        ),
        Some(sel) => subset_tasks(plan, sel, whole),
    };
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
                    true,
                    &report_progress,
                )
                .await?;
                let r = TableReport {
                    table: t.name.clone(),
                    rows: moved.rows,
                    bytes: moved.bytes,
                    seconds: began.elapsed().as_secs_f64(),
                    masked_columns: t.columns.iter().filter(|c| c.transform.is_some()).count(),
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

    tables.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.table.cmp(&b.table)));
    Ok((tables, catalog.sequences.len()))
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
async fn post_data(cfg: &Config, entries: &[super::ddl::Entry], jobs: usize) -> Result<(), Error> {
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
