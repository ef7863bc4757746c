//! Hostile input (issue 5, item 4): short proptest versions of every fuzz property (the same
//! checkers the cargo-fuzz targets in `fuzz/` call, from `salary_sync::hostile`), the corpus of
//! bad events in `tests/fixtures/bad-events/` posted through the signed webhook with the exact
//! answer each must get, damaged stores, and the golden store written by record format v1.
//!
//! `SALARY_SYNC_PROPTEST_CASES=N` runs each property on N cases (default 256, what CI runs).

use crate::support::*;
use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use proptest::test_runner::{Config as PropConfig, TestRunner};
use salary_sync::api::admin::Discovery;
use salary_sync::api::signature::sign;
use salary_sync::domain::{FailureCode, SalaryChange, State, Workflow, WorkflowId};
use salary_sync::hostile;
use salary_sync::simulators::tripletex::Seed;
use salary_sync::storage::{codec, ErrorLogEntry, IntegrationSwitch, OwnedRecord};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000, 0)
        .single()
        .unwrap_or_default()
}

fn cases() -> u32 {
    std::env::var("SALARY_SYNC_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn runner() -> TestRunner {
    TestRunner::new(PropConfig {
        cases: cases(),
        failure_persistence: None,
        ..PropConfig::default()
    })
}

fn sample() -> Value {
    serde_json::from_str(hostile::SAMPLE_EVENT).unwrap_or_else(|e| panic!("sample: {e}"))
}

// ---- The fuzz properties, short ----

/// What a hostile sender might put in any field: every JSON type, and strings close to valid.
fn json_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::from),
        "[+-]?[0-9_]{0,12}(\\.[0-9]{0,6})?(e[0-9])?".prop_map(Value::from),
        "[+-]?[0-9]{1,6}-[0-9]{1,2}-[0-9]{1,2}".prop_map(Value::from),
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(Z|[+-][0-9]{2}:[0-9]{2}|\\.[0-9]{1,12}Z)"
            .prop_map(Value::from),
        "[A-Za-z]{2,4}".prop_map(Value::from),
        prop::sample::select(vec![
            "monthly", "yearly", "hourly", "created", "updated", "deleted", "2026-12-31",
            "2025-12-31", "NOK", "SEK", "-0", "0.0000", "1000000000", " ", "\u{0}",
        ])
        .prop_map(Value::from),
        Just(json!({})),
        Just(json!([])),
    ]
}

const FIELDS: &[&str] = &[
    "event_id",
    "integration_id",
    "kind",
    "occurred_at",
    "salary",
    "salary.id",
    "salary.employee",
    "salary.employee.id",
    "salary.employee.payroll_employee_id",
    "salary.employee.employee_number",
    "salary.employee.email",
    "salary.amount",
    "salary.currency",
    "salary.period_unit",
    "salary.start_date",
    "salary.end_date",
    "salary.note",
];

/// Sets (or with `None` removes) a dotted path; skips a path whose parent is not an object.
fn set(v: &mut Value, path: &str, value: Option<Value>) {
    let mut parts: Vec<&str> = path.split('.').collect();
    let Some(last) = parts.pop() else { return };
    let mut at = v;
    for p in parts {
        match at.get_mut(p) {
            Some(next) => at = next,
            None => return,
        }
    }
    if let Some(obj) = at.as_object_mut() {
        match value {
            Some(value) => obj.insert(last.to_owned(), value),
            None => obj.remove(last),
        };
    }
}

fn mutated_event() -> impl Strategy<Value = Value> {
    prop::collection::vec(
        (prop::sample::select(FIELDS), prop::option::of(json_value())),
        0..4,
    )
    .prop_map(|edits| {
        let mut v = sample();
        for (path, value) in edits {
            set(&mut v, path, value);
        }
        v
    })
}

#[test]
fn hostile_event_bodies_keep_the_fuzz_properties() {
    // Not vacuous: the sample alone is accepted and checked.
    assert_eq!(hostile::event_body(hostile::SAMPLE_EVENT.as_bytes()), Ok(1));
    let result = runner().run(&prop::collection::vec(any::<u8>(), 0..300), |body| {
        prop_assert!(
            hostile::event_body(&body).is_ok(),
            "{:?}",
            hostile::event_body(&body)
        );
        Ok(())
    });
    assert!(result.is_ok(), "arbitrary bytes: {result:?}");
    let accepted = std::cell::Cell::new(0usize);
    let result = runner().run(
        &(prop::collection::vec(mutated_event(), 1..4), any::<bool>()),
        |(events, batch)| {
            let body = if batch {
                Value::Array(events)
            } else {
                events.into_iter().next().unwrap_or_default()
            };
            let bytes = serde_json::to_vec(&body).unwrap_or_default();
            match hostile::event_body(&bytes) {
                Ok(n) => accepted.set(accepted.get() + n),
                Err(e) => prop_assert!(false, "{e}\nbody: {body}"),
            }
            Ok(())
        },
    );
    assert!(result.is_ok(), "mutated events: {result:?}");
    assert!(
        accepted.get() > 0,
        "no mutated event was accepted: the property ran on refusals only"
    );
}

