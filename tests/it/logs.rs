//! What the daemon's logs look like to journald and Loki: plain text without colour codes when
//! stderr is not a terminal, and under `--log-format json` one flat object a line (a failed
//! transition carries its failure code as its own field), fatal start-up errors included.

use crate::support::*;
use salary_sync::simulators::tripletex::Seed;
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_to_a_file_carry_no_colour_codes() {
    let sim = start_sim(Seed::demo()).await;
    let setup = setup(&sim.control().base_url(), 50);
    let daemon = DaemonProcess::spawn(&setup, "daemon.log");
    let log_path = daemon.log.clone();
    let _admin = Admin::wait(&setup.store, daemon.child.id()).await;
    assert_eq!(daemon.terminate(), Some(0));
    let log = std::fs::read_to_string(log_path).unwrap_or_default();
    assert!(log.lines().count() >= 2, "the daemon logged nothing: {log}");
    assert!(
        !log.contains('\u{1b}'),
        "an escape sequence reached a file:\n{log}"
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_flat_and_a_failure_names_its_code() {
    let sim = start_sim(Seed::demo()).await;
    let setup = setup(&sim.control().base_url(), 50);
    let daemon = DaemonProcess::spawn_with(&setup, "daemon.log", &["--log-format", "json"]);
    let log_path = daemon.log.clone();
    let admin = Admin::wait(&setup.store, daemon.child.id()).await;
    // Kari's employment is in NOK: a SEK salary fails at the currency step.
    let sek = event(
        "l1",
        "created",
        "2026-11-20T09:00:00Z",
        "sal-kari",
        json!({"id": "k", "payroll_employee_id": "101"}),
        "52000.00",
        "SEK",
        "monthly",
        "2026-01-01",
    );
    admin
        .submit(&json!([sek]))
        .await
        .unwrap_or_else(|| panic!("submit"));
    admin.wait_all_terminal(1, Duration::from_secs(30)).await;
    assert_eq!(daemon.terminate(), Some(0));
    let lines = json_lines(&std::fs::read_to_string(log_path).unwrap_or_default());
    assert!(lines.iter().all(|l| l["level"].is_string()));
    assert!(
        lines.iter().all(|l| l.get("fields").is_none()),
        "fields nested under `fields`"
    );
    let failed = lines
        .iter()
        .find(|l| l["message"] == "transition" && l["state"] == "failed")
        .unwrap_or_else(|| panic!("no failed transition logged: {lines:?}"));
    assert_eq!(failed["code"], "currency-mismatch", "{failed}");
    sim.shutdown().await;
}

#[test]
fn a_fatal_start_up_error_is_a_json_line_under_log_format_json() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let missing = dir.path().join("no-such-config.toml");
    let out = Command::new(bin())
        .arg("--log-format")
        .arg("json")
        .arg("--config")
        .arg(&missing)
        .arg("run")
        .output()
        .unwrap_or_else(|e| panic!("run: {e}"));
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines = json_lines(&stderr);
    let last = lines.last().unwrap_or_else(|| panic!("nothing on stderr"));
    assert_eq!(last["level"], "ERROR", "{last}");
    assert!(
        last["error"]
            .as_str()
            .is_some_and(|e| e.contains("no-such-config.toml")),
        "the error names the file: {last}"
    );
}
