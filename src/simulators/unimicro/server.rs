//! The HTTP side of the Unimicro simulator: routing, the token endpoint, bearer + CompanyKey
//! auth, lists with `filter`/`top`/`skip`, the employment save, fault injection and the
//! `/_sim/` control API.
//!
//! Architecture Invariant: the company mutex is never held across an await, and a handler never
//! panics on client input; every bad request gets Unimicro's error body. As Unimicro does, an
//! unknown path answers 401, the same as a missing or expired token or a wrong company key.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use base64::Engine as _;
use serde_json::{json, Value};
use tokio::sync::watch;

use super::filter::Filter;
use super::model::{ApiError, Company};
use crate::simulators::conn::Conn;
use crate::simulators::tripletex::{Fault, FaultKind, Faults};

/// State shared by the server task and every [`super::Control`].
pub(crate) struct Shared {
    pub company: Mutex<Company>,
    pub faults: Mutex<Faults>,
    /// Count of applied employment saves.
    pub writes: watch::Sender<u64>,
    pub requests: AtomicU64,
    /// Becomes true when the simulator shuts down; ends latency waits and hangs.
    pub shutdown: watch::Sender<bool>,
    pub addr: SocketAddr,
    request_prefix: u32,
}

/// Locks a mutex; a poisoned lock still holds consistent data because no operation leaves the
/// company half-changed (saves build a copy and swap it in).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub fn new(company: Company, addr: SocketAddr) -> Self {
        Self {
            company: Mutex::new(company),
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

pub(crate) fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(shared)
}

