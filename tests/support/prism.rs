//! Starts and stops the Prism proxy that checks traffic against Tripletex's OpenAPI spec
//! (`proxy.sh` in the contracts directory), and recognises its complaints.
//!
//! Include it from a test file with `#[path = "support/prism.rs"] mod prism;`. It needs only
//! std, libc and tempfile. [`Prism::start`] blocks for up to a minute (longer on the first run,
//! when npm installs Prism), so call it from a multi-thread tokio test or before the runtime.
//!
//! The contracts directory is `$TRIPLETEX_CONTRACT_DIR` when set, else
//! `$CARGO_MANIFEST_DIR/../shared/contracts/tripletex`.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// A running Prism proxy. Dropping it stops the proxy.
pub struct Prism {
    pid: libc::pid_t,
    port: u16,
    log: PathBuf,
    _log_dir: tempfile::TempDir,
}

impl Prism {
    /// The directory holding `proxy.sh` and the spec.
    pub fn contract_dir() -> PathBuf {
        match std::env::var_os("TRIPLETEX_CONTRACT_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/contracts/tripletex"),
        }
    }

    /// Starts Prism in front of `upstream` (e.g. the simulator's `base_url()`, which ends in
    /// `/v2`; Prism appends the spec path to it) on a free loopback port.
    pub fn start(upstream: &str) -> Result<Self, String> {
        let script = Self::contract_dir().join("proxy.sh");
        if !script.is_file() {
            return Err(format!(
                "{} not found; set TRIPLETEX_CONTRACT_DIR to the directory with proxy.sh",
                script.display()
            ));
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let log_dir = tempfile::tempdir().map_err(|e| format!("no temp dir: {e}"))?;
        let log = log_dir.path().join("prism.log");
        let out = Command::new("bash")
            .arg(&script)
            .arg(upstream)
            .arg(port.to_string())
            .arg(&log)
            .output()
            .map_err(|e| format!("could not run {}: {e}", script.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(format!(
                "proxy.sh failed ({}): {}{}\nlog:\n{}",
                out.status,
                stdout,
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(&log).unwrap_or_default()
            ));
        }
        let pid = stdout
            .trim()
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| format!("proxy.sh printed no PID: {stdout:?}"))?;
        Ok(Self {
            pid,
            port,
            log,
            _log_dir: log_dir,
        })
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
        // SAFETY: kill(2) on the pid proxy.sh printed for the Prism it started; no memory is
        // touched.
        unsafe {
            libc::kill(self.pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(self.pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if alive(self.pid) {
            // SAFETY: as above.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
            }
        }
    }
}

/// True while the process exists and is not a zombie (Prism is not our child: once proxy.sh
/// exits it belongs to whoever reaps orphans, which may be slow to do so).
fn alive(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    let exists = unsafe { libc::kill(pid, 0) } == 0;
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false);
    exists && !zombie
}
