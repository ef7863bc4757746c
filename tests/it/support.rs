//! Shared test machinery: the Tripletex simulator, config files, the daemon binary as a child
//! process, and a small admin-API client.

use salary_sync::api::admin::Discovery;
use salary_sync::api::service::{Shown, SubmitItem};
use salary_sync::domain::{State, Workflow};
use salary_sync::simulators::tripletex::{self as sim, Seed};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const INTEGRATION: &str = "acme-tripletex";
/// The activation instant `setup` records; test events occur after it.
pub const ACTIVATED_AT: &str = "2026-01-01T00:00:00Z";
pub const CONSUMER_ENV: &str = "IT_TRIPLETEX_CONSUMER_TOKEN";
pub const EMPLOYEE_ENV: &str = "IT_TRIPLETEX_EMPLOYEE_TOKEN";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_salary-sync")
}

/// A store directory and a config file pointing at `base_url`.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub store: PathBuf,
}

pub fn setup(base_url: &str, retry_initial_ms: u64) -> Setup {
    setup_with(base_url, retry_initial_ms, "")
}

/// `setup` with more TOML appended before the integrations (e.g. a `[webhook]` table, or
/// other integrations, which the caller enables).
pub fn setup_with(base_url: &str, retry_initial_ms: u64, extra: &str) -> Setup {
    let retry = RetryToml {
        attempts_max: 10,
        initial_delay_ms: retry_initial_ms,
        delay_ms_max: 1000,
        auth_wait_ms: 2000,
    };
    let setup = setup_config(&retry, &format!("{extra}\n\n{}", tripletex_table(base_url)));
    enable(&setup.config, INTEGRATION);
    setup
}

/// The Tripletex integration `INTEGRATION` at `base_url`, tokens from the environment.
pub fn tripletex_table(base_url: &str) -> String {
    format!(
        r#"[[integration]]
id = "{INTEGRATION}"
system = "tripletex"
base_url = "{base_url}"
consumer_token = {{ env = "{CONSUMER_ENV}" }}
employee_token = {{ env = "{EMPLOYEE_ENV}" }}
"#
    )
}

/// A store directory and a config file: the daemon settings every test shares, `retry`, then
/// `tables` (integrations and any other tables). Nothing is enabled yet.
pub fn setup_config(retry: &RetryToml, tables: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let store = dir.path().join("store");
    let config = dir.path().join("salary-sync.toml");
    let text = format!(
        r#"store = "{store}"
admin_listen = "127.0.0.1:0"
workers = 8
shutdown_grace_ms = 3000

[retry]
attempts_max = {attempts}
initial_delay_ms = {initial}
delay_ms_max = {max}
auth_wait_ms = {auth}

{tables}
"#,
        store = store.display(),
        attempts = retry.attempts_max,
        initial = retry.initial_delay_ms,
        max = retry.delay_ms_max,
        auth = retry.auth_wait_ms,
    );
    std::fs::write(&config, text).unwrap_or_else(|e| panic!("write config: {e}"));
    Setup { dir, config, store }
}

