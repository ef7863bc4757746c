//! The engine: a scheduler that finds due instances in the store and a bounded pool of
//! workers that drive them through the connectors.
//!
//! Architecture Invariants: the engine is the only module that spawns long-lived tasks, and
//! `run` joins every one before it returns. Startup recovery is not a special routine: every
//! non-terminal instance is in the store's `due` index, so the first scheduler pass resumes
//! them all through the normal path. Changes to one (integration, salary) run one at a time,
//! oldest HR change first: only the head of the salary's queue is dispatched.
//!
//! The deterministic simulation (tests/it/simulation.rs) drives the engine without tasks,
//! semaphores or sleeps through two doc-hidden methods: `Engine::runnable` (the scheduler's
//! own dispatch rule, `dispatchable`) and `Engine::step_once` (the worker's own step,
//! `worker::step_once`). They add no logic of their own; the scheduler and the workers call the
//! same two functions.

pub mod operator;
pub mod retry;
mod worker;

pub use retry::RetrySettings;

use crate::clock::Clock;
use crate::connectors::Connector;
use crate::domain::{Failure, IntegrationId, WorkflowId};
use crate::storage::{self, Store};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

/// How many due instances one scheduler pass reads at most.
const DUE_SCAN_LEN_MAX: usize = 1024;
/// How often the scheduler looks again while every due instance is blocked.
const BLOCKED_POLL_MS: u64 = 100;
/// The longest the scheduler sleeps without looking at the store.
const IDLE_POLL_MS_MAX: u64 = 1_000;

#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Instances worked on at once, across all integrations.
    pub workers: usize,
    /// Instances of one integration worked on at once (default `workers`).
    pub per_integration: HashMap<IntegrationId, usize>,
    pub retry: RetrySettings,
    /// How long a stop waits for in-flight steps before abandoning them (they resume from
    /// their last commit at the next start).
    pub shutdown_grace: Duration,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            workers: 16,
            per_integration: HashMap::new(),
            retry: RetrySettings::default(),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// What the engine shares with its workers.
pub(crate) struct Shared {
    pub store: Arc<Store>,
    /// Replaced as a whole per integration when credentials are re-read (SIGHUP); a step
    /// takes its own clone, so a step in flight finishes on the connector it started with.
    connectors: std::sync::RwLock<HashMap<IntegrationId, Arc<dyn Connector>>>,
    pub retry: RetrySettings,
    pub clock: Arc<dyn Clock>,
    stop: watch::Receiver<bool>,
    unhealthy: Mutex<HashMap<IntegrationId, Failure>>,
    /// Set after the first scheduler pass: every non-terminal instance has been picked up.
    ready: std::sync::atomic::AtomicBool,
    /// Set when `run` stopped on a storage failure: the daemon is not ready and refuses
    /// ingest until it is restarted (sled refuses every write after an I/O error).
    failed: std::sync::atomic::AtomicBool,
}

impl Shared {
    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// The integration's connector, when the daemon is configured for it.
    pub fn connector(&self, integration: &IntegrationId) -> Option<Arc<dyn Connector>> {
        self.connectors
            .read()
            .ok()
            .and_then(|map| map.get(integration).cloned())
    }

    pub fn mark_unhealthy(&self, integration: &IntegrationId, failure: &Failure) {
        if let Ok(mut map) = self.unhealthy.lock() {
            if map.insert(integration.clone(), failure.clone()).is_none() {
                warn!(integration = %integration, error = %failure, "integration marked unhealthy: its workflows wait");
            }
        }
    }

    fn mark_healthy(&self, integration: &IntegrationId) {
        if let Ok(mut map) = self.unhealthy.lock() {
            if map.remove(integration).is_some() {
                info!(integration = %integration, "integration healthy again");
            }
        }
    }
}

/// A running engine's handle: wake it after new work arrives, read its health.
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
    wake: Arc<Notify>,
    settings: EngineSettings,
}

impl Engine {
    pub fn new(
        store: Arc<Store>,
        connectors: HashMap<IntegrationId, Arc<dyn Connector>>,
        clock: Arc<dyn Clock>,
        settings: EngineSettings,
        stop: watch::Receiver<bool>,
    ) -> Self {
        let shared = Shared {
            store,
            connectors: std::sync::RwLock::new(connectors),
            retry: settings.retry.clone(),
            clock,
            stop,
            unhealthy: Mutex::new(HashMap::new()),
            ready: std::sync::atomic::AtomicBool::new(false),
            failed: std::sync::atomic::AtomicBool::new(false),
        };
        Self {
            shared: Arc::new(shared),
            wake: Arc::new(Notify::new()),
            settings,
        }
    }

    /// Puts `fresh` connectors (built from re-read credentials) in place of the running ones
    /// with the same integration id; the next step of each instance uses them. An id the
    /// daemon did not start with is not added (that needs a restart): the ids replaced and
    /// the ids refused are returned.
    pub fn replace_connectors(
        &self,
        fresh: HashMap<IntegrationId, Arc<dyn Connector>>,
    ) -> (Vec<IntegrationId>, Vec<IntegrationId>) {
        let (mut replaced, mut refused) = (Vec::new(), Vec::new());
        if let Ok(mut map) = self.shared.connectors.write() {
            for (id, connector) in fresh {
                match map.get_mut(&id) {
                    Some(slot) => {
                        *slot = connector;
                        replaced.push(id);
                    }
                    None => refused.push(id),
                }
            }
        }
        replaced.sort();
        refused.sort();
        self.notify();
        (replaced, refused)
    }

