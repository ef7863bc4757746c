//! Store tests on a real sled directory.

use super::*;
use crate::domain::change::tests_support::change;
use crate::domain::step::{RetryDelay, RetryPolicy};
use crate::domain::{step, ChangeKind, Input, Period, Position};
use chrono::TimeZone;

struct Fixed;
impl RetryPolicy for Fixed {
    fn attempts_max(&self) -> u32 {
        3
    }
    fn next_delay(&self, _: u64) -> RetryDelay {
        RetryDelay {
            delay_ms: 1000,
            interval_ms: 1000,
        }
    }
    fn auth_wait_ms(&self) -> u64 {
        60_000
    }
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 3, 0, 0)
        .single()
        .unwrap_or_default()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"))
}

/// A store with the sample change's integration enabled (ingest refuses it otherwise).
async fn open_enabled(path: &std::path::Path) -> Store {
    let store = Store::open(path).unwrap_or_else(|e| panic!("{e}"));
    let id = change(ChangeKind::Created).integration_id;
    let from = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single();
    store
        .set_integration(id, true, from, now())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    store
}

/// Ingests one change, which must be accepted; its instance id.
async fn accept_one(store: &Store, change: SalaryChange) -> WorkflowId {
    let out = store
        .ingest(vec![change], now())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    match out[..] {
        [IngestOutcome::Accepted(id)] => id,
        _ => panic!("{out:?}"),
    }
}

/// The stored copy of instance `id`, which must be there.
fn stored(store: &Store, id: WorkflowId) -> Workflow {
    store
        .get(id)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("stored"))
}

fn position() -> Position {
    Position {
        employee_id: "1".into(),
        employment_id: "2".into(),
        period: Period {
            start: now().date_naive(),
            end: None,
        },
    }
}

#[test]
fn ingest_is_idempotent_and_detects_a_reused_event_id() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    rt().block_on(async {
        let store = open_enabled(dir.path()).await;
        let c = change(ChangeKind::Created);
        let first = store
            .ingest(vec![c.clone()], now())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let IngestOutcome::Accepted(id) = first[0] else {
            panic!("{first:?}")
        };
        let again = store
            .ingest(vec![c.clone()], now())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again, vec![IngestOutcome::Duplicate(id)]);
        let mut other = c.clone();
        other.salary.note = Some("changed".into());
        let conflict = store
            .ingest(vec![other], now())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(conflict, vec![IngestOutcome::Conflict(id)]);
        assert_eq!(store.list(&Filter::default()).count(), 1);
        assert_eq!(store.due(now(), 10).unwrap_or_default(), vec![id]);
        assert_eq!(
            store
                .salary_head(&c.integration_id, &c.salary.id)
                .unwrap_or_default(),
            Some(id)
        );
    });
}

#[test]
fn a_transition_moves_every_index_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = change(ChangeKind::Created);
    let id = rt().block_on(async {
        let store = open_enabled(dir.path()).await;
        let id = accept_one(&store, c.clone()).await;
        let wf = stored(&store, id);
        let t =
            step(&wf, Input::Matched(position()), now(), &Fixed).unwrap_or_else(|e| panic!("{e}"));
        store
            .commit(t.clone())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // The same transition again is computed from a stale copy: refused.
        assert!(matches!(store.commit(t).await, Err(Error::Stale { .. })));
        id
    });
    let store = Store::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let wf = stored(&store, id);
    assert_eq!(wf.state, State::MatchedToPosition);
    assert_eq!(store.history(id).map(|h| h.len()).unwrap_or(0), 2);
    let counts = store.count_by_state().unwrap_or_default();
    assert!(
        counts.contains(&(State::MatchedToPosition, 1)) && counts.contains(&(State::Pending, 0))
    );
    let filter = Filter {
        state: Some(State::MatchedToPosition),
        ..Filter::default()
    };
    assert_eq!(store.list(&filter).count(), 1);
}

#[test]
fn a_terminal_transition_leaves_the_queues_and_logs_the_error() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    rt().block_on(async {
        let store = open_enabled(dir.path()).await;
        let c = change(ChangeKind::Created);
        let id = accept_one(&store, c.clone()).await;
        let wf = stored(&store, id);
        let failure =
            crate::domain::Failure::permanent(crate::domain::FailureCode::NoEmployment, "none");
        let t =
            step(&wf, Input::StepFailed(failure), now(), &Fixed).unwrap_or_else(|e| panic!("{e}"));
        store.commit(t).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(store.due(now(), 10).unwrap_or_default(), vec![]);
        assert_eq!(
            store
                .salary_head(&c.integration_id, &c.salary.id)
                .unwrap_or_default(),
            None
        );
        let errors = store.errors(Some(&c.integration_id)).unwrap_or_default();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].workflow_id, Some(id));
    });
}

