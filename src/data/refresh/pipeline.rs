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
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio_postgres::Client;

use crate::data::pg::tls::Endpoint;
use zeroize::Zeroizing;

use crate::data::marks::{Mark, Role};
use crate::data::pg::admin::databases;
use crate::data::pg::admin::drop_loading;
use crate::data::pg::admin::open_marked;
use crate::data::pg::admin::set_mark;
use crate::data::pg::admin::take_refresh_lock;
use crate::data::pg::catalog::{self, Catalog, QualifiedName, sql_ident};
use crate::data::pg::connect;
use crate::data::pg::connect_admin;
use crate::data::pg::parse_url;
use crate::data::pg::pg_error;
use crate::data::pg::quote_literal;
use crate::data::pg::runtime;
use crate::data::pg::snapshot::{adopt_snapshot, export_snapshot};
use crate::data::pg::tools::apply_sql;
use crate::data::pg::tools::check_pg_dump;
use crate::data::pg::tools::dump_section;
use crate::data::refresh::plan::Plan;
use crate::data::refresh::post::finish;
use crate::data::refresh::post::join_workers;
use crate::data::refresh::post::spawn_post_dump;
pub(crate) use crate::data::refresh::report::{
    Event, Progress, Report, Settings, ShardReport, SubsetReport, TableReport,
};
use crate::data::refresh::stream::{CopyOptions, Moved, copy_table_with};
use crate::data::refresh::swap::DISPLACED_SUFFIX;
use crate::data::refresh::swap::LOADING_SUFFIX;
use crate::data::refresh::swap::PREVIOUS_SUFFIX;
use crate::data::refresh::swap::Recovered;
use crate::data::refresh::swap::check_replaceable;
use crate::data::refresh::swap::recover;
use crate::data::refresh::swap::replace;
use crate::data::refresh::tasks::Shard;
use crate::data::refresh::tasks::Task;
use crate::data::refresh::tasks::share;
use crate::data::refresh::tasks::split_min_bytes;
use crate::data::refresh::tasks::split_tasks;
use crate::data::refresh::tasks::subset_tasks;
use crate::error::Error;

/// Run a refresh: see the module docs for the order of work.
pub(crate) fn refresh(
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
        crate::data::refresh::interrupt::watch(
            &target,
            &target_db,
            &format!("{target_db}{LOADING_SUFFIX}"),
        );
    }
    rt.block_on(async {
        let step = |s: &str| progress(Event::Step(s.to_string()));
        step("opening the source snapshot");
        let mut leader = connect(&source, "the source").await?;
        let source_id = crate::data::pg::guard::source_id(&leader).await?;
        // Asked before any work: a target that is the source fails in a second, not after
        // minutes of subset selection.
        let loading = format!("{target_db}{LOADING_SUFFIX}");
        let admin = if settings.explain {
            None
        } else {
            let admin = connect_admin(&target).await?;
            crate::data::pg::guard::check_target(
                &admin,
                std::slice::from_ref(&source_id),
                &[
                    &target_db,
                    &loading,
                    &format!("{target_db}{PREVIOUS_SUFFIX}"),
                    &format!("{target_db}{DISPLACED_SUFFIX}"),
                ],
                settings.same_server,
                &format!("replacing `{target_db}`"),
            )
            .await?;
            Some(admin)
        };
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
        let mut plan = build(&catalog)?;
        let (names, cut) = crate::data::refresh::names::attach(&snapshot_tx, &mut plan).await?;
        if names > 0 {
            step(&format!(
                "scrub looks for the {names} person name(s) of the masked name columns{}",
                if cut { " (the first ones only: the limit)" } else { "" }
            ));
        }
        // A subset: which rows of which leaves, worked out on the source before the target is
        // touched.
        let mut selection: Option<BTreeMap<QualifiedName, roaring::RoaringTreemap>> = None;
        let mut whole: BTreeSet<QualifiedName> = BTreeSet::new();
        let mut subset_report = None;
        if let Some(sp) = &plan.subset {
            step("selecting the subset");
            let key = crate::data::mask::MaskKey::new(settings.key.expose().as_bytes());
            let mut rows = crate::data::subset::pg::PgRows::new(&snapshot_tx).await?;
            let work = crate::data::subset::pg::starting_rows(&rows, sp, &catalog, &key).await?;
            let closure = crate::data::subset::closure::close(
                &sp.edges,
                work,
                &mut rows,
                sp.depth_limit,
                sp.memory_budget,
            )
            .await?;
            subset_report = Some(SubsetReport {
                tables: crate::data::subset::pg::explain(&closure),
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
        let Some(admin) = admin else {
            report.seconds = started.elapsed().as_secs_f64();
            return Ok(report);
        };
        step("preparing the target");
        take_refresh_lock(&admin, &target_db, settings.shard.is_some()).await?;
        crate::data::refresh::interrupt::set_stage(crate::data::refresh::interrupt::Stage::Loading);
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
                (removed, Some(spawn_post_dump(&source, &snapshot, settings.grants)))
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
        let post_dump = post_dump.unwrap_or_else(|| spawn_post_dump(&source, &snapshot, settings.grants));
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
        crate::data::refresh::interrupt::set_stage(crate::data::refresh::interrupt::Stage::Done);
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
    adopt_snapshot(client, id).await.map_err(|e| match e.sqlstate() {
        // invalid_parameter_value: no such snapshot is held.
        Some("22023") => Error::Db {
            doing: format!("adopting snapshot `{id}`"),
            message: "the snapshot is not held on the source (the transaction that exported it has ended, or it was exported on another server); start `sluice snapshot PLAN` again and pass its ID".into(),
            sqlstate: Some("22023".into()),
        },
        _ => e,
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
    crate::data::refresh::interrupt::hold_if_signalled();
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
        let roles = crate::data::pg::ddl::target_roles(side.admin).await?;
        let pre = tokio::task::block_in_place(|| {
            dump_section(source, snapshot, "pre-data", settings.grants)
        })?;
        let (pre, notes) = crate::data::pg::ddl::prepare(&pre, &roles);
        for n in notes {
            progress(Event::Step(format!("warning: {n}")));
        }
        tokio::task::block_in_place(|| apply_sql(side.load_cfg, &pre))?;
        Ok::<(), Error>(())
    };
    if let Err(e) = filled.await {
        drop_loading(side.admin, side.loading).await;
        return Err(e);
    }
    Ok(removed)
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
                    columns: t
                        .columns
                        .iter()
                        .map(|c| {
                            let how = match &c.transform {
                                None => "keep".to_string(),
                                Some(tr) => format!(
                                    "{} (domain {})",
                                    crate::data::mask::parse::transform_name(tr),
                                    c.domain
                                ),
                            };
                            (c.name.clone(), how)
                        })
                        .collect(),
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
