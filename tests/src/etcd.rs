//! An etcd server of a test's (or benchmark's) own: Debian's `etcd`, installed by
//! `scripts/install-etcd` when missing, on free loopback ports with a temporary
//! data directory, killed by PID when dropped.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running single-member etcd cluster.
pub struct Etcd {
    child: Child,
    /// Its client URL, `http://127.0.0.1:PORT`.
    pub url: String,
    /// The temporary directory holding its data and `etcd.log`.
    pub dir: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Installs etcd when the machine has none; panics when that fails.
pub fn ensure_installed() {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/install-etcd");
    let status = Command::new(&script)
        .status()
        .unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(status.success(), "installing etcd failed");
}

impl Etcd {
    /// Starts etcd (installing it first when missing) and waits until it serves.
    pub fn start() -> Etcd {
        ensure_installed();
        let mut last_log = String::new();
        // A port picked free may be taken before etcd binds it: try a few.
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("temp dir");
            let log_path = dir.path().join("etcd.log");
            let (client, peer) = (free_port(), free_port());
            let url = format!("http://127.0.0.1:{client}");
            let peer_url = format!("http://127.0.0.1:{peer}");
            let mut child = Command::new("etcd")
                .arg("--name=flotilla-test")
                .arg(format!("--data-dir={}", dir.path().join("data").display()))
                .arg(format!("--listen-client-urls={url}"))
                .arg(format!("--advertise-client-urls={url}"))
                .arg(format!("--listen-peer-urls={peer_url}"))
                .arg(format!("--initial-advertise-peer-urls={peer_url}"))
                .arg(format!("--initial-cluster=flotilla-test={peer_url}"))
                .env_remove("ETCDCTL_API")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log_path).expect("etcd log"))
                .spawn()
                .expect("start etcd");
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                if log.contains("serving insecure client requests") {
                    return Etcd { child, url, dir };
                }
                let exited = matches!(child.try_wait(), Ok(Some(_)));
                if exited || Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_log = log;
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("etcd did not start: {last_log}");
    }
}