#[test]
fn a_corrupt_record_is_reported_and_quarantined_while_the_rest_still_reads() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    rt().block_on(async {
        let store = open_enabled(dir.path()).await;
        let a = change(ChangeKind::Created);
        let mut b = change(ChangeKind::Updated);
        b.event_id = crate::domain::EventId::parse("evt-other").unwrap_or_else(|e| panic!("{e}"));
        let out = store
            .ingest(vec![a, b], now())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (IngestOutcome::Accepted(bad), IngestOutcome::Accepted(good)) = (out[0], out[1]) else {
            panic!("{out:?}")
        };
        store
            .corrupt_for_test(bad, &[1, 0xff, 0xfe])
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(store.get(bad), Err(Error::Corrupt { .. })));
        let listed: Vec<_> = store.list(&Filter::default()).collect();
        assert_eq!(listed.iter().filter(|r| r.is_ok()).count(), 1);
        assert_eq!(listed.iter().filter(|r| r.is_err()).count(), 1);
        store
            .quarantine(bad, "test".into(), now())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(store.get(bad).ok().flatten(), None);
        assert!(store.get(good).ok().flatten().is_some());
        assert_eq!(store.quarantined().map(|q| q.len()).unwrap_or(0), 1);
    });
}

/// Regression: quarantine left the instance's `due` and `salary_queue` keys behind, so the
/// scheduler spun on a wake time of an instance that was gone and the salary's later changes
/// waited behind it forever.
#[test]
fn quarantine_removes_the_instance_from_the_due_index_and_its_salary_queue() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    rt().block_on(async {
        let store = open_enabled(dir.path()).await;
        let older = change(ChangeKind::Created);
        let mut newer = change(ChangeKind::Updated);
        newer.event_id =
            crate::domain::EventId::parse("evt-newer").unwrap_or_else(|e| panic!("{e}"));
        newer.occurred_at += chrono::Duration::hours(1);
        let (integration, salary) = (older.integration_id.clone(), older.salary.id.clone());
        let out = store
            .ingest(vec![older, newer], now())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (IngestOutcome::Accepted(bad), IngestOutcome::Accepted(good)) = (out[0], out[1]) else {
            panic!("{out:?}")
        };
        assert_eq!(
            store.salary_head(&integration, &salary).ok().flatten(),
            Some(bad)
        );
        store
            .corrupt_for_test(bad, &[1, 0xff, 0xfe])
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .quarantine(bad, "test".into(), now())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(store.due(now(), 10).ok(), Some(vec![good]));
        assert_eq!(
            store.salary_head(&integration, &salary).ok().flatten(),
            Some(good)
        );
    });
}

/// Issue 13 point 2: sled writes a record above its blob threshold (about 128 KiB) to its own
/// file under `blobs/` and never fsyncs it. The committer fsyncs it before answering.
#[test]
fn issue13_a_record_above_the_blob_threshold_has_its_blob_file_fsynced_before_ok() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    rt().block_on(async {
        let store = open_enabled(dir.path()).await;
        let id = accept_one(&store, change(ChangeKind::Created)).await;
        assert_eq!(store.synced_blob_files(), Vec::<String>::new());
        // A quarantine reason is stored as given: 300 KiB puts the record above the threshold.
        store
            .quarantine(id, "x".repeat(300 * 1024), now())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut on_disk: Vec<String> = std::fs::read_dir(dir.path().join("blobs"))
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        assert!(!on_disk.is_empty(), "sled wrote no blob file");
        let mut synced = store.synced_blob_files();
        synced.sort();
        assert_eq!(synced, on_disk);
    });
}

#[test]
fn a_second_open_of_a_held_store_says_it_is_locked() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let _first = Store::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    match Store::open(dir.path()) {
        Err(Error::Locked { .. }) => {}
        Err(other) => panic!("expected Locked, got {other}"),
        Ok(_) => panic!("a held store opened twice"),
    }
}

