//! Every terminal state, reached by the real daemon binary over real HTTP against the
//! Tripletex simulator.

use crate::support::*;
use rust_decimal::Decimal;
use salary_sync::domain::{FailureCode, State};
use salary_sync::simulators::tripletex::{Fault, FaultKind, Seed};
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_terminal_state_is_reached_with_a_readable_reason() {
    let sim = start_sim(Seed::demo()).await;
    let control = sim.control();
    // The first two salary writes meet a 503: those workflows must retry and still land once.
    control.arm(
        Fault::new(FaultKind::Unavailable, 2)
            .method("POST")
            .path_prefix("/employee/employment/details"),
    );
    let setup = setup(&control.base_url(), 50);
    let daemon = DaemonProcess::spawn(&setup, "daemon.log");
    let admin = Admin::wait(&setup.store, daemon.child.id()).await;

    let events = json!([
        event(
            "e1",
            "created",
            "2026-11-20T09:00:00Z",
            "sal-kari",
            json!({"id": "k", "payroll_employee_id": "101"}),
            "52000.00",
            "NOK",
            "monthly",
            "2026-01-01"
        ),
        event(
            "e2",
            "updated",
            "2026-11-21T09:00:00Z",
            "sal-kari",
            json!({"id": "k", "payroll_employee_id": "101"}),
            "53500.00",
            "NOK",
            "monthly",
            "2026-01-01"
        ),
        event(
            "e3",
            "created",
            "2026-11-20T09:00:00Z",
            "sal-ola-sek",
            json!({"id": "o", "employee_number": "18"}),
            "41000.00",
            "SEK",
            "monthly",
            "2026-01-01"
        ),
        event(
            "e4",
            "created",
            "2026-11-20T09:00:00Z",
            "sal-per",
            json!({"id": "p", "email": "per@example.no"}),
            "50000.00",
            "NOK",
            "monthly",
            "2026-01-01"
        ),
        event(
            "e5",
            "created",
            "2026-11-20T09:00:00Z",
            "sal-lise",
            json!({"id": "l", "employee_number": "20"}),
            "45000.00",
            "NOK",
            "monthly",
            "2026-01-01"
        ),
        event(
            "e6",
            "created",
            "2026-11-20T09:00:00Z",
            "sal-nils",
            json!({"id": "n", "payroll_employee_id": "105"}),
            "312.50",
            "NOK",
            "hourly",
            "2026-02-01"
        ),
        event(
            "e7",
            "deleted",
            "2026-11-22T09:00:00Z",
            "sal-nils",
            json!({"id": "n", "payroll_employee_id": "105"}),
            "312.50",
            "NOK",
            "hourly",
            "2026-02-01"
        ),
        event(
            "e8",
            "created",
            "2026-11-20T09:00:00Z",
            "sal-ola",
            json!({"id": "o", "employee_number": "18"}),
            "650000",
            "NOK",
            "yearly",
            "2026-03-01"
        ),
    ]);
    let items = admin
        .submit(&events)
        .await
        .unwrap_or_else(|| panic!("submit answered"));
    assert!(items.iter().all(|i| i.outcome == "accepted"), "{items:?}");
    // The same body again: duplicates, no new instances.
    let again = admin
        .submit(&events)
        .await
        .unwrap_or_else(|| panic!("submit answered"));
    assert!(again.iter().all(|i| i.outcome == "duplicate"), "{again:?}");

    let done = admin.wait_all_terminal(8, Duration::from_secs(60)).await;
    assert_eq!(done.len(), 8);
    assert_eq!(state_of(&done, "sal-kari", "created"), State::Sent);
    assert_eq!(state_of(&done, "sal-kari", "updated"), State::Sent);
    assert_eq!(state_of(&done, "sal-ola", "created"), State::Sent);
    assert_eq!(state_of(&done, "sal-nils", "created"), State::Sent);
    assert_eq!(
        state_of(&done, "sal-nils", "deleted"),
        State::ManualDeleteRequired
    );
    let code = |salary: &str| {
        done.iter()
            .find(|w| w.change.salary.id.as_str() == salary)
            .and_then(|w| w.last_failure.as_ref())
            .map(|f| f.code)
    };
    assert_eq!(code("sal-ola-sek"), Some(FailureCode::CurrencyMismatch));
    assert_eq!(code("sal-per"), Some(FailureCode::Overlap));
    assert_eq!(code("sal-lise"), Some(FailureCode::NoEmployment));
    let per = done
        .iter()
        .find(|w| w.change.salary.id.as_str() == "sal-per")
        .and_then(|w| w.last_failure.clone());
    assert!(
        per.is_some_and(|f| f.message.contains("901")),
        "the overlap names the foreign record"
    );

    // Payroll holds each salary exactly once, with the last values.
    let kari = control.written_details(201);
    assert_eq!(kari.len(), 1, "{kari:?}");
    assert_eq!(kari[0].annual_salary, Decimal::new(5_350_000 * 12, 2));
    let ola = control.written_details(203);
    assert_eq!(ola.len(), 1, "{ola:?}");
    assert_eq!(ola[0].annual_salary, Decimal::from(650_000));
    let nils = control.written_details(205);
    assert_eq!(nils.len(), 1, "the Tripletex delete keeps the row");
    assert_eq!(nils[0].hourly_wage, Decimal::ZERO, "and clears its values");
    assert!(
        control.written_details(204).is_empty(),
        "nothing written beside the foreign row"
    );
    assert!(
        control
            .details(204)
            .iter()
            .any(|r| r.id == 901 && r.version == 0),
        "the foreign row is untouched"
    );

    // The outage left retries in some history, and every retry is explained.
    let mut retries = 0;
    for wf in &done {
        let shown = admin
            .show(&wf.id.to_string())
            .await
            .unwrap_or_else(|| panic!("show {}", wf.id));
        assert_eq!(shown.history.len() as u32, shown.workflow.history_len);
        for (i, h) in shown.history.iter().enumerate() {
            assert_eq!(h.seq as usize, i, "history has no gaps");
            if h.event == "retry-scheduled" {
                retries += 1;
                assert!(
                    h.failure
                        .as_ref()
                        .is_some_and(|f| f.http_status == Some(503)),
                    "{h:?}"
                );
            }
        }
    }
    assert_eq!(retries, 2, "two 503s, two scheduled retries");

    // Dropped fields are noted (Tripletex has no note or end date).
    let sent = done
        .iter()
        .find(|w| w.change.salary.id.as_str() == "sal-ola")
        .map(|w| w.id.to_string())
        .unwrap_or_default();
    let shown = admin.show(&sent).await.unwrap_or_else(|| panic!("show"));
    assert!(
        shown.history.iter().any(|h| h
            .detail
            .contains("dropped fields the payroll system cannot hold: note")),
        "{:?}",
        shown.history
    );

    // Metrics and health, open to probes (no token), after this known sequence.
    let http = reqwest::Client::new();
    let metrics = http
        .get(format!("{}/metrics", admin.base))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(metrics.status().as_u16(), 200);
    let metrics = metrics.text().await.unwrap_or_default();
    for line in [
        "salary_sync_instances{integration=\"acme-tripletex\",state=\"sent\"} 4",
        "salary_sync_instances{integration=\"acme-tripletex\",state=\"failed\"} 3",
        "salary_sync_instances{integration=\"acme-tripletex\",state=\"manual-delete-required\"} 1",
        "salary_sync_instances{integration=\"acme-tripletex\",state=\"pending\"} 0",
        "salary_sync_retries_total{integration=\"acme-tripletex\"} 2",
        "salary_sync_payroll_http_answers_total{status=\"503\",system=\"tripletex\"} 2",
        "salary_sync_oldest_non_terminal_age_seconds 0.0",
        "salary_sync_ready 1",
        "salary_sync_integration_unhealthy{integration=\"acme-tripletex\"} 0",
        "salary_sync_failures_total{code=\"overlap\",integration=\"acme-tripletex\"} 1",
        "# EOF",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing `{line}` in\n{metrics}"
        );
    }
    assert!(metrics.contains(
        "salary_sync_step_seconds_count{integration=\"acme-tripletex\",state=\"pending\"}"
    ));
    // Durations summed as floats can hold any digits (0.07000875200000001 once failed this),
    // so `_sum` values are left out of the amount check.
    let amounts_checked: String = metrics
        .lines()
        .filter(|l| !l.starts_with("salary_sync_step_seconds_sum"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        !amounts_checked.contains("52000") && !metrics.contains("sal-kari"),
        "no amounts or salary ids in metrics: {metrics}"
    );
    let ready = http
        .get(format!("{}/readyz", admin.base))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ready.status().as_u16(), 200);

    let log_path = daemon.log.clone();
    assert_eq!(
        daemon.terminate(),
        Some(0),
        "SIGTERM stops the daemon cleanly"
    );
    let log = std::fs::read_to_string(log_path).unwrap_or_default();
    assert!(log.contains("transition"), "the daemon logged its work");
    let seed = Seed::demo();
    for secret in [&seed.consumer_token, &seed.employee_token] {
        assert!(
            !log.contains(secret.as_str()),
            "a credential reached the log"
        );
    }
    for amount in ["52000", "53500", "642000", "650000", "312.5"] {
        assert!(
            !log.contains(amount),
            "an amount reached the info log: {amount}"
        );
    }
    sim.shutdown().await;
}

