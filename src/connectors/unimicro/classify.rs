//! The one table that turns a Unimicro error answer into a failure code, a class (retry,
//! fail, or wait for a human) and a message that says what happened and what to do.
//!
//! Invariant: pure. No I/O, no clock (the caller passes `retry_not_before`); the match is
//! exhaustive over statuses. A 401 from the API (not the token endpoint) reaches this table
//! only after one token refresh and a repeat of the request, and Unimicro answers 401 for a
//! path it does not know as well as for a token it refuses: so it is that request's permanent
//! error, never the integration's (`FailureClass::Auth`). Only the token endpoint refusing the
//! credentials, or a 403, says the integration itself needs a human.

use super::wire::ApiError;
use crate::connectors::error::HttpError;
use crate::domain::{FailureClass, FailureCode};
use chrono::{DateTime, Utc};

/// Which call failed, where the same status means different things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// The OAuth token endpoint: any 4xx but 429 means the client credentials are refused.
    Token,
    /// A read of one employment by id: 404 means it is gone from Unimicro.
    Employment,
    /// Anything else (lists, company settings, the save of an employment).
    Other,
}

/// (failure code, class) for an error status.
pub fn classify(status: u16, call: Call) -> (FailureCode, FailureClass) {
    use FailureClass::{Auth, Permanent, Transient};
    use FailureCode::*;
    match (status, call) {
        (429, _) => (RateLimited, Transient),
        (501, _) => (UnexpectedAnswer, Permanent),
        (500..=599, _) => (Unavailable, Transient),
        (400..=499, Call::Token) => (AuthRejected, Auth),
        // Repeated after a fresh token: this path, not the integration (module doc).
        (401, _) => (UnexpectedAnswer, Permanent),
        (403, _) => (AuthRejected, Auth),
        (404, Call::Employment) => (NoEmployment, Permanent),
        (404, Call::Other) => (UnexpectedAnswer, Permanent),
        (400..=499, _) => (PayrollRejected, Permanent),
        _ => (UnexpectedAnswer, Permanent),
    }
}

/// What the operator reads: what happened, then what to do.
fn explain(status: u16, method: &str, path: &str, code: FailureCode, vendor: &ApiError) -> String {
    let said = crate::connectors::error::vendor_said(vendor.summary());
    match (code, status) {
        (FailureCode::RateLimited, _) => format!(
            "Unimicro is rate-limiting the integration (HTTP 429){said}. salary-sync waits (at \
             least as long as Retry-After asks) and retries."
        ),
        (FailureCode::Unavailable, _) => format!(
            "Unimicro answered HTTP {status} to {method} {path}{said}. This is usually \
             temporary; salary-sync retries on its own. If it persists, check Unimicro's status."
        ),
        (FailureCode::AuthRejected, 403) => format!(
            "Unimicro refused access to {method} {path} (HTTP 403){said}. The API client lacks \
             the rights this call needs in the company: grant it access to salary and \
             employments in Unimicro."
        ),
        (FailureCode::AuthRejected, _) => format!(
            "Unimicro's token endpoint refused the integration's client credentials (HTTP \
             {status}){said}. Check client_id, client_secret and the token_url in the \
             integration's configuration."
        ),
        (FailureCode::UnexpectedAnswer, 401) => format!(
            "Unimicro answered 401 to {method} {path} even with a freshly issued token{said}. \
             Unimicro also answers 401 for a path it does not know or a company key it does \
             not accept, so this request failed, not the integration: check the base_url and \
             company_key in the configuration, or report it with the request id."
        ),
        (FailureCode::NoEmployment, _) => format!(
            "The employment {path} is gone from Unimicro (HTTP 404){said}. It may have been \
             deleted by hand: check the employee's employments in Unimicro, then retry."
        ),
        (FailureCode::PayrollRejected, _) => format!(
            "Unimicro rejected the salary (HTTP {status}){said}. Correct the data in HR or \
             Unimicro, then retry."
        ),
        (_, 404) => format!(
            "Unimicro has no {method} {path} (HTTP 404){said}. An object salary-sync relied on \
             may have been deleted by hand: check it in Unimicro, then retry."
        ),
        _ => format!(
            "Unimicro answered HTTP {status} to {method} {path} in a way salary-sync does not \
             handle{said}. Report it with the request id."
        ),
    }
}

