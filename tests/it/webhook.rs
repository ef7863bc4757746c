//! The signed webhook over real HTTP: every answer it gives, signature edge cases, and that
//! nothing secret reaches the log.

use crate::support::*;
use salary_sync::api::admin::Discovery;
use salary_sync::api::signature::sign;
use salary_sync::simulators::tripletex::Seed;
use serde_json::{json, Value};
use std::time::Duration;

const SECRET: &str = "whsec-it-5b1f0c";
const SECRET_ENV: &str = "IT_WEBHOOK_SECRET";

struct Hook {
    client: reqwest::Client,
    url: String,
}

impl Hook {
    async fn post_raw(
        &self,
        body: &[u8],
        timestamp: Option<i64>,
        signature: Option<String>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(t) = timestamp {
            req = req.header("x-salary-sync-timestamp", t.to_string());
        }
        if let Some(s) = signature {
            req = req.header("x-salary-sync-signature", s);
        }
        let r = req.send().await.unwrap_or_else(|e| panic!("webhook: {e}"));
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, body: &Value) -> (u16, Value) {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        let now = chrono::Utc::now().timestamp();
        self.post_raw(
            &bytes,
            Some(now),
            Some(sign(SECRET.as_bytes(), now, &bytes)),
        )
        .await
    }
}

