//! The PostgreSQL client programs sluice runs: `pg_dump` (schema sections under the refresh's
//! snapshot) and `psql` (applying them), found on `$SLUICE_PG_BIN`, `PATH` or Debian's
//! versioned directories, given the endpoint's settings as libpq variables (never on the command
//! line, where `ps` would show a password).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use zeroize::Zeroizing;

use crate::data::pg::tls::Endpoint;
use crate::error::Error;
use tokio_postgres::config::Host;

/// Find a PostgreSQL client program: `$SLUICE_PG_BIN`, `PATH`, then the newest
/// `/usr/lib/postgresql/*/bin`.
pub(crate) fn pg_program(name: &str) -> PathBuf {
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
pub(crate) fn libpq_env(config: &Endpoint) -> Vec<(&'static str, Zeroizing<String>)> {
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

pub(crate) fn run_program(
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
    child_started(pid);
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
    child_ended(pid);
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

/// One schema section of the source, as pg_dump reads it under the refresh's snapshot, with
/// comments; with GRANTs only when `privileges` (owners never: the loading user owns the copy).
pub(crate) fn dump_section(
    source: &Endpoint,
    snapshot: &str,
    section: &str,
    privileges: bool,
) -> Result<Vec<u8>, Error> {
    let section = format!("--section={section}");
    let snapshot = format!("--snapshot={snapshot}");
    let mut args = vec!["--schema-only", &section, "--no-owner", &snapshot];
    if !privileges {
        args.push("--no-privileges");
    }
    run_program("pg_dump", &args, source, None)
}

/// `pg_dump` can only dump servers up to its own major version.
pub(crate) fn check_pg_dump(server_version_num: i32) -> Result<(), Error> {
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

/// Apply SQL (a pg_dump section) to the loading database in one transaction.
pub(crate) fn apply_sql(load_cfg: &Endpoint, sql: &[u8]) -> Result<Vec<u8>, Error> {
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

/// The client programs running now, so a signal can stop them ([`stop_children`]).
static CHILDREN: std::sync::Mutex<Vec<u32>> = std::sync::Mutex::new(Vec::new());

fn child_started(pid: u32) {
    if let Ok(mut c) = CHILDREN.lock() {
        c.push(pid);
    }
}

fn child_ended(pid: u32) {
    if let Ok(mut c) = CHILDREN.lock() {
        c.retain(|p| *p != pid);
    }
}

/// Ask every running client program to stop (SIGTERM).
pub(crate) fn stop_children() {
    let children: Vec<u32> = CHILDREN.lock().map(|c| c.clone()).unwrap_or_default();
    for pid in children {
        if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
            let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
        }
    }
}
