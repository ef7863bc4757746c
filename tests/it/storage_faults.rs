//! Issue 13's storage faults with real processes and a real full disk: a small tmpfs mounted
//! for the test (the tests run as root here; a mount that fails fails the test loudly), the
//! daemon binary as a child, killed with SIGKILL, and the store opened again.

use crate::support::*;
use salary_sync::simulators::tripletex::Seed;
use salary_sync::storage::{Error, Filter, Store};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A tmpfs of `size_mb` mounted on a directory; unmounted (lazily) on drop.
struct SmallDisk {
    mount: PathBuf,
}

impl SmallDisk {
    fn mount(at: &Path, size_mb: u32) -> Self {
        std::fs::create_dir_all(at).unwrap_or_else(|e| panic!("mkdir {}: {e}", at.display()));
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mb}m"), "tmpfs"])
            .arg(at)
            .output()
            .unwrap_or_else(|e| panic!("cannot run mount: {e}"));
        assert!(
            out.status.success(),
            "these tests need a small filesystem to fill and must run as root: mount -t tmpfs failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self {
            mount: at.to_owned(),
        }
    }

    /// Writes a filler file until the filesystem refuses (ENOSPC).
    fn fill(&self) -> PathBuf {
        let path = self.mount.join("filler");
        let mut file = std::fs::File::create(&path).unwrap_or_else(|e| panic!("filler: {e}"));
        let chunk = vec![0xa5u8; 64 * 1024];
        loop {
            if let Err(e) = file.write_all(&chunk) {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "filling: {e}");
                break;
            }
        }
        // The last pages: byte by byte until none is left.
        while file.write_all(&[0u8; 512]).is_ok() {}
        while file.write_all(&[0u8]).is_ok() {}
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

/// A config whose store lies on a fresh `size_mb` tmpfs; the integration is enabled.
fn setup_on_small_disk(base_url: &str, size_mb: u32) -> (Setup, SmallDisk) {
    let retry = RetryToml {
        attempts_max: 10,
        initial_delay_ms: 50,
        delay_ms_max: 1000,
        auth_wait_ms: 2000,
    };
    let mut setup = setup_config(&retry, &tripletex_table(base_url));
    let disk = SmallDisk::mount(&setup.dir.path().join("disk"), size_mb);
    let store = disk.mount.join("store");
    let text = std::fs::read_to_string(&setup.config).unwrap_or_else(|e| panic!("{e}"));
    let text = text.replacen(
        &format!("store = \"{}\"", setup.store.display()),
        &format!("store = \"{}\"", store.display()),
        1,
    );
    std::fs::write(&setup.config, text).unwrap_or_else(|e| panic!("{e}"));
    setup.store = store;
    enable(&setup.config, INTEGRATION);
    (setup, disk)
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

fn generating_snapshots(store: &Path) -> Vec<String> {
    std::fs::read_dir(store)
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("snap.") && n.ends_with(".generating"))
        .collect()
}

fn instance_count(store: &Store) -> usize {
    store.list(&Filter::default()).filter(|r| r.is_ok()).count()
}

/// Runs the daemon, accepts `n` changes and lets them finish, then SIGKILLs it: an unclean
/// stop, so the next open has log to replay and a snapshot to write.
async fn accept_then_kill(setup: &Setup, n: usize) {
    let daemon = DaemonProcess::spawn(setup, "daemon.log");
    let admin = Admin::wait(&setup.store, daemon.child.id()).await;
    let events: Vec<Value> = (0..n)
        .map(|i| created(&format!("e-{i}"), &format!("sal-{i}"), "101"))
        .collect();
    admin
        .submit(&Value::Array(events))
        .await
        .unwrap_or_else(|| panic!("submit"));
    admin.wait_all_terminal(n, Duration::from_secs(60)).await;
    daemon.kill9();
}

