//! The Tripletex connector (API v2): finds the employee and the employment covering the
//! salary (one GET: the employee with its employments nested through `fields`), reads the
//! company's currency, checks and writes the salary on the employment's details rows (SPEC §3
//! "Tripletex").
//!
//! Invariants: one session is created at a time and shared by every caller (a 401 renews it
//! once, then the call is repeated once); the consumer, employee and session tokens never
//! appear in an error, a log line or a `Debug` print (paths are reported without their query);
//! amounts are exact decimals end to end, never floats; a delete never sends `null`, it sets
//! the amounts to 0 and the record stays.

mod classify;
mod wire;

pub use classify::{classify, Call};

use self::wire::{DetailsRow, DetailsWrite, IdRef, List, Single, Terms};
use super::credential::{Credential, CredentialCache};
use super::http::{network_error, path_only, retry_not_before};
use super::rate_budget::RateBudget;
use super::{Connector, Error, OverlapCheck, PayrollSystem};
use crate::domain::overlap::{first_conflicting_row, DatedRow};
use crate::domain::{
    ChangeKind, Currency, FailureCode, PayrollRecord, Period, PeriodUnit, Position, SalaryChange,
    WriteReport,
};
use crate::secret::Secret;
use async_trait::async_trait;
use chrono::{DateTime, Days, NaiveDate, NaiveTime, Utc};
use reqwest::header::{HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::Method;
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::fmt;
use std::sync::Arc;
use tokio::sync::OnceCell;

/// Tripletex's default and largest page.
const PAGE_SIZE_DEFAULT: u32 = 1000;
/// A listing longer than this many pages is refused rather than followed forever.
const PAGES_MAX: u32 = 1000;
/// PUT attempts on one details row when its `version` keeps moving (409 / 8000).
const PUT_ATTEMPTS_MAX: u32 = 2;
/// A request that finds the rate budget spent waits (an async sleep) for the reset when it is at
/// most this far away; a longer wait is handed back to the engine as `Error::Paced`, which frees
/// the worker for other integrations and runs the step again after the reset.
const PACE_SLEEP_MAX: std::time::Duration = std::time::Duration::from_secs(2);
/// The media type the spec declares for request bodies.
const JSON_UTF8: &str = "application/json; charset=utf-8";

/// The fields a match reads: the employee's keys and its employments' dates, nested in the one
/// answer so that a match is one round trip, not a second `GET /employee/employment`.
const EMPLOYEE_FIELDS: &str = "id,employeeNumber,email,employments(id,startDate,endDate)";

const MONTHLY_WAGE: &str = "MONTHLY_WAGE";
const HOURLY_WAGE: &str = "HOURLY_WAGE";

/// Sessions are asked for at least this many days. Tripletex checks `expirationDate` against
/// its own date, which is Norwegian: between midnight in Oslo and midnight UTC it is already
/// tomorrow's UTC date, so "tomorrow" (one day) was refused with 422 every night (issue 11).
const SESSION_DAYS_MIN: u32 = 2;

fn session_days_default() -> u32 {
    SESSION_DAYS_MIN
}

/// One Tripletex integration's connection settings.
#[derive(Clone, Deserialize)]
pub struct TripletexConfig {
    /// The API root, e.g. `https://tripletex.no/v2` (no trailing slash needed).
    pub base_url: String,
    pub consumer_token: Secret,
    pub employee_token: Secret,
    /// The Basic-auth user: a client company id for accountants, `0` (the token's own company)
    /// when absent.
    #[serde(default)]
    pub company: Option<String>,
    /// A new session token is valid for this many days (at least 2, the default).
    #[serde(default = "session_days_default")]
    pub session_days: u32,
}

impl fmt::Debug for TripletexConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TripletexConfig")
            .field("base_url", &path_only(&self.base_url))
            .field("consumer_token", &self.consumer_token)
            .field("employee_token", &self.employee_token)
            .field("company", &self.company)
            .field("session_days", &self.session_days)
            .finish()
    }
}

type Now = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

pub struct TripletexConnector {
    config: TripletexConfig,
    base: String,
    client: reqwest::Client,
    /// Held across the session create, so concurrent callers wait for one create.
    session: CredentialCache,
    /// The company's currency: a company setting, read once per connector.
    currency: OnceCell<Currency>,
    page_size: u32,
    now: Now,
    /// This integration's request-rate budget, learned from every answer's
    /// `X-Rate-Limit-Limit/Remaining/Reset` and consulted before every request.
    budget: RateBudget,
}