fn kari(event_id: &str, amount: &str) -> Value {
    event(
        event_id,
        "created",
        "2026-11-20T09:00:00Z",
        "sal-kari",
        json!({"id": "k", "payroll_employee_id": "101"}),
        amount,
        "NOK",
        "monthly",
        "2026-01-01",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_webhook_answer_and_signature_edge_case() {
    let sim = start_sim(Seed::demo()).await;
    let control = sim.control();
    let webhook = format!(
        "[webhook]\nlisten = \"127.0.0.1:0\"\nsecret = {{ env = \"{SECRET_ENV}\" }}\nbody_len_max = 4096\nreplay_window_s = 60\n"
    );
    let setup = setup_with(&control.base_url(), 50, &webhook);
    // The daemon child inherits the secret through its environment.
    std::env::set_var(SECRET_ENV, SECRET);
    let daemon = DaemonProcess::spawn_with(&setup, "daemon.log", &["--log-format", "json"]);
    let admin = Admin::wait(&setup.store, daemon.child.id()).await;
    let addr = Discovery::read(&setup.store)
        .and_then(|d| d.webhook)
        .unwrap_or_else(|| panic!("webhook address"));
    let hook = Hook {
        client: reqwest::Client::new(),
        url: format!("http://{addr}/v1/salary-events"),
    };

    // 202: accepted, durable; 200: the same again.
    let (status, body) = hook.post(&kari("w1", "52000.00")).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["results"][0]["outcome"], "accepted");
    let (status, body) = hook.post(&kari("w1", "52000.00")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["outcome"], "duplicate");
    // 409: the event id reused with a different body; nothing overwritten.
    let (status, body) = hook.post(&kari("w1", "99999.00")).await;
    assert_eq!(status, 409, "{body}");
    // 400: not JSON. 422: invalid content, naming the field; a bad batch stores nothing.
    let now = chrono::Utc::now().timestamp();
    let (status, body) = hook
        .post_raw(
            b"{not json",
            Some(now),
            Some(sign(SECRET.as_bytes(), now, b"{not json")),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let mut negative = kari("w2", "1");
    negative["salary"]["amount"] = json!("-5");
    let (status, body) = hook.post(&json!([kari("w3", "1000"), negative])).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["results"][1]["error"]
            .as_str()
            .unwrap_or("")
            .contains("salary.amount"),
        "{body}"
    );
    for (field, value) in [
        ("currency", json!("kr")),
        ("period_unit", json!("weekly")),
        ("end_date", json!("2020-01-01")),
    ] {
        let mut bad = kari("w4", "1");
        bad["salary"][field] = value;
        let (status, body) = hook.post(&bad).await;
        assert_eq!(status, 422, "{field}: {body}");
    }
    // 404: an integration this daemon does not serve.
    let mut stranger = kari("w5", "1");
    stranger["integration_id"] = json!("someone-else");
    let (status, body) = hook.post(&stranger).await;
    assert_eq!(status, 404, "{body}");
    // 413: too large, refused before it is read whole.
    let big = json!({"padding": "x".repeat(8192)});
    let (status, _) = hook.post(&big).await;
    assert_eq!(status, 413);

    // 401: missing, wrong, stale, and a replay of a valid signature over another body.
    let bytes = serde_json::to_vec(&kari("w6", "1")).unwrap_or_default();
    let now = chrono::Utc::now().timestamp();
    let good = sign(SECRET.as_bytes(), now, &bytes);
    assert_eq!(hook.post_raw(&bytes, None, Some(good.clone())).await.0, 401);
    assert_eq!(hook.post_raw(&bytes, Some(now), None).await.0, 401);
    assert_eq!(
        hook.post_raw(&bytes, Some(now), Some(sign(b"wrong-secret", now, &bytes)))
            .await
            .0,
        401
    );
    let old = now - 3600;
    assert_eq!(
        hook.post_raw(
            &bytes,
            Some(old),
            Some(sign(SECRET.as_bytes(), old, &bytes))
        )
        .await
        .0,
        401
    );
    let other = serde_json::to_vec(&kari("w7", "2")).unwrap_or_default();
    assert_eq!(
        hook.post_raw(&other, Some(now), Some(good.clone())).await.0,
        401
    );
    assert_eq!(
        hook.post_raw(&bytes, Some(now), Some(good)).await.0,
        202,
        "the genuine request still works"
    );

    // Activation: disabled -> 409 and nothing stored; re-enabled later -> an older change is
    // skipped (logged, counted), a newer one is accepted.
    let (code, out, err) = cli(&setup, &["integrations", "disable", INTEGRATION]);
    assert_eq!(code, 0, "{out}{err}");
    let (status, body) = hook.post(&kari("w8", "1")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["results"][0]["outcome"], "not-enabled");
    let (code, out, err) = cli(
        &setup,
        &[
            "integrations",
            "enable",
            INTEGRATION,
            "--from",
            "2026-11-21T00:00:00Z",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let (status, body) = hook.post(&kari("w9", "1")).await;
    assert_eq!(
        (status, body["results"][0]["outcome"].as_str()),
        (200, Some("skipped")),
        "{body}"
    );
    let mut newer = kari("w10", "61000");
    newer["occurred_at"] = json!("2026-11-22T08:00:00Z");
    newer["kind"] = json!("updated");
    let (status, body) = hook.post(&newer).await;
    assert_eq!(
        status, 202,
        "an update after activation of an older salary is sent: {body}"
    );
    let (code, out, _) = cli(&setup, &["integrations"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("enabled")
            && out.contains("2026-11-21T00:00:00+00:00")
            && out.trim_end().ends_with('1'),
        "{out}"
    );
    let (_, out, _) = cli(&setup, &["errors"]);
    assert!(out.contains("before-activation"), "{out}");

    // Only the accepted events became instances, and they sync.
    let done = admin.wait_all_terminal(3, Duration::from_secs(30)).await;
    assert_eq!(done.len(), 3, "w1, w6 and w10 only");
    let log_path = daemon.log.clone();
    assert_eq!(daemon.terminate(), Some(0));
    let log = std::fs::read_to_string(log_path).unwrap_or_default();
    assert!(
        log.contains("webhook refused: bad signature"),
        "refusals are logged"
    );
    assert!(!log.contains(SECRET), "the webhook secret reached the log");
    // `--log-format json`: one flat JSON object per line; transitions carry their fields.
    let lines: Vec<Value> = log
        .lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"))
        })
        .collect();
    assert!(lines.iter().all(|l| l["level"].is_string()));
    let transition = lines
        .iter()
        .find(|l| l["message"] == "transition")
        .unwrap_or_else(|| panic!("no transition logged"));
    for field in ["workflow_id", "integration", "salary", "state", "event"] {
        assert!(
            transition[field].is_string(),
            "transition log lacks {field}: {transition}"
        );
    }
    sim.shutdown().await;
}
