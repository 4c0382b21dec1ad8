//! Handing resolved secrets to their consumer: the environment of an exec'd command, or an export
//! format a pipeline asked for. The only places where values leave sluice.

use std::ffi::OsString;
use std::io::Write;

use base64::Engine as _;

use super::SecretValue;
use crate::error::Error;

/// Export formats of `sluice export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// `NAME=value` lines, the value verbatim: what `docker run --env-file` and compose's
    /// `env_file: { format: raw }` read (no quotes, escapes or `$` expansion). Values with a
    /// line break are refused: that format cannot carry one.
    Dotenv,
    /// `NAME="value"` lines for dotenv libraries (python-dotenv's `dotenv_values`/`load_dotenv`,
    /// with its default interpolation): every value round-trips, line breaks and `${…}`
    /// included.
    PythonDotenv,
    /// One JSON object `{ "NAME": "value" }`.
    Json,
    /// `export NAME='value'` lines, for `eval` in POSIX shells.
    Shell,
    /// A Kubernetes Secret manifest with base64 `data:`.
    K8sSecret,
}

/// Whether `name` is a Kubernetes object name (a DNS-1123 subdomain: lowercase letters, digits,
/// `-` and `.`, starting and ending with a letter or digit, at most 253 characters).
fn is_k8s_name(name: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !name.is_empty()
        && name.len() <= 253
        && name.chars().all(|c| alnum(c) || c == '-' || c == '.')
        && name.starts_with(alnum)
        && name.ends_with(alnum)
}

/// The longest line docker's env-file reader takes (bufio.Scanner's default buffer).
const DOCKER_LINE_MAX: usize = 65_535;

/// `value` inside double quotes as python-dotenv reads it back exactly: `\\`, `\"`, `\n` and
/// `\r` escaped; `${` (which it would expand, in either quote style) written as `${:-$}{`, a
/// variable with an empty name and the default `$`; a final backslash as `${:-\\}`, which
/// older versions would otherwise read as escaping the closing quote.
fn python_dotenv_quoted(value: &str) -> String {
    let value = value.replace("${", "${:-$}{");
    let (body, trailing_backslash) = match value.strip_suffix('\\') {
        Some(b) => (b, true),
        None => (value.as_str(), false),
    };
    let mut out = String::with_capacity(body.len() + 2);
    out.push('"');
    for c in body.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    if trailing_backslash {
        out.push_str("${:-\\\\}");
    }
    out.push('"');
    out
}

/// Refuse what an export format cannot carry faithfully, before anything is written: names
/// that are not variable names (a shell `eval` would run `$(…)` in one), a Kubernetes name that
/// is not one (a newline in it adds lines to the manifest), and NUL bytes in values of
/// environment-style formats (no environment variable can hold one). Errors name the variable,
/// never the value.
pub(crate) fn check_export(
    format: ExportFormat,
    values: &[(String, SecretValue)],
    name: &str,
) -> Result<(), Error> {
    for (k, v) in values {
        if !crate::config::is_env_name(k) {
            return Err(Error::Usage(format!(
                "variable `{}` is not an environment variable name; rename it under `secrets:`",
                k.escape_debug()
            )));
        }
        let v = v.expose();
        if !matches!(format, ExportFormat::Json | ExportFormat::K8sSecret) && v.contains('\0') {
            return Err(Error::Usage(format!(
                "the value of `{k}` holds a NUL byte, which no environment variable can carry; use --format json or k8s-secret"
            )));
        }
        if format == ExportFormat::Dotenv {
            // docker reads lines: a line break would start a new variable, a final CR is
            // dropped, and lines longer than 64 KiB stop its reader.
            let why = if v.contains('\n') {
                Some("holds a line break")
            } else if v.ends_with('\r') {
                Some("ends with a carriage return, which docker drops")
            } else if k.len() + 1 + v.len() > DOCKER_LINE_MAX {
                Some("makes a line longer than docker --env-file reads (65535 bytes)")
            } else {
                None
            };
            if let Some(why) = why {
                return Err(Error::Usage(format!(
                    "the value of `{k}` {why}; --format dotenv (docker --env-file) cannot carry it: use --format python-dotenv, json or k8s-secret"
                )));
            }
        }
    }
    if format == ExportFormat::K8sSecret && !is_k8s_name(name) {
        return Err(Error::Usage(format!(
            "--name `{}` is not a Kubernetes object name: lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit",
            name.escape_debug()
        )));
    }
    Ok(())
}

