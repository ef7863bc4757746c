//! The Unimicro connector (Uni Economy API): finds the employee and the employment covering
//! the salary, reads the company's base currency, and checks and writes the salary as a dated
//! pay-rate record nested in the employment (SPEC §3 "Unimicro"; the record's API name is not
//! published, see `payrate.rs`, the one place that assumption lives).
//!
//! Invariants: one bearer token is fetched at a time and shared by every caller; it is used
//! until shortly before it expires, and a 401 renews it once and repeats the request once (a
//! second 401 is that request's error, not the integration's: see `classify.rs`). The client
//! id and secret and the token never appear in an error, a log line or a `Debug` print.
//! Every insert carries a `_createguid` fixed per workflow, so a replay after a crash cannot
//! insert twice; a delete is a save of the employment with the record marked `Deleted`, never
//! a `DELETE` of the employment. Amounts are exact decimals end to end.

pub mod assertion;
mod classify;
pub mod payrate;
mod wire;

pub use classify::{classify, Call};
pub use wire::createguid;

use self::payrate::{EmploymentRates, PayRate, RateType};
use super::credential::{Credential, CredentialCache};
use super::http::{network_error, path_only, retry_not_before};
use super::{Connector, Error, OverlapCheck, PayrollSystem};
use crate::domain::overlap::{first_conflict, ExistingRecord};
use crate::domain::{
    ChangeKind, Currency, PayrollRecord, Period, PeriodUnit, Position, SalaryChange, WriteReport,
};
use crate::secret::Secret;
use async_trait::async_trait;
use chrono::{DateTime, Days, Duration, NaiveDate, Utc};
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::fmt;
use std::sync::Arc;
use tokio::sync::OnceCell;

/// Rows per page of a list (`top`).
const PAGE_SIZE_DEFAULT: u32 = 100;
/// The largest `top` asked for.
const PAGE_SIZE_MAX: u32 = 1000;
/// A listing longer than this many pages is refused rather than followed forever.
const PAGES_MAX: u32 = 1000;
/// A token is renewed this long before it expires (or at half its life, if that is shorter).
const TOKEN_MARGIN_S: i64 = 60;
/// Assumed token life when the token endpoint does not say.
const TOKEN_LIFE_DEFAULT_S: i64 = 3600;
/// The header Unimicro reads the company from.
const COMPANY_KEY: &str = "CompanyKey";
/// Not published; read when present (the simulator sends it).
const REQUEST_ID: &str = "x-request-id";
const JSON_UTF8: &str = "application/json; charset=utf-8";

fn scope_default() -> String {
    "AppFramework".into()
}

/// One Unimicro integration's connection settings.
#[derive(Clone, Deserialize)]
pub struct UnimicroConfig {
    /// The API root, e.g. `https://test-api.unieconomy.no` (routes are `/api/biz/...`).
    pub base_url: String,
    /// The OAuth2 token endpoint, e.g. `https://test-login.unieconomy.no/connect/token`.
    pub token_url: String,
    /// The company's key, sent as the `CompanyKey` header on every call.
    pub company_key: String,
    pub client_id: Secret,
    /// Used when no `assertion` key is given.
    pub client_secret: Secret,
    #[serde(default = "scope_default")]
    pub scope: String,
    /// The certificate-signed client assertion (server-to-server); replaces the secret.
    #[serde(skip)]
    pub assertion: Option<Arc<assertion::AssertionKey>>,
}

impl fmt::Debug for UnimicroConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnimicroConfig")
            .field("base_url", &path_only(&self.base_url))
            .field("token_url", &path_only(&self.token_url))
            .field("company_key", &self.company_key)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("scope", &self.scope)
            .field("assertion", &self.assertion)
            .finish()
    }
}

type Now = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

pub struct UnimicroConnector {
    config: UnimicroConfig,
    base: String,
    client: reqwest::Client,
    /// Held across the token fetch, so concurrent callers wait for one fetch.
    credential: CredentialCache,
    /// The company's base currency, read once per connector.
    currency: OnceCell<Currency>,
    page_size: u32,
    now: Now,
}

impl fmt::Debug for UnimicroConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnimicroConnector")
            .field("config", &self.config)
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

