//! A throwaway moto server (the AWS API stand-in, Secrets Manager included) for tests, on a free
//! loopback port, killed on drop. moto comes from PyPI `moto[server]` (scripts/test installs it
//! under `$SLUICE_TEST_SERVERS_HOME/venv`); its Python has boto3 for setting up fixtures.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running moto server.
pub(crate) struct Moto {
    child: Child,
    venv: PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

fn venv() -> PathBuf {
    let server = super::venv_bin("moto_server", "'moto[server]'");
    server
        .parent()
        .and_then(|b| b.parent())
        .expect("venv")
        .to_path_buf()
}

impl Moto {
    /// Start a server and wait until it accepts connections.
    pub(crate) fn start() -> Moto {
        let venv = venv();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(venv.join("bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let moto = Moto {
            child,
            venv,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return moto;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("moto did not start on {}", moto.endpoint);
    }

    /// Run a Python snippet with `sm` bound to a boto3 Secrets Manager client of this server.
    pub(crate) fn python(&self, body: &str) -> String {
        let script = format!(
            "import boto3, base64, json\nsm = boto3.client('secretsmanager', endpoint_url='{}', region_name='eu-central-1', aws_access_key_id='testing', aws_secret_access_key='testing')\n{body}\n",
            self.endpoint
        );
        let out = Command::new(self.venv.join("bin/python"))
            .args(["-c", &script])
            .output()
            .expect("run python");
        assert!(
            out.status.success(),
            "python: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Moto {
    /// From now on, check every request's signature against the IAM users' keys (moto's
    /// `reset-auth`), as AWS does.
    pub(crate) fn check_signatures(&self) {
        self.python(&format!(
            "import urllib.request\nurllib.request.urlopen(urllib.request.Request('{}/moto-api/reset-auth', data=b'0', headers={{'Content-Type': 'text/plain'}}, method='POST')).read()",
            self.endpoint
        ));
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
