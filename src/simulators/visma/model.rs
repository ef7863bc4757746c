//! The simulated Visma.net Payroll tenant: seed types, employees, positions with their salary
//! timelines and versions (ETags), bearer tokens, and the asynchronous jobs a position PUT
//! starts, with the rules Visma applies when a job runs.
//!
//! Architecture Invariant: this module does no I/O and never reads the clock; the server
//! passes `now` in. Every operation either changes the state and returns the result, or
//! returns an [`ApiError`] and changes nothing. A PUT changes nothing but the job list: the
//! position changes only when its job completes (Visma: "until the job has executed, there is
//! no artifact").

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::faults::JobFate;
use super::wire::ApiError;

/// The warning Visma gives when a position PUT's salary entries lack `contractSalaryType`
/// (changelog 22.12.1.0).
pub const SALARY_NOT_PERFORMED: &str =
    "contractSalaryType has not been provided. Salary update was not performed.";

/// Everything the simulated tenant holds when the server starts. Plain data: build one in
/// code, start from [`Seed::demo`], or load one from JSON.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Seed {
    /// The tenant id the token endpoint requires (`tenant_id`).
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    /// When set, the token request's `scope` must contain it.
    #[serde(default)]
    pub scope: Option<String>,
    /// The tenant's currency (Visma.net Payroll Norway: NOK). Not served by any endpoint;
    /// kept so a test or the demo can configure the connector to match.
    pub currency: String,
    /// `expires_in` of a new token, in seconds; the token stops working after it.
    #[serde(default = "default_token_life_s")]
    pub token_life_s: u64,
    /// A job answers "Running" to this many polls before it completes...
    #[serde(default = "default_job_polls")]
    pub job_polls: u32,
    /// ...and completes no sooner than this long after it was created.
    #[serde(default)]
    pub job_delay_ms: u64,
    /// Where a list page carries its next-page token.
    #[serde(default)]
    pub cursor: CursorShape,
    pub employees: Vec<SeedEmployee>,
}

/// Where a list page carries the token of the next page, fetched again with `cursor=`.
/// `Nested` is the only cursor list model Visma publishes (`vismagroup/TransPA-Public-API-Client`,
/// `CursorDto`: `{"cursor":{"nextToken":..},"data":[..]}`, "use with the 'cursor=nextToken'
/// query parameter"); `TopLevel` (`{"data":[..],"nextCursor":..}`) is a plausible variant.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum CursorShape {
    #[default]
    Nested,
    TopLevel,
}

fn default_token_life_s() -> u64 {
    3600
}

fn default_job_polls() -> u32 {
    1
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SeedEmployee {
    /// A GUID.
    pub id: String,
    /// The employee number (a string).
    pub number: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub positions: Vec<SeedPosition>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SeedPosition {
    /// A GUID.
    pub id: String,
    pub active_start: NaiveDate,
    /// `None`: open-ended.
    pub active_end: Option<NaiveDate>,
    /// The salary timeline before the sync starts (entries a payroll clerk keyed in).
    #[serde(default)]
    pub salary: Vec<SalaryEntry>,
}

/// One `salaryInformation[]` entry as stored; what [`super::Control::salary_entries`] shows.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SalaryEntry {
    pub salary_type: String,
    pub contract_salary_type: Option<String>,
    #[serde(with = "rust_decimal::serde::str_option", default)]
    pub monthly_salary: Option<Decimal>,
    #[serde(with = "rust_decimal::serde::str_option", default)]
    pub hourly_salary: Option<Decimal>,
    #[serde(with = "rust_decimal::serde::str_option", default)]
    pub yearly_salary: Option<Decimal>,
    pub active_start: Option<NaiveDate>,
    pub active_end: Option<NaiveDate>,
}

impl SalaryEntry {
    /// A "Period" entry of `contract` type (`monthly`, `hourly`, `yearly`).
    pub fn period(
        contract: &str,
        amount: Decimal,
        start: Option<NaiveDate>,
        end: Option<NaiveDate>,
    ) -> Self {
        let mut e = Self {
            salary_type: "Period".into(),
            contract_salary_type: Some(contract.into()),
            monthly_salary: None,
            hourly_salary: None,
            yearly_salary: None,
            active_start: start,
            active_end: end,
        };
        match contract.to_ascii_lowercase().as_str() {
            "hourly" => e.hourly_salary = Some(amount),
            "yearly" => e.yearly_salary = Some(amount),
            _ => e.monthly_salary = Some(amount),
        }
        e
    }

    fn is_period(&self) -> bool {
        self.salary_type.eq_ignore_ascii_case("Period")
    }

    fn span(&self) -> String {
        let show = |d: Option<NaiveDate>, open: &str| d.map_or(open.to_string(), |d| d.to_string());
        format!(
            "{}..{}",
            show(self.active_start, "(start)"),
            show(self.active_end, "(open)")
        )
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Employee {
    pub id: String,
    pub number: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
}

#[derive(Clone, Debug)]
pub(crate) struct Position {
    pub id: String,
    pub employee_id: String,
    pub active_start: NaiveDate,
    pub active_end: Option<NaiveDate>,
    pub salary: Vec<SalaryEntry>,
    /// Goes up by one each time a job changes the position; the ETag is `"<version>"`.
    pub version: u64,
}

impl Position {
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.version)
    }
}

/// A job's status, with Visma's `statusCode` (only 4 = Succeeded is published; the others
/// are this simulator's choice).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobStatus {
    Queued,
    Running,
    Failed,
    Succeeded,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "Queued",
            Self::Running => "Running",
            Self::Failed => "Failed",
            Self::Succeeded => "Succeeded",
        }
    }

    pub fn code(self) -> u8 {
        match self {
            Self::Queued => 1,
            Self::Running => 2,
            Self::Failed => 3,
            Self::Succeeded => 4,
        }
    }
}