#[test]
fn hostile_signature_headers_keep_the_fuzz_properties() {
    let header = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..80),
        "[+ -]?[0-9]{1,12} ?".prop_map(String::into_bytes),
        Just(b"1800000000".to_vec()),
        Just(b"+1800000000".to_vec()),
        Just(b"01800000000".to_vec()),
    ];
    let result = runner().run(
        &(
            prop::collection::vec(any::<u8>(), 0..24),
            header,
            0usize..6,
            prop::collection::vec(any::<u8>(), 0..64),
            0i64..600,
        ),
        |(secret, ts, variant, body, window)| {
            // Signatures from garbage to genuine, and genuine ones re-spelled.
            let t: i64 = String::from_utf8_lossy(&ts).trim().parse().unwrap_or(0);
            let genuine = sign(&secret, t, &body);
            let sig = match variant {
                0 => genuine.clone(),
                1 => genuine.to_ascii_uppercase().replace("SHA256=", "sha256="),
                2 => genuine.replacen('0', "+0", 1).replacen("+0", "+", 1),
                3 => format!(" {genuine} "),
                4 => genuine.replace("sha256=", "sha256=+"),
                _ => String::from_utf8_lossy(&body).into_owned(),
            };
            let verdict =
                hostile::webhook_signature(&secret, &ts, sig.as_bytes(), &body, now(), window);
            prop_assert!(verdict.is_ok(), "{verdict:?} ts={ts:?} sig={sig:?}");
            Ok(())
        },
    );
    assert!(result.is_ok(), "{result:?}");
}

const CONFIG: &str = r#"store = "/tmp/never-opened"
workers = {workers}
[retry]
attempts_max = {attempts}
initial_delay_ms = {initial}
delay_ms_max = {max}
multiplier = {multiplier}
randomization = {randomization}
auth_wait_ms = {auth}
[webhook]
listen = "127.0.0.1:0"
secret = { env = "X" }
replay_window_s = {window}
body_len_max = {body}
[[integration]]
id = "acme-tripletex"
system = "tripletex"
base_url = "http://127.0.0.1:1"
consumer_token = { env = "C" }
employee_token = { env = "E" }
"#;

#[test]
fn hostile_config_files_keep_the_fuzz_properties() {
    let result = runner().run(&".{0,200}", |text| {
        prop_assert!(hostile::config_text(&text, now()).is_ok());
        Ok(())
    });
    assert!(result.is_ok(), "{result:?}");
    let big = || {
        prop_oneof![
            6 => 0u64..100_000,
            1 => any::<u64>(),
            1 => Just(u64::MAX),
            1 => Just(1u64 << 62)
        ]
    };
    let accepted = std::cell::Cell::new(0usize);
    let result = runner().run(
        &(
            (0u32..4200, 0u32..100, big(), big(), big()),
            (
                0.5f64..11.0,
                -0.2f64..1.1,
                0u64..4000,
                0u64..4000,
                0u64..70_000_000,
            ),
        ),
        |(
            (workers, attempts, initial, max, auth),
            (multiplier, randomization, window, _, body),
        )| {
            let text = CONFIG
                .replace("{workers}", &workers.to_string())
                .replace("{attempts}", &attempts.to_string())
                .replace("{initial}", &initial.min(i64::MAX as u64).to_string())
                .replace("{max}", &max.min(i64::MAX as u64).to_string())
                .replace("{multiplier}", &format!("{multiplier:?}"))
                .replace("{randomization}", &format!("{randomization:?}"))
                .replace("{auth}", &auth.min(i64::MAX as u64).to_string())
                .replace("{window}", &(window % 5000).to_string())
                .replace("{body}", &(body % (128 * 1024 * 1024)).to_string());
            match hostile::config_text(&text, now()) {
                Ok(ok) => accepted.set(accepted.get() + usize::from(ok)),
                Err(e) => prop_assert!(false, "{e}\n{text}"),
            }
            Ok(())
        },
    );
    assert!(result.is_ok(), "{result:?}");
    assert!(accepted.get() > 0, "no generated config was accepted");
}