impl fmt::Debug for TripletexConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TripletexConnector")
            .field("config", &self.config)
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

/// One request, described without credentials.
struct Request {
    method: Method,
    /// The path below the API root, without a query: safe to report.
    path: String,
    query: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    call: Call,
}

impl Request {
    fn get(path: impl Into<String>) -> Self {
        Self {
            method: Method::GET,
            path: path.into(),
            query: Vec::new(),
            body: None,
            call: Call::Other,
        }
    }

    fn query(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.query.push((key, value.into()));
        self
    }

    fn with_body(mut self, method: Method, body: &DetailsWrite) -> Result<Self, Error> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| Error::Unexpected(format!("could not encode the request: {e}")))?;
        self.method = method;
        self.body = Some(bytes);
        Ok(self)
    }
}

/// An answer read in full.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

/// What the details row should hold after the write, in Tripletex's units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `None` for a delete (the type is left as it is).
    pub remuneration_type: Option<&'static str>,
    pub annual_salary: Option<Decimal>,
    pub hourly_wage: Option<Decimal>,
}

/// The HR salary in Tripletex's terms. HR amounts are full-time figures, as Tripletex's are,
/// so `percentageOfFullTimeEquivalent` is left alone.
pub fn target(change: &SalaryChange) -> Result<Target, Error> {
    let amount = change.salary.pay.amount;
    Ok(match (change.kind, change.salary.period_unit) {
        (ChangeKind::Deleted, _) => Target {
            remuneration_type: None,
            annual_salary: Some(Decimal::ZERO),
            hourly_wage: Some(Decimal::ZERO),
        },
        (_, PeriodUnit::Yearly) => Target {
            remuneration_type: Some(MONTHLY_WAGE),
            annual_salary: Some(amount),
            hourly_wage: None,
        },
        (_, PeriodUnit::Monthly) => Target {
            remuneration_type: Some(MONTHLY_WAGE),
            annual_salary: Some(amount.checked_mul(Decimal::from(12)).ok_or_else(|| {
                Error::Unexpected("the monthly amount is too large to convert to a year".into())
            })?),
            hourly_wage: None,
        },
        (_, PeriodUnit::Hourly) => Target {
            remuneration_type: Some(HOURLY_WAGE),
            annual_salary: None,
            hourly_wage: Some(amount),
        },
    })
}

/// HR fields Tripletex has no place for; they are dropped and the drop is noted.
pub fn dropped_fields(change: &SalaryChange) -> Vec<&'static str> {
    let mut dropped = Vec::new();
    if change.kind != ChangeKind::Deleted {
        if change.salary.end_date.is_some() {
            dropped.push("end_date");
        }
        if change.salary.note.is_some() {
            dropped.push("note");
        }
    }
    dropped
}

/// True for Tripletex's 422 naming `expirationDate` (its validation message names the field).
fn refuses_expiration_date(e: &crate::connectors::error::HttpError) -> bool {
    e.status == 422
        && e.vendor_message
            .as_deref()
            .is_some_and(|m| m.contains("expirationDate"))
}

/// A details row with its amounts read exactly.
#[derive(Debug, Clone)]
struct Row {
    id: i64,
    version: Option<i64>,
    date: Option<NaiveDate>,
    remuneration_type: Option<String>,
    annual_salary: Option<Decimal>,
    hourly_wage: Option<Decimal>,
    /// Every other writable field, as read: what a new row carries forward.
    terms: Terms,
}

impl Row {
    fn read(raw: DetailsRow) -> Result<Self, Error> {
        let id = raw.id;
        // The message names the field only: an amount never goes into an error.
        let amount = |field: &str, v: &Option<Box<serde_json::value::RawValue>>| match v {
            None => Ok(None),
            Some(raw) if raw.get() == "null" => Ok(None),
            Some(raw) => wire::decimal_from_raw(raw).map(Some).ok_or_else(|| {
                Error::Unexpected(format!(
                    "employment details row {id}: `{field}` is not a number"
                ))
            }),
        };
        Ok(Self {
            id: raw.id,
            version: raw.version,
            date: raw.date.as_deref().and_then(wire::date),
            remuneration_type: raw.remuneration_type.clone(),
            annual_salary: amount("annualSalary", &raw.annual_salary)?,
            hourly_wage: amount("hourlyWage", &raw.hourly_wage)?,
            terms: raw.terms(),
        })
    }

