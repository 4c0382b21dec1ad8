//! Showing a refresh as it runs: [`Event`]s in, text out. On a terminal, a bar per running
//! table and a total line redrawn in place (at most ten times a second); elsewhere, one plain
//! log line per step and per finished table. The summary table is printed at the end either way.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::data::refresh::report::{Event, Report};
use crate::data::refresh::stream::Moved;

struct Running {
    estimated: i64,
    moved: Moved,
    started: Instant,
}

struct State {
    running: BTreeMap<String, Running>,
    done_rows: u64,
    done_bytes: u64,
    estimated_total: i64,
    drawn_lines: usize,
    last_draw: Option<Instant>,
    started: Instant,
}

/// Renders [`Event`]s to a writer (stderr in the CLI).
pub(crate) struct Renderer {
    tty: bool,
    out: Mutex<Box<dyn Write + Send>>,
    state: Mutex<State>,
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_000_000.0
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-3)
}

impl Renderer {
    /// A renderer; `tty` selects the redrawn bars, `estimated_total` the rows expected overall.
    pub(crate) fn new(out: Box<dyn Write + Send>, tty: bool, estimated_total: i64) -> Renderer {
        Renderer {
            tty,
            out: Mutex::new(out),
            state: Mutex::new(State {
                running: BTreeMap::new(),
                done_rows: 0,
                done_bytes: 0,
                estimated_total,
                drawn_lines: 0,
                last_draw: None,
                started: Instant::now(),
            }),
        }
    }

    /// Take one event.
    pub(crate) fn event(&self, e: Event) {
        let (Ok(mut st), Ok(mut out)) = (self.state.lock(), self.out.lock()) else {
            return;
        };
        let mut line = None;
        let mut force = false;
        match e {
            Event::Step(s) => {
                line = Some(format!(
                    "refresh: {s} (at {:.1} s)",
                    st.started.elapsed().as_secs_f64()
                ));
                force = true;
            }
            Event::TableStarted {
                label,
                estimated_rows,
            } => {
                st.running.insert(
                    label,
                    Running {
                        estimated: estimated_rows,
                        moved: Moved::default(),
                        started: Instant::now(),
                    },
                );
                force = true;
            }
            Event::TableProgress { label, moved } => {
                if let Some(r) = st.running.get_mut(&label) {
                    r.moved = moved;
                }
            }
            Event::TableDone { label, report: r } => {
                st.running.remove(&label);
                st.done_rows += r.rows;
                st.done_bytes += r.bytes;
                line = Some(format!(
                    "refresh: copied {}: {} rows, {:.1} MB in {:.1} s ({:.0} rows/s){}",
                    label,
                    r.rows,
                    mb(r.bytes),
                    r.seconds,
                    r.rows as f64 / r.seconds.max(1e-3),
                    if r.masked_columns > 0 {
                        format!(", {} column(s) masked", r.masked_columns)
                    } else {
                        String::new()
                    }
                ));
                force = true;
            }
        }
        if !self.tty {
            if let Some(l) = line {
                let _ = writeln!(out, "{l}");
            }
            return;
        }
        let due = st
            .last_draw
            .is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
        if !force && !due {
            return;
        }
        // Erase the bars, print the log line above them, draw the bars again.
        let mut text = String::new();
        if st.drawn_lines > 0 {
            text.push_str(&format!("\x1b[{}A\x1b[J", st.drawn_lines));
        }
        if let Some(l) = line {
            text.push_str(&l);
            text.push('\n');
        }
        let mut lines = 0;
        let (mut rows, mut bytes) = (st.done_rows, st.done_bytes);
        for (name, r) in &st.running {
            rows += r.moved.rows;
            bytes += r.moved.bytes;
            let frac = if r.estimated > 0 {
                (r.moved.rows as f64 / r.estimated as f64).min(1.0)
            } else {
                0.0
            };
            let filled = (frac * 20.0) as usize;
            text.push_str(&format!(
                "  {:<32} [{}{}] {:>11} rows {:>8.1} MB {:>9.0} rows/s\n",
                name,
                "#".repeat(filled),
                "-".repeat(20 - filled),
                r.moved.rows,
                mb(r.moved.bytes),
                rate(r.moved.rows, r.started.elapsed())
            ));
            lines += 1;
        }
        if !st.running.is_empty() {
            let elapsed = st.started.elapsed();
            let per_s = rate(rows, elapsed);
            let eta = if st.estimated_total > rows as i64 && per_s > 0.0 {
                format!(
                    ", ETA {:.0} s",
                    (st.estimated_total - rows as i64) as f64 / per_s
                )
            } else {
                String::new()
            };
            text.push_str(&format!(
                "  total: {rows} rows, {:.1} MB, {per_s:.0} rows/s{eta}\n",
                mb(bytes)
            ));
            lines += 1;
        }
        st.drawn_lines = lines;
        st.last_draw = Some(Instant::now());
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }
}

