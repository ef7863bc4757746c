//! The daemon proves who it is before the CLI sends it anything (issue 13, point 10).
//!
//! `admin.json` (owner-only, in the store directory) names the admin port and a bearer token.
//! After a SIGKILL the file stays behind, and any local process can bind that port. So the CLI
//! first sends a fresh random nonce, without the token, to `GET /admin/v1/proof`; the daemon
//! answers HMAC-SHA256 under the token of `PROOF_CONTEXT` and the nonce. Only a process that
//! read the owner-only file, or was given the token by the daemon that wrote it, can answer;
//! the CLI compares in constant time and sends the token and any data only after a match.
//! Pure apart from the route: the nonce and token come in as arguments.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::sync::Arc;

pub const PATH: &str = "/admin/v1/proof";
/// Separates this use of the token from any other MAC a future version might compute with it.
const PROOF_CONTEXT: &[u8] = b"salary-sync admin proof v1.";
/// A nonce is 32 random bytes, hex: 64 characters.
const NONCE_LEN: usize = 64;

#[derive(Debug, Serialize, Deserialize)]
pub struct ProofQuery {
    pub nonce: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ProofAnswer {
    pub proof: String,
}

/// The route, answering for `token`; open (it carries no secret, only a MAC of a nonce the
/// caller chose).
pub fn router(token: Arc<str>) -> Router {
    Router::new().route(PATH, get(prove)).with_state(token)
}

async fn prove(State(token): State<Arc<str>>, Query(query): Query<ProofQuery>) -> Response {
    if query.nonce.len() != NONCE_LEN || !query.nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
        return (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({ "error": "nonce must be 64 hex digits" })),
        )
            .into_response();
    }
    Json(ProofAnswer {
        proof: proof(&token, &query.nonce),
    })
    .into_response()
}

/// A fresh nonce for one check.
pub fn nonce() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the daemon holding `token` answers to `nonce`.
pub fn proof(token: &str, nonce: &str) -> String {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(token.as_bytes()) else {
        return String::new();
    };
    mac.update(PROOF_CONTEXT);
    mac.update(nonce.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// True when `answer` is the proof of `nonce` under `token`, compared in constant time.
pub fn verify(token: &str, nonce: &str, answer: &str) -> bool {
    let expected = proof(token, nonce);
    !expected.is_empty()
        && super::admin::constant_time_eq(expected.as_bytes(), answer.trim().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_token_holder_answers_a_nonce() {
        let n = nonce();
        assert_eq!(n.len(), NONCE_LEN);
        let good = proof("token-a", &n);
        assert!(verify("token-a", &n, &good));
        assert!(!verify("token-b", &n, &good));
        assert!(!verify("token-a", &nonce(), &good));
        assert!(!verify("token-a", &n, ""));
    }
}