/// Salary sync is off until enabled: activate `integration` before every test event's time
/// (the daemon is not running yet, so this opens the store directly).
pub fn enable(config: &Path, integration: &str) {
    let out = Command::new(bin())
        .arg("--config")
        .arg(config)
        .args([
            "integrations",
            "enable",
            integration,
            "--from",
            ACTIVATED_AT,
        ])
        .env("SALARY_SYNC_LOG", "warn")
        .output()
        .unwrap_or_else(|e| panic!("enable {integration}: {e}"));
    assert!(
        out.status.success(),
        "enable {integration}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a CLI command to completion; returns (exit code, stdout, stderr).
pub fn cli(setup: &Setup, args: &[&str]) -> (i32, String, String) {
    let seed = Seed::demo();
    let out = Command::new(bin())
        .arg("--config")
        .arg(&setup.config)
        .args(args)
        .env(CONSUMER_ENV, &seed.consumer_token)
        .env(EMPLOYEE_ENV, &seed.employee_token)
        .env("SALARY_SYNC_LOG", "warn")
        .output()
        .unwrap_or_else(|e| panic!("run {args:?}: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The daemon binary as a child process.
pub struct DaemonProcess {
    pub child: Child,
    pub log: PathBuf,
}

impl DaemonProcess {
    pub fn spawn(setup: &Setup, log_name: &str) -> Self {
        Self::spawn_with(setup, log_name, &[])
    }

    /// `spawn` with extra global arguments (e.g. `--log-format json`).
    pub fn spawn_with(setup: &Setup, log_name: &str, args: &[&str]) -> Self {
        Self::spawn_full(setup, log_name, args, &[])
    }

    /// `spawn` with more environment variables (other integrations' credentials).
    pub fn spawn_env(setup: &Setup, log_name: &str, env: &[(&str, &str)]) -> Self {
        Self::spawn_full(setup, log_name, &[], env)
    }

    fn spawn_full(setup: &Setup, log_name: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let seed = Seed::demo();
        let log = setup.dir.path().join(log_name);
        let file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("log file: {e}"));
        let child = Command::new(bin())
            .arg("--config")
            .arg(&setup.config)
            .args(args)
            .arg("run")
            .env(CONSUMER_ENV, &seed.consumer_token)
            .env(EMPLOYEE_ENV, &seed.employee_token)
            .envs(env.iter().copied())
            .env("SALARY_SYNC_LOG", "info")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn daemon: {e}"));
        Self { child, log }
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill(); // SIGKILL on unix
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits for the exit status.
    pub fn terminate(mut self) -> Option<i32> {
        // SAFETY: kill(2) with a pid we own and a valid signal number.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        None
    }
}

/// A client of the running daemon's admin API, found through its discovery file.
pub struct Admin {
    pub client: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Admin {
    /// Waits until the daemon for `store` answers (its discovery file is written after bind).
    pub async fn wait(store: &Path, pid: u32) -> Admin {
        let started = Instant::now();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        loop {
            if let Some(d) = Discovery::read(store) {
                if d.pid == pid {
                    let admin = Admin {
                        client: client.clone(),
                        base: format!("http://{}", d.addr),
                        token: d.token,
                    };
                    if admin.get("/admin/v1/health").await.is_some() {
                        return admin;
                    }
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "daemon did not come up"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn get(&self, path: &str) -> Option<Value> {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.json().await.ok()
    }

    /// Submits events; None when the daemon died before answering.
    pub async fn submit(&self, events: &Value) -> Option<Vec<SubmitItem>> {
        let r = self
            .client
            .post(format!("{}/admin/v1/events", self.base))
            .bearer_auth(&self.token)
            .json(events)
            .send()
            .await
            .ok()?;
        r.json().await.ok()
    }

    pub async fn instances(&self) -> Option<Vec<Workflow>> {
        let v = self.get("/admin/v1/instances").await?;
        serde_json::from_value(v.get("instances")?.clone()).ok()
    }

    pub async fn show(&self, id: &str) -> Option<Shown> {
        serde_json::from_value(self.get(&format!("/admin/v1/instances/{id}")).await?).ok()
    }

    /// Waits until every instance is terminal and returns them.
    pub async fn wait_all_terminal(&self, expected: usize, timeout: Duration) -> Vec<Workflow> {
        let started = Instant::now();
        loop {
            if let Some(items) = self.instances().await {
                if items.len() >= expected && items.iter().all(|w| w.state.is_terminal()) {
                    return items;
                }
                if started.elapsed() > timeout {
                    let open: Vec<_> = items
                        .iter()
                        .filter(|w| !w.state.is_terminal())
                        .map(|w| (w.id, w.state))
                        .collect();
                    panic!(
                        "not terminal after {timeout:?}: {} instances, open: {open:?}",
                        items.len()
                    );
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// One salary event in the wire format.
#[allow(clippy::too_many_arguments)]
pub fn event(
    event_id: &str,
    kind: &str,
    occurred_at: &str,
    salary: &str,
    employee: Value,
    amount: &str,
    currency: &str,
    unit: &str,
    start: &str,
) -> Value {
    json!({
        "event_id": event_id,
        "integration_id": INTEGRATION,
        "kind": kind,
        "occurred_at": occurred_at,
        "salary": {
            "id": salary, "employee": employee, "amount": amount, "currency": currency,
            "period_unit": unit, "start_date": start, "end_date": null, "note": "test"
        }
    })
}

pub fn state_of(items: &[Workflow], salary: &str, kind: &str) -> State {
    items
        .iter()
        .find(|w| w.change.salary.id.as_str() == salary && w.change.kind.as_str() == kind)
        .map(|w| w.state)
        .unwrap_or_else(|| panic!("no {kind} instance for {salary}"))
}

pub async fn start_sim(seed: Seed) -> sim::Handle {
    sim::start(seed)
        .await
        .unwrap_or_else(|e| panic!("simulator: {e}"))
}

// ---- Helpers for the fault tests (tests/it/faults.rs) ----

/// A `[retry]` table for [`setup_with_retry`]; multiplier and jitter keep their defaults (2.0 and
/// 0.3), so a delay is the interval reached × [0.7, 1.3].
#[derive(Debug, Clone, Copy)]
pub struct RetryToml {
    pub attempts_max: u32,
    pub initial_delay_ms: u64,
    pub delay_ms_max: u64,
    pub auth_wait_ms: u64,
}

/// `setup` with its own `[retry]` table.
pub fn setup_with_retry(base_url: &str, retry: RetryToml) -> Setup {
    let setup = setup_config(&retry, &tripletex_table(base_url));
    enable(&setup.config, INTEGRATION);
    setup
}

impl DaemonProcess {
    /// `spawn`, with the integration's consumer and employee tokens given explicitly (a wrong
    /// one makes Tripletex refuse to create a session).
    pub fn spawn_with_tokens(
        setup: &Setup,
        log_name: &str,
        consumer: &str,
        employee: &str,
    ) -> Self {
        let log = setup.dir.path().join(log_name);
        let file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("log file: {e}"));
        let child = Command::new(bin())
            .arg("--config")
            .arg(&setup.config)
            .arg("run")
            .env(CONSUMER_ENV, consumer)
            .env(EMPLOYEE_ENV, employee)
            .env("SALARY_SYNC_LOG", "info")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn daemon: {e}"));
        Self { child, log }
    }
}

impl Admin {
    /// POSTs `body` to an admin path; (status, JSON answer), None when the daemon did not answer.
    pub async fn post(&self, path: &str, body: &Value) -> Option<(u16, Value)> {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .ok()?;
        let status = r.status().as_u16();
        Some((status, r.json().await.unwrap_or(Value::Null)))
    }

    /// Polls `show ID` until `done` holds for it; panics after `timeout` with the last copy.
    pub async fn wait_show(
        &self,
        id: &str,
        timeout: Duration,
        done: impl Fn(&Shown) -> bool,
    ) -> Shown {
        let started = Instant::now();
        loop {
            let shown = self.show(id).await;
            if let Some(shown) = shown {
                if done(&shown) {
                    return shown;
                }
                if started.elapsed() > timeout {
                    panic!("{id}: condition not met after {timeout:?}: {shown:#?}");
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}