/// Regression: a change that occurred earlier but arrives after a newer one was applied (or is
/// retried by an operator later) must not overwrite the newer values in payroll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_change_arriving_late_never_overwrites_a_newer_one() {
    let sim = start_sim(Seed::demo()).await;
    let control = sim.control();
    let setup = setup(&control.base_url(), 50);
    let daemon = DaemonProcess::spawn(&setup, "daemon.log");
    let admin = Admin::wait(&setup.store, daemon.child.id()).await;
    let kari = || json!({"id": "k", "payroll_employee_id": "101"});
    let newer = json!([event(
        "n1",
        "created",
        "2026-11-21T09:00:00Z",
        "sal-kari",
        kari(),
        "60000",
        "NOK",
        "monthly",
        "2026-01-01"
    )]);
    admin
        .submit(&newer)
        .await
        .unwrap_or_else(|| panic!("submit"));
    admin.wait_all_terminal(1, Duration::from_secs(30)).await;
    let older = json!([event(
        "n0",
        "updated",
        "2026-11-20T09:00:00Z",
        "sal-kari",
        kari(),
        "50000",
        "NOK",
        "monthly",
        "2026-01-01"
    )]);
    admin
        .submit(&older)
        .await
        .unwrap_or_else(|| panic!("submit"));
    let done = admin.wait_all_terminal(2, Duration::from_secs(30)).await;
    let late = done
        .iter()
        .find(|w| w.change.event_id.as_str() == "n0")
        .and_then(|w| w.last_failure.clone());
    assert_eq!(late.map(|f| f.code), Some(FailureCode::Superseded));
    let rows = control.written_details(201);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].annual_salary,
        Decimal::from(720_000),
        "the newer values stay"
    );
    assert_eq!(daemon.terminate(), Some(0));
    sim.shutdown().await;
}

