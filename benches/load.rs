//! The end-to-end load bench (issue 6): N salary changes through the real daemon code in this
//! process (`daemon::start` on a temporary sled store, the real `TripletexConnector` over HTTP
//! on loopback, the Tripletex simulator seeded with N employees each with an open employment),
//! at 0 ms and at 20 ms simulated payroll latency; and, in the same run, the raw sled limit on
//! the same disk, so the figures can be read as ratios on a noisy machine.
//!
//! `cargo bench --bench load` runs N = `LOAD_N` (default 10 000) with `LOAD_WORKERS` workers
//! (default 64), and an HTTP client keeping `LOAD_POOL` idle connections per host (default:
//! workers, as the daemon sizes it). Run without `--bench` (as `cargo test --all-targets`
//! does) it is a smoke test: 200 changes at 0 ms, and it fails unless every change reaches `sent`. `LOAD_LOG=1` installs
//! the binary's `info` log subscriber writing to a sink, to see what logging costs.
//!
//! A third run drives the same N changes through the same daemon and store with no payroll
//! system at all: an in-process connector that answers every step at once (`InstantPayroll`).
//! It is not evidence that anything works (the simulator runs are); it measures the ceiling the
//! durable store and the engine put on throughput by themselves: the same six durable writes a
//! change, no HTTP.
//!
//! Figures: end to end is from the first ingest call to the last instance's terminal commit;
//! accept -> sent is each instance's `updated_at` (its terminal commit) minus `accepted_at`;
//! peak RSS is `VmHWM`, reset through `/proc/self/clear_refs` before each run.

mod support;

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use salary_sync::clock::SystemClock;
use salary_sync::connectors::http::{client, ClientSettings};
use salary_sync::connectors::tripletex::{TripletexConfig, TripletexConnector};
use salary_sync::connectors::{Connector, Error as ConnectorError, OverlapCheck, PayrollSystem};
use salary_sync::daemon::{self, DaemonSettings};
use salary_sync::domain::{
    Currency, IntegrationId, PayrollRecord, Period, Position, SalaryChange, State, WriteReport,
};
use salary_sync::engine::{EngineSettings, RetrySettings};
use salary_sync::secret::Secret;
use salary_sync::simulators::tripletex::{self as sim, Seed, SeedEmployee, SeedEmployment};
use salary_sync::storage::{Filter, IngestOutcome};
use serde_json::json;
use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

const INTEGRATION: &str = "load-tripletex";
/// Changes per `Store::ingest` call, as one webhook or admin batch would bring them.
const INGEST_BATCH_LEN: usize = 500;
/// Raw sled: inserts per flush + fsync in the batched measurement.
const RAW_BATCH_LEN: usize = 100;
/// The bytes of one raw insert, about one encoded instance.
const RAW_VALUE_LEN: usize = 300;
/// A run that has not finished after this long is reported as a failure.
const RUN_TIME_MAX: Duration = Duration::from_secs(1800);
const EMPLOYMENT_ID_BASE: i64 = 10_000_000;

struct Params {
    n: usize,
    workers: usize,
    /// Idle connections the HTTP client keeps per host (`LOAD_POOL`, default `workers`, as the
    /// daemon sizes it; 16 was the daemon's fixed figure before).
    pool: usize,
    payrolls: Vec<Payroll>,
    raw_time: Duration,
    smoke: bool,
}

/// What answers the daemon's payroll calls in one run.
#[derive(Debug, Clone, Copy)]
enum Payroll {
    /// The Tripletex simulator over HTTP on loopback, answering after `latency_ms`.
    Simulator { latency_ms: u64 },
    /// `InstantPayroll`: no payroll system, every step answered in-process at once.
    Instant,
}

impl Payroll {
    fn label(self) -> String {
        match self {
            Payroll::Simulator { latency_ms } => format!("{latency_ms} ms"),
            Payroll::Instant => "none (in-process)".to_owned(),
        }
    }
}