/// Render `values` in `format`. `name` is the Kubernetes Secret's name. Call [`check_export`]
/// first.
pub(crate) fn export(
    out: &mut dyn Write,
    format: ExportFormat,
    values: &[(String, SecretValue)],
    name: &str,
) -> std::io::Result<()> {
    match format {
        ExportFormat::Dotenv => {
            for (k, v) in values {
                writeln!(out, "{k}={}", v.expose())?;
            }
        }
        ExportFormat::PythonDotenv => {
            for (k, v) in values {
                writeln!(out, "{k}={}", python_dotenv_quoted(v.expose()))?;
            }
        }
        ExportFormat::Shell => {
            for (k, v) in values {
                writeln!(out, "export {k}='{}'", v.expose().replace('\'', r"'\''"))?;
            }
        }
        ExportFormat::Json => {
            let map: serde_json::Map<String, serde_json::Value> = values
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.expose().to_string())))
                .collect();
            serde_json::to_writer_pretty(&mut *out, &map)?;
            writeln!(out)?;
        }
        ExportFormat::K8sSecret => {
            writeln!(
                out,
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\ntype: Opaque\ndata:"
            )?;
            for (k, v) in values {
                let b64 = base64::engine::general_purpose::STANDARD.encode(v.expose());
                writeln!(out, "  {k}: {b64}")?;
            }
        }
    }
    Ok(())
}

/// How `run` treats variables that are already set in its own environment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunOptions {
    /// Replace variables already set (default: keep them and report the conflict).
    pub override_existing: bool,
}

/// The environment for the child: the current one plus the secrets. Returns the variables kept
/// because they were already set (names only).
pub(crate) fn child_env(
    values: &[(String, SecretValue)],
    opts: RunOptions,
) -> (Vec<(String, OsString)>, Vec<String>) {
    let mut set = Vec::new();
    let mut kept = Vec::new();
    for (k, v) in values {
        if std::env::var_os(k).is_some() && !opts.override_existing {
            kept.push(k.clone());
            continue;
        }
        set.push((k.clone(), OsString::from(v.expose())));
    }
    (set, kept)
}

/// Values handed over as files (`as: file`): a private directory in memory-backed storage,
/// one 0600 file per variable, removed when this is dropped (after the command ends).
#[derive(Debug)]
pub(crate) struct SecretFiles {
    dir: std::path::PathBuf,
}

impl SecretFiles {
    /// Memory-backed storage: `$XDG_RUNTIME_DIR` (a tmpfs per user on systemd machines), else
    /// `/dev/shm`. Never a disk-backed temporary directory: the file must not outlive the
    /// machine's memory.
    fn base() -> Result<std::path::PathBuf, Error> {
        let candidates = [
            std::env::var_os("XDG_RUNTIME_DIR").map(std::path::PathBuf::from),
            Some(std::path::PathBuf::from("/dev/shm")),
        ];
        candidates
            .into_iter()
            .flatten()
            .find(|p| p.is_dir())
            .ok_or_else(|| {
                Error::Usage(
                    "`as: file` needs memory-backed storage: set XDG_RUNTIME_DIR to a tmpfs directory (no /dev/shm here)".into(),
                )
            })
    }