/// The full error for an error answer. `path` must already be stripped of its query.
pub fn http_error(
    status: u16,
    method: &str,
    path: &str,
    request_id: Option<String>,
    body: &[u8],
    call: Call,
    retry_not_before: Option<DateTime<Utc>>,
) -> HttpError {
    let vendor = ApiError::parse(body);
    let (code, class) = classify(status, call);
    HttpError {
        status,
        method: method.to_owned(),
        path: path.to_owned(),
        code,
        class,
        message: explain(status, method, path, code, &vendor),
        vendor_code: vendor
            .oauth_error
            .as_ref()
            .and_then(|e| e.split(':').next().map(str::trim).map(str::to_owned)),
        vendor_message: vendor.summary(),
        request_id,
        retry_not_before: if class == FailureClass::Transient {
            retry_not_before
        } else {
            None
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FailureClass::{Auth, Permanent, Transient};
    use FailureCode::*;

    #[test]
    fn the_classification_table() {
        let table: &[(u16, Call, FailureCode, FailureClass)] = &[
            (400, Call::Token, AuthRejected, Auth),
            (401, Call::Token, AuthRejected, Auth),
            (403, Call::Token, AuthRejected, Auth),
            (429, Call::Token, RateLimited, Transient),
            (503, Call::Token, Unavailable, Transient),
            (401, Call::Other, UnexpectedAnswer, Permanent),
            (401, Call::Employment, UnexpectedAnswer, Permanent),
            (403, Call::Other, AuthRejected, Auth),
            (404, Call::Employment, NoEmployment, Permanent),
            (404, Call::Other, UnexpectedAnswer, Permanent),
            (400, Call::Other, PayrollRejected, Permanent),
            (409, Call::Other, PayrollRejected, Permanent),
            (422, Call::Other, PayrollRejected, Permanent),
            (429, Call::Other, RateLimited, Transient),
            (500, Call::Other, Unavailable, Transient),
            (502, Call::Employment, Unavailable, Transient),
            (503, Call::Other, Unavailable, Transient),
            (504, Call::Other, Unavailable, Transient),
            (501, Call::Other, UnexpectedAnswer, Permanent),
            (302, Call::Other, UnexpectedAnswer, Permanent),
        ];
        for &(status, call, code, class) in table {
            assert_eq!(classify(status, call), (code, class), "{status} {call:?}");
        }
    }

    #[test]
    fn a_repeated_401_names_the_path_and_is_not_an_auth_failure() {
        let e = http_error(
            401,
            "GET",
            "/api/biz/nosuchthing",
            Some("req-9".into()),
            br#"{"Message":"Unauthorized"}"#,
            Call::Other,
            None,
        );
        assert_eq!((e.code, e.class), (UnexpectedAnswer, Permanent));
        assert!(e.message.contains("/api/biz/nosuchthing"), "{}", e.message);
        assert!(e.message.contains("company_key"), "{}", e.message);
        assert_eq!(e.request_id.as_deref(), Some("req-9"));
    }

    #[test]
    fn validation_errors_are_permanent_and_quoted() {
        let e = http_error(
            400,
            "PUT",
            "/api/biz/employments/201",
            None,
            br#"{"Message":"Validation failed","_validationResults":{"Rate":[{"Message":"Must not be negative"}]}}"#,
            Call::Other,
            DateTime::<Utc>::from_timestamp(1_800_000_000, 0),
        );
        assert_eq!((e.code, e.class), (PayrollRejected, Permanent));
        assert!(
            e.message.contains("Rate: Must not be negative"),
            "{}",
            e.message
        );
        assert_eq!(
            e.retry_not_before, None,
            "only transient errors carry a wait"
        );
    }

    #[test]
    fn a_refused_token_is_an_auth_failure_with_the_oauth_code() {
        let e = http_error(
            400,
            "POST",
            "/connect/token",
            None,
            br#"{"error":"invalid_client","error_description":"unknown client"}"#,
            Call::Token,
            None,
        );
        assert_eq!((e.code, e.class), (AuthRejected, Auth));
        assert_eq!(e.vendor_code.as_deref(), Some("invalid_client"));
    }
}
