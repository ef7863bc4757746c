//! A stateful fake of Tripletex API v2, the salary subset, for tests, the demo and benches.
//!
//! It speaks Tripletex's wire format as its OpenAPI spec (`contracts/tripletex/`)
//! describes it, and a contract test sends every request the connector makes through a Prism
//! proxy that checks requests and answers against that spec.
//!
//! # Serving
//! [`start`] binds `127.0.0.1:0` and returns a [`Handle`]. Clients use
//! [`Control::base_url`] (`http://127.0.0.1:PORT/v2`, like `https://tripletex.no/v2`). The same
//! routes are also served without the `/v2` prefix, so a Prism proxy in front can be given
//! either URL as its upstream; clients of the proxy then use `http://127.0.0.1:PRISM_PORT`
//! (no `/v2`: Prism matches spec paths and appends them to the upstream URL).
//!
//! Routes: `PUT /token/session/:create` (no auth), and with Basic auth (user `0` or the
//! company id, password a live session token): `GET /token/session/%3EwhoAmI`,
//! `GET /company/{id}`, `GET /employee[?id=&employeeNumber=&email=]`, `GET /employee/{id}`,
//! `GET /employee/employment[?employeeId=]`, `GET /employee/employment/{id}`,
//! `GET /employee/employment/details[?employmentId=]`, `GET /employee/employment/details/{id}`,
//! `POST /employee/employment/details` (201), `PUT /employee/employment/details/{id}`.
//! The `>` of `>whoAmI` must be percent-encoded, as reqwest and Prism send it: hyper's request
//! parser refuses a raw `>` with a bare 400 (RFC 3986 does not allow it in a path).
//!
//! Lists page with `from`/`count`; `fields=` is accepted and ignored (full objects come back).
//! An employee (`GET /employee`, `GET /employee/{id}`) comes back with its `employments` as
//! full Employment objects, the same as `GET /employee/employment` lists them (dates, details
//! references): what Tripletex nests when `fields` asks for `employments(...)`, so a client
//! reads an employee and its employments in one round trip.
//! A PUT is a partial update; a `version` in its body must equal the stored one (409/8000),
//! and a PUT without `version` is applied unchecked, as Tripletex documents. Versions start
//! at 0 and go up by one per write. Errors use Tripletex's envelope and codes: 401/3000,
//! 403/9000, 404/6000, 405/4000, 409/8000, 409/14000 (duplicate date, only with
//! [`Seed::reject_duplicate_dates`]), 422/15000 (value), 16000 (type), 21000 (query
//! parameter), 22000 (invalid JSON), 429, 500/1000, 503/1000. Every answer has
//! `x-tlx-request-id`; 2xx answers have `X-Rate-Limit-Limit/Remaining/Reset`.
//!
//! # Rate limit
//! Every API request counts against a budget of [`Seed::rate_limit`] requests per
//! [`Seed::rate_window_s`]-second period (fixed periods, back to back). `Remaining` is what is
//! left after this request, `Reset` the seconds left in the period, rounded up. Once the budget
//! is spent every request gets 429 (with `Remaining: 0` and `Reset`) until the period ends, as
//! Tripletex documents. The default budget is too large to matter;
//! [`Control::set_rate_limit`] tightens it.
//!
//! # Faults
//! [`Control::set_latency`] adds a delay to every answer; [`Control::arm`] queues one-shot
//! [`Fault`]s (500, 503, 429 with or without Reset, a slow body, a dropped connection, and for
//! details writes "apply, then drop" and "apply, then hang"), each for the next `times`
//! requests matching an optional method and path prefix. [`Control::wait_for_writes`] lets a
//! crash test wait until a write has landed.
//!
//! # Control API (not Tripletex's), for a simulator running in another process
//! - `GET /_sim/faults`, `PUT /_sim/faults` (replace, body [`Faults`]), `POST /_sim/faults`
//!   (arm one, body [`Fault`], e.g. `{"kind":"apply_then_drop","times":1,"method":"POST"}`),
//!   `DELETE /_sim/faults` (clear all, latency 0).
//! - `POST /_sim/expire-sessions`: every session token stops working (next call gets 401/3000).
//! - `GET /_sim/details[?employmentId=N]`: stored rows as [`DetailsRow`] JSON (amounts as
//!   decimal strings).
//! - `GET /_sim/stats`: `{"writes","requests","sessions","rate_limited"}` (`rate_limited`: 429s
//!   answered because the rate limit was spent).
//! - `GET /_sim/rate-limit`, `PUT /_sim/rate-limit` (body `{"limit": 8, "window_s": 1}`): the
//!   rate limit; a PUT starts a fresh period.
//!
//! Architecture Invariant: the simulator's state lives in memory only and changes only through
//! the API's writes, [`Control`]'s methods, or the control API; the `model` module holds the
//! rules and does no I/O.

mod faults;
mod model;
mod server;
mod wire;

use std::io;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use faults::{Fault, FaultKind, Faults};
pub use model::{
    DetailsRow, RemunerationType, Seed, SeedDetails, SeedEmployee, SeedEmployment, Terms,
};

use server::{lock, Shared};

