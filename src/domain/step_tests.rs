//! Transition-table and property tests of the pure step function.

use super::change::tests_support::change;
use super::*;
use crate::domain::state::{is_allowed, TRANSITIONS};
use crate::domain::step::{IllegalTransition, RetryDelay};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use proptest::prelude::*;

/// Doubles from 100 ms, no jitter: deterministic.
struct Doubling {
    attempts_max: u32,
}

impl RetryPolicy for Doubling {
    fn attempts_max(&self) -> u32 {
        self.attempts_max
    }
    fn next_delay(&self, previous_interval_ms: u64) -> RetryDelay {
        let interval_ms = if previous_interval_ms == 0 {
            100
        } else {
            previous_interval_ms * 2
        };
        RetryDelay {
            delay_ms: interval_ms,
            interval_ms,
        }
    }
    fn auth_wait_ms(&self) -> u64 {
        300_000
    }
}

const POLICY: Doubling = Doubling { attempts_max: 4 };

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 3, 0, 0)
        .single()
        .unwrap_or_default()
}

fn position() -> Position {
    let d = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap_or_default();
    Position {
        employee_id: "1".into(),
        employment_id: "10".into(),
        period: Period {
            start: d,
            end: None,
        },
    }
}

fn record() -> PayrollRecord {
    PayrollRecord {
        id: "500".into(),
        employment_id: "10".into(),
    }
}

fn written(remains: bool) -> Input {
    Input::Written(WriteReport {
        record: record(),
        adopted: false,
        dropped_fields: vec!["end_date", "note"],
        record_remains_after_delete: remains,
    })
}

fn nok() -> Currency {
    Currency::parse("NOK").unwrap_or_else(|_| unreachable!())
}

fn new_wf(kind: ChangeKind) -> Workflow {
    Workflow::accept(WorkflowId(1), change(kind), t0()).0
}

fn run(wf: &Workflow, inputs: Vec<Input>) -> Result<Workflow, IllegalTransition> {
    let mut wf = wf.clone();
    for input in inputs {
        wf = step(&wf, input, t0(), &POLICY)?.workflow;
    }
    Ok(wf)
}

fn happy_inputs() -> Vec<Input> {
    vec![
        Input::Matched(position()),
        Input::CurrencyFound(nok()),
        Input::OverlapClear,
        Input::IntentRecorded { updates: None },
        written(false),
    ]
}

fn transient() -> Failure {
    Failure::transient(FailureCode::Unavailable, "HTTP 503")
}

#[test]
fn a_create_walks_every_step_to_sent() {
    let wf = run(&new_wf(ChangeKind::Created), happy_inputs()).expect("legal");
    assert_eq!(wf.state, State::Sent);
    assert_eq!(wf.record, Some(record()));
    assert_eq!(wf.intent, None);
    assert_eq!(wf.wake_at, None);
    assert_eq!(wf.history_len, 6);
}

#[test]
fn dropped_fields_are_written_in_history() {
    let wf = run(&new_wf(ChangeKind::Created), happy_inputs()[..4].to_vec()).expect("legal");
    let t = step(&wf, written(false), t0(), &POLICY).expect("legal");
    assert!(t
        .entry
        .detail
        .contains("dropped fields the payroll system cannot hold: end_date, note"));
    assert_eq!(t.effects, vec![Effect::RememberRecord(record())]);
}

#[test]
fn a_tripletex_delete_ends_in_manual_delete_required_and_can_be_resolved() {
    let mut inputs = happy_inputs();
    inputs[4] = written(true);
    let wf = run(&new_wf(ChangeKind::Deleted), inputs).expect("legal");
    assert_eq!(wf.state, State::ManualDeleteRequired);
    let resolved = step(
        &wf,
        Input::Operator(OperatorAction::Resolve {
            reason: "done".into(),
        }),
        t0(),
        &POLICY,
    )
    .expect("legal");
    assert_eq!(resolved.workflow.state, State::ManualDeleteRequired);
    assert!(resolved.workflow.resolution.is_some());
    let again = step(
        &resolved.workflow,
        Input::Operator(OperatorAction::Resolve { reason: "x".into() }),
        t0(),
        &POLICY,
    );
    assert!(again.is_err());
}

#[test]
fn a_delete_that_removes_the_record_is_sent_and_forgets_the_mapping() {
    let wf = run(&new_wf(ChangeKind::Deleted), happy_inputs()[..4].to_vec()).expect("legal");
    let t = step(&wf, written(false), t0(), &POLICY).expect("legal");
    assert_eq!(t.workflow.state, State::Sent);
    assert_eq!(t.effects, vec![Effect::ForgetRecord]);
}

