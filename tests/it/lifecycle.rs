//! The daemon's lifecycle over real HTTP: the periodic retention sweep removing old terminal
//! instances while the daemon runs, and intake answering 503 while a SIGTERM's grace period
//! lets in-flight work finish, then a clean exit and the in-flight instance resumed at the
//! next start.

use crate::support::*;
use salary_sync::api::admin::Discovery;
use salary_sync::api::signature::sign;
use salary_sync::domain::{State, WorkflowId};
use salary_sync::simulators::tripletex::{Fault, FaultKind, Seed};
use salary_sync::storage::Store;
use serde_json::{json, Value};
use std::process::Child;
use std::time::{Duration, Instant};

/// Inserts top-level keys into a `setup` config (before its `[retry]` table).
fn add_top_level(setup: &Setup, lines: &str) {
    let text = std::fs::read_to_string(&setup.config).unwrap_or_else(|e| panic!("config: {e}"));
    let text = text.replacen("[retry]", &format!("{lines}\n\n[retry]"), 1);
    std::fs::write(&setup.config, text).unwrap_or_else(|e| panic!("write config: {e}"));
}

fn created(event_id: &str, salary: &str, employee: &str) -> Value {
    event(
        event_id,
        "created",
        "2026-11-20T09:00:00Z",
        salary,
        json!({"id": "x", "payroll_employee_id": employee}),
        "1000",
        "NOK",
        "monthly",
        "2026-06-01",
    )
}

/// Waits for the child to exit on its own; its exit code, or None after `timeout`.
fn wait_exit(child: &mut Child, timeout: Duration) -> Option<i32> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    None
}

