//! A stateful fake of the Uni Economy API (Unimicro), the salary subset, for tests, the demo
//! and benches. It is written from Unimicro's public material and never imports the daemon's
//! connector modules, so a connector test checks the connector against an independent
//! reading of the vendor. Sources, per behaviour:
//!
//! - `CompanyKey` header, bearer token, 401 for an unknown path: Unimicro's developer guide
//!   ("troubleshooting"); scope `AppFramework`: `unimicro/Unimicro.MCP` (`src/config.ts`).
//! - `filter`/`expand`/`top`/`skip`, plain-array lists: Unimicro's developer guide on filtering.
//! - `companysettings` with `BaseCurrencyCodeID` and the navigation property
//!   `BaseCurrencyCode` (a `CurrencyCode` with `Code`) filled by `expand`: Unimicro's web
//!   client entity model (`unientities.ts`, `CompanySettings`) and its services, which ask for
//!   `BaseCurrencyCode` expanded and read `BaseCurrencyCode.Code`. The variants
//!   [`CurrencyShape::IdOnly`] and [`CurrencyShape::PlainString`] are settings.
//! - The certificate-signed client assertion: Unimicro's server-authentication guide and
//!   RFC 7523 (`assertion.rs`).
//! - `_createguid` on nested inserts, `"Deleted": true` to remove a child, errors as
//!   `{"Message"}` / `{"Messages":[..]}` with `_validationResults`: Unimicro's entity model and
//!   developer guides.
//! - Not published, so settings: the pay-rate collection's name
//!   ([`Seed::rate_collection`], `payrate.rs`), the record's field names.
//!
//! # Serving
//! [`start`] binds `127.0.0.1:0` and returns a [`Handle`]. Clients use [`Control::base_url`]
//! (`http://127.0.0.1:PORT`, routes under `/api/biz/`) and [`Control::token_url`]
//! (`http://127.0.0.1:PORT/connect/token`).
//!
//! Routes: `POST /connect/token` (form `grant_type=client_credentials`, `client_id`,
//! `client_secret`, `scope` containing `AppFramework`; errors are OAuth's
//! `{"error":"invalid_client"}` with 400). Every other route needs `Authorization: Bearer` with
//! a live token and `CompanyKey` equal to the seed's; otherwise, and for any path it does not
//! know, it answers 401 `{"Message":..}` as Unimicro does. `GET /api/biz/employees[/{id}]`,
//! `GET /api/biz/employments[/{id}]` (`expand=<rate collection>` adds the live pay-rate
//! records), `PUT /api/biz/employments/{id}` (a save with nested records: see `model.rs`),
//! `DELETE /api/biz/employments/{id}` (removes the whole employment, as Unimicro would: the
//! connector must never call it), `GET /api/biz/companysettings[/1]` (`expand=BaseCurrencyCode`), `GET /api/biz/currencycodes/{id}`. Lists are plain JSON
//! arrays with `filter` (`Field eq value [and ...]`, dotted paths; see `filter.rs`), `skip`
//! and `top`; `select` is accepted and ignored (full objects come back). Errors:
//! `{"Message":..}`, validation as `{"Message":"Validation failed","_validationResults":
//! {"Field":[{"Message":..}]}}` with 400, 5xx as `{"Messages":[{"Message":..}]}`. Every answer
//! has `x-request-id`.
//!
//! # Faults
//! The Tripletex simulator's fault switches, with the same types ([`Fault`], [`FaultKind`],
//! [`Faults`]): latency, 500, 503, 429 with `Retry-After: n` (`reset_s: Some(n)`) or without
//! (`None`), a slow body, a dropped connection, and for an applied employment save "apply,
//! then drop" and "apply, then hang". Path prefixes are matched against the request path
//! (e.g. `/api/biz/employments`). [`Control::expire_tokens`] ends every token.
//!
//! # Control API (not Unimicro's)
//! `GET|PUT|POST|DELETE /_sim/faults` (as in the Tripletex simulator), `POST
//! /_sim/expire-tokens`, `GET /_sim/rates[?employmentId=N]` (every stored record, deleted ones
//! flagged, amounts as decimal strings), `GET /_sim/stats` (`writes`, `requests`, `tokens`,
//! `tokens_issued`).
//!
//! Architecture Invariant: the state lives in memory only and changes only through the API's
//! writes, [`Control`]'s methods, or the control API; `model` holds the rules and does no I/O.

