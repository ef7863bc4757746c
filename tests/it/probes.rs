//! Issue 14 point 4: health and metrics on a listener of their own (`health_listen`), so a
//! Kubernetes probe or a scraper reaches them without reaching the admin API.

use crate::support::*;
use salary_sync::api::admin::Discovery;
use salary_sync::simulators::tripletex::Seed;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics_answer_on_their_own_listener_without_the_admin_api() {
    let sim = start_sim(Seed::demo()).await;
    let setup = setup(&sim.control().base_url(), 50);
    let text = std::fs::read_to_string(&setup.config).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        &setup.config,
        format!("health_listen = \"127.0.0.1:0\"\n{text}"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let daemon = DaemonProcess::spawn(&setup, "daemon.log");
    let admin = Admin::wait(&setup.store, daemon.child.id()).await;
    let health = Discovery::read(&setup.store)
        .and_then(|d| d.health)
        .unwrap_or_else(|| panic!("admin.json names no health listener"));
    assert_ne!(health.port(), 0);
    let client = reqwest::Client::new();
    let get = |path: &str| {
        let request = client.get(format!("http://{health}{path}")).send();
        async move {
            let answer = request.await.unwrap_or_else(|e| panic!("GET {e}"));
            let status = answer.status().as_u16();
            (status, answer.text().await.unwrap_or_default())
        }
    };
    // Ready once startup recovery has run: poll, the scheduler's first pass may be running.
    let mut ready = get("/readyz").await;
    for _ in 0..100 {
        if ready.0 == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        ready = get("/readyz").await;
    }
    assert_eq!(ready.0, 200, "{}", ready.1);
    assert!(ready.1.contains("\"ready\":true"), "{}", ready.1);
    let (status, body) = get("/healthz").await;
    assert_eq!(status, 200, "{body}");
    let (status, metrics) = get("/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("salary_sync_ready 1"), "{metrics}");
    // The admin API is not on this listener, with or without its token.
    for path in ["/admin/v1/health", "/admin/v1/instances"] {
        let answer = client
            .get(format!("http://{health}{path}"))
            .bearer_auth(&admin.token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert_eq!(answer.status().as_u16(), 404, "{path}");
    }
    // The admin listener still serves the probes too.
    assert!(admin.get("/admin/v1/health").await.is_some());
    assert_eq!(daemon.terminate(), Some(0));
    sim.shutdown().await;
}
