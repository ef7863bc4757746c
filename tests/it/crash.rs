//! The kill -9 campaign: the daemon binary runs as a child with one integration on each of
//! the three payroll systems (Tripletex, Visma.net Payroll, Unimicro; the simulators are kept
//! alive in this process), gets changes for all three, and is SIGKILLed at random instants,
//! biased towards the dangerous windows:
//! - in the middle of ingest;
//! - after a Tripletex write, before its commit (the simulator applies the write and holds the
//!   answer), or after a write whose answer was lost;
//! - after a Unimicro save, before its commit;
//! - while a Visma job is being polled (jobs run for a while).
//!
//! At the end every accepted change must be in payroll exactly once with the right values,
//! every instance terminal, history gap-free, and each salary's changes finished in HR order.
//!
//! Seeded: `SALARY_SYNC_CRASH_SEED=N` replays a run; `SALARY_SYNC_CRASH_CYCLES=N` runs longer
//! (CI runs the default, short campaign).

use crate::support::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use salary_sync::domain::State;
use salary_sync::simulators::{tripletex, unimicro, visma};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

/// Salaries per kill cycle: the plan grows with the campaign, so every cycle has work in
/// flight when it is killed (a fixed plan ran dry after about nine cycles).
const SALARIES_PER_CYCLE: i64 = 3;
const VISMA: &str = "acme-visma";
const UNIMICRO: &str = "acme-unimicro";
const VISMA_ID_ENV: &str = "IT_CRASH_VISMA_CLIENT_ID";
const VISMA_SECRET_ENV: &str = "IT_CRASH_VISMA_CLIENT_SECRET";
const UNIMICRO_ID_ENV: &str = "IT_CRASH_UNIMICRO_CLIENT_ID";
const UNIMICRO_SECRET_ENV: &str = "IT_CRASH_UNIMICRO_CLIENT_SECRET";
/// Where Tripletex and Unimicro take the salary writes.
const TRIPLETEX_WRITES: &str = "/employee/employment/details";
const UNIMICRO_SAVES: &str = "/api/biz/employments";

/// Salary `i` goes to system `i % 3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum System {
    Tripletex,
    Visma,
    Unimicro,
}

impl System {
    fn of(i: i64) -> Self {
        match i % 3 {
            0 => Self::Tripletex,
            1 => Self::Visma,
            _ => Self::Unimicro,
        }
    }

    fn integration(self) -> &'static str {
        match self {
            Self::Tripletex => INTEGRATION,
            Self::Visma => VISMA,
            Self::Unimicro => UNIMICRO,
        }
    }

    /// The payroll employee id salary `i` is matched to.
    fn employee_id(self, i: i64) -> String {
        match self {
            Self::Visma => visma::guid(1000 + i as u64),
            _ => (1000 + i).to_string(),
        }
    }

    /// Where a delete leaves the instance: Tripletex keeps the record for a human.
    fn deleted_state(self) -> State {
        match self {
            Self::Tripletex => State::ManualDeleteRequired,
            _ => State::Sent,
        }
    }
}

/// What payroll must hold for one salary at the end.
struct Expected {
    system: System,
    index: i64,
    /// The last change's monthly amount.
    monthly: Decimal,
    deleted: bool,
}

struct Plan {
    /// Every event, in submission order.
    events: Vec<Value>,
    expected: HashMap<String, Expected>,
}

fn plan(rng: &mut StdRng, salaries: i64) -> Plan {
    let mut events = Vec::new();
    let mut expected = HashMap::new();
    for i in 0..salaries {
        let system = System::of(i);
        let salary = format!("sal-{i}");
        let employee =
            json!({"id": format!("hr-{i}"), "payroll_employee_id": system.employee_id(i)});
        let first = Decimal::from(40_000 + 100 * i);
        let mut day = 1;
        let mut push = |kind: &str, amount: Decimal, n: usize| {
            let at = format!("2026-11-{:02}T10:00:00Z", day);
            day += 1;
            let mut e = event(
                &format!("ev-{i}-{n}"),
                kind,
                &at,
                &salary,
                employee.clone(),
                &amount.to_string(),
                "NOK",
                "monthly",
                "2026-01-01",
            );
            e["integration_id"] = json!(system.integration());
            events.push(e);
        };
        push("created", first, 0);
        let mut last = (first, false);
        if rng.random_bool(0.5) {
            let second = first + Decimal::from(1_500);
            push("updated", second, 1);
            last = (second, false);
        }
        if rng.random_bool(0.3) {
            push("deleted", last.0, 2);
            last.1 = true;
        }
        expected.insert(
            salary,
            Expected {
                system,
                index: i,
                monthly: last.0,
                deleted: last.1,
            },
        );
    }
    Plan { events, expected }
}