mod assertion;
mod filter;
mod model;
mod payrate;
mod server;

use std::io;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use crate::simulators::tripletex::{Fault, FaultKind, Faults};
pub use model::{CurrencyShape, Seed, SeedEmployee, SeedEmployment, SeedRate, StoredRate};
pub use payrate::RateType;

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
        "unimicro",
    );
    Ok(Handle {
        control: Control { shared },
        task,
    })
}

/// The running simulator. Dereferences to [`Control`]; [`Handle::shutdown`] stops it.
pub struct Handle {
    control: Control,
    task: JoinHandle<io::Result<()>>,
}

impl Handle {
    pub fn control(&self) -> Control {
        self.control.clone()
    }

    /// Stops accepting, ends latency waits and hangs, lets other open requests finish for up
    /// to 5 s, then joins the server task.
    pub async fn shutdown(self) {
        self.control.shared.shutdown.send_replace(true);
        crate::simulators::conn::join(self.task, "unimicro").await;
    }
}

impl Deref for Handle {
    type Target = Control;

    fn deref(&self) -> &Control {
        &self.control
    }
}

/// Inspects the simulator's state and sets its faults. Cheap to clone.
#[derive(Clone)]
pub struct Control {
    shared: Arc<Shared>,
}

impl Control {
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// `http://127.0.0.1:PORT`: the API root (routes under `/api/biz/`); the control API lives
    /// here too (`/_sim/...`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// The OAuth2 token endpoint.
    pub fn token_url(&self) -> String {
        format!("http://{}/connect/token", self.shared.addr)
    }

    /// Every pay-rate record of one employment, deleted ones included (flagged), by id.
    pub fn rates(&self, employment_id: i64) -> Vec<StoredRate> {
        lock(&self.shared.company)
            .rates_of(employment_id)
            .cloned()
            .collect()
    }

    /// The live (not deleted) pay-rate records of one employment.
    pub fn live_rates(&self, employment_id: i64) -> Vec<StoredRate> {
        self.rates(employment_id)
            .into_iter()
            .filter(|r| !r.deleted)
            .collect()
    }

    /// Employments removed with `DELETE /employments/{id}`.
    pub fn removed_employments(&self) -> Vec<i64> {
        lock(&self.shared.company).removed_employments.clone()
    }

    /// How many employment saves were applied, including saves whose answer was then dropped
    /// or held by a fault, and replays that inserted nothing.
    pub fn write_count(&self) -> u64 {
        *self.shared.writes.borrow()
    }

    /// How many API requests arrived (not counting `/_sim/`).
    pub fn request_count(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// How many tokens the token endpoint issued.
    pub fn tokens_issued(&self) -> u64 {
        lock(&self.shared.company).tokens_issued
    }

    /// Waits until at least `n` writes were applied; false when `timeout` passed first.
    pub async fn wait_for_writes(&self, n: u64, timeout: Duration) -> bool {
        let mut writes = self.shared.writes.subscribe();
        let reached = tokio::time::timeout(timeout, writes.wait_for(|w| *w >= n)).await;
        matches!(reached, Ok(Ok(_)))
    }

    pub fn faults(&self) -> Faults {
        lock(&self.shared.faults).clone()
    }

    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.shared.faults) = faults;
    }

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

    /// Ends every token: the next API call gets 401 and the client has to fetch a new one.
    pub fn expire_tokens(&self) {
        lock(&self.shared.company).expire_tokens();
    }

    /// How many tokens are live.
    pub fn live_tokens(&self) -> usize {
        lock(&self.shared.company).tokens.len()
    }
}