/// One API request, described without credentials.
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

    fn call(mut self, call: Call) -> Self {
        self.call = call;
        self
    }

    fn put(path: impl Into<String>, body: &EmploymentRates) -> Result<Self, Error> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| Error::Unexpected(format!("could not encode the request: {e}")))?;
        Ok(Self {
            method: Method::PUT,
            body: Some(bytes),
            ..Self::get(path)
        })
    }
}

/// An answer read in full.
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

/// What the pay-rate record should hold after a create or update, in Unimicro's terms. The
/// HR unit maps one to one (yearly -> annual), so no amount is converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub rate_type: RateType,
    pub rate: Decimal,
    pub from_date: NaiveDate,
}

pub fn target(change: &SalaryChange) -> Target {
    Target {
        rate_type: match change.salary.period_unit {
            PeriodUnit::Monthly => RateType::Monthly,
            PeriodUnit::Yearly => RateType::Annual,
            PeriodUnit::Hourly => RateType::Hourly,
        },
        rate: change.salary.pay.amount,
        from_date: change.salary.start_date,
    }
}

/// HR fields the pay-rate record has no place for: a rate is in force until the next one, so
/// an end date cannot be held, and the record has no note. Dropped and noted in history.
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

/// A pay-rate record with its amount read exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rate {
    pub id: i64,
    pub from_date: Option<NaiveDate>,
    pub rate: Option<Decimal>,
    pub rate_type: Option<RateType>,
    pub deleted: bool,
    pub createguid: Option<String>,
}

impl Rate {
    fn read(raw: &PayRate, employment: i64) -> Result<Self, Error> {
        let id = raw.id.ok_or_else(|| {
            Error::Unexpected(format!(
                "employment {employment}: a {} record has no ID",
                payrate::COLLECTION
            ))
        })?;
        let rate = match raw.rate.as_deref() {
            None => None,
            Some(r) if r.get() == "null" => None,
            // The message names the field only: an amount never goes into an error.
            Some(r) => Some(wire::decimal_from_raw(r).ok_or_else(|| {
                Error::Unexpected(format!(
                    "employment {employment}: pay-rate record {id}: `Rate` is not a number"
                ))
            })?),
        };
        Ok(Self {
            id,
            from_date: raw.from_date.as_deref().and_then(wire::date),
            rate,
            rate_type: raw.rate_type.as_deref().and_then(RateType::parse),
            deleted: raw.deleted.unwrap_or(false),
            createguid: raw.createguid.clone(),
        })
    }

    /// True when the record holds exactly `target` (same date, type and amount).
    pub fn holds(&self, target: &Target) -> bool {
        !self.deleted
            && self.from_date == Some(target.from_date)
            && self.rate_type == Some(target.rate_type)
            && self.rate == Some(target.rate)
    }
}

/// The overlap rule for dated rates. A record is in force from its `FromDate` until the day
/// before the next record's. A foreign record dated before the salary's start is simply
/// superseded from the start date on (our record ends its reign), so it is no conflict; a
/// foreign record dated on or after the start and not after the salary's end would override
/// the salary inside its period, so it is. Returns the first such record (by date) and the
/// period it is in force, for the operator.
pub fn conflict(
    salary: &Period,
    rates: &[Rate],
    owned_id: Option<i64>,
    ours: &str,
) -> Option<(i64, Period)> {
    let mut live: Vec<&Rate> = rates.iter().filter(|r| !r.deleted).collect();
    live.sort_by_key(|r| (r.from_date, r.id));
    // Each record as the single day it takes effect: the shared rule then says "dated inside
    // the salary period".
    let records: Vec<ExistingRecord> = live
        .iter()
        .filter(|r| r.createguid.as_deref() != Some(ours))
        .filter_map(|r| {
            r.from_date.map(|d| ExistingRecord {
                id: r.id.to_string(),
                period: Period {
                    start: d,
                    end: Some(d),
                },
            })
        })
        .collect();
    let owned = owned_id.map(|id| id.to_string());
    let hit = first_conflict(salary, &records, owned.as_deref())?;
    let start = hit.period.start;
    let end = live
        .iter()
        .filter_map(|r| r.from_date)
        .filter(|d| *d > start)
        .min()
        .and_then(|next| next.checked_sub_days(Days::new(1)));
    let id = hit.id.parse().ok()?;
    Some((id, Period { start, end }))
}

fn parse_id(id: &str, what: &str) -> Result<i64, Error> {
    id.trim()
        .parse::<i64>()
        .map_err(|_| Error::Unexpected(format!("{what} `{id}` is not a Unimicro id")))
}

