//! Shared helpers of the integration tests: the CLI runner with snapshot filters, fake-credential
//! builders, throwaway git repositories and a throwaway PostgreSQL cluster.
#![allow(dead_code)]

pub(crate) mod moto;
pub(crate) mod pg;
pub(crate) mod refresh;
pub(crate) mod vault;

use std::path::{Path, PathBuf};
use std::process::Command;

/// A program of the test servers' venv (`$SLUICE_TEST_SERVERS_HOME/venv/bin`, default
/// `~/.cache/sluice-test-servers`), which scripts/test fills: `bao`, `moto_server`, `sops`,
/// `python`. Panics, saying how to install it, when it is missing.
pub(crate) fn venv_bin(name: &str, package: &str) -> PathBuf {
    let home = std::env::var_os("SLUICE_TEST_SERVERS_HOME")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/sluice-test-servers"))
        })
        .expect("HOME");
    let bin = home.join("venv/bin").join(name);
    assert!(
        bin.is_file(),
        "{name} not found: run scripts/test, or `python3 -m venv {0}/venv && {0}/venv/bin/pip install {package}`",
        home.display()
    );
    bin
}

/// A new age identity at `path` (made by the `age-keygen` CLI); its public key.
pub(crate) fn age_keygen(path: &Path) -> String {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    run_ok(Command::new("age-keygen").arg("-o").arg(path));
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_string()
}

/// Run a helper program (openssl, age, sops, …) that must succeed; its stdout. A failure names
/// the program and shows its stderr.
pub(crate) fn run_ok(cmd: &mut Command) -> Vec<u8> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} (is it installed?): {e}"));
    assert!(
        out.status.success(),
        "{program} {:?}: {}",
        cmd.get_args().collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The built `sluice` binary.
pub(crate) fn sluice_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sluice"))
}

/// What one CLI run produced.
pub(crate) struct Run {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Exit code, stdout and stderr together, for snapshots. `dir` is replaced by `[DIR]`.
    pub(crate) fn snapshot(&self, dir: &Path) -> String {
        let d = dir.display().to_string();
        let clean = |s: &str| s.replace(&d, "[DIR]");
        format!(
            "exit: {}\n--- stdout\n{}--- stderr\n{}",
            self.code,
            clean(&self.stdout),
            clean(&self.stderr)
        )
    }
}

/// Run sluice with `args` in `cwd`, with a clean environment for colour and config discovery.
pub(crate) fn sluice(cwd: &Path, args: &[&str]) -> Run {
    sluice_with(cwd, args, None)
}

/// Run sluice with stdin fed from `input`.
pub(crate) fn sluice_with(cwd: &Path, args: &[&str], input: Option<&[u8]>) -> Run {
    sluice_env(cwd, &[], &[], args, input)
}

/// Run sluice with variables set (`set`) and removed (`remove`) in its environment; HOME is the
/// working directory so nothing of the real home (tokens, keys, AWS profiles) leaks in.
pub(crate) fn sluice_env(
    cwd: &Path,
    set: &[(&str, &str)],
    remove: &[&str],
    args: &[&str],
    input: Option<&[u8]>,
) -> Run {
    let mut cmd = assert_cmd::Command::new(sluice_bin());
    cmd.current_dir(cwd).args(args).env("NO_COLOR", "1");
    if !set.is_empty() || !remove.is_empty() {
        cmd.env("HOME", cwd);
    }
    for k in remove {
        cmd.env_remove(k);
    }
    for (k, v) in set {
        cmd.env(k, v);
    }
    if let Some(i) = input {
        cmd.write_stdin(i.to_vec());
    }
    let out = cmd.output().expect("run sluice");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A deterministic pseudo-random generator (splitmix64) for fake credentials.
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `n` characters drawn from `alphabet`.
    pub(crate) fn string(&mut self, alphabet: &str, n: usize) -> String {
        let a: Vec<char> = alphabet.chars().collect();
        (0..n)
            .map(|_| a[(self.next() % a.len() as u64) as usize])
            .collect()
    }
}

/// Upper, lower and digits.
pub(crate) const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A fake GitHub classic token, built at run time (the repository holds no token literal).
pub(crate) fn fake_github_token(rng: &mut Rng) -> String {
    format!("{}{}", ["gh", "p_"].concat(), rng.string(ALNUM, 36))
}

/// A fake Stripe live secret key.
pub(crate) fn fake_stripe_key(rng: &mut Rng) -> String {
    format!("{}{}", ["sk", "_live_"].concat(), rng.string(ALNUM, 24))
}

/// A fake AWS access key id.
pub(crate) fn fake_aws_key_id(rng: &mut Rng) -> String {
    format!(
        "{}{}",
        ["AK", "IA"].concat(),
        rng.string("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
    )
}

/// Run git in `dir`, panicking with git's message on failure. Returns stdout.
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@invalid",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A new repository in a temporary directory, with `main` as the initial branch.
pub(crate) fn git_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    git(dir.path(), &["init", "-q", "-b", "main"]);
    dir
}

/// Write `text` to `dir/rel`, creating parent directories.
pub(crate) fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(p, text).expect("write");
}
