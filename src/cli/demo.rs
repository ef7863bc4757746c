//! `salary-sync demo`: simulated Tripletex, Visma.net Payroll and Unimicro on loopback, one
//! daemon on a temporary store, the same sample changes sent to each, ending in every terminal
//! state, then the dump. Everything runs in this process over real HTTP and a real sled store;
//! nothing is left behind.

use super::backend::Backend;
use super::render::{self, Format};
use crate::clock::SystemClock;
use crate::connectors::http::{client, ClientSettings};
use crate::connectors::tripletex::{TripletexConfig, TripletexConnector};
use crate::connectors::unimicro::{UnimicroConfig, UnimicroConnector};
use crate::connectors::visma::{VismaApi, VismaConfig, VismaConnector};
use crate::connectors::Connector;
use crate::daemon::{self, DaemonSettings};
use crate::domain::{Currency, IntegrationId};
use crate::engine::{EngineSettings, RetrySettings};
use crate::secret::Secret;
use crate::simulators::{tripletex, unimicro, visma};
use anyhow::{anyhow, Context, Result};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const QUIET_WAIT_MAX: Duration = Duration::from_secs(60);
const ACTIVATED_AT: &str = "2026-11-01T00:00:00Z";

/// The three simulators, started with the same demo cast.
struct Simulators {
    tripletex: tripletex::Handle,
    visma: visma::Handle,
    unimicro: unimicro::Handle,
}

impl Simulators {
    async fn start() -> Result<Self> {
        Ok(Self {
            tripletex: tripletex::start(tripletex::Seed::demo())
                .await
                .context("cannot start the Tripletex simulator")?,
            visma: visma::start(visma::Seed::demo())
                .await
                .context("cannot start the Visma simulator")?,
            unimicro: unimicro::start(unimicro::Seed::demo())
                .await
                .context("cannot start the Unimicro simulator")?,
        })
    }

    fn connectors(&self) -> Result<HashMap<IntegrationId, Arc<dyn Connector>>> {
        let http = client(&ClientSettings::default())?;
        let t = tripletex::Seed::demo();
        let v = visma::Seed::demo();
        let u = unimicro::Seed::demo();
        let id = |s: &str| IntegrationId::parse(s).map_err(|e| anyhow!(e));
        let mut out: HashMap<IntegrationId, Arc<dyn Connector>> = HashMap::new();
        out.insert(
            id("demo-tripletex")?,
            Arc::new(TripletexConnector::new(
                TripletexConfig {
                    base_url: self.tripletex.control().base_url(),
                    consumer_token: Secret::new(t.consumer_token),
                    employee_token: Secret::new(t.employee_token),
                    company: None,
                    session_days: 1,
                },
                http.clone(),
            )),
        );
        let visma = self.visma.control();
        out.insert(
            id("demo-visma")?,
            Arc::new(VismaConnector::new(
                VismaConfig {
                    base_url: visma.base_url(),
                    token_url: visma.token_url(),
                    tenant_id: v.tenant_id,
                    client_id: Secret::new(v.client_id),
                    client_secret: Secret::new(v.client_secret),
                    scope: None,
                    currency: Currency::parse("NOK").map_err(|e| anyhow!(e))?,
                    api: VismaApi::default(),
                },
                http.clone(),
            )),
        );
        let uni = self.unimicro.control();
        out.insert(
            id("demo-unimicro")?,
            Arc::new(UnimicroConnector::new(
                UnimicroConfig {
                    base_url: uni.base_url(),
                    token_url: uni.token_url(),
                    company_key: u.company_key,
                    client_id: Secret::new(u.client_id),
                    client_secret: Secret::new(u.client_secret),
                    scope: "AppFramework".into(),
                    assertion: None,
                },
                http,
            )),
        );
        Ok(out)
    }

    /// The next two salary writes in every system answer 503.
    fn outage(&self) {
        let down = || tripletex::FaultKind::Unavailable;
        self.tripletex.control().arm(
            tripletex::Fault::new(down(), 2)
                .method("POST")
                .path_prefix("/employee/employment/details"),
        );
        self.visma
            .control()
            .arm(visma::Fault::new(visma::FaultKind::Unavailable, 2).method("PUT"));
        self.unimicro.control().arm(
            unimicro::Fault::new(down(), 2)
                .method("PUT")
                .path_prefix("/api/biz/employments"),
        );
    }