struct RunReport {
    payroll: Payroll,
    n: usize,
    ingest_s: f64,
    total_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    calls_per_change: f64,
    writes_per_change: f64,
    not_sent: usize,
    peak_rss_mib: Option<f64>,
    /// CPU time of the whole process (daemon, simulator, HTTP both ways) during the run.
    cpu_s: f64,
    /// CPU time of the store's committer thread, the one writer.
    committer_cpu_s: Option<f64>,
    /// Transitions the workers committed, and the mean time each waited to be durable.
    commits: u64,
    commit_wait_mean_s: f64,
}

impl RunReport {
    fn changes_per_s(&self) -> f64 {
        self.n as f64 / self.total_s
    }
}

struct RawReport {
    single_per_s: f64,
    batched_per_s: f64,
}

fn main() -> ExitCode {
    support::exit("load", run())
}

fn run() -> Result<()> {
    let bench = std::env::args().any(|a| a == "--bench");
    let params = if bench {
        Params {
            n: support::env_usize("LOAD_N", 10_000)?.max(1),
            workers: support::env_usize("LOAD_WORKERS", 64)?.max(1),
            pool: 0,
            payrolls: vec![
                Payroll::Simulator { latency_ms: 0 },
                Payroll::Simulator { latency_ms: 20 },
                Payroll::Instant,
            ],
            raw_time: Duration::from_secs(3),
            smoke: false,
        }
    } else {
        Params {
            n: 200,
            workers: support::env_usize("LOAD_WORKERS", 64)?.max(1),
            pool: 0,
            payrolls: vec![Payroll::Simulator { latency_ms: 0 }, Payroll::Instant],
            raw_time: Duration::from_millis(200),
            smoke: true,
        }
    };
    let params = Params {
        pool: support::env_usize("LOAD_POOL", params.workers)?.max(1),
        ..params
    };
    if std::env::var("LOAD_LOG").is_ok_and(|v| v == "1") {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_writer(std::io::sink)
            .init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    eprintln!(
        "load: raw sled limit on the temp dir's disk ({:?} each)",
        params.raw_time
    );
    let raw = raw_sled(params.raw_time)?;
    let mut runs = Vec::new();
    for &payroll in &params.payrolls {
        eprintln!(
            "load: {} changes, {} workers, payroll latency {}",
            params.n,
            params.workers,
            payroll.label()
        );
        let report = runtime.block_on(one_run(params.n, params.workers, params.pool, payroll))?;
        if params.smoke && report.not_sent > 0 {
            bail!(
                "{} of {} changes did not reach sent",
                report.not_sent,
                report.n
            );
        }
        runs.push(report);
    }
    print!("{}", table(&params, &raw, &runs));
    Ok(())
}

/// A company with `n` employees, each with one open employment and no salary rows.
fn seed(n: usize) -> Seed {
    let start = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap_or(NaiveDate::MIN);
    let employees = (1..=n as i64)
        .map(|i| SeedEmployee {
            id: i,
            employee_number: i.to_string(),
            email: format!("e{i}@example.no"),
            first_name: "Load".into(),
            last_name: format!("Employee {i}"),
            employments: vec![SeedEmployment {
                id: EMPLOYMENT_ID_BASE + i,
                start_date: start,
                end_date: None,
            }],
        })
        .collect();
    Seed {
        employees,
        details: Vec::new(),
        ..Seed::demo()
    }
}

/// One salary created for employee `i` (by payroll employee id, the cheapest match).
fn change(i: usize) -> Result<SalaryChange> {
    let event = json!({
        "event_id": format!("load-{i}"),
        "integration_id": INTEGRATION,
        "kind": "created",
        "occurred_at": "2026-11-20T09:00:00Z",
        "salary": {
            "id": format!("sal-{i}"),
            "employee": {"id": format!("hr-{i}"), "payroll_employee_id": i.to_string()},
            "amount": "52000.00", "currency": "NOK", "period_unit": "monthly",
            "start_date": "2026-01-01", "end_date": null, "note": null
        }
    });
    SalaryChange::from_json(&event).map_err(|e| anyhow!("bench event {i} is invalid: {e:?}"))
}

/// The payroll side of one run: the simulator (and its handle), or the in-process connector.
enum PayrollUnderTest {
    Simulator(sim::Handle),
    Instant(Arc<InstantPayroll>),
}

impl PayrollUnderTest {
    async fn start(
        payroll: Payroll,
        n: usize,
        workers: usize,
        pool: usize,
    ) -> Result<(Self, Arc<dyn Connector>)> {
        let Payroll::Simulator { latency_ms } = payroll else {
            let instant = Arc::new(InstantPayroll::default());
            return Ok((Self::Instant(Arc::clone(&instant)), instant));
        };
        let seed = seed(n);
        let simulator = sim::start(seed.clone())
            .await
            .context("cannot start the Tripletex simulator")?;
        let control = simulator.control();
        control.set_latency(Duration::from_millis(latency_ms));
        let connector = TripletexConnector::new(
            TripletexConfig {
                base_url: control.base_url(),
                consumer_token: Secret::new(seed.consumer_token.clone()),
                employee_token: Secret::new(seed.employee_token.clone()),
                company: None,
                session_days: 1,
            },
            client(&ClientSettings {
                pool_idle_per_host_max: pool,
                ..ClientSettings::for_workers(workers)
            })?,
        );
        Ok((Self::Simulator(simulator), Arc::new(connector)))
    }

    /// True once `n` writes reached payroll; false after `timeout`.
    async fn wait_for_writes(&self, n: u64, timeout: Duration) -> bool {
        match self {
            Self::Simulator(s) => s.control().wait_for_writes(n, timeout).await,
            Self::Instant(p) => {
                let mut writes = p.writes.subscribe();
                let reached = tokio::time::timeout(timeout, writes.wait_for(|w| *w >= n)).await;
                matches!(reached, Ok(Ok(_)))
            }
        }
    }

    /// HTTP requests payroll answered (none without a payroll system).
    fn request_count(&self) -> u64 {
        match self {
            Self::Simulator(s) => s.control().request_count(),
            Self::Instant(_) => 0,
        }
    }

    async fn shutdown(self) {
        if let Self::Simulator(s) = self {
            s.shutdown().await;
        }
    }
}

/// No payroll system: every step answered in-process at once (an employment covering every
/// period, the change's own currency, no overlap, a write that succeeds). Counts its writes.
struct InstantPayroll {
    writes: tokio::sync::watch::Sender<u64>,
}

impl Default for InstantPayroll {
    fn default() -> Self {
        Self {
            writes: tokio::sync::watch::Sender::new(0),
        }
    }
}

#[async_trait::async_trait]
impl Connector for InstantPayroll {
    fn system(&self) -> PayrollSystem {
        PayrollSystem::Tripletex
    }

    async fn match_position(&self, change: &SalaryChange) -> Result<Position, ConnectorError> {
        Ok(Position {
            employee_id: change.salary.employee.hr_id.clone(),
            employment_id: change.salary.id.to_string(),
            period: Period {
                start: NaiveDate::MIN,
                end: None,
            },
        })
    }

    async fn currency(&self) -> Result<Currency, ConnectorError> {
        Currency::parse("NOK").map_err(ConnectorError::Unexpected)
    }

    async fn check_overlap(
        &self,
        _: &SalaryChange,
        _: &Position,
        _: Option<&PayrollRecord>,
    ) -> Result<OverlapCheck, ConnectorError> {
        Ok(OverlapCheck::Clear)
    }

    async fn find_written(
        &self,
        _: &SalaryChange,
        _: &Position,
        _: Option<&PayrollRecord>,
    ) -> Result<Option<PayrollRecord>, ConnectorError> {
        Ok(None)
    }

    async fn write(
        &self,
        change: &SalaryChange,
        position: &Position,
        _: Option<&PayrollRecord>,
    ) -> Result<WriteReport, ConnectorError> {
        self.writes.send_modify(|w| *w += 1);
        Ok(WriteReport {
            record: PayrollRecord {
                id: change.salary.id.to_string(),
                employment_id: position.employment_id.clone(),
            },
            adopted: false,
            dropped_fields: Vec::new(),
            record_remains_after_delete: false,
        })
    }
}

async fn one_run(n: usize, workers: usize, pool: usize, payroll: Payroll) -> Result<RunReport> {
    let (payroll_side, connector) = PayrollUnderTest::start(payroll, n, workers, pool).await?;
    let integration = IntegrationId::parse(INTEGRATION).map_err(|e| anyhow!(e))?;
    let mut connectors: HashMap<IntegrationId, Arc<dyn Connector>> = HashMap::new();
    connectors.insert(integration.clone(), connector);
    let store_dir = tempfile::tempdir().context("cannot create a temporary store directory")?;
    let settings = DaemonSettings {
        store: store_dir.path().join("store"),
        admin_listen: "127.0.0.1:0".parse()?,
        health_listen: None,
        engine: EngineSettings {
            per_integration: Default::default(),
            workers,
            retry: RetrySettings::default(),
            shutdown_grace: Duration::from_secs(5),
        },
        webhook: None,
        retention: None,
        retention_sweep_every: daemon::RETENTION_SWEEP_EVERY,
        store_cache_bytes: salary_sync::storage::CACHE_BYTES_DEFAULT,
        store_lock_wait: salary_sync::daemon::STORE_LOCK_WAIT_DEFAULT,
    };
    let changes: Vec<SalaryChange> = (1..=n).map(change).collect::<Result<_>>()?;
    let rss_reset = reset_peak_rss();
    let cpu_before = process_cpu_s();
    let commits_before = salary_sync::metrics::transition_commit_totals();
    let running = daemon::start(settings, connectors, Arc::new(SystemClock)).await?;
    let store = Arc::clone(running.engine.store());
    let activated = DateTime::from_timestamp(0, 0);
    store
        .set_integration(integration, true, activated, Utc::now())
        .await?;

    // Ingest every change, in batches, waking the engine after each as the admin API does.
    let started_at = Utc::now();
    let started = Instant::now();
    let mut batch = Vec::with_capacity(INGEST_BATCH_LEN);
    for (i, c) in changes.into_iter().enumerate() {
        batch.push(c);
        if batch.len() == INGEST_BATCH_LEN || i + 1 == n {
            let outcomes = store.ingest(std::mem::take(&mut batch), Utc::now()).await?;
            if let Some(o) = outcomes
                .iter()
                .find(|o| !matches!(o, IngestOutcome::Accepted(_)))
            {
                bail!("ingest refused a bench change: {o:?}");
            }
            running.engine.notify();
        }
    }
    let ingest_s = started.elapsed().as_secs_f64();

    // Wait for the payroll writes (a watch, no polling), then for the last commits.
    loop {
        if payroll_side
            .wait_for_writes(n as u64, Duration::from_secs(1))
            .await
            || all_terminal(&store.count_by_state()?)
        {
            break;
        }
        if started.elapsed() > RUN_TIME_MAX {
            bail!("instances still running after {RUN_TIME_MAX:?}");
        }
    }
    while !all_terminal(&store.count_by_state()?) {
        if started.elapsed() > RUN_TIME_MAX {
            bail!("instances still running after {RUN_TIME_MAX:?}");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let peak_rss_mib = rss_reset.then(peak_rss_mib).flatten();
    let cpu_s = process_cpu_s() - cpu_before;
    let committer_cpu_s = thread_cpu_s("store-committer");
    let commits_after = salary_sync::metrics::transition_commit_totals();
    let commits = commits_after.0 - commits_before.0;
    let commit_wait_mean_s = (commits_after.1 - commits_before.1) / (commits.max(1) as f64);

    let mut latencies_us = Vec::with_capacity(n);
    let mut finished_at = started_at;
    let mut writes = 0u64;
    let mut not_sent = 0;
    for wf in store.list(&Filter::default()) {
        let wf = wf?;
        finished_at = finished_at.max(wf.updated_at);
        // One store write per history entry: the ingest and every transition.
        writes += u64::from(wf.history_len);
        if wf.state == State::Sent {
            latencies_us.push(
                (wf.updated_at - wf.accepted_at)
                    .num_microseconds()
                    .unwrap_or(0),
            );
        } else {
            not_sent += 1;
        }
    }
    latencies_us.sort_unstable();
    let total_s = ((finished_at - started_at).num_microseconds().unwrap_or(0) as f64 / 1e6)
        .max(f64::MIN_POSITIVE);
    let report = RunReport {
        payroll,
        n,
        ingest_s,
        total_s,
        p50_ms: percentile_ms(&latencies_us, 0.50),
        p99_ms: percentile_ms(&latencies_us, 0.99),
        calls_per_change: payroll_side.request_count() as f64 / n as f64,
        writes_per_change: writes as f64 / n as f64,
        not_sent,
        peak_rss_mib,
        cpu_s,
        committer_cpu_s,
        commits,
        commit_wait_mean_s,
    };
    drop(store);
    running.stop().await?;
    payroll_side.shutdown().await;
    Ok(report)
}

fn all_terminal(counts: &[(State, u64)]) -> bool {
    counts
        .iter()
        .all(|(state, count)| state.is_terminal() || *count == 0)
}

fn percentile_ms(sorted_us: &[i64], q: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted_us.len() as f64 * q).ceil() as usize).clamp(1, sorted_us.len());
    sorted_us[rank - 1] as f64 / 1e3
}

/// Resets the process's peak RSS (`VmHWM`) to its current RSS; false where the kernel refuses.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// `VmHWM` of this process in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// User + system CPU time of this process so far.
fn process_cpu_s() -> f64 {
    // SAFETY: getrusage writes into the struct we hand it and reads nothing else.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return f64::NAN;
    }
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    s(usage.ru_utime) + s(usage.ru_stime)
}

