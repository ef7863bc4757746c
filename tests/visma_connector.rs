//! The Visma.net Payroll connector over real HTTP on loopback against the Visma simulator:
//! every step of the workflow (match, currency, overlap, write, reconcile), the timeline rules,
//! token renewal, stale ETags, job polling, jobs that fail late or skip the salary, outages,
//! and an applied-then-dropped PUT found again instead of sent twice.
//!
//! Invariant: each test starts its own simulator on `127.0.0.1:0` and its own connector.

use std::time::Duration;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use salary_sync::connectors::http::{client, ClientSettings};
use salary_sync::connectors::visma::{VismaApi, VismaConfig, VismaConnector};
use salary_sync::connectors::{Connector, Error, JobPoll, OverlapCheck, WriteStart};
use salary_sync::domain::{Currency, FailureClass, FailureCode, PayrollRecord, SalaryChange};
use salary_sync::secret::Secret;
use salary_sync::simulators::visma::{
    self as sim, guid, Fault, FaultKind, Handle, SalaryEntry, Seed,
};
use serde_json::{json, Value};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn dec(s: &str) -> Decimal {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_else(|e| panic!("{s}: {e}"))
}

async fn start_with(seed: Seed) -> Handle {
    sim::start(seed)
        .await
        .unwrap_or_else(|e| panic!("simulator did not start: {e}"))
}

async fn start() -> Handle {
    start_with(Seed::demo()).await
}

fn config(sim: &Handle) -> VismaConfig {
    let seed = Seed::demo();
    VismaConfig {
        base_url: sim.base_url(),
        token_url: sim.token_url(),
        tenant_id: seed.tenant_id,
        client_id: Secret::new(seed.client_id),
        client_secret: Secret::new(seed.client_secret),
        scope: None,
        currency: Currency::parse("NOK").unwrap_or_else(|e| panic!("{e}")),
        api: VismaApi {
            page_size: 2,
            write_poll_interval_ms: 10,
            write_wait_ms: 2_000,
            ..VismaApi::default()
        },
    }
}

