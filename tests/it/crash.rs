//! The kill -9 campaign: the daemon binary runs as a child against the Tripletex simulator
//! (kept alive in this process), gets changes, and is SIGKILLed at random instants, including
//! between a payroll write and its commit (the simulator applies the write and holds the
//! answer) and in the middle of ingest. At the end every accepted change must be in payroll
//! exactly once with the right values, and every instance terminal.
//!
//! Seeded: `SALARY_SYNC_CRASH_SEED=N` replays a run; `SALARY_SYNC_CRASH_CYCLES=N` runs longer
//! (CI runs the default, short campaign).

use crate::support::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use salary_sync::domain::State;
use salary_sync::simulators::tripletex::{Fault, FaultKind, Seed, SeedEmployee, SeedEmployment};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

/// Salaries per kill cycle: the plan grows with the campaign, so every cycle has work in
/// flight when it is killed (a fixed plan ran dry after about nine cycles).
const SALARIES_PER_CYCLE: i64 = 3;

struct Plan {
    /// Every event, in submission order.
    events: Vec<Value>,
    /// salary id -> (employment id, final annual salary; zero after a delete, final kind)
    expected: HashMap<String, (i64, Decimal, &'static str)>,
}

fn plan(rng: &mut StdRng, salaries: i64) -> Plan {
    let mut events = Vec::new();
    let mut expected = HashMap::new();
    for i in 0..salaries {
        let salary = format!("sal-{i}");
        let employee =
            json!({"id": format!("hr-{i}"), "payroll_employee_id": (1000 + i).to_string()});
        let first = Decimal::from(40_000 + 100 * i);
        let mut day = 1;
        let mut push = |kind: &str, amount: Decimal, n: usize| {
            let at = format!("2026-11-{:02}T10:00:00Z", day);
            day += 1;
            events.push(event(
                &format!("ev-{i}-{n}"),
                kind,
                &at,
                &salary,
                employee.clone(),
                &amount.to_string(),
                "NOK",
                "monthly",
                "2026-01-01",
            ));
        };
        push("created", first, 0);
        let mut last = (first * Decimal::from(12), "created");
        if rng.random_bool(0.5) {
            let second = first + Decimal::from(1_500);
            push("updated", second, 1);
            last = (second * Decimal::from(12), "updated");
        }
        if rng.random_bool(0.3) {
            push("deleted", first, 2);
            last = (Decimal::ZERO, "deleted");
        }
        expected.insert(salary, (2000 + i, last.0, last.1));
    }
    Plan { events, expected }
}

fn seed(salaries: i64) -> Seed {
    let mut seed = Seed::demo();
    for i in 0..salaries {
        seed.employees.push(SeedEmployee {
            id: 1000 + i,
            employee_number: format!("{}", 5000 + i),
            email: format!("crash{i}@example.no"),
            first_name: "Crash".into(),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_at_random_instants_loses_nothing_and_writes_nothing_twice() {
    let seed_value: u64 = std::env::var("SALARY_SYNC_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let cycles: usize = std::env::var("SALARY_SYNC_CRASH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    eprintln!("crash campaign: seed {seed_value}, {cycles} kill cycles (replay with SALARY_SYNC_CRASH_SEED={seed_value})");
    let mut rng = StdRng::seed_from_u64(seed_value);
    let salaries = (cycles as i64 * SALARIES_PER_CYCLE).max(24);
    let plan = plan(&mut rng, salaries);
    let sim = start_sim(seed(salaries)).await;
    let control = sim.control();
    control.set_latency(Duration::from_millis(3));
    let setup = setup(&control.base_url(), 20);

    // Events whose ingest was answered (accepted or duplicate): durable by contract.
    let mut answered = vec![false; plan.events.len()];
    let mut next = 0;
    let mut kills_after_write = 0;
    for cycle in 0..cycles {
        let daemon = DaemonProcess::spawn(&setup, &format!("daemon-{cycle}.log"));
        let admin = Admin::wait(&setup.store, daemon.child.id()).await;
        // Re-send what was never answered, then a fresh chunk.
        let mut batch: Vec<usize> = (0..next).filter(|&i| !answered[i]).collect();
        let chunk = rng.random_range(3..9).min(plan.events.len() - next);
        batch.extend(next..next + chunk);
        next += chunk;
        let body = Value::Array(batch.iter().map(|&i| plan.events[i].clone()).collect());
        let mode = rng.random_range(0..3);
        match mode {
            0 => {
                // Kill mid-ingest or just after.
                let kill_after = Duration::from_millis(rng.random_range(0..15));
                let submit = admin.submit(&body);
                let answer = tokio::select! {
                    a = submit => a,
                    _ = tokio::time::sleep(kill_after) => None,
                };
                mark(&mut answered, &batch, answer);
            }
            1 => {
                // Kill between a payroll write and its commit.
                control.arm(
                    Fault::new(FaultKind::ApplyThenHang { hang_ms: 20_000 }, 1)
                        .path_prefix("/employee/employment/details"),
                );
                let before = control.write_count();
                mark(&mut answered, &batch, admin.submit(&body).await);
                if control
                    .wait_for_writes(before + 1, Duration::from_secs(3))
                    .await
                {
                    kills_after_write += 1;
                }
            }
            _ => {
                // A write that lands but whose answer is lost, then a kill at a random instant.
                control.arm(
                    Fault::new(FaultKind::ApplyThenDrop, 1)
                        .path_prefix("/employee/employment/details"),
                );
                mark(&mut answered, &batch, admin.submit(&body).await);
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..250))).await;
            }
        }
        daemon.kill9();
        control.clear_faults();
    }

    // The last run: everything still unanswered or unsent, to quiet.
    let daemon = DaemonProcess::spawn(&setup, "daemon-final.log");
    let admin = Admin::wait(&setup.store, daemon.child.id()).await;
    let rest: Vec<usize> = (0..plan.events.len()).filter(|&i| !answered[i]).collect();
    let body = Value::Array(rest.iter().map(|&i| plan.events[i].clone()).collect());
    let answer = admin
        .submit(&body)
        .await
        .unwrap_or_else(|| panic!("final submit answered"));
    assert!(
        answer
            .iter()
            .all(|i| i.outcome == "accepted" || i.outcome == "duplicate"),
        "{answer:?}"
    );
    let done = admin
        .wait_all_terminal(plan.events.len(), Duration::from_secs(120))
        .await;

    // One instance per event: nothing lost, nothing ingested twice.
    assert_eq!(done.len(), plan.events.len(), "seed {seed_value}");
    for wf in &done {
        let wanted = if wf.change.kind.as_str() == "deleted" {
            State::ManualDeleteRequired
        } else {
            State::Sent
        };
        assert_eq!(
            wf.state, wanted,
            "seed {seed_value}: {} {:?}",
            wf.id, wf.last_failure
        );
        let shown = admin
            .show(&wf.id.to_string())
            .await
            .unwrap_or_else(|| panic!("show {}", wf.id));
        for (i, h) in shown.history.iter().enumerate() {
            assert_eq!(
                h.seq as usize, i,
                "seed {seed_value}: history of {} has a gap",
                wf.id
            );
        }
    }
    // Per-salary order: each change finished after the older ones.
    let mut by_salary: HashMap<&str, Vec<_>> = HashMap::new();
    for wf in &done {
        by_salary
            .entry(wf.change.salary.id.as_str())
            .or_default()
            .push((wf.change.occurred_at, wf.updated_at));
    }
    for (salary, mut changes) in by_salary {
        changes.sort();
        assert!(
            changes.windows(2).all(|w| w[0].1 <= w[1].1),
            "seed {seed_value}: {salary} ran out of order"
        );
    }
    // Payroll holds each salary exactly once, with its final values.
    for (salary, (employment, annual, _)) in &plan.expected {
        let rows = control.details(*employment);
        assert_eq!(
            rows.len(),
            1,
            "seed {seed_value}: {salary} has {} rows in payroll: {rows:?}",
            rows.len()
        );
        assert_eq!(
            rows[0].annual_salary, *annual,
            "seed {seed_value}: {salary}"
        );
    }
    assert_eq!(daemon.terminate(), Some(0));
    eprintln!(
        "crash campaign: seed {seed_value}: {cycles} kills ({kills_after_write} between a payroll write and its commit), {} changes, 0 lost, 0 duplicated",
        plan.events.len()
    );
    sim.shutdown().await;
}

fn mark(
    answered: &mut [bool],
    batch: &[usize],
    answer: Option<Vec<salary_sync::api::service::SubmitItem>>,
) {
    if let Some(items) = answer {
        for item in items {
            if item.outcome == "accepted" || item.outcome == "duplicate" {
                if let Some(&i) = batch.get(item.index) {
                    answered[i] = true;
                }
            }
        }
    }
}
