//! The webhook: `POST /v1/salary-events`, one event or a batch, signed by the HR system.
//!
//! Order of checks (each answer is JSON that names the problem): shutting down 503, too large
//! 413, a body not received within the body timeout 408, a body whose framing is broken (a
//! malformed chunk size) 400, bad signature 401, a declared content-type that is not JSON 415,
//! not JSON 400, more than `BATCH_EVENTS_MAX` events 413, invalid content 422 (each invalid
//! event's `field` named; the answer lists the events up to the `PROBLEMS_LISTED_MAX`th
//! problem and counts them all), unknown integration 404. A batch
//! is all-or-nothing up to here: one bad event stores none. Then the events are stored and
//! fsynced before the answer: 202 when something new was accepted, 200 when every event was a
//! duplicate, 409 when an `event_id` was reused with a different body (the others are stored).
//! Storage trouble answers 503 so the sender retries.

use super::service::SubmitItem;
use super::signature::{self, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::clock::Clock;
use crate::domain::change::{check_occurred_at, parse_batch, BatchError};
use crate::domain::IntegrationId;
use crate::engine::Engine;
use crate::secret::Secret;
use crate::storage::IngestOutcome;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use http_body_util::BodyExt;
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use tokio::sync::watch;
use tracing::{info, warn};

pub const PATH: &str = "/v1/salary-events";

/// A 422 lists the events up to and including this many invalid ones (and counts them all), so
/// the answer to a bad batch stays small whatever the batch.
pub const PROBLEMS_LISTED_MAX: usize = 100;

#[derive(Clone)]
pub struct WebhookState {
    pub engine: Engine,
    pub integrations: Arc<HashSet<IntegrationId>>,
    pub clock: Arc<dyn Clock>,
    pub secret: Secret,
    pub replay_window_s: i64,
    pub body_len_max: usize,
    /// The whole body must arrive within this (a sender that trickles it is cut off).
    pub body_timeout: std::time::Duration,
    /// How far in the future by our clock an event's `occurred_at` may lie.
    pub occurred_at_future_max_s: i64,
    pub stopping: watch::Receiver<bool>,
}

pub fn router(state: WebhookState) -> Router {
    Router::new()
        .route(PATH, post(ingest))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::map_response(counted))
        .with_state(state)
}

/// Counts every answer by status (`salary_sync_webhook_requests_total`).
async fn counted(response: Response) -> Response {
    crate::metrics::webhook_request(response.status().as_u16());
    response
}

async fn no_route(uri: axum::http::Uri) -> Response {
    answer(
        StatusCode::NOT_FOUND,
        format!("no such path {:?}; events go to POST {PATH}", uri.path()),
        &[],
    )
}

async fn wrong_method(method: axum::http::Method) -> Response {
    answer(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed here; events go to POST {PATH}"),
        &[],
    )
}

/// Why a body could not be read whole.
enum BodyError {
    TooLarge,
    Slow,
    Broken(String),
}

/// Reads the body frame by frame: at most `len_max` bytes, all of it within `timeout`.
async fn read_body(
    mut body: Body,
    len_max: usize,
    timeout: std::time::Duration,
) -> Result<Vec<u8>, BodyError> {
    let read = async {
        let mut bytes = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| BodyError::Broken(e.to_string()))?;
            if let Ok(data) = frame.into_data() {
                if bytes.len().saturating_add(data.len()) > len_max {
                    return Err(BodyError::TooLarge);
                }
                bytes.extend_from_slice(&data);
            }
        }
        Ok(bytes)
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or(Err(BodyError::Slow))
}

fn answer(status: StatusCode, error: impl Into<String>, results: &[SubmitItem]) -> Response {
    (
        status,
        Json(json!({ "error": error.into(), "results": results })),
    )
        .into_response()
}

