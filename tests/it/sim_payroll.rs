//! The deterministic simulation's payroll system and clock: an in-memory payroll model behind
//! the real `Connector` trait, with seeded faults, and a clock that only moves when told.
//!
//! The model holds employees with their employments (positions), the company currency,
//! foreign salary records (written by someone else, for the overlap rule) and the records the
//! engine writes, tagged with the HR salary and change they came from so the simulation can
//! check them. It behaves like one of three flavours: Tripletex (a delete clears the values
//! and the record stays), Visma.net Payroll (every write is an asynchronous job that runs for
//! a while and then succeeds or fails late) and Unimicro (a delete removes the record).
//!
//! Faults come from the model's own seeded RNG, so a seed replays exactly: transient errors
//! (network, 5xx), 429 with a retry-after instant, refused credentials, permanent rejections
//! of a write, apply-then-fail (the write lands, the answer is lost), apply-then-crash (the
//! write lands and the process dies before the commit) and crashes before a call. A crash is
//! a signal to the simulation (`crash`), after which the call never answers; the simulation
//! then drops the engine and the store and reopens them. Every fault is counted and
//! attributed to the change being stepped, so a failure at the end can be explained.
//!
//! Invariant: the model never reads the wall clock and never iterates a hash map; every
//! choice comes from the seeded RNG or from the order of calls.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use salary_sync::clock::Clock;
use salary_sync::connectors::error::HttpError;
use salary_sync::connectors::{Connector, Error, JobPoll, OverlapCheck, PayrollSystem, WriteStart};
use salary_sync::domain::{
    ChangeKind, Currency, FailureClass, FailureCode, PayrollRecord, Period, PeriodUnit, Position,
    SalaryChange, WriteReport,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::Notify;

/// A clock that moves only when the simulation moves it.
#[derive(Debug)]
pub struct FakeClock(Mutex<DateTime<Utc>>);

impl FakeClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self(Mutex::new(start))
    }

    pub fn advance_ms(&self, ms: i64) {
        if let Ok(mut now) = self.0.lock() {
            *now += Duration::milliseconds(ms);
        }
    }

    pub fn set(&self, at: DateTime<Utc>) {
        if let Ok(mut now) = self.0.lock() {
            if at > *now {
                *now = at;
            }
        }
    }
}

impl Clock for FakeClock {
    fn now(&self) -> DateTime<Utc> {
        self.0.lock().map(|n| *n).unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Tripletex,
    Visma,
    Unimicro,
}

impl Flavour {
    pub fn system(self) -> PayrollSystem {
        match self {
            Self::Tripletex => PayrollSystem::Tripletex,
            Self::Visma => PayrollSystem::VismaPayroll,
            Self::Unimicro => PayrollSystem::Unimicro,
        }
    }

    pub fn delete_keeps_record(self) -> bool {
        self == Self::Tripletex
    }
}

/// Fault probabilities per call (writes have their own).
#[derive(Debug, Clone, Copy)]
pub struct FaultRates {
    pub transient: f64,
    pub rate_limited: f64,
    pub auth: f64,
    pub crash_before_call: f64,
    pub reject_write: f64,
    pub apply_then_fail: f64,
    pub apply_then_crash: f64,
    pub job_fails_late: f64,
}

/// What was injected, by kind. Attributed per change (event id) as well.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    Transient,
    RateLimited,
    Auth,
    CrashBeforeCall,
    RejectWrite,
    ApplyThenFail,
    ApplyThenCrash,
    JobFailsLate,
}

/// A salary record in the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub id: String,
    pub employment_id: String,
    /// The HR salary that wrote it; `None` for a foreign record.
    pub salary: Option<String>,
    pub period: Period,
    pub unit: PeriodUnit,
    pub amount: Decimal,
    /// Tripletex flavour: the values were cleared by a delete; the record stays.
    pub cleared: bool,
}

/// One write that landed in payroll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub event_id: String,
    pub salary: String,
    pub kind: ChangeKind,
    pub occurred_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
enum JobState {
    Running,
    Succeeded(WriteReport),
    Failed,
}