#[test]
fn ingest_refuses_a_disabled_integration_and_skips_changes_before_activation() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    rt().block_on(async {
        let store = Store::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let c = change(ChangeKind::Created);
        let out = store
            .ingest(vec![c.clone()], now())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out, vec![IngestOutcome::NotEnabled], "off until enabled");
        // Activated after the change occurred (the sample occurred 2026-11-25T10:00Z).
        let late = Utc.with_ymd_and_hms(2026, 11, 26, 0, 0, 0).single();
        store
            .set_integration(c.integration_id.clone(), true, late, now())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let out = store
            .ingest(vec![c.clone()], now())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out, vec![IngestOutcome::Skipped]);
        let again = store
            .ingest(vec![c.clone()], now())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            again,
            vec![IngestOutcome::Skipped],
            "a replay is not counted twice"
        );
        let switch = store
            .integration(&c.integration_id)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("switch"));
        assert_eq!(switch.skipped, 1);
        let log = store.errors(Some(&c.integration_id)).unwrap_or_default();
        assert_eq!(log.len(), 1);
        assert_eq!(
            log[0].failure.code,
            crate::domain::FailureCode::BeforeActivation
        );
        assert_eq!(
            store.list(&Filter::default()).count(),
            0,
            "a skipped change is no instance"
        );
        // An update made after activation is sent.
        let mut update = change(ChangeKind::Updated);
        update.event_id =
            crate::domain::EventId::parse("evt-after").unwrap_or_else(|e| panic!("{e}"));
        update.occurred_at = now();
        let out = store
            .ingest(vec![update], now())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(out[0], IngestOutcome::Accepted(_)), "{out:?}");
        // Disabled: refused again, the activation instant kept.
        let off = store
            .set_integration(c.integration_id.clone(), false, None, now())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((off.enabled, off.activated_at), (false, late));
        let mut third = change(ChangeKind::Updated);
        third.event_id = crate::domain::EventId::parse("evt-off").unwrap_or_else(|e| panic!("{e}"));
        let out = store
            .ingest(vec![third], now())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out, vec![IngestOutcome::NotEnabled]);
    });
}

#[test]
fn prune_removes_old_terminal_instances_but_keeps_the_replay_guard() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    rt().block_on(async {
        let store = open_enabled(dir.path()).await;
        let c = change(ChangeKind::Created);
        let mut running = change(ChangeKind::Updated);
        running.event_id =
            crate::domain::EventId::parse("evt-running").unwrap_or_else(|e| panic!("{e}"));
        let out = store
            .ingest(vec![c.clone(), running], now())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (IngestOutcome::Accepted(done), IngestOutcome::Accepted(open)) = (out[0], out[1])
        else {
            panic!("{out:?}")
        };
        let wf = stored(&store, done);
        let failure =
            crate::domain::Failure::permanent(crate::domain::FailureCode::NoEmployment, "none");
        let t =
            step(&wf, Input::StepFailed(failure), now(), &Fixed).unwrap_or_else(|e| panic!("{e}"));
        store.commit(t).await.unwrap_or_else(|e| panic!("{e}"));
        // A cutoff before the change: nothing is old enough.
        let (n, _) = store
            .prune(now() - chrono::Duration::days(1))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(n, 0);
        let (n, lines) = store
            .prune(now() + chrono::Duration::days(1))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (n, lines),
            (1, 1),
            "the failed instance and its error-log line"
        );
        assert_eq!(store.get(done).ok().flatten(), None);
        assert_eq!(store.history(done).map(|h| h.len()).unwrap_or(9), 0);
        assert!(
            store.get(open).ok().flatten().is_some(),
            "non-terminal instances stay"
        );
        let replay = store
            .ingest(vec![c], now())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            replay,
            vec![IngestOutcome::Duplicate(done)],
            "a replayed old event is not sent again"
        );
        assert!(store
            .counts_by_integration()
            .iter()
            .all(|(_, s, n)| *s != State::Failed || *n == 0));
    });
}

/// Regression (simulation, e.g. seed 11 of the first run): an older change that arrives while
/// a newer change to the same salary is part way through waits for it, instead of becoming the
/// queue's head and running beside it.
#[test]
fn an_older_change_arriving_late_waits_for_the_one_already_started() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    rt().block_on(async {
        let store = open_enabled(dir.path()).await;
        let older = change(ChangeKind::Created);
        let mut newer = change(ChangeKind::Updated);
        newer.event_id =
            crate::domain::EventId::parse("evt-newer").unwrap_or_else(|e| panic!("{e}"));
        newer.occurred_at += chrono::Duration::hours(1);
        let (integration, salary) = (older.integration_id.clone(), older.salary.id.clone());
        let started = accept_one(&store, newer).await;
        let wf = stored(&store, started);
        let t =
            step(&wf, Input::Matched(position()), now(), &Fixed).unwrap_or_else(|e| panic!("{e}"));
        store.commit(t).await.unwrap_or_else(|e| panic!("{e}"));
        let late = accept_one(&store, older).await;
        assert_eq!(
            store.salary_head(&integration, &salary).ok().flatten(),
            Some(started),
            "the started change keeps the salary"
        );
        assert_eq!(store.index_problems().ok(), Some(Vec::new()));
        // The scheduler asks with the copy it has just read; the answer must not change.
        let late_copy = stored(&store, late);
        assert_eq!(
            store.salary_head_of(&late_copy).ok().flatten(),
            Some(started)
        );
        let started_copy = stored(&store, started);
        assert_eq!(
            store.salary_head_of(&started_copy).ok().flatten(),
            Some(started)
        );
    });
}