/// One real record of each stored type, encoded by the current code.
fn stored_samples() -> Vec<Vec<u8>> {
    let change = SalaryChange::from_json(&sample()).unwrap_or_else(|e| panic!("{e}"));
    let (wf, entry) = Workflow::accept(WorkflowId(7), change.clone(), now());
    let failure = salary_sync::domain::Failure::permanent(FailureCode::Overlap, "row 4 overlaps");
    vec![
        codec::encode(&wf),
        codec::encode(&entry),
        codec::encode(&change),
        codec::encode(&ErrorLogEntry {
            at: now(),
            integration: change.integration_id.clone(),
            workflow_id: Some(wf.id),
            salary_id: change.salary.id.clone(),
            failure,
        }),
        codec::encode(&IntegrationSwitch {
            enabled: true,
            activated_at: Some(now()),
            changed_at: now(),
            skipped: 3,
        }),
        codec::encode(&OwnedRecord {
            record: None,
            applied_occurred_at: now(),
        }),
    ]
}

#[test]
fn hostile_stored_records_keep_the_fuzz_properties() {
    let samples = stored_samples();
    for s in &samples {
        assert_eq!(hostile::stored_record(s).map(|n| n > 0), Ok(true));
    }
    let result = runner().run(&prop::collection::vec(any::<u8>(), 0..200), |bytes| {
        prop_assert!(hostile::stored_record(&bytes).is_ok());
        Ok(())
    });
    assert!(result.is_ok(), "arbitrary bytes: {result:?}");
    // Real records damaged: bytes flipped, cut short, version byte changed, bytes inserted.
    let result = runner().run(
        &(
            0..samples.len(),
            prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..4),
        ),
        |(which, edits)| {
            let mut bytes = samples[which].clone();
            for (at, byte, how) in edits {
                if bytes.is_empty() {
                    break;
                }
                let i = at.index(bytes.len());
                match how {
                    0 => bytes[i] = byte,
                    1 => bytes.truncate(i),
                    2 => bytes.insert(i, byte),
                    _ => bytes[0] = byte,
                }
            }
            let verdict = hostile::stored_record(&bytes);
            prop_assert!(verdict.is_ok(), "{verdict:?}");
            Ok(())
        },
    );
    assert!(result.is_ok(), "damaged records: {result:?}");
}

// ---- The corpus of bad events through the real daemon's signed webhook ----

const SECRET: &str = "whsec-hostile-8c1d";
const SECRET_ENV: &str = "IT_HOSTILE_WEBHOOK_SECRET";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

