//! The HTTP side of the Visma.net Payroll simulator: the listener, a connection wrapper that
//! can be cut from inside a handler, the token endpoint, request routing, bearer auth, fault
//! injection and the `/_sim/` control API.
//!
//! Architecture Invariant: the tenant mutex is never held across an await, and a handler never
//! panics on client input; every bad request gets the (assumed) error body.
//!
//! How "close the connection without an answer" works: every accepted socket is wrapped in
//! [`ConnIo`], which shares a kill flag with the [`Conn`] value handlers receive as
//! `ConnectInfo`. A handler that must drop the connection sets the flag and returns; hyper's
//! first write of the response head then fails, so not one byte of an answer leaves the process.
//! The same wrapper slows an answer down: once the handler sets a chunk delay, the response
//! head goes out at once and the body follows in small chunks.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::simulators::conn::Conn;

use super::faults::{Fault, FaultKind, Faults, Phase};
use super::model::{CursorShape, Tenant};
use super::wire::{self, ApiError};

/// The media type of Employee API v2.
pub const MEDIA_TYPE: &str = "application/vnd.no.payroll.employee.V2.0+json";
/// The path of the token endpoint (below the root, not `/v2`).
pub(crate) const TOKEN_PATH: &str = "/connect/token";
/// The request header recorded as a job's `correlationId`.
const CORRELATION_HEADER: &str = "x-correlation-id";

/// State shared by the server task and every [`super::Control`].
pub(crate) struct Shared {
    pub tenant: Mutex<Tenant>,
    pub faults: Mutex<Faults>,
    /// Count of accepted position writes (PUTs that queued a job).
    pub writes: watch::Sender<u64>,
    pub requests: AtomicU64,
    /// Becomes true when the simulator shuts down; ends latency waits and hangs.
    pub shutdown: watch::Sender<bool>,
    pub addr: SocketAddr,
    request_prefix: u32,
}

/// Locks a mutex; a poisoned lock (a panic elsewhere) still holds consistent data because no
/// operation leaves the tenant half-changed.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub fn new(tenant: Tenant, addr: SocketAddr) -> Self {
        Self {
            tenant: Mutex::new(tenant),
            faults: Mutex::new(Faults::default()),
            writes: watch::Sender::new(0),
            requests: AtomicU64::new(0),
            shutdown: watch::Sender::new(false),
            addr,
            request_prefix: rand::random(),
        }
    }

    /// A sleep that ends early (returning false) when the simulator shuts down.
    async fn sleep(&self, duration: Duration) -> bool {
        let mut stop = self.shutdown.subscribe();
        tokio::select! {
            () = tokio::time::sleep(duration) => true,
            _ = stop.wait_for(|stopping| *stopping) => false,
        }
    }
}

/// The router: everything goes through [`handle`], which routes by hand.
pub(crate) fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(shared)
}