/// The `due` index names each instance's integration, after ingest and after a transition, so
/// the scheduler can pass over an integration at its limit without reading the instance.
#[test]
fn due_entries_name_the_integration() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    rt().block_on(async {
        let store = open_enabled(dir.path()).await;
        let c = change(ChangeKind::Created);
        let id = accept_one(&store, c.clone()).await;
        let expected = vec![DueEntry {
            id,
            integration: Some(c.integration_id.clone()),
        }];
        let entries = |store: &Store, at: DateTime<Utc>| -> Vec<DueEntry> {
            store
                .due_entries(at)
                .collect::<Result<_, _>>()
                .unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(entries(&store, now()), expected);
        // A retry moves the wake time: the transition rewrites the entry, integration and all.
        let wf = stored(&store, id);
        let failure =
            crate::domain::Failure::transient(crate::domain::FailureCode::Unavailable, "503");
        let t =
            step(&wf, Input::StepFailed(failure), now(), &Fixed).unwrap_or_else(|e| panic!("{e}"));
        let wake = t.workflow.wake_at.unwrap_or_else(|| panic!("scheduled"));
        store.commit(t).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(entries(&store, now()), vec![], "not due before the retry");
        assert_eq!(entries(&store, wake), expected);
        // A step that succeeds keeps the wake time and the entry.
        let wf = stored(&store, id);
        let t =
            step(&wf, Input::Matched(position()), wake, &Fixed).unwrap_or_else(|e| panic!("{e}"));
        store.commit(t).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(entries(&store, wake), expected);
        assert_eq!(store.index_problems().ok(), Some(Vec::new()));
    });
}

/// Regression (simulation): a change whose retries ran out with its write's outcome unknown
/// (an intent outstanding) keeps its salary, so the salary's next change cannot write beside a
/// record that may already be there; it is not pruned either.
#[test]
fn a_failed_write_of_unknown_outcome_holds_its_salary() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    rt().block_on(async {
        let store = open_enabled(dir.path()).await;
        let first = change(ChangeKind::Created);
        let mut next = change(ChangeKind::Updated);
        next.event_id = crate::domain::EventId::parse("evt-next").unwrap_or_else(|e| panic!("{e}"));
        next.occurred_at += chrono::Duration::hours(1);
        let (integration, salary) = (first.integration_id.clone(), first.salary.id.clone());
        let currency = first.salary.pay.currency;
        let id = accept_one(&store, first).await;
        let lost =
            crate::domain::Failure::transient(crate::domain::FailureCode::Unavailable, "cut");
        let inputs = vec![
            Input::Matched(position()),
            Input::CurrencyFound(currency),
            Input::OverlapClear,
            Input::IntentRecorded { updates: None },
            Input::StepFailed(lost.clone()),
            Input::StepFailed(lost.clone()),
            Input::StepFailed(lost),
        ];
        for input in inputs {
            let wf = stored(&store, id);
            let t = step(&wf, input, now(), &Fixed).unwrap_or_else(|e| panic!("{e}"));
            store.commit(t).await.unwrap_or_else(|e| panic!("{e}"));
        }
        let failed = stored(&store, id);
        assert_eq!(failed.state, State::Failed);
        assert!(failed.intent.is_some(), "{failed:?}");
        assert_eq!(
            store.held_salaries().ok(),
            Some(vec![(integration.clone(), 1)]),
            "the held salary is counted for /metrics"
        );
        store
            .ingest(vec![next], now())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            store.salary_head(&integration, &salary).ok().flatten(),
            Some(id),
            "the failed write holds the salary"
        );
        assert_eq!(store.index_problems().ok(), Some(Vec::new()));
        let far = now() + chrono::Duration::days(365);
        let (pruned, _) = store.prune(far).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(pruned, 0, "not pruned while its write's outcome is unknown");
    });
}