/// One customer's backlog must not starve another: with `concurrency = 1` on a slow
/// integration, a second integration's changes still go through while the first queues.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_integration_at_its_concurrency_limit_does_not_starve_another() {
    let slow = start_sim(Seed::demo()).await;
    let fast = start_sim(Seed::demo()).await;
    slow.control().set_latency(Duration::from_millis(150));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = dir.path().join("store");
    let config = dir.path().join("salary-sync.toml");
    let integration = |id: &str, url: &str, extra: &str| {
        format!(
            "[[integration]]\nid = \"{id}\"\nsystem = \"tripletex\"\nbase_url = \"{url}\"\n\
             consumer_token = {{ env = \"{CONSUMER_ENV}\" }}\nemployee_token = {{ env = \"{EMPLOYEE_ENV}\" }}\n{extra}\n"
        )
    };
    let text = format!(
        "store = \"{}\"\nadmin_listen = \"127.0.0.1:0\"\nworkers = 8\n\n{}{}",
        store.display(),
        integration("slow-co", &slow.control().base_url(), "concurrency = 1"),
        integration(INTEGRATION, &fast.control().base_url(), "")
    );
    std::fs::write(&config, text).unwrap_or_else(|e| panic!("{e}"));
    enable(&config, "slow-co");
    enable(&config, INTEGRATION);
    let setup = Setup { dir, config, store };
    let daemon = DaemonProcess::spawn(&setup, "daemon.log");
    let admin = Admin::wait(&setup.store, daemon.child.id()).await;
    let mut slow_events = Vec::new();
    for i in 0..6 {
        let mut e = event(
            &format!("s{i}"),
            "created",
            "2026-11-20T09:00:00Z",
            &format!("sal-s{i}"),
            json!({"id": "k", "payroll_employee_id": "101"}),
            "1000",
            "SEK",
            "monthly",
            "2026-01-01",
        );
        e["integration_id"] = json!("slow-co");
        slow_events.push(e);
    }
    admin
        .submit(&Value::Array(slow_events))
        .await
        .unwrap_or_else(|| panic!("submit"));
    let fast_events: Vec<Value> = (0..3)
        .map(|i| {
            event(
                &format!("f{i}"),
                "created",
                "2026-11-20T09:00:00Z",
                &format!("sal-f{i}"),
                json!({"id": "k", "payroll_employee_id": "101"}),
                "1000",
                "SEK",
                "monthly",
                "2026-01-01",
            )
        })
        .collect();
    admin
        .submit(&Value::Array(fast_events))
        .await
        .unwrap_or_else(|| panic!("submit"));
    // Wait for the fast integration only.
    let started = std::time::Instant::now();
    let snapshot = loop {
        let items = admin.instances().await.unwrap_or_default();
        let fast_done = items
            .iter()
            .filter(|w| w.change.integration_id.as_str() == INTEGRATION && w.is_terminal())
            .count();
        if fast_done == 3 {
            break items;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the fast integration never finished"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let slow_open = snapshot
        .iter()
        .filter(|w| w.change.integration_id.as_str() == "slow-co" && !w.is_terminal())
        .count();
    // Serially, each slow change takes at least three 150 ms calls; six cannot all be done.
    assert!(
        slow_open >= 3,
        "the slow integration ran more than one at a time: {slow_open} still open"
    );
    admin.wait_all_terminal(9, Duration::from_secs(60)).await;
    assert_eq!(daemon.terminate(), Some(0));
    slow.shutdown().await;
    fast.shutdown().await;
}

/// SIGTERM with work in flight: the daemon stops taking work, lets in-flight steps finish or
/// parks them within the grace period, exits 0; the next start finishes every change, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_work_in_flight_exits_cleanly_and_loses_nothing() {
    let sim = start_sim(Seed::demo()).await;
    let control = sim.control();
    control.set_latency(Duration::from_millis(60));
    let setup = setup(&control.base_url(), 50);
    let daemon = DaemonProcess::spawn(&setup, "daemon-1.log");
    let admin = Admin::wait(&setup.store, daemon.child.id()).await;
    let events: Vec<Value> = [(101, "201"), (102, "203"), (105, "205")]
        .iter()
        .enumerate()
        .map(|(i, (employee, _))| {
            event(
                &format!("t{i}"),
                "created",
                "2026-11-20T09:00:00Z",
                &format!("sal-t{i}"),
                json!({"id": "x", "payroll_employee_id": employee.to_string()}),
                "1000",
                "NOK",
                "monthly",
                "2026-06-01",
            )
        })
        .collect();
    admin
        .submit(&Value::Array(events))
        .await
        .unwrap_or_else(|| panic!("submit"));
    // Stop as soon as the first step has been taken: the rest is in flight or queued.
    let started = std::time::Instant::now();
    while control.request_count() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no work started"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        daemon.terminate(),
        Some(0),
        "SIGTERM with work in flight exits 0"
    );
    let daemon = DaemonProcess::spawn(&setup, "daemon-2.log");
    let admin = Admin::wait(&setup.store, daemon.child.id()).await;
    let done = admin.wait_all_terminal(3, Duration::from_secs(60)).await;
    assert!(
        done.iter()
            .all(|w| w.state == salary_sync::domain::State::Sent),
        "{done:?}"
    );
    for employment in [201, 203, 205] {
        assert_eq!(
            control.written_details(employment).len(),
            1,
            "employment {employment} written once"
        );
    }
    assert_eq!(daemon.terminate(), Some(0));
    sim.shutdown().await;
}
