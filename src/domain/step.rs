//! The pure step function: (instance, input, now, retry policy) -> next instance, the history
//! entry that records it, and the effects to commit with it.
//!
//! Architecture Invariant: no I/O, no clock, no randomness of its own (jitter comes from the
//! `RetryPolicy` the caller passes). The caller commits the returned transition atomically and
//! only then runs the next side effect. Every edge it produces is listed in `state::TRANSITIONS`.

use super::change::ChangeKind;
use super::failure::{Failure, FailureClass, FailureCode};
use super::money::Currency;
use super::state::State;
use super::workflow::{HistoryEntry, Intent, PayrollRecord, Position, Resolution, Workflow};
use chrono::{DateTime, Duration, Utc};
use std::fmt;

/// Polls of a still-running payroll job allowed per attempt of the retry budget.
pub const JOB_POLLS_PER_ATTEMPT: u32 = 10;

/// What happened since the instance was last committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// `pending` step: the payroll employee and the employment covering the period.
    Matched(Position),
    /// `matched-to-position` step: the payroll system's currency.
    CurrencyFound(Currency),
    /// `currency-validated` step: no foreign record overlaps the salary period.
    OverlapClear,
    /// `currency-validated` step: this foreign record overlaps.
    OverlapFound {
        record_id: String,
        /// How the record is named in the message: its period, or its date and what it holds.
        record: String,
    },
    /// `overlap-checked`: the engine is about to write to payroll.
    IntentRecorded {
        updates: Option<PayrollRecord>,
    },
    /// `overlap-checked`: the payroll system accepted the write as an asynchronous job.
    JobAccepted {
        job: String,
    },
    /// `overlap-checked`: the write happened (or a record written earlier was adopted).
    Written(WriteReport),
    /// Any step failed.
    StepFailed(Failure),
    Operator(OperatorAction),
}

/// What the payroll write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteReport {
    pub record: PayrollRecord,
    /// Found in payroll after an interrupted write, rather than written now.
    pub adopted: bool,
    /// HR fields the payroll system cannot hold, dropped by design (noted in history).
    pub dropped_fields: Vec<&'static str>,
    /// After a delete, the record is still there (Tripletex: values cleared only).
    pub record_remains_after_delete: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperatorAction {
    Retry { reason: String },
    Resolve { reason: String },
    Cancel { reason: String },
}

impl OperatorAction {
    /// The action's name on every surface (CLI command, admin API path).
    pub fn verb(&self) -> &'static str {
        match self {
            Self::Retry { .. } => "retry",
            Self::Resolve { .. } => "resolve",
            Self::Cancel { .. } => "cancel",
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            Self::Retry { reason } | Self::Resolve { reason } | Self::Cancel { reason } => reason,
        }
    }

    /// The action named `verb`, or an error that lists the names.
    pub fn from_verb(verb: &str, reason: String) -> Result<Self, String> {
        match verb {
            "retry" => Ok(Self::Retry { reason }),
            "resolve" => Ok(Self::Resolve { reason }),
            "cancel" => Ok(Self::Cancel { reason }),
            other => Err(format!("no action `{other}` (retry, resolve, cancel)")),
        }
    }
}

/// How long to wait between attempts. The real policy wraps the `backoff` crate (with jitter);
/// tests pass a deterministic one.
pub trait RetryPolicy: Send + Sync {
    /// Attempts at one step before the workflow fails (at least 1).
    fn attempts_max(&self) -> u32;
    /// The delay before the next attempt, given the interval reached so far (0 at first).
    fn next_delay(&self, previous_interval_ms: u64) -> RetryDelay;
    /// The wait while the integration's credentials are refused.
    fn auth_wait_ms(&self) -> u64;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryDelay {
    pub delay_ms: u64,
    /// The interval to persist; the next delay grows from it.
    pub interval_ms: u64,
}

/// A change to commit alongside the instance, in the same atomic write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Remember that this HR salary owns this payroll record.
    RememberRecord(PayrollRecord),
    /// The payroll record is gone; forget the mapping.
    ForgetRecord,
    /// Write this failure to the integration's error log.
    LogError(Failure),
    /// The integration's credentials were refused.
    IntegrationUnhealthy(Failure),
}