/// User + system CPU time of the live thread named `name` (from `/proc/self/task`).
fn thread_cpu_s(name: &str) -> Option<f64> {
    // SAFETY: sysconf only reads a configuration value.
    let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // "tid (comm) state ...": the name may hold spaces, so split at the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if &stat[open + 1..close] != name {
            continue;
        }
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        // After the name: state is field 3 of stat(5), utime 14 and stime 15.
        let ticks = |i: usize| fields.get(i - 3)?.parse::<f64>().ok();
        return Some((ticks(14)? + ticks(15)?) / ticks_per_s as f64);
    }
    None
}

/// The raw sled limit, measured as `benches/store.rs` does: a 300-byte insert, `flush` and an
/// fsync of sled's data file each; and 100 inserts sharing one flush + fsync. Each runs for
/// `time` on a fresh database in the temp dir, the disk the stores above live on.
fn raw_sled(time: Duration) -> Result<RawReport> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let db = sled::open(dir.path()).context("cannot open a raw sled database")?;
    let data =
        std::fs::File::open(dir.path().join("db")).context("cannot open sled's data file")?;
    let value = vec![7u8; RAW_VALUE_LEN];
    let mut key = 0u64;
    let mut measure = |per_flush: usize| -> Result<f64> {
        let started = Instant::now();
        let mut inserts = 0u64;
        while started.elapsed() < time {
            for _ in 0..per_flush {
                key += 1;
                db.insert(key.to_be_bytes(), value.as_slice())?;
            }
            db.flush()?;
            data.sync_data()?;
            inserts += per_flush as u64;
        }
        Ok(inserts as f64 / started.elapsed().as_secs_f64())
    };
    Ok(RawReport {
        single_per_s: measure(1)?,
        batched_per_s: measure(RAW_BATCH_LEN)?,
    })
}

