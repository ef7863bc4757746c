//! `connectors::Error`: what went wrong talking to a payroll system, and what to do about it.
//!
//! `failure()` is the one place that turns an error into a domain `Failure` (code, class,
//! the vendor's own code, message and request id). Messages never carry a token or an amount.

use crate::domain::{Failure, FailureClass, FailureCode};
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// Connect, timeout, reset, or a body cut short: the request may or may not have reached
    /// the payroll system.
    #[error("could not reach the payroll system: {0}")]
    Network(String),

    /// The payroll system answered with an error status.
    #[error("{}", .0)]
    Http(Box<HttpError>),

    /// The employee the HR system names is not in payroll.
    #[error("{0}")]
    NoEmployee(String),

    /// No employment (position) covers the salary period.
    #[error("{0}")]
    NoEmployment(String),

    /// A delete of a salary salary-sync never wrote.
    #[error("{0}")]
    NothingToDelete(String),

    /// An answer we could not understand (bad JSON, missing field).
    #[error("unexpected answer from the payroll system: {0}")]
    Unexpected(String),

    /// The integration's request-rate budget (learned from the payroll system's
    /// `X-Rate-Limit-*` headers) is spent until `until`, so the request was not sent. Not a
    /// failure: the engine gives the worker up, commits nothing, and runs the step again after
    /// the reset. Every step is safe to repeat, so a step cut short this way costs nothing.
    #[error("the request-rate budget is spent until {until}; the request was not sent")]
    Paced { until: DateTime<Utc> },
}

/// An error answer, with everything the vendor told us.
#[derive(Debug, Clone, thiserror::Error)]
#[error("HTTP {status} from {method} {path}: {message}")]
pub struct HttpError {
    pub status: u16,
    pub method: String,
    /// The request path without the query string (which may hold credentials).
    pub path: String,
    pub code: FailureCode,
    pub class: FailureClass,
    pub message: String,
    pub vendor_code: Option<String>,
    pub vendor_message: Option<String>,
    pub request_id: Option<String>,
    pub retry_not_before: Option<DateTime<Utc>>,
}

impl Error {
    /// The failure to record in the workflow's history.
    pub fn failure(&self) -> Failure {
        match self {
            Self::Network(detail) => Failure::transient(
                FailureCode::Unavailable,
                format!("could not reach the payroll system: {detail}"),
            ),
            Self::Http(e) => Failure {
                code: e.code,
                class: e.class,
                message: e.message.clone(),
                http_status: Some(e.status),
                vendor_code: e.vendor_code.clone(),
                vendor_message: e.vendor_message.clone(),
                request_id: e.request_id.clone(),
                retry_not_before: e.retry_not_before,
            },
            Self::NoEmployee(m) => Failure::permanent(FailureCode::NoEmployee, m.clone()),
            Self::NoEmployment(m) => Failure::permanent(FailureCode::NoEmployment, m.clone()),
            Self::NothingToDelete(m) => Failure::permanent(FailureCode::NothingToDelete, m.clone()),
            Self::Unexpected(m) => Failure::permanent(
                FailureCode::UnexpectedAnswer,
                format!("unexpected answer from the payroll system: {m}"),
            ),
            Self::Paced { until } => Failure {
                retry_not_before: Some(*until),
                ..Failure::transient(
                    FailureCode::RateLimited,
                    format!(
                        "the integration's request-rate budget is spent until {until}; the \
                         request was not sent"
                    ),
                )
            },
        }
    }
}

/// The vendor's own words, ready to follow "answered HTTP 503": `": <words>"` without a
/// trailing full stop (the sentence goes on), or nothing when the vendor said nothing.
pub fn vendor_said(words: Option<String>) -> String {
    match words
        .as_deref()
        .map(|w| w.trim().trim_end_matches('.').trim_end())
    {
        Some(w) if !w.is_empty() => format!(": {w}"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::vendor_said;

    #[test]
    fn vendor_words_lose_their_full_stop_and_empty_words_vanish() {
        assert_eq!(
            vendor_said(Some("Service unavailable.".into())),
            ": Service unavailable"
        );
        assert_eq!(vendor_said(Some("  ".into())), "");
        assert_eq!(vendor_said(None), "");
    }
}
