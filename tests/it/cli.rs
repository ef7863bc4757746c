//! The CLI against a running and a stopped daemon: the same answers either way.

use crate::support::*;
use salary_sync::simulators::tripletex::Seed;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_show_and_operator_commands_work_with_the_daemon_running_and_stopped() {
    let sim = start_sim(Seed::demo()).await;
    let control = sim.control();
    let setup = setup(&control.base_url(), 50);
    let events_file = setup.dir.path().join("events.json");
    let events = json!([
        event(
            "c1",
            "created",
            "2026-11-20T09:00:00Z",
            "sal-nils",
            json!({"id": "n", "payroll_employee_id": "105"}),
            "300",
            "NOK",
            "hourly",
            "2026-02-01"
        ),
        event(
            "c2",
            "deleted",
            "2026-11-21T09:00:00Z",
            "sal-nils",
            json!({"id": "n", "payroll_employee_id": "105"}),
            "300",
            "NOK",
            "hourly",
            "2026-02-01"
        ),
        event(
            "c3",
            "created",
            "2026-11-20T09:00:00Z",
            "sal-lise",
            json!({"id": "l", "employee_number": "20"}),
            "45000.00",
            "NOK",
            "monthly",
            "2026-01-01"
        ),
    ]);
    std::fs::write(
        &events_file,
        serde_json::to_vec(&events).unwrap_or_default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    // Stopped: submit opens the store directly.
    let (code, out, err) = cli(
        &setup,
        &["submit", events_file.to_str().unwrap_or_default()],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.matches("accepted").count(), 3, "{out}");

    let daemon = DaemonProcess::spawn(&setup, "daemon.log");
    let admin = Admin::wait(&setup.store, daemon.child.id()).await;
    let done = admin.wait_all_terminal(3, Duration::from_secs(30)).await;
    let mdr = done
        .iter()
        .find(|w| w.change.kind.as_str() == "deleted")
        .map(|w| w.id.to_string())
        .unwrap_or_default();
    let failed = done
        .iter()
        .find(|w| w.change.salary.id.as_str() == "sal-lise")
        .map(|w| w.id.to_string())
        .unwrap_or_default();

    // Running: a second daemon on the same store refuses at once.
    let (code, _, err) = cli(&setup, &["run"]);
    assert_eq!(code, 1);
    assert!(err.contains("in use by another process"), "{err}");

    // Running: the CLI goes through the admin API.
    let (code, running_dump, err) = cli(&setup, &["dump"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        running_dump.contains("manual-delete-required") && running_dump.contains("no-employment"),
        "{running_dump}"
    );
    assert!(
        !running_dump.contains("300"),
        "amounts stay out of the table: {running_dump}"
    );
    let (code, out, err) = cli(
        &setup,
        &[
            "resolve",
            &mdr,
            "--reason",
            "deleted in Tripletex by payroll clerk",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = cli(&setup, &["resolve", &mdr]);
    assert_eq!(code, 1, "a second resolve is refused: {out}");
    let (code, out, _) = cli(&setup, &["dump", "--state", "failed", "--format", "json"]);
    assert_eq!(code, 0);
    let failed_json: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    assert_eq!(failed_json.as_array().map(Vec::len), Some(1), "{out}");
    // Kebab-case on every surface, the currency as its code.
    let first = &failed_json[0];
    assert_eq!(first["state"], "failed", "{out}");
    assert_eq!(first["last_failure"]["code"], "no-employment", "{out}");
    assert_eq!(first["last_failure"]["class"], "permanent", "{out}");
    assert_eq!(first["change"]["kind"], "created", "{out}");
    assert_eq!(first["change"]["salary"]["pay"]["currency"], "NOK", "{out}");
    assert_eq!(first["change"]["salary"]["period_unit"], "monthly", "{out}");
    // Paging: two, then the rest after the id the first page names.
    let (code, out, err) = cli(&setup, &["dump", "--limit", "2", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let first: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    assert_eq!(first.as_array().map(Vec::len), Some(2), "{out}");
    let next = err
        .trim()
        .strip_prefix("more: continue with --after ")
        .map(str::to_owned)
        .unwrap_or_default();
    assert_eq!(
        Some(next.as_str()),
        first[1]["id"]
            .as_u64()
            .map(|n| format!("wf-{n}"))
            .as_deref(),
        "{err}"
    );
    let (code, out, err) = cli(
        &setup,
        &["dump", "--after", &next, "--limit", "2", "--format", "json"],
    );
    assert_eq!(code, 0, "{err}");
    let rest: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    assert_eq!(rest.as_array().map(Vec::len), Some(1), "{out}");
    assert!(!err.contains("more:"), "the last page says so: {err}");
    let (code, out, _) = cli(&setup, &["errors", "--integration", INTEGRATION]);
    assert_eq!(code, 0);
    assert!(
        out.contains("no-employment") && out.contains("what to do"),
        "{out}"
    );

    assert_eq!(daemon.terminate(), Some(0));

    // Stopped: the same store, opened directly, says the same.
    let (code, stopped_dump, err) = cli(&setup, &["dump"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        stopped_dump.contains("manual-delete-required"),
        "{stopped_dump}"
    );
    let (code, out, _) = cli(&setup, &["show", &mdr]);
    assert_eq!(code, 0);
    assert!(
        out.contains("(resolved)") && out.contains("operator-resolve"),
        "{out}"
    );
    let (code, out, err) = cli(&setup, &["retry", &failed]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = cli(&setup, &["dump", "--state", "pending"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("sal-lise"),
        "the retried instance waits for the next start: {out}"
    );
    let (code, _, err) = cli(&setup, &["show", "wf-999999"]);
    assert_eq!(code, 1);
    assert!(err.contains("does not exist"), "{err}");
    sim.shutdown().await;
}

/// Bulk operator actions: retry every failed instance of one failure code, with the reason
/// kept in each history; a bulk action without a filter is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_retry_by_failure_code_keeps_the_reason_in_each_history() {
    let sim = start_sim(Seed::demo()).await;
    let setup = setup(&sim.control().base_url(), 50);
    let daemon = DaemonProcess::spawn(&setup, "daemon.log");
    let admin = Admin::wait(&setup.store, daemon.child.id()).await;
    let lise = || json!({"id": "l", "employee_number": "20"});
    let events = json!([
        event(
            "b1",
            "created",
            "2026-11-20T09:00:00Z",
            "sal-l1",
            lise(),
            "1",
            "NOK",
            "monthly",
            "2026-01-01"
        ),
        event(
            "b2",
            "created",
            "2026-11-20T09:00:00Z",
            "sal-l2",
            lise(),
            "1",
            "NOK",
            "monthly",
            "2026-01-01"
        ),
        event(
            "b3",
            "created",
            "2026-11-20T09:00:00Z",
            "sal-sek",
            json!({"id": "k", "payroll_employee_id": "101"}),
            "1",
            "SEK",
            "monthly",
            "2026-01-01"
        ),
    ]);
    admin
        .submit(&events)
        .await
        .unwrap_or_else(|| panic!("submit"));
    admin.wait_all_terminal(3, Duration::from_secs(30)).await;

    let (code, _, err) = cli(&setup, &["retry"]);
    assert_eq!(code, 1, "a bulk action needs a filter");
    assert!(err.contains("at least one of --integration"), "{err}");
    let (code, out, err) = cli(
        &setup,
        &[
            "retry",
            "--code",
            "no-employment",
            "--reason",
            "position sync fixed",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("2 instance(s) changed"), "{out}");
    let done = admin.wait_all_terminal(3, Duration::from_secs(30)).await;
    let retried = done
        .iter()
        .find(|w| w.change.salary.id.as_str() == "sal-l1")
        .map(|w| w.id.to_string())
        .unwrap_or_default();
    let shown = admin.show(&retried).await.unwrap_or_else(|| panic!("show"));
    assert!(
        shown
            .history
            .iter()
            .any(|h| h.event == "operator-retry" && h.detail.contains("position sync fixed")),
        "{:?}",
        shown.history
    );
    let sek = done
        .iter()
        .find(|w| w.change.salary.id.as_str() == "sal-sek")
        .map(|w| w.history_len)
        .unwrap_or(0);
    assert_eq!(
        sek, 3,
        "the currency failure was not touched (accepted, matched, failed)"
    );
    assert_eq!(daemon.terminate(), Some(0));
    sim.shutdown().await;
}

/// Issue 14 point 5: `--version` names the git commit the binary was built from (the same
/// one `salary_sync_build_info` carries).
#[test]
fn version_names_the_commit_it_was_built_from() {
    let out = std::process::Command::new(bin())
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    assert_eq!(
        text.trim(),
        format!("salary-sync {} (commit {head})", env!("CARGO_PKG_VERSION"))
    );
}