#[derive(Debug, Clone)]
struct Job {
    event_id: String,
    change: SalaryChange,
    position: Position,
    owned: Option<PayrollRecord>,
    done_at: DateTime<Utc>,
    fails: bool,
    state: JobState,
}

#[derive(Debug)]
pub struct Model {
    pub flavour: Flavour,
    pub currency: Currency,
    /// payroll employee id -> employments (id, period).
    pub employees: BTreeMap<String, Vec<(String, Period)>>,
    pub records: BTreeMap<String, Rec>,
    /// Every write that landed, in order.
    pub applied: Vec<Applied>,
    pub faults_on: bool,
    pub rates: FaultRates,
    /// Injected faults by kind, and by the change they hit.
    pub injected: BTreeMap<Fault, u64>,
    pub explained: BTreeMap<String, BTreeSet<Fault>>,
    /// The change the simulation is stepping (faults are attributed to it).
    pub current: Option<String>,
    /// An invariant the model itself saw broken (a write to a record it should not touch).
    pub violations: Vec<String>,
    jobs: BTreeMap<String, Job>,
    next_id: u64,
    rng: StdRng,
}

pub struct SimPayroll {
    model: Mutex<Model>,
    clock: Arc<FakeClock>,
    /// Signalled when the model decides the process dies now.
    pub crash: Arc<Notify>,
}

enum Before {
    Go,
    Crash,
}

impl SimPayroll {
    pub fn new(flavour: Flavour, seed: u64, clock: Arc<FakeClock>, rates: FaultRates) -> Self {
        let model = Model {
            flavour,
            currency: Currency::parse("NOK").unwrap_or_else(|e| panic!("{e}")),
            employees: BTreeMap::new(),
            records: BTreeMap::new(),
            applied: Vec::new(),
            faults_on: true,
            rates,
            injected: BTreeMap::new(),
            explained: BTreeMap::new(),
            current: None,
            violations: Vec::new(),
            jobs: BTreeMap::new(),
            next_id: 1,
            rng: StdRng::seed_from_u64(seed ^ 0x005e_ed0f_fa17),
        };
        Self {
            model: Mutex::new(model),
            clock,
            crash: Arc::new(Notify::new()),
        }
    }

    pub fn model(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lets every asynchronous job whose time has come land (or fail).
    pub fn settle(&self) {
        let now = self.clock.now();
        self.model().settle_jobs(now);
    }

    /// Draws the faults of a call about to start. A crash leaves the call unanswered.
    fn before(&self, what: &str) -> Result<Before, Error> {
        let now = self.clock.now();
        let mut m = self.model();
        m.settle_jobs(now);
        if !m.faults_on {
            return Ok(Before::Go);
        }
        let r = m.rates;
        if m.roll(r.crash_before_call) {
            m.note(Fault::CrashBeforeCall);
            return Ok(Before::Crash);
        }
        if m.roll(r.transient) {
            m.note(Fault::Transient);
            if m.rng.random_bool(0.5) {
                return Err(Error::Network(format!(
                    "{what}: connection reset (simulated)"
                )));
            }
            return Err(http(
                503,
                FailureCode::Unavailable,
                FailureClass::Transient,
                what,
                None,
            ));
        }
        if m.roll(r.rate_limited) {
            m.note(Fault::RateLimited);
            let wait = if m.rng.random_bool(0.7) {
                Some(now + Duration::milliseconds(m.rng.random_range(500..20_000)))
            } else {
                None
            };
            return Err(http(
                429,
                FailureCode::RateLimited,
                FailureClass::Transient,
                what,
                wait,
            ));
        }
        if m.roll(r.auth) {
            m.note(Fault::Auth);
            return Err(http(
                401,
                FailureCode::AuthRejected,
                FailureClass::Auth,
                what,
                None,
            ));
        }
        Ok(Before::Go)
    }

    async fn die(&self) -> ! {
        self.crash.notify_one();
        std::future::pending::<()>().await;
        unreachable!("a crashed call never answers")
    }

    /// What happens after a write landed: the answer arrives, is lost, or the process dies.
    async fn after_write(&self, what: &str) -> Result<(), Error> {
        let crash = {
            let mut m = self.model();
            if !m.faults_on {
                return Ok(());
            }
            let r = m.rates;
            if m.roll(r.apply_then_crash) {
                m.note(Fault::ApplyThenCrash);
                true
            } else if m.roll(r.apply_then_fail) {
                m.note(Fault::ApplyThenFail);
                return Err(Error::Network(format!(
                    "{what}: the answer was cut short (simulated; the write landed)"
                )));
            } else {
                false
            }
        };
        if crash {
            self.die().await;
        }
        Ok(())
    }

    async fn gate(&self, what: &str) -> Result<(), Error> {
        match self.before(what)? {
            Before::Go => Ok(()),
            Before::Crash => self.die().await,
        }
    }
}

fn http(
    status: u16,
    code: FailureCode,
    class: FailureClass,
    what: &str,
    retry_not_before: Option<DateTime<Utc>>,
) -> Error {
    Error::Http(Box::new(HttpError {
        status,
        method: "SIM".into(),
        path: what.into(),
        code,
        class,
        message: format!("simulated HTTP {status} on {what}"),
        vendor_code: None,
        vendor_message: None,
        request_id: None,
        retry_not_before,
    }))
}

impl Model {
    fn roll(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.random_bool(p.min(1.0))
    }

