//! A `flotilla sim` member outside `flotilla up`, joined with `flotilla join`:
//! the member a test can cut off (kill it: connections refused at its port)
//! and bring back at the same address. With `--storage redb` it keeps its
//! objects across the restart, like a real cluster that was unreachable for
//! a while.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::flotilla_bin;
use crate::up::{Proc, Up, WAIT, wait_for};

/// A running (or stopped) `flotilla sim`.
pub struct Sim {
    proc: Option<Proc>,
    /// Its cluster name.
    pub name: String,
    /// Its `--data-dir` (certificates, kubeconfig, data with redb).
    pub data_dir: PathBuf,
    logs: PathBuf,
    /// Its port, kept across restarts.
    pub port: u16,
    durable: bool,
}

impl Sim {
    /// Starts `flotilla sim --name NAME` under `base` (memory storage).
    pub fn start(name: &str, base: &Path) -> Sim {
        Sim::start_with(name, base, false)
    }

    /// Starts it with `--storage redb` when `durable`.
    pub fn start_with(name: &str, base: &Path, durable: bool) -> Sim {
        let mut s = Sim {
            proc: None,
            name: name.to_string(),
            data_dir: base.join(format!("sim-{name}")),
            logs: base.join("logs"),
            port: 0,
            durable,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(flotilla_bin());
        cmd.arg("sim")
            .arg("--name")
            .arg(&self.name)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--nodes")
            .arg("2")
            .arg("--storage")
            .arg(if self.durable { "redb" } else { "memory" })
            .arg("--faults-file")
            .arg(self.faults_file());
        if self.port != 0 {
            cmd.arg("--port").arg(self.port.to_string());
        }
        let mut p = Proc::spawn(&format!("sim-{}", self.name), &mut cmd, &self.logs);
        let out = p.wait_stdout("https://127.0.0.1:", WAIT);
        let port: u16 = out
            .split("https://127.0.0.1:")
            .nth(1)
            .and_then(|r| {
                r.split(|c: char| !c.is_ascii_digit())
                    .next()
                    .and_then(|p| p.parse().ok())
            })
            .unwrap_or_else(|| panic!("no port in {out:?}"));
        if self.port != 0 {
            assert_eq!(port, self.port, "the sim comes back at the same port");
        }
        self.port = port;
        self.proc = Some(p);
    }

    /// The member's own kubeconfig.
    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir.join("kubeconfig")
    }

    /// The file of faults the member follows (`flotilla sim --faults-file`).
    pub fn faults_file(&self) -> PathBuf {
        self.data_dir.join("faults")
    }

    /// Writes the faults (`latency: 500ms`, `failing: true`, ...) and waits
    /// until the member reports them in force (a new `faults:` line).
    pub fn set_faults(&mut self, text: &str) {
        let p = self.proc.as_ref().expect("the sim runs");
        // the member reports the faults it starts with first
        let before = wait_for(WAIT, "the sim's first faults line", || {
            match p.out().matches("faults:").count() {
                0 => Err("none yet".to_string()),
                n => Ok(n),
            }
        });
        std::fs::create_dir_all(&self.data_dir).expect("data dir");
        std::fs::write(self.faults_file(), text).expect("write faults");
        wait_for(
            WAIT,
            &format!("sim {} shows faults {text:?}", self.name),
            || {
                let out = p.out();
                if out.matches("faults:").count() > before {
                    Ok(())
                } else {
                    Err(format!("stdout {}; stderr {}", out, p.err()))
                }
            },
        );
    }

    /// Whether it runs.
    pub fn running(&self) -> bool {
        self.proc.is_some()
    }

    /// Kills it (SIGKILL): the member is unreachable.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    /// Starts it again with the same `--port` and `--data-dir`.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// `flotilla join NAME --cluster-kubeconfig FILE` on `up`'s control plane.
    pub fn join(&self, up: &Up) {
        let (code, out, err) = up.flotilla(&[
            "join",
            &self.name,
            "--cluster-kubeconfig",
            self.kubeconfig().to_str().expect("utf-8"),
        ]);
        assert_eq!(code, 0, "join {}: {err}{out}", self.name);
    }

    /// kubectl against the member itself.
    pub fn kubectl(&self, up: &Up) -> Command {
        let mut c = up.kubectl();
        c.env("KUBECONFIG", self.kubeconfig());
        c
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.kill();
    }
}