    /// Write `values` (name, value) as files; returns the directory guard and the variables
    /// to set (name = path).
    pub(crate) fn write(
        values: &[(String, SecretValue)],
    ) -> Result<(SecretFiles, Vec<(String, OsString)>), Error> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let base = Self::base()?;
        let random: [u8; 12] = crate::keyed::random().map_err(|source| Error::Io {
            path: "/dev/urandom".into(),
            source,
        })?;
        let name: String = random.iter().map(|b| format!("{b:02x}")).collect();
        let dir = base.join(format!("sluice-{}-{name}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|source| Error::Io {
                path: dir.clone(),
                source,
            })?;
        let files = SecretFiles { dir };
        let mut vars = Vec::new();
        for (k, v) in values {
            let path = files.dir.join(k);
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .and_then(|mut f| f.write_all(v.expose().as_bytes()).map(|_| f))
                .map_err(|source| Error::Io {
                    path: path.clone(),
                    source,
                })?;
            drop(f);
            vars.push((k.clone(), path.into_os_string()));
        }
        Ok((files, vars))
    }
}

impl SecretFiles {
    /// Replace the files' contents with `values` (each written beside its file, then renamed
    /// over it: a reader sees the old value or the new one, never half of one); the paths.
    pub(crate) fn update(
        &self,
        values: &[(String, SecretValue)],
    ) -> Result<Vec<(String, OsString)>, Error> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut vars = Vec::new();
        for (k, v) in values {
            let path = self.dir.join(k);
            let tmp = self.dir.join(format!(".{k}.new"));
            let _ = std::fs::remove_file(&tmp);
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .and_then(|mut f| f.write_all(v.expose().as_bytes()))
                .and_then(|_| std::fs::rename(&tmp, &path))
                .map_err(|source| Error::Io {
                    path: path.clone(),
                    source,
                })?;
            vars.push((k.clone(), path.into_os_string()));
        }
        Ok(vars)
    }
}

impl Drop for SecretFiles {
    fn drop(&mut self) {
        // Overwrite before unlinking: tmpfs pages go back to the kernel, but a copy of the
        // file held open elsewhere would keep the bytes.
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                if let Ok(len) = e.metadata().map(|m| m.len())
                    && let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(e.path())
                {
                    let _ = f.write_all(&vec![0u8; len as usize]);
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Variables a `--pristine` child keeps from sluice's own environment.
const PRISTINE_KEEP: [&str; 7] = ["PATH", "HOME", "LANG", "LC_ALL", "TERM", "TZ", "USER"];

/// The child's environment: sluice's own, minus the credentials sluice used to reach the stores
/// (`remove`), or (`pristine`) only a minimal PATH/HOME/LANG set; plus the secrets (`set`).
#[derive(Debug, Default)]
pub(crate) struct ChildEnv {
    /// The secrets, by name.
    pub set: Vec<(String, OsString)>,
    /// Variables taken out (the stores' credentials: a token, a secret id, an age key).
    pub remove: Vec<String>,
    /// Start from an empty environment but for [`PRISTINE_KEEP`].
    pub pristine: bool,
}

impl ChildEnv {
    /// Set `cmd`'s environment.
    pub(crate) fn apply(self, cmd: &mut std::process::Command) {
        if self.pristine {
            cmd.env_clear();
            for k in PRISTINE_KEEP {
                if let Some(v) = std::env::var_os(k) {
                    cmd.env(k, v);
                }
            }
        }
        for k in &self.remove {
            cmd.env_remove(k);
        }
        cmd.envs(self.set);
    }
}

/// Replace this process with `argv` (execve), its environment set by `env`, so the app's exit
/// code and signals are its own. Returns only if the exec failed.
pub(crate) fn exec(argv: &[OsString], env: ChildEnv) -> Error {
    use std::os::unix::process::CommandExt;
    let Some((program, args)) = argv.split_first() else {
        return Error::Usage("nothing to run; give a command after `--`".into());
    };
    let mut cmd = std::process::Command::new(program);
    cmd.args(args);
    env.apply(&mut cmd);
    let err = cmd.exec();
    Error::spawn(program, &err)
}
