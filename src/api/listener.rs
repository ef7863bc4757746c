//! The accept loop of the daemon's HTTP listeners, with the limits a listener needs when a
//! stranger can connect to it: a bound on open connections and a deadline for each request
//! head. `axum::serve` has neither: idle and slow-loris connections stayed open for ever, and a
//! few hundred of them used up the process's descriptors (issue 13, point 4).
//!
//! Each listener gets its own `Limits`, so a flood on the webhook cannot take the admin API's
//! connections. hyper's header-read timer starts whenever a connection waits for a request
//! head (a fresh connection, or a keep-alive one after its last answer), so `head_timeout`
//! bounds an idle connection, an idle keep-alive connection and a trickled head alike. The
//! body's deadline is the handler's (`webhook::read_body`). Also here: raising the soft limit
//! on open files at start, the other half of the same fault.

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tracing::{info, warn};

/// The limits of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A connection that has not sent a whole request head this long after it started waiting
    /// for one is closed.
    pub head_timeout: Duration,
    /// Connections open at once; one more is closed as soon as it is accepted.
    pub connections_max: usize,
}

impl Limits {
    /// The admin API's: it listens on loopback for the CLI, which opens one connection per
    /// command.
    pub const ADMIN: Limits = Limits {
        head_timeout: Duration::from_secs(30),
        connections_max: 64,
    };
}

/// Serves `router` on `listener` until `close` turns true, then lets the open connections
/// finish their request (idle ones close at once) and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    mut close: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.connections_max.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.head_timeout)
        .keep_alive(true);
    // Warn once each time the listener fills up, not once per refused connection.
    let full = AtomicBool::new(false);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = close.wait_for(|closing| *closing) => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(e) => {
                // Out of descriptors (EMFILE) or a connection reset before accept: the
                // listener itself is fine; give the process a moment to free descriptors.
                warn!(error = %e, "accept failed; trying again");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            if !full.swap(true, Ordering::Relaxed) {
                warn!(
                    connections_max = limits.connections_max,
                    "listener full: closing new connections until one ends"
                );
            }
            drop(stream);
            continue;
        };
        if full.swap(false, Ordering::Relaxed) {
            info!("listener below its connection limit again");
        }
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // A connection's end (a timeout, a reset, a protocol error) concerns that peer
            // only; hyper has already answered what can be answered.
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Raises the soft limit on open files to the hard limit (capped at `WANTED`), so the
/// connection limits, not the descriptor limit, decide when connections are refused. Returns
/// the (soft, hard) limit in force afterwards.
#[cfg(unix)]
pub fn raise_open_files_limit() -> std::io::Result<(u64, u64)> {
    const WANTED: libc::rlim_t = 65_536;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and reads nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let target = limit.rlim_max.min(WANTED).max(limit.rlim_cur);
    if target > limit.rlim_cur {
        let raised = libc::rlimit {
            rlim_cur: target,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we pass; a refusal is an error return.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        limit.rlim_cur = target;
    }
    Ok((limit.rlim_cur, limit.rlim_max))
}

#[cfg(not(unix))]
pub fn raise_open_files_limit() -> std::io::Result<(u64, u64)> {
    Ok((0, 0))
}