/// The summary printed when a refresh succeeds.
pub(crate) fn summary(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    let width = report
        .tables
        .iter()
        .map(|t| t.table.to_string().len())
        .max()
        .unwrap_or(5)
        .max(5);
    writeln!(
        out,
        "{:<width$}  {:>12}  {:>10}  {:>8}  {:>12}  {:>6}",
        "table", "rows", "MB", "seconds", "rows/s", "masked"
    )?;
    for t in &report.tables {
        writeln!(
            out,
            "{:<width$}  {:>12}  {:>10.1}  {:>8.2}  {:>12.0}  {:>6}",
            t.table.to_string(),
            t.rows,
            mb(t.bytes),
            t.seconds,
            t.rows as f64 / t.seconds.max(1e-3),
            t.masked_columns
        )?;
    }
    let rows: u64 = report.tables.iter().map(|t| t.rows).sum();
    let bytes: u64 = report.tables.iter().map(|t| t.bytes).sum();
    writeln!(
        out,
        "{:<width$}  {:>12}  {:>10.1}  {:>8.2}",
        "total",
        rows,
        mb(bytes),
        report.seconds
    )?;
    if let Some(s) = report.shard.as_ref().filter(|s| !s.swapped) {
        writeln!(
            out,
            "shard {}/{} of plan `{}`: its rows are in `{}{}`; {} of {} shard(s) done, the last to finish builds indexes and swaps",
            s.index,
            s.count,
            report.plan,
            report.target_database,
            crate::data::refresh::swap::LOADING_SUFFIX,
            s.done,
            s.count
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "refreshed `{}` from plan `{}`{}; {} table(s) schema only, {} sequence(s), {} materialized view(s)",
        report.target_database,
        report.plan,
        match &report.previous_database {
            Some(p) => format!(" (previous contents kept as `{p}`)"),
            None => String::new(),
        },
        report.schema_only,
        report.sequences,
        report.materialized_views
    )?;
    if let Some(s) = &report.subset {
        writeln!(
            out,
            "subset: {} rows selected across {} table(s); key sets {} bytes ({:.2} per row)",
            s.rows,
            s.tables.len(),
            s.key_bytes,
            s.key_bytes as f64 / s.rows.max(1) as f64
        )?;
        if s.spilled_bytes > 0 {
            writeln!(
                out,
                "subset: {} bytes of pending work spilled (encrypted) beyond subset.memory",
                s.spilled_bytes
            )?;
        }
        for (fk, n) in &s.orphans {
            writeln!(
                out,
                "subset: {n} orphan row(s) left out ({fk} points at no row)"
            )?;
        }
    }
    for l in &report.removed_leftovers {
        writeln!(out, "removed `{l}`, left behind by an interrupted refresh")?;
    }
    if let Some(db) = &report.completed_swap {
        writeln!(
            out,
            "completed the swap an interrupted run had begun: its finished copy became `{db}` before this run's load"
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::pg::catalog::QualifiedName;
    use crate::data::refresh::report::TableReport;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn feed(tty: bool) -> String {
        let buf = Buf::default();
        let r = Renderer::new(Box::new(buf.clone()), tty, 1000);
        r.event(Event::Step("copying rows".into()));
        r.event(Event::TableStarted {
            label: "public.big".into(),
            estimated_rows: 1000,
        });
        std::thread::sleep(Duration::from_millis(120));
        r.event(Event::TableProgress {
            label: "public.big".into(),
            moved: Moved {
                rows: 500,
                bytes: 2_000_000,
                binary: false,
            },
        });
        r.event(Event::TableDone {
            label: "public.big".into(),
            report: TableReport {
                table: QualifiedName {
                    schema: "public".into(),
                    name: "big".into(),
                },
                rows: 1000,
                bytes: 4_000_000,
                seconds: 2.0,
                masked_columns: 1,
                format: "text",
                columns: Default::default(),
            },
        });
        let out = buf.0.lock().unwrap().clone();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_terminal_gets_bars_and_a_total_redrawn_in_place() {
        let out = feed(true);
        assert!(out.contains("[##########----------]"), "{out:?}");
        assert!(out.contains("total: 500 rows, 2.0 MB"), "{out:?}");
        assert!(out.contains("ETA"), "{out:?}");
        assert!(
            out.contains("\x1b[2A\x1b[J"),
            "bars erased before the next line: {out:?}"
        );
        assert!(out.contains(
            "copied public.big: 1000 rows, 4.0 MB in 2.0 s (500 rows/s), 1 column(s) masked"
        ));
    }

    #[test]
    fn a_log_gets_one_line_per_step_and_table() {
        let out = feed(false);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert!(lines[0].starts_with("refresh: copying rows (at "));
        assert!(!out.contains('\x1b'));
    }
}