    /// True when the row holds a salary: an amount above 0. A cleared row (a delete) or a
    /// hiring row made without a salary holds none and is never a conflict.
    fn carries_salary(&self) -> bool {
        let positive = |v: Option<Decimal>| v.is_some_and(|d| d > Decimal::ZERO);
        positive(self.annual_salary) || positive(self.hourly_wage)
    }

    /// What the row holds, for an operator's message: its date and its kind of pay, never an
    /// amount.
    fn described(&self) -> String {
        let date = self
            .date
            .map_or_else(|| "no date".to_owned(), |d| format!("dated {d}"));
        let holds = match self.remuneration_type.as_deref() {
            _ if !self.carries_salary() => "no salary".to_owned(),
            Some(MONTHLY_WAGE) => "a fixed salary (MONTHLY_WAGE)".to_owned(),
            Some(HOURLY_WAGE) => "an hourly wage (HOURLY_WAGE)".to_owned(),
            Some(other) => format!("a salary of type {other}"),
            None => "a salary".to_owned(),
        };
        format!("details row {date}, holding {holds}")
    }

    /// True when the row holds what `target` describes on `date`.
    fn holds(&self, target: &Target, date: Option<NaiveDate>) -> bool {
        let zero_or_absent = |v: Option<Decimal>| v.is_none_or(|d| d.is_zero());
        if target.remuneration_type.is_none() {
            // A delete: both amounts cleared.
            return zero_or_absent(self.annual_salary) && zero_or_absent(self.hourly_wage);
        }
        let same_amount = |want: Option<Decimal>, have: Option<Decimal>| match want {
            None => true,
            Some(w) => have == Some(w),
        };
        date.is_none_or(|d| self.date == Some(d))
            && self.remuneration_type.as_deref() == target.remuneration_type
            && same_amount(target.annual_salary, self.annual_salary)
            && same_amount(target.hourly_wage, self.hourly_wage)
    }
}

fn amount_raw(amount: Option<Decimal>) -> Result<Option<Box<serde_json::value::RawValue>>, Error> {
    amount
        .map(wire::raw_from_decimal)
        .transpose()
        .map_err(|e| Error::Unexpected(format!("could not encode an amount: {e}")))
}

fn parse_id(id: &str, what: &str) -> Result<i64, Error> {
    id.trim()
        .parse::<i64>()
        .map_err(|_| Error::Unexpected(format!("{what} `{id}` is not a Tripletex id")))
}

impl TripletexConnector {
    /// A connector over the shared client (see `connectors::http::client`). No I/O happens
    /// until the first call.
    pub fn new(config: TripletexConfig, client: reqwest::Client) -> Self {
        let base = config.base_url.trim_end_matches('/').to_owned();
        Self {
            config,
            base,
            client,
            session: CredentialCache::default(),
            currency: OnceCell::new(),
            page_size: PAGE_SIZE_DEFAULT,
            now: Arc::new(Utc::now),
            budget: RateBudget::new("tripletex"),
        }
    }

    /// Names the integration in the rate-budget metrics (`salary_sync_rate_budget_*`).
    pub fn with_integration(mut self, integration: &str) -> Self {
        self.budget = RateBudget::new(integration);
        self
    }

    /// Replaces the wall clock (used for session expiry and Retry-After instants).
    pub fn with_clock(mut self, now: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        self.now = Arc::new(now);
        self
    }

    /// Lists are read in pages of this many rows (1..=1000).
    pub fn with_page_size(mut self, rows: u32) -> Self {
        self.page_size = rows.clamp(1, PAGE_SIZE_DEFAULT);
        self
    }

    fn user(&self) -> &str {
        self.config.company.as_deref().unwrap_or("0")
    }

    /// The cached session token, creating a session when there is none or it has expired.
    async fn session_token(&self) -> Result<Secret, Error> {
        let now = (self.now)();
        self.session
            .current(now, || self.create_session(now.date_naive()))
            .await
    }

    /// A new session after `stale` was refused, unless another caller already replaced it.
    async fn renew_session(&self, stale: &Secret) -> Result<Secret, Error> {
        let now = (self.now)();
        self.session
            .replace(stale, now, || self.create_session(now.date_naive()))
            .await
    }