async fn post_signed(
    client: &reqwest::Client,
    url: &str,
    body: &[u8],
    content_type: &str,
) -> (u16, Value) {
    let t = Utc::now().timestamp();
    let r = client
        .post(url)
        .header("content-type", content_type)
        .header("x-salary-sync-timestamp", t.to_string())
        .header("x-salary-sync-signature", sign(SECRET.as_bytes(), t, body))
        .body(body.to_vec())
        .send()
        .await
        .unwrap_or_else(|e| panic!("webhook: {e}"));
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bad_events_corpus_gets_its_exact_answers_and_stores_nothing() {
    let sim = start_sim(Seed::demo()).await;
    let webhook = format!(
        "[webhook]\nlisten = \"127.0.0.1:0\"\nsecret = {{ env = \"{SECRET_ENV}\" }}\nbody_len_max = 4096\nreplay_window_s = 60\n"
    );
    let setup = setup_with(&sim.control().base_url(), 50, &webhook);
    std::env::set_var(SECRET_ENV, SECRET);
    let daemon = DaemonProcess::spawn(&setup, "daemon.log");
    let admin = Admin::wait(&setup.store, daemon.child.id()).await;
    let addr = Discovery::read(&setup.store)
        .and_then(|d| d.webhook)
        .unwrap_or_else(|| panic!("webhook address"));
    let url = format!("http://{addr}/v1/salary-events");
    let client = reqwest::Client::new();
    let dir = fixtures().join("bad-events");
    let read = |name: &str| {
        std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
    };

    // The one event that is stored: the duplicate case collides with it.
    let (status, body) =
        post_signed(&client, &url, &read("baseline.json"), "application/json").await;
    assert_eq!(status, 202, "baseline: {body}");
    let manifest: Vec<Value> =
        serde_json::from_slice(&read("manifest.json")).unwrap_or_else(|e| panic!("manifest: {e}"));
    assert!(
        manifest.len() >= 30,
        "the corpus shrank: {}",
        manifest.len()
    );
    let mut failures = Vec::new();
    for case in &manifest {
        let file = case["file"].as_str().unwrap_or_default();
        let content_type = case["content_type"].as_str().unwrap_or("application/json");
        let (status, body) = post_signed(&client, &url, &read(file), content_type).await;
        let mut wrong = Vec::new();
        if Some(u64::from(status)) != case["status"].as_u64() {
            wrong.push(format!("status {status}, expected {}", case["status"]));
        }
        if let Some(prefix) = case["error_starts"].as_str() {
            if !body["error"]
                .as_str()
                .unwrap_or_default()
                .starts_with(prefix)
            {
                wrong.push(format!("error does not start with {prefix:?}"));
            }
        }
        if let Some(index) = case["index"].as_u64() {
            let item = &body["results"][index as usize];
            if item["outcome"] != case["outcome"] {
                wrong.push(format!(
                    "outcome {}, expected {}",
                    item["outcome"], case["outcome"]
                ));
            }
            if let Some(field) = case["field"].as_str() {
                let error = item["error"].as_str().unwrap_or_default();
                if item["field"] != field || !error.starts_with(&format!("{field}: ")) {
                    wrong.push(format!(
                        "field {} / error {error:?}, expected {field}",
                        item["field"]
                    ));
                }
            }
        }
        if let Some(others) = case["others"].as_str() {
            let results = body["results"].as_array().cloned().unwrap_or_default();
            let index = case["index"].as_u64().unwrap_or(u64::MAX) as usize;
            for (i, item) in results.iter().enumerate().filter(|(i, _)| *i != index) {
                if item["outcome"] != others || !item["workflow_id"].is_null() {
                    wrong.push(format!(
                        "item {i} is {item}, expected {others} and no workflow"
                    ));
                }
            }
        }
        if body.get("error").is_none() {
            wrong.push("no JSON error in the answer".into());
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "{file}: {} — answer {status} {body}",
                wrong.join("; ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Nothing but the baseline was stored, and the duplicate did not overwrite it.
    let instances = admin.instances().await.unwrap_or_default();
    assert_eq!(instances.len(), 1, "{instances:#?}");
    assert_eq!(instances[0].change.event_id.as_str(), "bad-dup");
    assert_eq!(
        instances[0].change.salary.pay.amount.to_string(),
        "52000.00"
    );
    let (code, out, err) = cli(&setup, &["errors"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        !out.contains("bad-"),
        "a rejected event reached the error log: {out}"
    );
    let log_path = daemon.log.clone();
    assert_eq!(daemon.terminate(), Some(0));
    let log = std::fs::read_to_string(log_path).unwrap_or_default();
    assert!(!log.contains("panicked"), "{log}");
    assert!(!log.contains(SECRET));
    sim.shutdown().await;
}

// ---- Damaged stores ----

/// Events for salaries of the demo company's employees 101, 102 and 105 (each sent), and a
/// fourth one (quarantined before it runs).
fn four_events() -> Value {
    let ev = |id: &str, salary: &str, employee: &str| {
        event(
            id,
            "created",
            "2026-11-20T09:00:00Z",
            salary,
            json!({"id": employee, "payroll_employee_id": employee}),
            "41000.00",
            "NOK",
            "monthly",
            "2026-01-01",
        )
    };
    json!([
        ev("dmg-a", "sal-a", "101"),
        ev("dmg-b", "sal-b", "102"),
        ev("dmg-c", "sal-c", "105"),
        ev("dmg-d", "sal-d", "101"),
    ])
}

/// Ingests the events with the daemon stopped (`submit` opens the store directly).
fn submit_offline(setup: &Setup, events: &Value) {
    let file = setup.dir.path().join("events.json");
    std::fs::write(&file, events.to_string()).unwrap_or_else(|e| panic!("{e}"));
    let path = file.display().to_string();
    let (code, out, err) = cli(setup, &["submit", &path]);
    assert_eq!(code, 0, "submit: {out}{err}");
}

/// The stored instances by salary id: (workflow id, encoded record).
fn stored_by_salary(db: &sled::Db) -> std::collections::HashMap<String, (u64, Vec<u8>)> {
    let tree = db.open_tree("instances").unwrap_or_else(|e| panic!("{e}"));
    tree.iter()
        .map(|kv| {
            let (k, v) = kv.unwrap_or_else(|e| panic!("{e}"));
            let wf: Workflow = codec::decode(&v).unwrap_or_else(|e| panic!("{e}"));
            let id = u64::from_be_bytes(k.as_ref().try_into().unwrap_or_default());
            (wf.change.salary.id.to_string(), (id, v.to_vec()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_corrupt_instance_history_and_future_version_are_reported_and_the_rest_runs() {
    let sim = start_sim(Seed::demo()).await;
    let setup = setup(&sim.control().base_url(), 50);
    submit_offline(&setup, &four_events());
    let (a, b, c, d) = {
        let db = sled::open(&setup.store).unwrap_or_else(|e| panic!("{e}"));
        let by = stored_by_salary(&db);
        let id = |s: &str| {
            by.get(s)
                .cloned()
                .unwrap_or_else(|| panic!("{s} not stored"))
        };
        let (a, b, c, d) = (id("sal-a"), id("sal-b"), id("sal-c"), id("sal-d"));
        let instances = db.open_tree("instances").unwrap_or_else(|e| panic!("{e}"));
        let history = db.open_tree("history").unwrap_or_else(|e| panic!("{e}"));
        // a: garbled; d: a record of a future format version; b: its first history entry garbled.
        instances
            .insert(a.0.to_be_bytes(), &[1u8, 0xff, 0xfe][..])
            .unwrap_or_else(|e| panic!("{e}"));
        let mut future = d.1.clone();
        future[0] = 9;
        instances
            .insert(d.0.to_be_bytes(), future)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut key = b.0.to_be_bytes().to_vec();
        key.extend_from_slice(&0u32.to_be_bytes());
        history
            .insert(key, &[1u8, 0][..])
            .unwrap_or_else(|e| panic!("{e}"));
        db.flush().unwrap_or_else(|e| panic!("{e}"));
        (a.0, b.0, c.0, d.0)
    };

    let daemon = DaemonProcess::spawn(&setup, "daemon.log");
    let admin = Admin::wait(&setup.store, daemon.child.id()).await;
    let done = admin.wait_all_terminal(2, Duration::from_secs(30)).await;
    let mut ids: Vec<u64> = done.iter().map(|w| w.id.0).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![b, c], "only the readable instances are listed");
    assert!(done.iter().all(|w| w.state == State::Sent), "{done:#?}");
    // The dump says what was moved aside and why, while the daemon runs.
    let mut stderr = String::new();
    for _ in 0..100 {
        let (code, _, err) = cli(&setup, &["dump"]);
        assert_eq!(code, 0, "{err}");
        stderr = err;
        if stderr.contains(&format!("wf-{a} ")) && stderr.contains(&format!("wf-{d} ")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        stderr.contains("2 unreadable record(s) are in quarantine"),
        "{stderr}"
    );
    assert!(
        stderr.contains("record format version 9 is not known to this build (it knows up to 1)"),
        "{stderr}"
    );
    // The damaged history entry is named by `show`; the instance itself ran to `sent`.
    let (code, out, err) = cli(&setup, &["show", &format!("wf-{b}")]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("history") && err.contains("is unreadable"),
        "{err}"
    );
    let log_path = daemon.log.clone();
    assert_eq!(daemon.terminate(), Some(0));
    let log = std::fs::read_to_string(log_path).unwrap_or_default();
    for id in [a, d] {
        assert!(
            log.lines()
                .any(|l| l.contains("unreadable instance quarantined")
                    && l.contains(&format!("wf-{id}"))),
            "no log line for wf-{id}: {log}"
        );
    }
    assert!(!log.contains("panicked"), "{log}");
    // Stopped: the same report from the store directly, and the bytes are kept.
    let (code, _, err) = cli(&setup, &["dump"]);
    assert_eq!(code, 0);
    assert!(err.contains("2 unreadable record(s)"), "{err}");
    let db = sled::open(&setup.store).unwrap_or_else(|e| panic!("{e}"));
    let quarantine = db.open_tree("quarantine").unwrap_or_else(|e| panic!("{e}"));
    let raw = quarantine
        .iter()
        .filter_map(Result::ok)
        .filter(|(k, _)| k.ends_with(b"\0raw"))
        .count();
    assert_eq!(raw, 2, "the unreadable bytes are kept for a human");
    sim.shutdown().await;
}

/// A store directory with `n` changes, each ingested in its own durable group commit.
fn store_with_changes(dir: &Path, n: usize) {
    use salary_sync::storage::Store;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(async {
        let store = Store::open(dir).unwrap_or_else(|e| panic!("{e}"));
        let change = SalaryChange::from_json(&sample()).unwrap_or_else(|e| panic!("{e}"));
        store
            .set_integration(
                change.integration_id.clone(),
                true,
                Utc.timestamp_opt(0, 0).single(),
                now(),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for i in 0..n {
            let mut c = change.clone();
            c.event_id = salary_sync::domain::EventId::parse(&format!("e{i}"))
                .unwrap_or_else(|e| panic!("{e}"));
            store
                .ingest(vec![c], now())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
    });
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{e}"));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{e}")) {
        let entry = entry.unwrap_or_else(|e| panic!("{e}"));
        let target = to.join(entry.file_name());
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

/// sled 0.34.7 recovers a truncated or garbled data file silently to an earlier point (it
/// opened every damaged copy below with fewer instances and no error). The store keeps the
/// count of acknowledged commits beside sled's file and refuses to open when sled has fewer.
#[test]
fn hostile_a_truncated_or_garbled_data_file_is_refused_never_silently_shorter() {
    use salary_sync::storage::{Error, Filter, Store};
    const N: usize = 50;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let base = dir.path().join("base");
    store_with_changes(&base, N);
    let len = std::fs::metadata(base.join("db"))
        .map(|m| m.len())
        .unwrap_or(0);
    type Damage = Box<dyn Fn(&Path)>;
    let mut damages: Vec<(String, Damage)> = vec![("none".into(), Box::new(|_: &Path| {}))];
    for pct in [0u64, 10, 50, 90, 99] {
        damages.push((
            format!("db truncated to {pct}%"),
            Box::new(move |p: &Path| {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(p.join("db"))
                    .unwrap_or_else(|e| panic!("{e}"));
                f.set_len(len * pct / 100).unwrap_or_else(|e| panic!("{e}"));
            }),
        ));
    }
    for pct in [5u64, 50, 95] {
        damages.push((
            format!("64 bytes garbled at {pct}%"),
            Box::new(move |p: &Path| {
                let mut b = std::fs::read(p.join("db")).unwrap_or_else(|e| panic!("{e}"));
                let at = (len * pct / 100) as usize;
                let end = (at + 64).min(b.len());
                for x in &mut b[at..end] {
                    *x ^= 0x5a;
                }
                std::fs::write(p.join("db"), b).unwrap_or_else(|e| panic!("{e}"));
            }),
        ));
    }
    damages.push((
        "db deleted".into(),
        Box::new(|p: &Path| std::fs::remove_file(p.join("db")).unwrap_or_else(|e| panic!("{e}"))),
    ));
    let mut refused = 0;
    let mut outcomes = Vec::new();
    for (i, (name, damage)) in damages.iter().enumerate() {
        let copy = dir.path().join(format!("copy-{i}"));
        copy_dir(&base, &copy);
        damage(&copy);
        let opened = std::panic::catch_unwind(|| match Store::open(&copy) {
            Ok(store) => {
                let items: Vec<_> = store.list(&Filter::default()).collect();
                let readable = items.iter().filter(|r| r.is_ok()).count();
                Ok((readable, items.len()))
            }
            Err(e) => Err(e),
        });
        let outcome = match opened {
            Err(_) => panic!("{name}: opening the store panicked"),
            Ok(Ok((readable, all))) => {
                // Opened: only when nothing acknowledged is missing.
                assert_eq!((readable, all), (N, N), "{name}: opened with data missing");
                format!("{name}: opened, all {N} instances")
            }
            Ok(Err(Error::Lost {
                acknowledged,
                found,
                path,
            })) => {
                refused += 1;
                let text = Error::Lost {
                    acknowledged,
                    found,
                    path: path.clone(),
                }
                .to_string();
                assert!(acknowledged > found, "{name}: {text}");
                assert!(
                    text.contains("restore the directory") && text.contains(&path),
                    "{text}"
                );
                format!("{name}: refused, {found} of {acknowledged} commits found")
            }
            Ok(Err(other)) => {
                refused += 1;
                format!("{name}: refused: {other}")
            }
        };
        outcomes.push(outcome);
    }
    eprintln!("{}", outcomes.join("\n"));
    assert!(
        outcomes[0].contains("opened"),
        "an undamaged copy opens: {outcomes:?}"
    );
    assert!(refused >= damages.len() - 2, "{outcomes:#?}");
}

/// The same through the binary: the daemon and the CLI refuse to start on a store whose data
/// file is gone
/// with a message that says what happened and what to do, exit 1, and no panic.
#[test]
fn hostile_the_daemon_refuses_a_store_that_lost_its_data_file_and_says_what_to_do() {
    let setup = setup("http://127.0.0.1:9", 50);
    submit_offline(&setup, &four_events());
    // A few commits sit at the start of sled's preallocated file, so cutting it in half can
    // lose nothing: cut it to nothing (sled then opens it empty: lost writes), then remove it
    // (sled then finds its snapshot without the log: damaged files).
    let db = setup.store.join("db");
    let damages: [(&str, &dyn Fn()); 2] = [
        ("has lost acknowledged writes", &|| {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&db)
                .and_then(|f| f.set_len(0))
                .unwrap_or_else(|e| panic!("{e}"))
        }),
        ("files are damaged", &|| {
            std::fs::remove_file(&db).unwrap_or_else(|e| panic!("{e}"))
        }),
    ];
    for (says, damage) in damages {
        damage();
        for args in [&["run"][..], &["dump"][..]] {
            let (code, out, err) = cli(&setup, args);
            assert_eq!(code, 1, "{args:?}: {out}{err}");
            // sled reports some damage itself (its snapshot and log disagree); the rest the
            // acknowledged-commit check catches. Either way: refused, with what to do.
            let _ = says;
            assert!(
                err.contains("has lost acknowledged writes") || err.contains("files are damaged"),
                "{err}"
            );
            assert!(err.contains("restore the directory"), "{err}");
            assert!(err.contains(&setup.store.display().to_string()), "{err}");
            assert!(!err.contains("panicked"), "{err}");
        }
    }
}

// ---- The golden store written by record format v1 ----

fn golden_dir() -> PathBuf {
    fixtures().join("golden-store-v1")
}

/// The golden store's changes: A runs (left in matched-to-position), B failed, C pending, D sent,
/// E occurred before activation (skipped, in the error log).
fn golden_change(event: &str, salary: &str, employee: &str, occurred: &str) -> SalaryChange {
    let mut v = sample();
    v["event_id"] = json!(event);
    v["occurred_at"] = json!(occurred);
    v["salary"]["id"] = json!(salary);
    v["salary"]["employee"] = json!({"id": employee, "payroll_employee_id": employee});
    v["salary"]["start_date"] = json!("2026-01-01");
    SalaryChange::from_json(&v).unwrap_or_else(|e| panic!("{e}"))
}

/// Writes `tests/fixtures/golden-store-v1/` with the current code (record format v1). Runs
/// only with `SALARY_SYNC_WRITE_GOLDEN=1`; the committed store must never be rewritten by a
/// later format, since it proves that v1 stores still open.
#[test]
fn hostile_golden_store_v1_writer() {
    use salary_sync::domain::{
        step, Currency, Failure, Input, PayrollRecord, Period, Position, WriteReport,
    };
    use salary_sync::storage::{IngestOutcome, Store};
    if std::env::var("SALARY_SYNC_WRITE_GOLDEN").as_deref() != Ok("1") {
        return;
    }
    assert_eq!(codec::FORMAT_VERSION, 1, "the golden store is the v1 store");
    let dir = golden_dir();
    let _ = std::fs::remove_dir_all(&dir);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let policy = salary_sync::engine::retry::RetrySettings::default();
    rt.block_on(async {
        let store = Store::open(&dir).unwrap_or_else(|e| panic!("{e}"));
        let t = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .map(|d| d.with_timezone(&Utc))
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let at = t("2026-11-20T10:00:00Z");
        let integration = salary_sync::domain::IntegrationId::parse(INTEGRATION)
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .set_integration(integration, true, Some(t(ACTIVATED_AT)), at)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let changes = vec![
            golden_change("gold-a", "sal-gold-a", "101", "2026-11-20T09:00:00Z"),
            golden_change("gold-b", "sal-gold-b", "104", "2026-11-20T09:00:00Z"),
            golden_change("gold-c", "sal-gold-c", "102", "2026-11-20T09:00:00Z"),
            golden_change("gold-d", "sal-gold-d", "105", "2026-11-20T09:00:00Z"),
            golden_change("gold-e", "sal-gold-e", "101", "2025-06-01T09:00:00Z"),
        ];
        let out = store
            .ingest(changes, at)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let id = |i: usize| match out[i] {
            IngestOutcome::Accepted(id) => id,
            other => panic!("{other:?}"),
        };
        assert_eq!(out[4], IngestOutcome::Skipped);
        let run = |id: WorkflowId, inputs: Vec<Input>| {
            let store = &store;
            let policy = &policy;
            async move {
                for input in inputs {
                    let wf = store
                        .get(id)
                        .ok()
                        .flatten()
                        .unwrap_or_else(|| panic!("{id}"));
                    let tr = step(&wf, input, at, policy).unwrap_or_else(|e| panic!("{e}"));
                    store.commit(tr).await.unwrap_or_else(|e| panic!("{e}"));
                }
            }
        };
        let position = |employee: &str, employment: &str, start: &str| Position {
            employee_id: employee.into(),
            employment_id: employment.into(),
            period: Period {
                start: start.parse().unwrap_or_default(),
                end: None,
            },
        };
        run(
            id(0),
            vec![Input::Matched(position("101", "201", "2020-01-01"))],
        )
        .await;
        run(
            id(1),
            vec![Input::StepFailed(Failure::permanent(
                FailureCode::NoEmployment,
                "employee 104 has no employment covering 2026-01-01..(open)",
            ))],
        )
        .await;
        let nok = Currency::parse("NOK").unwrap_or_else(|e| panic!("{e}"));
        let record = PayrollRecord {
            id: "9001".into(),
            employment_id: "205".into(),
        };
        run(
            id(3),
            vec![
                Input::Matched(position("105", "205", "2022-02-01")),
                Input::CurrencyFound(nok),
                Input::OverlapClear,
                Input::IntentRecorded { updates: None },
                Input::Written(WriteReport {
                    record,
                    adopted: false,
                    dropped_fields: vec!["note"],
                    record_remains_after_delete: false,
                }),
            ],
        )
        .await;
    });
}

/// A copy of the golden v1 store opens with the current code: every instance, history entry,
/// owned record, error-log line and the switch read back as written; then the daemon finishes
/// its non-terminal work against the simulator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_the_golden_v1_store_opens_and_its_work_finishes() {
    use salary_sync::storage::{Filter, Store};
    let sim = start_sim(Seed::demo()).await;
    let setup = setup(&sim.control().base_url(), 50);
    std::fs::remove_dir_all(&setup.store).unwrap_or_else(|e| panic!("{e}"));
    copy_dir(&golden_dir(), &setup.store);
    {
        let store = Store::open(&setup.store).unwrap_or_else(|e| panic!("golden store: {e}"));
        let all: Vec<Workflow> = store
            .list(&Filter::default())
            .map(|r| r.unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let state = |salary: &str| {
            all.iter()
                .find(|w| w.change.salary.id.as_str() == salary)
                .map(|w| (w.state, w.history_len))
                .unwrap_or_else(|| panic!("{salary} missing"))
        };
        assert_eq!(all.len(), 4);
        assert_eq!(state("sal-gold-a"), (State::MatchedToPosition, 2));
        assert_eq!(state("sal-gold-b"), (State::Failed, 2));
        assert_eq!(state("sal-gold-c"), (State::Pending, 1));
        assert_eq!(state("sal-gold-d"), (State::Sent, 6));
        for wf in &all {
            let history = store.history(wf.id).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(history.len() as u32, wf.history_len);
            assert!(history.iter().enumerate().all(|(i, h)| h.seq as usize == i));
        }
        let integration = salary_sync::domain::IntegrationId::parse(INTEGRATION)
            .unwrap_or_else(|e| panic!("{e}"));
        let switch = store.integration(&integration).ok().flatten();
        assert!(
            switch.as_ref().is_some_and(|s| s.enabled && s.skipped == 1),
            "{switch:?}"
        );
        let errors = store.errors(None).unwrap_or_else(|e| panic!("{e}"));
        let codes: Vec<_> = errors.iter().map(|e| e.failure.code).collect();
        assert_eq!(codes.len(), 2, "{codes:?}");
        assert!(
            codes.contains(&FailureCode::NoEmployment)
                && codes.contains(&FailureCode::BeforeActivation)
        );
        let salary =
            salary_sync::domain::SalaryId::parse("sal-gold-d").unwrap_or_else(|e| panic!("{e}"));
        let owned = store
            .owned_record(&integration, &salary)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(owned.map(|r| r.id), Some("9001".to_owned()));
        assert!(store.quarantined().map(|q| q.is_empty()).unwrap_or(false));
    }
    let daemon = DaemonProcess::spawn(&setup, "daemon.log");
    let admin = Admin::wait(&setup.store, daemon.child.id()).await;
    let done = admin.wait_all_terminal(4, Duration::from_secs(30)).await;
    assert_eq!(state_of(&done, "sal-gold-a", "created"), State::Sent);
    assert_eq!(state_of(&done, "sal-gold-c", "created"), State::Sent);
    assert_eq!(state_of(&done, "sal-gold-b", "created"), State::Failed);
    assert_eq!(daemon.terminate(), Some(0));
    sim.shutdown().await;
}