/// An answer before headers are added.
struct Answer {
    status: u16,
    body: Value,
    /// Extra headers (ETag, Location, Retry-After).
    headers: Vec<(&'static str, String)>,
    /// The body is Employee API JSON (its media type), not an error or OAuth body.
    api_json: bool,
}

impl Answer {
    fn ok(status: u16, body: Value) -> Self {
        Self {
            status,
            body,
            headers: Vec::new(),
            api_json: true,
        }
    }
}

impl From<ApiError> for Answer {
    fn from(e: ApiError) -> Self {
        Self {
            api_json: false,
            ..Self::ok(e.status, e.body())
        }
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(conn): ConnectInfo<Conn>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw_path = uri.path().to_string();
    if raw_path == "/_sim" || raw_path.starts_with("/_sim/") {
        return control(&shared, &method, &raw_path, &uri, &body);
    }
    let seq = shared.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let request_id = format!("{:08x}-{seq}", shared.request_prefix);
    let path = match raw_path.strip_prefix("/v2") {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest.to_string(),
        _ => raw_path.clone(),
    };

    let latency_ms = lock(&shared.faults).latency_ms;
    if latency_ms > 0 && !shared.sleep(Duration::from_millis(latency_ms)).await {
        conn.kill();
        return drop_answer();
    }

    let fault = lock(&shared.faults).take(Phase::Before, method.as_str(), &path);
    let mut close_after = false;
    if let Some(fault) = fault {
        tracing::debug!(method = %method, path, ?fault, "visma simulator: fault");
        let answer: Option<Answer> = match fault {
            FaultKind::SlowBody { chunk_delay_ms } => {
                conn.slow_down(chunk_delay_ms);
                close_after = true;
                None
            }
            FaultKind::EditedConcurrently => {
                let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
                if let ["employees", _, "positions", pid] = segments.as_slice() {
                    lock(&shared.tenant).touch(pid);
                }
                None
            }
            FaultKind::ServerError => Some(ApiError::new(500, "Simulated internal error.").into()),
            FaultKind::Unavailable => Some(ApiError::new(503, "Service unavailable.").into()),
            FaultKind::RateLimited { retry_after_s } => {
                let mut answer: Answer = ApiError::new(429, "Too many requests.").into();
                if let Some(s) = retry_after_s {
                    answer.headers.push(("retry-after", s.to_string()));
                }
                Some(answer)
            }
            FaultKind::Drop
            | FaultKind::ApplyThenDrop
            | FaultKind::ApplyThenHang { .. }
            | FaultKind::JobFailsLate
            | FaultKind::SalaryNotPerformed => {
                conn.kill();
                return drop_answer();
            }
        };
        if let Some(answer) = answer {
            return respond(answer, &request_id);
        }
    }

    let (mut answer, wrote) = if raw_path == TOKEN_PATH {
        match token(&shared, &method, &body) {
            Ok(a) => (a, false),
            Err(e) => (e.into(), false),
        }
    } else {
        match api(&shared, &method, &path, &uri, &headers, &body) {
            Ok(pair) => pair,
            Err(e) => (e.into(), false),
        }
    };
    if close_after {
        answer.headers.push(("connection", "close".into()));
    }
    tracing::debug!(method = %method, path, status = answer.status, "visma simulator");
    if wrote {
        shared.writes.send_modify(|n| *n += 1);
        let after = lock(&shared.faults).take(Phase::AfterWrite, method.as_str(), &path);
        let answer_now = match after {
            None => true,
            Some(FaultKind::ApplyThenHang { hang_ms }) => {
                shared.sleep(Duration::from_millis(hang_ms)).await
            }
            Some(_) => false,
        };
        if !answer_now {
            conn.kill();
            return drop_answer();
        }
    }
    respond(answer, &request_id)
}

/// The response returned after the connection was killed; hyper fails to write it.
fn drop_answer() -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

fn respond(answer: Answer, request_id: &str) -> Response {
    let mut response = Response::new(Body::from(answer.body.to_string()));
    *response.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = response.headers_mut();
    let content_type = if answer.api_json && answer.status < 300 {
        MEDIA_TYPE
    } else {
        "application/json"
    };
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let mut put = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            h.insert(name, value);
        }
    };
    put("x-request-id", request_id);
    for (name, value) in &answer.headers {
        put(name, value);
    }
    response
}

/// Query parameters; a repeated name keeps its last value.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(uri: &Uri) -> Result<Self, ApiError> {
        Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map(|Query(pairs)| Self(pairs))
            .map_err(|e| ApiError::new(400, format!("Bad query: {}", e.body_text())))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    fn number(&self, name: &str, default: usize) -> Result<usize, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| {
                ApiError::new(
                    400,
                    format!("Query parameter {name}: `{v}` is not a number."),
                )
            }),
        }
    }

    fn page(&self, all: Vec<Value>, shape: CursorShape) -> Result<Value, ApiError> {
        let size = self.number("page-size", 50)?;
        let offset = self.number("cursor", 0)?;
        Ok(wire::page(all, offset, size, shape))
    }
}