/// The 422: the events up to the `PROBLEMS_LISTED_MAX`th invalid one, and the counts.
fn invalid_answer(mut items: Vec<SubmitItem>, invalid: usize) -> Response {
    let events = items.len();
    let mut listed = 0;
    let cut = items
        .iter()
        .position(|item| {
            if item.outcome == "invalid" {
                listed += 1;
            }
            listed == PROBLEMS_LISTED_MAX
        })
        .map_or(events, |last| last + 1);
    items.truncate(cut);
    let error = if cut < events {
        format!("{invalid} event(s) are invalid; nothing was stored; the first {PROBLEMS_LISTED_MAX} are listed")
    } else {
        format!("{invalid} event(s) are invalid; nothing was stored")
    };
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({
            "error": error,
            "invalid": invalid,
            "events": events,
            "results": items,
        })),
    )
        .into_response()
}

/// `application/json` or any `application/*+json`, with or without parameters (`charset`).
fn is_json(value: &axum::http::HeaderValue) -> bool {
    let Ok(text) = value.to_str() else {
        return false;
    };
    let essence = text.split(';').next().unwrap_or_default().trim();
    let essence = essence.to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.ends_with("+json"))
}

async fn ingest(State(state): State<WebhookState>, headers: HeaderMap, body: Body) -> Response {
    if *state.stopping.borrow() {
        return answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "the daemon is shutting down; send again later",
            &[],
        );
    }
    if state.engine.has_failed() {
        let message = "the engine stopped after a storage failure; send again later";
        return answer(StatusCode::SERVICE_UNAVAILABLE, message, &[]);
    }
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let too_large = || {
        answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "body is larger than {} bytes; send smaller batches",
                state.body_len_max
            ),
            &[],
        )
    };
    if declared.is_some_and(|n| n > state.body_len_max) {
        return too_large();
    }
    let body = match read_body(body, state.body_len_max, state.body_timeout).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => return too_large(),
        Err(BodyError::Slow) => {
            warn!(
                timeout_s = state.body_timeout.as_secs(),
                "webhook refused: the body did not arrive in time"
            );
            return answer(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the body did not arrive within {} s; send it again",
                    state.body_timeout.as_secs()
                ),
                &[],
            );
        }
        Err(BodyError::Broken(e)) => {
            return answer(
                StatusCode::BAD_REQUEST,
                format!("the body is not well-formed HTTP ({e})"),
                &[],
            )
        }
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Err(e) = signature::verify(
        state.secret.expose().as_bytes(),
        header(TIMESTAMP_HEADER),
        header(SIGNATURE_HEADER),
        &body,
        state.clock.now(),
        state.replay_window_s,
    ) {
        warn!(error = %e, "webhook refused: bad signature");
        return answer(StatusCode::UNAUTHORIZED, format!("bad signature: {e}"), &[]);
    }
    // Only a JSON body is read as JSON. A missing content-type is tolerated (the signature
    // already proves the sender); a declared other type is a sender bug, answered plainly.
    if let Some(declared) = headers.get(axum::http::header::CONTENT_TYPE) {
        if !is_json(declared) {
            return answer(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "content-type {:?} is not JSON; send application/json",
                    String::from_utf8_lossy(declared.as_bytes())
                ),
                &[],
            );
        }
    }
    let parsed = match parse_batch(&body) {
        Ok(p) => p,
        Err(e @ BatchError::TooMany { .. }) => {
            return answer(StatusCode::PAYLOAD_TOO_LARGE, e.to_string(), &[])
        }
        Err(e) => return answer(StatusCode::BAD_REQUEST, e.to_string(), &[]),
    };
    let now = state.clock.now();
    if parsed.is_empty() {
        return answer(StatusCode::UNPROCESSABLE_ENTITY, "the batch is empty", &[]);
    }
    let mut items = Vec::with_capacity(parsed.len());
    let mut changes = Vec::with_capacity(parsed.len());
    let (mut invalid, mut unknown) = (0, 0);
    for (index, result) in parsed.into_iter().enumerate() {
        let mut item = SubmitItem {
            index,
            event_id: None,
            outcome: "valid".into(),
            workflow_id: None,
            error: None,
            field: None,
        };
        let result = result.and_then(|change| {
            check_occurred_at(&change, now, state.occurred_at_future_max_s).map(|()| change)
        });
        match result {
            Err(e) => {
                invalid += 1;
                item.outcome = "invalid".into();
                item.error = Some(e.to_string());
                item.field = Some(e.field);
            }
            Ok(change) => {
                item.event_id = Some(change.event_id.to_string());
                if !state.integrations.contains(&change.integration_id) {
                    unknown += 1;
                    item.outcome = "unknown-integration".into();
                    item.error = Some(format!(
                        "integration {} is not configured in this daemon",
                        change.integration_id
                    ));
                }
                changes.push(change);
            }
        }
        items.push(item);
    }
    if invalid > 0 {
        return invalid_answer(items, invalid);
    }
    if unknown == 0 {
        let mut disabled = 0;
        for (item, change) in items.iter_mut().zip(&changes) {
            let enabled = match state.engine.store().integration(&change.integration_id) {
                Ok(switch) => switch.is_some_and(|s| s.enabled),
                Err(e) => {
                    return answer(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("store unreadable ({e}); send again later"),
                        &[],
                    )
                }
            };
            if !enabled {
                disabled += 1;
                item.outcome = "not-enabled".into();
                item.error = Some(format!(
                    "salary sync is not enabled for integration {}",
                    change.integration_id
                ));
            }
        }
        if disabled > 0 {
            return answer(StatusCode::CONFLICT, format!("salary sync is not enabled for {disabled} event(s)' integration; nothing was stored"), &items);
        }
    }
    if unknown > 0 {
        return answer(
            StatusCode::NOT_FOUND,
            format!("{unknown} event(s) name an unknown integration; nothing was stored"),
            &items,
        );
    }
    let outcomes = match state
        .engine
        .store()
        .ingest(changes, state.clock.now())
        .await
    {
        Ok(o) => o,
        Err(e) => {
            warn!(error = %e, "webhook events not stored");
            return answer(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("events not stored ({e}); send again later"),
                &[],
            );
        }
    };
    let (mut accepted, mut conflicts) = (0, 0);
    for (item, outcome) in items.iter_mut().zip(outcomes) {
        let (name, id) = match outcome {
            IngestOutcome::Accepted(id) => {
                accepted += 1;
                ("accepted", Some(id))
            }
            IngestOutcome::Duplicate(id) => ("duplicate", Some(id)),
            IngestOutcome::Conflict(id) => {
                conflicts += 1;
                item.error = Some(format!(
                    "event_id already used by {id} with a different body; not stored"
                ));
                ("conflict", Some(id))
            }
            IngestOutcome::Skipped => {
                item.error =
                    Some("occurred before salary sync was activated; logged, not sent".into());
                ("skipped", None)
            }
            IngestOutcome::NotEnabled => {
                // Disabled between the check above and the commit.
                conflicts += 1;
                item.error = Some("salary sync was disabled meanwhile; not stored".into());
                ("not-enabled", None)
            }
        };
        item.outcome = name.into();
        item.workflow_id = id;
    }
    if accepted > 0 {
        state.engine.notify();
    }
    info!(
        events = items.len(),
        accepted, conflicts, "webhook batch stored"
    );
    let (status, message) = match (conflicts, accepted) {
        (0, 0) => (
            StatusCode::OK,
            "nothing new: every event was a duplicate or occurred before activation".to_owned(),
        ),
        (0, _) => (StatusCode::ACCEPTED, String::new()),
        (n, _) => (
            StatusCode::CONFLICT,
            format!("{n} event id(s) were reused with a different body"),
        ),
    };
    if message.is_empty() {
        (status, Json(json!({ "results": items }))).into_response()
    } else {
        answer(status, message, &items)
    }
}
