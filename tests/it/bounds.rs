//! Resource bounds: a flood of changes while the payroll system is down. The backlog must
//! grow in the store, not in the daemon's memory, and open connections must stay bounded by
//! the connection pool, whatever the number of waiting instances.
//!
//! The figures (RSS, open descriptors, store size at each sample) are printed; run with
//! `--nocapture` to see them. `SALARY_SYNC_FLOOD=N` changes the flood size (default 6000).

use crate::support::*;
use salary_sync::simulators::tripletex::{Fault, FaultKind, Seed};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// sled's page cache for this test, in MiB.
const STORE_CACHE_MB: u64 = 4;

/// One sample of the daemon process.
#[derive(Debug, Clone, Copy)]
struct Sample {
    rss_kib: u64,
    fds: usize,
    store_bytes: u64,
}

fn sample(pid: u32, store: &Path) -> Sample {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    Sample {
        rss_kib,
        fds,
        store_bytes: dir_bytes(store),
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            })
            .sum()
    })
}

/// Instances of the test integration not yet terminal, read from /metrics.
async fn waiting(admin: &Admin) -> u64 {
    let text = reqwest::get(format!("{}/metrics", admin.base))
        .await
        .ok()
        .map(|r| r.text())
        .unwrap_or_else(|| panic!("metrics"));
    let text = text.await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("salary_sync_instances{"))
        .filter(|l| {
            [
                "pending",
                "matched-to-position",
                "currency-validated",
                "overlap-checked",
            ]
            .iter()
            .any(|s| l.contains(&format!("state=\"{s}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_while_payroll_is_down_grows_the_store_not_the_memory() {
    let flood: usize = std::env::var("SALARY_SYNC_FLOOD")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6_000);
    let sim = start_sim(Seed::demo()).await;
    let control = sim.control();
    // Payroll is down: every request meets a 503, for the whole test.
    control.arm(Fault::new(FaultKind::Unavailable, u32::MAX));
    let setup = setup_with_retry(
        &control.base_url(),
        RetryToml {
            attempts_max: 1_000_000,
            initial_delay_ms: 20,
            delay_ms_max: 200,
            auth_wait_ms: 200,
        },
    );
    // A small page cache, so the flood outgrows it: what stays resident beyond it is the
    // daemon's own memory.
    let text = std::fs::read_to_string(&setup.config).unwrap_or_else(|e| panic!("config: {e}"));
    std::fs::write(
        &setup.config,
        format!("store_cache_mb = {STORE_CACHE_MB}\n{text}"),
    )
    .unwrap_or_else(|e| panic!("config: {e}"));
    let daemon = DaemonProcess::spawn(&setup, "daemon.log");
    let pid = daemon.child.id();
    let admin = Admin::wait(&setup.store, pid).await;

    let batch = 500;
    let mut samples = Vec::new();
    let mut sent = 0;
    while sent < flood {
        let n = batch.min(flood - sent);
        let events: Vec<Value> = (sent..sent + n)
            .map(|i| {
                event(
                    &format!("flood-{i}"),
                    "created",
                    "2026-11-20T09:00:00Z",
                    &format!("sal-{i}"),
                    serde_json::json!({"id": format!("hr-{i}"), "payroll_employee_id": "101"}),
                    "52000.00",
                    "NOK",
                    "monthly",
                    "2026-01-01",
                )
            })
            .collect();
        let items = admin
            .submit(&Value::Array(events))
            .await
            .unwrap_or_else(|| panic!("submit answered"));
        assert!(
            items.iter().all(|i| i.outcome == "accepted"),
            "{:?}",
            items.first()
        );
        sent += n;
        if sent == batch || sent == flood {
            // Let the retry loop churn over the whole backlog before sampling.
            tokio::time::sleep(Duration::from_secs(2)).await;
            let s = sample(pid, &setup.store);
            eprintln!("flood: {sent} changes waiting: {s:?}");
            samples.push((sent, s));
        }
    }
    assert_eq!(
        waiting(&admin).await,
        flood as u64,
        "every change waits in the store"
    );
    let (_, first) = samples[0];
    let (_, last) = samples[samples.len() - 1];
    // The daemon keeps probing the payroll system (an unhealthy integration's workflows
    // wait for it to come back instead of each hammering it).
    let requests = control.request_count();
    assert!(requests > 0, "the daemon never tried the payroll system");
    eprintln!("flood: {requests} payroll requests while it was down");
    // Open descriptors: the store, the listeners and a bounded pool, not one per instance.
    assert!(
        last.fds <= first.fds + 16,
        "open descriptors grew with the backlog: {first:?} -> {last:?}"
    );
    // Memory: the backlog (the store grew by `store_growth`) is not held in RAM. Allow sled
    // its page cache for the bytes written, no more.
    let store_growth_kib = last.store_bytes.saturating_sub(first.store_bytes) / 1024;
    let rss_growth_kib = last.rss_kib.saturating_sub(first.rss_kib);
    eprintln!(
        "flood: {flood} changes: store +{store_growth_kib} KiB, RSS +{rss_growth_kib} KiB, descriptors {} -> {}",
        first.fds, last.fds
    );
    assert!(
        rss_growth_kib <= store_growth_kib + 64 * 1024,
        "RSS grew by {rss_growth_kib} KiB while the store grew by {store_growth_kib} KiB"
    );
    assert_eq!(daemon.terminate(), Some(0), "stops cleanly with a backlog");
    sim.shutdown().await;
}