#[test]
fn currency_mismatch_fails_at_once_with_both_currencies_named() {
    let wf = run(
        &new_wf(ChangeKind::Created),
        vec![Input::Matched(position())],
    )
    .expect("legal");
    let sek = Currency::parse("SEK").unwrap_or_else(|_| unreachable!());
    let t = step(&wf, Input::CurrencyFound(sek), t0(), &POLICY).expect("legal");
    assert_eq!(t.workflow.state, State::Failed);
    let f = t.workflow.last_failure.expect("a failure");
    assert_eq!(f.code, FailureCode::CurrencyMismatch);
    assert!(f.message.contains("NOK") && f.message.contains("SEK"));
    assert!(matches!(t.effects[0], Effect::LogError(_)));
}

#[test]
fn overlap_fails_naming_the_conflicting_record() {
    let wf = run(&new_wf(ChangeKind::Created), happy_inputs()[..2].to_vec()).expect("legal");
    let d = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap_or_default();
    let t = step(
        &wf,
        Input::OverlapFound {
            record_id: "77".into(),
            record: Period {
                start: d,
                end: Some(d),
            }
            .to_string(),
        },
        t0(),
        &POLICY,
    )
    .expect("legal");
    assert_eq!(t.workflow.state, State::Failed);
    assert!(t.entry.detail.contains("payroll record 77"));
}

#[test]
fn transient_errors_back_off_and_then_exhaust_the_budget() {
    let mut wf = new_wf(ChangeKind::Created);
    let mut wakes = Vec::new();
    for _ in 0..3 {
        wf = step(&wf, Input::StepFailed(transient()), t0(), &POLICY)
            .expect("legal")
            .workflow;
        assert_eq!(wf.state, State::Pending);
        wakes.push(wf.wake_at.expect("scheduled"));
    }
    assert!(wakes[0] < wakes[1] && wakes[1] < wakes[2], "{wakes:?}");
    let t = step(&wf, Input::StepFailed(transient()), t0(), &POLICY).expect("legal");
    assert_eq!(t.workflow.state, State::Failed);
    assert!(t
        .entry
        .detail
        .contains("retries exhausted after 4 attempts"));
}

#[test]
fn retry_after_is_a_lower_bound_on_the_wake_time() {
    let mut f = transient();
    let later = t0() + chrono::Duration::seconds(90);
    f.retry_not_before = Some(later);
    let t = step(
        &new_wf(ChangeKind::Created),
        Input::StepFailed(f),
        t0(),
        &POLICY,
    )
    .expect("legal");
    assert_eq!(t.workflow.wake_at, Some(later));
}

/// A step that succeeds keeps the wake time of an instance already due (the store's `due`
/// key then stays as it is); after a retry it keeps the retry's wake time, which has passed.
#[test]
fn progress_keeps_a_wake_time_that_has_passed() {
    let wf = new_wf(ChangeKind::Created);
    let later = t0() + chrono::Duration::seconds(10);
    let t = step(&wf, Input::Matched(position()), later, &POLICY).expect("legal");
    assert_eq!(t.workflow.state, State::MatchedToPosition);
    assert_eq!(t.workflow.wake_at, Some(t0()));

    let retried = step(&wf, Input::StepFailed(transient()), t0(), &POLICY).expect("legal");
    let wake = retried.workflow.wake_at.expect("scheduled");
    assert!(wake > t0());
    let t = step(
        &retried.workflow,
        Input::Matched(position()),
        wake + chrono::Duration::seconds(1),
        &POLICY,
    )
    .expect("legal");
    assert_eq!(t.workflow.wake_at, Some(wake));
}

#[test]
fn auth_failures_wait_long_without_spending_the_budget() {
    let auth = Failure::new(FailureCode::AuthRejected, FailureClass::Auth, "401");
    let mut wf = new_wf(ChangeKind::Created);
    for _ in 0..10 {
        let t = step(&wf, Input::StepFailed(auth.clone()), t0(), &POLICY).expect("legal");
        assert!(matches!(t.effects[0], Effect::IntegrationUnhealthy(_)));
        wf = t.workflow;
    }
    assert_eq!(wf.state, State::Pending);
    assert_eq!(wf.attempt, 0);
    assert_eq!(wf.wake_at, Some(t0() + chrono::Duration::minutes(5)));
}

