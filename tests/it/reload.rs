//! Issue 14 point 4: SIGHUP re-reads file-based credentials instead of killing the daemon (it
//! exited 129). A refused employee token is rotated in its file, SIGHUP, and the waiting change
//! is sent by the same process.

use crate::support::*;
use salary_sync::domain::{FailureCode, State};
use salary_sync::simulators::tripletex::Seed;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_rereads_a_rotated_token_file_and_the_waiting_change_is_sent() {
    let sim = start_sim(Seed::demo()).await;
    let seed = Seed::demo();
    let retry = RetryToml {
        attempts_max: 3,
        initial_delay_ms: 50,
        delay_ms_max: 400,
        auth_wait_ms: 300,
    };
    let secrets = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let consumer = secrets.path().join("consumer");
    let employee = secrets.path().join("employee");
    std::fs::write(&consumer, &seed.consumer_token).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&employee, "revoked-employee-token-7f3a").unwrap_or_else(|e| panic!("{e}"));
    let table = format!(
        r#"[[integration]]
id = "{INTEGRATION}"
system = "tripletex"
base_url = "{base}"
consumer_token = {{ file = "{consumer}" }}
employee_token = {{ file = "{employee}" }}
"#,
        base = sim.control().base_url(),
        consumer = consumer.display(),
        employee = employee.display(),
    );
    let setup = setup_config(&retry, &table);
    enable(&setup.config, INTEGRATION);
    let mut daemon = DaemonProcess::spawn(&setup, "daemon.log");
    let admin = Admin::wait(&setup.store, daemon.child.id()).await;
    let items = admin
        .submit(&json!([event(
            "e1",
            "created",
            "2026-11-20T09:00:00Z",
            "sal-kari",
            json!({"id": "k", "payroll_employee_id": "101"}),
            "52000.00",
            "NOK",
            "monthly",
            "2026-01-01",
        )]))
        .await
        .unwrap_or_else(|| panic!("submit"));
    let id = items[0]
        .workflow_id
        .map(|i| i.to_string())
        .unwrap_or_else(|| panic!("{items:?}"));
    let refused = admin
        .wait_show(&id, Duration::from_secs(30), |s| {
            s.history.iter().any(|h| {
                h.failure
                    .as_ref()
                    .is_some_and(|f| f.code == FailureCode::AuthRejected)
            })
        })
        .await;
    assert_eq!(refused.workflow.state, State::Pending);

    std::fs::write(&employee, &seed.employee_token).unwrap_or_else(|e| panic!("{e}"));
    // SAFETY: kill(2) with the pid of a child we own and a valid signal number.
    unsafe {
        libc::kill(daemon.child.id() as i32, libc::SIGHUP);
    }
    let sent = admin
        .wait_show(&id, Duration::from_secs(30), |s| s.workflow.is_terminal())
        .await;
    assert_eq!(sent.workflow.state, State::Sent, "{:?}", sent.history);
    assert!(
        matches!(daemon.child.try_wait(), Ok(None)),
        "the daemon is still the same process"
    );
    let log = std::fs::read_to_string(&daemon.log).unwrap_or_default();
    assert!(log.contains("SIGHUP: credentials re-read"), "{log}");
    assert!(!log.contains(&seed.employee_token), "no token in the log");
    assert_eq!(daemon.terminate(), Some(0));
    sim.shutdown().await;
}
