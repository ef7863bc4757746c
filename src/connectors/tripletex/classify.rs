//! The one table that turns a Tripletex error answer (HTTP status and Tripletex's own code)
//! into a failure code, a class (retry, fail, or wait for a human) and a message that says
//! what happened and what to do.
//!
//! Invariant: pure. No I/O, no clock (the caller passes `retry_not_before`); the match is
//! exhaustive over statuses, so every answer is classified the same way wherever it occurs.

use super::wire::ApiError;
use crate::connectors::error::HttpError;
use crate::domain::{FailureClass, FailureCode};
use chrono::{DateTime, Utc};

/// Which call failed, where the same status means different things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// `PUT /token/session/:create`: any 4xx but 429 means the tokens are refused.
    SessionCreate,
    /// `GET /employee/{id}`: 404 means the employee is not in Tripletex.
    EmployeeById,
    /// Anything else: 404 means an object salary-sync relied on is gone.
    Other,
}

/// Tripletex's codes (the `code` field of the error body).
pub const CODE_REVISION: i64 = 8000;
pub const CODE_DUPLICATE: i64 = 14000;

/// (failure code, class) for an error status, per SPEC §3.
pub fn classify(status: u16, vendor_code: Option<i64>, call: Call) -> (FailureCode, FailureClass) {
    use FailureClass::{Auth, Permanent, Transient};
    use FailureCode::*;
    match (status, vendor_code, call) {
        (429, _, _) => (RateLimited, Transient),
        (501, _, _) => (UnexpectedAnswer, Permanent),
        (500..=599, _, _) => (Unavailable, Transient),
        (400..=499, _, Call::SessionCreate) => (AuthRejected, Auth),
        (401 | 403, _, _) => (AuthRejected, Auth),
        (404, _, Call::EmployeeById) => (NoEmployee, Permanent),
        (404, _, Call::Other) => (UnexpectedAnswer, Permanent),
        (409, Some(CODE_REVISION), _) => (RevisionConflict, Transient),
        (409, Some(CODE_DUPLICATE), _) => (PayrollRejected, Permanent),
        (409, _, _) => (PayrollRejected, Permanent),
        (400..=499, _, _) => (PayrollRejected, Permanent),
        _ => (UnexpectedAnswer, Permanent),
    }
}

/// What the operator reads: what happened, then what to do.
fn explain(status: u16, code: FailureCode, vendor: &ApiError, call: Call) -> String {
    let said = vendor
        .validation_summary()
        .or_else(|| vendor.message.clone())
        .or_else(|| vendor.developer_message.clone())
        .filter(|s| !s.is_empty());
    let said = crate::connectors::error::vendor_said(said);
    match code {
        FailureCode::RateLimited => format!(
            "Tripletex is rate-limiting the integration (HTTP 429){said}. salary-sync waits \
             until the limit resets and retries."
        ),
        FailureCode::Unavailable => format!(
            "Tripletex answered HTTP {status}{said}. This is usually temporary; salary-sync \
             retries on its own. If it persists, check status.tripletex.no."
        ),
        FailureCode::AuthRejected if call == Call::SessionCreate => format!(
            "Tripletex refused to create a session with the configured consumer and employee \
             tokens (HTTP {status}){said}. Renew the tokens in the integration's configuration."
        ),
        FailureCode::AuthRejected if status == 403 => format!(
            "Tripletex refused access (HTTP 403){said}. The employee token lacks the rights \
             this call needs: give the API user access to employees and salary in Tripletex."
        ),
        FailureCode::AuthRejected => format!(
            "Tripletex refused the session even after a new one was created (HTTP {status})\
             {said}. Check the consumer and employee tokens in the integration's configuration."
        ),
        FailureCode::NoEmployee => format!(
            "The employee was not found in Tripletex (HTTP 404){said}. Check the payroll \
             employee id in HR, then retry."
        ),
        FailureCode::RevisionConflict => format!(
            "The Tripletex record changed while salary-sync was updating it (HTTP 409, \
             revision){said}. salary-sync retries with the new version."
        ),
        FailureCode::PayrollRejected if status == 409 => format!(
            "Tripletex refused the record as a duplicate (HTTP 409){said}. Check the employee's \
             salary rows in Tripletex, then retry."
        ),
        FailureCode::PayrollRejected => format!(
            "Tripletex rejected the salary (HTTP {status}){said}. Correct the data in HR or \
             Tripletex, then retry."
        ),
        _ if status == 404 => format!(
            "A Tripletex object salary-sync relied on is gone (HTTP 404){said}. It may have \
             been deleted by hand: check the employee's employment in Tripletex, then retry."
        ),
        _ => format!(
            "Tripletex answered HTTP {status} in a way salary-sync does not handle{said}. \
             Report it with the request id."
        ),
    }
}