    /// What each payroll system holds now, one line per salary record.
    fn records(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for row in self.tripletex.control().all_details() {
            lines.push(format!(
                "  tripletex  row {:<6} employment {:<6} from {}  {:<13} annual {:>10}  hourly {:>7}  position {:>3} %",
                row.id,
                row.employment_id,
                row.date,
                row.remuneration_type.map_or("-", |t| t.as_str()),
                row.annual_salary,
                row.hourly_wage,
                row.percentage_of_full_time_equivalent
            ));
        }
        let visma = self.visma.control();
        for employee in visma::Seed::demo().employees {
            for position in employee.positions {
                for e in visma.salary_entries(&position.id) {
                    let amount = e
                        .monthly_salary
                        .or(e.yearly_salary)
                        .or(e.hourly_salary)
                        .unwrap_or_default();
                    lines.push(format!(
                        "  visma      {} {}  {}..{}  {} {}",
                        employee.first_name,
                        e.contract_salary_type.as_deref().unwrap_or("-"),
                        e.active_start.map(|d| d.to_string()).unwrap_or_default(),
                        e.active_end
                            .map(|d| d.to_string())
                            .unwrap_or_else(|| "(open)".into()),
                        e.salary_type,
                        amount
                    ));
                }
            }
        }
        let uni = self.unimicro.control();
        for employee in unimicro::Seed::demo().employees {
            for employment in employee.employments {
                for r in uni.rates(employment.id) {
                    lines.push(format!(
                        "  unimicro   {} employment {} from {}  {} {}{}",
                        employee.name,
                        r.employment_id,
                        r.from_date,
                        r.rate_type,
                        r.rate,
                        if r.deleted { "  (deleted)" } else { "" }
                    ));
                }
            }
        }
        lines
    }

    async fn shutdown(self) {
        self.tripletex.shutdown().await;
        self.visma.shutdown().await;
        self.unimicro.shutdown().await;
    }
}

