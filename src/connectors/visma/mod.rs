//! The Visma.net Payroll connector (Employee API v2, Norway): finds the employee and the
//! position covering the salary, checks and edits the position's salary timeline
//! (`salaryInformation[]`) with a PUT of the whole position, and follows the asynchronous job
//! the PUT starts (SPEC §3 "Visma.net Payroll"; docs/payroll-systems/visma.md).
//!
//! Invariants: one bearer token per connector (one tenant), fetched by one caller at a time
//! and shared; a 401 fetches a new token once and repeats the call once. The client id, client
//! secret and token never appear in an error, a log line or a `Debug` print. Amounts are exact
//! decimals end to end. Every PUT carries `If-Match` with the ETag it was planned against and a
//! correlation id derived from the change, so a crash between the PUT and its commit is found
//! again (`find_job`) rather than sent twice. The token and every request go only to the
//! configured token URL and API base; a job `Location` on another host is refused.

mod classify;
mod timeline;
mod wire;

pub use classify::{classify, Call};
pub use timeline::{key as record_key, parse_key, KEY_PREFIX};

use self::timeline::{plan, Contract, Edit, Timeline, Wanted};
use self::wire::{ApiError, Document, Job, Page, PositionSummary};
use super::credential::{Credential, CredentialCache};
use super::error::HttpError;
use super::http::{network_error, path_only, retry_not_before};
use super::{Connector, Error, JobPoll, OverlapCheck, PayrollSystem, WriteStart};
use crate::domain::{
    ChangeKind, Currency, FailureClass, FailureCode, PayrollRecord, Period, Position, SalaryChange,
    WriteReport,
};
use crate::secret::Secret;
use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use std::fmt;
use std::sync::Arc;

/// The media type of Employee API v2 (Accept and Content-Type).
pub const MEDIA_TYPE: &str = "application/vnd.no.payroll.employee.V2.0+json";
/// The text of the job warning Visma gives when it skipped a salary update (changelog
/// 22.12.1.0: "contractSalaryType has not been provided. Salary update was not performed.").
pub const SALARY_NOT_PERFORMED: &str = "salary update was not performed";
/// A listing longer than this many pages is refused rather than followed forever.
const PAGES_MAX: u32 = 1000;
/// PUT attempts on one position when its ETag keeps moving (412).
const PUT_ATTEMPTS_MAX: u32 = 2;
/// A token's life when the token endpoint does not say (`expires_in`).
const TOKEN_LIFE_DEFAULT_S: u64 = 3600;

/// What Visma does not publish, as settings with the defaults salary-sync assumes (each is
/// documented in docs/payroll-systems/visma.md, "Assumptions").
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VismaApi {
    /// Items per list page (Visma's default is 50).
    pub page_size: u32,
    /// The query parameter that sets the page size (published: `page-size`).
    pub page_size_param: String,
    /// The list answer's field holding the next page, as a dotted path: a cursor, or a URL
    /// (absolute or starting with `/`). Absent, null or empty: the last page. Default
    /// `cursor.nextToken`, the only published cursor list model (`{"cursor":{"nextToken":..},
    /// "data":[..]}`); `nextToken`, `nextCursor` and a string `cursor` are also looked at.
    pub next_page_field: String,
    /// The query parameter a cursor is sent back in (the first page's parameters are repeated
    /// with it). Assumed `cursor`.
    pub page_param: String,
    /// `GET /employees?<this>=17` filters by employee number. Assumed `number` (the employee's
    /// field name); results are matched exactly on `number` either way.
    pub employee_number_param: String,
    /// `GET /employees?<this>=a@b.no` filters by e-mail. Assumed `email`; results are
    /// matched exactly (case-insensitively) on the employee's `email` either way.
    pub email_param: String,
    /// The error body's human message field. Assumed `message`.
    pub error_message_field: String,
    /// The error body's list of details (strings or `{"field","message"}`). Assumed `errors`.
    pub error_details_field: String,
    /// The answer header carrying Visma's request id. Assumed `x-request-id`.
    pub request_id_header: String,
    /// The request header whose value Visma records as the job's `correlationId`.
    /// Assumed `x-correlation-id`.
    pub correlation_header: String,
    /// A token is renewed this long before `expires_in` runs out.
    pub token_refresh_margin_s: u64,
    /// The synchronous `write` polls its job this often...
    pub write_poll_interval_ms: u64,
    /// ...for at most this long.
    pub write_wait_ms: u64,
}

impl Default for VismaApi {
    fn default() -> Self {
        Self {
            page_size: 50,
            page_size_param: "page-size".into(),
            next_page_field: "cursor.nextToken".into(),
            page_param: "cursor".into(),
            employee_number_param: "number".into(),
            email_param: "email".into(),
            error_message_field: "message".into(),
            error_details_field: "errors".into(),
            request_id_header: "x-request-id".into(),
            correlation_header: "x-correlation-id".into(),
            token_refresh_margin_s: 60,
            write_poll_interval_ms: 250,
            write_wait_ms: 60_000,
        }
    }
}

