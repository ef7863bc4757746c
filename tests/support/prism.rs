//! Starts and stops a Prism proxy that checks traffic against Tripletex's OpenAPI spec, and
//! recognises its complaints.
//!
//! Include it from a test file with `#[path = "support/prism.rs"] mod prism;`. It needs only
//! std, libc and tempfile. [`Prism::start`] blocks for up to a minute (longer on the first run,
//! when npm installs Prism), so call it from a multi-thread tokio test or before the runtime.
//!
//! The spec is the salary subset kept in the repository
//! (`contracts/tripletex/openapi-salary-subset.json`; its README names the vendor's version and
//! how it was cut). Prism (`@stoplight/prism-cli`, pinned below) lives in
//! `${PRISM_HOME:-$HOME/.cache/salary-sync-prism}` and is installed there with npm when missing.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Prism release the contract tests run (npm package `@stoplight/prism-cli`).
const PRISM_PACKAGE: &str = "@stoplight/prism-cli@5.16.0";

/// A running Prism proxy. Dropping it stops the proxy.
pub struct Prism {
    child: Child,
    port: u16,
    log: PathBuf,
    _log_dir: tempfile::TempDir,
}

impl Prism {
    /// The salary subset of Tripletex's OpenAPI spec the proxy checks against.
    pub fn spec_path() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("contracts/tripletex/openapi-salary-subset.json")
    }

    /// Prism's executable, installed with npm on first use.
    fn executable() -> Result<PathBuf, String> {
        let home = match std::env::var_os("PRISM_HOME") {
            Some(dir) => PathBuf::from(dir),
            None => PathBuf::from(std::env::var_os("HOME").ok_or("HOME is not set")?)
                .join(".cache/salary-sync-prism"),
        };
        let prism = home.join("node_modules/.bin/prism");
        if prism.is_file() {
            return Ok(prism);
        }
        std::fs::create_dir_all(&home)
            .map_err(|e| format!("cannot create {}: {e}", home.display()))?;
        let out = Command::new("npm")
            .args([
                "install",
                "--silent",
                "--no-audit",
                "--no-fund",
                PRISM_PACKAGE,
            ])
            .current_dir(&home)
            .output()
            .map_err(|e| format!("Prism is not installed and npm could not run: {e}"))?;
        if !out.status.success() || !prism.is_file() {
            return Err(format!(
                "npm could not install {PRISM_PACKAGE} into {} ({}): {}",
                home.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(prism)
    }

    /// Starts Prism in front of `upstream` (e.g. the simulator's `base_url()`, which ends in
    /// `/v2`; Prism appends the spec path to it) on a free loopback port. `--errors` makes
    /// Prism refuse a request that breaks the spec (422) and replace an answer that breaks it
    /// (500 with `sl-violations`).
    pub fn start(upstream: &str) -> Result<Self, String> {
        let spec = Self::spec_path();
        if !spec.is_file() {
            return Err(format!("{} not found", spec.display()));
        }
        let prism = Self::executable()?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let log_dir = tempfile::tempdir().map_err(|e| format!("no temp dir: {e}"))?;
        let log = log_dir.path().join("prism.log");
        let log_file =
            std::fs::File::create(&log).map_err(|e| format!("cannot create the log: {e}"))?;
        let log_err = log_file
            .try_clone()
            .map_err(|e| format!("cannot share the log: {e}"))?;
        let child = Command::new(&prism)
            .args([
                "proxy",
                "--host",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "--errors",
            ])
            .arg(&spec)
            .arg(upstream)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("could not run {}: {e}", prism.display()))?;
        let mut proxy = Self {
            child,
            port,
            log,
            _log_dir: log_dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if proxy.log_text().contains("Prism is listening") {
                return Ok(proxy);
            }
            if let Ok(Some(status)) = proxy.child.try_wait() {
                return Err(format!("Prism exited ({status}):\n{}", proxy.log_text()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "Prism did not start within 60 s:\n{}",
            proxy.log_text()
        ))
    }

    /// `http://127.0.0.1:PORT`: the base URL a Tripletex client uses through the proxy. It has
    /// no `/v2`: Prism matches the spec's paths (`/employee`, ...) and forwards them to the
    /// upstream URL, which carries the prefix.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Prism's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Log lines that report a broken request or answer.
    pub fn log_violations(&self) -> Vec<String> {
        self.log_text()
            .lines()
            .filter(|l| {
                l.contains("Request terminated with error")
                    || l.to_ascii_lowercase().contains("violation")
                    || l.contains("✖")
            })
            .map(str::to_string)
            .collect()
    }

    /// `Some(description)` when an answer that came through the proxy is Prism's complaint
    /// rather than the upstream's answer: a 422 with a `validation` array (the request broke the
    /// spec), an `sl-violations` header (the answer broke it), or any Prism problem document.
    pub fn complaint(status: u16, headers: &[(String, String)], body: &str) -> Option<String> {
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        if let Some(v) = header("sl-violations") {
            return Some(format!("response violates the spec ({status}): {v}"));
        }
        let problem = header("content-type").is_some_and(|c| c.contains("problem+json"))
            || body.contains("stoplight.io/prism/errors");
        if problem || (status == 422 && body.contains("\"validation\"")) {
            return Some(format!("Prism refused the request ({status}): {body}"));
        }
        None
    }

    /// Stops the proxy (SIGTERM, then SIGKILL after 5 s).
    pub fn stop(self) {
        // Drop does the work.
    }
}

impl Drop for Prism {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid, which stays ours until it is reaped below; no
        // memory is touched.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
