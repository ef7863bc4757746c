//! The one table that turns a Visma.net Payroll error answer into a failure code, a class
//! (retry, fail, or wait for a human) and a message that says what happened and what to do.
//!
//! Invariant: pure. No I/O, no clock (the caller passes `retry_not_before`); the match is
//! exhaustive over statuses. A 401 reaches this table only after the connector fetched a new
//! token and the repeated call was refused again.

use super::wire::ApiError;
use crate::connectors::error::HttpError;
use crate::domain::{FailureClass, FailureCode};
use chrono::{DateTime, Utc};

/// Which call failed, where the same status means different things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// The OAuth2 token endpoint: any 4xx but 429 means the client credentials are refused.
    Token,
    /// `GET /employees/{id}`: 404 means the employee is not in Visma.
    EmployeeById,
    /// Anything else: 404 means an object salary-sync relied on is gone.
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
        (401 | 403, _) => (AuthRejected, Auth),
        (404, Call::EmployeeById) => (NoEmployee, Permanent),
        (404, Call::Other) => (UnexpectedAnswer, Permanent),
        // 412: the position's ETag moved since we read it (assumed, not published); 409:
        // a concurrent change. Both mean: read again and retry.
        (409 | 412, _) => (RevisionConflict, Transient),
        (400..=499, _) => (PayrollRejected, Permanent),
        _ => (UnexpectedAnswer, Permanent),
    }
}

fn explain(status: u16, code: FailureCode, vendor: &ApiError, call: Call) -> String {
    let said = vendor
        .details_summary()
        .or_else(|| vendor.message.clone())
        .filter(|s| !s.is_empty());
    let said = crate::connectors::error::vendor_said(said);
    match code {
        FailureCode::RateLimited => format!(
            "Visma.net Payroll is rate-limiting the integration (HTTP 429){said}. salary-sync \
             waits at least as long as it asks, then retries."
        ),
        FailureCode::Unavailable => format!(
            "Visma.net Payroll answered HTTP {status}{said}. This is usually temporary; \
             salary-sync retries on its own. If it persists, check Visma's status page."
        ),
        FailureCode::AuthRejected if call == Call::Token => format!(
            "Visma Connect refused the client credentials (HTTP {status}){said}. Check the \
             client id, client secret, scope and tenant id in the integration's configuration."
        ),
        FailureCode::AuthRejected if status == 403 => format!(
            "Visma.net Payroll refused access (HTTP 403){said}. The API client lacks the \
             scope or the tenant access this call needs: grant it in Visma Connect."
        ),
        FailureCode::AuthRejected => format!(
            "Visma.net Payroll refused the token even after a new one was fetched (HTTP \
             {status}){said}. Check the client credentials and the tenant id."
        ),
        FailureCode::NoEmployee => format!(
            "The employee was not found in Visma.net Payroll (HTTP 404){said}. Check the \
             payroll employee id (a GUID) in HR, then retry."
        ),
        FailureCode::RevisionConflict => format!(
            "The Visma position changed while salary-sync was updating it (HTTP {status}){said}. \
             salary-sync reads it again and retries."
        ),
        FailureCode::PayrollRejected => format!(
            "Visma.net Payroll rejected the request (HTTP {status}){said}. Correct the data in \
             HR or Visma, then retry."
        ),
        _ if status == 404 => format!(
            "A Visma object salary-sync relied on is gone (HTTP 404){said}. It may have been \
             deleted by hand: check the employee's positions in Visma, then retry."
        ),
        _ => format!(
            "Visma.net Payroll answered HTTP {status} in a way salary-sync does not \
             handle{said}. Report it with the request id."
        ),
    }
}

/// The full error for an error answer. `path` must already be stripped of its query.
#[allow(clippy::too_many_arguments)]
pub fn http_error(
    status: u16,
    method: &str,
    path: &str,
    request_id: Option<String>,
    vendor: &ApiError,
    call: Call,
    retry_not_before: Option<DateTime<Utc>>,
) -> HttpError {
    let (code, class) = classify(status, call);
    let message = explain(status, code, vendor, call);
    let vendor_message = match (vendor.message.as_deref(), vendor.details_summary()) {
        (Some(m), Some(d)) => Some(format!("{m} ({d})")),
        (Some(m), None) => Some(m.to_owned()),
        (None, d) => d,
    };
    HttpError {
        status,
        method: method.to_owned(),
        path: path.to_owned(),
        code,
        class,
        message,
        vendor_code: vendor.code.clone(),
        vendor_message,
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
            (401, Call::Other, AuthRejected, Auth),
            (403, Call::Other, AuthRejected, Auth),
            (403, Call::EmployeeById, AuthRejected, Auth),
            (404, Call::EmployeeById, NoEmployee, Permanent),
            (404, Call::Other, UnexpectedAnswer, Permanent),
            (409, Call::Other, RevisionConflict, Transient),
            (412, Call::Other, RevisionConflict, Transient),
            (400, Call::Other, PayrollRejected, Permanent),
            (422, Call::Other, PayrollRejected, Permanent),
            (428, Call::Other, PayrollRejected, Permanent),
            (429, Call::Token, RateLimited, Transient),
            (429, Call::Other, RateLimited, Transient),
            (500, Call::Other, Unavailable, Transient),
            (502, Call::Token, Unavailable, Transient),
            (503, Call::Other, Unavailable, Transient),
            (504, Call::EmployeeById, Unavailable, Transient),
            (501, Call::Other, UnexpectedAnswer, Permanent),
            (302, Call::Other, UnexpectedAnswer, Permanent),
        ];
        for &(status, call, code, class) in table {
            assert_eq!(classify(status, call), (code, class), "{status} {call:?}");
        }
    }

    #[test]
    fn validation_errors_are_readable_and_only_transients_carry_a_wait() {
        let vendor = ApiError::parse(
            br#"{"message":"Validation failed","errors":[{"field":"activeStart","message":"overlaps"}]}"#,
            "message",
            "errors",
        );
        let at = DateTime::<Utc>::from_timestamp(1_800_000_000, 0);
        let e = http_error(
            422,
            "PUT",
            "/employees/x/positions/y",
            Some("r-1".into()),
            &vendor,
            Call::Other,
            at,
        );
        assert_eq!((e.code, e.class), (PayrollRejected, Permanent));
        assert!(e.message.contains("activeStart: overlaps"), "{}", e.message);
        assert_eq!(e.retry_not_before, None);
        assert_eq!(e.request_id.as_deref(), Some("r-1"));
        let limited = http_error(
            429,
            "GET",
            "/employees",
            None,
            &ApiError::default(),
            Call::Other,
            at,
        );
        assert_eq!(limited.retry_not_before, at);
    }
}