/// A validation result on a job.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct JobResult {
    pub severity: String,
    pub message: String,
}

/// A job as a test sees it through [`super::Control::jobs`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    pub id: String,
    pub employee_id: String,
    pub position_id: String,
    pub correlation_id: String,
    pub status: JobStatus,
    pub created: DateTime<Utc>,
    pub validation_results: Vec<JobResult>,
}

#[derive(Clone, Debug)]
pub(crate) struct Job {
    pub view: JobView,
    /// The `salaryInformation` the PUT asked for.
    pending: Vec<SalaryEntry>,
    fate: JobFate,
    created_at: Instant,
    polls: u32,
}

/// The whole simulated tenant. Guarded by one mutex in the server; no method awaits.
#[derive(Debug)]
pub(crate) struct Tenant {
    pub seed: Seed,
    pub employees: BTreeMap<String, Employee>,
    pub positions: BTreeMap<String, Position>,
    pub jobs: Vec<Job>,
    /// token -> when it stops working.
    pub tokens: HashMap<String, Instant>,
    pub tokens_issued: u64,
}

impl Tenant {
    /// Builds the tenant. Fails when the seed contradicts itself (duplicate ids).
    pub fn new(seed: Seed) -> Result<Self, String> {
        let mut employees = BTreeMap::new();
        let mut positions = BTreeMap::new();
        for e in &seed.employees {
            let employee = Employee {
                id: e.id.clone(),
                number: e.number.clone(),
                email: e.email.clone(),
                first_name: e.first_name.clone(),
                last_name: e.last_name.clone(),
            };
            if employees.insert(e.id.clone(), employee).is_some() {
                return Err(format!("seed: employee id {} used twice", e.id));
            }
            for p in &e.positions {
                let position = Position {
                    id: p.id.clone(),
                    employee_id: e.id.clone(),
                    active_start: p.active_start,
                    active_end: p.active_end,
                    salary: p.salary.clone(),
                    version: 1,
                };
                if let Err(problems) = validate(&position.salary) {
                    return Err(format!("seed: position {}: {}", p.id, problems.join("; ")));
                }
                if positions.insert(p.id.clone(), position).is_some() {
                    return Err(format!("seed: position id {} used twice", p.id));
                }
            }
        }
        Ok(Self {
            seed,
            employees,
            positions,
            jobs: Vec::new(),
            tokens: HashMap::new(),
            tokens_issued: 0,
        })
    }

    /// The token endpoint. `form` holds the decoded form fields.
    pub fn issue_token(
        &mut self,
        form: &HashMap<String, String>,
        now: Instant,
        token: String,
    ) -> Result<(String, u64), ApiError> {
        let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
        if field("grant_type") != "client_credentials" {
            return Err(ApiError::oauth(
                400,
                "unsupported_grant_type",
                "grant_type must be client_credentials",
            ));
        }
        if field("client_id") != self.seed.client_id
            || field("client_secret") != self.seed.client_secret
        {
            return Err(ApiError::oauth(
                401,
                "invalid_client",
                "Client authentication failed.",
            ));
        }
        if field("tenant_id") != self.seed.tenant_id {
            return Err(ApiError::oauth(
                400,
                "invalid_request",
                "Unknown tenant_id.",
            ));
        }
        if let Some(scope) = &self.seed.scope {
            if !field("scope").split(' ').any(|s| s == scope) {
                return Err(ApiError::oauth(
                    400,
                    "invalid_scope",
                    "The requested scope is not granted.",
                ));
            }
        }
        let life = self.seed.token_life_s;
        self.tokens
            .insert(token.clone(), now + Duration::from_secs(life));
        self.tokens_issued += 1;
        Ok((token, life))
    }

