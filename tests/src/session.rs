//! A kubectl session against a fresh server, shared by the kubectl test suites:
//! run kubectl with bounded waits and compare its output with expected text.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::{ApiServer, kubectls, norm_table, run_bounded};

/// Upper bound for one kubectl invocation.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(60);

#[track_caller]
pub fn assert_text(what: &str, actual: &str, expected: &str) {
    assert!(
        actual == expected,
        "{what}: output differs\n--- expected ---\n{expected}\n--- actual ---\n{actual}\n---"
    );
}

/// One kubectl against one fresh server.
pub struct Session {
    pub srv: ApiServer,
    pub kubectl: PathBuf,
    /// The minor version of the kubectl that actually talks to the server.
    pub minor: u32,
}

impl Session {
    pub fn new(kubectl: PathBuf) -> Session {
        let srv = ApiServer::start();
        let mut s = Session {
            srv,
            kubectl,
            minor: 0,
        };
        let out = s.ok(&["version", "-o", "json"]);
        let v: Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("version -o json: {e}: {out}"));
        s.minor = v["clientVersion"]["minor"]
            .as_str()
            .and_then(|m| m.trim_end_matches('+').parse().ok())
            .unwrap_or_else(|| panic!("clientVersion.minor in {out}"));
        s
    }

    pub fn who(&self) -> String {
        format!("{} (1.{})", self.kubectl.display(), self.minor)
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.srv.kubectl(&self.kubectl);
        c.arg("--request-timeout=30s").args(args);
        c
    }

    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        run_bounded(&mut self.cmd(args), None, CMD_TIMEOUT)
    }

    pub fn run_stdin(&self, args: &[&str], input: &str) -> (i32, String, String) {
        run_bounded(&mut self.cmd(args), Some(input.as_bytes()), CMD_TIMEOUT)
    }

    /// Runs kubectl, asserts success, returns stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert!(
            code == 0,
            "{}: kubectl {args:?} failed ({code})\nstdout: {out}\nstderr: {err}",
            self.who()
        );
        out
    }

    #[track_caller]
    pub fn ok_stdin(&self, args: &[&str], input: &str) -> String {
        let (code, out, err) = self.run_stdin(args, input);
        assert!(
            code == 0,
            "{}: kubectl {args:?} failed ({code})\nstdout: {out}\nstderr: {err}",
            self.who()
        );
        out
    }

    /// Runs kubectl, asserts failure, returns stderr.
    #[track_caller]
    pub fn fails(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert!(
            code != 0,
            "{}: kubectl {args:?} unexpectedly succeeded\nstdout: {out}\nstderr: {err}",
            self.who()
        );
        err
    }

    /// Runs kubectl, asserts success and the exact (trailing-blank-trimmed) stdout.
    #[track_caller]
    pub fn expect(&self, args: &[&str], expected: &str) {
        let out = self.ok(args);
        assert_text(
            &format!("{} kubectl {}", self.who(), args.join(" ")),
            out.trim_end(),
            expected,
        );
    }

    #[track_caller]
    pub fn expect_table(&self, args: &[&str], expected: &str) {
        let out = self.ok(args);
        assert_text(
            &format!("{} kubectl {}", self.who(), args.join(" ")),
            &norm_table(&out),
            &norm_table(expected),
        );
    }

    #[track_caller]
    pub fn expect_stdin(&self, args: &[&str], input: &str, expected: &str) {
        let out = self.ok_stdin(args, input);
        assert_text(
            &format!("{} kubectl {}", self.who(), args.join(" ")),
            out.trim_end(),
            expected,
        );
    }

    /// Runs kubectl, asserts failure and the exact (trailing-blank-trimmed) stderr.
    #[track_caller]
    pub fn expect_err(&self, args: &[&str], expected: &str) {
        let err = self.fails(args);
        assert_text(
            &format!("{} kubectl {} (stderr)", self.who(), args.join(" ")),
            err.trim_end(),
            expected,
        );
    }

    #[track_caller]
    pub fn get_json(&self, args: &[&str]) -> Value {
        let mut a = vec!["get"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-o", "json"]);
        let out = self.ok(&a);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("{}: {a:?}: not JSON ({e}): {out}", self.who()))
    }

    /// True when `kubectl get <args>` answers NotFound.
    #[track_caller]
    pub fn gone(&self, args: &[&str]) -> bool {
        let mut a = vec!["get"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-o", "name"]);
        let (code, out, err) = self.run(&a);
        if code == 0 {
            return false;
        }
        assert!(
            err.contains("(NotFound)"),
            "{}: kubectl {a:?}: unexpected failure\nstdout: {out}\nstderr: {err}",
            self.who()
        );
        true
    }

    /// What kubectl prints for a deleted object: kubectl ≥ 1.35 names the namespace.
    pub fn deleted(&self, what: &str, ns: Option<&str>) -> String {
        match ns {
            Some(ns) if self.minor >= 35 => format!("{what} deleted from {ns} namespace"),
            _ => format!("{what} deleted"),
        }
    }
}

/// Runs `f` once per kubectl, each with its own fresh server.
pub fn each_kubectl(f: impl Fn(&Session)) {
    let all = kubectls();
    if all.len() < 2 {
        eprintln!(
            "note: newest kubectl not installed (run scripts/install-kubectl-new); testing only the machine's kubectl"
        );
    }
    for k in all {
        let s = Session::new(k);
        f(&s);
    }
}