    fn note(&mut self, fault: Fault) {
        *self.injected.entry(fault).or_default() += 1;
        if let Some(event) = self.current.clone() {
            self.explained.entry(event).or_default().insert(fault);
        }
    }

    fn fresh_id(&mut self, prefix: &str) -> String {
        let id = format!("{prefix}-{:08}", self.next_id);
        self.next_id += 1;
        id
    }

    /// A record holds the values `change` writes (or, for a delete, has lost them).
    fn holds(&self, rec: &Rec, change: &SalaryChange) -> bool {
        match change.kind {
            ChangeKind::Deleted => rec.cleared,
            _ => {
                !rec.cleared
                    && rec.period == change.salary.period()
                    && rec.unit == change.salary.period_unit
                    && rec.amount == change.salary.pay.amount
            }
        }
    }

    /// Live records of one HR salary (cleared Tripletex rows count as records, not as live).
    pub fn records_of(&self, salary: &str) -> Vec<&Rec> {
        self.records
            .values()
            .filter(|r| r.salary.as_deref() == Some(salary))
            .collect()
    }

    /// Applies a write; the engine's own rules decide create, update or delete.
    fn apply(
        &mut self,
        change: &SalaryChange,
        position: &Position,
        owned: Option<&PayrollRecord>,
    ) -> Result<WriteReport, Error> {
        let salary = change.salary.id.as_str().to_owned();
        if let Some(o) = owned {
            if let Some(rec) = self.records.get(&o.id) {
                if rec.salary.as_deref() != Some(salary.as_str()) {
                    self.violations.push(format!(
                        "{} wrote to record {} of {:?}",
                        change.event_id, o.id, rec.salary
                    ));
                }
            }
        }
        let report = if change.kind == ChangeKind::Deleted {
            let Some(owned) = owned else {
                return Err(Error::NothingToDelete(format!(
                    "salary {salary} was never written (simulated)"
                )));
            };
            if self.flavour.delete_keeps_record() {
                if let Some(rec) = self.records.get_mut(&owned.id) {
                    rec.cleared = true;
                    rec.amount = Decimal::ZERO;
                }
            } else {
                self.records.remove(&owned.id);
            }
            WriteReport {
                record: owned.clone(),
                adopted: false,
                dropped_fields: Vec::new(),
                record_remains_after_delete: self.flavour.delete_keeps_record(),
            }
        } else {
            let rec = Rec {
                id: String::new(),
                employment_id: position.employment_id.clone(),
                salary: Some(salary.clone()),
                period: change.salary.period(),
                unit: change.salary.period_unit,
                amount: change.salary.pay.amount,
                cleared: false,
            };
            let id = match owned.filter(|o| self.records.contains_key(&o.id)) {
                Some(o) => o.id.clone(),
                None => self.fresh_id("rec"),
            };
            self.records.insert(
                id.clone(),
                Rec {
                    id: id.clone(),
                    ..rec
                },
            );
            WriteReport {
                record: PayrollRecord {
                    id,
                    employment_id: position.employment_id.clone(),
                },
                adopted: false,
                dropped_fields: Vec::new(),
                record_remains_after_delete: false,
            }
        };
        self.applied.push(Applied {
            event_id: change.event_id.as_str().to_owned(),
            salary,
            kind: change.kind,
            occurred_at: change.occurred_at,
        });
        Ok(report)
    }