/// The full error for an error answer. `path` must already be stripped of its query.
pub fn http_error(
    status: u16,
    method: &str,
    path: &str,
    header_request_id: Option<String>,
    body: &[u8],
    call: Call,
    retry_not_before: Option<DateTime<Utc>>,
) -> HttpError {
    let vendor = ApiError::parse(body);
    let (code, class) = classify(status, vendor.code, call);
    let message = explain(status, code, &vendor, call);
    let headline = vendor
        .message
        .as_deref()
        .or(vendor.developer_message.as_deref());
    let vendor_message = match (headline, vendor.validation_summary()) {
        (Some(m), Some(v)) => Some(format!("{m} ({v})")),
        (Some(m), None) => Some(m.to_owned()),
        (None, v) => v,
    };
    HttpError {
        status,
        method: method.to_owned(),
        path: path.to_owned(),
        code,
        class,
        message,
        vendor_code: vendor.code.map(|c| c.to_string()),
        vendor_message,
        request_id: header_request_id.or(vendor.request_id),
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
        let table: &[(u16, Option<i64>, Call, FailureCode, FailureClass)] = &[
            (401, Some(3000), Call::Other, AuthRejected, Auth),
            (403, Some(9000), Call::Other, AuthRejected, Auth),
            (403, Some(9000), Call::SessionCreate, AuthRejected, Auth),
            (422, Some(15000), Call::SessionCreate, AuthRejected, Auth),
            (404, Some(6000), Call::EmployeeById, NoEmployee, Permanent),
            (404, Some(6000), Call::Other, UnexpectedAnswer, Permanent),
            (409, Some(8000), Call::Other, RevisionConflict, Transient),
            (409, Some(14000), Call::Other, PayrollRejected, Permanent),
            (409, None, Call::Other, PayrollRejected, Permanent),
            (422, Some(15000), Call::Other, PayrollRejected, Permanent),
            (422, Some(23000), Call::Other, PayrollRejected, Permanent),
            (400, None, Call::Other, PayrollRejected, Permanent),
            (429, None, Call::Other, RateLimited, Transient),
            (429, None, Call::SessionCreate, RateLimited, Transient),
            (500, Some(1000), Call::Other, Unavailable, Transient),
            (502, None, Call::SessionCreate, Unavailable, Transient),
            (503, None, Call::Other, Unavailable, Transient),
            (504, None, Call::EmployeeById, Unavailable, Transient),
            (501, None, Call::Other, UnexpectedAnswer, Permanent),
            (302, None, Call::Other, UnexpectedAnswer, Permanent),
        ];
        for &(status, vendor, call, code, class) in table {
            assert_eq!(
                classify(status, vendor, call),
                (code, class),
                "{status} {vendor:?} {call:?}"
            );
        }
    }

    #[test]
    fn validation_errors_name_their_fields_and_keep_the_request_id() {
        let e = http_error(
            422,
            "POST",
            "/employee/employment/details",
            Some("hdr-req".into()),
            r#"{"status":422,"code":15000,"message":"Validering feilet.",
                 "validationMessages":[{"field":"annualSalary","message":"Kan ikke være negativ"}],
                 "requestId":"body-req"}"#
                .as_bytes(),
            Call::Other,
            None,
        );
        assert_eq!((e.code, e.class), (PayrollRejected, Permanent));
        assert!(
            e.message.contains("annualSalary: Kan ikke være negativ"),
            "{}",
            e.message
        );
        assert!(e.message.contains("then retry"), "{}", e.message);
        assert_eq!(e.vendor_code.as_deref(), Some("15000"));
        assert_eq!(e.request_id.as_deref(), Some("hdr-req"));
    }

    #[test]
    fn only_transient_errors_carry_a_retry_instant() {
        let at = DateTime::<Utc>::from_timestamp(1_800_000_000, 0);
        let limited = http_error(429, "GET", "/employee", None, b"", Call::Other, at);
        assert_eq!(limited.retry_not_before, at);
        assert_eq!(limited.request_id, None);
        let refused = http_error(422, "GET", "/employee", None, b"{}", Call::Other, at);
        assert_eq!(refused.retry_not_before, None);
    }
}
