//! `run --watch` and `render --watch`: poll the environment's secrets (every `--interval`
//! seconds, ±10% jitter so a fleet does not poll in step), compare them by keyed hash, and
//! on a change restart the command (`--on-change restart`: SIGTERM, then SIGKILL after
//! `--grace` seconds, started again with the new values) or rewrite its `as: file` files and
//! send it a signal (`--on-change signal:HUP`). Dynamic credentials (`vault-db://`) are issued
//! once and kept alive by their lease, not re-issued by the poll.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use super::SecretValue;
use crate::error::Error;

/// What a change does to the running command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnChange {
    /// Stop it (SIGTERM, SIGKILL after the grace period) and start it with the new values.
    Restart,
    /// Rewrite its `as: file` files and send it this signal.
    Signal(i32),
}

/// Parse `restart` or `signal:NAME` (`HUP`, `SIGHUP`, `USR1`, …).
pub(crate) fn parse_on_change(text: &str) -> Result<OnChange, String> {
    if text == "restart" {
        return Ok(OnChange::Restart);
    }
    let name = text
        .strip_prefix("signal:")
        .ok_or_else(|| format!("`{text}`: write restart or signal:NAME (e.g. signal:HUP)"))?;
    let name = name.strip_prefix("SIG").unwrap_or(name);
    use signal_hook::consts as c;
    let sig = match name {
        "HUP" => c::SIGHUP,
        "USR1" => c::SIGUSR1,
        "USR2" => c::SIGUSR2,
        "INT" => c::SIGINT,
        "TERM" => c::SIGTERM,
        "QUIT" => c::SIGQUIT,
        "WINCH" => c::SIGWINCH,
        _ => {
            return Err(format!(
                "`{text}`: unknown signal; use HUP, USR1, USR2, INT, TERM, QUIT or WINCH"
            ));
        }
    };
    Ok(OnChange::Signal(sig))
}

/// How to watch.
pub(crate) struct Watch {
    /// Poll interval.
    pub interval: Duration,
    /// What a change does.
    pub on_change: OnChange,
    /// How long a restarted command has to exit after SIGTERM.
    pub grace: Duration,
}

/// A digest of `values` under a key drawn for this process: compared, never shown.
pub(crate) fn digest(key: &[u8; 32], values: &[(String, SecretValue)]) -> Vec<(String, [u8; 32])> {
    let mut d: Vec<(String, [u8; 32])> = values
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                crate::keyed::hmac_sha256(key, v.expose().as_bytes()),
            )
        })
        .collect();
    d.sort();
    d
}

/// A key drawn for this process, for [`digest`] and `secrets diff`: digests are only compared,
/// never shown, so not even a digest can be correlated across runs.
pub(crate) fn process_key() -> [u8; 32] {
    // Without a random source the digests still compare correctly; they only stop being
    // unlinkable across runs, and they are never printed.
    crate::keyed::random().unwrap_or([0; 32])
}

/// `interval` ±10%, from the clock's nanoseconds (jitter needs no strong randomness).
pub(crate) fn jittered(interval: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let factor = 0.9 + f64::from(nanos % 1000) / 5000.0;
    interval.mul_f64(factor)
}

/// Sleep `d` in short steps; false when `stop` was raised meanwhile.
pub(crate) fn nap(d: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
    }
    !stop.load(Ordering::SeqCst)
}

/// Named values, as resolved.
pub(crate) type Values = [(String, SecretValue)];
/// Resolve the watched values again.
pub(crate) type Poll<'a> = &'a (dyn Fn() -> Result<Vec<(String, SecretValue)>, Error> + Sync);
/// Rewrite the `as: file` files with new values.
pub(crate) type RefreshFiles<'a> = &'a (dyn Fn(&Values) -> Result<(), Error> + Sync);
/// The child's environment and the values to mask, for these values.
pub(crate) type Start<'a> =
    &'a mut dyn FnMut(
        &Values,
    ) -> Result<(super::inject::ChildEnv, Option<Vec<SecretValue>>), Error>;