    /// Asynchronous jobs run on their own: at their time they land (or fail).
    fn settle_jobs(&mut self, now: DateTime<Utc>) {
        let due: Vec<String> = self
            .jobs
            .iter()
            .filter(|(_, j)| matches!(j.state, JobState::Running) && j.done_at <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in due {
            let Some(job) = self.jobs.get(&id).cloned() else {
                continue;
            };
            let state = if job.fails {
                JobState::Failed
            } else {
                match self.apply(&job.change, &job.position, job.owned.as_ref()) {
                    Ok(report) => JobState::Succeeded(report),
                    Err(_) => JobState::Failed,
                }
            };
            if let Some(j) = self.jobs.get_mut(&id) {
                j.state = state;
            }
        }
    }

    /// Jobs still running for this HR salary (their writes may land later).
    pub fn running_jobs(&self) -> usize {
        self.jobs
            .values()
            .filter(|j| matches!(j.state, JobState::Running))
            .count()
    }
}

#[async_trait]
impl Connector for SimPayroll {
    fn system(&self) -> PayrollSystem {
        self.model().flavour.system()
    }

    fn delete_keeps_record(&self) -> bool {
        self.model().flavour.delete_keeps_record()
    }

    async fn match_position(&self, change: &SalaryChange) -> Result<Position, Error> {
        self.gate("match_position").await?;
        let m = self.model();
        let who = change
            .salary
            .employee
            .payroll_employee_id
            .clone()
            .unwrap_or_default();
        let Some(employments) = m.employees.get(&who) else {
            return Err(Error::NoEmployee(format!("no employee {who} (simulated)")));
        };
        let period = change.salary.period();
        employments
            .iter()
            .find(|(_, p)| period.within(p))
            .map(|(id, p)| Position {
                employee_id: who.clone(),
                employment_id: id.clone(),
                period: *p,
            })
            .ok_or_else(|| Error::NoEmployment(format!("no employment of {who} covers {period}")))
    }

    async fn currency(&self) -> Result<Currency, Error> {
        self.gate("currency").await?;
        Ok(self.model().currency)
    }

    /// Visma's currency is configured, as the real connector's is: the engine then commits the
    /// match and the currency check together. The other flavours ask every time, so both
    /// paths are explored.
    fn known_currency(&self) -> Option<Currency> {
        let m = self.model();
        (m.flavour == Flavour::Visma).then_some(m.currency)
    }

    async fn check_overlap(
        &self,
        change: &SalaryChange,
        position: &Position,
        owned: Option<&PayrollRecord>,
    ) -> Result<OverlapCheck, Error> {
        self.gate("check_overlap").await?;
        if change.kind == ChangeKind::Deleted {
            return Ok(OverlapCheck::Clear);
        }
        let m = self.model();
        let period = change.salary.period();
        let owned_id = owned.map(|o| o.id.as_str());
        Ok(m.records
            .values()
            .filter(|r| r.employment_id == position.employment_id)
            .filter(|r| Some(r.id.as_str()) != owned_id)
            .find(|r| r.period.overlaps(&period))
            .map_or(OverlapCheck::Clear, |r| OverlapCheck::Conflict {
                record_id: r.id.clone(),
                period: r.period,
            }))
    }

