//! What the simulators' `/_sim/` control APIs share: JSON replies and the verbs of the fault
//! queue (`GET` shows it, `PUT` replaces it, `POST` arms one more fault, `DELETE` clears it).

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::{Mutex, PoisonError};

/// A JSON answer.
pub(crate) fn reply(status: StatusCode, value: Value) -> Response {
    let mut response = Response::new(Body::from(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A 400 with `{"error": message}`.
pub(crate) fn bad(message: String) -> Response {
    reply(StatusCode::BAD_REQUEST, json!({ "error": message }))
}

/// A 200 with `v`, or a 500 naming why it did not serialize.
pub(crate) fn to_value(v: Result<Value, serde_json::Error>) -> Response {
    match v {
        Ok(v) => reply(StatusCode::OK, v),
        Err(e) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({ "error": e.to_string() }),
        ),
    }
}

/// `/_sim/faults` over the fault queue `queue` (of type `Q`, holding faults `F` that `arm`
/// adds); `None` for any other request.
pub(crate) fn faults<Q, F>(
    queue: &Mutex<Q>,
    arm: fn(&mut Q, F),
    method: &Method,
    path: &str,
    body: &[u8],
) -> Option<Response>
where
    Q: Serialize + DeserializeOwned + Default,
    F: DeserializeOwned,
{
    if path != "/_sim/faults" {
        return None;
    }
    let mut queue = queue.lock().unwrap_or_else(PoisonError::into_inner);
    let answer = match *method {
        Method::GET => to_value(serde_json::to_value(&*queue)),
        Method::PUT => match serde_json::from_slice::<Q>(body) {
            Ok(faults) => {
                *queue = faults;
                to_value(serde_json::to_value(&*queue))
            }
            Err(e) => bad(format!("body is not a Faults object: {e}")),
        },
        Method::POST => match serde_json::from_slice::<F>(body) {
            Ok(fault) => {
                arm(&mut queue, fault);
                to_value(serde_json::to_value(&*queue))
            }
            Err(e) => bad(format!("body is not a Fault object: {e}")),
        },
        Method::DELETE => {
            *queue = Q::default();
            reply(StatusCode::OK, json!({}))
        }
        _ => return None,
    };
    Some(answer)
}
