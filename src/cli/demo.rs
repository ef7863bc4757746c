//! `salary-sync demo`: a simulated Tripletex on loopback, a daemon on a temporary store, sample
//! changes that end in every terminal state, and the dump. Everything runs in this process over
//! real HTTP and a real sled store; nothing is left behind.

use super::backend::Backend;
use super::render::{self, Format};
use crate::clock::SystemClock;
use crate::connectors::http::{client, ClientSettings};
use crate::connectors::tripletex::{TripletexConfig, TripletexConnector};
use crate::connectors::Connector;
use crate::daemon::{self, DaemonSettings};
use crate::domain::IntegrationId;
use crate::engine::{EngineSettings, RetrySettings};
use crate::secret::Secret;
use crate::simulators::tripletex::{self as sim, Fault, FaultKind, Seed};
use anyhow::{anyhow, Context, Result};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const INTEGRATION: &str = "demo-tripletex";
const QUIET_WAIT_MAX: Duration = Duration::from_secs(60);

pub async fn run() -> Result<()> {
    let store_dir = tempfile::tempdir().context("cannot create a temporary store directory")?;
    let seed = Seed::demo();
    let simulator = sim::start(seed.clone())
        .await
        .context("cannot start the Tripletex simulator")?;
    let control = simulator.control();
    eprintln!("demo: simulated Tripletex at {}", control.base_url());

    let connector = TripletexConnector::new(
        TripletexConfig {
            base_url: control.base_url(),
            consumer_token: Secret::new(seed.consumer_token.clone()),
            employee_token: Secret::new(seed.employee_token.clone()),
            company: None,
            session_days: 1,
        },
        client(&ClientSettings::default())?,
    );
    let integration = IntegrationId::parse(INTEGRATION).map_err(|e| anyhow!(e))?;
    let mut connectors: HashMap<IntegrationId, Arc<dyn Connector>> = HashMap::new();
    connectors.insert(integration, Arc::new(connector));
    let settings = DaemonSettings {
        store: store_dir.path().join("store"),
        admin_listen: "127.0.0.1:0".parse()?,
        engine: EngineSettings {
            workers: 8,
            retry: RetrySettings {
                initial_delay_ms: 300,
                delay_ms_max: 2_000,
                attempts_max: 6,
                ..RetrySettings::default()
            },
            shutdown_grace: Duration::from_secs(5),
        },
        webhook: None,
    };
    let store_path = settings.store.clone();
    let running = daemon::start(settings, connectors, Arc::new(SystemClock)).await?;
    eprintln!(
        "demo: daemon on a temporary store, admin API at {}",
        running.admin_addr
    );
    let backend = Backend::connect(
        &store_path,
        Default::default(),
        RetrySettings::default(),
        false,
    )
    .await?;

    let activated = backend
        .set_integration(
            IntegrationId::parse(INTEGRATION).map_err(|e| anyhow!(e))?,
            true,
            Some("2026-11-01T00:00:00Z".into()),
        )
        .await?;
    eprintln!(
        "demo: salary sync enabled for {INTEGRATION}, activated at {}",
        activated
            .switch
            .and_then(|s| s.activated_at)
            .map(|t| t.to_rfc3339())
            .unwrap_or_default()
    );
    eprintln!("demo: sending 7 salary changes (create, update, delete; wrong currency; overlap; no employment)");
    submit(
        &backend,
        json!([
            event(
                "evt-1",
                "created",
                "2026-11-20T09:00:00Z",
                "sal-kari",
                json!({"id": "hr-kari", "payroll_employee_id": "101"}),
                "52000.00",
                "NOK",
                "monthly",
                "2026-01-01",
                Some("New agreement")
            ),
            event(
                "evt-2",
                "updated",
                "2026-11-21T09:00:00Z",
                "sal-kari",
                json!({"id": "hr-kari", "payroll_employee_id": "101"}),
                "53500.00",
                "NOK",
                "monthly",
                "2026-01-01",
                Some("Annual raise")
            ),
            event(
                "evt-3",
                "created",
                "2026-11-20T09:05:00Z",
                "sal-ola-sek",
                json!({"id": "hr-ola", "employee_number": "18"}),
                "41000.00",
                "SEK",
                "monthly",
                "2026-01-01",
                None
            ),
            event(
                "evt-4",
                "created",
                "2026-11-20T09:10:00Z",
                "sal-per",
                json!({"id": "hr-per", "email": "per@example.no"}),
                "50000.00",
                "NOK",
                "monthly",
                "2026-01-01",
                None
            ),
            event(
                "evt-5",
                "created",
                "2026-11-20T09:15:00Z",
                "sal-lise",
                json!({"id": "hr-lise", "employee_number": "20"}),
                "45000.00",
                "NOK",
                "monthly",
                "2026-01-01",
                None
            ),
            event(
                "evt-6",
                "created",
                "2026-11-20T09:20:00Z",
                "sal-nils",
                json!({"id": "hr-nils", "payroll_employee_id": "105"}),
                "312.50",
                "NOK",
                "hourly",
                "2026-02-01",
                None
            ),
            event(
                "evt-7",
                "deleted",
                "2026-11-22T09:20:00Z",
                "sal-nils",
                json!({"id": "hr-nils", "payroll_employee_id": "105"}),
                "312.50",
                "NOK",
                "hourly",
                "2026-02-01",
                None
            ),
        ]),
    )
    .await?;
    wait_quiet(&backend).await?;

    eprintln!(
        "demo: Tripletex goes down for two writes (503); the next change is retried until it lands"
    );
    control.arm(
        Fault::new(FaultKind::Unavailable, 2)
            .method("POST")
            .path_prefix("/employee/employment/details"),
    );
    submit(
        &backend,
        json!([event(
            "evt-8",
            "created",
            "2026-11-23T08:00:00Z",
            "sal-ola",
            json!({"id": "hr-ola", "employee_number": "18"}),
            "650000",
            "NOK",
            "yearly",
            "2026-03-01",
            None
        ),]),
    )
    .await?;
    wait_quiet(&backend).await?;

    let (items, _) = backend.list(&Default::default()).await?;
    println!();
    print!("{}", render::instances(&items, Format::Table));
    println!();
    println!("Error log:");
    print!(
        "{}",
        render::errors(&backend.errors(None).await?, Format::Table)
    );
    if let Some(retried) = items
        .iter()
        .find(|wf| wf.change.salary.id.as_str() == "sal-ola")
    {
        println!();
        println!("The instance that rode out the outage:");
        print!(
            "{}",
            render::shown(&backend.show(retried.id).await?, Format::Table)
        );
    }
    println!();
    println!("Tripletex now holds these salary rows (employment, date, type, annual, hourly):");
    for row in control.all_details() {
        println!(
            "  row {:<5} employment {:<4} {} {:<13} {:>12} {:>8}",
            row.id,
            row.employment_id,
            row.date,
            row.remuneration_type.map_or("-", |t| t.as_str()),
            row.annual_salary,
            row.hourly_wage
        );
    }
    drop(backend);
    running.stop().await?;
    simulator.shutdown().await;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn event(
    event_id: &str,
    kind: &str,
    occurred_at: &str,
    salary_id: &str,
    employee: Value,
    amount: &str,
    currency: &str,
    unit: &str,
    start: &str,
    note: Option<&str>,
) -> Value {
    json!({
        "event_id": event_id,
        "integration_id": INTEGRATION,
        "kind": kind,
        "occurred_at": occurred_at,
        "salary": {
            "id": salary_id, "employee": employee, "amount": amount, "currency": currency,
            "period_unit": unit, "start_date": start, "end_date": null, "note": note
        }
    })
}

async fn submit(backend: &Backend, events: Value) -> Result<()> {
    let items = backend.submit(serde_json::to_vec(&events)?).await?;
    for item in items {
        if item.outcome != "accepted" {
            return Err(anyhow!(
                "demo event #{} was not accepted: {} {:?}",
                item.index,
                item.outcome,
                item.error
            ));
        }
    }
    Ok(())
}

async fn wait_quiet(backend: &Backend) -> Result<()> {
    let started = Instant::now();
    loop {
        let (items, _) = backend.list(&Default::default()).await?;
        if items.iter().all(|wf| wf.is_terminal()) {
            return Ok(());
        }
        if started.elapsed() > QUIET_WAIT_MAX {
            return Err(anyhow!(
                "demo: instances still running after {QUIET_WAIT_MAX:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