    async fn find_written(
        &self,
        change: &SalaryChange,
        position: &Position,
        owned: Option<&PayrollRecord>,
    ) -> Result<Option<PayrollRecord>, Error> {
        self.gate("find_written").await?;
        let m = self.model();
        if let Some(o) = owned {
            let found = match m.records.get(&o.id) {
                Some(rec) => m.holds(rec, change),
                // Deleting flavours: the record is gone, so the delete landed.
                None => change.kind == ChangeKind::Deleted,
            };
            return Ok(found.then(|| PayrollRecord {
                id: o.id.clone(),
                employment_id: match change.kind {
                    ChangeKind::Deleted => o.employment_id.clone(),
                    _ => position.employment_id.clone(),
                },
            }));
        }
        if change.kind == ChangeKind::Deleted {
            return Ok(None);
        }
        Ok(m.records
            .values()
            .filter(|r| r.employment_id == position.employment_id)
            .find(|r| m.holds(r, change))
            .map(|r| PayrollRecord {
                id: r.id.clone(),
                employment_id: position.employment_id.clone(),
            }))
    }

    async fn write(
        &self,
        change: &SalaryChange,
        position: &Position,
        owned: Option<&PayrollRecord>,
    ) -> Result<WriteReport, Error> {
        self.gate("write").await?;
        let report = {
            let mut m = self.model();
            let reject = m.faults_on && {
                let p = m.rates.reject_write;
                m.roll(p)
            };
            if reject {
                m.note(Fault::RejectWrite);
                return Err(http(
                    422,
                    FailureCode::PayrollRejected,
                    FailureClass::Permanent,
                    "write",
                    None,
                ));
            }
            m.apply(change, position, owned)?
        };
        self.after_write("write").await?;
        Ok(report)
    }

    async fn start_write(
        &self,
        change: &SalaryChange,
        position: &Position,
        owned: Option<&PayrollRecord>,
    ) -> Result<WriteStart, Error> {
        if self.model().flavour != Flavour::Visma {
            return self
                .write(change, position, owned)
                .await
                .map(WriteStart::Done);
        }
        self.gate("start_write").await?;
        let job = {
            let now = self.clock.now();
            let mut m = self.model();
            if change.kind == ChangeKind::Deleted && owned.is_none() {
                return Err(Error::NothingToDelete(format!(
                    "salary {} was never written (simulated)",
                    change.salary.id
                )));
            }
            let fails = m.faults_on && {
                let p = m.rates.job_fails_late;
                m.roll(p)
            };
            if fails {
                m.note(Fault::JobFailsLate);
            }
            let run_ms = m.rng.random_range(0..20_000);
            let id = m.fresh_id("job");
            m.jobs.insert(
                id.clone(),
                Job {
                    event_id: change.event_id.as_str().to_owned(),
                    change: change.clone(),
                    position: position.clone(),
                    owned: owned.cloned(),
                    done_at: now + Duration::milliseconds(run_ms),
                    fails,
                    state: JobState::Running,
                },
            );
            id
        };
        self.after_write("start_write").await?;
        Ok(WriteStart::Job { job })
    }

    async fn poll_job(
        &self,
        job: &str,
        _change: &SalaryChange,
        _position: &Position,
    ) -> Result<JobPoll, Error> {
        self.gate("poll_job").await?;
        let m = self.model();
        match m.jobs.get(job).map(|j| &j.state) {
            None => Err(Error::Unexpected(format!("no job {job} (simulated)"))),
            Some(JobState::Running) => Ok(JobPoll::Running),
            Some(JobState::Succeeded(report)) => Ok(JobPoll::Done(report.clone())),
            Some(JobState::Failed) => Err(http(
                422,
                FailureCode::PayrollRejected,
                FailureClass::Permanent,
                "job failed late",
                None,
            )),
        }
    }

    async fn find_job(
        &self,
        change: &SalaryChange,
        _position: &Position,
    ) -> Result<Option<String>, Error> {
        if self.model().flavour != Flavour::Visma {
            return Ok(None);
        }
        self.gate("find_job").await?;
        let m = self.model();
        Ok(m.jobs
            .iter()
            .rev()
            .find(|(_, j)| {
                j.event_id == change.event_id.as_str() && !matches!(j.state, JobState::Failed)
            })
            .map(|(id, _)| id.clone()))
    }
}
