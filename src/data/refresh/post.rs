//! After the rows: sequences from the snapshot, post-data (indexes and constraints on several
//! connections, foreign keys next, then triggers and the rest) in pg_dump's dependency order,
//! and materialized views.

use std::sync::{Arc, Mutex};

use tokio_postgres::Client;

use crate::data::pg::catalog::{Catalog, QualifiedName};
use crate::data::pg::connect;
use crate::data::pg::pg_error;
use crate::data::pg::quote_literal;
use crate::data::pg::tls::Endpoint;
use crate::data::pg::tools::dump_section;
use crate::data::refresh::plan::Plan;
use crate::data::refresh::report::{Event, Progress, Settings};
use crate::error::Error;

pub(crate) type PostDump = std::thread::JoinHandle<Result<Vec<u8>, Error>>;

/// The post-data section, dumped under the snapshot on a thread of its own.
pub(crate) fn spawn_post_dump(source: &Endpoint, snapshot: &str, grants: bool) -> PostDump {
    let (source, snapshot) = (source.clone(), snapshot.to_string());
    std::thread::spawn(move || dump_section(&source, &snapshot, "post-data", grants))
}

/// Sequences, post-data and materialized views, once every row is in. Returns the number of
/// sequences set.
pub(crate) async fn finish(
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
              where s.relkind = 'S' and a.atttypid in ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)",
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
    let (post, notes) =
        crate::data::pg::ddl::prepare(&post, &crate::data::pg::ddl::target_roles(&dst).await?);
    for n in notes {
        progress(Event::Step(format!("warning: {n}")));
    }
    post_data(
        load_cfg,
        &crate::data::pg::ddl::split(&String::from_utf8_lossy(&post)),
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
pub(crate) async fn join_workers(
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
pub(crate) async fn run_entry(
    client: &Client,
    in_force: &mut String,
    e: &crate::data::pg::ddl::Entry,
) -> Result<(), Error> {
    if *in_force != e.settings {
        client
            .batch_execute(&e.settings)
            .await
            .map_err(|err| pg_error("applying pg_dump's session settings", err))?;
        in_force.clone_from(&e.settings);
    }
    client.batch_execute(&e.sql).await.map_err(|err| {
        // The whole statement: schema text holds no row data, and a cut one hides which part
        // failed.
        let sql = e.sql.lines().map(str::trim).collect::<Vec<_>>().join(" ");
        pg_error(
            &format!(
                "building post-data {} {} (statement: {})",
                e.kind,
                e.name,
                sql.trim()
            ),
            err,
        )
    })
}

/// Indexes and constraints on `jobs` connections at once, then partition index attachments,
/// then foreign keys one by one, then the rest in dump order (what `pg_restore --jobs` does,
/// from the same pg_dump output).
pub(crate) async fn post_data(
    cfg: &Endpoint,
    entries: &[crate::data::pg::ddl::Entry],
    jobs: usize,
) -> Result<(), Error> {
    use crate::data::pg::ddl::Phase;
    let build: std::collections::VecDeque<crate::data::pg::ddl::Entry> = entries
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
    for phase in [Phase::Attach, Phase::ForeignKeys, Phase::Rest] {
        for e in entries.iter().filter(|e| e.phase == phase) {
            run_entry(&client, &mut in_force, e).await?;
        }
    }
    Ok(())
}
