//! Probes: `/healthz`, `/readyz` and `/metrics`, open (no token). They carry no secret, amount
//! or salary id, so they are served on the admin listener and, when `health_listen` is set, on
//! a listener of their own that a Kubernetes probe or a Prometheus scraper can reach without
//! the admin API (which stays on loopback) being reachable too.

use crate::clock::Clock;
use crate::engine::Engine;
use axum::extract::State as AxState;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;

#[derive(Clone)]
pub struct ProbeState {
    pub engine: Engine,
    pub clock: Arc<dyn Clock>,
}

/// The three probe routes, for either listener.
pub fn router(state: ProbeState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

fn health_body(state: &ProbeState) -> serde_json::Value {
    let unhealthy: Vec<_> = state
        .engine
        .unhealthy()
        .into_iter()
        .map(|(id, f)| json!({ "integration": id, "code": f.code, "error": f.message }))
        .collect();
    json!({ "ready": state.engine.is_ready(), "unhealthy_integrations": unhealthy })
}

/// Alive: the process answers. Lists integrations whose credentials are refused.
async fn healthz(AxState(state): AxState<ProbeState>) -> Response {
    Json(health_body(&state)).into_response()
}

/// Ready after startup recovery and while the engine runs; 503 otherwise.
async fn readyz(AxState(state): AxState<ProbeState>) -> Response {
    let status = if state.engine.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(health_body(&state))).into_response()
}

async fn metrics(AxState(state): AxState<ProbeState>) -> Response {
    let store = state.engine.store();
    let gauges = crate::metrics::Gauges {
        integrations: state
            .engine
            .integrations()
            .iter()
            .map(|i| i.to_string())
            .collect(),
        instances: store
            .counts_by_integration()
            .into_iter()
            .map(|(i, s, n)| (i.to_string(), s.as_str().to_owned(), n))
            .collect(),
        oldest_non_terminal_age_s: store
            .oldest_non_terminal()
            .ok()
            .flatten()
            .map(|at| (state.clock.now() - at).num_milliseconds().max(0) as f64 / 1000.0),
        held_salaries: store
            .held_salaries()
            .unwrap_or_default()
            .into_iter()
            .map(|(i, n)| (i.to_string(), n))
            .collect(),
        unhealthy_integrations: state
            .engine
            .unhealthy()
            .into_iter()
            .map(|(i, _)| i.to_string())
            .collect(),
        ready: state.engine.is_ready(),
    };
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        crate::metrics::render(&gauges),
    )
        .into_response()
}
