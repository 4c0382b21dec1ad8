//! Ctrl-C and SIGTERM during a refresh: the running queries are cancelled on both servers, the
//! `pg_dump`/`psql` children stopped, the unfinished loading database dropped, what was cleaned
//! up said on stderr, and the process exits 130 (SIGINT) or 143 (SIGTERM). A second signal exits
//! at once. A swap under way is let finish first (it is one short transaction), so the target
//! name always holds the old or the new database.
//!
//! In: what the refresh is doing ([`watch`], [`set_stage`]), its connections' cancel keys and
//! its children's process IDs (registered as they start). Out: nothing until a signal; then the
//! process ends here, on the signal thread, whatever the main thread is blocked on.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};
use std::time::{Duration, Instant};

use crate::data::pg::catalog::sql_ident;
use crate::data::pg::tls::Endpoint;

/// How far the refresh is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Stage {
    /// Nothing of this run's is on the target server.
    Idle = 0,
    /// The loading database may exist and is this run's to drop.
    Loading = 1,
    /// A swap is under way; let it finish.
    Swapping = 2,
    /// The new database is in place.
    Done = 3,
}

static STAGE: AtomicU8 = AtomicU8::new(Stage::Idle as u8);
static SIGNALLED: AtomicI32 = AtomicI32::new(0);

/// The target server and the databases a refresh works on.
struct Watched {
    target: Endpoint,
    target_db: String,
    loading: String,
}

static WATCHED: Mutex<Option<Watched>> = Mutex::new(None);
static INSTALLED: std::sync::Once = std::sync::Once::new();

/// Handle SIGINT and SIGTERM from now on, for a refresh into `target_db` (loading into
/// `loading`) on `target`'s server.
pub(crate) fn watch(target: &Endpoint, target_db: &str, loading: &str) {
    if let Ok(mut w) = WATCHED.lock() {
        *w = Some(Watched {
            target: target.clone(),
            target_db: target_db.to_string(),
            loading: loading.to_string(),
        });
    }
    INSTALLED.call_once(|| {
        use signal_hook::consts::{SIGINT, SIGTERM};
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
            return;
        };
        std::thread::spawn(move || {
            for sig in signals.forever() {
                if SIGNALLED.swap(sig, Ordering::SeqCst) != 0 {
                    eprintln!(
                        "{}: second signal, exiting at once; the next run removes what is left",
                        name(sig)
                    );
                    std::process::exit(128 + sig);
                }
                std::thread::spawn(move || clean_up_and_exit(sig));
            }
        });
    });
}

/// Say how far the refresh is (see [`Stage`]).
pub(crate) fn set_stage(stage: Stage) {
    STAGE.store(stage as u8, Ordering::SeqCst);
}

/// The stage now.
pub(crate) fn stage() -> Stage {
    match STAGE.load(Ordering::SeqCst) {
        1 => Stage::Loading,
        2 => Stage::Swapping,
        3 => Stage::Done,
        _ => Stage::Idle,
    }
}

/// The signal received, if any. Once one is, the signal thread ends the process: the main
/// thread must not report an error of its own or exit first ([`hold_if_signalled`]).
pub fn signalled() -> Option<i32> {
    match SIGNALLED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Block forever when a signal was received: the signal thread is cleaning up and exits.
pub fn hold_if_signalled() {
    if signalled().is_some() {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}

/// A test hook: `SLUICE_FAULT=POINT` kills the process with SIGKILL at that named point (the
/// reliability tests use it to stop a refresh at each statement of the swap).
pub(crate) fn fault(point: &str) {
    if std::env::var("SLUICE_FAULT").is_ok_and(|f| f == point)
        && let Some(me) = rustix::process::Pid::from_raw(std::process::id() as i32)
    {
        let _ = rustix::process::kill_process(me, rustix::process::Signal::KILL);
        std::thread::sleep(Duration::from_secs(60));
    }
}

fn name(sig: i32) -> &'static str {
    if sig == signal_hook::consts::SIGINT {
        "SIGINT"
    } else {
        "SIGTERM"
    }
}

fn clean_up_and_exit(sig: i32) -> ! {
    eprintln!(
        "{}: stopping the refresh and cleaning up (a second signal exits at once)",
        name(sig)
    );
    // A swap is one short transaction: let it end so the target holds the old or the new copy.
    let started = Instant::now();
    while stage() == Stage::Swapping && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    crate::data::pg::tools::stop_children();
    let watched = WATCHED.lock().ok().and_then(|mut w| w.take());
    let stage = stage();
    let mut said = Vec::new();
    if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        rt.block_on(async {
            if crate::data::pg::tls::cancel_all().await > 0 {
                said.push("cancelled the running queries".to_string());
            }
            let Some(w) = &watched else { return };
            match stage {
                Stage::Loading => {
                    let dropped = async {
                        let admin = crate::data::pg::connect_admin(&w.target).await.ok()?;
                        admin
                            .batch_execute(&format!(
                                "drop database if exists {} with (force)",
                                sql_ident(&w.loading)
                            ))
                            .await
                            .ok()
                    };
                    match tokio::time::timeout(Duration::from_secs(30), dropped).await {
                        Ok(Some(())) => said.push(format!(
                            "dropped the unfinished database `{}`; `{}` is unchanged",
                            w.loading, w.target_db
                        )),
                        _ => said.push(format!(
                            "could not drop the unfinished database `{}` (the next run removes it); `{}` is unchanged",
                            w.loading, w.target_db
                        )),
                    }
                }
                Stage::Done => said.push(format!(
                    "the new copy was already in place as `{}`",
                    w.target_db
                )),
                Stage::Swapping => said.push(format!(
                    "the swap into `{}` did not end within a minute; the next run completes or undoes it",
                    w.target_db
                )),
                Stage::Idle => said.push(format!(
                    "nothing had been written to the target server; `{}` is unchanged",
                    w.target_db
                )),
            }
        });
    }
    if said.is_empty() {
        said.push("nothing to clean up".into());
    }
    eprintln!("{}: {}", name(sig), said.join("; "));
    std::process::exit(128 + sig);
}
