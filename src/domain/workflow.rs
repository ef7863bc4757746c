//! A workflow instance: one salary change on its way into payroll, and its history.
//!
//! Everything the engine needs to resume after a crash lives here (state, attempt count,
//! backoff interval, next wake time, outstanding write intent), never only in a task.

use super::change::{Period, SalaryChange};
use super::failure::Failure;
use super::ids::WorkflowId;
use super::state::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The payroll employee and employment (position) the salary belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub employee_id: String,
    pub employment_id: String,
    pub period: Period,
}

/// A salary record in the payroll system, by the payroll system's own id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayrollRecord {
    pub id: String,
    pub employment_id: String,
}

/// Recorded, durably, before the payroll write starts. While it is outstanding the write's
/// outcome is unknown, so the next attempt first looks for the record in payroll.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    pub recorded_at: DateTime<Utc>,
    /// The record the write will update, when it updates rather than creates.
    pub updates: Option<PayrollRecord>,
    /// The asynchronous job the payroll system accepted the write as, once known.
    pub job: Option<String>,
}

/// An operator confirmed the manual delete in payroll.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    pub at: DateTime<Utc>,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workflow {
    pub id: WorkflowId,
    pub change: SalaryChange,
    pub state: State,
    pub accepted_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Failed attempts at the current step; reset when the step succeeds.
    pub attempt: u32,
    /// The backoff interval reached so far, persisted so a restart keeps the schedule.
    pub retry_interval_ms: u64,
    /// When the next step may run. `None` once terminal.
    pub wake_at: Option<DateTime<Utc>>,
    pub position: Option<Position>,
    pub intent: Option<Intent>,
    pub record: Option<PayrollRecord>,
    pub last_failure: Option<Failure>,
    pub resolution: Option<Resolution>,
    /// The number of history entries; the next entry's sequence number.
    pub history_len: u32,
}

/// One line of an instance's history: a transition with everything known about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub seq: u32,
    pub at: DateTime<Utc>,
    pub from: Option<State>,
    pub to: State,
    pub attempt: u32,
    /// A short kebab-case name of what happened (`matched`, `retry-scheduled`, ...).
    pub event: String,
    /// A sentence for a human; never an amount or a secret.
    pub detail: String,
    pub failure: Option<Failure>,
    pub record: Option<PayrollRecord>,
    pub wake_at: Option<DateTime<Utc>>,
}

impl Workflow {
    /// A new instance for an accepted change, runnable at once, and its first history entry.
    pub fn accept(
        id: WorkflowId,
        change: SalaryChange,
        now: DateTime<Utc>,
    ) -> (Self, HistoryEntry) {
        let detail = format!(
            "{} of salary {} accepted (event {}, occurred {})",
            change.kind, change.salary.id, change.event_id, change.occurred_at
        );
        let workflow = Self {
            id,
            change,
            state: State::Pending,
            accepted_at: now,
            updated_at: now,
            attempt: 0,
            retry_interval_ms: 0,
            wake_at: Some(now),
            position: None,
            intent: None,
            record: None,
            last_failure: None,
            resolution: None,
            history_len: 1,
        };
        let entry = HistoryEntry {
            seq: 0,
            at: now,
            from: None,
            to: State::Pending,
            attempt: 0,
            event: "accepted".into(),
            detail,
            failure: None,
            record: None,
            wake_at: Some(now),
        };
        (workflow, entry)
    }

    pub fn is_terminal(&self) -> bool {
        self.state.is_terminal()
    }
}