#[test]
fn a_write_needs_a_recorded_intent_and_only_one() {
    let wf = run(&new_wf(ChangeKind::Created), happy_inputs()[..3].to_vec()).expect("legal");
    assert!(step(&wf, written(false), t0(), &POLICY).is_err());
    let with_intent = step(&wf, Input::IntentRecorded { updates: None }, t0(), &POLICY)
        .expect("legal")
        .workflow;
    assert!(step(
        &with_intent,
        Input::IntentRecorded { updates: None },
        t0(),
        &POLICY
    )
    .is_err());
}

#[test]
fn an_asynchronous_job_is_recorded_once_and_kept_while_polling() {
    let wf = run(&new_wf(ChangeKind::Created), happy_inputs()[..3].to_vec()).expect("legal");
    let job = || Input::JobAccepted {
        job: "/jobs/1".into(),
    };
    assert!(
        step(&wf, job(), t0(), &POLICY).is_err(),
        "a job needs an intent first"
    );
    let wf = step(&wf, Input::IntentRecorded { updates: None }, t0(), &POLICY)
        .expect("legal")
        .workflow;
    let polling = step(&wf, job(), t0(), &POLICY).expect("legal").workflow;
    assert_eq!(
        polling.intent.as_ref().and_then(|i| i.job.as_deref()),
        Some("/jobs/1")
    );
    assert!(
        step(&polling, job(), t0(), &POLICY).is_err(),
        "one job per write"
    );
    let running = Failure::transient(FailureCode::JobRunning, "running");
    let still = step(&polling, Input::StepFailed(running), t0(), &POLICY)
        .expect("legal")
        .workflow;
    assert_eq!(
        still.intent, polling.intent,
        "the job survives a poll that says running"
    );
    let done = step(&still, written(false), t0(), &POLICY)
        .expect("legal")
        .workflow;
    assert_eq!(done.state, State::Sent);
}

#[test]
fn a_running_job_gets_more_polls_than_a_failing_call_gets_attempts_but_not_endless() {
    let wf = run(&new_wf(ChangeKind::Created), happy_inputs()[..4].to_vec()).expect("legal");
    let mut wf = step(
        &wf,
        Input::JobAccepted {
            job: "/jobs/3".into(),
        },
        t0(),
        &POLICY,
    )
    .expect("legal")
    .workflow;
    let running = || Input::StepFailed(Failure::transient(FailureCode::JobRunning, "running"));
    let polls = POLICY.attempts_max * crate::domain::step::JOB_POLLS_PER_ATTEMPT;
    for _ in 1..polls {
        wf = step(&wf, running(), t0(), &POLICY).expect("legal").workflow;
        assert_eq!(
            wf.state,
            State::OverlapChecked,
            "still polling after {} polls",
            wf.attempt
        );
    }
    let t = step(&wf, running(), t0(), &POLICY).expect("legal");
    assert_eq!(t.workflow.state, State::Failed);
    assert_eq!(
        t.workflow.last_failure.map(|f| f.code),
        Some(FailureCode::JobRunning)
    );
}

/// Regression (simulation seed 2): three "still running" polls and one dropped poll failed
/// the instance with "retries exhausted after 4 attempts" while its job went on to land.
#[test]
fn a_dropped_poll_after_running_polls_does_not_exhaust_the_budget() {
    let wf = run(&new_wf(ChangeKind::Created), happy_inputs()[..4].to_vec()).expect("legal");
    let mut wf = step(
        &wf,
        Input::JobAccepted {
            job: "/jobs/2".into(),
        },
        t0(),
        &POLICY,
    )
    .expect("legal")
    .workflow;
    let running = || Input::StepFailed(Failure::transient(FailureCode::JobRunning, "running"));
    for _ in 0..POLICY.attempts_max {
        wf = step(&wf, running(), t0(), &POLICY).expect("legal").workflow;
    }
    let wf = step(&wf, Input::StepFailed(transient()), t0(), &POLICY)
        .expect("legal")
        .workflow;
    assert_eq!(wf.state, State::OverlapChecked, "still polling: {wf:?}");
    assert!(wf.intent.as_ref().is_some_and(|i| i.job.is_some()));
}

#[test]
fn a_refused_write_settles_the_intent_so_a_retry_writes_afresh() {
    let wf = run(&new_wf(ChangeKind::Created), happy_inputs()[..4].to_vec()).expect("legal");
    let polling = step(
        &wf,
        Input::JobAccepted {
            job: "/jobs/9".into(),
        },
        t0(),
        &POLICY,
    )
    .expect("legal")
    .workflow;
    let refused = Failure::permanent(FailureCode::PayrollRejected, "job failed: validation");
    let failed = step(&polling, Input::StepFailed(refused), t0(), &POLICY)
        .expect("legal")
        .workflow;
    assert_eq!(
        failed.intent, None,
        "a failed job is not polled again after a retry"
    );
    let unreadable = Failure::permanent(FailureCode::UnexpectedAnswer, "garbled");
    let kept = step(&polling, Input::StepFailed(unreadable), t0(), &POLICY)
        .expect("legal")
        .workflow;
    assert!(
        kept.intent.is_some(),
        "an unreadable answer may hide a write: reconcile first"
    );
}