    pub fn authenticate(&self, token: &str, now: Instant) -> Result<(), ApiError> {
        match self.tokens.get(token) {
            Some(until) if *until > now => Ok(()),
            _ => Err(ApiError::new(
                401,
                "The access token is missing, invalid or expired.",
            )),
        }
    }

    pub fn expire_tokens(&mut self) {
        self.tokens.clear();
    }

    pub fn find_employees(&self, number: Option<&str>, email: Option<&str>) -> Vec<&Employee> {
        self.employees
            .values()
            .filter(|e| number.is_none_or(|n| e.number == n))
            .filter(|e| email.is_none_or(|m| e.email.eq_ignore_ascii_case(m)))
            .collect()
    }

    pub fn employee(&self, id: &str) -> Result<&Employee, ApiError> {
        self.employees
            .get(id)
            .ok_or_else(|| ApiError::new(404, format!("Employee {id} was not found.")))
    }

    pub fn positions_of(&self, employee_id: &str) -> Vec<&Position> {
        self.positions
            .values()
            .filter(|p| p.employee_id == employee_id)
            .collect()
    }

    pub fn position(&self, employee_id: &str, id: &str) -> Result<&Position, ApiError> {
        self.positions
            .get(id)
            .filter(|p| p.employee_id == employee_id)
            .ok_or_else(|| ApiError::new(404, format!("Position {id} was not found.")))
    }

    /// `PUT /employees/{e}/positions/{p}`: checks `If-Match` against the position's ETag and
    /// queues a job that will apply `salary` when it runs.
    #[allow(clippy::too_many_arguments)]
    pub fn put_position(
        &mut self,
        employee_id: &str,
        id: &str,
        if_match: Option<&str>,
        salary: Vec<SalaryEntry>,
        correlation_id: String,
        job_id: String,
        fate: JobFate,
        now: Instant,
        now_utc: DateTime<Utc>,
    ) -> Result<JobView, ApiError> {
        let position = self.position(employee_id, id)?;
        let Some(tag) = if_match else {
            return Err(ApiError::new(
                428,
                "If-Match is required: send the ETag of the position you read.",
            ));
        };
        let unquote = |t: &str| {
            t.trim()
                .trim_start_matches("W/")
                .trim_matches('"')
                .to_string()
        };
        if tag.trim() != "*" && unquote(tag) != unquote(&position.etag()) {
            return Err(ApiError::new(
                412,
                format!(
                    "Precondition failed: position {id} has ETag {}, the request sent {tag}. \
                     Read it again.",
                    position.etag()
                ),
            ));
        }
        let view = JobView {
            id: job_id,
            employee_id: employee_id.to_string(),
            position_id: id.to_string(),
            correlation_id,
            status: JobStatus::Queued,
            created: now_utc,
            validation_results: Vec::new(),
        };
        self.jobs.push(Job {
            view: view.clone(),
            pending: salary,
            fate,
            created_at: now,
            polls: 0,
        });
        Ok(view)
    }

    /// `GET .../jobs/{id}`: counts the poll, runs the job if it is due, and returns it.
    pub fn poll_job(
        &mut self,
        employee_id: &str,
        id: &str,
        now: Instant,
    ) -> Result<JobView, ApiError> {
        let index = self
            .jobs
            .iter()
            .position(|j| j.view.id == id && j.view.employee_id == employee_id)
            .ok_or_else(|| ApiError::new(404, format!("Job {id} was not found.")))?;
        self.settle_one(index, now);
        let job = &mut self.jobs[index];
        if matches!(job.view.status, JobStatus::Queued | JobStatus::Running) {
            job.polls = job.polls.saturating_add(1);
            job.view.status = JobStatus::Running;
        }
        Ok(job.view.clone())
    }

    /// An edit outside the API (Visma's UI): the position's version, and so its ETag, moves.
    pub fn touch(&mut self, position_id: &str) {
        if let Some(p) = self.positions.get_mut(position_id) {
            p.version += 1;
        }
    }

