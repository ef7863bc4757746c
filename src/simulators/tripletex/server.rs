//! The HTTP side of the Tripletex simulator: the listener, a connection wrapper that can be cut
//! from inside a handler, request routing, auth, fault injection and the `/_sim/` control API.
//!
//! Architecture Invariant: the company mutex is never held across an await, and a handler never
//! panics on client input; every bad request gets Tripletex's error envelope.
//!
//! How "close the connection without an answer" works: every accepted socket is wrapped in
//! [`ConnIo`], which shares a kill flag with the [`Conn`] value handlers receive as
//! `ConnectInfo`. A handler that must drop the connection sets the flag and returns; hyper's
//! first write of the response head then fails, so not one byte of an answer leaves the process,
//! and hyper closes the socket. The same wrapper slows an answer down: once the handler sets a
//! chunk delay, the response head goes out at once and the body follows in small chunks.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use base64::Engine as _;
use chrono::NaiveDate;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::simulators::conn::Conn;

use super::faults::{Fault, FaultKind, Faults};
use super::model::{Company, EmployeeFilter};
use super::wire::{self, ApiError};

/// State shared by the server task and every [`super::Control`].
pub(crate) struct Shared {
    pub company: Mutex<Company>,
    pub faults: Mutex<Faults>,
    /// Count of applied writes to employment details.
    pub writes: watch::Sender<u64>,
    pub requests: AtomicU64,
    /// Becomes true when the simulator shuts down; ends latency waits and hangs.
    pub shutdown: watch::Sender<bool>,
    pub addr: SocketAddr,
    /// Host and prefix written into `url` fields, e.g. `127.0.0.1:5000/v2`.
    url_base: String,
    request_prefix: u32,
    pub rate: Mutex<RateWindow>,
    /// Requests answered 429 because the rate budget was spent (armed faults not counted).
    pub rate_limited: AtomicU64,
}

/// The simulated rate limit: `limit` requests per `window_s`-second period, counted over every
/// Tripletex API request (not `/_sim/`). Periods are fixed, back to back from `started`.
pub(crate) struct RateWindow {
    pub limit: u32,
    pub window_s: u64,
    started: Instant,
    period: u64,
    used: u32,
}

