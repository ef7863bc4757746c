//! Cost at scale (issue 6): what a large store costs the real binary, on a real sled store on
//! disk in the temp dir.
//!
//! - **recovery**: a store holding `SCALE_RECOVERY_N` (default 100 000) non-terminal
//!   (`pending`) instances; `salary-sync run` is started as a child and timed from spawn until
//!   `/readyz` answers 200 (the engine's first scheduler pass is done). The daemon's one
//!   integration points at a closed port, so the workers it starts fail and back off.
//! - **disk**: a store holding `SCALE_N` (default 1 000 000) instances driven to `sent`, each
//!   with its six history entries and its record mapping; bytes on disk (allocated blocks of
//!   the store directory, after the store is closed and flushed) per instance.
//! - **dump**: `salary-sync dump --format ndjson` on that store as a child, its stdout read
//!   and counted here; its wall time and its peak RSS (`ru_maxrss` from `wait4`).
//! - **idle daemon**: `salary-sync run` on that store (every instance terminal, so it idles);
//!   its time to ready, and its RSS (`VmRSS` from `/proc/PID/status`) after a few seconds.
//!
//! `SCALE_CACHE_MB` sets the daemon's `store_cache_mb` (default 64, the daemon's default;
//! sled's own default is 1024).
//!
//! The stores are filled through the store's own batched APIs, not HTTP: `Store::ingest` with
//! `INGEST_BATCH_LEN` changes per durable write, then `Store::commit_many` with one batch's
//! transitions per durable write, five times (matched, currency, overlap, intent, written),
//! each transition computed by the pure step function as a worker would.
//!
//! `cargo bench --bench scale` runs the full sizes. Run without `--bench` (as
//! `cargo test --all-targets` does) it is a smoke test on 300 and 500 instances that fails
//! if the daemon never gets ready or the dump does not print every instance.

mod support;

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};
use salary_sync::domain::change::parse_batch;
use salary_sync::domain::{
    step, Currency, Input, IntegrationId, PayrollRecord, Period, Position, SalaryChange,
    Transition, WorkflowId, WriteReport,
};
use salary_sync::engine::RetrySettings;
use salary_sync::storage::{IngestOutcome, Store};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

const INTEGRATION: &str = "scale-tripletex";
/// Changes per `Store::ingest` call and transitions per `Store::commit_many` call.
const INGEST_BATCH_LEN: usize = 1_000;
/// How long the daemon may take to get ready before the run is a failure.
const READY_WAIT_MAX: Duration = Duration::from_secs(600);
/// How long the idle daemon runs before its RSS is read.
const IDLE_SETTLE: Duration = Duration::from_secs(3);
const BIN: &str = env!("CARGO_BIN_EXE_salary-sync");

fn main() -> ExitCode {
    support::exit("scale", run())
}