    pub fn jobs_of(&self, employee_id: &str) -> Vec<&JobView> {
        self.jobs
            .iter()
            .filter(|j| j.view.employee_id == employee_id)
            .map(|j| &j.view)
            .collect()
    }

    /// Runs every job that is due.
    pub fn settle(&mut self, now: Instant) {
        for i in 0..self.jobs.len() {
            self.settle_one(i, now);
        }
    }

    fn settle_one(&mut self, index: usize, now: Instant) {
        let (polls_needed, delay) = (
            self.seed.job_polls,
            Duration::from_millis(self.seed.job_delay_ms),
        );
        let Some(job) = self.jobs.get(index) else {
            return;
        };
        let open = matches!(job.view.status, JobStatus::Queued | JobStatus::Running);
        if !open || job.polls < polls_needed || now < job.created_at + delay {
            return;
        }
        let (position_id, pending, fate) =
            (job.view.position_id.clone(), job.pending.clone(), job.fate);
        let (status, results) = self.run(&position_id, pending, fate);
        if let Some(job) = self.jobs.get_mut(index) {
            job.view.status = status;
            job.view.validation_results = results;
        }
    }

    /// Applies a job's salary timeline as Visma would: validated, or refused with
    /// validation results, or skipped with the warning when `contractSalaryType` is missing.
    fn run(
        &mut self,
        position_id: &str,
        salary: Vec<SalaryEntry>,
        fate: JobFate,
    ) -> (JobStatus, Vec<JobResult>) {
        let error = |m: String| JobResult {
            severity: "Error".into(),
            message: m,
        };
        let warning = || JobResult {
            severity: "Warning".into(),
            message: SALARY_NOT_PERFORMED.into(),
        };
        match fate {
            JobFate::FailLate => {
                return (
                    JobStatus::Failed,
                    vec![error(
                        "Simulated late failure: the payroll period is locked for changes.".into(),
                    )],
                )
            }
            JobFate::SalaryNotPerformed => return (JobStatus::Succeeded, vec![warning()]),
            JobFate::Normal => {}
        }
        let Some(position) = self.positions.get_mut(position_id) else {
            return (
                JobStatus::Failed,
                vec![error(format!("Position {position_id} no longer exists."))],
            );
        };
        if salary
            .iter()
            .any(|e| e.is_period() && e.contract_salary_type.is_none())
        {
            return (JobStatus::Succeeded, vec![warning()]);
        }
        if let Err(problems) = validate(&salary) {
            return (JobStatus::Failed, problems.into_iter().map(error).collect());
        }
        position.salary = salary;
        position.version += 1;
        (JobStatus::Succeeded, Vec::new())
    }
}

