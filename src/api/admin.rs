//! The admin API: what the CLI uses while the daemon holds the store. Listens on loopback by
//! default and requires the bearer token the daemon writes, mode 0600, into the store
//! directory (`admin.json`), so only a user who can read the store can drive it.

use super::service::{self, SubmitError};
use crate::clock::Clock;
use crate::domain::{IntegrationId, OperatorAction, State, WorkflowId};
use crate::engine::Engine;
use crate::storage::Filter;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State as AxState};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

/// The largest submit body the admin API takes.
pub const SUBMIT_BODY_LEN_MAX: usize = 4 * 1024 * 1024;
/// The discovery file's name inside the store directory.
pub const DISCOVERY_FILE: &str = "admin.json";

/// How a CLI finds the running daemon.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Discovery {
    pub addr: SocketAddr,
    /// Where the webhook listens, when configured.
    #[serde(default)]
    pub webhook: Option<SocketAddr>,
    /// Where the probes' own listener is, when configured (`health_listen`).
    #[serde(default)]
    pub health: Option<SocketAddr>,
    pub pid: u32,
    pub token: String,
}

impl Discovery {
    pub fn path(store: &FsPath) -> PathBuf {
        store.join(DISCOVERY_FILE)
    }

    pub fn read(store: &FsPath) -> Option<Self> {
        let text = std::fs::read_to_string(Self::path(store)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Writes the file readable by the owner only.
    pub fn write(&self, store: &FsPath) -> std::io::Result<()> {
        use std::io::Write;
        let path = Self::path(store);
        let tmp = path.with_extension("json.tmp");
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp)?;
        file.write_all(
            serde_json::to_string(self)
                .map_err(std::io::Error::other)?
                .as_bytes(),
        )?;
        file.sync_all()?;
        std::fs::rename(tmp, path)
    }

    pub fn remove(store: &FsPath) {
        let _ = std::fs::remove_file(Self::path(store));
    }
}

#[derive(Clone)]
pub struct AdminState {
    pub engine: Engine,
    pub integrations: Arc<HashSet<IntegrationId>>,
    pub clock: Arc<dyn Clock>,
    pub token: Arc<str>,
}

pub fn router(state: AdminState) -> Router {
    // Health and metrics carry no secrets, amounts or salary ids: open, for probes and scrapers.
    let open = super::probes::router(super::probes::ProbeState {
        engine: state.engine.clone(),
        clock: Arc::clone(&state.clock),
    });
    Router::new()
        .route("/admin/v1/health", get(health))
        .route("/admin/v1/events", post(submit))
        .route("/admin/v1/instances", get(list))
        .route("/admin/v1/instances/{id}", get(show))
        .route("/admin/v1/instances/{id}/{action}", post(operate))
        .route("/admin/v1/bulk/{action}", post(operate_many))
        .route("/admin/v1/errors", get(errors))
        .route("/admin/v1/prune", post(prune))
        .route("/admin/v1/integrations", get(integrations))
        .route(
            "/admin/v1/integrations/{id}/{action}",
            post(switch_integration),
        )
        .layer(DefaultBodyLimit::max(SUBMIT_BODY_LEN_MAX))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state)
        .merge(open)
}

async fn require_token(
    AxState(state): AxState<AdminState>,
    request: Request,
    next: Next,
) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if constant_time_eq(given.as_bytes(), state.token.as_bytes()) {
        next.run(request).await
    } else {
        problem(
            StatusCode::UNAUTHORIZED,
            "missing or wrong admin token (see admin.json in the store directory)",
        )
    }
}

/// Compares without an early exit on the first differing byte.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn problem(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn health(AxState(state): AxState<AdminState>) -> Response {
    let unhealthy: Vec<_> = state
        .engine
        .unhealthy()
        .into_iter()
        .map(|(id, f)| json!({ "integration": id, "error": f.to_string() }))
        .collect();
    Json(json!({ "status": "ok", "pid": std::process::id(), "unhealthy_integrations": unhealthy }))
        .into_response()
}

