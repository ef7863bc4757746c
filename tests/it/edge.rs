//! Issue 13's listener and trust faults against the real daemon process over real sockets:
//! idle and slow connections are closed, a flood on the webhook leaves the admin API
//! answering, and a stale `admin.json` whose port another process took gets no token.

use crate::support::*;
use salary_sync::api::admin::Discovery;
use salary_sync::simulators::tripletex::Seed;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET_ENV: &str = "IT_EDGE_WEBHOOK_SECRET";

/// Reads until the peer closes. The read timeout only turns a hang (the fault) into a
/// failure; it is sixty times the configured one-second deadline.
fn closed_by_peer(mut stream: TcpStream) -> Result<Vec<u8>, String> {
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let mut got = Vec::new();
    match stream.read_to_end(&mut got) {
        Ok(_) => Ok(got),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(got),
        Err(e) => Err(format!("still open: {e}")),
    }
}

/// Issue 13 point 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue13_idle_and_slow_webhook_connections_are_closed_and_admin_answers_under_a_flood() {
    let sim = start_sim(Seed::demo()).await;
    let webhook = format!(
        "[webhook]\nlisten = \"127.0.0.1:0\"\nsecret = {{ env = \"{SECRET_ENV}\" }}\nhead_timeout_s = 1\nbody_timeout_s = 1\nconnections_max = 8\n"
    );
    let setup = setup_with(&sim.control().base_url(), 50, &webhook);
    std::env::set_var(SECRET_ENV, "whsec-edge");
    let daemon = DaemonProcess::spawn(&setup, "daemon.log");
    let admin = Admin::wait(&setup.store, daemon.child.id()).await;
    let addr = Discovery::read(&setup.store)
        .and_then(|d| d.webhook)
        .unwrap_or_else(|| panic!("webhook address"));
    let connect = || TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect: {e}"));

    // An idle connection, and a head trickled one byte at a time, are closed.
    let idle = closed_by_peer(connect());
    assert_eq!(idle, Ok(Vec::new()), "idle connection");
    let mut slow = connect();
    let trickle = slow.try_clone().unwrap_or_else(|e| panic!("{e}"));
    let writer = std::thread::spawn(move || {
        let mut trickle = trickle;
        for b in b"POST /v1/salary-events HTTP/1.1\r\nHost: x\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaa" {
            if trickle.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let _ = slow.write_all(b"");
    assert!(closed_by_peer(slow).is_ok(), "slow-loris head");
    let _ = writer.join();
    // A whole head and a body that never comes: 408, then closed.
    let mut stalled = connect();
    let _ = stalled.write_all(
        b"POST /v1/salary-events HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"a\"",
    );
    let answer = closed_by_peer(stalled).unwrap_or_else(|e| panic!("stalled body: {e}"));
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    // A flood of idle connections: those beyond the limit are closed at once, and the admin
    // API answers meanwhile.
    let flood: Vec<TcpStream> = (0..8).map(|_| connect()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let extra = closed_by_peer(connect());
    assert_eq!(extra, Ok(Vec::new()), "a connection beyond the limit");
    assert!(
        admin.get("/admin/v1/health").await.is_some(),
        "admin API under the flood"
    );
    drop(flood);

    // The daemon raised its soft limit on open files to the hard limit (capped at 65536).
    let limits =
        std::fs::read_to_string(format!("/proc/{}/limits", daemon.child.id())).unwrap_or_default();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap_or_default()
        .to_owned();
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    if let [soft, hard] = numbers[..] {
        assert_eq!(soft, hard.min(65_536), "{line}");
    } else if !line.contains("unlimited") {
        panic!("cannot read the daemon's limits: {line:?}");
    }
    assert_eq!(daemon.terminate(), Some(0));
    sim.shutdown().await;
}

/// Issue 13 point 10: after a SIGKILL, a process that binds the stale admin port receives
/// neither the token nor the submitted event; the CLI goes to the store directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue13_a_stale_admin_json_port_taken_by_another_process_receives_no_token() {
    let sim = start_sim(Seed::demo()).await;
    let setup = setup(&sim.control().base_url(), 50);
    let daemon = DaemonProcess::spawn(&setup, "daemon.log");
    let _admin = Admin::wait(&setup.store, daemon.child.id()).await;
    let stale = Discovery::read(&setup.store).unwrap_or_else(|| panic!("admin.json"));
    daemon.kill9();
    let fake = TcpListener::bind(stale.addr).unwrap_or_else(|e| panic!("bind {}: {e}", stale.addr));
    let heard = Arc::new(Mutex::new(Vec::<u8>::new()));
    let record = Arc::clone(&heard);
    std::thread::spawn(move || {
        for stream in fake.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
            let mut buf = [0u8; 65536];
            let n = stream.read(&mut buf).unwrap_or(0);
            if let Ok(mut all) = record.lock() {
                all.extend_from_slice(&buf[..n]);
            }
            // It answers like the daemon would, as best it can without the token.
            let body = format!("{{\"proof\":\"{}\",\"ready\":true}}", "0".repeat(64));
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let events = setup.dir.path().join("events.json");
    let event = event(
        "evt-stale-9",
        "created",
        "2026-11-20T09:00:00Z",
        "sal-stale",
        serde_json::json!({"id": "k", "payroll_employee_id": "101"}),
        "1000.00",
        "NOK",
        "monthly",
        "2026-01-01",
    );
    std::fs::write(&events, event.to_string()).unwrap_or_else(|e| panic!("{e}"));
    let (code, out, err) = cli(&setup, &["submit", &events.display().to_string()]);
    let heard = heard.lock().map(|h| h.clone()).unwrap_or_default();
    let heard = String::from_utf8_lossy(&heard).to_ascii_lowercase();
    assert!(
        !heard.contains(&stale.token),
        "the token reached the fake: {heard}"
    );
    assert!(!heard.contains("authorization"), "{heard}");
    assert!(
        !heard.contains("evt-stale-9"),
        "the event reached the fake: {heard}"
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let (code, out, err) = cli(&setup, &["dump"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("sal-stale"), "not stored directly: {out}");
    sim.shutdown().await;
}

/// Issue 13 point 5 and Validation: a batch beyond the bound is 413, a 422 is bounded, an
/// event far in the future is 422, and every error answer of the webhook is JSON (404, 405, a
/// malformed chunk size as 400).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue13_webhook_answers_are_bounded_and_json() {
    use salary_sync::api::signature::sign;
    let sim = start_sim(Seed::demo()).await;
    let webhook =
        format!("[webhook]\nlisten = \"127.0.0.1:0\"\nsecret = {{ env = \"{SECRET_ENV}\" }}\n");
    let setup = setup_with(&sim.control().base_url(), 50, &webhook);
    std::env::set_var(SECRET_ENV, "whsec-edge");
    let daemon = DaemonProcess::spawn(&setup, "daemon.log");
    let _admin = Admin::wait(&setup.store, daemon.child.id()).await;
    let addr = Discovery::read(&setup.store)
        .and_then(|d| d.webhook)
        .unwrap_or_else(|| panic!("webhook address"));
    let url = format!("http://{addr}/v1/salary-events");
    let client = reqwest::Client::new();
    let post = |body: Vec<u8>| {
        let t = chrono::Utc::now().timestamp();
        client
            .post(&url)
            .header("content-type", "application/json")
            .header("x-salary-sync-timestamp", t.to_string())
            .header("x-salary-sync-signature", sign(b"whsec-edge", t, &body))
            .body(body)
            .send()
    };
    let answer = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        (
            status,
            r.json::<serde_json::Value>().await.unwrap_or_default(),
        )
    };
    let one = |id: &str| {
        event(
            id,
            "created",
            "2026-11-20T09:00:00Z",
            "sal-edge",
            serde_json::json!({"id": "k", "payroll_employee_id": "101"}),
            "-1",
            "NOK",
            "monthly",
            "2026-01-01",
        )
    };
    let many: Vec<_> = (0..1001).map(|i| one(&format!("e{i}"))).collect();
    let r = post(serde_json::to_vec(&many).unwrap_or_default()).await;
    let (status, body) = answer(r.unwrap_or_else(|e| panic!("{e}"))).await;
    assert_eq!(status, 413, "{body}");
    let bad: Vec<_> = (0..300).map(|i| one(&format!("e{i}"))).collect();
    let r = post(serde_json::to_vec(&bad).unwrap_or_default()).await;
    let (status, body) = answer(r.unwrap_or_else(|e| panic!("{e}"))).await;
    assert_eq!(status, 422);
    assert_eq!(body["invalid"], 300, "{body}");
    assert_eq!(body["results"].as_array().map(Vec::len), Some(100));
    let mut future = one("e-future");
    future["salary"]["amount"] = serde_json::json!("1000");
    future["occurred_at"] =
        serde_json::json!((chrono::Utc::now() + chrono::Duration::days(2)).to_rfc3339());
    let r = post(serde_json::to_vec(&future).unwrap_or_default()).await;
    let (status, body) = answer(r.unwrap_or_else(|e| panic!("{e}"))).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["results"][0]["field"], "occurred_at", "{body}");
    for (r, expected) in [
        (client.get(&url).send().await, 405),
        (client.post(format!("http://{addr}/nope")).send().await, 404),
    ] {
        let (status, body) = answer(r.unwrap_or_else(|e| panic!("{e}"))).await;
        assert_eq!(status, expected);
        assert!(body["error"].is_string(), "{expected}: {body}");
    }
    let mut raw = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{e}"));
    let _ = raw.write_all(
        b"POST /v1/salary-events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    );
    let got = closed_by_peer(raw).unwrap_or_else(|e| panic!("{e}"));
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 400"), "{got}");
    assert!(got.contains("\"error\""), "{got}");
    assert_eq!(daemon.terminate(), Some(0));
    sim.shutdown().await;
}