struct Answer {
    status: u16,
    body: Value,
    headers: Vec<(&'static str, String)>,
}

impl Answer {
    fn ok(status: u16, body: Value) -> Self {
        Self {
            status,
            body,
            headers: Vec::new(),
        }
    }
}

impl From<ApiError> for Answer {
    fn from(e: ApiError) -> Self {
        Self::ok(e.status, e.body())
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
    let path = uri.path().to_owned();
    if path == "/_sim" || path.starts_with("/_sim/") {
        return control(&shared, &method, &path, &uri, &body);
    }
    let seq = shared.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let request_id = format!("{:08x}-{seq}", shared.request_prefix);

    let latency_ms = lock(&shared.faults).latency_ms;
    if latency_ms > 0 && !shared.sleep(Duration::from_millis(latency_ms)).await {
        conn.kill();
        return drop_answer();
    }
    let fault = lock(&shared.faults).take(true, method.as_str(), &path);
    let mut close_after = false;
    if let Some(fault) = fault {
        tracing::debug!(method = %method, path, ?fault, "unimicro simulator: fault");
        let answer: Option<Answer> = match fault {
            FaultKind::SlowBody { chunk_delay_ms } => {
                conn.slow_down(chunk_delay_ms);
                close_after = true;
                None
            }
            FaultKind::ServerError => Some(ApiError::new(500, "Simulated internal error.").into()),
            FaultKind::Unavailable => Some(ApiError::new(503, "Service unavailable.").into()),
            FaultKind::RateLimited { reset_s } => {
                let mut answer: Answer = ApiError::new(429, "Too many requests.").into();
                if let Some(s) = reset_s {
                    answer.headers.push(("Retry-After", s.to_string()));
                }
                Some(answer)
            }
            FaultKind::Drop | FaultKind::ApplyThenDrop | FaultKind::ApplyThenHang { .. } => {
                conn.kill();
                return drop_answer();
            }
        };
        if let Some(answer) = answer {
            return respond(answer, &request_id);
        }
    }

    let (mut answer, wrote) = match api(&shared, &method, &path, &uri, &headers, &body) {
        Ok(done) => done,
        Err(e) => (e.into(), false),
    };
    if close_after {
        answer.headers.push(("connection", "close".into()));
    }
    tracing::debug!(method = %method, path, status = answer.status, "unimicro simulator");
    if wrote {
        shared.writes.send_modify(|n| *n += 1);
        let after = lock(&shared.faults).take(false, method.as_str(), &path);
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
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
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

/// Query parameters by lower-cased name; a repeated name keeps its last value.
fn params(uri: &Uri) -> Result<HashMap<String, String>, ApiError> {
    Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|Query(pairs)| {
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect()
        })
        .map_err(|e| ApiError::new(400, format!("Bad query: {}", e.body_text())))
}

fn number(params: &HashMap<String, String>, name: &str) -> Result<Option<usize>, ApiError> {
    match params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| ApiError::new(400, format!("`{name}={v}` is not a number"))),
    }
}

/// A plain-array list: `filter`, then `skip`, then `top`.
fn list(items: Vec<Value>, params: &HashMap<String, String>) -> Result<Value, ApiError> {
    let filter = match params.get("filter").filter(|f| !f.trim().is_empty()) {
        None => Filter::default(),
        Some(f) => Filter::parse(f).map_err(|m| ApiError::new(400, m))?,
    };
    let skip = number(params, "skip")?.unwrap_or(0);
    let top = number(params, "top")?.unwrap_or(usize::MAX);
    Ok(Value::Array(
        items
            .into_iter()
            .filter(|i| filter.matches(i))
            .skip(skip)
            .take(top)
            .collect(),
    ))
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
                    match std::str::from_utf8(&bytes[i + 1..i + 3])
                        .ok()
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                    {
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
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn new_token() -> String {
    let bytes: [u8; 24] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn path_id(segment: &str) -> Result<i64, ApiError> {
    segment
        .parse()
        .map_err(|_| ApiError::new(400, format!("`{segment}` is not an ID")))
}

/// The API proper: `Ok((answer, wrote))`, where `wrote` says an employment save was applied.
fn api(
    shared: &Shared,
    method: &Method,
    path: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Answer, bool), ApiError> {
    let now = Instant::now();
    if path == "/connect/token" && *method == Method::POST {
        let form = form(body);
        let mut company = lock(&shared.company);
        let audience = format!("http://{}/connect/token", shared.addr);
        return Ok(
            match company.issue_token(&form, now, new_token(), &audience, chrono::Utc::now()) {
                Ok((token, life)) => (
                    Answer::ok(
                        200,
                        json!({"access_token": token, "expires_in": life, "token_type": "Bearer",
                           "scope": "AppFramework"}),
                    ),
                    false,
                ),
                Err(e) => (Answer::ok(e.status, json!({ "error": e.error })), false),
            },
        );
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("Bearer "))
        .map(str::trim);
    let company_key = headers
        .get("CompanyKey")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let mut company = lock(&shared.company);
    company.authenticate(bearer, company_key, now)?;
    let params = params(uri)?;
    let expands = |what: &str| {
        params
            .get("expand")
            .is_some_and(|e| e.split(',').any(|x| x.trim().eq_ignore_ascii_case(what)))
    };
    let expand = expands(&company.seed.rate_collection);
    let expand_currency = expands("BaseCurrencyCode");
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let read = |v: Value| Ok((Answer::ok(200, v), false));
    match (method.clone(), segments.as_slice()) {
        (Method::GET, ["api", "biz", "employees"]) => {
            read(list(company.employees_json(), &params)?)
        }
        (Method::GET, ["api", "biz", "employees", id]) => {
            read(company.employee_by_id(path_id(id)?)?)
        }
        (Method::GET, ["api", "biz", "employments"]) => {
            read(list(company.employments_json(), &params)?)
        }
        (Method::GET, ["api", "biz", "employments", id]) => {
            read(company.employment_by_id(path_id(id)?, expand)?)
        }
        (Method::PUT, ["api", "biz", "employments", id]) => {
            let id = path_id(id)?;
            let save: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::new(400, format!("The request body is not valid: {e}")))?;
            let saved = company.save_employment(id, &save)?;
            Ok((Answer::ok(200, saved), true))
        }
        (Method::DELETE, ["api", "biz", "employments", id]) => {
            company.remove_employment(path_id(id)?)?;
            Ok((Answer::ok(204, Value::Null), true))
        }
        (Method::GET, ["api", "biz", "companysettings"]) => read(list(
            vec![company.company_settings(expand_currency)],
            &params,
        )?),
        (Method::GET, ["api", "biz", "companysettings", "1"]) => {
            read(company.company_settings(expand_currency))
        }
        (Method::GET, ["api", "biz", "currencycodes", id]) => {
            read(company.currency_code_by_id(path_id(id)?)?)
        }
        // Unimicro answers 401 for a path it does not know.
        _ => Err(ApiError::unauthorized()),
    }
}

/// The `/_sim/` control API (not part of Unimicro): see the module doc of
/// [`super`](crate::simulators::unimicro).
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
            lock(&shared.company).expire_tokens();
            reply(StatusCode::OK, json!({}))
        }
        (Method::GET, "/_sim/rates") => {
            let id = match params(uri).and_then(|p| number(&p, "employmentid")) {
                Ok(id) => id.map(|i| i as i64),
                Err(e) => return bad(e.message),
            };
            let company = lock(&shared.company);
            let rates: Vec<_> = company
                .rates
                .iter()
                .filter(|r| id.is_none_or(|id| r.employment_id == id))
                .cloned()
                .collect();
            to_value(serde_json::to_value(rates))
        }
        (Method::GET, "/_sim/stats") => {
            let company = lock(&shared.company);
            reply(
                StatusCode::OK,
                json!({
                    "writes": *shared.writes.borrow(),
                    "requests": shared.requests.load(Ordering::Relaxed),
                    "tokens": company.tokens.len(),
                    "tokens_issued": company.tokens_issued,
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
    fn form_bodies_decode() {
        let f = form(b"client_secret=a+b%26c%3Dd%2F%C3%A9&scope=AppFramework&bad=%zz&tail=%4");
        assert_eq!(
            f.get("client_secret").map(String::as_str),
            Some("a b&c=d/é")
        );
        assert_eq!(f.get("scope").map(String::as_str), Some("AppFramework"));
        assert_eq!(f.get("bad").map(String::as_str), Some("%zz"));
        assert_eq!(f.get("tail").map(String::as_str), Some("%4"));
    }
}