async fn submit(AxState(state): AxState<AdminState>, body: Bytes) -> Response {
    match service::submit(
        state.engine.store(),
        &state.integrations,
        &body,
        state.clock.as_ref(),
    )
    .await
    {
        Ok(items) => {
            state.engine.notify();
            Json(items).into_response()
        }
        Err(SubmitError::Malformed(m)) => problem(StatusCode::BAD_REQUEST, m),
        Err(SubmitError::Storage(e)) => problem(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

#[derive(Debug, Default, Deserialize, Serialize)]
pub struct ListQuery {
    pub state: Option<String>,
    pub integration: Option<String>,
    pub salary: Option<String>,
    pub since: Option<String>,
    /// Paging: only instances with a larger id than this one (`wf-42` or `42`).
    pub after: Option<String>,
    /// Paging: at most this many instances.
    pub limit: Option<usize>,
}

impl ListQuery {
    pub fn after_id(&self) -> Result<Option<WorkflowId>, String> {
        self.after.as_deref().map(str::parse).transpose()
    }
}

impl ListQuery {
    pub fn to_filter(&self) -> Result<Filter, String> {
        Ok(Filter {
            state: self.state.as_deref().map(State::parse).transpose()?,
            integration: self
                .integration
                .as_deref()
                .map(IntegrationId::parse)
                .transpose()?,
            salary: self
                .salary
                .as_deref()
                .map(crate::domain::SalaryId::parse)
                .transpose()?,
            since: self
                .since
                .as_deref()
                .map(|s| {
                    chrono::DateTime::parse_from_rfc3339(s)
                        .map(|t| t.with_timezone(&chrono::Utc))
                        .map_err(|e| format!("since: `{s}` is not an RFC 3339 time: {e}"))
                })
                .transpose()?,
        })
    }
}

async fn list(AxState(state): AxState<AdminState>, Query(q): Query<ListQuery>) -> Response {
    let (filter, after) = match (q.to_filter(), q.after_id()) {
        (Ok(f), Ok(a)) => (f, a),
        (Err(m), _) | (_, Err(m)) => return problem(StatusCode::BAD_REQUEST, m),
    };
    match service::list_page(state.engine.store(), &filter, after, q.limit) {
        Ok(page) => Json(page).into_response(),
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn show(AxState(state): AxState<AdminState>, Path(id): Path<String>) -> Response {
    let id: WorkflowId = match id.parse() {
        Ok(id) => id,
        Err(m) => return problem(StatusCode::BAD_REQUEST, m),
    };
    match service::show(state.engine.store(), id) {
        Ok(Some(shown)) => Json(shown).into_response(),
        Ok(None) => problem(
            StatusCode::NOT_FOUND,
            format!("workflow {id} does not exist"),
        ),
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

#[derive(Debug, Default, Deserialize, Serialize)]
pub struct ActionBody {
    pub reason: Option<String>,
}

async fn operate(
    AxState(state): AxState<AdminState>,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let id: WorkflowId = match id.parse() {
        Ok(id) => id,
        Err(m) => return problem(StatusCode::BAD_REQUEST, m),
    };
    let body: ActionBody = if body.is_empty() {
        ActionBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => return problem(StatusCode::BAD_REQUEST, format!("body: {e}")),
        }
    };
    let reason = body.reason.unwrap_or_else(|| "by operator".into());
    let action = match OperatorAction::from_verb(&action, reason) {
        Ok(a) => a,
        Err(m) => return problem(StatusCode::NOT_FOUND, m),
    };
    let store = state.engine.store();
    match service::operate(
        store,
        id,
        action,
        state.clock.as_ref(),
        state.engine.retry_policy(),
    )
    .await
    {
        Ok(wf) => {
            state.engine.notify();
            Json(wf).into_response()
        }
        Err(crate::engine::operator::Error::NotFound(id)) => problem(
            StatusCode::NOT_FOUND,
            format!("workflow {id} does not exist"),
        ),
        Err(crate::engine::operator::Error::Refused(m)) => problem(StatusCode::CONFLICT, m),
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

#[derive(Debug, Default, Deserialize)]
struct ErrorsQuery {
    integration: Option<String>,
}

async fn errors(AxState(state): AxState<AdminState>, Query(q): Query<ErrorsQuery>) -> Response {
    let integration = match q
        .integration
        .as_deref()
        .map(IntegrationId::parse)
        .transpose()
    {
        Ok(i) => i,
        Err(m) => return problem(StatusCode::BAD_REQUEST, m),
    };
    match service::errors(state.engine.store(), integration.as_ref()) {
        Ok(entries) => Json(entries).into_response(),
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn integrations(AxState(state): AxState<AdminState>) -> Response {
    match service::integrations(state.engine.store(), &state.integrations) {
        Ok(list) => Json(list).into_response(),
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

#[derive(Debug, Default, Deserialize, Serialize)]
pub struct SwitchBody {
    /// RFC 3339; the activation instant (default now).
    pub from: Option<String>,
}

/// Parses an optional RFC 3339 instant, naming the field on error.
pub fn parse_instant(
    field: &str,
    value: Option<&str>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, String> {
    value
        .map(|s| {
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|e| format!("{field}: `{s}` is not an RFC 3339 time: {e}"))
        })
        .transpose()
}

async fn switch_integration(
    AxState(state): AxState<AdminState>,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let id = match IntegrationId::parse(&id) {
        Ok(id) => id,
        Err(m) => return problem(StatusCode::BAD_REQUEST, m),
    };
    let body: SwitchBody = if body.is_empty() {
        SwitchBody::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => return problem(StatusCode::BAD_REQUEST, format!("body: {e}")),
        }
    };
    let from = match parse_instant("from", body.from.as_deref()) {
        Ok(f) => f,
        Err(m) => return problem(StatusCode::BAD_REQUEST, m),
    };
    let enabled = match action.as_str() {
        "enable" => true,
        "disable" => false,
        other => {
            return problem(
                StatusCode::NOT_FOUND,
                format!("no action `{other}` (enable, disable)"),
            )
        }
    };
    match service::set_integration(
        state.engine.store(),
        &state.integrations,
        id,
        enabled,
        from,
        state.clock.as_ref(),
    )
    .await
    {
        Ok(view) => Json(view).into_response(),
        Err(service::SwitchError::Unknown(id)) => problem(
            StatusCode::NOT_FOUND,
            format!("integration {id} is not in the configuration"),
        ),
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

#[derive(Debug, Default, Deserialize, Serialize)]
pub struct PruneBody {
    /// e.g. `90d`
    pub older_than: String,
}

async fn prune(AxState(state): AxState<AdminState>, body: Bytes) -> Response {
    let body: PruneBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return problem(StatusCode::BAD_REQUEST, format!("body: {e}")),
    };
    let age = match service::parse_age(&body.older_than) {
        Ok(a) => a,
        Err(m) => return problem(StatusCode::BAD_REQUEST, m),
    };
    match service::prune(state.engine.store(), age, state.clock.as_ref()).await {
        Ok(p) => Json(p).into_response(),
        Err(e) => problem(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

#[derive(Debug, Default, Deserialize, Serialize)]
pub struct BulkBody {
    pub reason: Option<String>,
    #[serde(default)]
    pub filter: crate::api::service::BulkFilter,
}

async fn operate_many(
    AxState(state): AxState<AdminState>,
    Path(action): Path<String>,
    body: Bytes,
) -> Response {
    let body: BulkBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return problem(StatusCode::BAD_REQUEST, format!("body: {e}")),
    };
    if body.filter.is_empty() {
        return problem(
            StatusCode::BAD_REQUEST,
            "a bulk action needs at least one filter",
        );
    }
    let reason = body.reason.unwrap_or_else(|| "by operator".into());
    let action = match OperatorAction::from_verb(&action, reason) {
        Ok(a) => a,
        Err(m) => return problem(StatusCode::NOT_FOUND, m),
    };
    let store = state.engine.store();
    match service::operate_many(
        store,
        action,
        &body.filter,
        state.clock.as_ref(),
        state.engine.retry_policy(),
    )
    .await
    {
        Ok(results) => {
            state.engine.notify();
            Json(results).into_response()
        }
        Err(m) => problem(StatusCode::BAD_REQUEST, m),
    }
}