fn form(body: &[u8]) -> HashMap<String, String> {
    let decode = |s: &str| {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                    match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                        Some(b) => {
                            out.push(b);
                            i += 2;
                        }
                        None => out.push(b'%'),
                    }
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn new_id() -> String {
    let n: u128 = rand::random();
    let hex = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `POST /connect/token` (OAuth2 client credentials, form-encoded).
fn token(shared: &Shared, method: &Method, body: &[u8]) -> Result<Answer, ApiError> {
    if *method != Method::POST {
        return Err(ApiError::oauth(405, "invalid_request", "Use POST."));
    }
    let fields = form(body);
    let (token, life) = lock(&shared.tenant).issue_token(&fields, Instant::now(), new_id())?;
    Ok(Answer {
        api_json: false,
        ..Answer::ok(
            200,
            json!({"access_token": token, "token_type": "Bearer", "expires_in": life}),
        )
    })
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The Employee API proper: `Ok((answer, wrote))`, where `wrote` says a position PUT was
/// accepted as a job.
fn api(
    shared: &Shared,
    method: &Method,
    path: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Answer, bool), ApiError> {
    let now = Instant::now();
    let token = bearer(headers)
        .ok_or_else(|| ApiError::new(401, "Authorization: Bearer <access token> is missing."))?;
    lock(&shared.tenant).authenticate(token, now)?;
    if let Some(accept) = header_str(headers, "accept") {
        if !(accept.contains(MEDIA_TYPE) || accept.contains("*/*")) {
            return Err(ApiError::new(
                406,
                format!("Not acceptable: Employee API v2 answers {MEDIA_TYPE}."),
            ));
        }
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let params = Params::parse(uri)?;
    let get = *method == Method::GET;
    let mut tenant = lock(&shared.tenant);
    tenant.settle(now);
    let read = |value: Value| Ok((Answer::ok(200, value), false));
    match segments.as_slice() {
        ["employees"] if get => {
            let all = tenant
                .find_employees(params.get("number"), params.get("email"))
                .into_iter()
                .map(wire::employee)
                .collect();
            read(params.page(all, tenant.seed.cursor)?)
        }
        ["employees", id] if get => read(wire::employee(tenant.employee(id)?)),
        ["employees", id, "positions"] if get => {
            tenant.employee(id)?;
            let all = tenant
                .positions_of(id)
                .into_iter()
                .map(wire::position)
                .collect();
            read(params.page(all, tenant.seed.cursor)?)
        }
        ["employees", id, "positions", "jobs"] if get => {
            tenant.employee(id)?;
            let all = tenant.jobs_of(id).into_iter().map(wire::job).collect();
            read(params.page(all, tenant.seed.cursor)?)
        }
        ["employees", id, "positions", "jobs", job] if get => {
            let view = tenant.poll_job(id, job, now)?;
            read(wire::job(&view))
        }
        ["employees", id, "positions", pid] if get => {
            let p = tenant.position(id, pid)?;
            let mut answer = Answer::ok(200, wire::position(p));
            answer.headers.push(("etag", p.etag()));
            Ok((answer, false))
        }
        ["employees", id, "positions", pid] if *method == Method::PUT => {
            let content_type = header_str(headers, "content-type").unwrap_or("");
            if !content_type.contains(MEDIA_TYPE) {
                return Err(ApiError::new(
                    415,
                    format!("Unsupported media type `{content_type}`: send {MEDIA_TYPE}."),
                ));
            }
            tenant.position(id, pid)?;
            let salary = wire::position_input(body, pid)?;
            let correlation = header_str(headers, CORRELATION_HEADER)
                .map(str::to_string)
                .unwrap_or_else(new_id);
            let fate = lock(&shared.faults).job_fate(path);
            let view = tenant.put_position(
                id,
                pid,
                header_str(headers, "if-match"),
                salary,
                correlation,
                new_id(),
                fate,
                now,
                chrono::Utc::now(),
            )?;
            let mut answer = Answer::ok(202, wire::job(&view));
            answer.headers.push((
                "location",
                format!(
                    "http://{}/v2/employees/{id}/positions/jobs/{}",
                    shared.addr, view.id
                ),
            ));
            Ok((answer, true))
        }
        ["employees"]
        | ["employees", _]
        | ["employees", _, "positions"]
        | ["employees", _, "positions", _]
        | ["employees", _, "positions", "jobs", _] => Err(ApiError::new(
            405,
            format!("Method {method} is not allowed on {path}."),
        )),
        _ => Err(ApiError::new(404, format!("No endpoint {method} {path}."))),
    }
}

/// The `/_sim/` control API (not part of Visma): see the module doc of
/// [`super`](crate::simulators::visma).
fn control(shared: &Shared, method: &Method, path: &str, uri: &Uri, body: &[u8]) -> Response {
    use crate::simulators::control::{bad, reply, to_value};
    if let Some(answer) = crate::simulators::control::faults(
        &shared.faults,
        |queue: &mut Faults, fault: Fault| queue.armed.push(fault),
        method,
        path,
        body,
    ) {
        return answer;
    }
    match (method.clone(), path) {
        (Method::POST, "/_sim/expire-tokens") => {
            lock(&shared.tenant).expire_tokens();
            reply(StatusCode::OK, json!({}))
        }
        (Method::PUT, "/_sim/job-timing") => {
            #[derive(serde::Deserialize)]
            struct Timing {
                polls: u32,
                delay_ms: u64,
            }
            match serde_json::from_slice::<Timing>(body) {
                Ok(t) => {
                    let mut tenant = lock(&shared.tenant);
                    tenant.seed.job_polls = t.polls;
                    tenant.seed.job_delay_ms = t.delay_ms;
                    reply(StatusCode::OK, json!({}))
                }
                Err(e) => bad(format!("body is not {{\"polls\",\"delay_ms\"}}: {e}")),
            }
        }
        (Method::GET, "/_sim/salary") => {
            let position = match Params::parse(uri) {
                Ok(p) => p.get("positionId").map(str::to_string),
                Err(e) => return bad(e.message),
            };
            let Some(position) = position else {
                return bad("positionId is required".into());
            };
            let mut tenant = lock(&shared.tenant);
            tenant.settle(Instant::now());
            let entries = tenant
                .positions
                .get(&position)
                .map(|p| p.salary.clone())
                .unwrap_or_default();
            to_value(serde_json::to_value(entries))
        }
        (Method::GET, "/_sim/jobs") => {
            let jobs: Vec<_> = lock(&shared.tenant)
                .jobs
                .iter()
                .map(|j| j.view.clone())
                .collect();
            to_value(serde_json::to_value(jobs))
        }
        (Method::GET, "/_sim/stats") => {
            let tenant = lock(&shared.tenant);
            reply(
                StatusCode::OK,
                json!({
                    "writes": *shared.writes.borrow(),
                    "requests": shared.requests.load(Ordering::Relaxed),
                    "tokens_issued": tenant.tokens_issued,
                    "jobs": tenant.jobs.len(),
                }),
            )
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            json!({ "error": format!("no control endpoint {method} {path}") }),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode() {
        let f = form(b"client_id=a%2Bb&scope=x+y&empty=&bad=%zz");
        assert_eq!(f.get("client_id").map(String::as_str), Some("a+b"));
        assert_eq!(f.get("scope").map(String::as_str), Some("x y"));
        assert_eq!(f.get("empty").map(String::as_str), Some(""));
        assert_eq!(f.get("bad").map(String::as_str), Some("%zz"));
    }
}
