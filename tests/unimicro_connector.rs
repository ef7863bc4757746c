//! The Unimicro connector over real HTTP on loopback against the Unimicro simulator: every
//! step of the workflow (match, currency, overlap, create, update, delete, reconcile), token
//! expiry and refresh, 401 on an unknown path (a request's error, not the integration's),
//! outages and rate limits, and an applied-then-dropped write adopted instead of written twice.
//!
//! Invariant: each test starts its own simulator on `127.0.0.1:0` and its own connector, so
//! tests share nothing and run in parallel.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{Duration, NaiveDate, Utc};
use rust_decimal::Decimal;
use salary_sync::connectors::http::{client, ClientSettings};
use salary_sync::connectors::unimicro::{UnimicroConfig, UnimicroConnector};
use salary_sync::connectors::{Connector, Error, OverlapCheck};
use salary_sync::domain::{FailureClass, FailureCode, Position, SalaryChange};
use salary_sync::secret::Secret;
use salary_sync::simulators::unimicro::{self as sim, Fault, FaultKind, Handle, Seed};
use serde_json::{json, Value};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn dec(s: &str) -> Decimal {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or_else(|e| panic!("{s}: {e}"))
}

async fn start() -> Handle {
    sim::start(Seed::demo())
        .await
        .unwrap_or_else(|e| panic!("simulator did not start: {e}"))
}

fn config(sim: &Handle) -> UnimicroConfig {
    let seed = Seed::demo();
    UnimicroConfig {
        base_url: sim.base_url(),
        token_url: sim.token_url(),
        company_key: seed.company_key,
        client_id: Secret::new(seed.client_id),
        client_secret: Secret::new(seed.client_secret),
        scope: "AppFramework".into(),
        assertion: None,
    }
}