fn http() -> reqwest::Client {
    client(&ClientSettings {
        request_timeout_ms: 5_000,
        ..ClientSettings::default()
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn connector(sim: &Handle) -> VismaConnector {
    VismaConnector::new(config(sim), http())
}

fn change(kind: &str, employee: Value, amount: &str, unit: &str, start: &str) -> SalaryChange {
    change_with(kind, "evt-1", employee, amount, unit, start, Value::Null)
}

fn change_with(
    kind: &str,
    event: &str,
    employee: Value,
    amount: &str,
    unit: &str,
    start: &str,
    end: Value,
) -> SalaryChange {
    let mut employee = employee;
    employee["id"] = json!("emp-hr");
    let event = json!({
        "event_id": event,
        "integration_id": "acme-visma",
        "kind": kind,
        "occurred_at": "2026-11-25T10:00:00Z",
        "salary": {
            "id": "sal-1", "employee": employee, "amount": amount, "currency": "NOK",
            "period_unit": unit, "start_date": start, "end_date": end, "note": "n",
        }
    });
    SalaryChange::from_json(&event).unwrap_or_else(|e| panic!("test event invalid: {e}"))
}

fn kari() -> Value {
    json!({"payroll_employee_id": guid(101)})
}

fn failure(e: &Error) -> (FailureCode, FailureClass) {
    let f = e.failure();
    (f.code, f.class)
}

/// Kari with one open salary since 2020, so a create has a predecessor to close.
fn seed_with_history() -> Seed {
    let mut seed = Seed::demo();
    seed.employees[0].positions[0].salary = vec![SalaryEntry::period(
        "monthly",
        dec("40000"),
        Some(day("2020-01-01")),
        None,
    )];
    seed
}

/// Issue 12, point 2: Visma's only published cursor list nests the token
/// (`{"cursor":{"nextToken":..},"data":[..]}`); a listing must follow it past the first page.
/// The top-level variant is followed too, with the same default settings.
#[tokio::test]
async fn issue_12_listings_follow_the_nested_and_the_top_level_cursor() -> TestResult {
    for shape in [sim::CursorShape::Nested, sim::CursorShape::TopLevel] {
        let mut seed = Seed::demo();
        seed.cursor = shape;
        let first = seed
            .employees
            .iter_mut()
            .find(|e| e.id == guid(101))
            .ok_or("kari")?;
        // Seven positions, one a year from 2010 (the last open), read in pages of two.
        first.positions = (0..7u32)
            .map(|i| sim::SeedPosition {
                id: guid(7000 + u64::from(i)),
                active_start: day(&format!("{}-01-01", 2010 + i)),
                active_end: (i < 6).then(|| day(&format!("{}-12-31", 2010 + i))),
                salary: Vec::new(),
            })
            .collect();
        let sim = start_with(seed).await;
        let c = connector(&sim);
        let pos = c
            .match_position(&change("created", kari(), "1", "monthly", "2020-01-01"))
            .await?;
        assert_eq!(pos.employment_id, guid(7006), "{shape:?}");
        sim.shutdown().await;
    }
    Ok(())
}

fn spans(entries: &[SalaryEntry]) -> Vec<(Option<NaiveDate>, Option<NaiveDate>)> {
    entries
        .iter()
        .map(|e| (e.active_start, e.active_end))
        .collect()
}

#[tokio::test]
async fn match_finds_the_position_by_id_number_or_email() -> TestResult {
    let sim = start().await;
    let c = connector(&sim);
    let p = c
        .match_position(&change("created", kari(), "1", "monthly", "2026-01-01"))
        .await?;
    assert_eq!((p.employee_id, p.employment_id), (guid(101), guid(201)));
    // Ola: a closed position and an open one; employee number lookup pages (page size 2).
    let ola = json!({"employee_number": "18"});
    let closed = change_with(
        "created",
        "e",
        ola.clone(),
        "1",
        "monthly",
        "2022-01-01",
        json!("2022-12-31"),
    );
    assert_eq!(c.match_position(&closed).await?.employment_id, guid(202));
    let open = change("created", ola.clone(), "1", "monthly", "2024-02-01");
    assert_eq!(c.match_position(&open).await?.employment_id, guid(203));
    let by_email = change(
        "created",
        json!({"email": "NILS@example.no"}),
        "1",
        "hourly",
        "2026-01-01",
    );
    assert_eq!(c.match_position(&by_email).await?.employment_id, guid(205));
    // Across the two positions: none covers the whole period.
    let across = change("created", ola, "1", "monthly", "2023-06-01");
    let e = c.match_position(&across).await.err();
    assert_eq!(
        e.as_ref().map(failure),
        Some((FailureCode::NoEmployment, FailureClass::Permanent))
    );
    // Lise has no position; an unknown GUID is no employee.
    let lise = change(
        "created",
        json!({"employee_number": "20"}),
        "1",
        "monthly",
        "2026-01-01",
    );
    let e = c.match_position(&lise).await.err();
    assert!(e
        .as_ref()
        .is_some_and(|e| e.to_string().contains("Position sync must be active")));
    let ghost = change(
        "created",
        json!({"payroll_employee_id": guid(999)}),
        "1",
        "monthly",
        "2026-01-01",
    );
    let e = c.match_position(&ghost).await.err();
    assert_eq!(
        e.as_ref().map(failure),
        Some((FailureCode::NoEmployee, FailureClass::Permanent))
    );
    let hostile = change(
        "created",
        json!({"payroll_employee_id": "../token"}),
        "1",
        "monthly",
        "2026-01-01",
    );
    assert!(matches!(
        c.match_position(&hostile).await,
        Err(Error::NoEmployee(_))
    ));
    assert_eq!(c.currency().await?.as_str(), "NOK");
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn the_foreign_entry_is_a_conflict_and_a_clear_timeline_is_clear() -> TestResult {
    let sim = start().await;
    let c = connector(&sim);
    let per = change(
        "created",
        json!({"employee_number": "19"}),
        "50000",
        "monthly",
        "2026-01-01",
    );
    let position = c.match_position(&per).await?;
    match c.check_overlap(&per, &position, None).await? {
        OverlapCheck::Conflict { record_id, period } => {
            assert_eq!(record_id, "salaryInformation@2026-01-01");
            assert_eq!(period.start, day("2026-01-01"));
        }
        other => panic!("Per's foreign entry must conflict: {other:?}"),
    }
    // A closed salary before the foreign entry fits.
    let before = change_with(
        "created",
        "e",
        json!({"employee_number": "19"}),
        "1",
        "monthly",
        "2025-01-01",
        json!("2025-12-31"),
    );
    assert_eq!(
        c.check_overlap(&before, &position, None).await?,
        OverlapCheck::Clear
    );
    let kari_change = change("created", kari(), "52000.00", "monthly", "2026-01-01");
    let kari_pos = c.match_position(&kari_change).await?;
    assert_eq!(
        c.check_overlap(&kari_change, &kari_pos, None).await?,
        OverlapCheck::Clear
    );
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn create_update_delete_keep_the_timeline_whole() -> TestResult {
    let sim = start_with(seed_with_history()).await;
    let c = connector(&sim);
    let created = change("created", kari(), "52000.00", "monthly", "2026-01-01");
    let position = c.match_position(&created).await?;
    assert_eq!(
        c.check_overlap(&created, &position, None).await?,
        OverlapCheck::Clear
    );
    let report = c.write(&created, &position, None).await?;
    assert_eq!(report.record.id, "salaryInformation@2026-01-01");
    assert_eq!(report.dropped_fields, vec!["note"]);
    let entries = sim.salary_entries(&guid(201));
    assert_eq!(
        spans(&entries),
        vec![
            (Some(day("2020-01-01")), Some(day("2025-12-31"))),
            (Some(day("2026-01-01")), None)
        ]
    );
    assert_eq!(entries[1].monthly_salary, Some(dec("52000.00")));
    assert_eq!(entries[1].contract_salary_type.as_deref(), Some("monthly"));

    let owned = PayrollRecord {
        id: report.record.id.clone(),
        employment_id: position.employment_id.clone(),
    };
    let updated = change_with(
        "updated",
        "evt-2",
        kari(),
        "53500.50",
        "monthly",
        "2026-01-01",
        Value::Null,
    );
    assert_eq!(
        c.check_overlap(&updated, &position, Some(&owned)).await?,
        OverlapCheck::Clear
    );
    c.write(&updated, &position, Some(&owned)).await?;
    let entries = sim.salary_entries(&guid(201));
    assert_eq!(entries.len(), 2, "updated in place: {entries:?}");
    assert_eq!(entries[1].monthly_salary, Some(dec("53500.50")));
    assert_eq!(
        c.find_written(&updated, &position, Some(&owned)).await?,
        Some(owned.clone())
    );

    // The same update again changes nothing and sends nothing.
    let writes = sim.write_count();
    c.write(&updated, &position, Some(&owned)).await?;
    assert_eq!(sim.write_count(), writes);

    let deleted = change_with(
        "deleted",
        "evt-3",
        kari(),
        "53500.50",
        "monthly",
        "2026-01-01",
        Value::Null,
    );
    assert_eq!(
        c.find_written(&deleted, &position, Some(&owned)).await?,
        None
    );
    let report = c.write(&deleted, &position, Some(&owned)).await?;
    assert!(!report.record_remains_after_delete);
    let entries = sim.salary_entries(&guid(201));
    assert_eq!(
        spans(&entries),
        vec![(Some(day("2020-01-01")), None)],
        "the previous entry covers the gap"
    );
    assert_eq!(
        c.find_written(&deleted, &position, Some(&owned)).await?,
        Some(owned)
    );
    // A delete of something never written changes nothing.
    let e = c.write(&deleted, &position, None).await.err();
    assert_eq!(
        e.as_ref().map(failure),
        Some((FailureCode::NothingToDelete, FailureClass::Permanent))
    );
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn hourly_amounts_travel_exactly() -> TestResult {
    let sim = start().await;
    let c = connector(&sim);
    let nils = change(
        "created",
        json!({"payroll_employee_id": guid(105)}),
        "312.5050",
        "hourly",
        "2026-02-01",
    );
    let position = c.match_position(&nils).await?;
    c.write(&nils, &position, None).await?;
    let entries = sim.salary_entries(&guid(205));
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0].hourly_salary.map(|d| d.to_string()),
        Some("312.5050".into())
    );
    assert_eq!(entries[0].contract_salary_type.as_deref(), Some("hourly"));
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn writes_are_jobs_polled_to_completion() -> TestResult {
    let sim = start().await;
    sim.set_job_timing(2, Duration::ZERO);
    let c = connector(&sim);
    let created = change("created", kari(), "52000", "monthly", "2026-01-01");
    let position = c.match_position(&created).await?;
    let job = match c.start_write(&created, &position, None).await? {
        WriteStart::Job { job } => job,
        WriteStart::Done(r) => panic!("expected a job, got {r:?}"),
    };
    assert!(
        job.starts_with(&format!("/employees/{}/positions/jobs/", guid(101))),
        "{job}"
    );
    assert_eq!(
        c.poll_job(&job, &created, &position).await?,
        JobPoll::Running
    );
    assert_eq!(
        c.poll_job(&job, &created, &position).await?,
        JobPoll::Running
    );
    match c.poll_job(&job, &created, &position).await? {
        JobPoll::Done(report) => assert_eq!(report.record.id, "salaryInformation@2026-01-01"),
        JobPoll::Running => panic!("the job should have finished"),
    }
    assert_eq!(sim.salary_entries(&guid(201)).len(), 1);
    assert_eq!(sim.write_count(), 1);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_job_that_fails_late_or_skips_the_salary_is_permanent() -> TestResult {
    let sim = start().await;
    let c = connector(&sim);
    let created = change("created", kari(), "52000", "monthly", "2026-01-01");
    let position = c.match_position(&created).await?;
    sim.arm(Fault::new(FaultKind::JobFailsLate, 1));
    let e = c.write(&created, &position, None).await.err();
    assert_eq!(
        e.as_ref().map(failure),
        Some((FailureCode::PayrollRejected, FailureClass::Permanent))
    );
    let text = e.map(|e| e.failure().message).unwrap_or_default();
    assert!(
        text.contains("locked"),
        "the validation result is in the message: {text}"
    );

    sim.arm(Fault::new(FaultKind::SalaryNotPerformed, 1));
    let e = c.write(&created, &position, None).await.err();
    assert_eq!(
        e.as_ref().map(failure),
        Some((FailureCode::PayrollRejected, FailureClass::Permanent))
    );
    let text = e.map(|e| e.failure().message).unwrap_or_default();
    assert!(text.contains("Salary update was not performed"), "{text}");
    assert!(sim.salary_entries(&guid(201)).is_empty());

    // And a timeline Visma refuses (a gap after a closed salary) fails with its reason.
    let mut seed_gap = change_with(
        "created",
        "g",
        kari(),
        "1",
        "monthly",
        "2026-01-01",
        json!("2026-01-31"),
    );
    c.write(
        &change("created", kari(), "2", "monthly", "2026-03-01"),
        &position,
        None,
    )
    .await?;
    seed_gap.salary.id =
        salary_sync::domain::SalaryId::parse("sal-2").unwrap_or_else(|e| panic!("{e}"));
    let e = c.write(&seed_gap, &position, None).await.err();
    let text = e.map(|e| e.failure().message).unwrap_or_default();
    assert!(text.contains("gap"), "{text}");
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn tokens_are_cached_renewed_before_expiry_and_after_a_401() -> TestResult {
    let mut seed = Seed::demo();
    seed.token_life_s = 2;
    let sim = start_with(seed).await;
    let c = connector(&sim);
    let kari_change = change("created", kari(), "1", "monthly", "2026-01-01");
    c.match_position(&kari_change).await?;
    c.match_position(&kari_change).await?;
    assert_eq!(sim.tokens_issued(), 1, "one token for many calls");
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    c.match_position(&kari_change).await?;
    assert_eq!(
        sim.tokens_issued(),
        2,
        "renewed shortly before expires_in ran out"
    );
    sim.expire_tokens();
    c.match_position(&kari_change).await?;
    assert_eq!(sim.tokens_issued(), 3, "a 401 fetched a new token once");

    // Concurrent callers share one fetch.
    sim.expire_tokens();
    let shared = std::sync::Arc::new(c);
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (c, change) = (shared.clone(), kari_change.clone());
        calls.spawn(async move { c.match_position(&change).await.map(|_| ()) });
    }
    while let Some(r) = calls.join_next().await {
        r??;
    }
    assert_eq!(sim.tokens_issued(), 4);

    // Refused credentials are an auth failure that never shows the secret.
    let mut bad = config(&sim);
    bad.client_secret = Secret::new("wrong-SECRET-value");
    let c = VismaConnector::new(bad, http());
    let e = c.match_position(&kari_change).await.err();
    assert_eq!(
        e.as_ref().map(failure),
        Some((FailureCode::AuthRejected, FailureClass::Auth))
    );
    let shown = format!("{e:?}");
    assert!(!shown.contains("SECRET"), "{shown}");
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_stale_etag_is_read_again_once_then_retried_later() -> TestResult {
    let sim = start().await;
    sim.set_job_timing(0, Duration::ZERO);
    let c = connector(&sim);
    let created = change("created", kari(), "52000", "monthly", "2026-01-01");
    let position = c.match_position(&created).await?;
    let put = |times| {
        Fault::new(FaultKind::EditedConcurrently, times)
            .method("PUT")
            .path_prefix("/employees")
    };
    sim.arm(put(2));
    let e = c.start_write(&created, &position, None).await.err();
    assert_eq!(
        e.as_ref().map(failure),
        Some((FailureCode::RevisionConflict, FailureClass::Transient))
    );
    assert_eq!(e.as_ref().and_then(|e| e.failure().http_status), Some(412));
    assert_eq!(sim.write_count(), 0);
    sim.arm(put(1));
    c.write(&created, &position, None).await?;
    assert_eq!(sim.write_count(), 1, "one 412, re-read, one accepted PUT");
    assert_eq!(sim.salary_entries(&guid(201)).len(), 1);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn outages_and_rate_limits_are_transient() -> TestResult {
    let sim = start().await;
    let c = connector(&sim);
    let kari_change = change("created", kari(), "1", "monthly", "2026-01-01");
    c.match_position(&kari_change).await?;
    sim.arm(Fault::new(
        FaultKind::RateLimited {
            retry_after_s: Some(30),
        },
        1,
    ));
    let e = c.match_position(&kari_change).await.err();
    let f = e.map(|e| e.failure());
    assert_eq!(
        f.as_ref().map(|f| (f.code, f.class)),
        Some((FailureCode::RateLimited, FailureClass::Transient))
    );
    assert!(
        f.and_then(|f| f.retry_not_before).is_some(),
        "Retry-After is kept"
    );
    sim.arm(Fault::new(
        FaultKind::RateLimited {
            retry_after_s: None,
        },
        1,
    ));
    let e = c.match_position(&kari_change).await.err();
    assert_eq!(e.map(|e| e.failure().retry_not_before), Some(None));
    sim.arm(Fault::new(FaultKind::Unavailable, 1));
    let e = c.match_position(&kari_change).await.err();
    assert_eq!(
        e.as_ref().map(failure),
        Some((FailureCode::Unavailable, FailureClass::Transient))
    );
    sim.arm(Fault::new(FaultKind::Drop, 1));
    let e = c.match_position(&kari_change).await.err();
    assert!(matches!(e, Some(Error::Network(_))));
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn an_applied_then_dropped_put_is_found_and_never_sent_twice() -> TestResult {
    let sim = start().await;
    let c = connector(&sim);
    let created = change("created", kari(), "52000", "monthly", "2026-01-01");
    let position = c.match_position(&created).await?;

    // The job is queued but has not run: found as a job, polled to completion.
    sim.arm(Fault::new(FaultKind::ApplyThenDrop, 1).method("PUT"));
    let e = c.start_write(&created, &position, None).await.err();
    assert!(matches!(e, Some(Error::Network(_))), "{e:?}");
    assert_eq!(sim.write_count(), 1);
    assert_eq!(c.find_written(&created, &position, None).await?, None);
    let job = c
        .find_job(&created, &position)
        .await?
        .unwrap_or_else(|| panic!("the job this change started is found"));
    // Another change's lookup does not take it.
    let other = change_with(
        "created",
        "evt-other",
        kari(),
        "52000",
        "monthly",
        "2026-01-01",
        Value::Null,
    );
    assert_eq!(c.find_job(&other, &position).await?, None);
    // Even a fresh write adopts the running job rather than sending again.
    assert_eq!(
        c.start_write(&created, &position, None).await?,
        WriteStart::Job { job: job.clone() }
    );
    let mut done = false;
    for _ in 0..5 {
        if let JobPoll::Done(_) = c.poll_job(&job, &created, &position).await? {
            done = true;
            break;
        }
    }
    assert!(done);
    assert_eq!(sim.write_count(), 1);
    assert_eq!(sim.salary_entries(&guid(201)).len(), 1);

    // The job ran before anyone looked: the entry itself is found and adopted.
    sim.set_job_timing(0, Duration::ZERO);
    let nils = change(
        "created",
        json!({"payroll_employee_id": guid(105)}),
        "300",
        "hourly",
        "2026-02-01",
    );
    let nils_pos = c.match_position(&nils).await?;
    sim.arm(Fault::new(FaultKind::ApplyThenDrop, 1).method("PUT"));
    assert!(c.start_write(&nils, &nils_pos, None).await.is_err());
    let found = c.find_written(&nils, &nils_pos, None).await?;
    assert_eq!(
        found.map(|r| r.id),
        Some("salaryInformation@2026-02-01".to_owned())
    );
    assert_eq!(sim.write_count(), 2);
    assert_eq!(sim.salary_entries(&guid(205)).len(), 1);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_second_salary_waits_for_a_running_job_on_the_same_position() -> TestResult {
    let sim = start().await;
    sim.set_job_timing(5, Duration::ZERO);
    let c = connector(&sim);
    let first = change("created", kari(), "52000", "monthly", "2026-01-01");
    let position = c.match_position(&first).await?;
    assert!(matches!(
        c.start_write(&first, &position, None).await?,
        WriteStart::Job { .. }
    ));
    let mut second = change_with(
        "created",
        "evt-9",
        kari(),
        "1",
        "monthly",
        "2027-01-01",
        Value::Null,
    );
    second.salary.id =
        salary_sync::domain::SalaryId::parse("sal-9").unwrap_or_else(|e| panic!("{e}"));
    let e = c.start_write(&second, &position, None).await.err();
    assert_eq!(
        e.as_ref().map(failure),
        Some((FailureCode::RevisionConflict, FailureClass::Transient))
    );
    assert_eq!(sim.write_count(), 1);
    sim.shutdown().await;
    Ok(())
}