    /// A session that expires `session_days` (at least 2) after `today`; it is renewed when
    /// that day begins (UTC). A 422 on `expirationDate` is Tripletex's date running ahead of
    /// ours, not a refusal of the tokens: the create is repeated once with a day more, and
    /// if Tripletex still refuses, the error is transient and says what it is (the
    /// integration is not marked unhealthy).
    async fn create_session(&self, today: NaiveDate) -> Result<Credential, Error> {
        let days = u64::from(self.config.session_days.max(SESSION_DAYS_MIN));
        let expires = today
            .checked_add_days(Days::new(days))
            .unwrap_or(NaiveDate::MAX);
        match self.create_session_until(expires).await {
            Err(Error::Http(e)) if refuses_expiration_date(&e) => {
                let later = expires.succ_opt().unwrap_or(NaiveDate::MAX);
                tracing::warn!(
                    system = "tripletex",
                    %expires,
                    "Tripletex refused the session's expiration date; asking for a day more"
                );
                match self.create_session_until(later).await {
                    Err(Error::Http(mut e)) if refuses_expiration_date(&e) => {
                        e.code = FailureCode::Unavailable;
                        e.class = crate::domain::FailureClass::Transient;
                        e.message = format!(
                            "Tripletex refused the session's expiration date {later} (HTTP 422 \
                             on expirationDate), which is {} days after salary-sync's UTC date \
                             {today}: Tripletex's date is further ahead than a time zone \
                             explains. This is not a token problem. Check this machine's clock; \
                             salary-sync retries on its own.",
                            days + 1
                        );
                        Err(Error::Http(e))
                    }
                    other => other,
                }
            }
            other => other,
        }
    }

    async fn create_session_until(&self, expires: NaiveDate) -> Result<Credential, Error> {
        let request = Request {
            method: Method::PUT,
            path: "/token/session/:create".into(),
            query: vec![
                (
                    "consumerToken",
                    self.config.consumer_token.expose().to_owned(),
                ),
                (
                    "employeeToken",
                    self.config.employee_token.expose().to_owned(),
                ),
                ("expirationDate", expires.format("%Y-%m-%d").to_string()),
            ],
            body: None,
            call: Call::SessionCreate,
        };
        let answer = self.send(&request, None).await?;
        let created: Single<wire::SessionToken> = self
            .decode(&request, answer)
            .map_err(|e| self.scrub_tokens(e))?;
        tracing::debug!(system = "tripletex", %expires, "session created");
        Ok(Credential {
            value: Secret::new(created.value.token),
            renew_at: expires.and_time(NaiveTime::MIN).and_utc(),
        })
    }

    /// Tripletex's answer to a refused session may quote what it was sent; the tokens are cut
    /// out of whatever it said before the error goes anywhere.
    fn scrub_tokens(&self, error: Error) -> Error {
        let tokens = [
            self.config.consumer_token.expose(),
            self.config.employee_token.expose(),
        ];
        let scrub = |text: &mut String| {
            for token in tokens.iter().filter(|t| !t.is_empty()) {
                *text = text.replace(token, "[redacted]");
            }
        };
        match error {
            Error::Http(mut e) => {
                scrub(&mut e.message);
                if let Some(m) = e.vendor_message.as_mut() {
                    scrub(m);
                }
                Error::Http(e)
            }
            Error::Unexpected(mut m) => {
                scrub(&mut m);
                Error::Unexpected(m)
            }
            other => other,
        }
    }

    /// Sends once, after the rate budget lets the request go; transport failures become
    /// `Error::Network`, a budget spent for longer than `PACE_SLEEP_MAX` `Error::Paced`.
    async fn send(&self, request: &Request, token: Option<&Secret>) -> Result<Answer, Error> {
        let ticket = match self.budget.acquire(PACE_SLEEP_MAX).await {
            Ok(ticket) => ticket,
            Err(at) => {
                let wait = at.saturating_duration_since(std::time::Instant::now());
                let now = (self.now)();
                // The wait is at most a day (the budget caps Reset), so this never saturates.
                let until = chrono::Duration::from_std(wait)
                    .ok()
                    .and_then(|d| now.checked_add_signed(d))
                    .unwrap_or(now);
                tracing::debug!(system = "tripletex", %until, "rate budget spent; step deferred");
                return Err(Error::Paced { until });
            }
        };
        let url = format!("{}{}", self.base, request.path);
        let mut builder = self
            .client
            .request(request.method.clone(), url)
            .header(ACCEPT, HeaderValue::from_static("application/json"));
        if !request.query.is_empty() {
            builder = builder.query(&request.query);
        }
        if let Some(token) = token {
            builder = builder.basic_auth(self.user(), Some(token.expose()));
        }
        if let Some(body) = &request.body {
            builder = builder
                .header(CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8))
                .body(body.clone());
        }
        let method = request.method.as_str();
        let response = builder.send().await.map_err(|e| {
            crate::metrics::payroll_answer("tripletex", 0);
            network_error(e, method, &request.path)
        })?;
        let status = response.status().as_u16();
        crate::metrics::payroll_answer("tripletex", status);
        let headers = response.headers().clone();
        ticket.settle(&headers);
        let body = response
            .bytes()
            .await
            .map_err(|e| network_error(e, method, &request.path))?
            .to_vec();
        tracing::debug!(system = "tripletex", method, path = %request.path, status, "call");
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// Sends with the session, renewing it once on a 401, and turns error answers into
    /// `Error::Http`.
    async fn call(&self, request: &Request) -> Result<Answer, Error> {
        let token = self.session_token().await?;
        let mut answer = self.send(request, Some(&token)).await?;
        if answer.status == 401 {
            let token = self.renew_session(&token).await?;
            answer = self.send(request, Some(&token)).await?;
        }
        Ok(answer)
    }

