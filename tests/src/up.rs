//! `flotilla up` under test: [`Up`] starts the real binary on a temporary
//! directory with `--bind 127.0.0.1:0`, waits for its kubeconfig, and drives it
//! with kubectl; [`Proc`] is a child process killed by PID when dropped.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{flotilla_bin, run, system_kubectl};

/// Bound of the waits that `flotilla up`'s short thresholds (failure 3 s, status
/// every 1 s) should meet easily.
pub const WAIT: Duration = Duration::from_secs(30);

/// Polls `f` every 100 ms until it returns `Some`, at most `timeout`; panics with
/// `what` and the last observation otherwise.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    let mut last;
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) => last = e,
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; last seen: {last}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A child process killed (SIGKILL, by PID) and reaped when dropped.
pub struct Proc {
    child: Option<Child>,
    what: String,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Proc {
    pub fn spawn(what: &str, cmd: &mut Command, log_dir: &Path) -> Proc {
        std::fs::create_dir_all(log_dir).expect("log dir");
        let n = std::fs::read_dir(log_dir).map(|d| d.count()).unwrap_or(0);
        let stdout = log_dir.join(format!("{what}-{n}.out"));
        let stderr = log_dir.join(format!("{what}-{n}.err"));
        let child = cmd
            .env_remove("HTTPS_PROXY")
            .env_remove("HTTP_PROXY")
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("stdout file"))
            .stderr(File::create(&stderr).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {what}: {e}"));
        Proc {
            child: Some(child),
            what: what.to_string(),
            stdout,
            stderr,
        }
    }

    pub fn out(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    pub fn err(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Panics (with its output) if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
        {
            panic!(
                "{} exited early ({status}):\n{}\n{}",
                self.what,
                self.out(),
                tail(&self.err())
            );
        }
    }

    /// Waits (bounded) until stdout contains `needle`; returns stdout.
    pub fn wait_stdout(&mut self, needle: &str, timeout: Duration) -> String {
        wait_for(
            timeout,
            &format!("{} to print {needle:?}", self.what),
            || {
                self.assert_running();
                let out = self.out();
                if out.contains(needle) {
                    Ok(out)
                } else {
                    Err(format!("stdout: {out:?}"))
                }
            },
        )
    }

    /// SIGKILL by PID, and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM by PID, then waits (bounded) for a clean exit; returns how long it took.
    pub fn terminate(&mut self, timeout: Duration) -> Duration {
        let mut child = self.child.take().expect("running");
        let started = Instant::now();
        let (code, _, stderr) = run(Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string()));
        assert_eq!(code, 0, "kill -TERM {}: {stderr}", child.id());
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                assert!(
                    status.success(),
                    "{} exited with {status} on SIGTERM:\n{}",
                    self.what,
                    tail(&self.err())
                );
                return started.elapsed();
            }
            if started.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} did not stop within {timeout:?} of SIGTERM:\n{}",
                    self.what,
                    tail(&self.err())
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last lines of a log, without ANSI colours.
pub fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    let start = lines.len().saturating_sub(30);
    let mut out = String::new();
    for l in &lines[start..] {
        let mut esc = false;
        for ch in l.chars() {
            match (esc, ch) {
                (false, '\u{1b}') => esc = true,
                (true, 'm') => esc = false,
                (true, _) => {}
                (false, c) => out.push(c),
            }
        }
        out.push('\n');
    }
    out
}

/// A running `flotilla up` on a temporary directory.
pub struct Up {
    /// The `flotilla up` process.
    pub proc: Option<Proc>,
    /// Its `--dir`.
    pub dir: PathBuf,
    /// `--members`.
    pub members: usize,
    /// Wall-clock time from spawn to the `export KUBECONFIG=` line.
    pub ready_after: Duration,
    /// What `flotilla up` reported (`flotilla is up in …`).
    pub reported: String,
    /// Extra `flotilla up` arguments.
    extra: Vec<String>,
    _tmp: tempfile::TempDir,
}

impl Up {
    pub fn start(members: usize) -> Up {
        Up::start_with(members, &[])
    }