fn http() -> reqwest::Client {
    client(&ClientSettings {
        request_timeout_ms: 5_000,
        ..ClientSettings::default()
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn connector(sim: &Handle) -> UnimicroConnector {
    UnimicroConnector::new(config(sim), http())
}

fn change(
    event: &str,
    kind: &str,
    employee: Value,
    amount: &str,
    unit: &str,
    start: &str,
) -> SalaryChange {
    let mut employee = employee;
    employee["id"] = json!("emp-hr");
    let event = json!({
        "event_id": event,
        "integration_id": "acme-unimicro",
        "kind": kind,
        "occurred_at": "2026-11-25T10:00:00Z",
        "salary": {
            "id": "sal-1",
            "employee": employee,
            "amount": amount,
            "currency": "NOK",
            "period_unit": unit,
            "start_date": start,
            "end_date": null,
            "note": "New agreement",
        }
    });
    SalaryChange::from_json(&event).unwrap_or_else(|e| panic!("test event invalid: {e}"))
}

fn kari() -> Value {
    json!({"payroll_employee_id": "101"})
}

fn class(e: &Error) -> (FailureCode, FailureClass) {
    let f = e.failure();
    (f.code, f.class)
}

#[tokio::test]
async fn match_finds_the_employment_by_id_number_or_email() -> TestResult {
    let sim = start().await;
    // A page of one row makes every list page.
    let c = connector(&sim).with_page_size(1);
    let p = c
        .match_position(&change(
            "e",
            "created",
            kari(),
            "1",
            "monthly",
            "2026-01-01",
        ))
        .await?;
    assert_eq!(
        (p.employee_id.as_str(), p.employment_id.as_str()),
        ("101", "201")
    );
    assert_eq!(p.period.start, day("2020-01-01"));

    // Ola: the ended employment covers 2022, the open one 2026.
    let ola = json!({"employee_number": "18"});
    let mut in_2022 = change("e", "created", ola.clone(), "1", "monthly", "2022-05-01");
    in_2022.salary.end_date = Some(day("2022-12-31"));
    let p = c.match_position(&in_2022).await?;
    assert_eq!(p.employment_id, "202");
    let p = c
        .match_position(&change("e", "created", ola, "1", "monthly", "2026-01-01"))
        .await?;
    assert_eq!(p.employment_id, "203");

    let per = json!({"email": "PER@example.no"});
    let p = c
        .match_position(&change("e", "created", per, "1", "monthly", "2026-01-01"))
        .await?;
    assert_eq!(p.employment_id, "204");

    // Lise has no employment; 99 is nobody; "x17" is not a number.
    let e = c
        .match_position(&change(
            "e",
            "created",
            json!({"employee_number": "20"}),
            "1",
            "monthly",
            "2026-01-01",
        ))
        .await
        .err()
        .ok_or("Lise matched")?;
    assert_eq!(
        class(&e),
        (FailureCode::NoEmployment, FailureClass::Permanent)
    );
    assert!(e.to_string().contains("Position sync"), "{e}");
    for who in [
        json!({"employee_number": "99"}),
        json!({"employee_number": "x17"}),
    ] {
        let e = c
            .match_position(&change("e", "created", who, "1", "monthly", "2026-01-01"))
            .await
            .err()
            .ok_or("nobody matched")?;
        assert_eq!(
            class(&e),
            (FailureCode::NoEmployee, FailureClass::Permanent)
        );
    }
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn currency_and_overlap() -> TestResult {
    let sim = start().await;
    let c = connector(&sim);
    assert_eq!(c.currency().await?.as_str(), "NOK");

    let per = change(
        "e",
        "created",
        json!({"payroll_employee_id": "103"}),
        "1",
        "monthly",
        "2026-01-01",
    );
    let pos = c.match_position(&per).await?;
    match c.check_overlap(&per, &pos, None).await? {
        OverlapCheck::Conflict { record_id, period } => {
            assert_eq!(record_id, "901");
            assert_eq!((period.start, period.end), (day("2026-01-01"), None));
        }
        other => panic!("Per's foreign rate must conflict: {other:?}"),
    }
    // A salary ending before the foreign rate's date does not conflict with it.
    let mut earlier = change(
        "e",
        "created",
        json!({"payroll_employee_id": "103"}),
        "1",
        "monthly",
        "2025-01-01",
    );
    earlier.salary.end_date = Some(day("2025-12-31"));
    assert_eq!(
        c.check_overlap(&earlier, &pos, None).await?,
        OverlapCheck::Clear
    );
    // Starting after it: the foreign rate is simply superseded.
    let later = change(
        "e",
        "created",
        json!({"payroll_employee_id": "103"}),
        "1",
        "monthly",
        "2026-03-01",
    );
    assert_eq!(
        c.check_overlap(&later, &pos, None).await?,
        OverlapCheck::Clear
    );
    sim.shutdown().await;
    Ok(())
}

/// Issue 12, point 1: Unimicro's `BaseCurrencyCode` is a navigation object (`CurrencyCode`
/// with `Code`) filled by `expand`; the connector reads it in that shape, as a plain string,
/// and through `BaseCurrencyCodeID` and `currencycodes/{id}` when `expand` is ignored.
#[tokio::test]
async fn issue_12_the_base_currency_is_read_as_object_string_or_id() -> TestResult {
    for shape in [
        sim::CurrencyShape::Navigation,
        sim::CurrencyShape::PlainString,
        sim::CurrencyShape::IdOnly,
    ] {
        let mut seed = Seed::demo();
        seed.currency = "SEK".into();
        seed.currency_shape = shape;
        let sim = sim::start(seed).await?;
        let c = connector(&sim);
        assert_eq!(c.currency().await?.as_str(), "SEK", "{shape:?}");
        sim.shutdown().await;
    }
    Ok(())
}

#[tokio::test]
async fn create_update_delete_in_place_and_never_delete_the_employment() -> TestResult {
    let sim = start().await;
    let c = connector(&sim);
    let created = change("e1", "created", kari(), "52000.10", "monthly", "2026-01-01");
    let pos = c.match_position(&created).await?;
    assert_eq!(
        c.check_overlap(&created, &pos, None).await?,
        OverlapCheck::Clear
    );
    let report = c.write(&created, &pos, None).await?;
    assert_eq!(report.dropped_fields, vec!["note"]);
    let rates = sim.rates(201);
    assert_eq!(rates.len(), 1);
    assert_eq!(rates[0].rate, dec("52000.10"), "exact, no float on the way");
    assert_eq!(rates[0].rate_type, "monthly");
    assert_eq!(rates[0].id.to_string(), report.record.id);
    let owned = report.record.clone();

    // The owned record is not an overlap; the update changes it in place.
    let updated = change("e2", "updated", kari(), "650000", "yearly", "2026-02-01");
    assert_eq!(
        c.check_overlap(&updated, &pos, Some(&owned)).await?,
        OverlapCheck::Clear
    );
    let report = c.write(&updated, &pos, Some(&owned)).await?;
    assert_eq!(report.record, owned);
    let rates = sim.rates(201);
    assert_eq!(rates.len(), 1, "{rates:?}");
    assert_eq!(
        (rates[0].rate, rates[0].rate_type, rates[0].from_date),
        (dec("650000"), "annual", day("2026-02-01"))
    );
    assert_eq!(
        c.find_written(&updated, &pos, Some(&owned)).await?,
        Some(owned.clone())
    );

    // Delete: the nested record is marked Deleted; the employment stays.
    let deleted = change("e3", "deleted", kari(), "650000", "yearly", "2026-02-01");
    assert_eq!(c.find_written(&deleted, &pos, Some(&owned)).await?, None);
    let report = c.write(&deleted, &pos, Some(&owned)).await?;
    assert!(!report.record_remains_after_delete);
    let rates = sim.rates(201);
    assert_eq!(rates.len(), 1);
    assert!(rates[0].deleted);
    assert!(sim.live_rates(201).is_empty());
    assert!(
        sim.removed_employments().is_empty(),
        "never DELETE /employments"
    );
    assert_eq!(
        c.find_written(&deleted, &pos, Some(&owned)).await?,
        Some(owned.clone())
    );
    // Deleting again (a replay) changes nothing and succeeds.
    c.write(&deleted, &pos, Some(&owned)).await?;

    // A delete of something never written is refused without a call.
    let e = c
        .write(&deleted, &pos, None)
        .await
        .err()
        .ok_or("deleted nothing")?;
    assert_eq!(
        class(&e),
        (FailureCode::NothingToDelete, FailureClass::Permanent)
    );
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn an_update_that_moves_to_another_employment_inserts_there_and_deletes_the_old() -> TestResult
{
    let sim = start().await;
    let c = connector(&sim);
    let ola = json!({"payroll_employee_id": "102"});
    let mut first = change(
        "m1",
        "created",
        ola.clone(),
        "40000",
        "monthly",
        "2023-01-01",
    );
    first.salary.end_date = Some(day("2023-12-31"));
    let old_pos = c.match_position(&first).await?;
    assert_eq!(old_pos.employment_id, "202");
    let owned = c.write(&first, &old_pos, None).await?.record;
    let moved = change("m2", "updated", ola, "45000", "monthly", "2024-02-01");
    let pos = c.match_position(&moved).await?;
    assert_eq!(pos.employment_id, "203");
    assert_eq!(c.find_written(&moved, &pos, Some(&owned)).await?, None);
    let report = c.write(&moved, &pos, Some(&owned)).await?;
    assert_eq!(report.record.employment_id, "203");
    assert!(sim.live_rates(202).is_empty());
    assert_eq!(sim.live_rates(203).len(), 1);
    assert_eq!(
        c.find_written(&moved, &pos, Some(&owned)).await?,
        Some(report.record.clone())
    );
    // A replay of the whole move creates nothing new.
    c.write(&moved, &pos, Some(&owned)).await?;
    assert_eq!(sim.rates(203).len(), 1);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn validation_errors_are_permanent_and_quote_unimicro() -> TestResult {
    let sim = start().await;
    let c = connector(&sim);
    // A rate dated before the employment starts (a position from elsewhere): Unimicro refuses.
    let early = change("v", "created", kari(), "1", "monthly", "2019-01-01");
    let pos = Position {
        employee_id: "101".into(),
        employment_id: "201".into(),
        period: salary_sync::domain::Period {
            start: day("2019-01-01"),
            end: None,
        },
    };
    let e = c.write(&early, &pos, None).await.err().ok_or("accepted")?;
    assert_eq!(
        class(&e),
        (FailureCode::PayrollRejected, FailureClass::Permanent)
    );
    let f = e.failure();
    assert_eq!(f.http_status, Some(400));
    assert!(f.message.contains("FromDate"), "{}", f.message);
    assert!(f.request_id.is_some());
    assert!(sim.rates(201).is_empty());
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn tokens_are_cached_refreshed_after_expiry_and_before_it() -> TestResult {
    let sim = start().await;
    // A clock the test moves.
    let offset_s = Arc::new(AtomicI64::new(0));
    let clock = offset_s.clone();
    let c = connector(&sim)
        .with_clock(move || Utc::now() + Duration::seconds(clock.load(Ordering::SeqCst)));
    let k = change("t", "created", kari(), "1", "monthly", "2026-01-01");
    c.match_position(&k).await?;
    c.match_position(&k).await?;
    assert_eq!(sim.tokens_issued(), 1, "one token for many calls");

    // Unimicro forgets the token: one 401, one refresh, the call succeeds.
    sim.expire_tokens();
    c.match_position(&k).await?;
    assert_eq!(sim.tokens_issued(), 2);

    // Close to expiry (3600 s life): renewed before use, without a 401.
    offset_s.store(3590, Ordering::SeqCst);
    let before = sim.request_count();
    c.match_position(&k).await?;
    assert_eq!(sim.tokens_issued(), 3);
    // token + employees + employments, no refused call in between.
    assert_eq!(sim.request_count() - before, 3);

    // Concurrent callers share one fetch.
    sim.expire_tokens();
    offset_s.store(10_000, Ordering::SeqCst);
    let c = Arc::new(c);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let c = Arc::clone(&c);
            let k = k.clone();
            tokio::spawn(async move { c.match_position(&k).await })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    assert_eq!(sim.tokens_issued(), 4);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_401_on_an_unknown_path_is_the_requests_error_not_the_integrations() -> TestResult {
    let sim = start().await;
    let mut cfg = config(&sim);
    cfg.base_url = format!("{}/not-the-api", sim.base_url());
    let c = UnimicroConnector::new(cfg, http());
    let k = change("u", "created", kari(), "1", "monthly", "2026-01-01");
    let e = c
        .match_position(&k)
        .await
        .err()
        .ok_or("unknown path answered")?;
    assert_eq!(
        class(&e),
        (FailureCode::UnexpectedAnswer, FailureClass::Permanent)
    );
    let f = e.failure();
    assert_eq!(f.http_status, Some(401));
    assert!(f.message.contains("/api/biz/employees"), "{}", f.message);
    assert_eq!(sim.tokens_issued(), 2, "refreshed once, then gave up");

    // A wrong company key looks the same to a client: still not an auth failure.
    let mut cfg = config(&sim);
    cfg.company_key = "someone-else".into();
    let e = UnimicroConnector::new(cfg, http())
        .currency()
        .await
        .err()
        .ok_or("wrong key accepted")?;
    assert_eq!(
        class(&e),
        (FailureCode::UnexpectedAnswer, FailureClass::Permanent)
    );

    // The token endpoint refusing the credentials is the integration's problem.
    let mut cfg = config(&sim);
    cfg.client_secret = Secret::new("wrong-SECRET-value");
    let e = UnimicroConnector::new(cfg, http())
        .currency()
        .await
        .err()
        .ok_or("wrong secret accepted")?;
    assert_eq!(class(&e), (FailureCode::AuthRejected, FailureClass::Auth));
    let shown = format!("{e} {e:?} {:?}", e.failure());
    assert!(!shown.contains("SECRET"), "{shown}");
    assert!(!shown.contains(&Seed::demo().client_secret), "{shown}");
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn outages_and_rate_limits_are_transient() -> TestResult {
    let sim = start().await;
    let c = connector(&sim);
    let k = change("o", "created", kari(), "1", "monthly", "2026-01-01");
    c.match_position(&k).await?; // token fetched

    for kind in [FaultKind::ServerError, FaultKind::Unavailable] {
        sim.arm(Fault::new(kind, 1).path_prefix("/api/biz/employees"));
        let e = c.match_position(&k).await.err().ok_or("no outage")?;
        assert_eq!(
            class(&e),
            (FailureCode::Unavailable, FailureClass::Transient)
        );
    }
    let before = Utc::now();
    sim.arm(Fault::new(FaultKind::RateLimited { reset_s: Some(30) }, 1).path_prefix("/api/biz"));
    let e = c.match_position(&k).await.err().ok_or("not limited")?;
    let f = e.failure();
    assert_eq!(
        (f.code, f.class),
        (FailureCode::RateLimited, FailureClass::Transient)
    );
    let wait = f.retry_not_before.ok_or("no Retry-After instant")?;
    assert!(wait >= before + Duration::seconds(29), "{wait}");
    sim.arm(Fault::new(FaultKind::RateLimited { reset_s: None }, 1).path_prefix("/api/biz"));
    let e = c.match_position(&k).await.err().ok_or("not limited")?;
    assert_eq!(e.failure().retry_not_before, None);
    sim.arm(Fault::new(FaultKind::Drop, 1).path_prefix("/api/biz"));
    let e = c.match_position(&k).await.err().ok_or("not dropped")?;
    assert_eq!(
        class(&e),
        (FailureCode::Unavailable, FailureClass::Transient)
    );
    // And then it works again.
    c.match_position(&k).await?;
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn an_applied_then_dropped_insert_is_adopted_and_a_replay_inserts_nothing() -> TestResult {
    let sim = start().await;
    let c = connector(&sim);
    let k = change("d1", "created", kari(), "52000", "monthly", "2026-01-01");
    let pos = c.match_position(&k).await?;
    sim.arm(
        Fault::new(FaultKind::ApplyThenDrop, 1)
            .method("PUT")
            .path_prefix("/api/biz/employments"),
    );
    let e = c
        .write(&k, &pos, None)
        .await
        .err()
        .ok_or("the answer was not dropped")?;
    assert_eq!(
        class(&e),
        (FailureCode::Unavailable, FailureClass::Transient)
    );
    assert_eq!(sim.write_count(), 1);
    assert_eq!(sim.rates(201).len(), 1, "the write landed");

    // Reconciliation finds it by its _createguid.
    let found = c.find_written(&k, &pos, None).await?.ok_or("not found")?;
    assert_eq!(found.id, sim.rates(201)[0].id.to_string());
    // It is ours, so it is no overlap either.
    assert_eq!(c.check_overlap(&k, &pos, None).await?, OverlapCheck::Clear);

    // A blind replay of the same insert creates nothing new and names the same record.
    let again = c.write(&k, &pos, None).await?;
    assert_eq!(again.record, found);
    assert_eq!(sim.rates(201).len(), 1);
    assert_eq!(sim.write_count(), 2);

    // Another event with other values on another date is a new record.
    let other = change("d2", "created", kari(), "1", "monthly", "2026-06-01");
    let report = c.write(&other, &pos, None).await?;
    assert_ne!(report.record, found);
    assert_eq!(sim.rates(201).len(), 2);
    sim.shutdown().await;
    Ok(())
}

/// The certificate-signed client assertion (server-to-server): the token endpoint takes a JWT
/// signed with the integration's key instead of a secret, and refuses it when it cannot verify.
#[tokio::test]
async fn a_certificate_signed_client_assertion_replaces_the_secret() -> TestResult {
    use salary_sync::connectors::unimicro::assertion::AssertionKey;
    let pem = include_str!("fixtures/unimicro-assertion-test-key.pem");
    let key = Arc::new(AssertionKey::from_pem(pem, Some("test-thumbprint".into()))?);
    let mut seed = Seed::demo();
    seed.client_public_key_der = Some(key.public_key_der());
    let sim = sim::start(seed).await?;
    let mut cfg = config(&sim);
    cfg.client_secret = Secret::new(String::new());
    cfg.assertion = Some(Arc::clone(&key));
    let c = UnimicroConnector::new(cfg.clone(), http());
    assert_eq!(
        c.currency().await?.as_str(),
        "NOK",
        "a token came from the assertion alone"
    );
    assert!(
        !format!("{cfg:?}").contains("PRIVATE"),
        "the key stays out of Debug"
    );
    sim.shutdown().await;

    // A token endpoint that does not know the key refuses it: the credentials are wrong.
    let sim = sim::start(Seed::demo()).await?;
    let mut cfg = config(&sim);
    cfg.client_secret = Secret::new(String::new());
    cfg.assertion = Some(key);
    let err = UnimicroConnector::new(cfg, http())
        .currency()
        .await
        .err()
        .ok_or("refused")?;
    assert_eq!(err.failure().class, FailureClass::Auth, "{err}");
    sim.shutdown().await;
    Ok(())
}
