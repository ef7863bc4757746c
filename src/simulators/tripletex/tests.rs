//! The simulator over real HTTP: auth, writes, and every fault as a client sees it.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::*;

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn login(sim: &Control) -> Self {
        let http = reqwest::Client::new();
        let base = sim.base_url();
        let answer: Value = http
            .put(format!("{base}/token/session/:create"))
            .query(&[
                ("consumerToken", "demo-consumer-token"),
                ("employeeToken", "demo-employee-token"),
                ("expirationDate", "2999-01-01"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = answer["value"]["token"].as_str().unwrap().to_string();
        Self { http, base, token }
    }

    async fn get(&self, path: &str) -> reqwest::Result<reqwest::Response> {
        self.http
            .get(format!("{}{path}", self.base))
            .basic_auth("0", Some(&self.token))
            .send()
            .await
    }

    async fn post(&self, path: &str, body: Value) -> reqwest::Result<reqwest::Response> {
        self.http
            .post(format!("{}{path}", self.base))
            .basic_auth("0", Some(&self.token))
            .json(&body)
            .send()
            .await
    }

    async fn put(&self, path: &str, body: Value) -> reqwest::Result<reqwest::Response> {
        self.http
            .put(format!("{}{path}", self.base))
            .basic_auth("0", Some(&self.token))
            .json(&body)
            .send()
            .await
    }
}

fn new_salary(employment: i64) -> Value {
    json!({
        "employment": {"id": employment},
        "date": "2026-01-01",
        "remunerationType": "MONTHLY_WAGE",
        "annualSalary": 624000.00,
        "percentageOfFullTimeEquivalent": 100,
    })
}

#[tokio::test]
async fn session_who_am_i_company_and_employee_lookup() {
    let sim = start(Seed::demo()).await.unwrap();
    let c = Client::login(&sim).await;

    let who = c.get("/token/session/>whoAmI").await.unwrap();
    assert_eq!(who.status(), 200);
    assert!(who.headers().contains_key("x-tlx-request-id"));
    assert!(who.headers().contains_key("x-rate-limit-remaining"));
    let who: Value = who.json().await.unwrap();
    assert_eq!(who["value"]["companyId"], 1_000_001);

    let company: Value = c
        .get("/company/1000001?fields=currency(code)")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(company["value"]["currency"]["code"], "NOK");

    let by_email: Value = c
        .get("/employee?email=KARI@example.no")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(by_email["values"][0]["id"], 101);
    assert_eq!(by_email["fullResultSize"], 1);

    let employments: Value = c
        .get("/employee/employment?employeeId=102")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(employments["values"][0]["endDate"], "2023-12-31");
    assert!(employments["values"][1].get("endDate").is_none());

    // An employee carries its employments nested, each exactly as the employment list shows it,
    // by id and in a search.
    let ola: Value = c
        .get("/employee/102?fields=id,employments(id,startDate,endDate)")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ola["value"]["employments"], employments["values"]);
    let found: Value = c
        .get("/employee?employeeNumber=18")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["values"][0]["employments"], employments["values"]);
    let lise: Value = c.get("/employee/104").await.unwrap().json().await.unwrap();
    assert_eq!(lise["value"]["employments"], json!([]));

    // The same routes answer without /v2 too.
    let plain = c
        .http
        .get(format!("{}/employee/101", sim.root_url()))
        .basic_auth("0", Some(&c.token))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn bad_credentials_and_expired_sessions_get_401_3000() {
    let sim = start(Seed::demo()).await.unwrap();
    let c = Client::login(&sim).await;
    let wrong = c
        .http
        .put(format!("{}/token/session/:create", c.base))
        .query(&[
            ("consumerToken", "nope"),
            ("employeeToken", "demo-employee-token"),
            ("expirationDate", "2999-01-01"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["code"], 3000);

    assert_eq!(c.get("/employee/101").await.unwrap().status(), 200);
    sim.expire_sessions();
    let expired = c.get("/employee/101").await.unwrap();
    assert_eq!(expired.status(), 401);
    let body: Value = expired.json().await.unwrap();
    assert_eq!(body["code"], 3000);
    assert!(!body["requestId"].as_str().unwrap().is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn details_create_update_and_revision_conflict() {
    let sim = start(Seed::demo()).await.unwrap();
    let c = Client::login(&sim).await;
    let created = c
        .post("/employee/employment/details", new_salary(201))
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let id = created["value"]["id"].as_i64().unwrap();
    assert_eq!(created["value"]["monthlySalary"], 52000);
    assert_eq!(created["value"]["version"], 0);

    let updated = c
        .put(
            &format!("/employee/employment/details/{id}"),
            json!({"version": 0, "annualSalary": 630000.50}),
        )
        .await
        .unwrap();
    assert_eq!(updated.status(), 200);
    let stale = c
        .put(
            &format!("/employee/employment/details/{id}"),
            json!({"version": 0, "annualSalary": 1}),
        )
        .await
        .unwrap();
    assert_eq!(stale.status(), 409);
    let stale: Value = stale.json().await.unwrap();
    assert_eq!(stale["code"], 8000);

    let rows = sim.written_details(201);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].annual_salary.to_string(), "630000.5");
    assert_eq!(rows[0].version, 1);
    assert_eq!(sim.write_count(), 2);

    let outside = c
        .post("/employee/employment/details", new_salary(202))
        .await
        .unwrap();
    assert_eq!(outside.status(), 422);
    let outside: Value = outside.json().await.unwrap();
    assert_eq!(outside["code"], 15000);
    assert_eq!(outside["validationMessages"][0]["field"], "date");

    let garbage = c
        .http
        .post(format!("{}/employee/employment/details", c.base))
        .basic_auth("0", Some(&c.token))
        .body("{\"employment\":")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage.status(), 422);
    assert_eq!(sim.write_count(), 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn apply_then_drop_applies_and_the_client_sees_a_connection_error() {
    let sim = start(Seed::demo()).await.unwrap();
    let c = Client::login(&sim).await;
    sim.arm(Fault::new(FaultKind::ApplyThenDrop, 1).method("POST"));
    let err = c
        .post("/employee/employment/details", new_salary(201))
        .await
        .expect_err("the connection must close without an answer");
    assert!(err.status().is_none(), "{err:?}");
    assert_eq!(sim.written_details(201).len(), 1, "the write was applied");
    assert_eq!(sim.write_count(), 1);
    // The next request gets a normal answer.
    assert_eq!(c.get("/employee/101").await.unwrap().status(), 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn drop_does_not_apply() {
    let sim = start(Seed::demo()).await.unwrap();
    let c = Client::login(&sim).await;
    sim.arm(Fault::new(FaultKind::Drop, 1).path_prefix("/employee/employment/details"));
    let err = c
        .post("/employee/employment/details", new_salary(201))
        .await
        .unwrap_err();
    assert!(err.status().is_none());
    assert!(sim.written_details(201).is_empty());
    assert_eq!(sim.write_count(), 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn apply_then_hang_holds_the_answer_and_shutdown_ends_it() {
    let sim = start(Seed::demo()).await.unwrap();
    let c = Client::login(&sim).await;
    sim.arm(Fault::new(FaultKind::ApplyThenHang { hang_ms: 60_000 }, 1));
    let request = tokio::spawn(async move {
        c.post("/employee/employment/details", new_salary(201))
            .await
            .map(|r| r.status())
    });
    assert!(sim.wait_for_writes(1, Duration::from_secs(5)).await);
    assert_eq!(sim.written_details(201).len(), 1);
    assert!(!request.is_finished());
    let started = Instant::now();
    sim.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(3));
    let outcome = request.await.unwrap();
    assert!(outcome.is_err(), "{outcome:?}");
}

#[tokio::test]
async fn server_errors_rate_limits_and_latency() {
    let sim = start(Seed::demo()).await.unwrap();
    let c = Client::login(&sim).await;
    sim.arm(Fault::new(FaultKind::ServerError, 1));
    sim.arm(Fault::new(FaultKind::Unavailable, 1));
    sim.arm(Fault::new(FaultKind::RateLimited { reset_s: Some(7) }, 1));
    sim.arm(Fault::new(FaultKind::RateLimited { reset_s: None }, 1));

    let r = c.get("/employee/101").await.unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], 1000);
    assert_eq!(c.get("/employee/101").await.unwrap().status(), 503);
    let r = c.get("/employee/101").await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["x-rate-limit-reset"], "7");
    let r = c.get("/employee/101").await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("x-rate-limit-reset").is_none());
    assert_eq!(c.get("/employee/101").await.unwrap().status(), 200);

    sim.set_latency(Duration::from_millis(150));
    let started = Instant::now();
    assert_eq!(c.get("/employee/101").await.unwrap().status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(150));
    sim.shutdown().await;
}

#[tokio::test]
async fn the_rate_limit_is_reported_and_enforced_per_period() {
    let sim = start(Seed::demo()).await.unwrap();
    let c = Client::login(&sim).await;
    // Through the control API: 3 requests per hour, counted from now.
    let r = reqwest::Client::new()
        .put(format!("{}/_sim/rate-limit", sim.root_url()))
        .json(&json!({"limit": 3, "window_s": 3600}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for remaining in ["2", "1", "0"] {
        let r = c.get("/employee/101").await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-rate-limit-limit"], "3");
        assert_eq!(r.headers()["x-rate-limit-remaining"], remaining);
        let reset: u64 = r.headers()["x-rate-limit-reset"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((3590..=3600).contains(&reset), "{reset}");
    }
    // Spent: every request is 429 with Remaining 0 and the Reset, until the period ends.
    for _ in 0..2 {
        let r = c.get("/employee/101").await.unwrap();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["x-rate-limit-remaining"], "0");
        assert!(r.headers().contains_key("x-rate-limit-reset"));
    }
    assert_eq!(sim.rate_limited_count(), 2);
    // A one-second period: the budget comes back after it.
    sim.set_rate_limit(1, Duration::from_secs(1));
    assert_eq!(c.get("/employee/101").await.unwrap().status(), 200);
    let r = c.get("/employee/101").await.unwrap();
    assert_eq!(r.status(), 429);
    let reset: u64 = r.headers()["x-rate-limit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(reset, 1, "seconds left, rounded up");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(c.get("/employee/101").await.unwrap().status(), 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn control_api_over_http() {
    let sim = start(Seed::demo()).await.unwrap();
    let c = Client::login(&sim).await;
    let root = sim.root_url();
    let armed = c
        .http
        .post(format!("{root}/_sim/faults"))
        .json(&json!({"kind": "server_error", "times": 2, "method": "GET"}))
        .send()
        .await
        .unwrap();
    assert_eq!(armed.status(), 200);
    assert_eq!(sim.faults().armed.len(), 1);
    assert_eq!(c.get("/employee/101").await.unwrap().status(), 500);

    let cleared = c
        .http
        .delete(format!("{root}/_sim/faults"))
        .send()
        .await
        .unwrap();
    assert_eq!(cleared.status(), 200);
    assert_eq!(c.get("/employee/101").await.unwrap().status(), 200);

    let rows: Vec<DetailsRow> = c
        .http
        .get(format!("{root}/_sim/details?employmentId=204"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Row 901 and the hiring row dated the employment's start.
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].annual_salary, rust_decimal::Decimal::from(600_000));

    c.http
        .post(format!("{root}/_sim/expire-sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(sim.live_sessions(), 0);
    let bad = c
        .http
        .put(format!("{root}/_sim/faults"))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    sim.shutdown().await;
}

#[tokio::test]
async fn slow_body_sends_the_head_at_once_and_the_body_slowly() {
    let sim = start(Seed::demo()).await.unwrap();
    let c = Client::login(&sim).await;
    sim.arm(Fault::new(FaultKind::SlowBody { chunk_delay_ms: 20 }, 1));
    let started = Instant::now();
    let response = c.get("/employee/101").await.unwrap();
    let head_after = started.elapsed();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let body_after = started.elapsed();
    assert_eq!(body["value"]["id"], 101);
    assert!(head_after < Duration::from_millis(200), "{head_after:?}");
    // The employee answer is a few hundred bytes: well over ten 16-byte chunks.
    assert!(body_after >= Duration::from_millis(200), "{body_after:?}");
    // The next request runs at full speed on a new connection.
    let started = Instant::now();
    assert_eq!(c.get("/employee/101").await.unwrap().status(), 200);
    assert!(started.elapsed() < Duration::from_millis(200));
    sim.shutdown().await;
}
