//! Why a step did not succeed: a stable code an operator can look up, a class that decides
//! what the engine does next, and the payroll system's own words.
//!
//! Codes are stable identifiers (they appear in dumps, the error log and docs/runbook.md);
//! never rename one.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What the engine does with a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureClass {
    /// Try again later (connect/timeout, 5xx, 429, revision conflict, job still running).
    Transient,
    /// Retrying cannot help; the workflow fails at once.
    Permanent,
    /// The payroll system refused our credentials: the integration needs a human, its
    /// workflows wait with a long backoff without spending their retry budget.
    Auth,
}

impl FailureClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::Permanent => "permanent",
            Self::Auth => "auth",
        }
    }
}

/// The stable failure codes. Each has a runbook line (`runbook()`) and a section in
/// docs/runbook.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureCode {
    NoEmployee,
    NoEmployment,
    CurrencyMismatch,
    Overlap,
    PayrollRejected,
    NothingToDelete,
    AuthRejected,
    Unavailable,
    RateLimited,
    RevisionConflict,
    UnexpectedAnswer,
    Cancelled,
    IntegrationMissing,
    JobRunning,
    Superseded,
    BeforeActivation,
    SiblingWriteInFlight,
}

impl FailureCode {
    pub const ALL: [FailureCode; 17] = [
        Self::NoEmployee,
        Self::NoEmployment,
        Self::CurrencyMismatch,
        Self::Overlap,
        Self::PayrollRejected,
        Self::NothingToDelete,
        Self::AuthRejected,
        Self::Unavailable,
        Self::RateLimited,
        Self::RevisionConflict,
        Self::UnexpectedAnswer,
        Self::Cancelled,
        Self::IntegrationMissing,
        Self::JobRunning,
        Self::Superseded,
        Self::BeforeActivation,
        Self::SiblingWriteInFlight,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoEmployee => "no-employee",
            Self::NoEmployment => "no-employment",
            Self::CurrencyMismatch => "currency-mismatch",
            Self::Overlap => "overlap",
            Self::PayrollRejected => "payroll-rejected",
            Self::NothingToDelete => "nothing-to-delete",
            Self::AuthRejected => "auth-rejected",
            Self::Unavailable => "unavailable",
            Self::RateLimited => "rate-limited",
            Self::RevisionConflict => "revision-conflict",
            Self::UnexpectedAnswer => "unexpected-answer",
            Self::Cancelled => "cancelled",
            Self::IntegrationMissing => "integration-missing",
            Self::JobRunning => "job-running",
            Self::Superseded => "superseded",
            Self::BeforeActivation => "before-activation",
            Self::SiblingWriteInFlight => "sibling-write-in-flight",
        }
    }

    /// One line telling the operator what to do.
    pub fn runbook(self) -> &'static str {
        match self {
            Self::NoEmployee => "The employee is not in payroll: check the employee's payroll id / number / email in HR, or that position sync created the employee; then retry.",
            Self::NoEmployment => "No employment covers the salary period: position sync must be active and the employment's start/end dates must cover the salary; fix it in payroll, then retry.",
            Self::CurrencyMismatch => "The salary's currency differs from the payroll system's currency; salaries are never converted. Correct the currency in HR (a new change is sent automatically).",
            Self::Overlap => "Payroll already holds a salary record for this period that salary-sync did not write; remove or adjust the named record in payroll, then retry.",
            Self::PayrollRejected => "The payroll system refused the record; its message says why. Correct the data in HR or payroll, then retry.",
            Self::NothingToDelete => "The HR salary was deleted but salary-sync never wrote a record for it; nothing was changed in payroll.",
            Self::AuthRejected => "The payroll system refused the integration's credentials; renew them in the configuration. Workflows wait and resume on their own.",
            Self::Unavailable => "The payroll system could not be reached or answered 5xx; retries exhausted. Check its status page, then retry.",
            Self::RateLimited => "The payroll system kept answering 429 (rate limit); retries exhausted. Retry later or lower the integration's concurrency.",
            Self::RevisionConflict => "The payroll record kept changing under us (revision conflict); retries exhausted. Retry when nobody is editing it.",
            Self::UnexpectedAnswer => "The payroll system answered in a form salary-sync does not understand; report it with the request id.",
            Self::Cancelled => "An operator cancelled the workflow; nothing further is sent.",
            Self::IntegrationMissing => "The instance belongs to an integration the daemon is not configured for; add it to the config and restart. The instance waits.",
            Self::BeforeActivation => "The change occurred before salary sync was activated for the integration; it is logged, counted and not sent. To send an old salary, update it in HR.",
            Self::Superseded => "A newer change to the same salary was already applied to payroll; this older change is not sent, so it cannot overwrite newer values. Nothing to do unless the HR system's times are wrong.",
            Self::JobRunning => "The payroll system's asynchronous job had not finished within the retry budget; check the job in the payroll system, then retry (polling resumes, nothing is sent twice).",
            Self::SiblingWriteInFlight => "The conflicting record may be salary-sync's own write for another salary of the same employment, still outstanding; retries exhausted while it stayed so. Look at the named instance (`salary-sync show`), then retry.",
        }
    }
}

impl fmt::Display for FailureCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure as recorded in history and the error log. Never holds a secret or an amount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub code: FailureCode,
    pub class: FailureClass,
    /// What happened, in a sentence for a human.
    pub message: String,
    pub http_status: Option<u16>,
    /// The payroll system's own error code and message, when it gave one.
    pub vendor_code: Option<String>,
    pub vendor_message: Option<String>,
    pub request_id: Option<String>,
    /// The payroll system asked us not to retry before this instant (Retry-After and kin).
    pub retry_not_before: Option<chrono::DateTime<chrono::Utc>>,
}

impl Failure {
    pub fn new(code: FailureCode, class: FailureClass, message: impl Into<String>) -> Self {
        Self {
            code,
            class,
            message: message.into(),
            http_status: None,
            vendor_code: None,
            vendor_message: None,
            request_id: None,
            retry_not_before: None,
        }
    }

    pub fn permanent(code: FailureCode, message: impl Into<String>) -> Self {
        Self::new(code, FailureClass::Permanent, message)
    }

    pub fn transient(code: FailureCode, message: impl Into<String>) -> Self {
        Self::new(code, FailureClass::Transient, message)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.code, self.message)?;
        if let Some(status) = self.http_status {
            write!(f, " (HTTP {status}")?;
            if let Some(code) = &self.vendor_code {
                write!(f, ", code {code}")?;
            }
            if let Some(id) = &self.request_id {
                write!(f, ", request {id}")?;
            }
            write!(f, ")")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code an operator can see has its row in docs/runbook.md.
    #[test]
    fn every_code_is_in_the_runbook() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/runbook.md");
        let runbook = std::fs::read_to_string(path).unwrap_or_default();
        for code in FailureCode::ALL {
            assert!(
                runbook.contains(&format!("| `{code}` |")),
                "docs/runbook.md lacks `{code}`"
            );
            assert!(!code.runbook().is_empty());
        }
    }
}