    /// `call`, then decode a 2xx body or classify an error answer.
    async fn fetch<T: DeserializeOwned>(&self, request: &Request) -> Result<T, Error> {
        let answer = self.call(request).await?;
        self.decode(request, answer)
    }

    fn decode<T: DeserializeOwned>(&self, request: &Request, answer: Answer) -> Result<T, Error> {
        if !(200..300).contains(&answer.status) {
            let request_id = answer
                .headers
                .get("x-tlx-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            return Err(Error::Http(Box::new(classify::http_error(
                answer.status,
                request.method.as_str(),
                &request.path,
                request_id,
                &answer.body,
                request.call,
                retry_not_before(&answer.headers, (self.now)()),
            ))));
        }
        serde_json::from_slice(&answer.body).map_err(|e| {
            Error::Unexpected(format!(
                "{} {}: the answer is not the JSON expected ({e}); report it to salary-sync's \
                 maintainers",
                request.method, request.path
            ))
        })
    }

    /// Every row of a list endpoint, following `from`/`count` pages.
    async fn list_all<T: DeserializeOwned>(&self, request: Request) -> Result<Vec<T>, Error> {
        let mut rows = Vec::new();
        let mut from: u64 = 0;
        for _ in 0..PAGES_MAX {
            let page = Request {
                method: request.method.clone(),
                path: request.path.clone(),
                query: request.query.clone(),
                body: None,
                call: request.call,
            }
            .query("from", from.to_string())
            .query("count", self.page_size.to_string());
            let list: List<T> = self.fetch(&page).await?;
            let n = list.values.len() as u64;
            rows.extend(list.values);
            from += n;
            let more = match list.full_result_size {
                Some(total) => from < total,
                None => n == u64::from(self.page_size),
            };
            if n == 0 || !more {
                return Ok(rows);
            }
        }
        Err(Error::Unexpected(format!(
            "GET {}: more than {PAGES_MAX} pages; refusing to read further",
            request.path
        )))
    }

    async fn details_rows(&self, employment_id: &str) -> Result<Vec<Row>, Error> {
        let id = parse_id(employment_id, "employment id")?;
        let raw: Vec<DetailsRow> = self
            .list_all(
                Request::get("/employee/employment/details").query("employmentId", id.to_string()),
            )
            .await?;
        raw.into_iter().map(Row::read).collect()
    }

    async fn details_row(&self, id: i64) -> Result<Row, Error> {
        let one: Single<DetailsRow> = self
            .fetch(&Request::get(format!("/employee/employment/details/{id}")))
            .await?;
        Row::read(one.value)
    }

    /// The Tripletex employee the HR salary names, by the first key HR gave, with its
    /// employments nested (one GET, by id or by search).
    async fn find_employee(&self, change: &SalaryChange) -> Result<wire::Employee, Error> {
        let who = &change.salary.employee;
        if let Some(id) = who.payroll_employee_id.as_deref() {
            let Ok(n) = id.trim().parse::<i64>() else {
                return Err(Error::NoEmployee(format!(
                    "The payroll employee id `{id}` from HR is not a Tripletex employee id (a \
                     number). Correct the employee's payroll id in HR, then retry."
                )));
            };
            let request = Request {
                call: Call::EmployeeById,
                ..Request::get(format!("/employee/{n}")).query("fields", EMPLOYEE_FIELDS)
            };
            return match self.fetch::<Single<wire::Employee>>(&request).await {
                Ok(found) => Ok(found.value),
                Err(Error::Http(e)) if e.code == FailureCode::NoEmployee => {
                    Err(Error::NoEmployee(format!(
                        "No Tripletex employee has id {n} (the payroll employee id HR gave for \
                         employee {}). Correct it in HR or check the employee exists in \
                         Tripletex, then retry.",
                        who.hr_id
                    )))
                }
                Err(e) => Err(e),
            };
        }
        let (key, param, value) = match (who.employee_number.as_deref(), who.email.as_deref()) {
            (Some(number), _) => ("employee number", "employeeNumber", number),
            (None, Some(email)) => ("email", "email", email),
            (None, None) => {
                return Err(Error::NoEmployee(format!(
                    "HR gave no payroll employee id, employee number or email for employee {}; \
                     add one in HR, then retry.",
                    who.hr_id
                )))
            }
        };
        let found: Vec<wire::Employee> = self
            .list_all(
                Request::get("/employee")
                    .query(param, value)
                    .query("fields", EMPLOYEE_FIELDS),
            )
            .await?;
        // Tripletex's search may match on part of a value: keep exact matches only.
        let mut exact: Vec<wire::Employee> = found
            .into_iter()
            .filter(|e| match param {
                "employeeNumber" => {
                    e.employee_number.as_deref().map(str::trim) == Some(value.trim())
                }
                _ => e
                    .email
                    .as_deref()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case(value.trim())),
            })
            .collect();
        if exact.len() > 1 {
            return Err(Error::NoEmployee(format!(
                "{} Tripletex employees have {key} `{value}` (ids {}); salary-sync cannot tell \
                 which is HR employee {}. Give the employee a payroll employee id in HR, then \
                 retry.",
                exact.len(),
                exact
                    .iter()
                    .map(|e| e.id.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                who.hr_id
            )));
        }
        exact.pop().ok_or_else(|| {
            Error::NoEmployee(format!(
                "No Tripletex employee has {key} `{value}` (HR employee {}). Check the {key} in \
                 HR, or that position sync created the employee in Tripletex, then retry.",
                who.hr_id
            ))
        })
    }

    /// Updates a details row: reads its current `version`, then PUTs. A version that moved in
    /// between (409 / 8000) is read again once; a second conflict is returned (transient).
    async fn put_row(
        &self,
        id: i64,
        mut body: impl FnMut(&Row) -> Result<DetailsWrite, Error>,
    ) -> Result<Row, Error> {
        let mut last = None;
        for _ in 0..PUT_ATTEMPTS_MAX {
            let current = self.details_row(id).await?;
            let write = body(&current)?;
            let request = Request::get(format!("/employee/employment/details/{id}"))
                .with_body(Method::PUT, &write)?;
            match self.fetch::<Single<DetailsRow>>(&request).await {
                Ok(done) => return Row::read(done.value),
                Err(Error::Http(e)) if e.code == FailureCode::RevisionConflict => {
                    last = Some(Error::Http(e));
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Unexpected("no PUT attempt was made".into())))
    }
}