pub async fn run() -> Result<()> {
    let store_dir = tempfile::tempdir().context("cannot create a temporary store directory")?;
    let simulators = Simulators::start().await?;
    eprintln!(
        "demo: simulated Tripletex at {}, Visma.net Payroll at {}, Unimicro at {}",
        simulators.tripletex.control().base_url(),
        simulators.visma.control().base_url(),
        simulators.unimicro.control().base_url()
    );
    let connectors = simulators.connectors()?;
    let integrations: Vec<IntegrationId> = {
        let mut ids: Vec<_> = connectors.keys().cloned().collect();
        ids.sort();
        ids
    };
    let settings = DaemonSettings {
        store: store_dir.path().join("store"),
        admin_listen: "127.0.0.1:0".parse()?,
        health_listen: None,
        engine: EngineSettings {
            workers: 16,
            per_integration: Default::default(),
            retry: RetrySettings {
                initial_delay_ms: 300,
                delay_ms_max: 2_000,
                attempts_max: 6,
                ..RetrySettings::default()
            },
            shutdown_grace: Duration::from_secs(5),
        },
        webhook: None,
        retention: None,
        retention_sweep_every: daemon::RETENTION_SWEEP_EVERY,
        store_cache_bytes: crate::storage::CACHE_BYTES_DEFAULT,
        store_lock_wait: crate::daemon::STORE_LOCK_WAIT_DEFAULT,
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
    for id in &integrations {
        backend
            .set_integration(id.clone(), true, Some(ACTIVATED_AT.into()))
            .await?;
    }
    eprintln!(
        "demo: salary sync enabled for {} integrations, activated at {ACTIVATED_AT}",
        integrations.len()
    );

    eprintln!("demo: sending each system 7 changes (create, update, delete; wrong currency; overlap; no employment)");
    for id in &integrations {
        submit(&backend, Value::Array(first_wave(id.as_str()))).await?;
    }
    wait_quiet(&backend).await?;

    // Tripletex only: a new hire whose salary starts on her first day. Position sync made her
    // hiring row (a 60 % position with the agreed salary); the salary updates that row in
    // place, so the 60 % stays (issue 11).
    eprintln!("demo: Tripletex: Eva Lie, hired 2026-01-01 at 60 %, gets her salary from day one");
    submit(
        &backend,
        event(
            "demo-tripletex",
            "evt-eva",
            "created",
            "2026-11-20T09:30:00Z",
            "sal-eva",
            "22",
            "47000.00",
            "NOK",
            "monthly",
            "2026-01-01",
        ),
    )
    .await?;
    wait_quiet(&backend).await?;

    eprintln!("demo: every payroll system goes down for two writes (503); the next change is retried until it lands");
    simulators.outage();
    for id in &integrations {
        let ola = event(
            id.as_str(),
            "evt-8",
            "created",
            "2026-11-23T08:00:00Z",
            "sal-ola",
            "18",
            "650000",
            "NOK",
            "yearly",
            "2026-03-01",
        );
        submit(&backend, json!([ola])).await?;
    }
    wait_quiet(&backend).await?;

    let (items, _) = backend.list(&Default::default()).await?;
    println!();
    print!("{}", render::instances(&items, Format::Table));
    println!();
    println!("Error log:");
    print!(
        "{}",
        render::errors(&backend.errors(None).await?, &[], Format::Table)
    );
    if let Some(retried) = items.iter().find(|wf| {
        wf.change.salary.id.as_str() == "sal-ola"
            && wf.change.integration_id.as_str() == "demo-visma"
    }) {
        println!();
        println!(
            "The Visma instance that rode out the outage (writes are asynchronous jobs there):"
        );
        print!(
            "{}",
            render::shown(&backend.show(retried.id).await?, Format::Table)
        );
    }
    println!();
    println!("What the payroll systems hold now:");
    for line in simulators.records() {
        println!("{line}");
    }
    drop(backend);
    running.stop().await?;
    simulators.shutdown().await;
    Ok(())
}

/// The seven changes every system gets first (employees by employee number: the one key all
/// three systems can look up).
fn first_wave(integration: &str) -> Vec<Value> {
    let e = |id, kind, at, salary, number, amount, currency, unit, start| {
        event(
            integration,
            id,
            kind,
            at,
            salary,
            number,
            amount,
            currency,
            unit,
            start,
        )
    };
    vec![
        e(
            "evt-1",
            "created",
            "2026-11-20T09:00:00Z",
            "sal-kari",
            "17",
            "52000.00",
            "NOK",
            "monthly",
            "2026-01-01",
        ),
        e(
            "evt-2",
            "updated",
            "2026-11-21T09:00:00Z",
            "sal-kari",
            "17",
            "53500.00",
            "NOK",
            "monthly",
            "2026-01-01",
        ),
        e(
            "evt-3",
            "created",
            "2026-11-20T09:05:00Z",
            "sal-ola-sek",
            "18",
            "41000.00",
            "SEK",
            "monthly",
            "2026-01-01",
        ),
        e(
            "evt-4",
            "created",
            "2026-11-20T09:10:00Z",
            "sal-per",
            "19",
            "50000.00",
            "NOK",
            "monthly",
            "2026-01-01",
        ),
        e(
            "evt-5",
            "created",
            "2026-11-20T09:15:00Z",
            "sal-lise",
            "20",
            "45000.00",
            "NOK",
            "monthly",
            "2026-01-01",
        ),
        e(
            "evt-6",
            "created",
            "2026-11-20T09:20:00Z",
            "sal-nils",
            "21",
            "312.50",
            "NOK",
            "hourly",
            "2026-02-01",
        ),
        e(
            "evt-7",
            "deleted",
            "2026-11-22T09:20:00Z",
            "sal-nils",
            "21",
            "312.50",
            "NOK",
            "hourly",
            "2026-02-01",
        ),
    ]
}

#[allow(clippy::too_many_arguments)]
fn event(
    integration: &str,
    event_id: &str,
    kind: &str,
    occurred_at: &str,
    salary_id: &str,
    employee_number: &str,
    amount: &str,
    currency: &str,
    unit: &str,
    start: &str,
) -> Value {
    json!({
        "event_id": event_id,
        "integration_id": integration,
        "kind": kind,
        "occurred_at": occurred_at,
        "salary": {
            "id": salary_id,
            "employee": {"id": format!("hr-{employee_number}"), "employee_number": employee_number},
            "amount": amount, "currency": currency, "period_unit": unit,
            "start_date": start, "end_date": null, "note": "demo"
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