/// The result of a step: commit all three together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub workflow: Workflow,
    pub entry: HistoryEntry,
    pub effects: Vec<Effect>,
}

/// An input that makes no sense in the instance's state: a bug in the caller, reported, never
/// a panic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("illegal transition: {input} in state {state}: {why}")]
pub struct IllegalTransition {
    pub state: State,
    pub input: &'static str,
    pub why: &'static str,
}

impl Input {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Matched(_) => "matched",
            Self::CurrencyFound(_) => "currency-found",
            Self::OverlapClear => "overlap-clear",
            Self::OverlapFound { .. } => "overlap-found",
            Self::IntentRecorded { .. } => "intent-recorded",
            Self::JobAccepted { .. } => "job-accepted",
            Self::Written(_) => "written",
            Self::StepFailed(_) => "step-failed",
            Self::Operator(OperatorAction::Retry { .. }) => "operator-retry",
            Self::Operator(OperatorAction::Resolve { .. }) => "operator-resolve",
            Self::Operator(OperatorAction::Cancel { .. }) => "operator-cancel",
        }
    }
}

/// Computes the next instance. See the module doc.
pub fn step(
    wf: &Workflow,
    input: Input,
    now: DateTime<Utc>,
    policy: &dyn RetryPolicy,
) -> Result<Transition, IllegalTransition> {
    let name = input.name();
    let illegal = |why| IllegalTransition {
        state: wf.state,
        input: name,
        why,
    };
    let mut next = wf.clone();
    next.updated_at = now;
    let mut effects = Vec::new();
    let (event, detail, failure, record): (&str, String, Option<Failure>, Option<PayrollRecord>) =
        match (wf.state, input) {
            (State::Pending, Input::Matched(position)) => {
                let salary = wf.change.salary.period();
                let detail = match position.period.end {
                    // Matched by the start date (Tripletex): the employment ends first. The
                    // salary is sent; payroll pays it until the employment ends.
                    Some(end) if !salary.within(&position.period) => format!(
                        "employee {} / employment {} ({}) is in force on the salary's start date; \
                         it ends {end}, before the salary period {salary} does: the salary is \
                         sent and is paid until the employment ends",
                        position.employee_id, position.employment_id, position.period,
                    ),
                    _ => format!(
                        "employee {} / employment {} ({}) covers the salary period {salary}",
                        position.employee_id, position.employment_id, position.period,
                    ),
                };
                progress(&mut next, State::MatchedToPosition, now);
                next.position = Some(position);
                ("matched", detail, None, None)
            }
            (State::MatchedToPosition, Input::CurrencyFound(currency)) => {
                let wanted = wf.change.salary.pay.currency;
                if currency == wanted {
                    progress(&mut next, State::CurrencyValidated, now);
                    (
                        "currency-validated",
                        format!("payroll currency is {currency}"),
                        None,
                        None,
                    )
                } else {
                    let f = Failure::permanent(
                        FailureCode::CurrencyMismatch,
                        format!(
                            "the salary is in {wanted} but the payroll system keeps {currency}; salaries are never converted"
                        ),
                    );
                    fail(&mut next, &mut effects, f.clone());
                    ("failed", f.message.clone(), Some(f), None)
                }
            }
            (State::CurrencyValidated, Input::OverlapClear) => {
                progress(&mut next, State::OverlapChecked, now);
                (
                    "overlap-checked",
                    "no foreign salary record overlaps the period".into(),
                    None,
                    None,
                )
            }
            (State::CurrencyValidated, Input::OverlapFound { record_id, record }) => {
                let f = Failure::permanent(
                    FailureCode::Overlap,
                    format!(
                        "payroll record {record_id} ({record}) overlaps the salary period {} and was not written by this salary",
                        wf.change.salary.period()
                    ),
                );
                fail(&mut next, &mut effects, f.clone());
                ("failed", f.message.clone(), Some(f), None)
            }
            (State::OverlapChecked, Input::IntentRecorded { updates }) => {
                if wf.intent.is_some() {
                    return Err(illegal(
                        "an intent is already outstanding; reconcile it first",
                    ));
                }
                let detail = match &updates {
                    Some(r) => format!("about to update payroll record {}", r.id),
                    None => "about to create a payroll record".into(),
                };
                next.intent = Some(Intent {
                    recorded_at: now,
                    updates,
                    job: None,
                });
                ("intent-recorded", detail, None, None)
            }
            (State::OverlapChecked, Input::JobAccepted { job }) => {
                let Some(intent) = &mut next.intent else {
                    return Err(illegal("a job without a recorded intent"));
                };
                if intent.job.is_some() {
                    return Err(illegal("a job is already being polled"));
                }
                intent.job = Some(job.clone());
                next.wake_at = Some(now);
                let detail =
                    format!("the payroll system accepted the write as job {job}; polling it");
                ("job-accepted", detail, None, None)
            }
            (State::OverlapChecked, Input::Written(report)) => {
                if wf.intent.is_none() {
                    return Err(illegal("a write without a recorded intent"));
                }
                let deleted = wf.change.kind == ChangeKind::Deleted;
                let to = if deleted && report.record_remains_after_delete {
                    State::ManualDeleteRequired
                } else {
                    State::Sent
                };
                let mut detail = match (deleted, to, report.adopted) {
                    (_, _, true) => format!(
                        "record {} found in payroll after an interrupted write; adopted, not written twice",
                        report.record.id
                    ),
                    (true, State::ManualDeleteRequired, false) => format!(
                        "values of record {} cleared; the payroll system keeps the record: delete it by hand",
                        report.record.id
                    ),
                    (true, _, false) => format!("record {} deleted", report.record.id),
                    (false, _, false) => format!("record {} written", report.record.id),
                };
                if !report.dropped_fields.is_empty() {
                    detail.push_str(&format!(
                        "; dropped fields the payroll system cannot hold: {}",
                        report.dropped_fields.join(", ")
                    ));
                }
                terminal(&mut next, to, now);
                next.intent = None;
                next.last_failure = None;
                next.record = Some(report.record.clone());
                if deleted && !report.record_remains_after_delete {
                    effects.push(Effect::ForgetRecord);
                } else {
                    effects.push(Effect::RememberRecord(report.record.clone()));
                }
                let event = if report.adopted {
                    "adopted"
                } else {
                    to.as_str()
                };
                (event, detail, None, Some(report.record))
            }
            (state, Input::StepFailed(f)) if !state.is_terminal() => match f.class {
                FailureClass::Permanent => {
                    // The payroll system said no (a refused write, a job that failed): nothing
                    // was written, so the intent is settled and a later operator retry writes
                    // afresh. An answer we could not read settles nothing.
                    if f.code != FailureCode::UnexpectedAnswer {
                        next.intent = None;
                    }
                    fail(&mut next, &mut effects, f.clone());
                    ("failed", f.message.clone(), Some(f), None)
                }
                FailureClass::Transient => {
                    let attempt = wf.attempt.saturating_add(1);
                    // A job still running is not a failure of ours: it gets more polls than a
                    // failing call gets attempts, but still a bounded number. The polls and
                    // the failed polls share one attempt count, so while a job is being polled
                    // every transient failure is measured against the polling budget: against
                    // the plain one, a single dropped poll after a few "still running" answers
                    // failed a job that then landed in payroll (found by the simulation).
                    let polling = wf.intent.as_ref().is_some_and(|i| i.job.is_some());
                    let budget = if f.code == FailureCode::JobRunning || polling {
                        policy.attempts_max().saturating_mul(JOB_POLLS_PER_ATTEMPT)
                    } else {
                        policy.attempts_max()
                    };
                    if attempt >= budget {
                        let mut last = f.clone();
                        last.message = format!(
                            "retries exhausted after {attempt} attempts; last error: {}",
                            f.message
                        );
                        next.attempt = attempt;
                        fail(&mut next, &mut effects, last.clone());
                        ("failed", last.message.clone(), Some(last), None)
                    } else {
                        let delay = policy.next_delay(wf.retry_interval_ms);
                        let mut wake = now + Duration::milliseconds(clamp_ms(delay.delay_ms));
                        if let Some(not_before) = f.retry_not_before {
                            wake = wake.max(not_before);
                        }
                        next.attempt = attempt;
                        next.retry_interval_ms = delay.interval_ms;
                        next.wake_at = Some(wake);
                        next.last_failure = Some(f.clone());
                        let detail = format!(
                            "attempt {attempt} failed: {}; next attempt at {wake}",
                            f.message
                        );
                        ("retry-scheduled", detail, Some(f), None)
                    }
                }
                FailureClass::Auth => {
                    let wake = now + Duration::milliseconds(clamp_ms(policy.auth_wait_ms()));
                    next.wake_at = Some(wake);
                    next.last_failure = Some(f.clone());
                    effects.push(Effect::IntegrationUnhealthy(f.clone()));
                    let detail = format!(
                        "credentials refused: {}; waiting until {wake} without spending the retry budget",
                        f.message
                    );
                    ("waiting-for-credentials", detail, Some(f), None)
                }
            },
            (State::Failed, Input::Operator(OperatorAction::Retry { reason })) => {
                next.state = State::Pending;
                next.attempt = 0;
                next.retry_interval_ms = 0;
                next.wake_at = Some(now);
                next.position = None;
                next.last_failure = None;
                (
                    "operator-retry",
                    format!("operator retry: {reason}"),
                    None,
                    None,
                )
            }
            (State::ManualDeleteRequired, Input::Operator(OperatorAction::Resolve { reason })) => {
                if wf.resolution.is_some() {
                    return Err(illegal("the manual delete is already confirmed"));
                }
                next.resolution = Some(Resolution {
                    at: now,
                    reason: reason.clone(),
                });
                (
                    "operator-resolve",
                    format!("manual delete confirmed: {reason}"),
                    None,
                    None,
                )
            }
            (state, Input::Operator(OperatorAction::Cancel { reason })) if !state.is_terminal() => {
                let f = Failure::permanent(
                    FailureCode::Cancelled,
                    format!("cancelled by operator: {reason}"),
                );
                fail(&mut next, &mut effects, f.clone());
                ("operator-cancel", f.message.clone(), Some(f), None)
            }
            (state, _) if state.is_terminal() => return Err(illegal("the instance is terminal")),
            _ => return Err(illegal("this input does not belong to this state's step")),
        };
    let entry = HistoryEntry {
        seq: wf.history_len,
        at: now,
        from: Some(wf.state),
        to: next.state,
        attempt: next.attempt,
        event: event.to_owned(),
        detail,
        failure,
        record,
        wake_at: next.wake_at,
    };
    next.history_len = wf.history_len.saturating_add(1);
    Ok(Transition {
        workflow: next,
        entry,
        effects,
    })
}