fn tripletex_seed(salaries: i64) -> tripletex::Seed {
    let mut seed = tripletex::Seed::demo();
    for i in (0..salaries).filter(|&i| System::of(i) == System::Tripletex) {
        seed.employees.push(tripletex::SeedEmployee {
            id: 1000 + i,
            employee_number: format!("{}", 5000 + i),
            email: format!("crash{i}@example.no"),
            first_name: "Crash".into(),
            last_name: format!("Test{i}"),
            employments: vec![tripletex::SeedEmployment {
                id: 2000 + i,
                start_date: day(2020, 1, 1),
                end_date: None,
            }],
        });
    }
    seed
}

fn visma_seed(salaries: i64) -> visma::Seed {
    let mut seed = visma::Seed::demo();
    // Jobs stay Running for a while, so kills land while the daemon polls them.
    seed.job_polls = 1;
    seed.job_delay_ms = 150;
    for i in (0..salaries).filter(|&i| System::of(i) == System::Visma) {
        seed.employees.push(visma::SeedEmployee {
            id: visma::guid(1000 + i as u64),
            number: format!("{}", 5000 + i),
            email: format!("crash{i}@example.no"),
            first_name: "Crash".into(),
            last_name: format!("Test{i}"),
            positions: vec![visma::SeedPosition {
                id: visma::guid(2000 + i as u64),
                active_start: day(2020, 1, 1),
                active_end: None,
                salary: Vec::new(),
            }],
        });
    }
    seed
}

fn unimicro_seed(salaries: i64) -> unimicro::Seed {
    let mut seed = unimicro::Seed::demo();
    for i in (0..salaries).filter(|&i| System::of(i) == System::Unimicro) {
        seed.employees.push(unimicro::SeedEmployee {
            id: 1000 + i,
            employee_number: 5000 + i,
            email: format!("crash{i}@example.no"),
            name: format!("Crash Test{i}"),
            employments: vec![unimicro::SeedEmployment {
                id: 2000 + i,
                start_date: day(2020, 1, 1),
                end_date: None,
                remuneration_type: 1,
            }],
        });
    }
    seed
}

fn day(y: i32, m: u32, d: u32) -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
}

/// The three simulators, alive for the whole campaign.
struct Payroll {
    tripletex: tripletex::Handle,
    visma: visma::Handle,
    unimicro: unimicro::Handle,
}

impl Payroll {
    async fn start(salaries: i64) -> Self {
        let tripletex = start_sim(tripletex_seed(salaries)).await;
        let visma = visma::start(visma_seed(salaries))
            .await
            .unwrap_or_else(|e| panic!("visma simulator: {e}"));
        let unimicro = unimicro::start(unimicro_seed(salaries))
            .await
            .unwrap_or_else(|e| panic!("unimicro simulator: {e}"));
        let payroll = Self {
            tripletex,
            visma,
            unimicro,
        };
        payroll
            .tripletex
            .control()
            .set_latency(Duration::from_millis(3));
        payroll
            .visma
            .control()
            .set_latency(Duration::from_millis(3));
        payroll
            .unimicro
            .control()
            .set_latency(Duration::from_millis(3));
        payroll
    }

    fn clear_faults(&self) {
        self.tripletex.control().clear_faults();
        self.visma.control().clear_faults();
        self.unimicro.control().clear_faults();
    }

