//! One test per fault class: the real daemon binary over real HTTP against the Tripletex
//! simulator with a fault injected, asserting the workflow's outcome and its history (events,
//! failure codes, HTTP status, retry timing) and what landed in payroll.
//!
//! Timing is checked only as lower bounds and as relations the daemon itself records (a retry's
//! `wake_at` against the time of its failure, the next attempt not before `wake_at`), never as
//! a wall-clock upper bound, so a slow machine cannot fail these tests.

use crate::support::*;
use axum::body::{Body, Bytes};
use axum::extract::State as AxState;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use chrono::Utc;
use rust_decimal::Decimal;
use salary_sync::api::service::Shown;
use salary_sync::domain::{FailureClass, FailureCode, HistoryEntry, State, Workflow};
use salary_sync::domain::{IntegrationId, SalaryId};
use salary_sync::simulators::tripletex::{self as sim, Control, Fault, FaultKind, Seed};
use salary_sync::storage::{ErrorLogEntry, Filter, Store};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const DETAILS: &str = "/employee/employment/details";
/// Kari Nordmann's employment in `Seed::demo()`.
const KARI_EMPLOYMENT: i64 = 201;
const WAIT: Duration = Duration::from_secs(60);

/// Small, fast retries: 50, 100, 200, 400, 400 ms (× jitter), six attempts.
const FAST: RetryToml = RetryToml {
    attempts_max: 6,
    initial_delay_ms: 50,
    delay_ms_max: 400,
    auth_wait_ms: 300,
};

/// A simulator, a store, the daemon binary and its admin API.
struct Rig {
    sim: sim::Handle,
    control: Control,
    /// Holds the temporary store directory until the test ends.
    _setup: Setup,
    daemon: DaemonProcess,
    admin: Admin,
}

impl Rig {
    /// The daemon talks to the simulator directly.
    async fn start(retry: RetryToml) -> Rig {
        let sim = start_sim(Seed::demo()).await;
        let base = sim.control().base_url();
        Self::start_with(sim, &base, retry).await
    }

    /// The daemon talks to `base_url` (a proxy in front of `sim`).
    async fn start_with(sim: sim::Handle, base_url: &str, retry: RetryToml) -> Rig {
        let control = sim.control();
        let setup = setup_with_retry(base_url, retry);
        let daemon = DaemonProcess::spawn(&setup, "daemon.log");
        let admin = Admin::wait(&setup.store, daemon.child.id()).await;
        Rig {
            sim,
            control,
            _setup: setup,
            daemon,
            admin,
        }
    }

    /// Submits one change and returns its workflow id.
    async fn submit(&self, event: Value) -> String {
        let items = self
            .admin
            .submit(&json!([event]))
            .await
            .unwrap_or_else(|| panic!("submit answered"));
        assert_eq!(items.len(), 1, "{items:?}");
        assert_eq!(items[0].outcome, "accepted", "{items:?}");
        items[0]
            .workflow_id
            .map(|id| id.to_string())
            .unwrap_or_else(|| panic!("no workflow id: {items:?}"))
    }

    async fn wait_terminal(&self, id: &str) -> Shown {
        self.admin
            .wait_show(id, WAIT, |s| s.workflow.is_terminal())
            .await
    }

    /// The admin listener's `/metrics` text.
    async fn metrics(&self) -> String {
        let answer = reqwest::get(format!("{}/metrics", self.admin.base))
            .await
            .unwrap_or_else(|e| panic!("/metrics: {e}"));
        answer.text().await.unwrap_or_default()
    }

    /// The integration's error log.
    async fn errors(&self) -> Vec<ErrorLogEntry> {
        let log = self.admin.get("/admin/v1/errors").await;
        serde_json::from_value(log.unwrap_or_else(|| panic!("errors answered")))
            .unwrap_or_else(|e| panic!("the error log does not decode: {e}"))
    }

    /// SIGTERM (the daemon must exit 0), then stops the simulator.
    async fn finish(self) {
        assert_eq!(self.daemon.terminate(), Some(0), "SIGTERM stops the daemon");
        self.sim.shutdown().await;
    }
}

/// Kari's salary (employee 101, employment 201): 52 000 a month from 2026-01-01.
fn kari(event_id: &str, kind: &str, occurred_at: &str, amount: &str) -> Value {
    event(
        event_id,
        kind,
        occurred_at,
        "sal-kari",
        json!({"id": "k", "payroll_employee_id": "101"}),
        amount,
        "NOK",
        "monthly",
        "2026-01-01",
    )
}

fn kari_created() -> Value {
    kari("e1", "created", "2026-11-20T09:00:00Z", "52000.00")
}

/// 52 000 a month as Tripletex's annual figure.
fn kari_annual() -> Decimal {
    Decimal::from(624_000)
}

fn events(shown: &Shown) -> Vec<&str> {
    shown.history.iter().map(|h| h.event.as_str()).collect()
}

const CLEAN: [&str; 6] = [
    "accepted",
    "matched",
    "currency-validated",
    "overlap-checked",
    "intent-recorded",
    "sent",
];

/// The history is gapless, consistent with the instance, and each attempt after a scheduled
/// retry happened no earlier than the wake time that retry recorded.
fn assert_history_sound(shown: &Shown) {
    assert_eq!(shown.history.len() as u32, shown.workflow.history_len);
    for (i, h) in shown.history.iter().enumerate() {
        assert_eq!(
            h.seq as usize, i,
            "history has no gaps: {:#?}",
            shown.history
        );
    }
    for pair in shown.history.windows(2) {
        assert!(pair[0].at <= pair[1].at, "history goes back in time");
        // An operator may act at any time; only the engine's next attempt must wait.
        if matches!(
            pair[0].event.as_str(),
            "retry-scheduled" | "waiting-for-credentials"
        ) && !pair[1].event.starts_with("operator-")
        {
            let wake = pair[0]
                .wake_at
                .unwrap_or_else(|| panic!("a retry without a wake time: {:?}", pair[0]));
            assert!(
                pair[1].at >= wake,
                "the next attempt ran before the scheduled wake time: {:?} then {:?}",
                pair[0],
                pair[1]
            );
        }
    }
}