#[async_trait]
impl Connector for TripletexConnector {
    fn system(&self) -> PayrollSystem {
        PayrollSystem::Tripletex
    }

    fn delete_keeps_record(&self) -> bool {
        true
    }

    fn paced(&self) -> bool {
        self.budget.paced_until().is_some()
    }

    async fn match_position(&self, change: &SalaryChange) -> Result<Position, Error> {
        let employee = self.find_employee(change).await?;
        let employee_id = employee.id;
        let employments = employee.employments.unwrap_or_default();
        let salary = change.salary.period();
        let mut seen: Vec<(i64, Option<Period>)> = employments
            .iter()
            .map(|e| {
                let start = e.start_date.as_deref().and_then(wire::date);
                let end = e.end_date.as_deref().and_then(wire::date);
                (e.id, start.map(|start| Period { start, end }))
            })
            .collect();
        seen.sort_by_key(|(id, p)| (p.map(|p| p.start), *id));
        // The employment in force on the salary's start date. HR often sends no end date, and
        // Tripletex's rows have none: a row is in force until the next one, and payroll stops
        // paying when the employment ends. So an employment that ends before the salary does
        // still takes it (the history says so, see `domain::step`); a salary whose start lies
        // in no employment does not match.
        let on_start = Period {
            start: salary.start,
            end: Some(salary.start),
        };
        if let Some((id, Some(period))) = seen
            .iter()
            .find(|(_, p)| p.is_some_and(|p| on_start.within(&p)))
        {
            return Ok(Position {
                employee_id: employee_id.to_string(),
                employment_id: id.to_string(),
                period: *period,
            });
        }
        let listed = if seen.is_empty() {
            "none".to_owned()
        } else {
            seen.iter()
                .map(|(id, p)| match p {
                    Some(p) => format!("{id} ({p})"),
                    None => format!("{id} (no start date)"),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        Err(Error::NoEmployment(format!(
            "Tripletex employee {employee_id} has no employment in force on the salary's start \
             date {} (salary period {salary}; employments seen: {listed}). Position sync must be active for salary sync \
             to work: make sure an employment in Tripletex covers the salary's start date, then retry.",
            salary.start
        )))
    }

    fn known_currency(&self) -> Option<Currency> {
        self.currency.get().copied()
    }

    async fn currency(&self) -> Result<Currency, Error> {
        self.currency
            .get_or_try_init(|| async {
                let me: Single<wire::WhoAmI> =
                    self.fetch(&Request::get("/token/session/>whoAmI")).await?;
                let company = me.value.company_id.ok_or_else(|| {
                    Error::Unexpected("GET /token/session/>whoAmI: no companyId".into())
                })?;
                let request =
                    Request::get(format!("/company/{company}")).query("fields", "currency(code)");
                let found: Single<wire::Company> = self.fetch(&request).await?;
                let code = found.value.currency.and_then(|c| c.code).ok_or_else(|| {
                    Error::Unexpected(format!("GET /company/{company}: no currency code"))
                })?;
                Currency::parse(&code)
                    .map_err(|m| Error::Unexpected(format!("GET /company/{company}: currency {m}")))
            })
            .await
            .copied()
    }

    async fn check_overlap(
        &self,
        change: &SalaryChange,
        position: &Position,
        owned: Option<&PayrollRecord>,
    ) -> Result<OverlapCheck, Error> {
        self.check_overlap_among(change, position, owned, &[]).await
    }

    async fn check_overlap_among(
        &self,
        change: &SalaryChange,
        position: &Position,
        owned: Option<&PayrollRecord>,
        siblings: &[PayrollRecord],
    ) -> Result<OverlapCheck, Error> {
        if change.kind == ChangeKind::Deleted {
            return Ok(OverlapCheck::Clear);
        }
        let rows = self.details_rows(&position.employment_id).await?;
        // A row is in force from its date until the next row's. The rule (domain::overlap):
        // a salary-bearing row salary-sync does not own, dated inside the salary period after
        // its start, or on the start day without being the employment's base (hiring) row.
        let dated: Vec<DatedRow> = rows
            .iter()
            .filter_map(|r| {
                r.date.map(|date| DatedRow {
                    id: r.id.to_string(),
                    date,
                    carries_salary: r.carries_salary(),
                })
            })
            .collect();
        let ours = |id: &str| {
            owned.is_some_and(|o| o.id == id)
                || siblings
                    .iter()
                    .any(|s| s.id == id && s.employment_id == position.employment_id)
        };
        let found =
            first_conflicting_row(&change.salary.period(), position.period.start, &dated, ours);
        Ok(match found {
            Some(conflict) => OverlapCheck::ConflictDescribed {
                record_id: conflict.id.clone(),
                date: conflict.date,
                description: rows
                    .iter()
                    .find(|r| r.id.to_string() == conflict.id)
                    .map(Row::described)
                    .unwrap_or_else(|| format!("dated {}", conflict.date)),
            },
            None => OverlapCheck::Clear,
        })
    }

    async fn find_written(
        &self,
        change: &SalaryChange,
        position: &Position,
        owned: Option<&PayrollRecord>,
    ) -> Result<Option<PayrollRecord>, Error> {
        let want = target(change)?;
        let date = (change.kind != ChangeKind::Deleted).then_some(change.salary.start_date);
        if let Some(owned) = owned {
            let id = parse_id(&owned.id, "record id")?;
            let row = match self.details_row(id).await {
                Ok(row) => row,
                Err(Error::Http(e)) if e.status == 404 => return Ok(None),
                Err(e) => return Err(e),
            };
            let employment_id = match change.kind {
                ChangeKind::Deleted => owned.employment_id.clone(),
                _ => position.employment_id.clone(),
            };
            return Ok(row.holds(&want, date).then(|| PayrollRecord {
                id: owned.id.clone(),
                employment_id,
            }));
        }
        if change.kind == ChangeKind::Deleted {
            return Ok(None);
        }
        let rows = self.details_rows(&position.employment_id).await?;
        Ok(rows
            .iter()
            .find(|r| r.holds(&want, date))
            .map(|r| PayrollRecord {
                id: r.id.to_string(),
                employment_id: position.employment_id.clone(),
            }))
    }

    async fn write(
        &self,
        change: &SalaryChange,
        position: &Position,
        owned: Option<&PayrollRecord>,
    ) -> Result<WriteReport, Error> {
        let want = target(change)?;
        let annual = amount_raw(want.annual_salary)?;
        let hourly = amount_raw(want.hourly_wage)?;
        let start = change.salary.start_date.format("%Y-%m-%d").to_string();

        if change.kind == ChangeKind::Deleted {
            let Some(owned) = owned else {
                return Err(Error::NothingToDelete(format!(
                    "Salary {} was deleted in HR, but salary-sync never wrote it to Tripletex; \
                     nothing was changed in payroll.",
                    change.salary.id
                )));
            };
            let id = parse_id(&owned.id, "record id")?;
            self.put_row(id, |row| {
                Ok(DetailsWrite::salary_only(
                    Some(id),
                    row.version,
                    None,
                    None,
                    None,
                    annual.clone(),
                    hourly.clone(),
                ))
            })
            .await?;
            return Ok(WriteReport {
                record: owned.clone(),
                adopted: false,
                dropped_fields: Vec::new(),
                record_remains_after_delete: true,
            });
        }

        let employment = parse_id(&position.employment_id, "employment id")?;
        let date = change.salary.start_date;
        let rows = self.details_rows(&position.employment_id).await?;
        let owned_row = owned
            .filter(|o| o.employment_id == position.employment_id)
            .and_then(|o| rows.iter().find(|r| r.id.to_string() == o.id));
        // The row already dated the start day: this salary's own, else the one found there.
        // The overlap step let the salary through, so that row is the employment's base
        // (hiring) row, one holding no salary (a delete's cleared row), or one salary-sync
        // wrote for another HR salary of the employee: the salary goes into it, in place.
        let same_day = owned_row
            .filter(|r| r.date == Some(date))
            .or_else(|| rows.iter().find(|r| r.date == Some(date)));
        // An update also zeroes the other amount, so a change of unit (hourly to monthly)
        // leaves no stale figure behind.
        let zero = amount_raw(Some(Decimal::ZERO))?;
        let written = match same_day.or(owned_row) {
            // A PUT is partial (the spec's PUT body: "Partial object describing what should be
            // updated"): only the salary fields (and the date, when the salary's own row
            // moves) are sent, so the row keeps every other term it has.
            Some(row) => {
                let id = row.id;
                let moves = row.date != Some(date);
                self.put_row(id, |current| {
                    Ok(DetailsWrite::salary_only(
                        Some(id),
                        current.version,
                        moves.then_some(IdRef { id: employment }),
                        moves.then(|| start.clone()),
                        want.remuneration_type,
                        annual.clone().or_else(|| zero.clone()),
                        hourly.clone().or_else(|| zero.clone()),
                    ))
                })
                .await?
            }
            // A new row is the employment's whole state from its date: it carries every
            // writable term of the row in force on that date (the latest row dated before it),
            // and changes only the salary fields.
            None => {
                let in_force = rows
                    .iter()
                    .filter(|r| r.date.is_some_and(|d| d < date))
                    .max_by_key(|r| (r.date, r.id));
                let body = DetailsWrite::salary_only(
                    None,
                    None,
                    Some(IdRef { id: employment }),
                    Some(start.clone()),
                    want.remuneration_type,
                    annual,
                    hourly,
                )
                .carrying(in_force.map(|r| r.terms.clone()).unwrap_or_default());
                let request =
                    Request::get("/employee/employment/details").with_body(Method::POST, &body)?;
                let created: Single<DetailsRow> = self.fetch(&request).await?;
                Row::read(created.value)?
            }
        };
        Ok(WriteReport {
            record: PayrollRecord {
                id: written.id.to_string(),
                employment_id: position.employment_id.clone(),
            },
            adopted: false,
            dropped_fields: dropped_fields(change),
            record_remains_after_delete: false,
        })
    }
}

#[cfg(test)]
mod tests;