    /// The integrations the daemon runs, sorted.
    pub fn integrations(&self) -> Vec<IntegrationId> {
        let mut ids: Vec<IntegrationId> = self
            .shared
            .connectors
            .read()
            .map(|map| map.keys().cloned().collect())
            .unwrap_or_default();
        ids.sort();
        ids
    }

    /// Tells the scheduler to look at the store now (new instances, operator retry).
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.shared.store
    }

    pub fn retry_policy(&self) -> &RetrySettings {
        &self.shared.retry
    }

    /// True once startup recovery is done (the first scheduler pass has run), until the
    /// engine stops on a storage failure.
    pub fn is_ready(&self) -> bool {
        self.shared.ready.load(std::sync::atomic::Ordering::Acquire) && !self.has_failed()
    }

    /// True once `run` stopped on a storage failure: nothing is processed any more, so intake
    /// must refuse (503) rather than acknowledge events no one will work on.
    pub fn has_failed(&self) -> bool {
        self.shared
            .failed
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Integrations whose credentials were refused, with the last refusal.
    pub fn unhealthy(&self) -> Vec<(IntegrationId, Failure)> {
        self.shared
            .unhealthy
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// Simulation seam: the instances the scheduler would start at the clock's current
    /// instant, in its order (earliest wake first), without in-flight or concurrency limits.
    /// A deterministic simulation picks one and calls `step_once`; the daemon never calls this.
    #[doc(hidden)]
    pub async fn runnable(&self) -> Result<Vec<crate::domain::Workflow>, storage::Error> {
        let now = self.shared.clock.now();
        let ids: Vec<WorkflowId> = self.shared.store.due(now, usize::MAX)?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(wf) = dispatchable(&self.shared, id, now).await? {
                out.push(wf);
            }
        }
        Ok(out)
    }

    /// Simulation seam: exactly one worker step of `wf` (one connector step and its commit;
    /// at the write, the intent commit, the write and its commit; a match whose connector
    /// knows the currency without a call, both transitions in one commit), the same code a worker
    /// runs in its loop. Returns the last committed copy (`None`: the instance is gone).
    #[doc(hidden)]
    pub async fn step_once(
        &self,
        wf: &crate::domain::Workflow,
    ) -> Result<Option<crate::domain::Workflow>, storage::Error> {
        worker::step_once(&self.shared, wf).await
    }

    /// Runs until the stop signal; then waits up to the grace period for in-flight steps and
    /// returns. Returns early only on a storage error (a failed write, or a read error in any
    /// scheduler pass, the first included), which is logged here and marks the engine failed
    /// (`has_failed`); the caller must treat it as fatal (`salary-sync run` exits non-zero).
    pub async fn run(&self) -> Result<(), storage::Error> {
        let result = self.schedule().await;
        if let Err(e) = &result {
            self.shared
                .failed
                .store(true, std::sync::atomic::Ordering::Release);
            error!(error = %e, "storage failed; the engine stopped: not ready, ingest refused (503)");
        }
        result
    }

    async fn schedule(&self) -> Result<(), storage::Error> {
        let shared = &self.shared;
        let mut stop = shared.stop.clone();
        let permits = Arc::new(Semaphore::new(self.settings.workers.max(1)));
        let in_flight: Arc<Mutex<HashSet<WorkflowId>>> = Arc::default();
        let mut integration_permits: HashMap<IntegrationId, Arc<Semaphore>> = HashMap::new();
        let mut workers = JoinSet::new();
        let mut fatal = None;
        info!(
            workers = self.settings.workers,
            "engine started; resuming every non-terminal instance"
        );
        while !shared.stopping() {
            while let Some(done) = workers.try_join_next() {
                if let Ok(Err(e)) = done {
                    fatal = Some(e);
                }
            }
            if let Some(e) = fatal.take() {
                let _ = stop_workers(&mut workers, self.settings.shutdown_grace).await;
                return Err(e);
            }
            let now = shared.clock.now();
            // With every worker busy nothing can start: skip the scan. Otherwise read the due
            // index lazily; the pass stops at the first instance no worker is free for.
            let scan_len = match permits.available_permits() {
                0 => 0,
                _ => DUE_SCAN_LEN_MAX,
            };
            let mut started = 0usize;
            for entry in shared.store.due_entries(now).take(scan_len) {
                let entry = entry?;
                // Every worker busy: nothing more can start in this pass.
                if permits.available_permits() == 0 {
                    break;
                }
                let id = entry.id;
                if in_flight.lock().map(|s| s.contains(&id)).unwrap_or(true) {
                    continue;
                }
                // One integration at its limit, or with its request-rate budget spent, must not
                // stop the others: skip, scan on. The index names the integration, so such an
                // instance is passed over unread.
                if entry
                    .integration
                    .as_ref()
                    .is_some_and(|i| self.blocked(i, &integration_permits))
                {
                    continue;
                }
                let Some(wf) = dispatchable(shared, id, now).await? else {
                    continue;
                };
                let integration = &wf.change.integration_id;
                if self.blocked(integration, &integration_permits) {
                    continue;
                }
                let own = Arc::clone(
                    integration_permits
                        .entry(integration.clone())
                        .or_insert_with(|| Arc::new(Semaphore::new(self.limit(integration)))),
                );
                let Ok(own_permit) = own.try_acquire_owned() else {
                    continue;
                };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    break;
                };
                if let Ok(mut set) = in_flight.lock() {
                    set.insert(id);
                }
                started += 1;
                let shared = Arc::clone(shared);
                let wake = Arc::clone(&self.wake);
                let in_flight = Arc::clone(&in_flight);
                workers.spawn(async move {
                    let integration = wf.change.integration_id.clone();
                    let result = worker::drive(&shared, wf).await;
                    if let Ok(wf) = &result {
                        if wf
                            .last_failure
                            .as_ref()
                            .is_none_or(|f| f.class != crate::domain::FailureClass::Auth)
                        {
                            shared.mark_healthy(&integration);
                        }
                    }
                    if let Ok(mut set) = in_flight.lock() {
                        set.remove(&id);
                    }
                    drop(permit);
                    drop(own_permit);
                    wake.notify_one();
                    result.map(|_| ())
                });
            }
            if !shared.ready.swap(true, std::sync::atomic::Ordering::AcqRel) {
                info!("recovery pass done; ready");
            }
            // While every worker is busy only a finishing worker (it wakes us, and `join_next`
            // sees it) can let the next instance start; polling the store would find nothing.
            let sleep_ms = if permits.available_permits() == 0 {
                IDLE_POLL_MS_MAX
            } else {
                match shared.store.next_wake()? {
                    // Everything due is blocked (behind an older change to its salary, or its
                    // integration at its limit); what unblocks it wakes us. Poll gently meanwhile.
                    Some(at) if started == 0 && at <= now => BLOCKED_POLL_MS,
                    Some(at) => (at - shared.clock.now())
                        .num_milliseconds()
                        .clamp(1, IDLE_POLL_MS_MAX as i64) as u64,
                    None => IDLE_POLL_MS_MAX,
                }
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(sleep_ms)) => {}
                _ = stop.changed() => {}
                Some(done) = workers.join_next(), if !workers.is_empty() => {
                    if let Ok(Err(e)) = done { fatal = Some(e); }
                }
            }
        }
        info!(
            in_flight = workers.len(),
            "engine stopping; letting in-flight steps finish"
        );
        stop_workers(&mut workers, self.settings.shutdown_grace).await
    }
}