/// Issue 13 point 1: after a SIGKILL, an open on a full disk failed, left an empty
/// `snap.<lsn>.generating` and every later open called the store damaged. Now the open says
/// the disk is full, leaves nothing behind, and opens with every instance once space is freed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue13_an_open_on_a_full_disk_says_disk_full_and_leaves_the_store_as_it_was() {
    let sim = start_sim(Seed::demo()).await;
    let (setup, disk) = setup_on_small_disk(&sim.control().base_url(), 16);
    accept_then_kill(&setup, 20).await;
    let filler = disk.fill();
    for attempt in 0..2 {
        match Store::open(&setup.store) {
            Err(Error::DiskFull(m)) => assert!(!m.is_empty()),
            Err(e) => panic!("open {attempt} on a full disk: {e}"),
            Ok(_) => panic!("open {attempt} on a full disk succeeded; the test filled nothing"),
        }
        assert_eq!(generating_snapshots(&setup.store), Vec::<String>::new());
    }
    std::fs::remove_file(filler).unwrap_or_else(|e| panic!("{e}"));
    let store = Store::open(&setup.store).unwrap_or_else(|e| panic!("open after freeing: {e}"));
    assert_eq!(instance_count(&store), 20);
    assert_eq!(store.index_problems().map(|p| p.len()).ok(), Some(0));
}

/// Issue 13 point 1: an empty `snap.<lsn>.generating` left by an earlier failed open made
/// every open report damage; it is set aside and the store opens whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue13_a_leftover_empty_generating_snapshot_is_set_aside_at_open() {
    let sim = start_sim(Seed::demo()).await;
    let setup = setup(&sim.control().base_url(), 50);
    accept_then_kill(&setup, 5).await;
    let leftover = setup.store.join("snap.FFFFFFFFFFFFFFF0.generating");
    std::fs::write(&leftover, b"").unwrap_or_else(|e| panic!("{e}"));
    let store = Store::open(&setup.store).unwrap_or_else(|e| panic!("open with a leftover: {e}"));
    assert_eq!(instance_count(&store), 5);
    assert!(!leftover.exists(), "the empty leftover is gone");
}

fn wait_exit(child: &mut Child, timeout: Duration) -> Option<i32> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Issue 13 point 3: a write the engine cannot make (the disk filled while a step was in
/// flight) stopped the engine while the process ran on, ready. Now the daemon logs it and exits
/// non-zero (a supervisor restarts it); once space is freed the restarted daemon finishes the
/// change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue13_a_storage_failure_in_the_engine_makes_the_daemon_exit_non_zero() {
    const N: usize = 300;
    let sim = start_sim(Seed::demo()).await;
    let control = sim.control();
    let (setup, disk) = setup_on_small_disk(&control.base_url(), 16);
    let mut daemon = DaemonProcess::spawn(&setup, "daemon.log");
    let admin = Admin::wait(&setup.store, daemon.child.id()).await;
    // Payroll answers slowly, so most of the changes' steps are still to be committed when
    // the disk fills; sled writes into its preallocated log until it must grow the file.
    control.set_latency(Duration::from_millis(20));
    let events: Vec<Value> = (0..N)
        .map(|i| created(&format!("e-{i}"), &format!("sal-{i}"), "101"))
        .collect();
    admin
        .submit(&Value::Array(events))
        .await
        .unwrap_or_else(|| panic!("submit"));
    let filler = disk.fill();
    let code = wait_exit(&mut daemon.child, Duration::from_secs(60));
    let log = std::fs::read_to_string(&daemon.log).unwrap_or_default();
    assert!(
        matches!(code, Some(c) if c != 0),
        "exit {code:?}; log:\n{log}"
    );
    assert!(
        log.contains("the engine stopped after a storage failure"),
        "{log}"
    );
    std::fs::remove_file(filler).unwrap_or_else(|e| panic!("{e}"));
    control.set_latency(Duration::ZERO);
    let again = DaemonProcess::spawn(&setup, "again.log");
    let admin = Admin::wait(&setup.store, again.child.id()).await;
    let done = admin.wait_all_terminal(N, Duration::from_secs(120)).await;
    assert_eq!(done.len(), N);
    // Every change names the same employment and start day, so each one's row is the row
    // another of them wrote: none is a foreign overlap, not even while the writer's answer
    // is outstanding across the crash (it was, and `sibling-write-in-flight` waits for it).
    let not_sent: Vec<String> = done
        .iter()
        .filter(|w| w.state != salary_sync::domain::State::Sent)
        .map(|w| format!("{} {:?}: {:?}", w.id, w.state, w.last_failure))
        .collect();
    assert!(not_sent.is_empty(), "{not_sent:#?}");
    assert_eq!(again.terminate(), Some(0));
}

