//! The Tripletex simulator against Tripletex's own OpenAPI spec: every request a well-behaved
//! client sends, and the error answers it must handle, go through a Prism proxy that checks both
//! directions. Any complaint from Prism fails the test.

#[path = "support/prism.rs"]
mod prism;

use prism::Prism;
use reqwest::Method;
use salary_sync::simulators::tripletex::{self, Seed};
use serde_json::{json, Value};

/// A client of the proxy that fails the test on any Prism complaint.
struct Through {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Through {
    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.basic_auth("0", Some(token));
        }
        if let Some(body) = body {
            // The spec's request media type for POST/PUT.
            request = request
                .header("content-type", "application/json; charset=utf-8")
                .body(body.to_string());
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let text = response.text().await.unwrap_or_default();
        if let Some(complaint) = Prism::complaint(status, &headers, &text) {
            panic!("{method} {path}: {complaint}");
        }
        assert!(
            headers.iter().any(|(k, _)| k == "x-tlx-request-id"),
            "{method} {path}: no x-tlx-request-id"
        );
        let json = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {path}: answer is not JSON ({e}): {text}"));
        (status, json)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_request_and_error_answer_matches_the_spec() {
    let sim = tripletex::start(Seed::demo())
        .await
        .expect("simulator starts");
    let upstream = sim.base_url();
    let proxy = tokio::task::spawn_blocking(move || Prism::start(&upstream))
        .await
        .expect("join")
        .unwrap_or_else(|e| panic!("Prism did not start: {e}"));
    let mut c = Through {
        http: reqwest::Client::new(),
        base: proxy.base_url(),
        token: None,
    };

    // Session, then who am I and the company currency.
    let (status, session) = c
        .send(
            Method::PUT,
            "/token/session/:create?consumerToken=demo-consumer-token\
             &employeeToken=demo-employee-token&expirationDate=2999-12-31",
            None,
        )
        .await;
    assert_eq!(status, 200, "{session}");
    c.token = Some(
        session["value"]["token"]
            .as_str()
            .expect("token")
            .to_string(),
    );

    let (status, who) = c.send(Method::GET, "/token/session/>whoAmI", None).await;
    assert_eq!(status, 200, "{who}");
    let company_id = who["value"]["companyId"].as_i64().expect("companyId");
    let (status, company) = c
        .send(
            Method::GET,
            &format!("/company/{company_id}?fields=currency(code)"),
            None,
        )
        .await;
    assert_eq!(
        (status, &company["value"]["currency"]["code"]),
        (200, &json!("NOK"))
    );

    // Employee, employment and the details already there.
    let (status, by_number) = c
        .send(
            Method::GET,
            "/employee?employeeNumber=17&fields=id,employeeNumber",
            None,
        )
        .await;
    assert_eq!((status, &by_number["values"][0]["id"]), (200, &json!(101)));
    let (status, by_email) = c
        .send(
            Method::GET,
            "/employee?email=kari%40example.no&from=0&count=10",
            None,
        )
        .await;
    assert_eq!((status, &by_email["values"][0]["id"]), (200, &json!(101)));
    let (status, _) = c.send(Method::GET, "/employee/101", None).await;
    assert_eq!(status, 200);
    // The employee with its employments nested (full Employment objects), as the connector
    // reads it: one request, by id and by search.
    let (status, ola) = c
        .send(
            Method::GET,
            "/employee/102?fields=id,employeeNumber,email,employments(id,startDate,endDate)",
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        ola["value"]["employments"][0]["endDate"],
        json!("2023-12-31")
    );
    let (status, found) = c
        .send(
            Method::GET,
            "/employee?employeeNumber=18&fields=id,employeeNumber,email,employments(id,startDate,endDate)&from=0&count=1",
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        found["values"][0]["employments"].as_array().map(Vec::len),
        Some(2)
    );
    let (status, employments) = c
        .send(
            Method::GET,
            "/employee/employment?employeeId=102&fields=id,startDate,endDate",
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(employments["values"].as_array().map(Vec::len), Some(2));
    let (status, _) = c.send(Method::GET, "/employee/employment/204", None).await;
    assert_eq!(status, 200);
    let (status, existing) = c
        .send(
            Method::GET,
            "/employee/employment/details?employmentId=204",
            None,
        )
        .await;
    assert_eq!((status, &existing["values"][0]["id"]), (200, &json!(901)));
    let (status, empty) = c
        .send(
            Method::GET,
            "/employee/employment/details?employmentId=999",
            None,
        )
        .await;
    // Every employment has its hiring row; an empty list needs an employment with none.
    assert_eq!((status, &empty["fullResultSize"]), (200, &json!(0)));

    // Create, read back, update with version, clear (the Tripletex delete).
    let (status, created) = c
        .send(
            Method::POST,
            "/employee/employment/details",
            Some(json!({
                "employment": {"id": 201},
                "date": "2026-01-01",
                "remunerationType": "MONTHLY_WAGE",
                "annualSalary": 624000.00,
                "percentageOfFullTimeEquivalent": 100.0,
            })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["value"]["monthlySalary"], json!(52000));
    let id = created["value"]["id"].as_i64().expect("id");
    let (status, _) = c
        .send(
            Method::GET,
            &format!("/employee/employment/details/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, updated) = c
        .send(
            Method::PUT,
            &format!("/employee/employment/details/{id}"),
            Some(json!({"id": id, "version": 0, "annualSalary": 630000.50})),
        )
        .await;
    assert_eq!(
        (status, &updated["value"]["version"]),
        (200, &json!(1)),
        "{updated}"
    );
    let (status, cleared) = c
        .send(
            Method::PUT,
            &format!("/employee/employment/details/{id}"),
            Some(json!({"version": 1, "annualSalary": 0, "hourlyWage": 0})),
        )
        .await;
    assert_eq!(
        (status, &cleared["value"]["annualSalary"]),
        (200, &json!(0))
    );
    let (status, hourly) = c
        .send(
            Method::POST,
            "/employee/employment/details",
            Some(json!({
                "employment": {"id": 205},
                "date": "2026-03-01",
                "remunerationType": "HOURLY_WAGE",
                "hourlyWage": 245.5,
            })),
        )
        .await;
    assert_eq!(status, 201, "{hourly}");

    // Error answers: each must still match the spec and carry Tripletex's envelope.
    let expect_error = |answer: (u16, Value), status: u16, code: u32| {
        assert_eq!(answer.0, status, "{}", answer.1);
        assert_eq!(answer.1["code"], json!(code), "{}", answer.1);
        assert!(answer.1["requestId"].is_string(), "{}", answer.1);
    };
    let stale = c
        .send(
            Method::PUT,
            &format!("/employee/employment/details/{id}"),
            Some(json!({"version": 0, "annualSalary": 1})),
        )
        .await;
    expect_error(stale, 409, 8000);
    let unknown = c
        .send(Method::GET, "/employee/employment/details/999999", None)
        .await;
    expect_error(unknown, 404, 6000);
    let unknown_put = c
        .send(
            Method::PUT,
            "/employee/employment/details/999999",
            Some(json!({"version": 0, "annualSalary": 1})),
        )
        .await;
    expect_error(unknown_put, 404, 6000);
    let unknown_employee = c.send(Method::GET, "/employee/999999", None).await;
    expect_error(unknown_employee, 404, 6000);
    let no_employment = c
        .send(
            Method::POST,
            "/employee/employment/details",
            Some(json!({"employment": {"id": 999}, "date": "2026-01-01", "annualSalary": 1})),
        )
        .await;
    expect_error(no_employment, 422, 15000);
    let outside = c
        .send(
            Method::POST,
            "/employee/employment/details",
            Some(json!({"employment": {"id": 202}, "date": "2026-01-01", "annualSalary": 1})),
        )
        .await;
    expect_error(outside, 422, 15000);
    let bad_login = c
        .send(
            Method::PUT,
            "/token/session/:create?consumerToken=wrong&employeeToken=wrong\
             &expirationDate=2999-12-31",
            None,
        )
        .await;
    expect_error(bad_login, 401, 3000);
    sim.expire_sessions();
    let expired = c.send(Method::GET, "/token/session/>whoAmI", None).await;
    expect_error(expired, 401, 3000);

    assert!(
        sim.request_count() >= 20,
        "the answers came from the simulator"
    );
    let violations = proxy.log_violations();
    let log = proxy.log_text();

    // The detectors work: a body that breaks the spec is refused by Prism and recognised.
    let broken = reqwest::Client::new()
        .put(format!(
            "{}/employee/employment/details/{id}",
            proxy.base_url()
        ))
        .basic_auth("0", Some("any"))
        .header("content-type", "application/json; charset=utf-8")
        .body(r#"{"annualSalary":"not a number"}"#)
        .send()
        .await
        .expect("Prism answers");
    let status = broken.status().as_u16();
    let body = broken.text().await.unwrap_or_default();
    assert!(
        Prism::complaint(status, &[], &body).is_some(),
        "{status} {body}"
    );
    // Prism writes its log asynchronously: give the line a moment to land.
    let mut logged = false;
    for _ in 0..50 {
        if !proxy.log_violations().is_empty() {
            logged = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(logged, "the refusal is in the log");

    drop(proxy);
    sim.shutdown().await;
    assert!(
        violations.is_empty(),
        "Prism reported:\n{}\n\nfull log:\n{log}",
        violations.join("\n")
    );
}