impl UnimicroConnector {
    /// A connector over the shared client (see `connectors::http::client`). No I/O happens
    /// until the first call.
    pub fn new(config: UnimicroConfig, client: reqwest::Client) -> Self {
        let base = config.base_url.trim_end_matches('/').to_owned();
        Self {
            config,
            base,
            client,
            credential: CredentialCache::default(),
            currency: OnceCell::new(),
            page_size: PAGE_SIZE_DEFAULT,
            now: Arc::new(Utc::now),
        }
    }

    /// Replaces the wall clock (used for token expiry and Retry-After instants).
    pub fn with_clock(mut self, now: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        self.now = Arc::new(now);
        self
    }

    /// Lists are read in pages of this many rows (1..=1000).
    pub fn with_page_size(mut self, rows: u32) -> Self {
        self.page_size = rows.clamp(1, PAGE_SIZE_MAX);
        self
    }

    /// The cached token, fetching one when there is none or it is about to expire.
    async fn bearer(&self) -> Result<Secret, Error> {
        let now = (self.now)();
        self.credential.current(now, || self.fetch_token(now)).await
    }

    /// A new token after `stale` was refused, unless another caller already replaced it.
    async fn renew(&self, stale: &Secret) -> Result<Secret, Error> {
        let now = (self.now)();
        self.credential
            .replace(stale, now, || self.fetch_token(now))
            .await
    }

