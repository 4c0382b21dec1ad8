//! A throwaway PostgreSQL cluster for tests: `initdb` + `pg_ctl` from the local installation on a
//! free loopback port, trust authentication, removed (stopped and deleted) on drop.
//!
//! When the tests run as root, the cluster runs as the `postgres` OS user (initdb refuses root).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A running cluster.
pub(crate) struct PgCluster {
    dir: tempfile::TempDir,
    port: u16,
    opts: String,
    bin: PathBuf,
    as_user: Option<String>,
}

/// Where initdb and friends live: PATH, then Debian's versioned directories (newest first).
fn find_bin_dir() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("PATH") {
        for d in std::env::split_paths(&path) {
            if d.join("initdb").is_file() && d.join("pg_ctl").is_file() {
                return Some(d);
            }
        }
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|d| d.join("initdb").is_file())
        .collect();
    dirs.sort();
    dirs.pop()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl PgCluster {
    /// Start a new cluster. Panics with a clear message when PostgreSQL is not installed.
    pub(crate) fn start() -> PgCluster {
        let cluster = PgCluster::empty();
        cluster.run(
            "initdb",
            &[
                "-D",
                &cluster.data().display().to_string(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        );
        cluster.launch()
    }

    /// Start a new cluster that accepts only TLS connections over TCP, with `cert` and `key`
    /// (PEM files) as its server certificate.
    pub(crate) fn start_tls(cert: &Path, key: &Path) -> PgCluster {
        let cluster = PgCluster::empty();
        let data = cluster.data().display().to_string();
        cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
        );
        std::fs::copy(cert, cluster.data().join("server.crt")).expect("copy the certificate");
        std::fs::copy(key, cluster.data().join("server.key")).expect("copy the key");
        let conf = cluster.data().join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).expect("postgresql.conf");
        text.push_str("\nssl = on\n");
        std::fs::write(&conf, text).expect("postgresql.conf");
        let hba = cluster.data().join("pg_hba.conf");
        let text = std::fs::read_to_string(&hba).expect("pg_hba.conf");
        std::fs::write(&hba, format!("hostnossl all all all reject\n{text}")).expect("pg_hba.conf");
        if let Some(u) = &cluster.as_user {
            for f in ["server.crt", "server.key"] {
                let p = cluster.data().join(f).display().to_string();
                let ok = Command::new("chown").args([u.as_str(), &p]).status();
                assert!(ok.is_ok_and(|s| s.success()), "cannot chown {f}");
            }
        }
        let key_file = cluster.data().join("server.key").display().to_string();
        let ok = Command::new("chmod").args(["0600", &key_file]).status();
        assert!(ok.is_ok_and(|s| s.success()), "cannot chmod the key");
        cluster.launch()
    }

    /// A hot standby of `primary` (pg_basebackup with streaming replication): read only.
    pub(crate) fn standby_of(primary: &PgCluster) -> PgCluster {
        let cluster = PgCluster::empty();
        cluster.run(
            "pg_basebackup",
            &[
                "-D",
                &cluster.data().display().to_string(),
                "-R",
                "-c",
                "fast",
                "-X",
                "stream",
                "-h",
                "127.0.0.1",
                "-p",
                &primary.port.to_string(),
                "-U",
                "postgres",
            ],
        );
        let ok = Command::new("chmod")
            .args(["0700", &cluster.data().display().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "cannot chmod the standby's data directory");
        cluster.launch()
    }

    /// A fresh directory owned by the server's user, no cluster yet.
    fn empty() -> PgCluster {
        let bin = find_bin_dir().unwrap_or_else(|| {
            panic!(
                "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or under \
                 /usr/lib/postgresql/*/bin; install them (Debian: apt-get install postgresql)"
            )
        });
        let as_user = is_root().then(|| "postgres".to_string());
        let dir = tempfile::Builder::new()
            .prefix("sluice-pg-")
            .tempdir()
            .expect("tempdir");
        let cluster = PgCluster {
            dir,
            port: 0,
            opts: String::new(),
            bin,
            as_user,
        };
        if let Some(u) = &cluster.as_user {
            let ok = Command::new("chown")
                .args([u.as_str(), &cluster.data().display().to_string()])
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                ok,
                "cannot chown the cluster directory to {u}; does that user exist?"
            );
        }
        cluster
    }

    /// Start the server on a free loopback port.
    fn launch(mut self) -> PgCluster {
        let sock = self.data().display().to_string();
        for attempt in 0..5 {
            self.port = free_port();
            let opts = format!(
                "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={sock} \
                 -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
                 -c max_connections=60 -c shared_buffers=128MB",
                self.port
            );
            let log = self.data().join("server.log").display().to_string();
            let ok = self.try_run(
                "pg_ctl",
                &[
                    "-D", &sock, "-l", &log, "-w", "-t", "60", "-o", &opts, "start",
                ],
            );
            if ok {
                self.opts = opts;
                return self;
            }
            if attempt == 4 {
                let log =
                    std::fs::read_to_string(self.data().join("server.log")).unwrap_or_default();
                panic!("PostgreSQL did not start:\n{log}");
            }
        }
        unreachable!()
    }

    fn data(&self) -> &Path {
        self.dir.path()
    }

    /// Require a password (SCRAM) from every role connecting over TCP but the superuser, which
    /// the tests keep using without one.
    pub(crate) fn require_passwords(&self) {
        let hba = self.socket_dir().join("pg_hba.conf");
        let text = std::fs::read_to_string(&hba).unwrap();
        std::fs::write(
            &hba,
            format!(
                "host all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n{text}"
            ),
        )
        .unwrap();
        self.psql("postgres", "SELECT pg_reload_conf()");
    }

    /// Stop the server at once (like a crash), keeping its data.
    pub(crate) fn stop(&self) {
        let data = self.data().display().to_string();
        self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
    }

    /// Start the server again after [`PgCluster::stop`], on the same port.
    pub(crate) fn restart(&self) {
        let data = self.data().display().to_string();
        let log = self.data().join("server.log").display().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-w", "-t", "60", "-o", &self.opts, "start",
            ],
        );
    }

    fn command(&self, tool: &str) -> Command {
        // PATH may hold only some tools (initdb, pg_ctl); the rest live beside the server.
        let exe = Some(self.bin.join(tool))
            .filter(|p| p.is_file())
            .or_else(|| {
                let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
                    .ok()?
                    .filter_map(|e| e.ok().map(|e| e.path().join("bin").join(tool)))
                    .filter(|p| p.is_file())
                    .collect();
                dirs.sort();
                dirs.pop()
            })
            .unwrap_or_else(|| PathBuf::from(tool));
        match &self.as_user {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--"]).arg(exe);
                c
            }
            None => Command::new(exe),
        }
    }

    fn try_run(&self, tool: &str, args: &[&str]) -> bool {
        self.command(tool)
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    }

    fn run(&self, tool: &str, args: &[&str]) -> String {
        let out = self
            .command(tool)
            .args(args)
            .output()
            .expect("run a PostgreSQL tool");
        assert!(
            out.status.success(),
            "{tool} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The directory of the server's Unix-domain socket (`.s.PGSQL.<port>`).
    pub(crate) fn socket_dir(&self) -> PathBuf {
        self.data().to_path_buf()
    }

    /// The loopback port.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for database `db` as the superuser `postgres`.
    pub(crate) fn url(&self, db: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{db}", self.port)
    }

    fn psql_command(&self, db: &str) -> Command {
        let psql = Some(self.bin.join("psql"))
            .filter(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from("psql"));
        let mut c = Command::new(psql);
        c.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &self.url(db)]);
        c
    }

    /// `COPY … TO STDOUT` through psql: the raw bytes PostgreSQL sends.
    pub(crate) fn copy_out(&self, db: &str, copy_sql: &str) -> Vec<u8> {
        let out = self
            .psql_command(db)
            .args(["-c", copy_sql])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// `COPY … FROM STDIN` through psql with `data` as the rows.
    pub(crate) fn copy_in(&self, db: &str, copy_sql: &str, data: &[u8]) {
        use std::io::Write;
        let mut child = self
            .psql_command(db)
            .args(["-c", copy_sql])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run psql");
        child.stdin.take().unwrap().write_all(data).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `pg_dump` of `db` with `args`, as text (a fixed `\\restrict` key, so two dumps compare).
    pub(crate) fn pg_dump(&self, db: &str, args: &[&str]) -> String {
        let program = Some(self.bin.join("pg_dump"))
            .filter(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from("pg_dump"));
        let out = Command::new(program)
            .args(["--restrict-key=sluicetest", "-d", &self.url(db)])
            .args(args)
            .output()
            .expect("run pg_dump");
        assert!(
            out.status.success(),
            "pg_dump: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run SQL with psql against `db`; returns unaligned, tuples-only output.
    pub(crate) fn psql(&self, db: &str, sql: &str) -> String {
        let psql = Some(self.bin.join("psql"))
            .filter(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from("psql"));
        let out = Command::new(psql)
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.url(db),
                "-c",
                sql,
            ])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.data().display().to_string();
        let _ = self.try_run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
    }
}
