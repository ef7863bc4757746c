//! The Tripletex connector over real HTTP on loopback against the Tripletex simulator: every
//! step of the workflow (match, currency, overlap, write, reconcile), session renewal, revision
//! conflicts, rate limits and outages, and an applied-then-dropped write adopted instead of
//! written twice.
//!
//! Invariant: each test starts its own simulator on `127.0.0.1:0` and its own connector, so
//! tests share nothing and run in parallel.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use rust_decimal::Decimal;
use salary_sync::connectors::http::{client, ClientSettings};
use salary_sync::connectors::tripletex::{TripletexConfig, TripletexConnector};
use salary_sync::connectors::{Connector, Error, OverlapCheck};
use salary_sync::domain::{FailureClass, FailureCode, PayrollRecord, SalaryChange};
use salary_sync::secret::Secret;
use salary_sync::simulators::tripletex::{self as sim, Fault, FaultKind, Handle, Seed};
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

fn config(base_url: String) -> TripletexConfig {
    let seed = Seed::demo();
    TripletexConfig {
        base_url,
        consumer_token: Secret::new(seed.consumer_token),
        employee_token: Secret::new(seed.employee_token),
        company: None,
        session_days: 1,
    }
}

fn http() -> reqwest::Client {
    client(&ClientSettings {
        request_timeout_ms: 5_000,
        ..ClientSettings::default()
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn connector(sim: &Handle) -> TripletexConnector {
    TripletexConnector::new(config(sim.base_url()), http())
}

/// A salary change in the HR system's wire form, validated as ingest does.
fn change(kind: &str, employee: Value, amount: &str, unit: &str, start: &str) -> SalaryChange {
    change_with(
        kind,
        employee,
        amount,
        unit,
        start,
        Value::Null,
        Value::Null,
    )
}

/// A created salary of 1 NOK a month for `who` over `start..end`: what a match reads.
fn matching(who: Value, start: &str, end: Value) -> SalaryChange {
    change_with("created", who, "1", "monthly", start, end, Value::Null)
}

fn change_with(
    kind: &str,
    employee: Value,
    amount: &str,
    unit: &str,
    start: &str,
    end: Value,
    note: Value,
) -> SalaryChange {
    let mut employee = employee;
    employee["id"] = json!("emp-hr");
    let event = json!({
        "event_id": "evt-1",
        "integration_id": "acme-tripletex",
        "kind": kind,
        "occurred_at": "2026-11-25T10:00:00Z",
        "salary": {
            "id": "sal-1",
            "employee": employee,
            "amount": amount,
            "currency": "NOK",
            "period_unit": unit,
            "start_date": start,
            "end_date": end,
            "note": note,
        }
    });
    SalaryChange::from_json(&event).unwrap_or_else(|e| panic!("test event invalid: {e}"))
}

fn kari() -> Value {
    json!({"payroll_employee_id": "101"})
}

fn http_failure(e: &Error) -> (FailureCode, FailureClass) {
    let f = e.failure();
    (f.code, f.class)
}

#[tokio::test]
async fn match_finds_the_employment_by_id_number_or_email() -> TestResult {
    let sim = start().await;
    let c = connector(&sim);

    let p = c
        .match_position(&change("created", kari(), "1", "monthly", "2026-01-01"))
        .await?;
    assert_eq!(
        (p.employee_id.as_str(), p.employment_id.as_str()),
        ("101", "201")
    );
    assert_eq!(p.period.start, day("2020-01-01"));

    // Ola has a closed employment (202, 2019-03..2023-12) and an open one (203, 2024-01..).
    let ola = json!({"employee_number": "18"});
    let closed = matching(ola.clone(), "2022-01-01", json!("2022-12-31"));
    assert_eq!(c.match_position(&closed).await?.employment_id, "202");
    let open = change("created", ola.clone(), "1", "monthly", "2024-02-01");
    assert_eq!(c.match_position(&open).await?.employment_id, "203");

    let per = json!({"email": "PER@example.no"});
    let p = c
        .match_position(&change("created", per, "1", "monthly", "2026-01-01"))
        .await?;
    assert_eq!(
        (p.employee_id.as_str(), p.employment_id.as_str()),
        ("103", "204")
    );

    // Searching in pages of one row still finds the employee, and both of its employments
    // come nested in that one row.
    let paged = connector(&sim).with_page_size(1);
    assert_eq!(paged.match_position(&open).await?.employment_id, "203");
    sim.shutdown().await;
    Ok(())
}

/// A match is one GET, by id and by search: the employee comes with its employments nested, and
/// `GET /employee/employment` is never called (a fault armed on it is never taken).
#[tokio::test]
async fn a_match_is_one_get() -> TestResult {
    let sim = start().await;
    let c = connector(&sim);
    // The session first, so that only the match's own requests are counted below.
    c.currency().await?;
    sim.arm(Fault::new(FaultKind::ServerError, 1).path_prefix("/employee/employment"));
    for (who, start, end, employment) in [
        (
            json!({"payroll_employee_id": "102"}),
            "2024-02-01",
            Value::Null,
            "203",
        ),
        (
            json!({"employee_number": "18"}),
            "2022-01-01",
            json!("2022-12-31"),
            "202",
        ),
        (
            json!({"email": "ola@example.no"}),
            "2024-02-01",
            Value::Null,
            "203",
        ),
    ] {
        let salary = matching(who.clone(), start, end);
        let before = sim.request_count();
        let p = c.match_position(&salary).await?;
        assert_eq!(
            (p.employee_id.as_str(), p.employment_id.as_str()),
            ("102", employment),
            "{who}"
        );
        assert_eq!(sim.request_count() - before, 1, "requests to match {who}");
    }
    assert_eq!(
        sim.faults().armed.len(),
        1,
        "GET /employee/employment was called"
    );
    sim.shutdown().await;
    Ok(())
}

/// An employee with an ended employment, the one covering the salary, and a later one, listed
/// out of date order: the nested employments give the covering one for each period, by id and
/// by search, and a salary that straddles two of them matches none and lists all three.
#[tokio::test]
async fn the_covering_employment_is_chosen_among_several_nested() -> TestResult {
    let mut seed = Seed::demo();
    seed.employees.push(sim::SeedEmployee {
        id: 110,
        employee_number: "30".into(),
        email: "mari@example.no".into(),
        first_name: "Mari".into(),
        last_name: "Lund".into(),
        employments: vec![
            sim::SeedEmployment {
                id: 312,
                start_date: day("2025-01-01"),
                end_date: None,
            },
            sim::SeedEmployment {
                id: 310,
                start_date: day("2018-01-01"),
                end_date: Some(day("2021-06-30")),
            },
            sim::SeedEmployment {
                id: 311,
                start_date: day("2021-07-01"),
                end_date: Some(day("2024-12-31")),
            },
        ],
    });
    let sim = sim::start(seed).await?;
    let c = connector(&sim);
    let mari = [
        json!({"payroll_employee_id": "110"}),
        json!({"employee_number": "30"}),
        json!({"email": "MARI@example.no"}),
    ];
    for who in &mari {
        for (start, end, employment) in [
            ("2020-01-01", json!("2020-12-31"), "310"),
            ("2023-03-01", json!("2024-12-31"), "311"),
            ("2026-01-01", Value::Null, "312"),
        ] {
            let salary = matching(who.clone(), start, end.clone());
            let p = c.match_position(&salary).await?;
            assert_eq!(
                (p.employee_id.as_str(), p.employment_id.as_str()),
                ("110", employment),
                "{who} from {start}"
            );
        }
        // Issue 11, point 5: a salary is matched by its start date (the employment in force
        // that day), even when that employment ends before the salary does.
        let straddles = matching(who.clone(), "2021-06-01", json!("2021-07-31"));
        assert_eq!(c.match_position(&straddles).await?.employment_id, "310");
        let before_hiring = matching(who.clone(), "2017-06-01", Value::Null);
        let err = c
            .match_position(&before_hiring)
            .await
            .err()
            .ok_or("matched a salary starting before every employment")?;
        assert!(matches!(err, Error::NoEmployment(_)), "{err:?}");
        assert!(
            err.to_string().contains(
                "310 (2018-01-01..2021-06-30), 311 (2021-07-01..2024-12-31), 312 (2025-01-01..(open))"
            ),
            "{err}"
        );
    }
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_missing_employee_or_employment_is_named() -> TestResult {
    let sim = start().await;
    let c = connector(&sim);

    let by_id = change(
        "created",
        json!({"payroll_employee_id": "999"}),
        "1",
        "monthly",
        "2026-01-01",
    );
    let err = c
        .match_position(&by_id)
        .await
        .err()
        .ok_or("matched a ghost")?;
    assert!(matches!(err, Error::NoEmployee(_)), "{err:?}");
    assert!(err.to_string().contains("999"), "{err}");
    assert_eq!(
        http_failure(&err),
        (FailureCode::NoEmployee, FailureClass::Permanent)
    );

    let by_number = change(
        "created",
        json!({"employee_number": "77"}),
        "1",
        "monthly",
        "2026-01-01",
    );
    let err = c
        .match_position(&by_number)
        .await
        .err()
        .ok_or("matched a ghost")?;
    assert!(err.to_string().contains("employee number `77`"), "{err}");

    let by_email = change(
        "created",
        json!({"email": "nobody@example.no"}),
        "1",
        "monthly",
        "2026-01-01",
    );
    let err = c
        .match_position(&by_email)
        .await
        .err()
        .ok_or("matched a ghost")?;
    assert!(
        err.to_string().contains("email `nobody@example.no`"),
        "{err}"
    );

    // Lise has no employment; Kari's starts in 2020.
    let lise = change(
        "created",
        json!({"employee_number": "20"}),
        "1",
        "monthly",
        "2026-01-01",
    );
    let err = c
        .match_position(&lise)
        .await
        .err()
        .ok_or("matched without employment")?;
    assert!(matches!(err, Error::NoEmployment(_)), "{err:?}");
    assert!(err.to_string().contains("employments seen: none"), "{err}");
    assert!(
        err.to_string()
            .to_lowercase()
            .contains("position sync must be active"),
        "{err}"
    );

    let too_early = change("created", kari(), "1", "monthly", "2019-06-01");
    let err = c
        .match_position(&too_early)
        .await
        .err()
        .ok_or("matched before employment")?;
    assert!(
        err.to_string().contains("201 (2020-01-01..(open))"),
        "{err}"
    );
    assert_eq!(
        http_failure(&err),
        (FailureCode::NoEmployment, FailureClass::Permanent)
    );
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn the_currency_is_read_once() -> TestResult {
    let sim = start().await;
    let c = connector(&sim);
    assert_eq!(c.currency().await?.as_str(), "NOK");
    let requests = sim.request_count();
    assert_eq!(c.currency().await?.as_str(), "NOK");
    assert_eq!(
        sim.request_count(),
        requests,
        "the currency was fetched again"
    );
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn foreign_rows_inside_the_salary_period_conflict() -> TestResult {
    let sim = start().await;
    let c = connector(&sim);
    // Per (employment 204) has a hand-typed row 901 dated 2026-01-01.
    let per = json!({"employee_number": "19"});
    let on_the_day = change("created", per.clone(), "50000", "monthly", "2026-01-01");
    let position = c.match_position(&on_the_day).await?;
    // Issue 11, point 8: the row is named by its date and what it holds, not as a one-day
    // range, and never with its amount.
    assert_eq!(
        c.check_overlap(&on_the_day, &position, None).await?,
        OverlapCheck::ConflictDescribed {
            record_id: "901".into(),
            date: chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default(),
            description: "details row dated 2026-01-01, holding a fixed salary (MONTHLY_WAGE)"
                .into(),
        }
    );
    // The row this salary owns is not a conflict.
    let owned = PayrollRecord {
        id: "901".into(),
        employment_id: "204".into(),
    };
    assert_eq!(
        c.check_overlap(&on_the_day, &position, Some(&owned))
            .await?,
        OverlapCheck::Clear
    );
    // A salary starting after the row, or ending before it, does not overlap it.
    let later = change("created", per.clone(), "50000", "monthly", "2026-02-01");
    assert_eq!(
        c.check_overlap(&later, &position, None).await?,
        OverlapCheck::Clear
    );
    let before = change_with(
        "created",
        per.clone(),
        "50000",
        "monthly",
        "2025-01-01",
        json!("2025-12-31"),
        Value::Null,
    );
    assert_eq!(
        c.check_overlap(&before, &position, None).await?,
        OverlapCheck::Clear
    );
    // A delete never conflicts.
    let delete = change("deleted", per, "50000", "monthly", "2026-01-01");
    assert_eq!(
        c.check_overlap(&delete, &position, None).await?,
        OverlapCheck::Clear
    );
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn create_update_and_delete_one_salary() -> TestResult {
    let sim = start().await;
    let c = connector(&sim);

    let created = change_with(
        "created",
        kari(),
        "52000.10",
        "monthly",
        "2026-01-01",
        json!("2026-12-31"),
        json!("New agreement"),
    );
    let position = c.match_position(&created).await?;
    assert_eq!(
        c.check_overlap(&created, &position, None).await?,
        OverlapCheck::Clear
    );
    let report = c.write(&created, &position, None).await?;
    assert!(!report.adopted);
    assert!(!report.record_remains_after_delete);
    assert_eq!(report.dropped_fields, vec!["end_date", "note"]);
    assert_eq!(report.record.employment_id, "201");
    let rows = sim.written_details(201);
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.id.to_string(), report.record.id);
    assert_eq!(row.date, day("2026-01-01"));
    assert_eq!(
        row.remuneration_type.map(|t| t.as_str()),
        Some("MONTHLY_WAGE")
    );
    assert_eq!(
        row.annual_salary,
        dec("624001.20"),
        "12 x 52000.10, exactly"
    );
    let owned = report.record.clone();

    // Reconciliation finds what was written, with or without knowing the id.
    assert_eq!(
        c.find_written(&created, &position, None).await?,
        Some(owned.clone())
    );
    assert_eq!(
        c.find_written(&created, &position, Some(&owned)).await?,
        Some(owned.clone())
    );

    // An update to hourly: the same row, new values, the annual figure cleared.
    let updated = change("updated", kari(), "312.55", "hourly", "2026-01-01");
    assert_eq!(
        c.check_overlap(&updated, &position, Some(&owned)).await?,
        OverlapCheck::Clear
    );
    assert_eq!(
        c.find_written(&updated, &position, Some(&owned)).await?,
        None
    );
    let report = c.write(&updated, &position, Some(&owned)).await?;
    assert_eq!(report.record, owned);
    assert!(report.dropped_fields.is_empty());
    let rows = sim.written_details(201);
    assert_eq!(rows.len(), 1, "an update never adds a row");
    assert_eq!(
        rows[0].remuneration_type.map(|t| t.as_str()),
        Some("HOURLY_WAGE")
    );
    assert_eq!(rows[0].hourly_wage, dec("312.55"));
    assert_eq!(rows[0].annual_salary, Decimal::ZERO);
    assert_eq!(
        c.find_written(&updated, &position, Some(&owned)).await?,
        Some(owned.clone())
    );

    // A yearly update moving the start date.
    let yearly = change("updated", kari(), "700000", "yearly", "2026-03-01");
    c.write(&yearly, &position, Some(&owned)).await?;
    let rows = sim.written_details(201);
    assert_eq!(
        (rows[0].date, rows[0].annual_salary),
        (day("2026-03-01"), dec("700000"))
    );

    // A delete clears the amounts; the row stays.
    let deleted = change("deleted", kari(), "700000", "yearly", "2026-03-01");
    assert_eq!(
        c.find_written(&deleted, &position, Some(&owned)).await?,
        None
    );
    let report = c.write(&deleted, &position, Some(&owned)).await?;
    assert!(report.record_remains_after_delete);
    assert_eq!(report.record, owned);
    let rows = sim.written_details(201);
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].annual_salary, rows[0].hourly_wage),
        (Decimal::ZERO, Decimal::ZERO)
    );
    assert_eq!(
        c.find_written(&deleted, &position, Some(&owned)).await?,
        Some(owned.clone())
    );

    // Deleting a salary salary-sync never wrote changes nothing.
    let err = c
        .write(&deleted, &position, None)
        .await
        .err()
        .ok_or("deleted nothing")?;
    assert!(matches!(err, Error::NothingToDelete(_)), "{err:?}");
    assert_eq!(c.find_written(&deleted, &position, None).await?, None);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn an_expired_session_is_renewed_once_and_the_call_repeated() -> TestResult {
    let sim = start().await;
    let c = connector(&sim);
    let kari_change = change("created", kari(), "1", "monthly", "2026-01-01");
    c.match_position(&kari_change).await?;
    sim.expire_sessions();
    assert_eq!(c.match_position(&kari_change).await?.employment_id, "201");
    assert_eq!(sim.live_sessions(), 1);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn concurrent_calls_create_one_session() -> TestResult {
    let sim = start().await;
    let c = Arc::new(connector(&sim));
    let kari_change = Arc::new(change("created", kari(), "1", "monthly", "2026-01-01"));
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (c, ch) = (c.clone(), kari_change.clone());
        tasks.push(tokio::spawn(async move { c.match_position(&ch).await }));
    }
    for t in tasks {
        t.await??;
    }
    let stats: Value = reqwest::get(format!("{}/_sim/stats", sim.root_url()))
        .await?
        .json()
        .await?;
    assert_eq!(stats["sessions"], json!(1), "{stats}");
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn refused_credentials_are_an_auth_failure_without_tokens_in_it() -> TestResult {
    let sim = start().await;
    let kari_change = change("created", kari(), "1", "monthly", "2026-01-01");

    let mut bad = config(sim.base_url());
    bad.employee_token = Secret::new("WRONG-EMPLOYEE-TOKEN");
    let c = TripletexConnector::new(bad, http());
    let err = c
        .match_position(&kari_change)
        .await
        .err()
        .ok_or("accepted a bad token")?;
    assert_eq!(
        http_failure(&err),
        (FailureCode::AuthRejected, FailureClass::Auth)
    );
    let shown = format!("{err} {err:?} {:?}", err.failure());
    for secret in ["WRONG-EMPLOYEE-TOKEN", "demo-consumer-token"] {
        assert!(!shown.contains(secret), "{shown}");
    }

    // A session that is refused even after renewal (a company the tokens cannot act for).
    let mut other_company = config(sim.base_url());
    other_company.company = Some("424242".into());
    let c = TripletexConnector::new(other_company, http());
    let err = c
        .match_position(&kari_change)
        .await
        .err()
        .ok_or("accepted a foreign company")?;
    assert_eq!(
        http_failure(&err),
        (FailureCode::AuthRejected, FailureClass::Auth)
    );
    sim.shutdown().await;
    Ok(())
}

/// A forwarding proxy in front of the simulator that, before each of the next `bumps` PUTs of a
/// details row, edits the row itself (as a clerk in Tripletex would), so the connector's
/// `version` is stale when its PUT arrives.
async fn editing_proxy(upstream: String, bumps: u32) -> std::io::Result<String> {
    use axum::body::{to_bytes, Body};
    use axum::http::{Request, Response};
    let bumps = Arc::new(AtomicU32::new(bumps));
    let client = reqwest::Client::new();
    let app = axum::Router::new().fallback(move |req: Request<Body>| {
        let (bumps, client, upstream) = (bumps.clone(), client.clone(), upstream.clone());
        async move {
            let (parts, body) = req.into_parts();
            let body = to_bytes(body, 1 << 20).await.unwrap_or_default();
            let path = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            let url = format!("{upstream}{path}");
            let auth = parts.headers.get("authorization").cloned();
            let is_row_put = parts.method == axum::http::Method::PUT
                && parts.uri.path().contains("/employee/employment/details/");
            if is_row_put
                && bumps
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
            {
                let mut edit = client
                    .put(&url)
                    .header("content-type", "application/json")
                    .body(r#"{"percentageOfFullTimeEquivalent":80}"#);
                if let Some(auth) = &auth {
                    edit = edit.header("authorization", auth.clone());
                }
                let _ = edit.send().await;
            }
            let forward = client
                .request(parts.method.clone(), &url)
                .headers(parts.headers.clone())
                .body(body);
            let answer = match forward.send().await {
                Ok(a) => a,
                Err(_) => {
                    let mut bad = Response::new(Body::empty());
                    *bad.status_mut() = axum::http::StatusCode::BAD_GATEWAY;
                    return bad;
                }
            };
            let mut out = Response::builder().status(answer.status().as_u16());
            for (k, v) in answer.headers() {
                if k != "content-length" && k != "transfer-encoding" {
                    out = out.header(k, v);
                }
            }
            let bytes = answer.bytes().await.unwrap_or_default();
            out.body(Body::from(bytes))
                .unwrap_or_else(|_| Response::new(Body::empty()))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}"))
}

#[tokio::test]
async fn a_stale_version_is_read_again_once_then_reported_as_transient() -> TestResult {
    let sim = start().await;
    let created = change("created", kari(), "50000", "monthly", "2026-01-01");
    let setup = connector(&sim);
    let position = setup.match_position(&created).await?;
    let owned = setup.write(&created, &position, None).await?.record;

    // One edit in between: the connector reads the new version and succeeds.
    let proxy = editing_proxy(sim.root_url(), 1).await?;
    let c = TripletexConnector::new(config(format!("{proxy}/v2")), http());
    let updated = change("updated", kari(), "51000", "monthly", "2026-01-01");
    c.write(&updated, &position, Some(&owned)).await?;
    let rows = sim.written_details(201);
    assert_eq!(rows[0].annual_salary, dec("612000"));
    assert_eq!(rows[0].version, 2, "created 0, the clerk's edit 1, ours 2");

    // Edits before every attempt: a transient revision conflict.
    let proxy = editing_proxy(sim.root_url(), 10).await?;
    let c = TripletexConnector::new(config(format!("{proxy}/v2")), http());
    let again = change("updated", kari(), "52000", "monthly", "2026-01-01");
    let err = c
        .write(&again, &position, Some(&owned))
        .await
        .err()
        .ok_or("wrote over edits")?;
    let failure = err.failure();
    assert_eq!(
        (
            failure.code,
            failure.class,
            failure.http_status,
            failure.vendor_code.as_deref()
        ),
        (
            FailureCode::RevisionConflict,
            FailureClass::Transient,
            Some(409),
            Some("8000")
        )
    );
    assert!(failure.request_id.is_some());
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn rate_limits_and_outages_are_transient() -> TestResult {
    let sim = start().await;
    let c = connector(&sim);
    let kari_change = change("created", kari(), "1", "monthly", "2026-01-01");

    sim.arm(Fault::new(FaultKind::RateLimited { reset_s: Some(7) }, 1).path_prefix("/employee"));
    let before = Utc::now();
    let err = c.match_position(&kari_change).await.err().ok_or("no 429")?;
    let f = err.failure();
    assert_eq!(
        (f.code, f.class, f.http_status),
        (FailureCode::RateLimited, FailureClass::Transient, Some(429))
    );
    let wait = f.retry_not_before.ok_or("no retry instant")? - before;
    assert!(
        wait >= chrono::Duration::seconds(6) && wait <= chrono::Duration::seconds(9),
        "{wait}"
    );
    // The 429 said the period's budget is spent for 7 s: the connector's rate budget does not
    // send the next request at all (Tripletex would answer 429 again), and says until when.
    let requests = sim.request_count();
    let err = c.match_position(&kari_change).await.err().ok_or("sent")?;
    let Error::Paced { until } = err else {
        return Err(format!("expected Paced, got {err:?}").into());
    };
    let wait = until - before;
    assert!(
        wait >= chrono::Duration::seconds(5) && wait <= chrono::Duration::seconds(9),
        "{wait}"
    );
    assert_eq!(sim.request_count(), requests, "nothing was sent");
    // A fresh connector (a budget that has seen nothing) for the rest.
    let c = connector(&sim);

    sim.arm(Fault::new(FaultKind::RateLimited { reset_s: None }, 1).path_prefix("/employee"));
    let f = c
        .match_position(&kari_change)
        .await
        .err()
        .ok_or("no 429")?
        .failure();
    assert_eq!(
        (f.code, f.retry_not_before),
        (FailureCode::RateLimited, None)
    );

    for kind in [FaultKind::ServerError, FaultKind::Unavailable] {
        sim.arm(Fault::new(kind, 1).path_prefix("/employee"));
        let f = c
            .match_position(&kari_change)
            .await
            .err()
            .ok_or("no 5xx")?
            .failure();
        assert_eq!(
            (f.code, f.class),
            (FailureCode::Unavailable, FailureClass::Transient)
        );
        assert!(f.message.contains("retries"), "{}", f.message);
    }

    sim.arm(Fault::new(FaultKind::Drop, 1).path_prefix("/employee"));
    let err = c
        .match_position(&kari_change)
        .await
        .err()
        .ok_or("no drop")?;
    assert!(matches!(err, Error::Network(_)), "{err:?}");
    assert_eq!(err.failure().class, FailureClass::Transient);

    // And after all that, it works.
    assert_eq!(c.match_position(&kari_change).await?.employment_id, "201");
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_write_applied_then_dropped_is_adopted_not_repeated() -> TestResult {
    let sim = start().await;
    let c = connector(&sim);
    let created = change("created", kari(), "52000", "monthly", "2026-01-01");
    let position = c.match_position(&created).await?;

    sim.arm(Fault::new(FaultKind::ApplyThenDrop, 1).method("POST"));
    let err = c
        .write(&created, &position, None)
        .await
        .err()
        .ok_or("the drop was not seen")?;
    assert!(matches!(err, Error::Network(_)), "{err:?}");
    assert_eq!(sim.write_count(), 1);

    // The engine's next attempt reconciles first: the row is there, so it is adopted.
    let found = c
        .find_written(&created, &position, None)
        .await?
        .ok_or("not found")?;
    assert_eq!(sim.written_details(201).len(), 1);
    assert_eq!(found.id, sim.written_details(201)[0].id.to_string());

    // The same for an update whose answer was lost.
    sim.arm(Fault::new(FaultKind::ApplyThenDrop, 1).method("PUT"));
    let updated = change("updated", kari(), "53000", "monthly", "2026-01-01");
    assert!(c.write(&updated, &position, Some(&found)).await.is_err());
    assert_eq!(
        c.find_written(&updated, &position, Some(&found)).await?,
        Some(found.clone())
    );
    assert_eq!(sim.write_count(), 2);
    assert_eq!(sim.written_details(201).len(), 1);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_refused_write_is_permanent_and_says_why() -> TestResult {
    let sim = start().await;
    let c = connector(&sim);
    let created = change("created", kari(), "52000", "monthly", "2026-01-01");
    let mut position = c.match_position(&created).await?;
    position.employment_id = "999999".into();
    let err = c
        .write(&created, &position, None)
        .await
        .err()
        .ok_or("wrote to a ghost")?;
    let f = err.failure();
    assert_eq!(f.class, FailureClass::Permanent, "{f}");
    assert!(
        f.http_status.is_some_and(|s| (400..500).contains(&s)),
        "{f}"
    );
    assert!(f.message.contains("retry"), "{}", f.message);
    sim.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn slow_answers_time_out_as_network_errors() -> TestResult {
    let sim = start().await;
    let c = TripletexConnector::new(
        config(sim.base_url()),
        client(&ClientSettings {
            request_timeout_ms: 300,
            ..ClientSettings::default()
        })?,
    );
    sim.set_latency(Duration::from_millis(1_000));
    let err = c.currency().await.err().ok_or("no timeout")?;
    assert!(matches!(err, Error::Network(_)), "{err:?}");
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(!err.to_string().contains("demo-"), "{err}");
    sim.clear_faults();
    sim.shutdown().await;
    Ok(())
}

/// Kari's hiring row (employment 201, 2020-01-01) as a 60 % temporary position: the terms a
/// new row must carry forward.
fn seed_with_kari_at_60() -> Seed {
    let mut seed = Seed::demo();
    let mut terms = sim::Terms::hiring();
    terms.employment_form = "TEMPORARY".into();
    terms.occupation_code_id = Some(3_000_017);
    seed.details.push(sim::SeedDetails {
        id: 903,
        employment_id: 201,
        date: day("2020-01-01"),
        remuneration_type: sim::RemunerationType::MonthlyWage,
        annual_salary: dec("480000"),
        hourly_wage: Decimal::ZERO,
        percentage_of_full_time_equivalent: dec("60"),
        terms,
    });
    seed
}

/// Issue 11, point 1: a new details row carries every writable term of the row in force on
/// its date and changes only the salary; its write, applied but unanswered, is adopted.
#[tokio::test]
async fn a_new_row_carries_the_terms_in_force_and_is_adopted_after_a_lost_answer() -> TestResult {
    let sim = sim::start(seed_with_kari_at_60()).await?;
    let c = connector(&sim);
    let created = change("created", kari(), "52000", "monthly", "2026-01-01");
    let position = c.match_position(&created).await?;
    assert_eq!(
        c.check_overlap(&created, &position, None).await?,
        OverlapCheck::Clear
    );
    sim.arm(Fault::new(FaultKind::ApplyThenDrop, 1).method("POST"));
    assert!(c.write(&created, &position, None).await.is_err());
    let found = c
        .find_written(&created, &position, None)
        .await?
        .ok_or("the carried-forward row was not found")?;
    let rows = sim.written_details(201);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(found.id, rows[0].id.to_string());
    assert_eq!(sim.write_count(), 1, "adopted, not written twice");
    let row = &rows[0];
    assert_eq!(row.annual_salary, dec("624000"));
    assert_eq!(row.percentage_of_full_time_equivalent, dec("60"));
    assert_eq!(row.terms.employment_form, "TEMPORARY");
    assert_eq!(row.terms.employment_type, "ORDINARY");
    assert_eq!(row.terms.working_hours_scheme, "NOT_SHIFT");
    assert_eq!(row.terms.occupation_code_id, Some(3_000_017));
    sim.shutdown().await;
    Ok(())
}

/// Issue 11, point 2: a salary starting on the employment's first day is not an overlap with
/// the hiring row; it updates that row in place (its 60 % kept), and the PUT, applied but
/// unanswered, is adopted rather than repeated.
#[tokio::test]
async fn a_salary_from_day_one_updates_the_hiring_row_in_place() -> TestResult {
    let sim = start().await;
    let c = connector(&sim);
    // Eva (106) was hired 2026-01-01; position sync made row 902 (60 %, 540 000).
    let eva = json!({"payroll_employee_id": "106"});
    let created = change("created", eva, "47000", "monthly", "2026-01-01");
    let position = c.match_position(&created).await?;
    assert_eq!(position.employment_id, "206");
    assert_eq!(
        c.check_overlap(&created, &position, None).await?,
        OverlapCheck::Clear
    );
    sim.arm(Fault::new(FaultKind::ApplyThenDrop, 1).method("PUT"));
    assert!(c.write(&created, &position, None).await.is_err());
    let found = c
        .find_written(&created, &position, None)
        .await?
        .ok_or("the updated hiring row was not found")?;
    assert_eq!(found.id, "902");
    assert_eq!(sim.write_count(), 1, "adopted, not written twice");
    let rows = sim.details(206);
    assert_eq!(rows.len(), 1, "no second row on the hiring date: {rows:?}");
    assert_eq!(rows[0].annual_salary, dec("564000"));
    assert_eq!(rows[0].percentage_of_full_time_equivalent, dec("60"));
    // Written once more (as an update), it stays the one row.
    let report = c.write(&created, &position, Some(&found)).await?;
    assert_eq!(report.record.id, "902");
    assert_eq!(sim.details(206).len(), 1);
    sim.shutdown().await;
    Ok(())
}

/// Issue 11, point 3: a row salary-sync wrote for another HR salary of the same employee is
/// not foreign.
#[tokio::test]
async fn a_row_written_for_a_sibling_salary_is_not_an_overlap() -> TestResult {
    let sim = start().await;
    let c = connector(&sim);
    let per = json!({"employee_number": "19"});
    let salary = change("created", per, "50000", "monthly", "2025-06-01");
    let position = c.match_position(&salary).await?;
    assert!(c
        .check_overlap(&salary, &position, None)
        .await?
        .is_conflict());
    let sibling = PayrollRecord {
        id: "901".into(),
        employment_id: "204".into(),
    };
    assert_eq!(
        c.check_overlap_among(&salary, &position, None, &[sibling])
            .await?,
        OverlapCheck::Clear
    );
    sim.shutdown().await;
    Ok(())
}

/// Issue 11, point 4: with Tripletex's date a day ahead of UTC (Norway after midnight), a
/// session is still created.
#[tokio::test]
async fn a_session_is_created_when_tripletex_is_a_day_ahead() -> TestResult {
    let sim = sim::start(Seed {
        date_ahead_days: 1,
        ..Seed::demo()
    })
    .await?;
    let c = connector(&sim);
    c.currency().await?;
    assert_eq!(sim.live_sessions(), 1);
    sim.shutdown().await;
    Ok(())
}

/// Issue 11, point 4: a 422 on `expirationDate` is not a refusal of the tokens: transient,
/// and it says what it is.
#[tokio::test]
async fn a_refused_expiration_date_is_not_an_auth_failure() -> TestResult {
    let sim = sim::start(Seed {
        date_ahead_days: 10,
        ..Seed::demo()
    })
    .await?;
    let c = connector(&sim);
    let err = c
        .currency()
        .await
        .err()
        .ok_or("a session was created past Tripletex's date")?;
    assert_eq!(
        http_failure(&err),
        (FailureCode::Unavailable, FailureClass::Transient)
    );
    let shown = err.to_string();
    assert!(shown.contains("expiration date"), "{shown}");
    assert!(shown.contains("not a token problem"), "{shown}");
    sim.shutdown().await;
    Ok(())
}