fn table(params: &Params, raw: &RawReport, runs: &[RunReport]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut line = |s: String| {
        let _ = writeln!(out, "{s}");
    };
    line(format!(
        "\n{} changes, {} workers, HTTP pool {} idle per host{}\n",
        params.n,
        params.workers,
        params.pool,
        if params.smoke { " (smoke run)" } else { "" }
    ));
    line("| payroll latency | end to end | ingest | accept -> sent p50 / p99 | HTTP calls / change | store writes / change | CPU / change | cores busy | committer busy | peak RSS | not sent |".into());
    line("|---|---|---|---|---|---|---|---|---|---|---|".into());
    for r in runs {
        line(format!(
            "| {} | {:.0} changes/s ({:.2} s) | {:.0} changes/s | {:.1} / {:.1} ms | {:.2} | {:.2} | {:.0} us | {:.2} | {} | {} | {} |",
            r.payroll.label(),
            r.changes_per_s(),
            r.total_s,
            r.n as f64 / r.ingest_s,
            r.p50_ms,
            r.p99_ms,
            r.calls_per_change,
            r.writes_per_change,
            r.cpu_s / r.n as f64 * 1e6,
            r.cpu_s / r.total_s,
            r.committer_cpu_s
                .map_or_else(|| "n/a".to_string(), |c| format!("{:.0} %", c / r.total_s * 1e2)),
            r.peak_rss_mib
                .map_or_else(|| "n/a".to_string(), |m| format!("{m:.0} MiB")),
            r.not_sent
        ));
    }
    line(String::new());
    line("| raw sled, same disk, same run | inserts/s |".into());
    line("|---|---|".into());
    line(format!(
        "| insert + flush + fsync each | {:.0} |",
        raw.single_per_s
    ));
    line(format!(
        "| {RAW_BATCH_LEN} inserts, one flush + fsync | {:.0} |",
        raw.batched_per_s
    ));
    line(String::new());
    line("| payroll latency | commit wait (mean) | committer CPU / change | committer ceiling (one writer thread, 100 % busy) | time a change holds a worker | of it: payroll latency | of it: commit waits |".into());
    line("|---|---|---|---|---|---|---|".into());
    for r in runs {
        let transitions_per_change = r.commits as f64 / r.n as f64;
        let (committer_us, ceiling) = match r.committer_cpu_s {
            Some(c) => (
                format!("{:.0} us", c / r.n as f64 * 1e6),
                format!("{:.0} changes/s", r.n as f64 / c),
            ),
            None => ("n/a".to_string(), "n/a".to_string()),
        };
        let latency_ms = match r.payroll {
            Payroll::Simulator { latency_ms } => latency_ms,
            Payroll::Instant => 0,
        };
        line(format!(
            "| {} | {:.2} ms | {committer_us} | {ceiling} | {:.1} ms | {:.1} ms | {:.1} ms ({transitions_per_change:.2} a change) |",
            r.payroll.label(),
            r.commit_wait_mean_s * 1e3,
            params.workers as f64 / r.changes_per_s() * 1e3,
            r.calls_per_change * latency_ms as f64,
            transitions_per_change * r.commit_wait_mean_s * 1e3,
        ));
    }
    line(String::new());
    line("| payroll latency | changes/s / raw batched inserts/s | store writes/s / raw batched inserts/s | concurrency / latency bound | end to end / bound |".into());
    line("|---|---|---|---|---|".into());
    for r in runs {
        let writes_per_s = r.changes_per_s() * r.writes_per_change;
        let (bound, ratio) = match r.payroll {
            Payroll::Simulator { latency_ms } if latency_ms > 0 => {
                let bound = params.workers as f64 / (r.calls_per_change * latency_ms as f64 / 1e3);
                (
                    format!("{bound:.0} changes/s"),
                    format!("{:.2}", r.changes_per_s() / bound),
                )
            }
            _ => ("n/a".to_string(), "n/a".to_string()),
        };
        line(format!(
            "| {} | {:.4} | {:.3} | {bound} | {ratio} |",
            r.payroll.label(),
            r.changes_per_s() / raw.batched_per_s,
            writes_per_s / raw.batched_per_s,
        ));
    }
    out
}