/// The parts of `run --watch` that depend on the command: how to poll, how to build the
/// child's environment from values, how to refresh its files in place.
pub(crate) struct Hooks<'a> {
    /// Resolve the watched values again.
    pub poll: Poll<'a>,
    /// Rewrite the `as: file` files with new values (for `signal:` mode).
    pub refresh_files: RefreshFiles<'a>,
    /// The child's environment and masked values for these values.
    pub start: Start<'a>,
}

/// Run `argv` under watch: returns the last child's exit code and the leases.
pub(crate) fn run(
    argv: &[std::ffi::OsString],
    mut current: Vec<(String, SecretValue)>,
    mut leases: Vec<super::vault::Lease>,
    watch: &Watch,
    hooks: Hooks<'_>,
) -> Result<(i32, Vec<super::vault::Lease>), Error> {
    let key = process_key();
    let pid = AtomicI32::new(0);
    let restart = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    let latest: Mutex<Option<Vec<(String, SecretValue)>>> = Mutex::new(None);
    let start = hooks.start;
    let (poll, refresh_files) = (hooks.poll, hooks.refresh_files);
    let initial = digest(&key, &current);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut last = initial;
            let mut failing = false;
            while nap(jittered(watch.interval), &done) {
                let values = match poll() {
                    Ok(v) => {
                        if failing {
                            eprintln!("sluice: --watch: the secrets resolve again");
                            failing = false;
                        }
                        v
                    }
                    Err(e) => {
                        if !failing {
                            eprintln!("sluice: --watch: cannot resolve the secrets ({e}); keeping the current values and trying again");
                            failing = true;
                        }
                        continue;
                    }
                };
                let now = digest(&key, &values);
                if now == last {
                    continue;
                }
                let changed: Vec<&str> = now
                    .iter()
                    .filter(|d| !last.contains(d))
                    .map(|(k, _)| k.as_str())
                    .chain(last.iter().filter(|(k, _)| !now.iter().any(|(n, _)| n == k)).map(|(k, _)| k.as_str()))
                    .collect();
                let target = rustix::process::Pid::from_raw(pid.load(Ordering::SeqCst));
                match watch.on_change {
                    OnChange::Restart => {
                        eprintln!("sluice: --watch: {} changed; restarting the command", changed.join(", "));
                        if let Ok(mut l) = latest.lock() {
                            *l = Some(values);
                        }
                        restart.store(true, Ordering::SeqCst);
                        if let Some(p) = target {
                            let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
                            // The grace period: then it is stopped for good.
                            let until = Instant::now() + watch.grace;
                            while Instant::now() < until
                                && pid.load(Ordering::SeqCst) == p.as_raw_nonzero().get()
                                && rustix::process::test_kill_process(p).is_ok()
                            {
                                std::thread::sleep(Duration::from_millis(50));
                            }
                            if pid.load(Ordering::SeqCst) == p.as_raw_nonzero().get()
                                && rustix::process::test_kill_process(p).is_ok()
                                && restart.load(Ordering::SeqCst)
                            {
                                let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
                            }
                        }
                    }
                    OnChange::Signal(sig) => {
                        if let Err(e) = refresh_files(&values) {
                            eprintln!("sluice: --watch: cannot rewrite the files ({e}); not signalling");
                            continue;
                        }
                        eprintln!("sluice: --watch: {} changed; files rewritten, signal {sig} sent", changed.join(", "));
                        if let (Some(p), Some(signal)) = (target, rustix::process::Signal::from_named_raw(sig)) {
                            let _ = rustix::process::kill_process(p, signal);
                        }
                    }
                }
                last = now;
            }
        });
        let result = loop {
            let (env, mask) = match start(&current) {
                Ok(x) => x,
                Err(e) => break Err(e),
            };
            match super::supervise::supervise(
                argv,
                env,
                mask,
                std::mem::take(&mut leases),
                Some(&pid),
            ) {
                Err(e) => break Err(e),
                Ok((code, held)) => {
                    leases = held;
                    pid.store(0, Ordering::SeqCst);
                    if restart.swap(false, Ordering::SeqCst) {
                        if let Some(v) = latest.lock().ok().and_then(|mut l| l.take()) {
                            current = v;
                        }
                        continue;
                    }
                    break Ok((code, std::mem::take(&mut leases)));
                }
            }
        };
        done.store(true, Ordering::SeqCst);
        result
    })
}