/// A step succeeded: move on and run the next step at once with a fresh budget. An instance
/// already due keeps its wake time (it is due either way): the store's `due` index then needs
/// no rewrite, and the instance keeps its place, oldest first.
fn progress(next: &mut Workflow, to: State, now: DateTime<Utc>) {
    next.state = to;
    next.attempt = 0;
    next.retry_interval_ms = 0;
    next.wake_at = Some(next.wake_at.filter(|at| *at <= now).unwrap_or(now));
    next.last_failure = None;
}

fn terminal(next: &mut Workflow, to: State, _now: DateTime<Utc>) {
    next.state = to;
    next.wake_at = None;
}

fn fail(next: &mut Workflow, effects: &mut Vec<Effect>, failure: Failure) {
    next.state = State::Failed;
    next.wake_at = None;
    next.last_failure = Some(failure.clone());
    effects.push(Effect::LogError(failure));
}

/// The longest wait the step ever schedules: one year. A larger delay (from a config or a
/// damaged record) would overflow `DateTime` (the config fuzz property found a panic here
/// with `delay_ms_max = 2^62`); a year is already far past any retry budget.
const WAIT_MS_MAX: i64 = 366 * 24 * 3600 * 1000;

fn clamp_ms(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(WAIT_MS_MAX).min(WAIT_MS_MAX)
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} -> {} ({})",
            self.workflow.id,
            self.entry.from.map_or("new", State::as_str),
            self.entry.to,
            self.entry.event
        )
    }
}