impl VismaApi {
    /// Checks the settings, naming the bad key.
    pub fn validate(&self) -> Result<(), String> {
        if self.page_size == 0 || self.page_size > 1000 {
            return Err("api.page_size must be between 1 and 1000".into());
        }
        for (key, value) in [
            ("api.request_id_header", &self.request_id_header),
            ("api.correlation_header", &self.correlation_header),
        ] {
            if HeaderName::from_bytes(value.as_bytes()).is_err() {
                return Err(format!("{key}: `{value}` is not an HTTP header name"));
            }
        }
        for (key, value) in [
            ("api.page_size_param", &self.page_size_param),
            ("api.next_page_field", &self.next_page_field),
            ("api.page_param", &self.page_param),
            ("api.employee_number_param", &self.employee_number_param),
            ("api.email_param", &self.email_param),
            ("api.error_message_field", &self.error_message_field),
            ("api.error_details_field", &self.error_details_field),
        ] {
            if value.trim().is_empty() {
                return Err(format!("{key} must not be empty"));
            }
        }
        Ok(())
    }
}

/// One Visma.net Payroll integration (one tenant).
#[derive(Clone)]
pub struct VismaConfig {
    /// The API root, e.g. `https://api.employeecore.hrm.visma.net/v2`.
    pub base_url: String,
    /// Visma Connect's token endpoint, e.g. `https://connect.visma.com/connect/token`.
    pub token_url: String,
    pub tenant_id: String,
    pub client_id: Secret,
    pub client_secret: Secret,
    /// Space-separated OAuth scopes (Visma does not publish the names; none sent when absent).
    pub scope: Option<String>,
    /// Visma.net Payroll Norway pays in NOK only; no endpoint publishes a company currency.
    pub currency: Currency,
    pub api: VismaApi,
}

impl fmt::Debug for VismaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VismaConfig")
            .field("base_url", &path_only(&self.base_url))
            .field("token_url", &path_only(&self.token_url))
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("scope", &self.scope)
            .field("currency", &self.currency)
            .field("api", &self.api)
            .finish()
    }
}

type Now = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

pub struct VismaConnector {
    config: VismaConfig,
    /// `base_url` without a trailing slash.
    base: String,
    /// The base's path (`/v2`), to recognise it at the front of a job `Location`.
    base_path: String,
    client: reqwest::Client,
    /// Held across the token fetch, so concurrent callers wait for one fetch.
    credential: CredentialCache,
    now: Now,
}

impl fmt::Debug for VismaConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VismaConnector")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// One request, described without credentials.
struct Request {
    method: Method,
    /// The path below the API root (or the token URL's path), safe to report.
    path: String,
    /// The full URL without query.
    url: String,
    query: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    if_match: Option<String>,
    correlation: Option<String>,
    call: Call,
}

