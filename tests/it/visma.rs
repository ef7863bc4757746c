//! Visma.net Payroll through the real daemon binary over real HTTP against the Visma
//! simulator: every terminal state (a delete ends `sent`, Visma carries it out), each change
//! in payroll exactly once, and a kill -9 while a Visma job is being polled.

use crate::support::{enable, setup_config, state_of, Admin, DaemonProcess, RetryToml, Setup};
use rust_decimal::Decimal;
use salary_sync::domain::{FailureCode, State};
use salary_sync::simulators::visma::{self as sim, guid, Fault, FaultKind, Seed};
use serde_json::{json, Value};
use std::time::Duration;

const INTEGRATION: &str = "acme-visma";
const CLIENT_ID_ENV: &str = "IT_VISMA_CLIENT_ID";
const CLIENT_SECRET_ENV: &str = "IT_VISMA_CLIENT_SECRET";

fn setup(control: &sim::Control) -> Setup {
    let retry = RetryToml {
        attempts_max: 40,
        initial_delay_ms: 50,
        delay_ms_max: 400,
        auth_wait_ms: 2000,
    };
    let tables = format!(
        r#"[[integration]]
id = "{INTEGRATION}"
system = "visma-payroll"
base_url = "{base}"
token_url = "{token}"
tenant_id = "{tenant}"
client_id = {{ env = "{CLIENT_ID_ENV}" }}
client_secret = {{ env = "{CLIENT_SECRET_ENV}" }}
currency = "NOK"

[integration.api]
page_size = 50
"#,
        base = control.base_url(),
        token = control.token_url(),
        tenant = Seed::demo().tenant_id,
    );
    let setup = setup_config(&retry, &tables);
    enable(&setup.config, INTEGRATION);
    setup
}

fn spawn(setup: &Setup, log_name: &str) -> DaemonProcess {
    let seed = Seed::demo();
    DaemonProcess::spawn_env(
        setup,
        log_name,
        &[
            (CLIENT_ID_ENV, seed.client_id.as_str()),
            (CLIENT_SECRET_ENV, seed.client_secret.as_str()),
        ],
    )
}

