//! The request-rate budget learned from Tripletex's `X-Rate-Limit-*` headers, over real HTTP:
//! the real daemon against simulators that enforce a per-period budget (429 once it is spent).
//!
//! What can fail here: without pacing, eight workers send a backlog's requests far faster than
//! the simulator allows and it answers 429s (counted); and an integration whose budget is spent
//! for an hour would hold every worker while it waits, so another integration's changes would
//! never be sent.

use crate::support::*;
use salary_sync::domain::State;
use salary_sync::simulators::tripletex::{Seed, SeedEmployee, SeedEmployment};
use serde_json::{json, Value};
use std::time::Duration;

/// `Seed::demo()` plus `n` employees (ids 1000.., employments 2000..), each with an open
/// employment and no salary rows.
fn seed_with(n: i64) -> Seed {
    let mut seed = Seed::demo();
    for i in 0..n {
        seed.employees.push(SeedEmployee {
            id: 1000 + i,
            employee_number: format!("{}", 5000 + i),
            email: format!("rate{i}@example.no"),
            first_name: "Rate".into(),
            last_name: format!("Test{i}"),
            employments: vec![SeedEmployment {
                id: 2000 + i,
                start_date: chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap_or_default(),
                end_date: None,
            }],
        });
    }
    seed
}

/// `n` created salaries for the employees of `seed_with`, for `integration`.
fn backlog(integration: &str, prefix: &str, n: i64) -> Value {
    Value::Array(
        (0..n)
            .map(|i| {
                let mut e = event(
                    &format!("{prefix}-{i}"),
                    "created",
                    "2026-11-20T09:00:00Z",
                    &format!("sal-{prefix}-{i}"),
                    json!({"id": format!("e{i}"), "payroll_employee_id": (1000 + i).to_string()}),
                    "50000",
                    "NOK",
                    "monthly",
                    "2026-06-01",
                );
                e["integration_id"] = json!(integration);
                e
            })
            .collect(),
    )
}

async fn metrics(admin: &Admin) -> String {
    let r = admin
        .client
        .get(format!("{}/metrics", admin.base))
        .send()
        .await
        .unwrap_or_else(|e| panic!("metrics: {e}"));
    r.text().await.unwrap_or_default()
}

/// The value of one sample line in a Prometheus exposition, 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// A backlog larger than one period's budget is sent in full, and the simulator, which answers
/// 429 to any request over its budget, never has to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_is_sent_within_a_tight_rate_budget_without_429s() {
    const CHANGES: i64 = 8;
    const LIMIT: u32 = 10;
    let sim = start_sim(seed_with(CHANGES)).await;
    let control = sim.control();
    // Each change costs 3 requests (the employee with its employments, details, POST), plus
    // the session, whoAmI and the company once: 27 requests, three periods' worth.
    control.set_rate_limit(LIMIT, Duration::from_secs(3));
    let setup = setup(&control.base_url(), 50);
    let daemon = DaemonProcess::spawn(&setup, "daemon.log");
    let admin = Admin::wait(&setup.store, daemon.child.id()).await;
    admin
        .submit(&backlog(INTEGRATION, "r", CHANGES))
        .await
        .unwrap_or_else(|| panic!("submit"));
    let done = admin
        .wait_all_terminal(CHANGES as usize, Duration::from_secs(240))
        .await;
    assert!(done.iter().all(|w| w.state == State::Sent), "{done:#?}");
    assert_eq!(
        control.rate_limited_count(),
        0,
        "the daemon sent a request over the budget ({} requests in all)",
        control.request_count()
    );
    assert!(
        control.request_count() > u64::from(LIMIT),
        "the backlog needed more than one period's budget"
    );
    for i in 0..CHANGES {
        assert_eq!(
            control.written_details(2000 + i).len(),
            1,
            "employment {} once",
            2000 + i
        );
    }
    // No attempt was spent waiting: every instance went through without a retry.
    for w in &done {
        let shown = admin
            .show(&w.id.to_string())
            .await
            .unwrap_or_else(|| panic!("show {}", w.id));
        assert!(
            shown.history.iter().all(|h| h.failure.is_none()),
            "{}: {:#?}",
            w.id,
            shown.history
        );
    }
    let text = metrics(&admin).await;
    assert!(
        sample(
            &text,
            &format!("salary_sync_rate_budget_waits_total{{integration=\"{INTEGRATION}\"}}")
        ) >= 1.0,
        "the budget made requests wait: {text}"
    );
    assert!(
        text.contains(&format!(
            "salary_sync_rate_budget_remaining{{integration=\"{INTEGRATION}\"}}"
        )),
        "{text}"
    );
    assert_eq!(daemon.terminate(), Some(0));
    sim.shutdown().await;
}