    /// A config with one integration per system, all enabled.
    fn setup(&self) -> Setup {
        let visma = self.visma.control();
        let unimicro = self.unimicro.control();
        let extra = format!(
            r#"[[integration]]
id = "{VISMA}"
system = "visma-payroll"
base_url = "{visma_base}"
token_url = "{visma_token}"
tenant_id = "{tenant}"
client_id = {{ env = "{VISMA_ID_ENV}" }}
client_secret = {{ env = "{VISMA_SECRET_ENV}" }}
currency = "NOK"

[[integration]]
id = "{UNIMICRO}"
system = "unimicro"
base_url = "{uni_base}"
token_url = "{uni_token}"
company_key = "{key}"
client_id = {{ env = "{UNIMICRO_ID_ENV}" }}
client_secret = {{ env = "{UNIMICRO_SECRET_ENV}" }}
"#,
            visma_base = visma.base_url(),
            visma_token = visma.token_url(),
            tenant = visma::Seed::demo().tenant_id,
            uni_base = unimicro.base_url(),
            uni_token = unimicro.token_url(),
            key = unimicro::Seed::demo().company_key,
        );
        let setup = setup_with(&self.tripletex.control().base_url(), 20, &extra);
        enable(&setup.config, VISMA);
        enable(&setup.config, UNIMICRO);
        setup
    }

    fn spawn(&self, setup: &Setup, log_name: &str) -> DaemonProcess {
        let v = visma::Seed::demo();
        let u = unimicro::Seed::demo();
        DaemonProcess::spawn_env(
            setup,
            log_name,
            &[
                (VISMA_ID_ENV, v.client_id.as_str()),
                (VISMA_SECRET_ENV, v.client_secret.as_str()),
                (UNIMICRO_ID_ENV, u.client_id.as_str()),
                (UNIMICRO_SECRET_ENV, u.client_secret.as_str()),
            ],
        )
    }

    /// Each salary is in its payroll system exactly once, with its final values.
    fn check(&self, seed_value: u64, salary: &str, want: &Expected) {
        let i = want.index;
        match want.system {
            System::Tripletex => {
                let rows = self.tripletex.control().written_details(2000 + i);
                assert_eq!(rows.len(), 1, "seed {seed_value}: {salary}: {rows:?}");
                let annual = if want.deleted {
                    Decimal::ZERO
                } else {
                    want.monthly * Decimal::from(12)
                };
                assert_eq!(rows[0].annual_salary, annual, "seed {seed_value}: {salary}");
            }
            System::Visma => {
                let entries = self
                    .visma
                    .control()
                    .salary_entries(&visma::guid(2000 + i as u64));
                if want.deleted {
                    assert!(
                        entries.is_empty(),
                        "seed {seed_value}: {salary}: {entries:?}"
                    );
                } else {
                    assert_eq!(entries.len(), 1, "seed {seed_value}: {salary}: {entries:?}");
                    assert_eq!(
                        entries[0].monthly_salary,
                        Some(want.monthly),
                        "seed {seed_value}: {salary}"
                    );
                }
            }
            System::Unimicro => {
                let rates = self.unimicro.control().rates(2000 + i);
                assert_eq!(rates.len(), 1, "seed {seed_value}: {salary}: {rates:?}");
                assert_eq!(rates[0].rate, want.monthly, "seed {seed_value}: {salary}");
                assert_eq!(
                    rates[0].deleted, want.deleted,
                    "seed {seed_value}: {salary}"
                );
            }
        }
    }

    async fn shutdown(self) {
        self.tripletex.shutdown().await;
        self.visma.shutdown().await;
        self.unimicro.shutdown().await;
    }
}

/// How one cycle's daemon dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kill {
    MidIngest,
    AfterTripletexWrite,
    AfterLostTripletexAnswer,
    AfterUnimicroSave,
    WhileVismaJobPolled,
}

