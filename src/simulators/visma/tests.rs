//! The simulator over real HTTP: the token endpoint, auth and media type, a PUT through its
//! job, ETags, paging, and the faults as a client sees them.

use std::time::Duration;

use serde_json::{json, Value};

use super::*;

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

fn ok<T, E: std::fmt::Debug>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e:?}"))
}

impl Client {
    async fn login(sim: &Control) -> Self {
        let http = reqwest::Client::new();
        let answer: Value = ok(ok(http
            .post(sim.token_url())
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials&client_id=demo-client&client_secret=demo-client-secret&tenant_id=demo-tenant")
            .send()
            .await)
        .json()
        .await);
        let token = answer["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert_eq!(answer["expires_in"], json!(3600));
        Self {
            http,
            base: sim.base_url(),
            token,
        }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        ok(self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("accept", MEDIA_TYPE)
            .send()
            .await)
    }

    async fn put(&self, path: &str, etag: Option<&str>, body: &Value) -> reqwest::Response {
        let mut b = self
            .http
            .put(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("accept", MEDIA_TYPE)
            .header("content-type", MEDIA_TYPE)
            .header("x-correlation-id", "corr-1")
            .body(body.to_string());
        if let Some(tag) = etag {
            b = b.header("if-match", tag);
        }
        ok(b.send().await)
    }
}

async fn json_of(r: reqwest::Response) -> Value {
    ok(r.json().await)
}

fn kari_position() -> String {
    format!("/employees/{}/positions/{}", guid(101), guid(201))
}

#[tokio::test]
async fn tokens_auth_and_media_type_are_checked() {
    let sim = ok(start(Seed::demo()).await);
    let bad = ok(reqwest::Client::new()
        .post(sim.token_url())
        .body("grant_type=client_credentials&client_id=demo-client&client_secret=nope&tenant_id=demo-tenant")
        .send()
        .await);
    assert_eq!(bad.status().as_u16(), 401);
    assert_eq!(json_of(bad).await["error"], json!("invalid_client"));

    let c = Client::login(&sim).await;
    assert_eq!(c.get("/employees").await.status().as_u16(), 200);
    let wrong_type = ok(c
        .http
        .get(format!("{}/employees", c.base))
        .bearer_auth(&c.token)
        .header("accept", "text/html")
        .send()
        .await);
    assert_eq!(wrong_type.status().as_u16(), 406);
    sim.expire_tokens();
    let expired = c.get("/employees").await;
    assert_eq!(expired.status().as_u16(), 401);
    assert!(json_of(expired).await["message"].is_string());
    sim.shutdown().await;
}

#[tokio::test]
async fn employees_filter_and_page() {
    let sim = ok(start(Seed::demo()).await);
    let c = Client::login(&sim).await;
    let page = json_of(c.get("/employees?page-size=2").await).await;
    assert_eq!(page["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(page["cursor"]["nextToken"], json!("2"));
    let last = json_of(c.get("/employees?page-size=2&cursor=4").await).await;
    assert_eq!(last["data"].as_array().map(Vec::len), Some(1));
    assert!(last.get("cursor").is_none());
    let ola = json_of(c.get("/employees?number=18").await).await;
    assert_eq!(ola["data"][0]["id"], json!(guid(102)));
    let per = json_of(c.get("/employees?email=PER@example.no").await).await;
    assert_eq!(per["data"][0]["number"], json!("19"));
    assert_eq!(
        c.get(&format!("/employees/{}", guid(999)))
            .await
            .status()
            .as_u16(),
        404
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_put_runs_as_a_job_and_moves_the_etag() {
    let sim = ok(start(Seed::demo()).await);
    let c = Client::login(&sim).await;
    let read = c.get(&kari_position()).await;
    let etag = read
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_default();
    let mut position = json_of(read).await;
    position["salaryInformation"] = json!([{"salaryType":"Period","contractSalaryType":"monthly",
        "monthlySalary":"52000.00","activeStart":"2026-01-01","activeEnd":null}]);
    assert_eq!(
        c.put(&kari_position(), None, &position)
            .await
            .status()
            .as_u16(),
        428
    );
    let accepted = c.put(&kari_position(), Some(&etag), &position).await;
    assert_eq!(accepted.status().as_u16(), 202);
    let location = accepted
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_default();
    assert_eq!(sim.write_count(), 1);
    assert!(
        sim.salary_entries(&guid(201)).is_empty(),
        "not before the job runs"
    );
    let job_path = location.trim_start_matches(&c.base).to_string();
    let first = json_of(c.get(&job_path).await).await;
    assert_eq!(first["status"], json!("Running"));
    assert_eq!(first["correlationId"], json!("corr-1"));
    let done = json_of(c.get(&job_path).await).await;
    assert_eq!(
        (done["status"].clone(), done["statusCode"].clone()),
        (json!("Succeeded"), json!(4))
    );
    let entries = sim.salary_entries(&guid(201));
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0].monthly_salary.map(|d| d.to_string()),
        Some("52000.00".into())
    );
    // The old ETag is stale now.
    assert_eq!(
        c.put(&kari_position(), Some(&etag), &position)
            .await
            .status()
            .as_u16(),
        412
    );
    let jobs = json_of(
        c.get(&format!("/employees/{}/positions/jobs", guid(101)))
            .await,
    )
    .await;
    assert_eq!(jobs["data"].as_array().map(Vec::len), Some(1));
    sim.shutdown().await;
}

#[tokio::test]
async fn faults_answer_as_armed() {
    let sim = ok(start(Seed::demo()).await);
    let c = Client::login(&sim).await;
    sim.arm(Fault::new(
        FaultKind::RateLimited {
            retry_after_s: Some(7),
        },
        1,
    ));
    let limited = c.get("/employees").await;
    assert_eq!(limited.status().as_u16(), 429);
    assert_eq!(
        limited
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("7")
    );
    sim.arm(Fault::new(
        FaultKind::RateLimited {
            retry_after_s: None,
        },
        1,
    ));
    let bare = c.get("/employees").await;
    assert_eq!(bare.status().as_u16(), 429);
    assert!(bare.headers().get("retry-after").is_none());
    sim.arm(Fault::new(FaultKind::Unavailable, 1));
    assert_eq!(c.get("/employees").await.status().as_u16(), 503);
    sim.arm(Fault::new(FaultKind::Drop, 1));
    let dropped = c
        .http
        .get(format!("{}/employees", c.base))
        .bearer_auth(&c.token)
        .send()
        .await;
    assert!(dropped.is_err());

    // Apply, then drop: the job exists although the client got no answer.
    let read = c.get(&kari_position()).await;
    let etag = read
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let position = json_of(read).await;
    sim.arm(Fault::new(FaultKind::ApplyThenDrop, 1).method("PUT"));
    let put = c
        .http
        .put(format!("{}{}", c.base, kari_position()))
        .bearer_auth(&c.token)
        .header("content-type", MEDIA_TYPE)
        .header("if-match", etag.unwrap_or_default())
        .body(position.to_string())
        .send()
        .await;
    assert!(put.is_err());
    assert!(sim.wait_for_writes(1, Duration::from_secs(1)).await);
    assert_eq!(sim.jobs().len(), 1);
    sim.shutdown().await;
}