    /// OAuth2 client credentials (RFC 6749 §4.4) with the secret in the form body.
    async fn fetch_token(&self, now: DateTime<Utc>) -> Result<Credential, Error> {
        let path = path_only(&self.config.token_url).to_owned();
        let body = match &self.config.assertion {
            Some(key) => {
                let jti = format!("{}-{}", now.timestamp_millis(), rand::random::<u64>());
                let jwt = key
                    .sign(
                        self.config.client_id.expose(),
                        &self.config.token_url,
                        now,
                        &jti,
                    )
                    .map_err(|e| Error::Unexpected(format!("client assertion: {e}")))?;
                wire::form_encode(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", self.config.client_id.expose()),
                    ("client_assertion_type", assertion::ASSERTION_TYPE),
                    ("client_assertion", &jwt),
                    ("scope", &self.config.scope),
                ])
            }
            None => wire::form_encode(&[
                ("grant_type", "client_credentials"),
                ("client_id", self.config.client_id.expose()),
                ("client_secret", self.config.client_secret.expose()),
                ("scope", &self.config.scope),
            ]),
        };
        let response = self
            .client
            .post(&self.config.token_url)
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            )
            .body(body)
            .send()
            .await
            .map_err(|e| network_error(e, "POST", &path))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| network_error(e, "POST", &path))?;
        let answer = Answer {
            status,
            headers,
            body: bytes.to_vec(),
        };
        let request = Request {
            method: Method::POST,
            path: path.clone(),
            query: Vec::new(),
            body: None,
            call: Call::Token,
        };
        let token: wire::TokenAnswer = self
            .decode(&request, answer)
            .map_err(|e| self.scrub_credentials(e))?;
        if token.access_token.is_empty() {
            return Err(Error::Unexpected(format!(
                "POST {path}: an empty access_token"
            )));
        }
        let life = token
            .expires_in
            .filter(|s| *s > 0)
            .unwrap_or(TOKEN_LIFE_DEFAULT_S);
        let use_for = (life - TOKEN_MARGIN_S).max(life / 2);
        tracing::debug!(system = "unimicro", life_s = life, "token fetched");
        Ok(Credential {
            value: Secret::new(token.access_token),
            renew_at: now + Duration::seconds(use_for),
        })
    }

    /// The token endpoint may quote what it was sent; the credentials are cut out of whatever
    /// it said before the error goes anywhere.
    fn scrub_credentials(&self, error: Error) -> Error {
        let secrets = [
            self.config.client_secret.expose(),
            self.config.client_id.expose(),
        ];
        let scrub = |text: &mut String| {
            for s in secrets.iter().filter(|s| !s.is_empty()) {
                *text = text.replace(s, "[redacted]");
            }
        };
        match error {
            Error::Http(mut e) => {
                scrub(&mut e.message);
                if let Some(m) = e.vendor_message.as_mut() {
                    scrub(m);
                }
                if let Some(m) = e.vendor_code.as_mut() {
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

    /// Sends once with `token` and the company key; transport failures become
    /// `Error::Network`.
    async fn send(&self, request: &Request, token: &Secret) -> Result<Answer, Error> {
        let url = format!("{}{}", self.base, request.path);
        let bearer = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
            .map_err(|_| Error::Unexpected("the token is not a valid header value".into()))?;
        let company = HeaderValue::from_str(&self.config.company_key).map_err(|_| {
            Error::Unexpected(
                "company_key is not a valid header value; correct it in the \
                configuration"
                    .into(),
            )
        })?;
        let mut builder = self
            .client
            .request(request.method.clone(), url)
            .header(ACCEPT, HeaderValue::from_static("application/json"))
            .header(AUTHORIZATION, bearer)
            .header(COMPANY_KEY, company);
        if !request.query.is_empty() {
            builder = builder.query(&request.query);
        }
        if let Some(body) = &request.body {
            builder = builder
                .header(CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8))
                .body(body.clone());
        }
        let method = request.method.as_str();
        let response = builder.send().await.map_err(|e| {
            crate::metrics::payroll_answer("unimicro", 0);
            network_error(e, method, &request.path)
        })?;
        let status = response.status().as_u16();
        crate::metrics::payroll_answer("unimicro", status);
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| network_error(e, method, &request.path))?
            .to_vec();
        tracing::debug!(system = "unimicro", method, path = %request.path, status, "call");
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// Sends with the token; a 401 renews the token once and repeats the request once.
    async fn call(&self, request: &Request) -> Result<Answer, Error> {
        let token = self.bearer().await?;
        let answer = self.send(request, &token).await?;
        if answer.status != 401 {
            return Ok(answer);
        }
        let token = self.renew(&token).await?;
        self.send(request, &token).await
    }

    async fn fetch<T: DeserializeOwned>(&self, request: &Request) -> Result<T, Error> {
        let answer = self.call(request).await?;
        self.decode(request, answer)
    }

    fn decode<T: DeserializeOwned>(&self, request: &Request, answer: Answer) -> Result<T, Error> {
        if !(200..300).contains(&answer.status) {
            let request_id = answer
                .headers
                .get(REQUEST_ID)
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

    /// Every row of a list, paging with `top`/`skip` until a short page.
    async fn list_all<T: DeserializeOwned>(&self, request: Request) -> Result<Vec<T>, Error> {
        let mut rows = Vec::new();
        let mut skip: u64 = 0;
        for _ in 0..PAGES_MAX {
            let page = Request {
                method: request.method.clone(),
                path: request.path.clone(),
                query: request.query.clone(),
                body: None,
                call: request.call,
            }
            .query("top", self.page_size.to_string())
            .query("skip", skip.to_string());
            let list: Vec<T> = self.fetch(&page).await?;
            let n = list.len() as u64;
            rows.extend(list);
            skip += n;
            if n < u64::from(self.page_size) {
                return Ok(rows);
            }
        }
        Err(Error::Unexpected(format!(
            "GET {}: more than {PAGES_MAX} pages; refusing to read further",
            request.path
        )))
    }

    /// The Unimicro employee the HR salary names, by the first key HR gave: the payroll
    /// employee id (`ID`), else the employee number (`EmployeeNumber`), else the email
    /// (`BusinessRelationInfo.DefaultEmail.EmailAddress`).
    async fn find_employee(&self, change: &SalaryChange) -> Result<i64, Error> {
        let who = &change.salary.employee;
        let not_a_number = |key: &str, value: &str| {
            Error::NoEmployee(format!(
                "The {key} `{value}` from HR is not a Unimicro {key} (a number). Correct it \
                 in HR, then retry."
            ))
        };
        let (key, filter, value) = match (
            who.payroll_employee_id.as_deref(),
            who.employee_number.as_deref(),
            who.email.as_deref(),
        ) {
            (Some(id), _, _) => {
                let n: i64 = id
                    .trim()
                    .parse()
                    .map_err(|_| not_a_number("employee id", id))?;
                ("employee id", format!("ID eq {n}"), id)
            }
            (None, Some(number), _) => {
                let n: i64 = number
                    .trim()
                    .parse()
                    .map_err(|_| not_a_number("employee number", number))?;
                ("employee number", format!("EmployeeNumber eq {n}"), number)
            }
            (None, None, Some(email)) => (
                "email",
                format!(
                    "BusinessRelationInfo.DefaultEmail.EmailAddress eq {}",
                    wire::filter_string(email.trim())
                ),
                email,
            ),
            (None, None, None) => {
                return Err(Error::NoEmployee(format!(
                    "HR gave no payroll employee id, employee number or email for employee {}; \
                     add one in HR, then retry.",
                    who.hr_id
                )))
            }
        };
        let found: Vec<wire::Employee> = self
            .list_all(
                Request::get("/api/biz/employees")
                    .query("filter", filter)
                    .query("expand", "BusinessRelationInfo.DefaultEmail")
                    .query(
                        "select",
                        "ID,EmployeeNumber,BusinessRelationInfo.DefaultEmail.EmailAddress",
                    ),
            )
            .await?;
        // Keep exact matches only, whatever the server's filter did.
        let value_t = value.trim();
        let exact: Vec<i64> = found
            .iter()
            .filter(|e| match key {
                "employee id" => value_t.parse() == Ok(e.id),
                "employee number" => {
                    e.number_text().as_deref() == Some(value_t)
                        || e.number_text().and_then(|t| t.parse::<i64>().ok())
                            == value_t.parse::<i64>().ok()
                }
                _ => e
                    .email()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case(value_t)),
            })
            .map(|e| e.id)
            .collect();
        match exact.as_slice() {
            [id] => Ok(*id),
            [] => Err(Error::NoEmployee(format!(
                "No Unimicro employee has {key} `{value}` (HR employee {}). Check the {key} in \
                 HR, or that position sync created the employee in Unimicro, then retry.",
                who.hr_id
            ))),
            many => Err(Error::NoEmployee(format!(
                "{} Unimicro employees have {key} `{value}` (ids {}); salary-sync cannot tell \
                 which is HR employee {}. Give the employee a payroll employee id in HR, then \
                 retry.",
                many.len(),
                many.iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                who.hr_id
            ))),
        }
    }

    /// The employment's pay-rate records, deleted ones left out.
    async fn rates(&self, employment: i64) -> Result<Vec<Rate>, Error> {
        let request = Request::get(format!("/api/biz/employments/{employment}"))
            .query("expand", payrate::COLLECTION)
            .call(Call::Employment);
        let found: EmploymentRates = self.fetch(&request).await?;
        read_rates(&found, employment)
    }

    /// Saves the employment with `records` and returns its pay-rate records afterwards (from
    /// the answer, or read again when the answer did not expand them).
    async fn save(&self, employment: i64, records: Vec<PayRate>) -> Result<Vec<Rate>, Error> {
        let body = EmploymentRates {
            id: employment,
            rates: Some(records),
        };
        let request = Request::put(format!("/api/biz/employments/{employment}"), &body)?
            .query("expand", payrate::COLLECTION);
        let saved: EmploymentRates = self.fetch(&request).await?;
        if saved.rates.is_some() {
            read_rates(&saved, employment)
        } else {
            self.rates(employment).await
        }
    }

    /// A pay-rate record to insert or change, holding `target`.
    fn record(
        id: Option<i64>,
        createguid: Option<String>,
        employment: i64,
        target: &Target,
    ) -> Result<PayRate, Error> {
        Ok(PayRate {
            id,
            employment_id: Some(employment),
            from_date: Some(target.from_date.format("%Y-%m-%d").to_string()),
            rate: Some(
                wire::raw_from_decimal(target.rate)
                    .map_err(|e| Error::Unexpected(format!("could not encode an amount: {e}")))?,
            ),
            rate_type: Some(target.rate_type.as_str().to_owned()),
            deleted: None,
            createguid,
        })
    }

    /// Marks record `id` of `employment` deleted (idempotent: deleting a deleted record again
    /// changes nothing).
    async fn delete_record(&self, employment: i64, id: i64) -> Result<(), Error> {
        self.save(
            employment,
            vec![PayRate {
                id: Some(id),
                deleted: Some(true),
                ..PayRate::default()
            }],
        )
        .await
        .map(drop)
    }

    /// Inserts our record (or finds it, when this workflow's `_createguid` already made it).
    async fn insert(
        &self,
        change: &SalaryChange,
        employment: i64,
        want: &Target,
    ) -> Result<i64, Error> {
        let guid = guid_of(change);
        let saved = self
            .save(
                employment,
                vec![Self::record(None, Some(guid.clone()), employment, want)?],
            )
            .await?;
        saved
            .iter()
            .find(|r| r.createguid.as_deref() == Some(guid.as_str()))
            .or_else(|| saved.iter().find(|r| r.holds(want)))
            .map(|r| r.id)
            .ok_or_else(|| {
                Error::Unexpected(format!(
                    "PUT /api/biz/employments/{employment}: saved, but the new pay-rate record \
                     is not in the answer; check the employment in Unimicro and report it"
                ))
            })
    }

    /// The company's base currency: `companysettings` with `BaseCurrencyCode` expanded (its
    /// `Code`, or a plain string), else the `BaseCurrencyCodeID` looked up at
    /// `currencycodes/{id}`. No `select`: a nested-path select is not published.
    async fn read_currency(&self) -> Result<Currency, Error> {
        const PATH: &str = "/api/biz/companysettings";
        let request = Request::get(PATH).query("expand", "BaseCurrencyCode");
        let found: serde_json::Value = self.fetch(&request).await?;
        let code = match wire::BaseCurrency::read(&found) {
            Some(wire::BaseCurrency::Code(code)) => code,
            Some(wire::BaseCurrency::Id(id)) => {
                let path = format!("/api/biz/currencycodes/{id}");
                let row: serde_json::Value = self.fetch(&Request::get(path.as_str())).await?;
                wire::currency_code(&row).ok_or_else(|| {
                    Error::Unexpected(format!("GET {path}: no `Code` in the currency row"))
                })?
            }
            None => {
                return Err(Error::Unexpected(format!(
                    "GET {PATH}: neither BaseCurrencyCode nor BaseCurrencyCodeID in the answer; \
                     check the company's base currency in Unimicro"
                )))
            }
        };
        Currency::parse(&code).map_err(|m| Error::Unexpected(format!("GET {PATH}: currency {m}")))
    }
}

fn read_rates(found: &EmploymentRates, employment: i64) -> Result<Vec<Rate>, Error> {
    let mut rates = Vec::new();
    for raw in found.rates.iter().flatten() {
        let r = Rate::read(raw, employment)?;
        if !r.deleted {
            rates.push(r);
        }
    }
    Ok(rates)
}

fn guid_of(change: &SalaryChange) -> String {
    createguid(change.integration_id.as_str(), change.event_id.as_str())
}

#[async_trait]
impl Connector for UnimicroConnector {
    fn system(&self) -> PayrollSystem {
        PayrollSystem::Unimicro
    }

    async fn match_position(&self, change: &SalaryChange) -> Result<Position, Error> {
        let employee_id = self.find_employee(change).await?;
        let employments: Vec<wire::Employment> = self
            .list_all(
                Request::get("/api/biz/employments")
                    .query("filter", format!("EmployeeID eq {employee_id}"))
                    .query("select", "ID,EmployeeID,StartDate,EndDate,RemunerationType"),
            )
            .await?;
        let salary = change.salary.period();
        let mut seen: Vec<(i64, Option<Period>, Option<i64>)> = employments
            .iter()
            .map(|e| {
                let start = e.start_date.as_deref().and_then(wire::date);
                let end = e.end_date.as_deref().and_then(wire::date);
                (
                    e.id,
                    start.map(|start| Period { start, end }),
                    e.remuneration_type,
                )
            })
            .collect();
        seen.sort_by_key(|(id, p, _)| (p.map(|p| p.start), *id));
        if let Some((id, Some(period), _)) = seen
            .iter()
            .find(|(_, p, _)| p.is_some_and(|p| salary.within(&p)))
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
                .map(|(id, p, _)| match p {
                    Some(p) => format!("{id} ({p})"),
                    None => format!("{id} (no start date)"),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        Err(Error::NoEmployment(format!(
            "Unimicro employee {employee_id} has no employment covering the salary period \
             {salary} (employments seen: {listed}). Position sync must be active for salary sync \
             to work: make sure the employment in Unimicro covers the salary's dates, then retry."
        )))
    }

    fn known_currency(&self) -> Option<Currency> {
        self.currency.get().copied()
    }

    async fn currency(&self) -> Result<Currency, Error> {
        self.currency
            .get_or_try_init(|| self.read_currency())
            .await
            .copied()
    }

    async fn check_overlap(
        &self,
        change: &SalaryChange,
        position: &Position,
        owned: Option<&PayrollRecord>,
    ) -> Result<OverlapCheck, Error> {
        if change.kind == ChangeKind::Deleted {
            return Ok(OverlapCheck::Clear);
        }
        let employment = parse_id(&position.employment_id, "employment id")?;
        let rates = self.rates(employment).await?;
        let owned_id = owned
            .filter(|o| o.employment_id == position.employment_id)
            .map(|o| parse_id(&o.id, "record id"))
            .transpose()?;
        Ok(
            match conflict(&change.salary.period(), &rates, owned_id, &guid_of(change)) {
                Some((id, period)) => OverlapCheck::Conflict {
                    record_id: id.to_string(),
                    period,
                },
                None => OverlapCheck::Clear,
            },
        )
    }

    async fn find_written(
        &self,
        change: &SalaryChange,
        position: &Position,
        owned: Option<&PayrollRecord>,
    ) -> Result<Option<PayrollRecord>, Error> {
        if change.kind == ChangeKind::Deleted {
            // Done when the owned record is no longer there (Unimicro hides deleted records).
            let Some(owned) = owned else {
                return Ok(None);
            };
            let employment = parse_id(&owned.employment_id, "employment id")?;
            let id = parse_id(&owned.id, "record id")?;
            let rates = self.rates(employment).await?;
            return Ok((!rates.iter().any(|r| r.id == id)).then(|| owned.clone()));
        }
        let want = target(change);
        let employment = parse_id(&position.employment_id, "employment id")?;
        let rates = self.rates(employment).await?;
        let guid = guid_of(change);
        let as_record = |r: &Rate| PayrollRecord {
            id: r.id.to_string(),
            employment_id: position.employment_id.clone(),
        };
        match owned {
            Some(owned) if owned.employment_id == position.employment_id => {
                let id = parse_id(&owned.id, "record id")?;
                Ok(rates
                    .iter()
                    .find(|r| r.id == id && r.holds(&want))
                    .map(as_record))
            }
            Some(owned) => {
                // A move to another employment: done when ours is on the new one and the old
                // record is gone.
                let found = rates
                    .iter()
                    .find(|r| r.createguid.as_deref() == Some(guid.as_str()) && r.holds(&want));
                let Some(found) = found else {
                    return Ok(None);
                };
                let old_employment = parse_id(&owned.employment_id, "employment id")?;
                let old_id = parse_id(&owned.id, "record id")?;
                let old = self.rates(old_employment).await?;
                Ok((!old.iter().any(|r| r.id == old_id)).then(|| as_record(found)))
            }
            None => Ok(rates
                .iter()
                .find(|r| r.createguid.as_deref() == Some(guid.as_str()))
                .or_else(|| rates.iter().find(|r| r.holds(&want)))
                .map(as_record)),
        }
    }

    async fn write(
        &self,
        change: &SalaryChange,
        position: &Position,
        owned: Option<&PayrollRecord>,
    ) -> Result<WriteReport, Error> {
        if change.kind == ChangeKind::Deleted {
            let Some(owned) = owned else {
                return Err(Error::NothingToDelete(format!(
                    "Salary {} was deleted in HR, but salary-sync never wrote it to Unimicro; \
                     nothing was changed in payroll.",
                    change.salary.id
                )));
            };
            let employment = parse_id(&owned.employment_id, "employment id")?;
            let id = parse_id(&owned.id, "record id")?;
            self.delete_record(employment, id).await?;
            return Ok(WriteReport {
                record: owned.clone(),
                adopted: false,
                dropped_fields: Vec::new(),
                record_remains_after_delete: false,
            });
        }
        let want = target(change);
        let employment = parse_id(&position.employment_id, "employment id")?;
        let id = match owned {
            Some(owned) if owned.employment_id == position.employment_id => {
                let id = parse_id(&owned.id, "record id")?;
                self.save(
                    employment,
                    vec![Self::record(Some(id), None, employment, &want)?],
                )
                .await?;
                id
            }
            Some(owned) => {
                // The salary now falls in another employment: a nested record cannot move, so
                // ours is inserted there (once, by `_createguid`) and the old one deleted.
                let id = self.insert(change, employment, &want).await?;
                let old_employment = parse_id(&owned.employment_id, "employment id")?;
                let old_id = parse_id(&owned.id, "record id")?;
                self.delete_record(old_employment, old_id).await?;
                id
            }
            None => self.insert(change, employment, &want).await?,
        };
        Ok(WriteReport {
            record: PayrollRecord {
                id: id.to_string(),
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