/// Issue 13 point 6: a direct-mode CLI command holding the store's lock while the daemon
/// starts made the start fail. The daemon now waits (logged) and starts when it is let go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue13_the_daemon_waits_for_a_store_lock_held_by_another_process() {
    let sim = start_sim(Seed::demo()).await;
    let setup = setup(&sim.control().base_url(), 50);
    let held = Store::open(&setup.store).unwrap_or_else(|e| panic!("{e}"));
    let mut daemon = DaemonProcess::spawn(&setup, "daemon.log");
    let started = Instant::now();
    loop {
        let log = std::fs::read_to_string(&daemon.log).unwrap_or_default();
        if log.contains("locked by another process") {
            break;
        }
        if let Ok(Some(status)) = daemon.child.try_wait() {
            panic!("the daemon exited ({status}) instead of waiting:\n{log}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no wait logged:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(held);
    let admin = Admin::wait(&setup.store, daemon.child.id()).await;
    assert!(admin.get("/admin/v1/health").await.is_some());
    assert_eq!(daemon.terminate(), Some(0));
}

/// Issue 13 point 9: under a permissive umask the store was readable by every local user.
/// Every directory under it is 0700 and every file 0600, whatever the umask.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue13_the_store_is_owner_only_under_a_permissive_umask() {
    use std::os::unix::fs::PermissionsExt;
    let sim = start_sim(Seed::demo()).await;
    let setup = setup(&sim.control().base_url(), 50);
    let seed = Seed::demo();
    let log = std::fs::File::create(setup.dir.path().join("daemon.log"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut child = Command::new("sh")
        .args(["-c", "umask 000 && exec \"$0\" \"$@\"", bin(), "--config"])
        .arg(&setup.config)
        .arg("run")
        .env(CONSUMER_ENV, &seed.consumer_token)
        .env(EMPLOYEE_ENV, &seed.employee_token)
        .env("SALARY_SYNC_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn: {e}"));
    let admin = Admin::wait(&setup.store, child.id()).await;
    admin
        .submit(&Value::Array(vec![created("e-1", "sal-1", "101")]))
        .await
        .unwrap_or_else(|| panic!("submit"));
    admin.wait_all_terminal(1, Duration::from_secs(60)).await;
    let mut wrong = Vec::new();
    let mut seen = 0;
    let mut dirs = vec![setup.store.clone()];
    while let Some(dir) = dirs.pop() {
        let mode = std::fs::metadata(&dir)
            .unwrap_or_else(|e| panic!("{e}"))
            .permissions()
            .mode();
        if mode & 0o777 != 0o700 {
            wrong.push(format!("{} {:o}", dir.display(), mode & 0o777));
        }
        for entry in std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{e}"))
            .flatten()
        {
            let meta = entry.metadata().unwrap_or_else(|e| panic!("{e}"));
            if meta.is_dir() {
                dirs.push(entry.path());
            } else {
                seen += 1;
                let mode = meta.permissions().mode() & 0o777;
                if mode != 0o600 {
                    wrong.push(format!("{} {mode:o}", entry.path().display()));
                }
            }
        }
    }
    // SAFETY: kill(2) with a pid we own and a valid signal number.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let _ = wait_exit(&mut child, Duration::from_secs(20));
    assert!(seen >= 4, "only {seen} files under the store");
    assert_eq!(wrong, Vec::<String>::new());
}