const KILLS: [Kill; 5] = [
    Kill::MidIngest,
    Kill::AfterTripletexWrite,
    Kill::AfterLostTripletexAnswer,
    Kill::AfterUnimicroSave,
    Kill::WhileVismaJobPolled,
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_at_random_instants_loses_nothing_and_writes_nothing_twice() {
    let seed_value: u64 = std::env::var("SALARY_SYNC_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let cycles: usize = std::env::var("SALARY_SYNC_CRASH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    eprintln!("crash campaign: seed {seed_value}, {cycles} kill cycles (replay with SALARY_SYNC_CRASH_SEED={seed_value})");
    let mut rng = StdRng::seed_from_u64(seed_value);
    let salaries = (cycles as i64 * SALARIES_PER_CYCLE).max(24);
    let plan = plan(&mut rng, salaries);
    let payroll = Payroll::start(salaries).await;
    let setup = payroll.setup();

    // Events whose ingest was answered (accepted or duplicate): durable by contract.
    let mut answered = vec![false; plan.events.len()];
    let mut next = 0;
    // Kills that landed in the window they aimed at, per kind.
    let mut landed: HashMap<Kill, usize> = HashMap::new();
    for cycle in 0..cycles {
        let daemon = payroll.spawn(&setup, &format!("daemon-{cycle}.log"));
        let admin = Admin::wait(&setup.store, daemon.child.id()).await;
        // Re-send what was never answered, then a fresh chunk.
        let mut batch: Vec<usize> = (0..next).filter(|&i| !answered[i]).collect();
        let chunk = rng.random_range(3..9).min(plan.events.len() - next);
        batch.extend(next..next + chunk);
        next += chunk;
        let body = Value::Array(batch.iter().map(|&i| plan.events[i].clone()).collect());
        let kill = KILLS[rng.random_range(0..KILLS.len())];
        let hit = match kill {
            Kill::MidIngest => {
                let kill_after = Duration::from_millis(rng.random_range(0..15));
                let answer = tokio::select! {
                    a = admin.submit(&body) => a,
                    _ = tokio::time::sleep(kill_after) => None,
                };
                let hit = answer.is_none();
                mark(&mut answered, &batch, answer);
                hit
            }
            Kill::AfterTripletexWrite => {
                let control = payroll.tripletex.control();
                control.arm(
                    tripletex::Fault::new(
                        tripletex::FaultKind::ApplyThenHang { hang_ms: 20_000 },
                        1,
                    )
                    .path_prefix(TRIPLETEX_WRITES),
                );
                let before = control.write_count();
                mark(&mut answered, &batch, admin.submit(&body).await);
                control
                    .wait_for_writes(before + 1, Duration::from_secs(3))
                    .await
            }
            Kill::AfterLostTripletexAnswer => {
                let control = payroll.tripletex.control();
                control.arm(
                    tripletex::Fault::new(tripletex::FaultKind::ApplyThenDrop, 1)
                        .path_prefix(TRIPLETEX_WRITES),
                );
                let before = control.write_count();
                mark(&mut answered, &batch, admin.submit(&body).await);
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..250))).await;
                control.write_count() > before
            }
            Kill::AfterUnimicroSave => {
                let control = payroll.unimicro.control();
                control.arm(
                    unimicro::Fault::new(unimicro::FaultKind::ApplyThenHang { hang_ms: 20_000 }, 1)
                        .method("PUT")
                        .path_prefix(UNIMICRO_SAVES),
                );
                let before = control.write_count();
                mark(&mut answered, &batch, admin.submit(&body).await);
                control
                    .wait_for_writes(before + 1, Duration::from_secs(3))
                    .await
            }
            Kill::WhileVismaJobPolled => {
                let control = payroll.visma.control();
                let before = control.jobs().len();
                mark(&mut answered, &batch, admin.submit(&body).await);
                let started = control
                    .wait_for_writes(control.write_count() + 1, Duration::from_secs(3))
                    .await;
                // The job runs for 150 ms: kill somewhere inside it.
                tokio::time::sleep(Duration::from_millis(rng.random_range(0..150))).await;
                started
                    && control
                        .jobs()
                        .iter()
                        .skip(before)
                        .any(|j| j.status == visma::JobStatus::Running)
            }
        };
        if hit {
            *landed.entry(kill).or_default() += 1;
        }
        daemon.kill9();
        payroll.clear_faults();
    }

    // The last run: everything still unanswered or unsent, to quiet.
    let daemon = payroll.spawn(&setup, "daemon-final.log");
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
        let system = plan
            .expected
            .get(wf.change.salary.id.as_str())
            .map(|e| e.system)
            .unwrap_or_else(|| panic!("seed {seed_value}: unplanned {}", wf.id));
        let wanted = if wf.change.kind.as_str() == "deleted" {
            system.deleted_state()
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
    for (salary, want) in &plan.expected {
        payroll.check(seed_value, salary, want);
    }
    assert_eq!(daemon.terminate(), Some(0));
    let mut kinds: Vec<_> = KILLS
        .iter()
        .map(|k| format!("{k:?} {}", landed.get(k).copied().unwrap_or(0)))
        .collect();
    kinds.sort();
    eprintln!(
        "crash campaign: seed {seed_value}: {cycles} kills; landed in their window: {}; {} changes on 3 systems, 0 lost, 0 duplicated",
        kinds.join(", "),
        plan.events.len()
    );
    payroll.shutdown().await;
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