/// The instance once it is terminal, or None when it is already gone (a sweep only removes
/// terminal instances).
async fn terminal_or_gone(admin: &Admin, id: &str) -> Option<salary_sync::api::service::Shown> {
    let started = Instant::now();
    loop {
        match admin.show(id).await {
            Some(s) if s.workflow.is_terminal() => return Some(s),
            None => return None,
            Some(_) => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{id} never became terminal"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// `retention = "3s"` swept every second: terminal instances (sent and failed) disappear with
/// their history and error-log lines while the daemon runs; an instance still waiting for its
/// retry stays, history and all; the pruned events' ids are still known, so a replay is a
/// duplicate and nothing is sent twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retention_sweep_removes_old_terminal_instances_while_the_daemon_runs() {
    let sim = start_sim(Seed::demo()).await;
    let control = sim.control();
    // Employee 105's first call fails once with 500; its retry is minutes away, so it stays
    // non-terminal for the whole test.
    control.arm(Fault::new(FaultKind::ServerError, 1).path_prefix("/employee/105"));
    let setup = setup(&control.base_url(), 50);
    let text = std::fs::read_to_string(&setup.config).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        &setup.config,
        text.replace("initial_delay_ms = 50", "initial_delay_ms = 600000")
            .replace("delay_ms_max = 1000", "delay_ms_max = 600000"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    add_top_level(&setup, "retention = \"3s\"\nretention_sweep_every = \"1s\"");
    let daemon = DaemonProcess::spawn(&setup, "daemon.log");
    let admin = Admin::wait(&setup.store, daemon.child.id()).await;
    let events = vec![
        created("k-1", "sal-1", "101"), // sent
        created("k-2", "sal-2", "102"), // sent
        created("k-4", "sal-4", "104"), // failed: no employment
        created("k-5", "sal-5", "105"), // waits for its retry
    ];
    let items = admin
        .submit(&Value::Array(events.clone()))
        .await
        .unwrap_or_else(|| panic!("submit"));
    let ids: Vec<String> = items
        .iter()
        .map(|i| {
            i.workflow_id
                .map(|w| w.to_string())
                .unwrap_or_else(|| panic!("not accepted: {i:?}"))
        })
        .collect();
    // Every instance reaches where it is going: three terminal, one waiting.
    let waiting = admin
        .wait_show(&ids[3], Duration::from_secs(60), |s| {
            s.workflow.attempt >= 1
        })
        .await;
    assert_eq!(waiting.workflow.state, State::Pending);
    let waiting_history = waiting.history.len();
    let mut seen_terminal = Vec::new();
    for (id, want) in ids[..3]
        .iter()
        .zip([State::Sent, State::Sent, State::Failed])
    {
        // Seen terminal before the sweep took it (or already gone: it was terminal then).
        if let Some(s) = terminal_or_gone(&admin, id).await {
            assert_eq!(s.workflow.state, want, "{id}");
            seen_terminal.push(id.clone());
        }
    }
    // Time passes beyond the retention; the sweep (not a prune command) removes them.
    let started = Instant::now();
    loop {
        let items = admin.instances().await.unwrap_or_default();
        let left: Vec<String> = items.iter().map(|w| w.id.to_string()).collect();
        if ids[..3].iter().all(|id| !left.contains(id)) {
            assert_eq!(
                left,
                vec![ids[3].clone()],
                "only the waiting instance is left"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the sweep never removed the terminal instances: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for id in &ids[..3] {
        assert!(admin.show(id).await.is_none(), "{id} is still shown");
    }
    let errors = admin
        .get("/admin/v1/errors")
        .await
        .unwrap_or_else(|| panic!("errors"));
    let failed: WorkflowId = ids[2].parse().unwrap_or_else(|e| panic!("{e}"));
    let lines = errors.as_array().cloned().unwrap_or_default();
    assert!(
        lines.iter().all(|l| l["workflow_id"] != json!(failed.0)),
        "the failed instance's error-log line is pruned: {errors}"
    );
    // The waiting instance is untouched.
    let still = admin
        .show(&ids[3])
        .await
        .unwrap_or_else(|| panic!("the waiting instance was pruned"));
    assert_eq!(still.workflow.state, State::Pending);
    assert_eq!(still.history.len(), waiting_history);
    // A replay of a pruned event is recognised, not sent again.
    let replay = admin
        .submit(&Value::Array(vec![events[0].clone()]))
        .await
        .unwrap_or_else(|| panic!("replay"));
    assert_eq!(replay[0].outcome, "duplicate", "{replay:?}");
    assert_eq!(
        control.written_details(201).len(),
        1,
        "employment 201 written once"
    );
    assert_eq!(daemon.terminate(), Some(0));

    // With the daemon stopped: the store itself holds no history for the pruned instances.
    let store = Store::open(&setup.store).unwrap_or_else(|e| panic!("open store: {e}"));
    for id in &ids[..3] {
        let id: WorkflowId = id.parse().unwrap_or_else(|e| panic!("{id}: {e:?}"));
        assert_eq!(store.get(id).ok().flatten(), None);
        assert_eq!(
            store.history(id).map(|h| h.len()).ok(),
            Some(0),
            "{id}: history left behind"
        );
    }
    let kept: WorkflowId = ids[3].parse().unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        store.history(kept).map(|h| h.len()).ok(),
        Some(waiting_history)
    );
    drop(store);
    let (code, out, err) = cli(&setup, &["dump", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let dumped: Vec<salary_sync::domain::Workflow> =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("dump json: {e}: {out}"));
    let dumped: Vec<String> = dumped.iter().map(|w| w.id.to_string()).collect();
    assert_eq!(
        dumped,
        vec![ids[3].clone()],
        "the dump holds only the waiting instance"
    );
    assert!(
        !seen_terminal.is_empty(),
        "at least one instance was seen terminal before it was swept"
    );
    sim.shutdown().await;
}

const SECRET: &str = "whsec-lifecycle-77c2";
const SECRET_ENV: &str = "IT_LIFECYCLE_WEBHOOK_SECRET";

/// SIGTERM while a payroll write is in flight (its answer held by the simulator): during the
/// grace period the webhook still answers, with 503 and a JSON error saying the daemon is
/// shutting down, and stores nothing; the daemon then exits 0; at the next start the in-flight
/// instance resumes, finds its write in payroll and adopts it (one row, not two).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_answers_503_while_stopping_then_the_in_flight_instance_resumes() {
    let sim = start_sim(Seed::demo()).await;
    let control = sim.control();
    // The write lands, then its answer is held for far longer than the 3 s grace period.
    control.arm(
        Fault::new(FaultKind::ApplyThenHang { hang_ms: 30_000 }, 1)
            .method("POST")
            .path_prefix("/employee/employment/details"),
    );
    let webhook = format!(
        "[webhook]\nlisten = \"127.0.0.1:0\"\nsecret = {{ env = \"{SECRET_ENV}\" }}\nreplay_window_s = 60\n"
    );
    let setup = setup_with(&control.base_url(), 50, &webhook);
    std::env::set_var(SECRET_ENV, SECRET);
    let mut daemon = DaemonProcess::spawn(&setup, "daemon-1.log");
    let admin = Admin::wait(&setup.store, daemon.child.id()).await;
    let url = format!(
        "http://{}/v1/salary-events",
        Discovery::read(&setup.store)
            .and_then(|d| d.webhook)
            .unwrap_or_else(|| panic!("no webhook address"))
    );
    let client = reqwest::Client::new();
    let post = |body: Vec<u8>, signed: bool| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let now = chrono::Utc::now().timestamp();
            let signature = if signed {
                sign(SECRET.as_bytes(), now, &body)
            } else {
                "sha256=00".to_owned()
            };
            let r = client
                .post(&url)
                .header("content-type", "application/json")
                .header("x-salary-sync-timestamp", now.to_string())
                .header("x-salary-sync-signature", signature)
                .body(body)
                .send()
                .await
                .unwrap_or_else(|e| panic!("the webhook refused the connection: {e}"));
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let first = serde_json::to_vec(&created("s-1", "sal-1", "101")).unwrap_or_default();
    let (status, body) = post(first, true).await;
    assert_eq!(status, 202, "{body}");
    assert!(
        control.wait_for_writes(1, Duration::from_secs(60)).await,
        "the write never reached payroll"
    );
    // The write is applied and its answer held: the step is in flight. Stop.
    // SAFETY: kill(2) with a pid we own and a valid signal number.
    unsafe {
        libc::kill(daemon.child.id() as i32, libc::SIGTERM);
    }
    // Until the daemon has seen the signal a badly signed request is 401; from then on, 503.
    let started = Instant::now();
    loop {
        let (status, body) = post(b"{}".to_vec(), false).await;
        if status == 503 {
            break;
        }
        assert_eq!(status, 401, "{body}");
        assert!(started.elapsed() < Duration::from_secs(30), "never saw 503");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let second = serde_json::to_vec(&created("s-2", "sal-2", "102")).unwrap_or_default();
    let (status, body) = post(second, true).await;
    assert_eq!(status, 503, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains("shutting down"), "{body}");
    assert_eq!(
        wait_exit(&mut daemon.child, Duration::from_secs(30)),
        Some(0),
        "the daemon exits 0 after the grace period"
    );
    let first_log = std::fs::read_to_string(&daemon.log).unwrap_or_default();
    assert!(
        first_log.contains("grace period over"),
        "the step was still in flight when the grace period ended: {first_log}"
    );

    let daemon = DaemonProcess::spawn(&setup, "daemon-2.log");
    let admin2 = Admin::wait(&setup.store, daemon.child.id()).await;
    drop(admin);
    let done = admin2.wait_all_terminal(1, Duration::from_secs(60)).await;
    assert_eq!(
        done.len(),
        1,
        "the event refused with 503 was not stored: {done:?}"
    );
    assert_eq!(done[0].state, State::Sent);
    assert_eq!(
        control.written_details(201).len(),
        1,
        "written once, then adopted"
    );
    let shown = admin2
        .show(&done[0].id.to_string())
        .await
        .unwrap_or_else(|| panic!("show"));
    assert!(
        shown.history.iter().any(|h| h.event == "adopted"),
        "the resumed write was adopted, not repeated: {:#?}",
        shown.history
    );
    assert_eq!(daemon.terminate(), Some(0));
    sim.shutdown().await;
}