/// An answer read in full.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// A path segment from outside (an employee or position id, a job id): GUID characters only,
/// so it cannot change the request's path.
fn segment<'a>(value: &'a str, what: &str) -> Result<&'a str, String> {
    let v = value.trim();
    let ok = !v.is_empty()
        && v.len() <= 128
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(v)
    } else {
        Err(format!("{what} `{value}` is not a Visma id (a GUID)"))
    }
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A stable id for the PUT a change makes, recorded by Visma as the job's `correlationId`.
/// Two FNV-1a hashes of (integration, event, kind), shown as a UUID. Stable across restarts
/// and versions of salary-sync (no randomness, no std hasher).
pub fn correlation_id(change: &SalaryChange) -> String {
    let text = format!(
        "salary-sync\0{}\0{}\0{}",
        change.integration_id, change.event_id, change.kind
    );
    let fnv = |offset: u64| {
        text.bytes().fold(offset, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    let a = fnv(0xcbf2_9ce4_8422_2325);
    let b = fnv(0x6c62_272e_07bb_0142);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

/// What the change wants in the timeline.
fn edit(change: &SalaryChange) -> Edit {
    match change.kind {
        ChangeKind::Deleted => Edit::Delete,
        ChangeKind::Created | ChangeKind::Updated => Edit::Put(Wanted {
            start: change.salary.start_date,
            end: change.salary.end_date,
            contract: Contract::from_unit(change.salary.period_unit),
            amount: change.salary.pay.amount,
        }),
    }
}

/// HR fields Visma's salary entry has no place for (the end date is `activeEnd`).
pub fn dropped_fields(change: &SalaryChange) -> Vec<&'static str> {
    if change.kind != ChangeKind::Deleted && change.salary.note.is_some() {
        vec!["note"]
    } else {
        Vec::new()
    }
}

/// The start date of the entry `owned` names, when it lies on `employment_id`.
fn owned_start(owned: Option<&PayrollRecord>, employment_id: &str) -> Option<NaiveDate> {
    owned
        .filter(|o| o.employment_id == employment_id)
        .and_then(|o| parse_key(&o.id))
}

/// An error salary-sync derives from an answer that was not an error status (a job that
/// failed, a conflict found at write time).
fn judged(
    status: u16,
    method: &str,
    path: &str,
    code: FailureCode,
    class: FailureClass,
    message: String,
    vendor_message: Option<String>,
) -> Error {
    Error::Http(Box::new(HttpError {
        status,
        method: method.to_owned(),
        path: path.to_owned(),
        code,
        class,
        message,
        vendor_code: None,
        vendor_message,
        request_id: None,
        retry_not_before: None,
    }))
}

fn unexpected(request: &Request, what: impl fmt::Display) -> Error {
    Error::Unexpected(format!(
        "{} {}: {what}; report it to salary-sync's maintainers",
        request.method, request.path
    ))
}

/// A job's state as salary-sync reads it.
enum JobState {
    Succeeded,
    Failed,
    Running,
}

fn job_state(job: &Job) -> JobState {
    let status = job.status.as_deref().unwrap_or("").trim();
    if status.eq_ignore_ascii_case("Succeeded") || job.status_code == Some(4) {
        JobState::Succeeded
    } else if ["Failed", "Error", "Cancelled", "Canceled"]
        .iter()
        .any(|s| status.eq_ignore_ascii_case(s))
    {
        JobState::Failed
    } else {
        JobState::Running
    }
}

impl VismaConnector {
    /// A connector over the shared client (see `connectors::http::client`). No I/O happens
    /// until the first call.
    pub fn new(config: VismaConfig, client: reqwest::Client) -> Self {
        let base = config.base_url.trim_end_matches('/').to_owned();
        let base_path = reqwest::Url::parse(&base)
            .map(|u| u.path().trim_end_matches('/').to_owned())
            .unwrap_or_default();
        Self {
            config,
            base,
            base_path,
            client,
            credential: CredentialCache::default(),
            now: Arc::new(Utc::now),
        }
    }

    /// Replaces the wall clock (token expiry and Retry-After instants).
    pub fn with_clock(mut self, now: impl Fn() -> DateTime<Utc> + Send + Sync + 'static) -> Self {
        self.now = Arc::new(now);
        self
    }

    fn api(&self) -> &VismaApi {
        &self.config.api
    }

    fn request(&self, method: Method, path: impl Into<String>, call: Call) -> Request {
        let path = path.into();
        Request {
            method,
            url: format!("{}{path}", self.base),
            path,
            query: Vec::new(),
            body: None,
            if_match: None,
            correlation: None,
            call,
        }
    }

    // ---- the token ----------------------------------------------------------------------

    async fn token(&self) -> Result<Secret, Error> {
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

    async fn fetch_token(&self, now: DateTime<Utc>) -> Result<Credential, Error> {
        let mut form = vec![
            ("grant_type", "client_credentials".to_owned()),
            ("client_id", self.config.client_id.expose().to_owned()),
            (
                "client_secret",
                self.config.client_secret.expose().to_owned(),
            ),
            ("tenant_id", self.config.tenant_id.clone()),
        ];
        if let Some(scope) = self.config.scope.as_deref().filter(|s| !s.is_empty()) {
            form.push(("scope", scope.to_owned()));
        }
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let request = Request {
            method: Method::POST,
            path: path_only(&self.config.token_url).to_owned(),
            url: self.config.token_url.clone(),
            query: Vec::new(),
            body: Some(body.into_bytes()),
            if_match: None,
            correlation: None,
            call: Call::Token,
        };
        let answer = self.send(&request, None).await?;
        if !(200..300).contains(&answer.status) {
            let mut vendor = ApiError::parse(&answer.body, "error_description", "errors");
            if vendor.code.is_none() {
                vendor.code = serde_json::from_slice::<Value>(&answer.body)
                    .ok()
                    .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned));
            }
            let e = self.error_from(&request, &answer, vendor);
            return Err(self.scrub(e));
        }
        let got: wire::TokenAnswer = serde_json::from_slice(&answer.body)
            .map_err(|e| {
                unexpected(
                    &request,
                    format_args!("no access_token in the answer ({e})"),
                )
            })
            .map_err(|e| self.scrub(e))?;
        let life = got.expires_in.unwrap_or(TOKEN_LIFE_DEFAULT_S);
        let margin = self.api().token_refresh_margin_s.min(life / 2);
        let renew_at = now
            + Duration::seconds(
                i64::try_from(life - margin)
                    .unwrap_or(i64::MAX / 4)
                    .min(i64::MAX / 4),
            );
        tracing::debug!(system = "visma-payroll", life_s = life, "token fetched");
        Ok(Credential {
            value: Secret::new(got.access_token),
            renew_at,
        })
    }

    /// The token endpoint may quote what it was sent; the credentials are cut out of whatever
    /// it said before the error goes anywhere.
    fn scrub(&self, error: Error) -> Error {
        let secrets = [
            self.config.client_id.expose(),
            self.config.client_secret.expose(),
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

    // ---- sending ------------------------------------------------------------------------

    /// Sends once; transport failures become `Error::Network`.
    async fn send(&self, request: &Request, token: Option<&Secret>) -> Result<Answer, Error> {
        let mut builder = self
            .client
            .request(request.method.clone(), &request.url)
            // Visma Connect's token endpoint answers plain JSON; the payroll media type is
            // for the Employee API only.
            .header(
                ACCEPT,
                HeaderValue::from_static(if request.call == Call::Token {
                    "application/json"
                } else {
                    MEDIA_TYPE
                }),
            );
        if !request.query.is_empty() {
            builder = builder.query(&request.query);
        }
        if let Some(token) = token {
            let value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                .map_err(|_| Error::Unexpected("the access token is not a valid header".into()))?;
            builder = builder.header(AUTHORIZATION, value);
        }
        if let Some(tag) = &request.if_match {
            if let Ok(v) = HeaderValue::from_str(tag) {
                builder = builder.header("if-match", v);
            }
        }
        if let Some(id) = &request.correlation {
            if let (Ok(name), Ok(v)) = (
                HeaderName::from_bytes(self.api().correlation_header.as_bytes()),
                HeaderValue::from_str(id),
            ) {
                builder = builder.header(name, v);
            }
        }
        if let Some(body) = &request.body {
            let content_type = if request.call == Call::Token {
                "application/x-www-form-urlencoded"
            } else {
                MEDIA_TYPE
            };
            builder = builder
                .header(CONTENT_TYPE, HeaderValue::from_static(content_type))
                .body(body.clone());
        }
        let method = request.method.as_str();
        let response = builder.send().await.map_err(|e| {
            crate::metrics::payroll_answer("visma-payroll", 0);
            network_error(e, method, &request.path)
        })?;
        let status = response.status().as_u16();
        crate::metrics::payroll_answer("visma-payroll", status);
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| network_error(e, method, &request.path))?
            .to_vec();
        tracing::debug!(system = "visma-payroll", method, path = %request.path, status, "call");
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// Sends with the token, fetching a new one once on a 401.
    async fn call(&self, request: &Request) -> Result<Answer, Error> {
        let token = self.token().await?;
        let answer = self.send(request, Some(&token)).await?;
        if answer.status != 401 {
            return Ok(answer);
        }
        let token = self.renew(&token).await?;
        self.send(request, Some(&token)).await
    }

    fn error_from(&self, request: &Request, answer: &Answer, vendor: ApiError) -> Error {
        let request_id = answer
            .headers
            .get(self.api().request_id_header.as_str())
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Error::Http(Box::new(classify::http_error(
            answer.status,
            request.method.as_str(),
            &request.path,
            request_id,
            &vendor,
            request.call,
            retry_not_before(&answer.headers, (self.now)()),
        )))
    }

    fn error(&self, request: &Request, answer: &Answer) -> Error {
        let api = self.api();
        let vendor = ApiError::parse(
            &answer.body,
            &api.error_message_field,
            &api.error_details_field,
        );
        self.error_from(request, answer, vendor)
    }

    /// `call`, then a 2xx answer or the classified error.
    async fn ok(&self, request: &Request) -> Result<Answer, Error> {
        let answer = self.call(request).await?;
        if (200..300).contains(&answer.status) {
            Ok(answer)
        } else {
            Err(self.error(request, &answer))
        }
    }

    async fn fetch<T: DeserializeOwned>(&self, request: &Request) -> Result<T, Error> {
        let answer = self.ok(request).await?;
        serde_json::from_slice(&answer.body).map_err(|e| {
            unexpected(
                request,
                format_args!("the answer is not the JSON expected ({e})"),
            )
        })
    }

    /// Every item of a list endpoint, following the next-page field.
    async fn list_all<T: DeserializeOwned>(&self, first: Request) -> Result<Vec<T>, Error> {
        let api = self.api();
        let mut query = first.query.clone();
        query.push((api.page_size_param.clone(), api.page_size.to_string()));
        let mut request = Request { query, ..first };
        let original_query = request.query.clone();
        let mut items = Vec::new();
        for _ in 0..PAGES_MAX {
            let answer = self.ok(&request).await?;
            let page = Page::parse(&answer.body, &api.next_page_field)
                .map_err(|e| unexpected(&request, e))?;
            let full = page.data.len() >= usize::try_from(api.page_size).unwrap_or(usize::MAX);
            if full && page.next.is_none() {
                // A full page with no token may be a listing cut short: the token may sit in
                // a field salary-sync does not know. Say so; the page's rows are still used.
                tracing::warn!(
                    system = "visma-payroll",
                    path = %request.path,
                    rows = page.data.len(),
                    next_page_field = %api.next_page_field,
                    "a full list page came back with no next-page token; if the listing is \
                     longer, set api.next_page_field to where Visma puts the token"
                );
            }
            for item in page.data {
                items.push(serde_json::from_value(item).map_err(|e| {
                    unexpected(
                        &request,
                        format_args!("a list item is not as expected ({e})"),
                    )
                })?);
            }
            let Some(next) = page.next else {
                return Ok(items);
            };
            if next.starts_with("http://") || next.starts_with("https://") || next.starts_with('/')
            {
                let path = self
                    .base_relative(&next)
                    .map_err(|e| unexpected(&request, e))?;
                let (path, query) = match path.split_once('?') {
                    Some((p, q)) => (p.to_owned(), q.to_owned()),
                    None => (path, String::new()),
                };
                request.url = format!("{}{path}", self.base);
                request.path = path;
                request.query = query
                    .split('&')
                    .filter(|kv| !kv.is_empty())
                    .map(|kv| match kv.split_once('=') {
                        Some((k, v)) => (k.to_owned(), v.to_owned()),
                        None => (kv.to_owned(), String::new()),
                    })
                    .collect();
            } else {
                request.query = original_query.clone();
                request.query.push((api.page_param.clone(), next));
            }
        }
        Err(unexpected(
            &request,
            format_args!("more than {PAGES_MAX} pages; refusing to read further"),
        ))
    }

    /// A URL or path Visma gave (a job `Location`, a next-page link) as a path below the API
    /// root. Refuses another host: the bearer token must not travel there.
    fn base_relative(&self, location: &str) -> Result<String, String> {
        let location = location.trim();
        let path = if location.starts_with("http://") || location.starts_with("https://") {
            let Some(rest) = location.strip_prefix(&self.base) else {
                return Err(format!(
                    "`{}` is not below the configured API root; refusing to follow it",
                    path_only(location)
                ));
            };
            rest.to_owned()
        } else if !self.base_path.is_empty()
            && (location == self.base_path || location.starts_with(&format!("{}/", self.base_path)))
        {
            location[self.base_path.len()..].to_owned()
        } else if location.starts_with('/') {
            location.to_owned()
        } else {
            format!("/{location}")
        };
        if path.split(['/', '?']).any(|s| s == "..") {
            return Err(format!(
                "`{}` climbs out of the API root",
                path_only(location)
            ));
        }
        Ok(path)
    }

    // ---- employees and positions --------------------------------------------------------

    /// The Visma employee the HR salary names, by the first key HR gave.
    async fn find_employee(&self, change: &SalaryChange) -> Result<String, Error> {
        let who = &change.salary.employee;
        if let Some(id) = who.payroll_employee_id.as_deref() {
            let Ok(id) = segment(id, "payroll employee id") else {
                return Err(Error::NoEmployee(format!(
                    "The payroll employee id `{id}` from HR is not a Visma employee id (a GUID). \
                     Correct the employee's payroll id in HR, then retry."
                )));
            };
            let request = self.request(Method::GET, format!("/employees/{id}"), Call::EmployeeById);
            return match self.fetch::<wire::Employee>(&request).await {
                Ok(found) => Ok(found.id),
                Err(Error::Http(e)) if e.code == FailureCode::NoEmployee => {
                    Err(Error::NoEmployee(format!(
                        "No Visma employee has id {id} (the payroll employee id HR gave for \
                         employee {}). Correct it in HR or check the employee exists in Visma, \
                         then retry.",
                        who.hr_id
                    )))
                }
                Err(e) => Err(e),
            };
        }
        let api = self.api();
        let (key, param, value) = match (who.employee_number.as_deref(), who.email.as_deref()) {
            (Some(n), _) => ("employee number", api.employee_number_param.clone(), n),
            (None, Some(m)) => ("email", api.email_param.clone(), m),
            (None, None) => {
                return Err(Error::NoEmployee(format!(
                    "HR gave no payroll employee id, employee number or email for employee {}; \
                     add one in HR, then retry.",
                    who.hr_id
                )))
            }
        };
        let mut request = self.request(Method::GET, "/employees", Call::Other);
        request.query.push((param, value.to_owned()));
        let found: Vec<wire::Employee> = self.list_all(request).await?;
        // The filter parameter is an assumption: match exactly here whatever the server did.
        let exact: Vec<String> = found
            .into_iter()
            .filter(|e| match key {
                "employee number" => e.number_text().as_deref() == Some(value.trim()),
                _ => e
                    .email
                    .as_deref()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case(value.trim())),
            })
            .map(|e| e.id)
            .collect();
        match exact.as_slice() {
            [id] => Ok(id.clone()),
            [] => Err(Error::NoEmployee(format!(
                "No Visma employee has {key} `{value}` (HR employee {}). Check the {key} in HR, \
                 or that position sync created the employee in Visma, then retry.",
                who.hr_id
            ))),
            many => Err(Error::NoEmployee(format!(
                "{} Visma employees have {key} `{value}` ({}); salary-sync cannot tell which is \
                 HR employee {}. Give the employee a payroll employee id in HR, then retry.",
                many.len(),
                many.join(", "),
                who.hr_id
            ))),
        }
    }

    fn position_path(&self, employee_id: &str, position_id: &str) -> Result<String, Error> {
        let e = segment(employee_id, "employee id").map_err(Error::Unexpected)?;
        let p = segment(position_id, "position id").map_err(Error::Unexpected)?;
        Ok(format!("/employees/{e}/positions/{p}"))
    }

    /// The position as a raw document, its ETag and its salary timeline.
    async fn position(
        &self,
        employee_id: &str,
        position_id: &str,
    ) -> Result<(Request, Option<String>, Document, Timeline), Error> {
        let request = self.request(
            Method::GET,
            self.position_path(employee_id, position_id)?,
            Call::Other,
        );
        let answer = self.ok(&request).await?;
        let etag = answer
            .headers
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let doc: Document = serde_json::from_slice(&answer.body).map_err(|e| {
            unexpected(
                &request,
                format_args!("the position is not a JSON object ({e})"),
            )
        })?;
        let timeline = Timeline::read(doc.get("salaryInformation").map(AsRef::as_ref))
            .map_err(|e| unexpected(&request, e))?;
        Ok((request, etag, doc, timeline))
    }

    /// The position an edit works on: the owned record's for a delete (it is where the entry
    /// lives), else the matched one.
    fn target_position(
        change: &SalaryChange,
        position: &Position,
        owned: Option<&PayrollRecord>,
    ) -> String {
        match (change.kind, owned) {
            (ChangeKind::Deleted, Some(o)) => o.employment_id.clone(),
            _ => position.employment_id.clone(),
        }
    }

    fn report(&self, change: &SalaryChange, record: PayrollRecord, adopted: bool) -> WriteReport {
        WriteReport {
            record,
            adopted,
            dropped_fields: dropped_fields(change),
            record_remains_after_delete: false,
        }
    }

    /// The record a finished write leaves (or, for a delete, removed).
    fn record_for(
        change: &SalaryChange,
        employment_id: &str,
        owned: Option<&PayrollRecord>,
    ) -> PayrollRecord {
        match (change.kind, owned) {
            (ChangeKind::Deleted, Some(o)) => o.clone(),
            _ => PayrollRecord {
                id: record_key(Some(change.salary.start_date)),
                employment_id: employment_id.to_owned(),
            },
        }
    }

    /// True when the timeline already holds what the change wants (for a delete: the entry
    /// at `start` is gone).
    fn holds(change: &SalaryChange, timeline: &Timeline, deleted_start: Option<NaiveDate>) -> bool {
        match edit(change) {
            Edit::Put(want) => timeline.at(want.start).is_some_and(|e| e.holds(&want)),
            Edit::Delete => deleted_start.is_some_and(|s| timeline.at(s).is_none()),
        }
    }

    fn jobs_path(&self, employee_id: &str) -> Result<String, Error> {
        let e = segment(employee_id, "employee id").map_err(Error::Unexpected)?;
        Ok(format!("/employees/{e}/positions/jobs"))
    }

    async fn put_position(
        &self,
        change: &SalaryChange,
        position: &Position,
        owned: Option<&PayrollRecord>,
    ) -> Result<WriteStart, Error> {
        let edit = edit(change);
        let employment_id = Self::target_position(change, position, owned);
        let owned_at = owned_start(owned, &employment_id);
        if edit == Edit::Delete && owned_at.is_none() {
            return Err(Error::NothingToDelete(format!(
                "Salary {} was deleted in HR, but salary-sync never wrote it to Visma; nothing \
                 was changed in payroll.",
                change.salary.id
            )));
        }
        let record = Self::record_for(change, &employment_id, owned);
        // A PUT replaces the whole timeline, and Visma checks `If-Match` when the PUT arrives,
        // not when its job runs: a second PUT planned while another job on the position is
        // still queued would silently undo that job. So wait for running jobs first; one of
        // our own (a PUT whose answer was lost) is adopted instead of sent again.
        let mine = correlation_id(change);
        let jobs_path = self.jobs_path(&position.employee_id)?;
        let jobs: Vec<Job> = self
            .list_all(self.request(Method::GET, jobs_path.clone(), Call::Other))
            .await?;
        for j in jobs
            .iter()
            .filter(|j| matches!(job_state(j), JobState::Running))
        {
            if j.correlation_id.as_deref() == Some(mine.as_str()) {
                if let Some(id) = j.id.as_deref() {
                    let id = segment(id, "job id").map_err(Error::Unexpected)?;
                    return Ok(WriteStart::Job {
                        job: format!("{jobs_path}/{id}"),
                    });
                }
            } else if j.artifact_id.as_deref() == Some(employment_id.as_str()) {
                return Err(judged(
                    200,
                    "GET",
                    &jobs_path,
                    FailureCode::RevisionConflict,
                    FailureClass::Transient,
                    format!(
                        "another change to Visma position {employment_id} is still running (job \
                         {}); salary-sync writes after it has finished",
                        j.id.as_deref().unwrap_or("without id")
                    ),
                    None,
                ));
            }
        }
        let mut last = None;
        for _ in 0..PUT_ATTEMPTS_MAX {
            let (read, etag, mut doc, timeline) =
                self.position(&position.employee_id, &employment_id).await?;
            let planned = match plan(&timeline, &edit, owned_at) {
                Ok(p) => p,
                Err(c) => {
                    return Err(judged(
                        200,
                        "GET",
                        &read.path,
                        FailureCode::Overlap,
                        FailureClass::Permanent,
                        format!(
                            "Visma salary entry {} ({}) now overlaps the salary period {} and was \
                             not written by this salary; adjust it in Visma, then retry.",
                            c.key,
                            c.period,
                            change.salary.period()
                        ),
                        None,
                    ))
                }
            };
            if !planned.changed {
                return Ok(WriteStart::Done(self.report(change, record, false)));
            }
            let salary = planned.timeline.to_raw().map_err(|e| {
                unexpected(
                    &read,
                    format_args!("cannot rebuild salaryInformation ({e})"),
                )
            })?;
            doc.insert("salaryInformation".into(), salary);
            let body = serde_json::to_vec(&doc)
                .map_err(|e| Error::Unexpected(format!("could not encode the position: {e}")))?;
            let mut put = self.request(Method::PUT, read.path.clone(), Call::Other);
            put.body = Some(body);
            put.if_match = etag;
            put.correlation = Some(correlation_id(change));
            let answer = self.call(&put).await?;
            match answer.status {
                202 => {
                    let location = answer
                        .headers
                        .get(reqwest::header::LOCATION)
                        .and_then(|v| v.to_str().ok())
                        .ok_or_else(|| unexpected(&put, "202 without a Location header"))?;
                    let job = self
                        .base_relative(location)
                        .map_err(|e| unexpected(&put, e))?;
                    return Ok(WriteStart::Job { job });
                }
                200..=299 => return Ok(WriteStart::Done(self.report(change, record, false))),
                _ => {
                    let e = self.error(&put, &answer);
                    match &e {
                        Error::Http(h) if h.code == FailureCode::RevisionConflict => last = Some(e),
                        _ => return Err(e),
                    }
                }
            }
        }
        Err(last.unwrap_or_else(|| Error::Unexpected("no PUT attempt was made".into())))
    }

    async fn poll(
        &self,
        job: &str,
        change: &SalaryChange,
        position: &Position,
    ) -> Result<JobPoll, Error> {
        let path = self
            .base_relative(job)
            .map_err(|e| Error::Unexpected(format!("job {job}: {e}")))?;
        let request = self.request(Method::GET, path, Call::Other);
        let answer = self.call(&request).await?;
        let record = Self::record_for(change, &position.employment_id, None);
        if answer.status == 404 {
            // The job is gone (expired). The timeline says whether the write landed.
            let (_, _, _, timeline) = self
                .position(&position.employee_id, &position.employment_id)
                .await?;
            if Self::holds(change, &timeline, Some(change.salary.start_date)) {
                return Ok(JobPoll::Done(self.report(change, record, true)));
            }
            return Err(Error::Unexpected(format!(
                "job {job} is gone from Visma and the salary is not in the position's \
                 timeline; check the position in Visma, then retry the workflow"
            )));
        }
        if !(200..300).contains(&answer.status) {
            return Err(self.error(&request, &answer));
        }
        let got: Job = serde_json::from_slice(&answer.body).map_err(|e| {
            unexpected(
                &request,
                format_args!("the job is not the JSON expected ({e})"),
            )
        })?;
        match job_state(&got) {
            JobState::Running => Ok(JobPoll::Running),
            JobState::Succeeded => {
                let skipped = got.validation_results.iter().find(|r| {
                    r.message
                        .as_deref()
                        .is_some_and(|m| m.to_lowercase().contains(SALARY_NOT_PERFORMED))
                });
                if let Some(w) = skipped {
                    return Err(judged(
                        answer.status,
                        "GET",
                        &request.path,
                        FailureCode::PayrollRejected,
                        FailureClass::Permanent,
                        format!(
                            "Visma finished job {job} but skipped the salary update (warning: \
                             {}). The salary is not in Visma. Check the position's contract \
                             salary type in Visma, then retry.",
                            w.text().unwrap_or_default()
                        ),
                        wire::summary(&got.validation_results),
                    ));
                }
                Ok(JobPoll::Done(self.report(change, record, false)))
            }
            JobState::Failed => {
                // The job's own top-level `message` (FAQ: "message in case of an error") and
                // its validation results, whichever Visma gave.
                let message = got
                    .message
                    .as_deref()
                    .map(str::trim)
                    .filter(|m| !m.is_empty());
                let said = match (message, wire::summary(&got.validation_results)) {
                    (Some(m), Some(r)) => format!("{m}; {r}"),
                    (Some(m), None) => m.to_owned(),
                    (None, Some(r)) => r,
                    (None, None) => "no message or validation results given".into(),
                };
                Err(judged(
                    answer.status,
                    "GET",
                    &request.path,
                    FailureCode::PayrollRejected,
                    FailureClass::Permanent,
                    format!(
                        "Visma refused the salary: job {job} ended {} ({said}). Correct the \
                         data in HR or Visma, then retry.",
                        got.status.as_deref().unwrap_or("failed")
                    ),
                    Some(said),
                ))
            }
        }
    }
}

#[async_trait]
impl Connector for VismaConnector {
    fn system(&self) -> PayrollSystem {
        PayrollSystem::VismaPayroll
    }

    async fn match_position(&self, change: &SalaryChange) -> Result<Position, Error> {
        let employee_id = self.find_employee(change).await?;
        let e = segment(&employee_id, "employee id").map_err(Error::Unexpected)?;
        let positions: Vec<PositionSummary> = self
            .list_all(self.request(
                Method::GET,
                format!("/employees/{e}/positions"),
                Call::Other,
            ))
            .await?;
        let salary = change.salary.period();
        let mut seen: Vec<(String, Period)> = positions
            .iter()
            .map(|p| {
                let start = p.active_start.as_deref().and_then(wire::date);
                let end = p.active_end.as_deref().and_then(wire::date);
                (
                    p.id.clone(),
                    Period {
                        start: start.unwrap_or(NaiveDate::MIN),
                        end,
                    },
                )
            })
            .collect();
        seen.sort_by(|a, b| (a.1.start, &a.0).cmp(&(b.1.start, &b.0)));
        if let Some((id, period)) = seen.iter().find(|(_, p)| salary.within(p)) {
            return Ok(Position {
                employee_id,
                employment_id: id.clone(),
                period: *period,
            });
        }
        let listed = if seen.is_empty() {
            "none".to_owned()
        } else {
            seen.iter()
                .map(|(id, p)| format!("{id} ({p})"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        Err(Error::NoEmployment(format!(
            "Visma employee {employee_id} has no position covering the salary period {salary} \
             (positions seen: {listed}). Position sync must be active for salary sync to work: \
             make sure the position in Visma covers the salary's dates, then retry."
        )))
    }

    async fn currency(&self) -> Result<Currency, Error> {
        Ok(self.config.currency)
    }

    fn known_currency(&self) -> Option<Currency> {
        Some(self.config.currency)
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
        let (_, _, _, timeline) = self
            .position(&position.employee_id, &position.employment_id)
            .await?;
        let owned_at = owned_start(owned, &position.employment_id);
        Ok(match plan(&timeline, &edit(change), owned_at) {
            Ok(_) => OverlapCheck::Clear,
            Err(c) => OverlapCheck::Conflict {
                record_id: c.key,
                period: c.period,
            },
        })
    }

    async fn find_written(
        &self,
        change: &SalaryChange,
        position: &Position,
        owned: Option<&PayrollRecord>,
    ) -> Result<Option<PayrollRecord>, Error> {
        let employment_id = Self::target_position(change, position, owned);
        let deleted_start = match change.kind {
            ChangeKind::Deleted => match owned_start(owned, &employment_id) {
                Some(s) => Some(s),
                None => return Ok(None),
            },
            _ => None,
        };
        let (_, _, _, timeline) = self.position(&position.employee_id, &employment_id).await?;
        Ok(Self::holds(change, &timeline, deleted_start)
            .then(|| Self::record_for(change, &employment_id, owned)))
    }

    async fn write(
        &self,
        change: &SalaryChange,
        position: &Position,
        owned: Option<&PayrollRecord>,
    ) -> Result<WriteReport, Error> {
        let job = match self.start_write(change, position, owned).await? {
            WriteStart::Done(report) => return Ok(report),
            WriteStart::Job { job } => job,
        };
        let api = self.api();
        let polls = (api.write_wait_ms / api.write_poll_interval_ms.max(1)).max(1);
        for _ in 0..polls {
            match self.poll(&job, change, position).await? {
                JobPoll::Done(mut report) => {
                    if let (ChangeKind::Deleted, Some(o)) = (change.kind, owned) {
                        report.record = o.clone();
                    }
                    return Ok(report);
                }
                JobPoll::Running => {
                    tokio::time::sleep(std::time::Duration::from_millis(api.write_poll_interval_ms))
                        .await
                }
            }
        }
        Err(judged(
            202,
            "GET",
            &job,
            FailureCode::JobRunning,
            FailureClass::Transient,
            format!(
                "Visma job {job} had not finished after {} ms; polling resumes later",
                api.write_wait_ms
            ),
            None,
        ))
    }

    async fn start_write(
        &self,
        change: &SalaryChange,
        position: &Position,
        owned: Option<&PayrollRecord>,
    ) -> Result<WriteStart, Error> {
        self.put_position(change, position, owned).await
    }

    async fn poll_job(
        &self,
        job: &str,
        change: &SalaryChange,
        position: &Position,
    ) -> Result<JobPoll, Error> {
        self.poll(job, change, position).await
    }

    async fn find_job(
        &self,
        change: &SalaryChange,
        position: &Position,
    ) -> Result<Option<String>, Error> {
        let path = self.jobs_path(&position.employee_id)?;
        let jobs: Vec<Job> = self
            .list_all(self.request(Method::GET, path.clone(), Call::Other))
            .await?;
        let mine = correlation_id(change);
        let found = jobs
            .iter()
            .filter(|j| j.correlation_id.as_deref() == Some(mine.as_str()))
            .filter(|j| !matches!(job_state(j), JobState::Failed))
            .filter_map(|j| j.id.as_deref().map(|id| (j.created.clone(), id)))
            .max_by(|a, b| a.0.cmp(&b.0));
        match found {
            None => Ok(None),
            Some((_, id)) => {
                let id = segment(id, "job id").map_err(Error::Unexpected)?;
                Ok(Some(format!("{path}/{id}")))
            }
        }
    }
}

#[cfg(test)]
mod tests;