/// The rate-limit headers of one request, or the 429 when the budget is spent.
enum RateCheck {
    Allowed(Vec<(&'static str, String)>),
    Spent(Vec<(&'static str, String)>),
}

impl RateWindow {
    pub fn new(limit: u32, window_s: u64) -> Self {
        Self {
            limit,
            window_s: window_s.max(1),
            started: Instant::now(),
            period: 0,
            used: 0,
        }
    }

    /// Counts one request at `now`. `X-Rate-Limit-Reset` is the seconds left in the period,
    /// rounded up, so a client that waits that long is always in the next period.
    fn take(&mut self, now: Instant) -> RateCheck {
        let elapsed_ms = now.saturating_duration_since(self.started).as_millis();
        let window_ms = u128::from(self.window_s) * 1000;
        let period = u64::try_from(elapsed_ms / window_ms).unwrap_or(u64::MAX);
        if period != self.period {
            self.period = period;
            self.used = 0;
        }
        let left_ms = window_ms - elapsed_ms % window_ms;
        let reset_s = left_ms.div_ceil(1000);
        let headers = |remaining: u32| {
            vec![
                ("X-Rate-Limit-Limit", self.limit.to_string()),
                ("X-Rate-Limit-Remaining", remaining.to_string()),
                ("X-Rate-Limit-Reset", reset_s.to_string()),
            ]
        };
        if self.used >= self.limit {
            return RateCheck::Spent(headers(0));
        }
        self.used += 1;
        RateCheck::Allowed(headers(self.limit - self.used))
    }
}

/// Locks a mutex; a poisoned lock (a panic elsewhere) still holds consistent data because no
/// operation leaves the company half-changed.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub fn new(company: Company, addr: SocketAddr) -> Self {
        let rate = RateWindow::new(company.seed.rate_limit, company.seed.rate_window_s);
        Self {
            company: Mutex::new(company),
            faults: Mutex::new(Faults::default()),
            writes: watch::Sender::new(0),
            requests: AtomicU64::new(0),
            shutdown: watch::Sender::new(false),
            addr,
            url_base: format!("{addr}/v2"),
            request_prefix: rand::random(),
            rate: Mutex::new(rate),
            rate_limited: AtomicU64::new(0),
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

/// Tripletex's date, for session expiry: the UTC date plus [`super::Seed::date_ahead_days`]
/// (Tripletex keeps Norwegian time, a day ahead of UTC after midnight in Oslo). The simulator
/// is a fake server, not part of the daemon, so it reads the clock itself rather than through
/// `crate::clock`.
fn today(company: &super::model::Company) -> NaiveDate {
    let utc = chrono::Utc::now().date_naive();
    utc.checked_add_days(chrono::Days::new(u64::from(company.seed.date_ahead_days)))
        .unwrap_or(utc)
}

/// The router: everything goes through [`handle`], which routes by hand so that `>whoAmI`,
/// `%3EwhoAmI`, `:create` and `%3Acreate`, with or without the `/v2` prefix, all reach the
/// same code.
pub(crate) fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(shared)
}

/// An answer before headers are added.
struct Answer {
    status: u16,
    body: Value,
    /// Extra headers (429's Reset).
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
        // The request id is filled in by `respond`.
        Self::ok(e.status, e.body(""))
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
    let path = percent_decode(uri.path());
    if path == "/_sim" || path.starts_with("/_sim/") {
        return control(&shared, &method, &path, &uri, &body);
    }
    let seq = shared.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let request_id = format!("{:08x}-{seq}", shared.request_prefix);
    let path = match path.strip_prefix("/v2") {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest.to_string(),
        _ => path,
    };

    let latency_ms = lock(&shared.faults).latency_ms;
    if latency_ms > 0 && !shared.sleep(Duration::from_millis(latency_ms)).await {
        conn.kill();
        return drop_answer();
    }

    // The rate limit counts every API request; once spent, everything is 429 until the period
    // ends, as Tripletex documents.
    let rate = match lock(&shared.rate).take(Instant::now()) {
        RateCheck::Allowed(headers) => headers,
        RateCheck::Spent(headers) => {
            shared.rate_limited.fetch_add(1, Ordering::Relaxed);
            let mut answer: Answer = ApiError::new(
                429,
                0,
                "Too many requests; the rate limit is reached for this period.",
            )
            .into();
            answer.headers = headers;
            return respond(&shared, answer, &request_id, &[]);
        }
    };

    let fault = lock(&shared.faults).take(true, method.as_str(), &path);
    let mut close_after = false;
    if let Some(fault) = fault {
        tracing::debug!(method = %method, path, ?fault, "tripletex simulator: fault");
        let answer = match fault {
            FaultKind::SlowBody { chunk_delay_ms } => {
                // Slowness sticks to the connection, so the connection ends with this answer.
                conn.slow_down(chunk_delay_ms);
                close_after = true;
                None
            }
            FaultKind::ServerError => Some(ApiError::internal("Simulated internal error.").into()),
            FaultKind::Unavailable => Some(ApiError::new(503, 1000, "Service unavailable.").into()),
            FaultKind::RateLimited { reset_s } => {
                let mut answer: Answer =
                    ApiError::new(429, 0, "Too many requests; the rate limit is reached.").into();
                answer
                    .headers
                    .push(("X-Rate-Limit-Limit", lock(&shared.rate).limit.to_string()));
                answer.headers.push(("X-Rate-Limit-Remaining", "0".into()));
                if let Some(reset) = reset_s {
                    answer
                        .headers
                        .push(("X-Rate-Limit-Reset", reset.to_string()));
                }
                Some(answer)
            }
            FaultKind::Drop | FaultKind::ApplyThenDrop | FaultKind::ApplyThenHang { .. } => {
                conn.kill();
                return drop_answer();
            }
        };
        if let Some(answer) = answer {
            return respond(&shared, answer, &request_id, &[]);
        }
    }

    let (mut answer, wrote) = match api(&shared, &method, &path, &uri, &headers, &body) {
        Ok((answer, wrote)) => (answer, wrote),
        Err(e) => (e.into(), false),
    };
    if close_after {
        answer.headers.push(("connection", "close".into()));
    }
    tracing::debug!(method = %method, path, status = answer.status, "tripletex simulator");
    if wrote {
        shared.writes.send_modify(|n| *n += 1);
        let after = lock(&shared.faults).take(false, method.as_str(), &path);
        // A hang that runs its course sends the normal answer; one cut short by shutdown, and
        // every other after-write fault, closes the connection without an answer.
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
    respond(&shared, answer, &request_id, &rate)
}

/// The response returned after the connection was killed; hyper fails to write it.
fn drop_answer() -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

fn respond(
    _shared: &Shared,
    mut answer: Answer,
    request_id: &str,
    rate: &[(&'static str, String)],
) -> Response {
    if answer.status >= 400 {
        if let Some(id) = answer.body.get_mut("requestId") {
            *id = Value::String(request_id.to_string());
        }
    }
    let bytes = answer.body.to_string();
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() =
        StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let mut put = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            h.insert(name, value);
        }
    };
    put("x-tlx-request-id", request_id);
    if answer.status < 400 {
        // The budget as counted when the request arrived.
        for (name, value) in rate {
            put(name, value);
        }
    }
    for (name, value) in &answer.headers {
        put(name, value);
    }
    response
}

/// Decodes `%XX` escapes in a path; anything malformed is kept as written.
fn percent_decode(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Query parameters; a repeated name keeps its last value.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(uri: &Uri) -> Result<Self, ApiError> {
        Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map(|Query(pairs)| Self(pairs))
            .map_err(|e| ApiError::validation(21000, vec![("query", e.body_text())]))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn int<T: std::str::FromStr>(&self, name: &'static str) -> Result<Option<T>, ApiError> {
        match self.get(name).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| {
                ApiError::validation(21000, vec![(name, format!("{v:?} is not an integer."))])
            }),
        }
    }

    /// A comma-separated list of ids, as Tripletex accepts for `id`, `employmentId`.
    fn ids(&self, name: &'static str) -> Result<Option<Vec<i64>>, ApiError> {
        match self.get(name).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => v
                .split(',')
                .map(|id| id.trim().parse())
                .collect::<Result<Vec<i64>, _>>()
                .map(Some)
                .map_err(|_| {
                    ApiError::validation(
                        21000,
                        vec![(name, format!("{v:?} is not a list of ids."))],
                    )
                }),
        }
    }

    fn page(&self) -> Result<(usize, usize), ApiError> {
        Ok((
            self.int("from")?.unwrap_or(0),
            self.int("count")?.unwrap_or(1000),
        ))
    }
}

fn path_id(segment: &str) -> Result<i64, ApiError> {
    segment.parse().map_err(|_| {
        ApiError::new(
            400,
            12000,
            format!("Path parameter {segment:?} is not an id."),
        )
    })
}

/// Basic auth: `(user, password)`.
fn basic_auth(headers: &HeaderMap) -> Result<(String, String), ApiError> {
    let missing = || {
        ApiError::unauthorized(
            "Authorization (Basic, company id : session token) is missing or malformed.",
        )
    };
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(missing)?;
    let (scheme, encoded) = value.trim().split_once(' ').ok_or_else(missing)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(missing());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(missing)?;
    let (user, password) = decoded.split_once(':').ok_or_else(missing)?;
    Ok((user.to_string(), password.to_string()))
}

fn new_token() -> String {
    let bytes: [u8; 24] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The Tripletex API proper: `Ok((answer, wrote))`, where `wrote` says a details write was
/// applied.
fn api(
    shared: &Shared,
    method: &Method,
    path: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Answer, bool), ApiError> {
    let base = shared.url_base.as_str();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let params = Params::parse(uri)?;
    let get = *method == Method::GET;

    if let ["token", "session", ":create"] = segments.as_slice() {
        if *method != Method::PUT {
            return Err(ApiError::method_not_allowed(method.as_str(), path));
        }
        let mut company = lock(&shared.company);
        let today = today(&company);
        let (token, session) = company.create_session(
            params.get("consumerToken"),
            params.get("employeeToken"),
            params.get("expirationDate"),
            today,
            new_token(),
        )?;
        return Ok((
            Answer::ok(200, wire::single(wire::session(base, &token, &session))),
            false,
        ));
    }

    let (user, token) = basic_auth(headers)?;
    let mut company = lock(&shared.company);
    let today = today(&company);
    company.authenticate(&user, &token, today)?;

    let read = |value: Value| Ok((Answer::ok(200, value), false));
    match segments.as_slice() {
        ["token", "session", ">whoAmI"] if get => {
            read(wire::single(wire::who_am_i(base, &company.seed)))
        }
        ["company", id] if get => {
            let id = path_id(id)?;
            if id != company.seed.company_id && id != 0 {
                return Err(ApiError::not_found("company", id));
            }
            read(wire::single(wire::company(base, &company.seed)))
        }
        ["employee"] if get => {
            let filter = EmployeeFilter {
                ids: params.ids("id")?,
                employee_number: params.get("employeeNumber").map(str::to_string),
                email: params.get("email").map(str::to_string),
                first_name: params.get("firstName").map(str::to_string),
                last_name: params.get("lastName").map(str::to_string),
            };
            let (from, count) = params.page()?;
            let all = company
                .find_employees(&filter)
                .into_iter()
                .map(|e| wire::employee(base, &company, e))
                .collect();
            read(wire::list(all, from, count))
        }
        ["employee", "employment"] if get => {
            let employee_id = params.int("employeeId")?;
            let (from, count) = params.page()?;
            let all = company
                .employments_of(employee_id)
                .into_iter()
                .map(|m| wire::employment(base, m, &company.details_of(Some(&[m.id]))))
                .collect();
            read(wire::list(all, from, count))
        }
        ["employee", "employment", "details"] if get => {
            let ids = params.ids("employmentId")?;
            let (from, count) = params.page()?;
            let all = company
                .details_of(ids.as_deref())
                .into_iter()
                .map(|d| wire::details(base, d))
                .collect();
            read(wire::list(all, from, count))
        }
        ["employee", "employment", "details"] if *method == Method::POST => {
            let input = wire::details_input(body)?;
            let row = company.create_details(input)?;
            Ok((
                Answer::ok(201, wire::single(wire::details(base, &row))),
                true,
            ))
        }
        ["employee", "employment", "details", id] if get => {
            let row = company.details_row(path_id(id)?)?;
            read(wire::single(wire::details(base, row)))
        }
        ["employee", "employment", "details", id] if *method == Method::PUT => {
            let id = path_id(id)?;
            let input = wire::details_input(body)?;
            let row = company.update_details(id, input)?;
            Ok((
                Answer::ok(200, wire::single(wire::details(base, &row))),
                true,
            ))
        }
        ["employee", "employment", id] if get => {
            let m = company.employment(path_id(id)?)?;
            read(wire::single(wire::employment(
                base,
                m,
                &company.details_of(Some(&[m.id])),
            )))
        }
        ["employee", id] if get => {
            let e = company.employee(path_id(id)?)?;
            read(wire::single(wire::employee(base, &company, e)))
        }
        ["token", "session", ">whoAmI"]
        | ["company", _]
        | ["employee"]
        | ["employee", _]
        | ["employee", "employment", _]
        | ["employee", "employment", "details", _] => {
            Err(ApiError::method_not_allowed(method.as_str(), path))
        }
        _ => Err(ApiError::no_route(method.as_str(), path)),
    }
}

/// `PUT /_sim/rate-limit`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitBody {
    limit: u32,
    window_s: u64,
}

/// The `/_sim/` control API (not part of Tripletex): see the module doc of
/// [`super`](crate::simulators::tripletex).
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
        (Method::POST, "/_sim/expire-sessions") => {
            lock(&shared.company).expire_sessions();
            reply(StatusCode::OK, json!({}))
        }
        (Method::GET, "/_sim/details") => {
            let ids = match Params::parse(uri).and_then(|p| p.ids("employmentId")) {
                Ok(ids) => ids,
                Err(e) => return bad(e.message),
            };
            let rows: Vec<_> = lock(&shared.company)
                .details_of(ids.as_deref())
                .into_iter()
                .cloned()
                .collect();
            to_value(serde_json::to_value(rows))
        }
        (Method::GET, "/_sim/stats") => reply(
            StatusCode::OK,
            json!({
                "writes": *shared.writes.borrow(),
                "requests": shared.requests.load(Ordering::Relaxed),
                "sessions": lock(&shared.company).sessions.len(),
                "rate_limited": shared.rate_limited.load(Ordering::Relaxed),
            }),
        ),
        (Method::GET, "/_sim/rate-limit") => {
            let rate = lock(&shared.rate);
            reply(
                StatusCode::OK,
                json!({ "limit": rate.limit, "window_s": rate.window_s }),
            )
        }
        (Method::PUT, "/_sim/rate-limit") => match serde_json::from_slice::<RateLimitBody>(body) {
            Ok(b) => {
                *lock(&shared.rate) = RateWindow::new(b.limit, b.window_s);
                reply(
                    StatusCode::OK,
                    json!({ "limit": b.limit, "window_s": b.window_s.max(1) }),
                )
            }
            Err(e) => bad(format!(
                "body is not {{\"limit\": N, \"window_s\": S}}: {e}"
            )),
        },
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
    fn paths_are_percent_decoded() {
        assert_eq!(
            percent_decode("/token/session/%3EwhoAmI"),
            "/token/session/>whoAmI"
        );
        assert_eq!(
            percent_decode("/token/session/%3acreate"),
            "/token/session/:create"
        );
        assert_eq!(percent_decode("/a%2"), "/a%2");
        assert_eq!(percent_decode("/a%zz%"), "/a%zz%");
    }
}