fn retries(shown: &Shown) -> Vec<&HistoryEntry> {
    shown
        .history
        .iter()
        .filter(|h| h.event == "retry-scheduled")
        .collect()
}

fn ms(d: chrono::TimeDelta) -> i64 {
    d.num_milliseconds()
}

/// The delay a retry entry scheduled lies within the jitter band around `interval_ms`.
fn assert_backoff(h: &HistoryEntry, interval_ms: u64) {
    let wake = h.wake_at.unwrap_or_else(|| panic!("no wake_at: {h:?}"));
    let delay = ms(wake - h.at);
    let lo = (interval_ms as f64 * 0.7).floor() as i64 - 1;
    let hi = (interval_ms as f64 * 1.3).ceil() as i64 + 1;
    assert!(
        (lo..=hi).contains(&delay),
        "attempt {}: delay {delay} ms is outside [{lo}, {hi}] for interval {interval_ms} ms",
        h.attempt
    );
}

fn assert_one_row(control: &Control, annual: Decimal) {
    let rows = control.written_details(KARI_EMPLOYMENT);
    assert_eq!(rows.len(), 1, "exactly one row in payroll: {rows:?}");
    assert_eq!(rows[0].annual_salary, annual);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_slows_every_call_but_the_change_is_sent_without_a_failure() {
    let rig = Rig::start(FAST).await;
    let latency = Duration::from_millis(150);
    rig.control.set_latency(latency);
    let id = rig.submit(kari_created()).await;
    let shown = rig.wait_terminal(&id).await;

    assert_eq!(shown.workflow.state, State::Sent);
    assert_eq!(events(&shown), CLEAN);
    assert!(shown.history.iter().all(|h| h.failure.is_none()));
    assert_history_sound(&shown);
    // Every step that calls Tripletex took at least one latency (intent-recorded calls nothing).
    for pair in shown.history.windows(2) {
        if pair[1].event != "intent-recorded" {
            assert!(
                ms(pair[1].at - pair[0].at) >= latency.as_millis() as i64,
                "{} came sooner than the injected latency allows",
                pair[1].event
            );
        }
    }
    assert_one_row(&rig.control, kari_annual());
    assert_eq!(rig.control.write_count(), 1);
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_5xx_is_retried_with_growing_backoff_then_sent() {
    let rig = Rig::start(FAST).await;
    // The write meets 500, 500, 503; the fourth attempt goes through.
    rig.control.arm(
        Fault::new(FaultKind::ServerError, 2)
            .method("POST")
            .path_prefix(DETAILS),
    );
    rig.control.arm(
        Fault::new(FaultKind::Unavailable, 1)
            .method("POST")
            .path_prefix(DETAILS),
    );
    let id = rig.submit(kari_created()).await;
    let shown = rig.wait_terminal(&id).await;

    assert_eq!(shown.workflow.state, State::Sent);
    assert_eq!(
        events(&shown),
        [
            "accepted",
            "matched",
            "currency-validated",
            "overlap-checked",
            "intent-recorded",
            "retry-scheduled",
            "retry-scheduled",
            "retry-scheduled",
            "sent"
        ]
    );
    assert_history_sound(&shown);
    let retried = retries(&shown);
    let mut request_ids = Vec::new();
    for (k, (h, status)) in retried.iter().zip([500, 500, 503]).enumerate() {
        let f = h.failure.as_ref().unwrap_or_else(|| panic!("{h:?}"));
        assert_eq!(f.code, FailureCode::Unavailable);
        assert_eq!(f.class, FailureClass::Transient);
        assert_eq!(f.http_status, Some(status), "{f:?}");
        assert_eq!(f.vendor_code.as_deref(), Some("1000"), "{f:?}");
        assert!(
            f.message.contains(&format!("HTTP {status}")),
            "{}",
            f.message
        );
        request_ids.push(f.request_id.clone().unwrap_or_else(|| panic!("{f:?}")));
        assert_eq!(h.attempt as usize, k + 1);
        assert_eq!(h.to, State::OverlapChecked, "a retry keeps the state");
        // 50, 100, 200 ms intervals: each delay drawn from its band, so they strictly grow.
        assert_backoff(h, 50 << k);
    }
    request_ids.dedup();
    assert_eq!(
        request_ids.len(),
        3,
        "each failure keeps its own request id"
    );
    // Three failed writes changed nothing; the fourth wrote once.
    assert_eq!(rig.control.write_count(), 1);
    assert_one_row(&rig.control, kari_annual());
    assert!(rig.control.faults().armed.is_empty(), "every fault fired");
    assert!(
        rig.errors().await.is_empty(),
        "a recovered outage is not an error"
    );
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_outage_longer_than_the_budget_fails_unavailable_with_retries_exhausted() {
    let retry = RetryToml {
        attempts_max: 4,
        ..FAST
    };
    let rig = Rig::start(retry).await;
    rig.control.arm(
        Fault::new(FaultKind::Unavailable, 100)
            .method("GET")
            .path_prefix("/employee/101"),
    );
    let id = rig.submit(kari_created()).await;
    let shown = rig.wait_terminal(&id).await;

    assert_eq!(shown.workflow.state, State::Failed);
    assert_eq!(
        events(&shown),
        [
            "accepted",
            "retry-scheduled",
            "retry-scheduled",
            "retry-scheduled",
            "failed"
        ]
    );
    assert_history_sound(&shown);
    for (k, h) in retries(&shown).into_iter().enumerate() {
        assert_eq!(h.attempt as usize, k + 1);
        assert_eq!(h.to, State::Pending);
        assert_backoff(h, 50 << k);
    }
    let last = shown.history.last().unwrap_or_else(|| panic!("no history"));
    assert_eq!(last.attempt, 4);
    assert_eq!(last.wake_at, None);
    let f = last.failure.as_ref().unwrap_or_else(|| panic!("{last:?}"));
    assert_eq!(f.code, FailureCode::Unavailable);
    assert_eq!(f.http_status, Some(503));
    assert!(
        f.message.contains("retries exhausted after 4 attempts"),
        "{}",
        f.message
    );
    assert!(
        f.message.contains("HTTP 503"),
        "the last error is kept: {}",
        f.message
    );
    assert_eq!(shown.workflow.last_failure.as_ref(), Some(f));
    // Exactly attempts_max calls reached Tripletex: no hidden retry loop underneath.
    let left = rig.control.faults().armed.first().map(|f| f.times);
    assert_eq!(left, Some(96));
    assert_eq!(rig.control.write_count(), 0);
    // The failure is in the integration's error log.
    let log = rig.errors().await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].failure.code, FailureCode::Unavailable, "{log:?}");
    assert_eq!(log[0].workflow_id.map(|w| w.to_string()), Some(id));
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_reset_is_not_retried_before_the_reset() {
    let rig = Rig::start(FAST).await;
    // The reset (2 s) is longer than any backoff delay here (at most 400 ms × 1.3).
    let reset_s = 2;
    rig.control.arm(
        Fault::new(
            FaultKind::RateLimited {
                reset_s: Some(reset_s),
            },
            1,
        )
        .path_prefix("/employee/101"),
    );
    let before = Utc::now();
    let id = rig.submit(kari_created()).await;
    let shown = rig.wait_terminal(&id).await;

    assert_eq!(shown.workflow.state, State::Sent);
    let retried = retries(&shown);
    assert_eq!(retried.len(), 1, "{:#?}", shown.history);
    let h = retried[0];
    let f = h.failure.as_ref().unwrap_or_else(|| panic!("{h:?}"));
    assert_eq!(f.code, FailureCode::RateLimited);
    assert_eq!(f.http_status, Some(429));
    let not_before = f
        .retry_not_before
        .unwrap_or_else(|| panic!("X-Rate-Limit-Reset was not read: {f:?}"));
    let reset = chrono::Duration::seconds(reset_s as i64);
    // The 429 came after the submit and before its failure was committed.
    assert!(not_before >= before + reset, "{not_before} vs {before}");
    assert!(not_before <= h.at + reset, "{not_before} vs {}", h.at);
    let wake = h.wake_at.unwrap_or_else(|| panic!("{h:?}"));
    assert!(
        wake >= not_before,
        "wake {wake} before the reset {not_before}"
    );
    // The failure was committed at most a moment after the answer, so the wake is ~2 s after it.
    assert!(
        ms(wake - h.at) > 1000,
        "wake_at {wake} is not the reset after the failure at {}",
        h.at
    );
    // The next attempt (its commit) did not happen before the reset.
    let next = &shown.history[h.seq as usize + 1];
    assert_eq!(next.event, "matched");
    assert!(next.at >= not_before);
    assert!(next.at >= before + reset);
    assert_history_sound(&shown);
    assert_one_row(&rig.control, kari_annual());
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_without_reset_backs_off_exponentially() {
    let rig = Rig::start(FAST).await;
    rig.control
        .arm(Fault::new(FaultKind::RateLimited { reset_s: None }, 3).path_prefix("/employee/101"));
    let id = rig.submit(kari_created()).await;
    let shown = rig.wait_terminal(&id).await;

    assert_eq!(shown.workflow.state, State::Sent);
    assert_eq!(
        events(&shown)[..4],
        [
            "accepted",
            "retry-scheduled",
            "retry-scheduled",
            "retry-scheduled"
        ]
    );
    for (k, h) in retries(&shown).into_iter().enumerate() {
        let f = h.failure.as_ref().unwrap_or_else(|| panic!("{h:?}"));
        assert_eq!(f.code, FailureCode::RateLimited);
        assert_eq!(f.http_status, Some(429));
        assert_eq!(f.retry_not_before, None, "no Reset header, no instant");
        assert_backoff(h, 50 << k);
    }
    assert_history_sound(&shown);
    assert_one_row(&rig.control, kari_annual());
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_before_the_write_is_retried_and_writes_one_row() {
    let rig = Rig::start(FAST).await;
    // A read cut off (the employee lookup) and a write cut off before Tripletex acted on it.
    rig.control.arm(
        Fault::new(FaultKind::Drop, 1)
            .method("GET")
            .path_prefix("/employee/101"),
    );
    rig.control.arm(
        Fault::new(FaultKind::Drop, 1)
            .method("POST")
            .path_prefix(DETAILS),
    );
    let id = rig.submit(kari_created()).await;
    let shown = rig.wait_terminal(&id).await;

    assert_eq!(shown.workflow.state, State::Sent);
    assert_eq!(
        events(&shown),
        [
            "accepted",
            "retry-scheduled",
            "matched",
            "currency-validated",
            "overlap-checked",
            "intent-recorded",
            "retry-scheduled",
            "sent"
        ]
    );
    for h in retries(&shown) {
        let f = h.failure.as_ref().unwrap_or_else(|| panic!("{h:?}"));
        assert_eq!(f.code, FailureCode::Unavailable);
        assert_eq!(f.class, FailureClass::Transient);
        assert_eq!(f.http_status, None, "no answer, no status");
        assert!(f.message.contains("could not reach"), "{}", f.message);
        assert_eq!(h.attempt, 1);
    }
    assert_history_sound(&shown);
    // The retried write looked first, found nothing, and wrote once.
    assert_eq!(rig.control.write_count(), 1);
    assert_one_row(&rig.control, kari_annual());
    assert!(rig.control.faults().armed.is_empty(), "both drops fired");
    rig.finish().await;
}

/// A row salary-sync wrote for one HR salary, whose answer was lost, is not yet in the record
/// mappings: another HR salary of the same employee, on the same day, found it a foreign
/// overlap and failed (the CI storage-fault run showed it after a crash). It now waits for the
/// outstanding write to be recorded (`sibling-write-in-flight`), then goes into that row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sibling_row_whose_answer_was_lost_is_waited_for_not_called_an_overlap() {
    // A's retry comes seconds later, so B's overlap check runs while A's write is outstanding.
    let slow = RetryToml {
        attempts_max: 6,
        initial_delay_ms: 3000,
        delay_ms_max: 3000,
        auth_wait_ms: 300,
    };
    let rig = Rig::start(slow).await;
    rig.control.arm(
        Fault::new(FaultKind::ApplyThenDrop, 1)
            .method("POST")
            .path_prefix(DETAILS),
    );
    let a = rig.submit(kari_created()).await;
    rig.admin
        .wait_show(&a, WAIT, |s| {
            s.history.iter().any(|h| h.event == "retry-scheduled")
        })
        .await;
    let b = rig
        .submit(event(
            "e-b",
            "created",
            "2026-11-20T09:05:00Z",
            "sal-kari-2",
            json!({"id": "k", "payroll_employee_id": "101"}),
            "53000.00",
            "NOK",
            "monthly",
            "2026-01-01",
        ))
        .await;
    let shown_b = rig.wait_terminal(&b).await;
    let shown_a = rig.wait_terminal(&a).await;
    assert_eq!(shown_a.workflow.state, State::Sent, "{:?}", shown_a.history);
    assert_eq!(shown_b.workflow.state, State::Sent, "{:?}", shown_b.history);
    let waited = retries(&shown_b);
    assert!(!waited.is_empty(), "B never waited: {:?}", events(&shown_b));
    let f = waited[0]
        .failure
        .as_ref()
        .unwrap_or_else(|| panic!("{:?}", waited[0]));
    assert_eq!(f.code, FailureCode::SiblingWriteInFlight);
    assert!(f.message.contains(&a), "the message names A: {}", f.message);
    // One row, written by A and then updated in place by B.
    assert_eq!(rig.control.write_count(), 2);
    assert_one_row(&rig.control, Decimal::from(636_000));
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_applied_then_dropped_is_adopted_not_written_twice() {
    let rig = Rig::start(FAST).await;
    // The create (POST), the update (PUT) and the delete (a PUT clearing the values) all land,
    // and every answer is lost.
    rig.control.arm(
        Fault::new(FaultKind::ApplyThenDrop, 1)
            .method("POST")
            .path_prefix(DETAILS),
    );
    let created = rig.submit(kari_created()).await;
    let first = rig.wait_terminal(&created).await;
    rig.control.arm(
        Fault::new(FaultKind::ApplyThenDrop, 1)
            .method("PUT")
            .path_prefix(DETAILS),
    );
    let updated = rig
        .submit(kari("e2", "updated", "2026-11-21T09:00:00Z", "53500.00"))
        .await;
    let second = rig.wait_terminal(&updated).await;
    rig.control.arm(
        Fault::new(FaultKind::ApplyThenDrop, 1)
            .method("PUT")
            .path_prefix(DETAILS),
    );
    let deleted = rig
        .submit(kari("e3", "deleted", "2026-11-22T09:00:00Z", "53500.00"))
        .await;
    let third = rig.wait_terminal(&deleted).await;

    for (shown, state) in [
        (&first, State::Sent),
        (&second, State::Sent),
        (&third, State::ManualDeleteRequired),
    ] {
        assert_eq!(shown.workflow.state, state);
        assert_eq!(
            events(shown),
            [
                "accepted",
                "matched",
                "currency-validated",
                "overlap-checked",
                "intent-recorded",
                "retry-scheduled",
                "adopted"
            ]
        );
        let lost = retries(shown)[0];
        let f = lost.failure.as_ref().unwrap_or_else(|| panic!("{lost:?}"));
        assert_eq!((f.code, f.http_status), (FailureCode::Unavailable, None));
        let adopted = shown.history.last().unwrap_or_else(|| panic!("no history"));
        assert_eq!(adopted.to, state);
        assert!(
            adopted.detail.contains("not written twice"),
            "{}",
            adopted.detail
        );
        assert!(shown.workflow.intent.is_none(), "the intent is settled");
        assert_history_sound(shown);
    }
    // One row, written once per change, its values cleared by the delete; all three
    // instances name it.
    let rows = rig.control.written_details(KARI_EMPLOYMENT);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].annual_salary, Decimal::ZERO);
    assert_eq!(
        rig.control.write_count(),
        3,
        "one POST and two PUTs, never again"
    );
    let record = |s: &Shown| s.workflow.record.as_ref().map(|r| r.id.clone());
    assert_eq!(record(&first), Some(rows[0].id.to_string()));
    assert_eq!(record(&second), record(&first));
    assert_eq!(record(&third), record(&first));
    rig.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_is_read_to_the_end() {
    let rig = Rig::start(FAST).await;
    // The employee, the details listing and the write's answer all trickle in 16-byte chunks.
    let slow = FaultKind::SlowBody { chunk_delay_ms: 10 };
    rig.control.arm(
        Fault::new(slow.clone(), 1)
            .method("GET")
            .path_prefix("/employee/101"),
    );
    rig.control.arm(
        Fault::new(slow.clone(), 1)
            .method("GET")
            .path_prefix(DETAILS),
    );
    rig.control
        .arm(Fault::new(slow, 1).method("POST").path_prefix(DETAILS));
    let id = rig.submit(kari_created()).await;
    let shown = rig.wait_terminal(&id).await;

    assert_eq!(shown.workflow.state, State::Sent);
    assert_eq!(events(&shown), CLEAN);
    assert!(shown.history.iter().all(|h| h.failure.is_none()));
    assert_history_sound(&shown);
    assert!(
        rig.control.faults().armed.is_empty(),
        "every slow answer was served"
    );
    assert_eq!(rig.control.write_count(), 1);
    assert_one_row(&rig.control, kari_annual());
    rig.finish().await;
}

/// One change on the wire, through a recording proxy: the session, `whoAmI` and the company
/// once per daemon, then four calls for the change itself (match, overlap, the rows in force,
/// write), the match being one GET of the
/// employee with its employments nested (never `GET /employee/employment`). A second change of
/// the same salary matches with one GET again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_costs_four_calls_and_its_match_one_get() {
    let sim = start_sim(Seed::demo()).await;
    let proxy = Proxy::start(&sim.control(), None).await;
    let rig = Rig::start_with(sim, &proxy.base_url(), FAST).await;
    let calls = |seen: &[Seen]| -> Vec<String> {
        seen.iter()
            .map(|s| format!("{} {}", s.method, s.path.trim_start_matches("/v2")))
            .collect()
    };

    let first = rig.submit(kari_created()).await;
    assert_eq!(events(&rig.wait_terminal(&first).await), CLEAN);
    let seen = proxy.seen();
    assert_eq!(
        calls(&seen),
        [
            "PUT /token/session/:create",
            "GET /employee/101",
            "GET /token/session/>whoAmI",
            "GET /company/1000001",
            format!("GET {DETAILS}").as_str(),
            // The write reads the rows again: a new row carries the terms of the row in force
            // on its date, read just before it is written (issue 11, point 1).
            format!("GET {DETAILS}").as_str(),
            format!("POST {DETAILS}").as_str(),
        ]
    );

    let second = rig
        .submit(kari("e2", "updated", "2026-11-21T09:00:00Z", "53500.00"))
        .await;
    assert_eq!(rig.wait_terminal(&second).await.workflow.state, State::Sent);
    let again = calls(&proxy.seen()[seen.len()..]);
    let employee: Vec<&String> = again
        .iter()
        .filter(|c| !c.contains(DETAILS) && c.contains("/employee"))
        .collect();
    assert_eq!(employee, ["GET /employee/101"], "{again:#?}");
    assert_one_row(&rig.control, Decimal::from(53_500 * 12));
    rig.finish().await;
    proxy.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_sessions_are_recreated_without_a_failure() {
    let sim = start_sim(Seed::demo()).await;
    let proxy = Proxy::start(&sim.control(), None).await;
    let latency = Duration::from_millis(100);
    let rig = Rig::start_with(sim, &proxy.base_url(), FAST).await;

    // First change: one session is created and cached.
    let first = rig.submit(kari_created()).await;
    rig.wait_terminal(&first).await;
    assert_eq!(rig.control.live_sessions(), 1);

    // Every session ends between two changes: the next change's first call meets a 401.
    rig.control.expire_sessions();
    rig.control.set_latency(latency);
    let second = rig
        .submit(kari("e2", "updated", "2026-11-21T09:00:00Z", "53500.00"))
        .await;
    // And once more in the middle of that change, after it matched.
    rig.admin
        .wait_show(&second, WAIT, |s| {
            s.history.iter().any(|h| h.event == "matched")
        })
        .await;
    rig.control.expire_sessions();
    let shown = rig.wait_terminal(&second).await;

    assert_eq!(shown.workflow.state, State::Sent);
    assert!(
        shown.history.iter().all(|h| h.failure.is_none()),
        "an expired session is not a failure: {:#?}",
        shown.history
    );
    assert_eq!(events(&shown), CLEAN);
    assert_eq!(rig.control.live_sessions(), 1, "one live session again");
    // On the wire: each 401 was followed by a new session and the same call repeated.
    let seen = proxy.seen();
    let refused: Vec<usize> = (0..seen.len()).filter(|&i| seen[i].status == 401).collect();
    assert!(
        !refused.is_empty(),
        "no call met the expired session: {seen:#?}"
    );
    for &i in &refused {
        let renew = seen[i + 1..]
            .iter()
            .position(|s| s.path.ends_with("/token/session/:create"))
            .map(|p| i + 1 + p)
            .unwrap_or_else(|| panic!("no new session after the 401 at {i}: {seen:#?}"));
        assert_eq!(seen[renew].status, 200, "{seen:#?}");
        let repeated = seen[renew + 1..]
            .iter()
            .find(|s| s.method == seen[i].method && s.path == seen[i].path)
            .unwrap_or_else(|| panic!("the refused call was not repeated: {seen:#?}"));
        assert!(repeated.status < 400, "{seen:#?}");
    }
    let sessions = seen
        .iter()
        .filter(|s| s.path.ends_with("/token/session/:create"))
        .count();
    assert_eq!(sessions, 1 + refused.len(), "one session, plus one per 401");
    assert!(rig.errors().await.is_empty());
    let health = rig.admin.get("/admin/v1/health").await.unwrap_or_default();
    assert_eq!(health["unhealthy_integrations"], json!([]), "{health}");
    assert_one_row(&rig.control, Decimal::from(53_500 * 12));
    rig.finish().await;
    proxy.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_mark_the_integration_unhealthy_and_spend_no_budget() {
    const WRONG: &str = "revoked-employee-token-7f3a";
    let sim = start_sim(Seed::demo()).await;
    let control = sim.control();
    // A budget of two attempts: a workflow that spent it on refusals would fail at once.
    let retry = RetryToml {
        attempts_max: 2,
        auth_wait_ms: 200,
        ..FAST
    };
    let setup = setup_with_retry(&control.base_url(), retry);
    let seed = Seed::demo();
    let daemon =
        DaemonProcess::spawn_with_tokens(&setup, "refused.log", &seed.consumer_token, WRONG);
    let admin = Admin::wait(&setup.store, daemon.child.id()).await;
    let items = admin
        .submit(&json!([kari_created()]))
        .await
        .unwrap_or_else(|| panic!("submit"));
    let id = items[0]
        .workflow_id
        .map(|i| i.to_string())
        .unwrap_or_else(|| panic!("{items:?}"));

    let waits = |s: &Shown| {
        s.history
            .iter()
            .filter(|h| h.event == "waiting-for-credentials")
            .count()
    };
    // Three refusals in a row, more than the whole budget.
    let shown = admin.wait_show(&id, WAIT, |s| waits(s) >= 3).await;
    assert_eq!(shown.workflow.state, State::Pending, "never terminal");
    assert_eq!(shown.workflow.attempt, 0, "the budget is untouched");
    assert_history_sound(&shown);
    for h in shown.history.iter().skip(1) {
        assert_eq!(h.event, "waiting-for-credentials", "{h:?}");
        assert_eq!((h.to, h.attempt), (State::Pending, 0));
        let f = h.failure.as_ref().unwrap_or_else(|| panic!("{h:?}"));
        assert_eq!(
            (f.code, f.class),
            (FailureCode::AuthRejected, FailureClass::Auth)
        );
        assert_eq!(f.http_status, Some(401));
        assert_eq!(f.vendor_code.as_deref(), Some("3000"));
        assert!(f.message.contains("Renew the tokens"), "{}", f.message);
        // The long (auth) wait, not the backoff, and no jitter.
        let wake = h.wake_at.unwrap_or_else(|| panic!("{h:?}"));
        assert_eq!(ms(wake - h.at), 200);
    }
    let health = admin.get("/admin/v1/health").await.unwrap_or_default();
    let unhealthy = health["unhealthy_integrations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(unhealthy.len(), 1, "{health}");
    assert_eq!(unhealthy[0]["integration"], json!(INTEGRATION));
    assert!(
        unhealthy[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("refused")),
        "{health}"
    );
    // No token, right or wrong, in what an operator sees.
    let seen = format!("{health} {:?}", shown.history);
    for secret in [WRONG, &seed.consumer_token, &seed.employee_token] {
        assert!(!seen.contains(secret), "a token leaked: {seen}");
    }
    assert_eq!(control.write_count(), 0);
    assert_eq!(daemon.terminate(), Some(0));
    let log = std::fs::read_to_string(setup.dir.path().join("refused.log")).unwrap_or_default();
    assert!(log.contains("marked unhealthy"), "{log}");
    assert!(!log.contains(WRONG), "the refused token reached the log");

    // The credentials are renewed and the daemon restarted: the same instance resumes alone.
    let daemon = DaemonProcess::spawn(&setup, "renewed.log");
    let admin = Admin::wait(&setup.store, daemon.child.id()).await;
    let shown = admin
        .wait_show(&id, WAIT, |s| s.workflow.is_terminal())
        .await;
    assert_eq!(shown.workflow.state, State::Sent);
    let after = shown
        .history
        .iter()
        .rposition(|h| h.event == "waiting-for-credentials")
        .unwrap_or_else(|| panic!("{:#?}", shown.history));
    let resumed: Vec<&str> = shown.history[after + 1..]
        .iter()
        .map(|h| h.event.as_str())
        .collect();
    assert_eq!(resumed, CLEAN[1..]);
    assert_history_sound(&shown);
    let health = admin.get("/admin/v1/health").await.unwrap_or_default();
    assert_eq!(health["unhealthy_integrations"], json!([]), "{health}");
    assert_one_row(&control, kari_annual());
    assert_eq!(daemon.terminate(), Some(0));
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_422_validation_refusal_fails_at_once_with_tripletexs_words() {
    let sim = start_sim(Seed::demo()).await;
    // A proxy spoils the amount of the salary write on its way, so the simulator's own
    // validation refuses it with Tripletex's 422 envelope.
    let spoil: Rewrite = Arc::new(|method: &Method, path: &str, body: Bytes| {
        if method != Method::POST || !path.ends_with(DETAILS) {
            return body;
        }
        let mut v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        v["annualSalary"] = json!(-1);
        Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
    });
    let proxy = Proxy::start(&sim.control(), Some(spoil)).await;
    let rig = Rig::start_with(sim, &proxy.base_url(), FAST).await;
    let id = rig.submit(kari_created()).await;
    let shown = rig.wait_terminal(&id).await;

    assert_eq!(shown.workflow.state, State::Failed);
    assert_eq!(
        events(&shown),
        [
            "accepted",
            "matched",
            "currency-validated",
            "overlap-checked",
            "intent-recorded",
            "failed"
        ],
        "no retry for a refusal"
    );
    let last = shown.history.last().unwrap_or_else(|| panic!("no history"));
    assert_eq!(last.attempt, 0, "the budget is not spent");
    let f = last.failure.as_ref().unwrap_or_else(|| panic!("{last:?}"));
    assert_eq!(f.code, FailureCode::PayrollRejected);
    assert_eq!(f.class, FailureClass::Permanent);
    assert_eq!(f.http_status, Some(422));
    assert_eq!(f.vendor_code.as_deref(), Some("15000"));
    assert!(
        f.message.contains("annualSalary: Must not be negative."),
        "Tripletex's validation message: {}",
        f.message
    );
    assert!(
        f.vendor_message
            .as_deref()
            .is_some_and(|m| m.contains("annualSalary")),
        "{f:?}"
    );
    // The request id is the one Tripletex sent with that answer.
    let posts: Vec<Seen> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.method == "POST" && s.path.ends_with(DETAILS))
        .collect();
    assert_eq!(posts.len(), 1, "sent once, never retried: {posts:?}");
    assert_eq!(posts[0].status, 422);
    assert!(posts[0].request_id.is_some());
    assert_eq!(f.request_id, posts[0].request_id);
    assert_eq!(rig.control.write_count(), 0);
    // The error log has it, with the same words.
    let log = rig.errors().await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0].failure.code, FailureCode::PayrollRejected);
    assert_eq!(log[0].failure.request_id, f.request_id);
    rig.finish().await;
    proxy.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_cancels_a_retrying_instance() {
    // A large budget: the instance is still retrying when the operator steps in.
    let retry = RetryToml {
        attempts_max: 50,
        initial_delay_ms: 50,
        delay_ms_max: 200,
        auth_wait_ms: 300,
    };
    let rig = Rig::start(retry).await;
    rig.control.arm(
        Fault::new(FaultKind::Unavailable, 10_000)
            .method("GET")
            .path_prefix("/employee/101"),
    );
    let id = rig.submit(kari_created()).await;
    rig.admin
        .wait_show(&id, WAIT, |s| retries(s).len() >= 2)
        .await;
    let (status, answer) = rig
        .admin
        .post(
            &format!("/admin/v1/instances/{id}/cancel"),
            &json!({"reason": "payroll is down for maintenance"}),
        )
        .await
        .unwrap_or_else(|| panic!("cancel answered"));
    assert_eq!(status, 200, "{answer}");
    let cancelled: Workflow =
        serde_json::from_value(answer).unwrap_or_else(|e| panic!("cancel's answer: {e}"));
    assert_eq!(cancelled.state, State::Failed);

    let shown = rig.admin.show(&id).await.unwrap_or_else(|| panic!("show"));
    assert_eq!(shown.workflow.state, State::Failed);
    let last = shown.history.last().unwrap_or_else(|| panic!("no history"));
    assert_eq!(last.event, "operator-cancel");
    assert_eq!(last.from, Some(State::Pending));
    assert_eq!(last.wake_at, None, "nothing is scheduled any more");
    let f = last.failure.as_ref().unwrap_or_else(|| panic!("{last:?}"));
    assert_eq!(f.code, FailureCode::Cancelled);
    assert_eq!(
        f.message,
        "cancelled by operator: payroll is down for maintenance"
    );
    assert_history_sound(&shown);

    // After the cancel nothing more happens: no attempt, no history entry. (An attempt in
    // flight at the instant of the cancel may still reach Tripletex; its commit is refused.)
    tokio::time::sleep(Duration::from_millis(600)).await;
    let calls = rig.control.faults().armed.first().map(|f| f.times);
    let len = shown.history.len();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        rig.control.faults().armed.first().map(|f| f.times),
        calls,
        "Tripletex is still being called"
    );
    let later = rig.admin.show(&id).await.unwrap_or_else(|| panic!("show"));
    assert_eq!(later.history.len(), len, "{:#?}", later.history);
    assert_eq!(later.workflow.state, State::Failed);

    // A second cancel is refused: the instance is terminal.
    let (status, answer) = rig
        .admin
        .post(&format!("/admin/v1/instances/{id}/cancel"), &json!({}))
        .await
        .unwrap_or_else(|| panic!("cancel answered"));
    assert_eq!(status, 409, "{answer}");
    let log = rig.errors().await;
    assert!(
        log.iter().any(|e| e.failure.code == FailureCode::Cancelled),
        "{log:?}"
    );

    // Payroll is back; the operator retries: a fresh budget, and the change is sent once.
    rig.control.clear_faults();
    let (status, answer) = rig
        .admin
        .post(
            &format!("/admin/v1/instances/{id}/retry"),
            &json!({"reason": "back up"}),
        )
        .await
        .unwrap_or_else(|| panic!("retry answered"));
    assert_eq!(status, 200, "{answer}");
    let shown = rig.wait_terminal(&id).await;
    assert_eq!(shown.workflow.state, State::Sent);
    let retried_at = shown
        .history
        .iter()
        .position(|h| h.event == "operator-retry")
        .unwrap_or_else(|| panic!("{:#?}", shown.history));
    assert_eq!(shown.history[retried_at].attempt, 0, "a fresh budget");
    let resumed: Vec<&str> = shown.history[retried_at + 1..]
        .iter()
        .map(|h| h.event.as_str())
        .collect();
    assert_eq!(resumed, CLEAN[1..]);
    assert_history_sound(&shown);
    assert_one_row(&rig.control, kari_annual());
    rig.finish().await;
}

/// A write answered 503 until the budget runs out: the write may have landed, so the change
/// fails holding its salary, and `/metrics` names the held salary until an operator retry
/// settles it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_of_unknown_outcome_shows_as_a_held_salary_in_metrics() {
    let retry = RetryToml {
        attempts_max: 2,
        ..FAST
    };
    let rig = Rig::start(retry).await;
    rig.control.arm(
        Fault::new(FaultKind::Unavailable, 100)
            .method("POST")
            .path_prefix(DETAILS),
    );
    let id = rig.submit(kari_created()).await;
    let shown = rig.wait_terminal(&id).await;
    assert_eq!(shown.workflow.state, State::Failed);
    assert!(shown.workflow.intent.is_some(), "{:?}", shown.workflow);
    let held = format!("salary_sync_held_salaries{{integration=\"{INTEGRATION}\"}} 1");
    let metrics = rig.metrics().await;
    assert!(metrics.contains(&held), "{metrics}");

    rig.control.clear_faults();
    let (status, answer) = rig
        .admin
        .post(
            &format!("/admin/v1/instances/{id}/retry"),
            &json!({"reason": "payroll back"}),
        )
        .await
        .unwrap_or_else(|| panic!("retry answered"));
    assert_eq!(status, 200, "{answer}");
    let shown = rig.wait_terminal(&id).await;
    assert_eq!(shown.workflow.state, State::Sent);
    let metrics = rig.metrics().await;
    // The integration's series stays, at zero (a dashboard sees 0, not a missing series).
    let released = format!("salary_sync_held_salaries{{integration=\"{INTEGRATION}\"}} 0");
    assert!(metrics.lines().any(|l| l == released), "{metrics}");
    assert_one_row(&rig.control, kari_annual());
    rig.finish().await;
}

/// Regression: quarantining an unreadable instance left its `due` and salary-queue entries
/// behind, so the scheduler woke every millisecond for a wake time that no longer existed,
/// and every later change to the same salary waited forever behind the quarantined one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quarantined_instance_does_not_block_its_salary_or_spin_the_scheduler() {
    let sim = start_sim(Seed::demo()).await;
    let control = sim.control();
    let setup = setup_with_retry(&control.base_url(), FAST);
    // Two changes stored with the daemon stopped; then Kari's is spoiled on disk.
    let ola = event(
        "o1",
        "created",
        "2026-11-20T09:00:00Z",
        "sal-ola",
        json!({"id": "o", "employee_number": "18"}),
        "650000",
        "NOK",
        "yearly",
        "2026-03-01",
    );
    let file = setup.dir.path().join("events.json");
    let body = serde_json::to_vec(&json!([kari_created(), ola])).unwrap_or_default();
    std::fs::write(&file, body).unwrap_or_else(|e| panic!("{e}"));
    let (code, out, err) = cli(&setup, &["submit", &file.display().to_string()]);
    assert_eq!(code, 0, "{out}{err}");
    let spoiled = {
        let store = Store::open(&setup.store).unwrap_or_else(|e| panic!("{e}"));
        let kari = store
            .list(&Filter::default())
            .filter_map(Result::ok)
            .find(|w| w.change.salary.id.as_str() == "sal-kari")
            .map(|w| w.id)
            .unwrap_or_else(|| panic!("no stored change for sal-kari"));
        store
            .corrupt_for_test(kari, &[1, 0xff, 0xfe])
            .unwrap_or_else(|e| panic!("{e}"));
        kari
    };

    let daemon = DaemonProcess::spawn(&setup, "daemon.log");
    let admin = Admin::wait(&setup.store, daemon.child.id()).await;
    let done = admin.wait_all_terminal(1, WAIT).await;
    assert_eq!(state_of(&done, "sal-ola", "created"), State::Sent);
    assert!(
        done.iter().all(|w| w.id != spoiled),
        "the spoiled instance is set aside"
    );
    // A newer change to the spoiled instance's salary still runs.
    let items = admin
        .submit(&json!([kari(
            "e2",
            "updated",
            "2026-11-21T09:00:00Z",
            "53500.00"
        )]))
        .await
        .unwrap_or_else(|| panic!("submit"));
    assert_eq!(items[0].outcome, "accepted", "{items:?}");
    let done = admin.wait_all_terminal(2, WAIT).await;
    assert_eq!(state_of(&done, "sal-kari", "updated"), State::Sent);
    let log_path = daemon.log.clone();
    assert_eq!(daemon.terminate(), Some(0));
    let log = std::fs::read_to_string(log_path).unwrap_or_default();
    assert!(log.contains("unreadable instance quarantined"), "{log}");

    // On disk: the record is in quarantine, and nothing is left scheduled or queued for it.
    let store = Store::open(&setup.store).unwrap_or_else(|e| panic!("{e}"));
    let quarantined = store.quarantined().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    assert_eq!(quarantined[0].key, spoiled.to_string());
    assert_eq!(
        store.next_wake().unwrap_or_else(|e| panic!("{e}")),
        None,
        "a wake time is left for an instance that is gone"
    );
    for salary in ["sal-kari", "sal-ola"] {
        let salary = SalaryId::parse(salary).unwrap_or_else(|e| panic!("{e}"));
        let integration = IntegrationId::parse(INTEGRATION).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            store
                .salary_head(&integration, &salary)
                .unwrap_or_else(|e| panic!("{e}")),
            None,
            "{salary} still has a queued change"
        );
    }
    drop(store);
    // And the daemon starts again on this store (no crash loop).
    let daemon = DaemonProcess::spawn(&setup, "again.log");
    let admin = Admin::wait(&setup.store, daemon.child.id()).await;
    assert_eq!(admin.instances().await.map(|i| i.len()), Some(2));
    assert_eq!(daemon.terminate(), Some(0));
    sim.shutdown().await;
}