/// The per-integration counts are kept with each commit, so an open reads them instead of
/// decoding every instance; after a quarantine (the instance's state unknown) the next open
/// counts again, and either way the counts match the instances.
#[test]
fn instance_counts_are_kept_with_each_commit_and_recounted_after_a_quarantine() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let integration = change(ChangeKind::Created).integration_id;
    let count_of = |store: &Store, state: State| {
        store
            .counts_by_integration()
            .into_iter()
            .find(|(i, s, _)| *i == integration && *s == state)
            .map_or(0, |(_, _, n)| n)
    };
    let (bad, good) = rt().block_on(async {
        let store = open_enabled(dir.path()).await;
        let a = change(ChangeKind::Created);
        let mut b = change(ChangeKind::Updated);
        b.event_id = crate::domain::EventId::parse("evt-other").unwrap_or_else(|e| panic!("{e}"));
        let out = store
            .ingest(vec![a, b], now())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let (IngestOutcome::Accepted(a), IngestOutcome::Accepted(b)) = (out[0], out[1]) else {
            panic!("{out:?}")
        };
        let wf = stored(&store, a);
        let t =
            step(&wf, Input::Matched(position()), now(), &Fixed).unwrap_or_else(|e| panic!("{e}"));
        store.commit(t).await.unwrap_or_else(|e| panic!("{e}"));
        (a, b)
    });
    {
        // The committer thread of the store dropped above may hold sled's lock a moment longer.
        let store = reopen_when_released(dir.path());
        let commits = committer::commits_in(&store.trees.meta).unwrap_or(0);
        assert!(
            committer::stored_counts(&store.trees.meta, commits).is_some(),
            "the last commit kept its counts"
        );
        assert_eq!(count_of(&store, State::Pending), 1);
        assert_eq!(count_of(&store, State::MatchedToPosition), 1);
        rt().block_on(async {
            store
                .corrupt_for_test(good, &[1, 0xff, 0xfe])
                .unwrap_or_else(|e| panic!("{e}"));
            store
                .quarantine(good, "test".into(), now())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        });
        let commits = committer::commits_in(&store.trees.meta).unwrap_or(0);
        assert!(
            committer::stored_counts(&store.trees.meta, commits).is_none(),
            "a quarantine drops the kept counts"
        );
    }
    let store = Store::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(count_of(&store, State::Pending), 0, "recounted at open");
    assert_eq!(count_of(&store, State::MatchedToPosition), 1);
    assert!(store.get(bad).ok().flatten().is_some());
}

/// A worker commits a match and the currency check after it in one `commit_many`: the second
/// transition sees the first inside the transaction, both history entries are kept, and the
/// indexes hold the second's state.
#[test]
fn two_transitions_of_one_instance_commit_together() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    rt().block_on(async {
        let store = open_enabled(dir.path()).await;
        let id = accept_one(&store, change(ChangeKind::Created)).await;
        let wf = stored(&store, id);
        let first =
            step(&wf, Input::Matched(position()), now(), &Fixed).unwrap_or_else(|e| panic!("{e}"));
        let currency = wf.change.salary.pay.currency;
        let second = step(
            &first.workflow,
            Input::CurrencyFound(currency),
            now(),
            &Fixed,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let each = store
            .commit_many(vec![first, second])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(each.iter().all(Result::is_ok), "{each:?}");
        // A copy from before both is stale now.
        let again =
            step(&wf, Input::Matched(position()), now(), &Fixed).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            store.commit(again).await,
            Err(Error::Stale { .. })
        ));
        drop(store);
        let store = Store::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let wf = stored(&store, id);
        assert_eq!(wf.state, State::CurrencyValidated);
        assert_eq!(wf.history_len, 3);
        let history = store.history(id).unwrap_or_else(|e| panic!("{e}"));
        let states: Vec<State> = history.iter().map(|h| h.to).collect();
        assert_eq!(
            states,
            vec![
                State::Pending,
                State::MatchedToPosition,
                State::CurrencyValidated
            ]
        );
        assert_eq!(store.index_problems().ok(), Some(Vec::new()));
    });
}

/// Opens the store at `path`, waiting (up to 10 s) while a just-dropped handle's committer
/// thread still holds sled's lock.
fn reopen_when_released(path: &std::path::Path) -> Store {
    let started = std::time::Instant::now();
    loop {
        match Store::open(path) {
            Err(Error::Locked { .. }) if started.elapsed() < std::time::Duration::from_secs(10) => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other.unwrap_or_else(|e| panic!("{e}")),
        }
    }
}
