//! Unimicro through the real daemon binary over real HTTP against the Unimicro simulator:
//! every terminal state (sent create, update and delete; failed for currency, overlap and no
//! employment; an outage retried to sent), each change in payroll exactly once, and kill -9
//! between a payroll write and its commit leaving no duplicate after restart.

use crate::support::{
    enable, event, setup_config, state_of, Admin, DaemonProcess, RetryToml, Setup,
};
use rust_decimal::Decimal;
use salary_sync::domain::{FailureCode, State};
use salary_sync::simulators::unimicro::{self as sim, Control, Fault, FaultKind, Seed};
use serde_json::{json, Value};
use std::time::Duration;

const INTEGRATION: &str = "acme-unimicro";
const CLIENT_ID_ENV: &str = "IT_UNIMICRO_CLIENT_ID";
const CLIENT_SECRET_ENV: &str = "IT_UNIMICRO_CLIENT_SECRET";
const SAVES: &str = "/api/biz/employments";

/// A store and a config file with one Unimicro integration pointing at the simulator.
fn setup(control: &Control, retry_initial_ms: u64) -> Setup {
    let retry = RetryToml {
        attempts_max: 10,
        initial_delay_ms: retry_initial_ms,
        delay_ms_max: 1000,
        auth_wait_ms: 2000,
    };
    let tables = format!(
        r#"[[integration]]
id = "{INTEGRATION}"
system = "unimicro"
base_url = "{base}"
token_url = "{token}"
company_key = "{key}"
client_id = {{ env = "{CLIENT_ID_ENV}" }}
client_secret = {{ env = "{CLIENT_SECRET_ENV}" }}
"#,
        base = control.base_url(),
        token = control.token_url(),
        key = Seed::demo().company_key,
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

/// `support::event`, addressed to the Unimicro integration.
#[allow(clippy::too_many_arguments)]
fn uni(
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
    let mut e = event(
        event_id,
        kind,
        occurred_at,
        salary,
        employee,
        amount,
        currency,
        unit,
        start,
    );
    e["integration_id"] = json!(INTEGRATION);
    e
}

async fn start_sim() -> sim::Handle {
    sim::start(Seed::demo())
        .await
        .unwrap_or_else(|e| panic!("simulator: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_terminal_state_on_unimicro_each_change_once() {
    let sim = start_sim().await;
    let control = sim.control();
    // The first two saves meet a 503: those workflows retry and still land once.
    control.arm(
        Fault::new(FaultKind::Unavailable, 2)
            .method("PUT")
            .path_prefix(SAVES),
    );
    let setup = setup(&control, 50);
    let daemon = spawn(&setup, "daemon.log");
    let admin = Admin::wait(&setup.store, daemon.child.id()).await;

    let kari = json!({"id": "k", "payroll_employee_id": "101"});
    let nils = json!({"id": "n", "employee_number": "21"});
    let events = json!([
        uni(
            "u1",
            "created",
            "2026-11-20T09:00:00Z",
            "sal-kari",
            kari.clone(),
            "52000.00",
            "NOK",
            "monthly",
            "2026-01-01"
        ),
        uni(
            "u2",
            "updated",
            "2026-11-21T09:00:00Z",
            "sal-kari",
            kari,
            "53500.50",
            "NOK",
            "monthly",
            "2026-01-01"
        ),
        uni(
            "u3",
            "created",
            "2026-11-20T09:00:00Z",
            "sal-ola-sek",
            json!({"id": "o", "employee_number": "18"}),
            "41000.00",
            "SEK",
            "monthly",
            "2026-01-01"
        ),
        uni(
            "u4",
            "created",
            "2026-11-20T09:00:00Z",
            "sal-per",
            json!({"id": "p", "email": "per@example.no"}),
            "50000.00",
            "NOK",
            "monthly",
            "2026-01-01"
        ),
        uni(
            "u5",
            "created",
            "2026-11-20T09:00:00Z",
            "sal-lise",
            json!({"id": "l", "employee_number": "20"}),
            "45000.00",
            "NOK",
            "monthly",
            "2026-01-01"
        ),
        uni(
            "u6",
            "created",
            "2026-11-20T09:00:00Z",
            "sal-nils",
            nils.clone(),
            "312.50",
            "NOK",
            "hourly",
            "2026-02-01"
        ),
        uni(
            "u7",
            "deleted",
            "2026-11-22T09:00:00Z",
            "sal-nils",
            nils,
            "312.50",
            "NOK",
            "hourly",
            "2026-02-01"
        ),
        uni(
            "u8",
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

    let done = admin.wait_all_terminal(8, Duration::from_secs(60)).await;
    assert_eq!(done.len(), 8);
    for (salary, kind) in [
        ("sal-kari", "created"),
        ("sal-kari", "updated"),
        ("sal-ola", "created"),
        ("sal-nils", "created"),
        ("sal-nils", "deleted"),
    ] {
        assert_eq!(
            state_of(&done, salary, kind),
            State::Sent,
            "{salary} {kind}"
        );
    }
    let failure = |salary: &str| {
        done.iter()
            .find(|w| w.change.salary.id.as_str() == salary)
            .and_then(|w| w.last_failure.clone())
    };
    for (salary, code) in [
        ("sal-ola-sek", FailureCode::CurrencyMismatch),
        ("sal-per", FailureCode::Overlap),
        ("sal-lise", FailureCode::NoEmployment),
    ] {
        assert_eq!(
            state_of(&done, salary, "created"),
            State::Failed,
            "{salary}"
        );
        assert_eq!(failure(salary).map(|f| f.code), Some(code), "{salary}");
    }
    assert!(
        failure("sal-per").is_some_and(|f| f.message.contains("901")),
        "the overlap names the foreign record"
    );

    // Payroll holds each change exactly once, with the last values.
    let kari = control.rates(201);
    assert_eq!(kari.len(), 1, "{kari:?}");
    assert_eq!(
        (kari[0].rate, kari[0].rate_type, kari[0].deleted),
        (Decimal::new(5_350_050, 2), "monthly", false)
    );
    let ola = control.rates(203);
    assert_eq!(ola.len(), 1, "{ola:?}");
    assert_eq!(
        (ola[0].rate, ola[0].rate_type),
        (Decimal::from(650_000), "annual")
    );
    let nils = control.rates(205);
    assert_eq!(nils.len(), 1, "{nils:?}");
    assert!(nils[0].deleted, "the Unimicro delete removes the record");
    assert!(control.live_rates(205).is_empty());
    assert_eq!(
        control.rates(204).len(),
        1,
        "the foreign record is untouched"
    );
    assert!(control.removed_employments().is_empty());
    // Kari create, Kari update, Ola, Nils create, Nils delete: five saves, none twice.
    assert_eq!(control.write_count(), 5);

    // The outage left exactly two explained retries.
    let mut retries = 0;
    for wf in &done {
        let shown = admin
            .show(&wf.id.to_string())
            .await
            .unwrap_or_else(|| panic!("show {}", wf.id));
        for h in &shown.history {
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
        if wf.change.salary.id.as_str() == "sal-ola" {
            assert!(
                shown.history.iter().any(|h| h
                    .detail
                    .contains("dropped fields the payroll system cannot hold: note")),
                "{:?}",
                shown.history
            );
        }
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
async fn kill9_between_the_save_and_its_commit_writes_nothing_twice() {
    let sim = start_sim().await;
    let control = sim.control();
    let setup = setup(&control, 20);
    let kari = json!({"id": "k", "payroll_employee_id": "101"});
    let steps = [
        uni(
            "k1",
            "created",
            "2026-11-20T09:00:00Z",
            "sal-kari",
            kari.clone(),
            "52000.00",
            "NOK",
            "monthly",
            "2026-01-01",
        ),
        uni(
            "k2",
            "updated",
            "2026-11-21T09:00:00Z",
            "sal-kari",
            kari.clone(),
            "54000.00",
            "NOK",
            "monthly",
            "2026-01-01",
        ),
        uni(
            "k3",
            "deleted",
            "2026-11-22T09:00:00Z",
            "sal-kari",
            kari,
            "54000.00",
            "NOK",
            "monthly",
            "2026-01-01",
        ),
    ];
    for (n, step) in steps.iter().enumerate() {
        // Unimicro applies the save and holds the answer; the daemon dies meanwhile.
        control.arm(
            Fault::new(FaultKind::ApplyThenHang { hang_ms: 30_000 }, 1)
                .method("PUT")
                .path_prefix(SAVES),
        );
        let before = control.write_count();
        let daemon = spawn(&setup, &format!("daemon-{n}.log"));
        let admin = Admin::wait(&setup.store, daemon.child.id()).await;
        let items = admin
            .submit(&json!([step]))
            .await
            .unwrap_or_else(|| panic!("submit answered"));
        assert_eq!(items[0].outcome, "accepted", "{items:?}");
        assert!(
            control
                .wait_for_writes(before + 1, Duration::from_secs(20))
                .await,
            "the save reached Unimicro"
        );
        daemon.kill9();
        control.clear_faults();

        // Restarted, the daemon finds its save in Unimicro and adopts it.
        let daemon = spawn(&setup, &format!("daemon-{n}-after.log"));
        let admin = Admin::wait(&setup.store, daemon.child.id()).await;
        let done = admin
            .wait_all_terminal(n + 1, Duration::from_secs(30))
            .await;
        assert!(done.iter().all(|w| w.state == State::Sent), "{done:?}");
        let wf = done
            .iter()
            .find(|w| w.change.event_id.as_str() == step["event_id"].as_str().unwrap_or(""))
            .unwrap_or_else(|| panic!("no instance for step {n}"));
        let shown = admin
            .show(&wf.id.to_string())
            .await
            .unwrap_or_else(|| panic!("show {}", wf.id));
        assert!(
            shown.history.iter().any(|h| h.event == "adopted"),
            "step {n}: {:?}",
            shown.history
        );
        assert_eq!(
            control.write_count(),
            before + 1,
            "step {n}: nothing was saved a second time"
        );
        assert_eq!(daemon.terminate(), Some(0));
    }
    let rates = control.rates(201);
    assert_eq!(rates.len(), 1, "one record, ever: {rates:?}");
    assert_eq!(rates[0].rate, Decimal::new(5_400_000, 2));
    assert!(rates[0].deleted);
    sim.shutdown().await;
}