/// Starts a simulator seeded with `seed` on `127.0.0.1:0`.
///
/// Fails with `InvalidInput` when the seed contradicts itself, or with the bind error.
pub async fn start(seed: Seed) -> io::Result<Handle> {
    start_on(seed, SocketAddr::from(([127, 0, 0, 1], 0))).await
}

/// Starts a simulator on a given address (for a simulator run as its own process).
pub async fn start_on(seed: Seed, addr: SocketAddr) -> io::Result<Handle> {
    let company =
        model::Company::new(seed).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared::new(company, addr));
    let task = crate::simulators::conn::serve(
        listener,
        server::router(shared.clone()),
        shared.shutdown.subscribe(),
        "tripletex",
    );
    Ok(Handle {
        control: Control { shared },
        task,
    })
}

/// The running simulator. Dereferences to [`Control`]; [`Handle::shutdown`] stops it.
///
/// Dropping a `Handle` without calling `shutdown` leaves the server task running until the
/// tokio runtime ends.
pub struct Handle {
    control: Control,
    task: JoinHandle<io::Result<()>>,
}

impl Handle {
    /// A cloneable controller for other tasks.
    pub fn control(&self) -> Control {
        self.control.clone()
    }

    /// Stops accepting, ends latency waits and hangs (their connections are closed without an
    /// answer), lets other open requests finish for up to 5 s, then joins the server task.
    pub async fn shutdown(self) {
        self.control.shared.shutdown.send_replace(true);
        crate::simulators::conn::join(self.task, "tripletex").await;
    }
}

impl Deref for Handle {
    type Target = Control;

    fn deref(&self) -> &Control {
        &self.control
    }
}

/// Inspects the simulator's state and sets its faults. Cheap to clone; all clones act on the
/// same simulator.
#[derive(Clone)]
pub struct Control {
    shared: Arc<Shared>,
}

impl Control {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `http://127.0.0.1:PORT/v2`: the base URL a Tripletex client uses.
    pub fn base_url(&self) -> String {
        format!("http://{}/v2", self.shared.addr)
    }

    /// `http://127.0.0.1:PORT`: the same routes without `/v2`; the control API lives here
    /// (`/_sim/...`).
    pub fn root_url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// The company's details rows for one employment, by id.
    pub fn details(&self, employment_id: i64) -> Vec<DetailsRow> {
        lock(&self.shared.company)
            .details_of(Some(&[employment_id]))
            .into_iter()
            .cloned()
            .collect()
    }

    /// The rows of one employment written through the API (POSTed), by id: not the seed's
    /// rows, nor the hiring row position sync made (an API write may have updated those).
    pub fn written_details(&self, employment_id: i64) -> Vec<DetailsRow> {
        self.details(employment_id)
            .into_iter()
            .filter(|d| !d.seeded)
            .collect()
    }

    /// Every details row, seeded and written, by id.
    pub fn all_details(&self) -> Vec<DetailsRow> {
        lock(&self.shared.company)
            .details_of(None)
            .into_iter()
            .cloned()
            .collect()
    }

    /// How many details writes (POST or PUT) were applied, including writes whose answer was
    /// then dropped or held by a fault.
    pub fn write_count(&self) -> u64 {
        *self.shared.writes.borrow()
    }

    /// How many Tripletex API requests arrived (not counting `/_sim/`).
    pub fn request_count(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// Sets the rate limit: `limit` requests per `window` (whole seconds, at least 1). The count
    /// starts again in a fresh period now.
    pub fn set_rate_limit(&self, limit: u32, window: Duration) {
        *lock(&self.shared.rate) = server::RateWindow::new(limit, window.as_secs());
    }

    /// How many requests were answered 429 because the rate limit was spent (not counting
    /// armed [`FaultKind::RateLimited`] faults).
    pub fn rate_limited_count(&self) -> u64 {
        self.shared.rate_limited.load(Ordering::Relaxed)
    }

    /// Waits until at least `n` writes were applied; false when `timeout` passed first. A crash
    /// test arms [`FaultKind::ApplyThenHang`], waits here, and then kills the client.
    pub async fn wait_for_writes(&self, n: u64, timeout: Duration) -> bool {
        let mut writes = self.shared.writes.subscribe();
        let reached = tokio::time::timeout(timeout, writes.wait_for(|w| *w >= n)).await;
        matches!(reached, Ok(Ok(_)))
    }

    /// The current fault settings.
    pub fn faults(&self) -> Faults {
        lock(&self.shared.faults).clone()
    }

    /// Replaces all fault settings.
    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.shared.faults) = faults;
    }

    /// Sets the latency added before every answer.
    pub fn set_latency(&self, latency: Duration) {
        lock(&self.shared.faults).latency_ms =
            u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
    }

    /// Arms one fault behind those already armed.
    pub fn arm(&self, fault: Fault) {
        lock(&self.shared.faults).armed.push(fault);
    }

    /// Disarms every fault and sets latency to 0.
    pub fn clear_faults(&self) {
        self.set_faults(Faults::default());
    }

    /// Ends every session: the next authenticated call gets 401/3000 and the client has to
    /// create a new session.
    pub fn expire_sessions(&self) {
        lock(&self.shared.company).expire_sessions();
    }

    /// How many session tokens are live.
    pub fn live_sessions(&self) -> usize {
        lock(&self.shared.company).sessions.len()
    }
}

#[cfg(test)]
mod tests;