#[test]
fn a_failure_during_the_write_keeps_the_intent_for_reconciliation() {
    let wf = run(&new_wf(ChangeKind::Created), happy_inputs()[..4].to_vec()).expect("legal");
    let t = step(&wf, Input::StepFailed(transient()), t0(), &POLICY).expect("legal");
    assert!(t.workflow.intent.is_some());
}

#[test]
fn operator_retry_restarts_a_failed_instance_with_a_fresh_budget() {
    let mut wf = new_wf(ChangeKind::Created);
    for _ in 0..4 {
        wf = step(&wf, Input::StepFailed(transient()), t0(), &POLICY)
            .expect("legal")
            .workflow;
    }
    assert_eq!(wf.state, State::Failed);
    let t = step(
        &wf,
        Input::Operator(OperatorAction::Retry {
            reason: "fixed".into(),
        }),
        t0(),
        &POLICY,
    )
    .expect("legal");
    assert_eq!(t.workflow.state, State::Pending);
    assert_eq!(t.workflow.attempt, 0);
    assert_eq!(t.workflow.wake_at, Some(t0()));
}

#[test]
fn cancel_fails_a_running_instance_and_is_refused_on_a_terminal_one() {
    let wf = new_wf(ChangeKind::Created);
    let t = step(
        &wf,
        Input::Operator(OperatorAction::Cancel {
            reason: "duplicate in HR".into(),
        }),
        t0(),
        &POLICY,
    )
    .expect("legal");
    assert_eq!(t.workflow.state, State::Failed);
    assert_eq!(
        t.workflow.last_failure.map(|f| f.code),
        Some(FailureCode::Cancelled)
    );
    let sent = run(&wf, happy_inputs()).expect("legal");
    assert!(step(
        &sent,
        Input::Operator(OperatorAction::Cancel { reason: "x".into() }),
        t0(),
        &POLICY
    )
    .is_err());
}

#[test]
fn inputs_of_another_step_are_refused_not_panicked_on() {
    let wf = new_wf(ChangeKind::Created);
    for input in [
        Input::CurrencyFound(nok()),
        Input::OverlapClear,
        written(false),
    ] {
        let err = step(&wf, input, t0(), &POLICY).expect_err("illegal");
        assert_eq!(err.state, State::Pending);
    }
}

#[test]
fn every_table_edge_is_reachable() {
    // Collect the edges produced by the scenarios above plus a few more, and compare with the table.
    let mut seen = std::collections::HashSet::new();
    for seq in edge_covering_sequences() {
        let mut wf = new_wf(seq.0);
        for input in seq.1 {
            let t = step(&wf, input, t0(), &POLICY).expect("legal");
            seen.insert((t.entry.from.unwrap_or(State::Pending), t.entry.to));
            wf = t.workflow;
        }
    }
    for e in TRANSITIONS {
        assert!(seen.contains(&(e.from, e.to)), "edge {e:?} never produced");
    }
}

fn edge_covering_sequences() -> Vec<(ChangeKind, Vec<Input>)> {
    let cancel = || Input::Operator(OperatorAction::Cancel { reason: "r".into() });
    let mut out = vec![(ChangeKind::Created, happy_inputs())];
    let mut mdr = happy_inputs();
    mdr[4] = written(true);
    mdr.push(Input::Operator(OperatorAction::Resolve {
        reason: "r".into(),
    }));
    out.push((ChangeKind::Deleted, mdr));
    for n in 0..4 {
        let mut seq = happy_inputs()[..n].to_vec();
        seq.push(Input::StepFailed(transient()));
        seq.push(cancel());
        seq.push(Input::Operator(OperatorAction::Retry {
            reason: "r".into(),
        }));
        out.push((ChangeKind::Created, seq));
    }
    let mut at_write = happy_inputs()[..4].to_vec();
    at_write.push(Input::StepFailed(transient()));
    out.push((ChangeKind::Created, at_write));
    out
}