fn run() -> Result<()> {
    let bench = std::env::args().any(|a| a == "--bench");
    let (recovery_n, n) = if bench {
        (
            support::env_usize("SCALE_RECOVERY_N", 100_000)?,
            support::env_usize("SCALE_N", 1_000_000)?,
        )
    } else {
        (300, 500)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut out = String::new();

    // Recovery: non-terminal instances.
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let config = write_config(dir.path())?;
    eprintln!("scale: filling a store with {recovery_n} pending instances");
    let filled = runtime.block_on(fill(&dir.path().join("store"), recovery_n, false))?;
    let open_s = time_open(&dir.path().join("store"))?;
    let mut recoveries = Vec::new();
    for _ in 0..2 {
        let mut daemon = Daemon::start(&config)?;
        recoveries.push(daemon.ready_s);
        daemon.stop()?;
    }
    out += &format!(
        "\n| recovery, {recovery_n} pending instances | figure |\n|---|---|\n\
         | fill (ingest) | {:.1} s, {:.0} instances/s |\n\
         | `Store::open` alone, in this process | {:.3} s |\n\
         | `salary-sync run`: spawn -> /readyz 200 (two starts) | {} |\n",
        filled.ingest_s,
        recovery_n as f64 / filled.ingest_s,
        open_s,
        recoveries
            .iter()
            .map(|s| format!("{s:.3} s"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    drop(dir);

    // A large store of finished instances.
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let config = write_config(dir.path())?;
    let store_path = dir.path().join("store");
    eprintln!("scale: filling a store with {n} instances, each driven to sent");
    let filled = runtime.block_on(fill(&store_path, n, true))?;
    let (apparent, allocated) = dir_bytes(&store_path)?;
    let open_s = time_open(&store_path)?;

    let mut dumps = Vec::new();
    for _ in 0..2 {
        let dump = dump(&config)?;
        if dump.lines != n {
            bail!("dump printed {} instances of {n}", dump.lines);
        }
        dumps.push(dump);
    }
    let mut daemon = Daemon::start(&config)?;
    let ready_s = daemon.ready_s;
    std::thread::sleep(IDLE_SETTLE);
    let rss = daemon.rss_kib()?;
    let (rss_kib, hwm_kib) = rss;
    daemon.stop()?;
    let (apparent_after, allocated_after) = dir_bytes(&store_path)?;

    out += &format!(
        "\n| {n} instances, each `sent` with 6 history entries | figure |\n|---|---|\n\
         | fill: ingest | {:.1} s, {:.0} instances/s |\n\
         | fill: 5 transitions each, batched commits | {:.1} s, {:.0} transitions/s |\n\
         | disk after the fill (allocated / apparent) | {:.1} / {:.1} MiB: {:.0} / {:.0} bytes per instance |\n\
         | disk after the dumps and a daemon start (allocated / apparent) | {:.1} / {:.1} MiB: {:.0} / {:.0} bytes per instance |\n\
         | `Store::open` alone, in this process | {:.3} s |\n",
        filled.ingest_s,
        n as f64 / filled.ingest_s,
        filled.transitions_s,
        5.0 * n as f64 / filled.transitions_s.max(f64::MIN_POSITIVE),
        mib(allocated),
        mib(apparent),
        allocated as f64 / n as f64,
        apparent as f64 / n as f64,
        mib(allocated_after),
        mib(apparent_after),
        allocated_after as f64 / n as f64,
        apparent_after as f64 / n as f64,
        open_s,
    );
    for (i, d) in dumps.iter().enumerate() {
        out += &format!(
            "| `salary-sync dump --format ndjson`, run {} | {:.1} s, {:.0} instances/s, {:.0} MiB out, peak RSS {:.1} MiB |\n",
            i + 1,
            d.wall_s,
            n as f64 / d.wall_s,
            mib(d.bytes),
            d.max_rss_kib as f64 / 1024.0
        );
    }
    out += &format!(
        "| `salary-sync run`, idle: spawn -> /readyz 200 | {ready_s:.3} s |\n\
         | `salary-sync run`, idle: RSS {}s after ready (VmRSS / VmHWM) | {:.1} / {:.1} MiB |\n",
        IDLE_SETTLE.as_secs(),
        rss_kib as f64 / 1024.0,
        hwm_kib as f64 / 1024.0
    );
    print!("{out}");
    Ok(())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The daemon's configuration: the store beside it, loopback admin API on any port, one
/// Tripletex integration on a closed port (port 9, discard: nothing listens).
fn write_config(dir: &Path) -> Result<PathBuf> {
    let path = dir.join("salary-sync.toml");
    let text = format!(
        r#"store = "{}"
admin_listen = "127.0.0.1:0"
workers = 16
store_cache_mb = {cache_mb}
shutdown_grace_ms = 2000

[[integration]]
id = "{INTEGRATION}"
system = "tripletex"
base_url = "http://127.0.0.1:9"
consumer_token = {{ env = "SCALE_CONSUMER_TOKEN" }}
employee_token = {{ env = "SCALE_EMPLOYEE_TOKEN" }}
"#,
        dir.join("store").display(),
        cache_mb = std::env::var("SCALE_CACHE_MB").unwrap_or_else(|_| "64".into())
    );
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

fn command(config: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--config")
        .arg(config)
        .env("SCALE_CONSUMER_TOKEN", "scale")
        .env("SCALE_EMPLOYEE_TOKEN", "scale")
        .env("SALARY_SYNC_LOG", "warn");
    c
}

struct Fill {
    ingest_s: f64,
    transitions_s: f64,
}

fn change(i: usize) -> Result<SalaryChange> {
    let body = format!(
        r#"{{"event_id":"scale-{i}","integration_id":"{INTEGRATION}","kind":"created","occurred_at":"2026-11-20T09:00:00Z","salary":{{"id":"sal-{i}","employee":{{"id":"hr-{i}","payroll_employee_id":"{i}"}},"amount":"52000.00","currency":"NOK","period_unit":"monthly","start_date":"2026-01-01","end_date":null,"note":"New agreement"}}}}"#
    );
    parse_batch(body.as_bytes())
        .ok()
        .and_then(|mut v| v.pop())
        .and_then(Result::ok)
        .ok_or_else(|| anyhow!("bench event {i} is invalid"))
}

/// Fills a new store at `path` with `n` instances: ingested, then (if `to_sent`) driven to
/// `sent` through five batched commits of step-function transitions. The store is closed
/// (flushed) when this returns.
async fn fill(path: &Path, n: usize, to_sent: bool) -> Result<Fill> {
    let store = Store::open(path)?;
    let integration = IntegrationId::parse(INTEGRATION).map_err(|e| anyhow!(e))?;
    store
        .set_integration(
            integration,
            true,
            DateTime::from_timestamp(0, 0),
            Utc::now(),
        )
        .await?;
    let policy = RetrySettings::default();
    let nok = Currency::parse("NOK").map_err(|e| anyhow!(e))?;
    let mut ingest_s = 0.0;
    let mut transitions_s = 0.0;
    let mut next = 1;
    while next <= n {
        let end = (next + INGEST_BATCH_LEN).min(n + 1);
        let changes: Vec<SalaryChange> = (next..end).map(change).collect::<Result<_>>()?;
        next = end;
        let started = Instant::now();
        let outcomes = store.ingest(changes, Utc::now()).await?;
        ingest_s += started.elapsed().as_secs_f64();
        if !to_sent {
            continue;
        }
        let ids: Vec<WorkflowId> = outcomes
            .into_iter()
            .map(|o| match o {
                IngestOutcome::Accepted(id) => Ok(id),
                other => Err(anyhow!("ingest refused a bench change: {other:?}")),
            })
            .collect::<Result<_>>()?;
        let mut wfs = ids
            .iter()
            .map(|id| store.get(*id)?.ok_or_else(|| anyhow!("{id} vanished")))
            .collect::<Result<Vec<_>>>()?;
        let started = Instant::now();
        for phase in 0..5 {
            let now = Utc::now();
            let transitions: Vec<Transition> = wfs
                .iter()
                .map(|wf| {
                    let input = match phase {
                        0 => Input::Matched(Position {
                            employee_id: wf.id.0.to_string(),
                            employment_id: (10_000_000 + wf.id.0).to_string(),
                            period: Period {
                                start: now.date_naive(),
                                end: None,
                            },
                        }),
                        1 => Input::CurrencyFound(nok),
                        2 => Input::OverlapClear,
                        3 => Input::IntentRecorded { updates: None },
                        _ => Input::Written(WriteReport {
                            record: PayrollRecord {
                                id: (20_000_000 + wf.id.0).to_string(),
                                employment_id: (10_000_000 + wf.id.0).to_string(),
                            },
                            adopted: false,
                            dropped_fields: vec!["note"],
                            record_remains_after_delete: false,
                        }),
                    };
                    step(wf, input, now, &policy).map_err(|e| anyhow!("step refused: {e}"))
                })
                .collect::<Result<_>>()?;
            wfs = transitions.iter().map(|t| t.workflow.clone()).collect();
            for result in store.commit_many(transitions).await? {
                result?;
            }
        }
        transitions_s += started.elapsed().as_secs_f64();
        if next % 100_000 < INGEST_BATCH_LEN {
            eprintln!("scale: {} of {n} instances stored", next - 1);
        }
    }
    drop(store);
    Ok(Fill {
        ingest_s,
        transitions_s,
    })
}

/// How long `Store::open` takes here (sled's own open, then the instance counts kept at the
/// last commit; a store without them is counted instance by instance).
fn time_open(path: &Path) -> Result<f64> {
    let started = Instant::now();
    let store = Store::open(path)?;
    let s = started.elapsed().as_secs_f64();
    drop(store);
    Ok(s)
}

/// (apparent bytes, allocated bytes) of every file under `path`.
fn dir_bytes(path: &Path) -> Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut apparent = 0;
    let mut allocated = 0;
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            let (a, b) = dir_bytes(&entry.path())?;
            apparent += a;
            allocated += b;
        } else {
            apparent += meta.len();
            allocated += meta.blocks() * 512;
        }
    }
    Ok((apparent, allocated))
}

struct Dump {
    wall_s: f64,
    lines: usize,
    bytes: u64,
    max_rss_kib: i64,
}

/// Runs `salary-sync dump --format ndjson` on the stopped daemon's store, reads its stdout
/// here, and reaps it with `wait4` for its own peak RSS.
fn dump(config: &Path) -> Result<Dump> {
    let started = Instant::now();
    let mut child = command(config)
        .args(["dump", "--format", "ndjson"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start salary-sync dump")?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let mut reader = BufReader::with_capacity(1 << 16, stdout);
    let (mut lines, mut bytes) = (0usize, 0u64);
    let mut buf = [0u8; 1 << 16];
    loop {
        let read = reader.read(&mut buf)?;
        if read == 0 {
            break;
        }
        bytes += read as u64;
        lines += buf[..read].iter().filter(|b| **b == b'\n').count();
    }
    let (status, usage) = reap(&child)?;
    let wall_s = started.elapsed().as_secs_f64();
    if status != 0 {
        bail!("salary-sync dump exited with status {status}");
    }
    Ok(Dump {
        wall_s,
        lines,
        bytes,
        max_rss_kib: usage.ru_maxrss,
    })
}

/// Waits for `child` with `wait4`, which also returns the child's own resource usage
/// (`ru_maxrss` is its peak RSS in KiB on Linux). Returns the wait status and the usage.
fn reap(child: &Child) -> Result<(i32, libc::rusage)> {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: wait4 writes the status and the usage into the two values we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if r != pid {
        bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    Ok((status, usage))
}

/// `salary-sync run` as a child, ready.
struct Daemon {
    child: Child,
    ready_s: f64,
}

impl Daemon {
    /// Spawns the daemon and waits until `/readyz` answers 200; `ready_s` is spawn -> ready.
    fn start(config: &Path) -> Result<Self> {
        let started = Instant::now();
        let mut child = command(config)
            .arg("run")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start salary-sync run")?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        // "salary-sync running; webhook on ...; admin API on 127.0.0.1:PORT; health and metrics ..."
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let addr = line
            .split("admin API on ")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| c == ';' || c.is_whitespace()).next())
            .filter(|addr| !addr.is_empty())
            .ok_or_else(|| anyhow!("the daemon did not say where it listens: {line:?}"))?
            .to_owned();
        let mut daemon = Self {
            child,
            ready_s: 0.0,
        };
        loop {
            if readyz(&addr) {
                daemon.ready_s = started.elapsed().as_secs_f64();
                return Ok(daemon);
            }
            if started.elapsed() > READY_WAIT_MAX {
                daemon.stop()?;
                bail!("the daemon was not ready after {READY_WAIT_MAX:?}");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// (VmRSS, VmHWM) in KiB, from `/proc/PID/status`.
    fn rss_kib(&self) -> Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let field = |name: &str| -> Result<u64> {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| anyhow!("no {name} in /proc status"))
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// SIGTERM, then reap it.
    fn stop(&mut self) -> Result<()> {
        // SAFETY: kill sends a signal to our own child, which we have not reaped yet.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let (status, _) = reap(&self.child)?;
        if status != 0 {
            bail!("the daemon exited with status {status}");
        }
        Ok(())
    }
}

/// One `GET /readyz` over a plain TCP connection: true on 200.
fn readyz(addr: &str) -> bool {
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    if stream
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.ends_with(b"200")
}