/// The timeline rules: each "Period" entry names its contract type's amount; sorted by
/// start, the entries neither overlap nor leave a gap; only the first may lack a start and
/// only the last may be open-ended.
pub(crate) fn validate(salary: &[SalaryEntry]) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    let mut period: Vec<&SalaryEntry> = salary.iter().filter(|e| e.is_period()).collect();
    for e in &period {
        if let Some(c) = &e.contract_salary_type {
            let amount = match c.to_ascii_lowercase().as_str() {
                "monthly" => e.monthly_salary,
                "hourly" => e.hourly_salary,
                "yearly" => e.yearly_salary,
                other => {
                    problems.push(format!(
                        "salaryInformation {}: contractSalaryType `{other}` is not monthly, hourly or yearly.",
                        e.span()
                    ));
                    continue;
                }
            };
            if amount.is_none() {
                problems.push(format!(
                    "salaryInformation {}: contractSalaryType {c} needs {}Salary.",
                    e.span(),
                    c.to_ascii_lowercase()
                ));
            }
        }
        if let (Some(s), Some(end)) = (e.active_start, e.active_end) {
            if end < s {
                problems.push(format!(
                    "salaryInformation {}: activeEnd is before activeStart.",
                    e.span()
                ));
            }
        }
    }
    period.sort_by_key(|e| e.active_start);
    for pair in period.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let next = a.active_end.and_then(|end| end.succ_opt());
        match (next, b.active_start) {
            (_, None) => problems.push(format!(
                "salaryInformation {}: only the first entry may lack activeStart.",
                b.span()
            )),
            (None, Some(_)) => problems.push(format!(
                "salaryInformation {} overlaps {}: an open-ended entry must be the last.",
                a.span(),
                b.span()
            )),
            (Some(n), Some(s)) if s < n => problems.push(format!(
                "salaryInformation {} overlaps {}.",
                a.span(),
                b.span()
            )),
            (Some(n), Some(s)) if s > n => problems.push(format!(
                "salaryInformation has a gap between {} and {}: the timeline allows no gaps.",
                a.span(),
                b.span()
            )),
            _ => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// A GUID-shaped id from a small number, so seeds are readable: `…-000000000101`.
pub fn guid(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    // Literals below; an invalid one is a bug in this file, caught by the demo-seed test.
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or(NaiveDate::MIN)
}

impl Seed {
    /// The same cast as the Tripletex demo seed (tenant `demo-tenant`, client `demo-client` /
    /// `demo-client-secret`, currency NOK). Ids are GUIDs made by [`guid`]:
    ///
    /// | employee | number | e-mail | positions | salary timeline |
    /// |---|---|---|---|---|
    /// | guid(101) Kari Nordmann | 17 | kari@example.no | guid(201) from 2020-01-01, open | empty |
    /// | guid(102) Ola Hansen | 18 | ola@example.no | guid(202) 2019-03-01 .. 2023-12-31, guid(203) from 2024-01-01, open | empty |
    /// | guid(103) Per Olsen | 19 | per@example.no | guid(204) from 2021-06-01, open | monthly 50 000 from 2026-01-01, open: a foreign entry that provokes an overlap |
    /// | guid(104) Lise Berg | 20 | lise@example.no | none (salary sync has nothing to match) | |
    /// | guid(105) Nils Dahl | 21 | nils@example.no | guid(205) from 2022-02-01, open | empty (hourly worker) |
    pub fn demo() -> Self {
        let employee = |n: u64, number: &str, first: &str, last: &str, positions| SeedEmployee {
            id: guid(n),
            number: number.into(),
            email: format!("{}@example.no", first.to_lowercase()),
            first_name: first.into(),
            last_name: last.into(),
            positions,
        };
        let open = |n: u64, start: NaiveDate| SeedPosition {
            id: guid(n),
            active_start: start,
            active_end: None,
            salary: Vec::new(),
        };
        Self {
            tenant_id: "demo-tenant".into(),
            client_id: "demo-client".into(),
            client_secret: "demo-client-secret".into(),
            scope: None,
            currency: "NOK".into(),
            token_life_s: default_token_life_s(),
            job_polls: default_job_polls(),
            job_delay_ms: 0,
            cursor: CursorShape::Nested,
            employees: vec![
                employee(
                    101,
                    "17",
                    "Kari",
                    "Nordmann",
                    vec![open(201, date(2020, 1, 1))],
                ),
                employee(
                    102,
                    "18",
                    "Ola",
                    "Hansen",
                    vec![
                        SeedPosition {
                            id: guid(202),
                            active_start: date(2019, 3, 1),
                            active_end: Some(date(2023, 12, 31)),
                            salary: Vec::new(),
                        },
                        open(203, date(2024, 1, 1)),
                    ],
                ),
                employee(
                    103,
                    "19",
                    "Per",
                    "Olsen",
                    vec![SeedPosition {
                        salary: vec![SalaryEntry::period(
                            "monthly",
                            Decimal::from(50_000),
                            Some(date(2026, 1, 1)),
                            None,
                        )],
                        ..open(204, date(2021, 6, 1))
                    }],
                ),
                employee(104, "20", "Lise", "Berg", vec![]),
                employee(105, "21", "Nils", "Dahl", vec![open(205, date(2022, 2, 1))]),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_else(|e| panic!("{e}"))
    }

    fn tenant() -> Tenant {
        Tenant::new(Seed::demo()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn put(t: &mut Tenant, salary: Vec<SalaryEntry>, fate: JobFate, now: Instant) -> JobView {
        let tag = t
            .position(&guid(101), &guid(201))
            .map(Position::etag)
            .unwrap_or_default();
        t.put_position(
            &guid(101),
            &guid(201),
            Some(&tag),
            salary,
            "corr".into(),
            format!("job-{}", t.jobs.len()),
            fate,
            now,
            Utc::now(),
        )
        .unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn demo_seed_is_consistent() {
        let t = tenant();
        assert_eq!(t.employees.len(), 5);
        assert_eq!(t.positions.len(), 5);
        assert!(t
            .positions
            .values()
            .all(|p| p.active_start > NaiveDate::MIN));
        assert_eq!(t.positions[&guid(204)].salary.len(), 1);
    }

    #[test]
    fn a_job_applies_after_its_polls_and_bumps_the_etag() {
        let mut t = tenant();
        let now = Instant::now();
        let entry = SalaryEntry::period(
            "monthly",
            Decimal::new(5_200_000, 2),
            Some(d("2026-01-01")),
            None,
        );
        let job = put(&mut t, vec![entry.clone()], JobFate::Normal, now);
        assert!(
            t.positions[&guid(201)].salary.is_empty(),
            "nothing before the job runs"
        );
        let first = t
            .poll_job(&guid(101), &job.id, now)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(first.status, JobStatus::Running);
        let second = t
            .poll_job(&guid(101), &job.id, now)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(second.status, JobStatus::Succeeded);
        assert_eq!(t.positions[&guid(201)].salary, vec![entry]);
        assert_eq!(t.positions[&guid(201)].version, 2);
        // The stale ETag is now refused.
        let stale = t.put_position(
            &guid(101),
            &guid(201),
            Some("\"1\""),
            Vec::new(),
            "c".into(),
            "j".into(),
            JobFate::Normal,
            now,
            Utc::now(),
        );
        assert_eq!(stale.err().map(|e| e.status), Some(412));
    }

    #[test]
    fn overlaps_gaps_and_missing_amounts_fail_the_job() {
        let a = SalaryEntry::period(
            "monthly",
            Decimal::ONE,
            Some(d("2025-01-01")),
            Some(d("2025-12-31")),
        );
        let gap = SalaryEntry::period("monthly", Decimal::TWO, Some(d("2026-02-01")), None);
        assert!(validate(&[a.clone(), gap]).is_err_and(|p| p[0].contains("gap")));
        let overlap = SalaryEntry::period("monthly", Decimal::TWO, Some(d("2025-06-01")), None);
        assert!(validate(&[a.clone(), overlap]).is_err_and(|p| p[0].contains("overlaps")));
        let next = SalaryEntry::period("hourly", Decimal::TWO, Some(d("2026-01-01")), None);
        assert!(validate(&[a.clone(), next.clone()]).is_ok());
        let mut no_amount = next;
        no_amount.hourly_salary = None;
        assert!(validate(&[a, no_amount]).is_err());

        let mut t = tenant();
        let now = Instant::now();
        let open1 = SalaryEntry::period("monthly", Decimal::ONE, Some(d("2025-01-01")), None);
        let open2 = SalaryEntry::period("monthly", Decimal::ONE, Some(d("2026-01-01")), None);
        let job = put(&mut t, vec![open1, open2], JobFate::Normal, now);
        t.poll_job(&guid(101), &job.id, now).ok();
        let done = t
            .poll_job(&guid(101), &job.id, now)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(done.status, JobStatus::Failed);
        assert!(!done.validation_results.is_empty());
        assert!(t.positions[&guid(201)].salary.is_empty());
    }

    #[test]
    fn a_missing_contract_type_skips_the_salary_with_a_warning() {
        let mut t = tenant();
        let now = Instant::now();
        let mut e = SalaryEntry::period("monthly", Decimal::ONE, Some(d("2026-01-01")), None);
        e.contract_salary_type = None;
        let job = put(&mut t, vec![e], JobFate::Normal, now);
        t.poll_job(&guid(101), &job.id, now).ok();
        let done = t
            .poll_job(&guid(101), &job.id, now)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(done.status, JobStatus::Succeeded);
        assert_eq!(done.validation_results[0].message, SALARY_NOT_PERFORMED);
        assert!(t.positions[&guid(201)].salary.is_empty());
    }

    #[test]
    fn tokens_check_credentials_and_expire() {
        let mut t = tenant();
        let now = Instant::now();
        let mut form: HashMap<String, String> = [
            ("grant_type", "client_credentials"),
            ("client_id", "demo-client"),
            ("client_secret", "wrong"),
            ("tenant_id", "demo-tenant"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            t.issue_token(&form, now, "t".into())
                .err()
                .map(|e| e.status),
            Some(401)
        );
        form.insert("client_secret".into(), "demo-client-secret".into());
        let (token, life) = t
            .issue_token(&form, now, "t".into())
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(life, 3600);
        assert!(t.authenticate(&token, now).is_ok());
        assert!(t
            .authenticate(&token, now + Duration::from_secs(3601))
            .is_err());
        t.expire_tokens();
        assert!(t.authenticate(&token, now).is_err());
    }
}