/// One integration whose budget is spent for an hour, with a backlog larger than every worker,
/// and one with no limit: the second's changes all reach `sent` while the first still has
/// work open, none of it failed (waiting for the budget spends no attempt), and the limited
/// simulator never answered 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_integration_out_of_budget_does_not_starve_another() {
    const LIMITED: i64 = 12;
    const FREE: i64 = 6;
    const BUDGET: u32 = 2;
    let limited = start_sim(seed_with(LIMITED)).await;
    let free = start_sim(seed_with(FREE)).await;
    // Two requests an hour: the session and the first request of one step, then nothing until
    // the hour is over. Every worker that takes one of its instances is then mid-step.
    limited
        .control()
        .set_rate_limit(BUDGET, Duration::from_secs(3600));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = dir.path().join("store");
    let config = dir.path().join("salary-sync.toml");
    let integration = |id: &str, url: &str| {
        format!(
            "[[integration]]\nid = \"{id}\"\nsystem = \"tripletex\"\nbase_url = \"{url}\"\n\
             consumer_token = {{ env = \"{CONSUMER_ENV}\" }}\nemployee_token = {{ env = \"{EMPLOYEE_ENV}\" }}\n"
        )
    };
    // Two workers, and no per-integration concurrency: the limited integration takes both, and
    // both are stuck mid-step once its budget is spent. Only giving the workers up while the
    // budget is spent (rather than sleeping until the reset, an hour away) lets the other run.
    let text = format!(
        "store = \"{}\"\nadmin_listen = \"127.0.0.1:0\"\nworkers = 2\nshutdown_grace_ms = 3000\n\n\
         [retry]\nattempts_max = 3\ninitial_delay_ms = 50\ndelay_ms_max = 200\n\n{}\n{}",
        store.display(),
        integration("limited-co", &limited.control().base_url()),
        integration(INTEGRATION, &free.control().base_url()),
    );
    std::fs::write(&config, text).unwrap_or_else(|e| panic!("{e}"));
    enable(&config, "limited-co");
    enable(&config, INTEGRATION);
    let setup = Setup { dir, config, store };
    let daemon = DaemonProcess::spawn(&setup, "daemon.log");
    let admin = Admin::wait(&setup.store, daemon.child.id()).await;
    // The limited backlog first, so it holds the head of the due index.
    admin
        .submit(&backlog("limited-co", "l", LIMITED))
        .await
        .unwrap_or_else(|| panic!("submit limited"));
    // Let the limited integration spend its budget before the other's changes arrive.
    let started = std::time::Instant::now();
    while limited.control().request_count() < u64::from(BUDGET) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the limited integration never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    admin
        .submit(&backlog(INTEGRATION, "f", FREE))
        .await
        .unwrap_or_else(|| panic!("submit free"));
    let started = std::time::Instant::now();
    let snapshot = loop {
        let items = admin.instances().await.unwrap_or_default();
        let free_sent = items
            .iter()
            .filter(|w| w.change.integration_id.as_str() == INTEGRATION && w.state == State::Sent)
            .count();
        if free_sent == FREE as usize {
            break items;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the free integration was starved: {free_sent} of {FREE} sent"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let limited_items: Vec<_> = snapshot
        .iter()
        .filter(|w| w.change.integration_id.as_str() == "limited-co")
        .collect();
    assert_eq!(limited_items.len(), LIMITED as usize);
    let open = limited_items.iter().filter(|w| !w.is_terminal()).count();
    assert!(
        open >= 1,
        "the limited integration still has work open while the other is done"
    );
    assert!(
        limited_items.iter().all(|w| w.state != State::Failed),
        "waiting for the budget failed an instance: {limited_items:#?}"
    );
    assert!(
        limited_items.iter().all(|w| w.attempt == 0),
        "waiting for the budget spent attempts: {limited_items:#?}"
    );
    assert_eq!(
        limited.control().rate_limited_count(),
        0,
        "the limited integration went over its budget"
    );
    assert!(limited.control().request_count() <= u64::from(BUDGET));
    assert_eq!(daemon.terminate(), Some(0));
    limited.shutdown().await;
    free.shutdown().await;
}