// ---- A recording proxy in front of the simulator ----

/// Rewrites a request body on its way to the simulator, given the method and the path as sent.
type Rewrite = Arc<dyn Fn(&Method, &str, Bytes) -> Bytes + Send + Sync>;

/// One request the proxy forwarded: no query (it may hold tokens), no body.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    /// 0 when the simulator did not answer.
    status: u16,
    request_id: Option<String>,
}

struct ProxyState {
    upstream: String,
    client: reqwest::Client,
    rewrite: Option<Rewrite>,
    seen: Mutex<Vec<Seen>>,
}

/// Forwards everything to the simulator and remembers what passed, in order.
struct Proxy {
    addr: std::net::SocketAddr,
    state: Arc<ProxyState>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(control: &Control, rewrite: Option<Rewrite>) -> Proxy {
        let state = Arc::new(ProxyState {
            upstream: control.root_url(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_else(|e| panic!("{e}")),
            rewrite,
            seen: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Proxy { addr, state, task }
    }

    fn base_url(&self) -> String {
        format!("http://{}/v2", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.state
            .seen
            .lock()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    fn stop(self) {
        self.task.abort();
    }
}

async fn forward(
    AxState(state): AxState<Arc<ProxyState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let target = format!(
        "{}{}",
        state.upstream,
        uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let body = match &state.rewrite {
        Some(rewrite) => rewrite(&method, &path, body),
        None => body,
    };
    let mut request = state
        .client
        .request(method.clone(), target)
        .body(body.to_vec());
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            request = request.header(name, value);
        }
    }
    let mut seen = Seen {
        method: method.to_string(),
        path: percent_decoded(&path),
        status: 0,
        request_id: None,
    };
    let response = match request.send().await {
        Ok(answer) => {
            seen.status = answer.status().as_u16();
            let mut out = Response::builder().status(answer.status());
            for (name, value) in answer.headers() {
                if name == "x-tlx-request-id" {
                    seen.request_id = value.to_str().ok().map(str::to_owned);
                }
                if name != "content-length" && name != "transfer-encoding" && name != "connection" {
                    out = out.header(name, value);
                }
            }
            let bytes = answer.bytes().await.unwrap_or_default();
            out.body(Body::from(bytes))
                .unwrap_or_else(|e| panic!("proxy answer: {e}"))
        }
        Err(_) => Response::builder()
            .status(502)
            .body(Body::empty())
            .unwrap_or_else(|e| panic!("proxy answer: {e}")),
    };
    if let Ok(mut all) = state.seen.lock() {
        all.push(seen);
    }
    response
}

/// `%3A` and `%3E` as `:` and `>`, so paths compare as written in the spec.
fn percent_decoded(path: &str) -> String {
    path.replace("%3A", ":")
        .replace("%3a", ":")
        .replace("%3E", ">")
        .replace("%3e", ">")
}