#[allow(clippy::too_many_arguments)]
fn event(
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

async fn start_sim(seed: Seed) -> sim::Handle {
    sim::start(seed)
        .await
        .unwrap_or_else(|e| panic!("simulator: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_terminal_state_is_reached_on_visma() {
    let sim = start_sim(Seed::demo()).await;
    let control = sim.control();
    // The first two position PUTs meet a 503: those workflows retry and still land once.
    control.arm(
        Fault::new(FaultKind::Unavailable, 2)
            .method("PUT")
            .path_prefix("/employees"),
    );
    let setup = setup(&control);
    let daemon = spawn(&setup, "daemon.log");
    let admin = Admin::wait(&setup.store, daemon.child.id()).await;

    let kari = json!({"id": "k", "payroll_employee_id": guid(101)});
    let ola = json!({"id": "o", "employee_number": "18"});
    let nils = json!({"id": "n", "payroll_employee_id": guid(105)});
    let t1 = "2026-11-20T09:00:00Z";
    let events = json!([
        event(
            "v1",
            "created",
            t1,
            "sal-kari",
            kari.clone(),
            "52000.00",
            "NOK",
            "monthly",
            "2026-01-01"
        ),
        event(
            "v2",
            "updated",
            "2026-11-21T09:00:00Z",
            "sal-kari",
            kari,
            "53500.00",
            "NOK",
            "monthly",
            "2026-01-01"
        ),
        event(
            "v3",
            "created",
            t1,
            "sal-ola-sek",
            ola.clone(),
            "41000.00",
            "SEK",
            "monthly",
            "2026-01-01"
        ),
        event(
            "v4",
            "created",
            t1,
            "sal-per",
            json!({"id": "p", "email": "per@example.no"}),
            "50000.00",
            "NOK",
            "monthly",
            "2026-01-01"
        ),
        event(
            "v5",
            "created",
            t1,
            "sal-lise",
            json!({"id": "l", "employee_number": "20"}),
            "45000.00",
            "NOK",
            "monthly",
            "2026-01-01"
        ),
        event(
            "v6",
            "created",
            t1,
            "sal-nils",
            nils.clone(),
            "312.50",
            "NOK",
            "hourly",
            "2026-02-01"
        ),
        event(
            "v7",
            "deleted",
            "2026-11-22T09:00:00Z",
            "sal-nils",
            nils,
            "312.50",
            "NOK",
            "hourly",
            "2026-02-01"
        ),
        event(
            "v8",
            "created",
            t1,
            "sal-ola",
            ola,
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

    let done = admin.wait_all_terminal(8, Duration::from_secs(60)).await;
    assert_eq!(state_of(&done, "sal-kari", "created"), State::Sent);
    assert_eq!(state_of(&done, "sal-kari", "updated"), State::Sent);
    assert_eq!(state_of(&done, "sal-ola", "created"), State::Sent);
    assert_eq!(state_of(&done, "sal-nils", "created"), State::Sent);
    assert_eq!(
        state_of(&done, "sal-nils", "deleted"),
        State::Sent,
        "Visma carries the delete out"
    );
    let failure = |salary: &str| {
        done.iter()
            .find(|w| w.change.salary.id.as_str() == salary)
            .and_then(|w| w.last_failure.clone())
    };
    assert_eq!(
        failure("sal-ola-sek").map(|f| f.code),
        Some(FailureCode::CurrencyMismatch)
    );
    assert_eq!(
        failure("sal-lise").map(|f| f.code),
        Some(FailureCode::NoEmployment)
    );
    let per = failure("sal-per");
    assert_eq!(per.as_ref().map(|f| f.code), Some(FailureCode::Overlap));
    assert!(
        per.is_some_and(|f| f.message.contains("salaryInformation@2026-01-01")),
        "the overlap names the foreign entry"
    );

    // Payroll holds each salary exactly once, with the last values.
    let kari = control.salary_entries(&guid(201));
    assert_eq!(kari.len(), 1, "{kari:?}");
    assert_eq!(kari[0].monthly_salary, Some(Decimal::new(5_350_000, 2)));
    let ola = control.salary_entries(&guid(203));
    assert_eq!(ola.len(), 1, "{ola:?}");
    assert_eq!(ola[0].yearly_salary, Some(Decimal::from(650_000)));
    assert!(
        control.salary_entries(&guid(205)).is_empty(),
        "the delete removed Nils's entry"
    );
    assert_eq!(
        control.salary_entries(&guid(204)).len(),
        1,
        "Per's entry is untouched"
    );
    assert_eq!(
        control.write_count(),
        5,
        "five changes, five accepted PUTs: nothing sent twice"
    );

    // The outage left two explained retries.
    let mut retries = 0;
    for wf in &done {
        let shown = admin
            .show(&wf.id.to_string())
            .await
            .unwrap_or_else(|| panic!("show {}", wf.id));
        retries += shown
            .history
            .iter()
            .filter(|h| {
                h.event == "retry-scheduled"
                    && h.failure
                        .as_ref()
                        .is_some_and(|f| f.http_status == Some(503))
            })
            .count();
    }
    assert_eq!(retries, 2, "two 503s, two scheduled retries");

    let log_path = daemon.log.clone();
    assert_eq!(
        daemon.terminate(),
        Some(0),
        "SIGTERM stops the daemon cleanly"
    );
    let log = std::fs::read_to_string(log_path).unwrap_or_default();
    assert!(log.contains("transition"), "the daemon logged its work");
    assert!(
        !log.contains(&Seed::demo().client_secret),
        "the client secret reached the log"
    );
    for amount in ["52000", "53500", "650000", "312.5"] {
        assert!(
            !log.contains(amount),
            "an amount reached the info log: {amount}"
        );
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_while_a_visma_job_is_polled_finishes_it_once_after_restart() {
    let mut seed = Seed::demo();
    // The job stays Running for a while, whoever polls it.
    seed.job_polls = 0;
    seed.job_delay_ms = 2_500;
    let sim = start_sim(seed).await;
    let control = sim.control();
    let setup = setup(&control);
    let daemon = spawn(&setup, "daemon-1.log");
    let admin = Admin::wait(&setup.store, daemon.child.id()).await;
    let kari = json!({"id": "k", "payroll_employee_id": guid(101)});
    let items = admin
        .submit(&json!([event(
            "k1",
            "created",
            "2026-11-20T09:00:00Z",
            "sal-kari",
            kari,
            "52000.00",
            "NOK",
            "monthly",
            "2026-01-01"
        )]))
        .await
        .unwrap_or_else(|| panic!("submit answered"));
    assert!(items.iter().all(|i| i.outcome == "accepted"), "{items:?}");
    assert!(
        control.wait_for_writes(1, Duration::from_secs(10)).await,
        "the PUT was accepted"
    );
    // Wait until the job is recorded and polled at least once, then kill.
    let started = std::time::Instant::now();
    loop {
        let polling = admin.instances().await.is_some_and(|items| {
            items
                .iter()
                .any(|w| w.intent.as_ref().is_some_and(|i| i.job.is_some()) && w.attempt >= 1)
        });
        if polling {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the daemon never polled the job"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        control.salary_entries(&guid(201)).is_empty(),
        "killed while the job still runs"
    );
    daemon.kill9();

    let daemon = spawn(&setup, "daemon-2.log");
    let admin = Admin::wait(&setup.store, daemon.child.id()).await;
    let done = admin.wait_all_terminal(1, Duration::from_secs(30)).await;
    assert_eq!(done[0].state, State::Sent, "{:?}", done[0].last_failure);
    let entries = control.salary_entries(&guid(201));
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].monthly_salary, Some(Decimal::new(5_200_000, 2)));
    assert_eq!(
        control.write_count(),
        1,
        "the job was polled, never sent again"
    );
    assert_eq!(control.jobs().len(), 1);
    assert_eq!(daemon.terminate(), Some(0));
    sim.shutdown().await;
}
