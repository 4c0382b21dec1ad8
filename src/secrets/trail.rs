//! The audit trail (`audit:` in sluice.yaml): one JSON line per resolution, saying who
//! (user, host, CI job), which command, which environment, and which variables with which
//! references and outcomes were resolved, and when. Never a value.
//!
//! `audit: PATH` appends to a file (created 0600), `audit: stderr` writes to standard error,
//! `audit: syslog` sends to the local syslog socket (`/dev/log`, facility auth). A trail that
//! cannot be written stops the command before any value is handed out: an audit that silently
//! drops entries would not be one.

use std::io::Write;
use std::sync::OnceLock;

use crate::error::Error;

/// The sluice command being run (`run`, `secrets get`, …), set once at dispatch.
static COMMAND: OnceLock<String> = OnceLock::new();

/// Name the command for the trail.
pub(crate) fn set_command(name: String) {
    let _ = COMMAND.set(name);
}

/// How one variable went.
pub(crate) struct Outcome<'a> {
    /// The variable.
    pub name: &'a str,
    /// Its source as shown to people (`vault://db#url`, `literal`).
    pub source: String,
    /// `resolved`, `absent` (optional and missing) or `failed`.
    pub result: &'static str,
}

/// The CI job this runs in, from the variables CI systems set.
fn ci_job() -> Option<String> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let Some(run) = var("GITHUB_RUN_ID") {
        return Some(format!(
            "github:{}/{}#{}",
            var("GITHUB_REPOSITORY").unwrap_or_default(),
            run,
            var("GITHUB_JOB").unwrap_or_default()
        ));
    }
    [
        ("CI_JOB_ID", "gitlab"),
        ("BUILDKITE_JOB_ID", "buildkite"),
        ("CIRCLE_WORKFLOW_JOB_ID", "circleci"),
        ("BUILD_TAG", "jenkins"),
        ("SYSTEM_JOBID", "azure"),
    ]
    .iter()
    .find_map(|(k, system)| var(k).map(|v| format!("{system}:{v}")))
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_default()
}

fn user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| format!("uid:{}", rustix::process::getuid().as_raw()))
}

/// Now as RFC 3339 UTC with milliseconds.
fn now() -> String {
    rfc3339(std::time::SystemTime::now())
}

/// A time as RFC 3339 UTC with milliseconds.
pub(crate) fn rfc3339(at: std::time::SystemTime) -> String {
    let t = at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = t.as_secs() as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = crate::data::mask::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        t.subsec_millis()
    )
}

/// Append one record for `env` to the trail `to` (relative paths against `base`).
pub(crate) fn record(
    to: &str,
    base: &std::path::Path,
    env: &str,
    outcomes: &[Outcome<'_>],
) -> Result<(), Error> {
    let line = serde_json::json!({
        "time": now(),
        "user": user(),
        "host": host(),
        "ci_job": ci_job(),
        "pid": std::process::id(),
        "command": COMMAND.get().map(String::as_str).unwrap_or(""),
        "environment": env,
        "variables": outcomes.iter().map(|o| serde_json::json!({
            "name": o.name,
            "source": o.source,
            "result": o.result,
        })).collect::<Vec<_>>(),
    })
    .to_string();
    let failed = |what: String, e: std::io::Error| Error::External {
        what: format!("the audit trail ({what})"),
        detail: format!("{e}; nothing was handed out (fix `audit:` in sluice.yaml)"),
    };
    match to {
        "stderr" => {
            let mut err = std::io::stderr().lock();
            writeln!(err, "{line}").map_err(|e| failed("stderr".into(), e))
        }
        "syslog" => {
            // RFC 3164: <PRI>TAG[PID]: MSG; auth (4) * 8 + info (6) = 38.
            let sock = std::os::unix::net::UnixDatagram::unbound()
                .map_err(|e| failed("syslog".into(), e))?;
            let msg = format!("<38>sluice[{}]: {line}", std::process::id());
            sock.send_to(msg.as_bytes(), "/dev/log")
                .map(|_| ())
                .map_err(|e| failed("/dev/log".into(), e))
        }
        path => {
            use std::os::unix::fs::OpenOptionsExt;
            let p = base.join(path);
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&p)
                .map_err(|e| failed(p.display().to_string(), e))?;
            // One write per line: appends from concurrent commands do not interleave.
            f.write_all(format!("{line}\n").as_bytes())
                .map_err(|e| failed(p.display().to_string(), e))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = super::now();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
        assert!(t.as_str() > "2024-01-01");
    }
}