fn any_input() -> impl Strategy<Value = Input> {
    prop_oneof![
        Just(Input::Matched(position())),
        Just(Input::CurrencyFound(nok())),
        Just(Input::CurrencyFound(
            Currency::parse("SEK").unwrap_or_else(|_| unreachable!())
        )),
        Just(Input::OverlapClear),
        Just(Input::OverlapFound {
            record_id: "9".into(),
            record: position().period.to_string()
        }),
        Just(Input::IntentRecorded { updates: None }),
        Just(Input::JobAccepted {
            job: "/jobs/7".into()
        }),
        any::<bool>().prop_map(written),
        Just(Input::StepFailed(transient())),
        Just(Input::StepFailed(Failure::permanent(
            FailureCode::PayrollRejected,
            "422"
        ))),
        Just(Input::StepFailed(Failure::new(
            FailureCode::AuthRejected,
            FailureClass::Auth,
            "401"
        ))),
        Just(Input::Operator(OperatorAction::Retry {
            reason: "r".into()
        })),
        Just(Input::Operator(OperatorAction::Resolve {
            reason: "r".into()
        })),
        Just(Input::Operator(OperatorAction::Cancel {
            reason: "r".into()
        })),
    ]
}

fn any_kind() -> impl Strategy<Value = ChangeKind> {
    prop_oneof![
        Just(ChangeKind::Created),
        Just(ChangeKind::Updated),
        Just(ChangeKind::Deleted)
    ]
}

proptest! {
    #[test]
    fn random_input_sequences_keep_every_invariant(kind in any_kind(), inputs in prop::collection::vec(any_input(), 0..60)) {
        let mut wf = new_wf(kind);
        for input in inputs {
            let is_operator = matches!(input, Input::Operator(_));
            match step(&wf, input, t0(), &POLICY) {
                Ok(t) => {
                    prop_assert!(is_allowed(wf.state, t.workflow.state), "{:?} -> {:?}", wf.state, t.workflow.state);
                    prop_assert!(!wf.state.is_terminal() || is_operator, "a step after terminal {:?}", wf.state);
                    let polling = wf.intent.as_ref().is_some_and(|i| i.job.is_some());
                    let budget = if polling {
                        POLICY.attempts_max * crate::domain::step::JOB_POLLS_PER_ATTEMPT
                    } else {
                        POLICY.attempts_max
                    };
                    prop_assert!(t.workflow.attempt <= budget);
                    prop_assert_eq!(t.entry.seq, wf.history_len);
                    prop_assert_eq!(t.workflow.history_len, wf.history_len + 1);
                    prop_assert_eq!(t.workflow.wake_at.is_none(), t.workflow.state.is_terminal());
                    if t.workflow.state == State::ManualDeleteRequired {
                        prop_assert_eq!(kind, ChangeKind::Deleted);
                    }
                    wf = t.workflow;
                }
                Err(e) => prop_assert_eq!(e.state, wf.state),
            }
        }
    }
}

#[test]
fn operator_verbs_round_trip_and_unknown_ones_are_named() {
    for verb in ["retry", "resolve", "cancel"] {
        let action = OperatorAction::from_verb(verb, "why".into()).expect("known verb");
        assert_eq!((action.verb(), action.reason()), (verb, "why"));
    }
    assert!(OperatorAction::from_verb("delete", "x".into())
        .unwrap_err()
        .contains("delete"));
}

/// Waits as long as a config allows at most, or longer (a damaged record), never more.
struct Endless;

impl RetryPolicy for Endless {
    fn attempts_max(&self) -> u32 {
        8
    }
    fn next_delay(&self, _: u64) -> RetryDelay {
        RetryDelay {
            delay_ms: u64::MAX,
            interval_ms: u64::MAX,
        }
    }
    fn auth_wait_ms(&self) -> u64 {
        1 << 62
    }
}

/// Regression (config fuzz property): `delay_ms_max = 2^62` made the wake time overflow
/// `DateTime` and the step panicked.
#[test]
fn a_huge_delay_is_capped_at_a_year_instead_of_overflowing() {
    let wf = Workflow::accept(WorkflowId(1), change(ChangeKind::Created), t0()).0;
    for failure in [
        Failure::transient(FailureCode::Unavailable, "503"),
        Failure::new(FailureCode::AuthRejected, FailureClass::Auth, "401"),
    ] {
        let t =
            step(&wf, Input::StepFailed(failure), t0(), &Endless).unwrap_or_else(|e| panic!("{e}"));
        let wake = t.workflow.wake_at.unwrap_or_default();
        assert!(
            wake > t0() && wake <= t0() + chrono::Duration::days(366),
            "{wake}"
        );
    }
}
