//! A stateful fake of Visma.net Payroll's Employee API v2 (the salary subset) and of Visma
//! Connect's token endpoint, for tests, the demo and benches.
//!
//! It follows what Visma publishes (docs/payroll-systems/visma.md) and, where Visma is silent,
//! the same assumptions the connector makes: the error body `{"message","errors":[..]}`, 412
//! for a stale `If-Match`, the `x-correlation-id` request header
//! recorded as a job's `correlationId`, `number`/`email` employee filters.
//!
//! # Serving
//! [`start`] binds `127.0.0.1:0` and returns a [`Handle`]. Clients use [`Control::base_url`]
//! (`http://127.0.0.1:PORT/v2`) and [`Control::token_url`] (`http://127.0.0.1:PORT/connect/token`).
//!
//! Routes: `POST /connect/token` (form: `grant_type=client_credentials`, `client_id`,
//! `client_secret`, `tenant_id`, `scope`; answers `access_token`, `expires_in`), and with
//! `Authorization: Bearer` and `Accept: application/vnd.no.payroll.employee.V2.0+json`:
//! `GET /employees[?number=&email=]`, `GET /employees/{id}`, `GET /employees/{id}/positions`,
//! `GET /employees/{id}/positions/{pid}` (with `ETag`), `PUT /employees/{id}/positions/{pid}`
//! (`If-Match` required: 428 without, 412 when stale; answers 202 with `Location` of a job),
//! `GET /employees/{id}/positions/jobs`, `GET /employees/{id}/positions/jobs/{jobId}`.
//! Lists are `{"data":[...]}` pages of `page-size` (default 50) carrying the next page's token
//! while more remain, nested as `{"cursor":{"nextToken":..}}` (the only cursor list model Visma
//! publishes: `vismagroup/TransPA-Public-API-Client`, `CursorDto`) or, with
//! [`CursorShape::TopLevel`], as `nextCursor`; fetched again with `cursor=` and the first page's
//! query parameters (changelog 1.0.4).
//!
//! # Jobs
//! A PUT changes nothing but the job list. A job answers `Queued`/`Running` until it has been
//! polled [`Seed::job_polls`] times and [`Seed::job_delay_ms`] has passed; it then runs: the
//! asked-for salary timeline is validated (each entry's amount present; no overlaps, no gaps)
//! and applied (`Succeeded`, statusCode 4, the ETag moves), or refused (`Failed` with
//! `validationResults`). Entries without `contractSalaryType` make the job succeed with the
//! warning "Salary update was not performed" and leave the salary as it was.
//!
//! # Faults
//! [`Control::set_latency`], and one-shot [`Fault`]s queued with [`Control::arm`]: 500, 503,
//! 429 with or without `Retry-After`, a slow body, a dropped connection, a concurrent edit
//! (the ETag moves), and for position PUTs "apply (queue the job), then drop" and "apply, then
//! hang", plus "the next job fails late" and "the next job skips the salary with the warning". [`Control::wait_for_writes`] lets a
//! crash test wait until a PUT was accepted. [`Control::expire_tokens`] ends every token.
//!
//! # Control API (not Visma's), for a simulator in another process
//! `GET|PUT|POST|DELETE /_sim/faults`, `POST /_sim/expire-tokens`,
//! `PUT /_sim/job-timing` (`{"polls":N,"delay_ms":M}`), `GET /_sim/salary?positionId=ID`,
//! `GET /_sim/jobs`, `GET /_sim/stats` (`{"writes","requests","tokens_issued","jobs"}`).
//!
//! Architecture Invariant: the state lives in memory only and changes only through the API,
//! [`Control`]'s methods or the control API; the `model` module holds the rules and does no I/O.

mod faults;
mod model;
mod server;
mod wire;

use std::io;
use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use faults::{Fault, FaultKind, Faults, JobFate};
pub use model::{
    guid, CursorShape, JobResult, JobStatus, JobView, SalaryEntry, Seed, SeedEmployee,
    SeedPosition, SALARY_NOT_PERFORMED,
};
pub use server::MEDIA_TYPE;

use server::{lock, Shared};

/// Starts a simulator seeded with `seed` on `127.0.0.1:0`.
pub async fn start(seed: Seed) -> io::Result<Handle> {
    start_on(seed, SocketAddr::from(([127, 0, 0, 1], 0))).await
}

/// Starts a simulator on a given address.
pub async fn start_on(seed: Seed, addr: SocketAddr) -> io::Result<Handle> {
    let tenant =
        model::Tenant::new(seed).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared::new(tenant, addr));
    let task = crate::simulators::conn::serve(
        listener,
        server::router(shared.clone()),
        shared.shutdown.subscribe(),
        "visma",
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
        crate::simulators::conn::join(self.task, "visma").await;
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

    /// `http://127.0.0.1:PORT/v2`: the API root.
    pub fn base_url(&self) -> String {
        format!("http://{}/v2", self.shared.addr)
    }

    /// `http://127.0.0.1:PORT/connect/token`: the token endpoint.
    pub fn token_url(&self) -> String {
        format!("http://{}{}", self.shared.addr, server::TOKEN_PATH)
    }

    /// `http://127.0.0.1:PORT`: the control API lives here (`/_sim/...`).
    pub fn root_url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// The salary timeline of one position, as stored (jobs that are due are run first).
    pub fn salary_entries(&self, position_id: &str) -> Vec<SalaryEntry> {
        let mut tenant = lock(&self.shared.tenant);
        tenant.settle(Instant::now());
        tenant
            .positions
            .get(position_id)
            .map(|p| p.salary.clone())
            .unwrap_or_default()
    }

    /// Every job, oldest first.
    pub fn jobs(&self) -> Vec<JobView> {
        lock(&self.shared.tenant)
            .jobs
            .iter()
            .map(|j| j.view.clone())
            .collect()
    }

    /// How many position PUTs were accepted as jobs, including those whose answer was then
    /// dropped or held by a fault.
    pub fn write_count(&self) -> u64 {
        *self.shared.writes.borrow()
    }

    /// How many API requests arrived (the token endpoint included, `/_sim/` not).
    pub fn request_count(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// How many tokens the token endpoint issued.
    pub fn tokens_issued(&self) -> u64 {
        lock(&self.shared.tenant).tokens_issued
    }

    /// Waits until at least `n` writes were accepted; false when `timeout` passed first.
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

    /// How jobs run from now on: `polls` polls answered Running, and at least `delay` after
    /// creation.
    pub fn set_job_timing(&self, polls: u32, delay: Duration) {
        let mut tenant = lock(&self.shared.tenant);
        tenant.seed.job_polls = polls;
        tenant.seed.job_delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    }

    /// Ends every token: the next API call gets 401 and the client must fetch a new one.
    pub fn expire_tokens(&self) {
        lock(&self.shared.tenant).expire_tokens();
    }
}

#[cfg(test)]
mod tests;