    /// Starts `flotilla up --members N` with extra arguments.
    pub fn start_with(members: usize, extra: &[&str]) -> Up {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut up = Up {
            proc: None,
            dir: tmp.path().join("flotilla"),
            members,
            ready_after: Duration::ZERO,
            reported: String::new(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            _tmp: tmp,
        };
        up.spawn();
        up
    }

    pub fn spawn(&mut self) {
        let started = Instant::now();
        let mut p = Proc::spawn(
            "flotilla-up",
            Command::new(flotilla_bin())
                .arg("up")
                .arg("--dir")
                .arg(&self.dir)
                .arg("--bind")
                .arg("127.0.0.1:0")
                .arg("--members")
                .arg(self.members.to_string())
                .args(&self.extra),
            &self.logs(),
        );
        let out = p.wait_stdout("export KUBECONFIG=", WAIT);
        self.ready_after = started.elapsed();
        self.reported = out
            .lines()
            .find(|l| l.starts_with("flotilla is up in"))
            .unwrap_or("")
            .to_string();
        assert!(
            !self.reported.is_empty(),
            "no `flotilla is up in` line: {out}"
        );
        let kubeconfig = self.kubeconfig();
        assert!(
            out.contains(&format!("export KUBECONFIG={}", kubeconfig.display())),
            "the export line names {}: {out}",
            kubeconfig.display()
        );
        assert!(kubeconfig.exists(), "{} is written", kubeconfig.display());
        self.proc = Some(p);
    }

    pub fn logs(&self) -> PathBuf {
        self.dir.parent().expect("tmp").join("logs")
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// SIGTERM, wait for a clean exit, start again on the same directory.
    pub fn restart(&mut self) -> Duration {
        let stopped = self.proc.as_mut().expect("running").terminate(WAIT);
        self.proc = None;
        self.spawn();
        stopped
    }

    pub fn log(&self) -> String {
        self.proc
            .as_ref()
            .map(|p| tail(&p.err()))
            .unwrap_or_default()
    }

    /// kubectl against DIR/kubeconfig (current context `flotilla`), private cache.
    pub fn kubectl(&self) -> Command {
        let mut c = Command::new(system_kubectl());
        c.env("KUBECONFIG", self.kubeconfig())
            .env(
                "KUBECACHEDIR",
                self.dir.parent().expect("tmp").join("kcache"),
            )
            .env_remove("HTTPS_PROXY")
            .env_remove("HTTP_PROXY")
            .stdin(Stdio::null());
        c
    }

    /// Runs kubectl with `args`; (code, stdout, stderr).
    pub fn k(&self, args: &[&str]) -> (i32, String, String) {
        run(self.kubectl().args(args))
    }

    /// Runs kubectl with `args` and panics unless it succeeds; stdout.
    pub fn k_ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.k(args);
        assert_eq!(code, 0, "kubectl {args:?} failed: {err}{out}");
        out
    }

    /// Writes `yaml` beside the control plane's data as `NAME.yaml` and
    /// applies it in `context`; kubectl's stdout (panics if it fails).
    pub fn apply_in(&self, context: &str, name: &str, yaml: &str) -> String {
        let path = self
            .dir
            .parent()
            .expect("tmp")
            .join(format!("{context}-{name}.yaml"));
        std::fs::write(&path, yaml).expect("write manifest");
        self.k_ok(&[
            "--context",
            context,
            "apply",
            "-f",
            path.to_str().expect("utf-8 path"),
        ])
    }

    /// [`Up::apply_in`] on the control plane (context `flotilla`).
    pub fn apply(&self, name: &str, yaml: &str) -> String {
        self.apply_in("flotilla", name, yaml)
    }

    /// `kubectl get ARGS -o json` in `context`; `None` when it does not exist.
    pub fn get_json(&self, context: &str, args: &[&str]) -> Result<Option<Value>, String> {
        let mut full = vec!["--context", context, "get"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["-o", "json"]);
        let (code, out, err) = self.k(&full);
        if code != 0 {
            return if err.contains("NotFound") || err.contains("not found") {
                Ok(None)
            } else {
                Err(err)
            };
        }
        serde_json::from_str(&out)
            .map(Some)
            .map_err(|e| format!("{e}: {out}"))
    }

    /// The `flotilla` CLI against the control plane of DIR/kubeconfig.
    pub fn flotilla(&self, args: &[&str]) -> (i32, String, String) {
        run(Command::new(flotilla_bin())
            .args(args)
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .env_remove("HTTPS_PROXY")
            .env_remove("HTTP_PROXY")
            .stdin(Stdio::null()))
    }

    /// The Cluster `name` as JSON, or the error.
    pub fn cluster(&self, name: &str) -> Result<Value, String> {
        let (code, out, err) = self.k(&["get", "cluster", name, "-o", "json"]);
        if code != 0 {
            return Err(err);
        }
        serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))
    }

    /// Waits until the Cluster satisfies `pred` (bounded); returns it and the time taken.
    pub fn wait_cluster(
        &self,
        name: &str,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> (Value, Duration) {
        let started = Instant::now();
        let c = wait_for(timeout, &format!("cluster {name}: {what}"), || {
            let c = self.cluster(name)?;
            if pred(&c) {
                Ok(c)
            } else {
                Err(format!(
                    "conditions={} taints={} mode={}",
                    c.pointer("/status/conditions").unwrap_or(&Value::Null),
                    c.pointer("/spec/taints").unwrap_or(&Value::Null),
                    c.pointer("/spec/syncMode").unwrap_or(&Value::Null)
                ))
            }
        });
        (c, started.elapsed())
    }

    /// Whether the namespace exists in `context`.
    pub fn has_namespace(&self, context: &str, ns: &str) -> Result<bool, String> {
        let (code, out, err) =
            self.k(&["--context", context, "get", "namespace", ns, "-o", "name"]);
        if code == 0 {
            Ok(out.trim() == format!("namespace/{ns}"))
        } else if err.contains("NotFound") || err.contains("not found") {
            Ok(false)
        } else {
            Err(err)
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }
}

/// `flotilla agent` for `sim` against `up`: the member, the control plane,
/// a free metrics port and a status round every second.
pub fn agent_command(up: &Up, sim: &crate::sim::Sim) -> Command {
    let mut cmd = Command::new(flotilla_bin());
    cmd.arg("agent")
        .arg("--cluster-name")
        .arg(&sim.name)
        .arg("--control-plane")
        .arg(up.kubeconfig())
        .arg("--member")
        .arg(sim.kubeconfig())
        .arg("--metrics-bind-address=127.0.0.1:0")
        .args(["--cluster-status-update-frequency", "1s"])
        .args(["--cluster-success-threshold", "0s"]);
    cmd
}

/// Starts `flotilla agent` for `sim` against `up` with short timings.
pub fn agent(up: &Up, sim: &crate::sim::Sim) -> Proc {
    let mut p = Proc::spawn(
        &format!("agent-{}", sim.name),
        agent_command(up, sim)
            .args(["--cluster-failure-threshold", "3s"])
            .args(["--cluster-lease-duration", "4s"]),
        &up.logs(),
    );
    std::thread::sleep(Duration::from_millis(200));
    p.assert_running();
    p
}