impl Engine {
    /// Instances of `integration` worked on at once.
    fn limit(&self, integration: &IntegrationId) -> usize {
        self.settings
            .per_integration
            .get(integration)
            .copied()
            .unwrap_or(self.settings.workers)
            .max(1)
    }

    /// True when no instance of `integration` may start now: its request-rate budget is spent
    /// or as many of its instances as it may run are running.
    fn blocked(
        &self,
        integration: &IntegrationId,
        permits: &HashMap<IntegrationId, Arc<Semaphore>>,
    ) -> bool {
        self.shared
            .connector(integration)
            .is_some_and(|c| c.paced())
            || permits
                .get(integration)
                .is_some_and(|p| p.available_permits() == 0)
    }
}

/// The instance `id` if it may take a step now: readable (an unreadable one is quarantined
/// here) and the head of its salary's queue (otherwise it waits behind an older change to the
/// same salary). The scheduler and the simulation seam (`Engine::runnable`) both ask this.
async fn dispatchable(
    shared: &Shared,
    id: WorkflowId,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<crate::domain::Workflow>, storage::Error> {
    let wf = match shared.store.get(id) {
        Ok(Some(wf)) => wf,
        Ok(None) => return Ok(None),
        Err(storage::Error::Corrupt { key, reason }) => {
            error!(workflow_id = %id, %reason, "unreadable instance quarantined");
            shared
                .store
                .quarantine(id, format!("{key}: {reason}"), now)
                .await?;
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let head = shared.store.salary_head_of(&wf)?;
    if head.is_some() && head != Some(id) {
        return Ok(None);
    }
    Ok(Some(wf))
}

async fn stop_workers(
    workers: &mut JoinSet<Result<(), storage::Error>>,
    grace: Duration,
) -> Result<(), storage::Error> {
    let drain = async {
        let mut result = Ok(());
        while let Some(done) = workers.join_next().await {
            if let Ok(Err(e)) = done {
                result = Err(e);
            }
        }
        result
    };
    match tokio::time::timeout(grace, drain).await {
        Ok(result) => result,
        Err(_) => {
            warn!(
                abandoned = workers.len(),
                "grace period over; abandoning in-flight steps (they resume at the next start)"
            );
            workers.shutdown().await;
            Ok(())
        }
    }
}
