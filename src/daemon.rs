//! Assembles a running daemon: the store, the engine and the admin API, with one stop signal
//! that every part watches. `start` is used by `salary-sync run`, by `demo` and by the tests.

use crate::api::admin::{self, AdminState, Discovery};
use crate::clock::Clock;
use crate::connectors::Connector;
use crate::domain::IntegrationId;
use crate::engine::{Engine, EngineSettings};
use crate::storage::{self, Store};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Storage(#[from] storage::Error),
    #[error("cannot listen on {addr} for the admin API: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Discovery {
        path: String,
        source: std::io::Error,
    },
    #[error("a task of the daemon failed: {0}")]
    Task(String),
}

pub struct DaemonSettings {
    pub store: PathBuf,
    pub admin_listen: SocketAddr,
    /// The probes' own listener (`health_listen`), when configured.
    pub health_listen: Option<SocketAddr>,
    pub engine: EngineSettings,
    pub webhook: Option<WebhookSettings>,
    /// Prune terminal instances older than this, every `retention_sweep_every`.
    pub retention: Option<std::time::Duration>,
    /// How often the retention sweep runs (the first sweep runs at start).
    pub retention_sweep_every: std::time::Duration,
    /// sled's page cache (see `Store::open_with_cache`).
    pub store_cache_bytes: u64,
    /// How long start waits for the store's lock held by another process (a short-lived
    /// direct-mode CLI command) before it gives up.
    pub store_lock_wait: std::time::Duration,
}

/// `store_lock_wait` when the configuration says nothing (`store_lock_wait_s`).
pub const STORE_LOCK_WAIT_DEFAULT: std::time::Duration = std::time::Duration::from_secs(30);

/// How often start tries the lock again while another process holds it.
const STORE_LOCK_RETRY: std::time::Duration = std::time::Duration::from_millis(100);

/// Opens the store, waiting up to `settings.store_lock_wait` (logged) while another process
/// holds its lock: a direct-mode CLI command run during a start must not kill the start.
async fn open_store(settings: &DaemonSettings) -> Result<Store, Error> {
    let started = std::time::Instant::now();
    let mut logged = false;
    loop {
        match Store::open_with_cache(&settings.store, settings.store_cache_bytes) {
            Err(storage::Error::Locked { path })
                if started.elapsed() < settings.store_lock_wait =>
            {
                if !logged {
                    tracing::warn!(
                        store = %path,
                        wait_s = settings.store_lock_wait.as_secs(),
                        "the store is locked by another process (a CLI command?); waiting for it"
                    );
                    logged = true;
                }
                tokio::time::sleep(STORE_LOCK_RETRY).await;
            }
            Err(e @ storage::Error::Locked { .. }) => {
                error!(
                    wait_s = settings.store_lock_wait.as_secs(),
                    "the store is still locked by another process; giving up"
                );
                return Err(e.into());
            }
            Err(e) => return Err(e.into()),
            Ok(store) => {
                if logged {
                    info!(
                        waited_ms = started.elapsed().as_millis() as u64,
                        "the store's lock was released; starting"
                    );
                }
                return Ok(store);
            }
        }
    }
}

/// The retention sweep's interval when nothing else is configured.
pub const RETENTION_SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// The signed webhook's listener and secret.
pub struct WebhookSettings {
    pub listen: SocketAddr,
    pub secret: crate::secret::Secret,
    pub replay_window_s: i64,
    pub body_len_max: usize,
    /// The whole body must arrive within this.
    pub body_timeout: std::time::Duration,
    /// How far in the future an event's `occurred_at` may lie.
    pub occurred_at_future_max_s: i64,
    /// The webhook listener's own connection limit and head deadline.
    pub limits: crate::api::listener::Limits,
}

/// A daemon started by `start`; stop it with `stop`.
pub struct RunningDaemon {
    pub admin_addr: SocketAddr,
    pub webhook_addr: Option<SocketAddr>,
    /// Where the probes' own listener is bound, when configured.
    pub health_addr: Option<SocketAddr>,
    pub engine: Engine,
    store_path: PathBuf,
    stop: watch::Sender<bool>,
    /// Closes the listeners; sent only after the engine has drained, so intake keeps answering
    /// 503 (rather than refusing connections) during the grace period.
    close: watch::Sender<bool>,
    engine_task: JoinHandle<Result<(), storage::Error>>,
    admin_task: JoinHandle<std::io::Result<()>>,
    webhook_task: Option<JoinHandle<std::io::Result<()>>>,
    health_task: Option<JoinHandle<std::io::Result<()>>>,
    retention_task: Option<JoinHandle<()>>,
}

pub async fn start(
    settings: DaemonSettings,
    connectors: HashMap<IntegrationId, Arc<dyn Connector>>,
    clock: Arc<dyn Clock>,
) -> Result<RunningDaemon, Error> {
    // Idle connections must meet the listeners' connection limits, not the descriptor limit.
    match crate::api::listener::raise_open_files_limit() {
        Ok((soft, hard)) => info!(soft, hard, "open files limit"),
        Err(e) => warn!(error = %e, "cannot raise the open files limit; keeping it"),
    }
    if !settings.admin_listen.ip().is_loopback() {
        warn!(
            admin = %settings.admin_listen,
            "the admin API listens beyond loopback (admin_listen_non_loopback = true): anyone \
             who can reach it and learns the token can act on every instance"
        );
    }
    let store = Arc::new(open_store(&settings).await?);
    let (stop, stop_rx) = watch::channel(false);
    let (close, close_rx) = watch::channel(false);
    let integrations: HashSet<IntegrationId> = connectors.keys().cloned().collect();
    let engine = Engine::new(
        Arc::clone(&store),
        connectors,
        Arc::clone(&clock),
        settings.engine,
        stop_rx.clone(),
    );
    let listener = tokio::net::TcpListener::bind(settings.admin_listen)
        .await
        .map_err(|source| Error::Listen {
            addr: settings.admin_listen,
            source,
        })?;
    let admin_addr = listener.local_addr().map_err(|source| Error::Listen {
        addr: settings.admin_listen,
        source,
    })?;
    let token = random_token();
    let integrations = Arc::new(integrations);
    let (webhook_addr, webhook_task) = match settings.webhook {
        None => (None, None),
        Some(w) => {
            let listener = tokio::net::TcpListener::bind(w.listen)
                .await
                .map_err(|source| Error::Listen {
                    addr: w.listen,
                    source,
                })?;
            let addr = listener.local_addr().map_err(|source| Error::Listen {
                addr: w.listen,
                source,
            })?;
            let router = crate::api::webhook::router(crate::api::webhook::WebhookState {
                engine: engine.clone(),
                integrations: Arc::clone(&integrations),
                clock: Arc::clone(&clock),
                secret: w.secret,
                replay_window_s: w.replay_window_s,
                body_len_max: w.body_len_max,
                body_timeout: w.body_timeout,
                occurred_at_future_max_s: w.occurred_at_future_max_s,
                stopping: stop_rx.clone(),
            });
            let task = tokio::spawn(crate::api::listener::serve(
                listener,
                router,
                w.limits,
                close_rx.clone(),
            ));
            info!(webhook = %addr, "webhook listening");
            (Some(addr), Some(task))
        }
    };
    let (health_addr, health_task) = match settings.health_listen {
        None => (None, None),
        Some(listen) => {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .map_err(|source| Error::Listen {
                    addr: listen,
                    source,
                })?;
            let addr = listener.local_addr().map_err(|source| Error::Listen {
                addr: listen,
                source,
            })?;
            let router = crate::api::probes::router(crate::api::probes::ProbeState {
                engine: engine.clone(),
                clock: Arc::clone(&clock),
            });
            let task = tokio::spawn(crate::api::listener::serve(
                listener,
                router,
                crate::api::listener::Limits::ADMIN,
                close_rx.clone(),
            ));
            info!(health = %addr, "health and metrics listening");
            (Some(addr), Some(task))
        }
    };
    let discovery = Discovery {
        addr: admin_addr,
        webhook: webhook_addr,
        health: health_addr,
        pid: std::process::id(),
        token: token.clone(),
    };
    discovery
        .write(&settings.store)
        .map_err(|source| Error::Discovery {
            path: Discovery::path(&settings.store).display().to_string(),
            source,
        })?;
    let state = AdminState {
        engine: engine.clone(),
        integrations,
        clock: Arc::clone(&clock),
        token: token.into(),
    };
    let router = admin::router(state).merge(crate::api::proof::router(discovery.token.into()));
    let admin_task = tokio::spawn(crate::api::listener::serve(
        listener,
        router,
        crate::api::listener::Limits::ADMIN,
        close_rx,
    ));
    let sweep_every = settings
        .retention_sweep_every
        .max(std::time::Duration::from_secs(1));
    let retention_task = settings.retention.map(|age| {
        let store = Arc::clone(engine.store());
        let clock = Arc::clone(&clock);
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            loop {
                match crate::api::service::prune(&store, age, clock.as_ref()).await {
                    Ok(p) => info!(
                        instances = p.instances,
                        error_log_lines = p.error_log_lines,
                        "retention sweep"
                    ),
                    Err(e) => {
                        error!(error = %e, "retention sweep failed; trying again at the next sweep")
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(sweep_every) => {}
                    _ = stop.wait_for(|stopping| *stopping) => return,
                }
            }
        })
    });
    let runner = engine.clone();
    let engine_task = tokio::spawn(async move { runner.run().await });
    info!(admin = %admin_addr, store = %settings.store.display(), "daemon started");
    Ok(RunningDaemon {
        admin_addr,
        webhook_addr,
        webhook_task,
        health_addr,
        health_task,
        retention_task,
        engine,
        store_path: settings.store,
        stop,
        close,
        engine_task,
        admin_task,
    })
}

impl RunningDaemon {
    /// Stops intake and the engine, waits for both (in-flight steps get the grace period),
    /// removes the discovery file. Every committed write is already durable.
    ///
    /// Order: the stop signal first (the webhook answers 503 from then on, the engine starts
    /// nothing new), then the engine drains within the grace period, and only then do the
    /// webhook and admin listeners close. A sender that posts during the grace period hears
    /// "shutting down, send again" rather than a refused connection.
    pub async fn stop(self) -> Result<(), Error> {
        let _ = self.stop.send(true);
        let engine = self
            .engine_task
            .await
            .map_err(|e| Error::Task(e.to_string()));
        let _ = self.close.send(true);
        let engine = engine?;
        let admin = self
            .admin_task
            .await
            .map_err(|e| Error::Task(e.to_string()))?;
        if let Some(task) = self.retention_task {
            let _ = task.await;
        }
        if let Some(task) = self.health_task {
            if let Err(e) = task.await.map_err(|e| Error::Task(e.to_string()))? {
                error!(error = %e, "the health listener stopped with an error");
            }
        }
        if let Some(task) = self.webhook_task {
            if let Err(e) = task.await.map_err(|e| Error::Task(e.to_string()))? {
                error!(error = %e, "webhook stopped with an error");
            }
        }
        Discovery::remove(&self.store_path);
        if let Err(e) = &admin {
            error!(error = %e, "admin API stopped with an error");
        }
        engine?;
        info!("daemon stopped");
        Ok(())
    }

    /// Resolves when the engine stops on its own (a storage failure).
    pub fn engine_finished(&self) -> bool {
        self.engine_task.is_finished()
    }

    /// Waits until the engine stops on its own (a storage failure): `run` then stops the daemon
    /// and exits non-zero, so a supervisor restarts it (sled refuses every write after an I/O
    /// error; only a new open recovers).
    pub async fn engine_stopped(&self) {
        while !self.engine_task.is_finished() {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Builds one connector per configured integration, reading each credential from its source.
/// The error names the key; it never holds a credential.
pub fn connectors_from_config(
    config: &crate::config::Config,
) -> Result<HashMap<IntegrationId, Arc<dyn Connector>>, String> {
    use crate::config::IntegrationConfig;
    use crate::connectors::http::{client, ClientSettings};
    use crate::connectors::tripletex::{TripletexConfig, TripletexConnector};
    let http = client(&ClientSettings::for_workers(config.workers)).map_err(|e| e.to_string())?;
    let mut out: HashMap<IntegrationId, Arc<dyn Connector>> = HashMap::new();
    for (i, integration) in config.integrations.iter().enumerate() {
        let id = IntegrationId::parse(integration.id())
            .map_err(|e| format!("integration[{i}].id: {e}"))?;
        let connector: Arc<dyn Connector> = match integration {
            IntegrationConfig::Tripletex {
                base_url,
                consumer_token,
                employee_token,
                company,
                ..
            } => {
                let config = TripletexConfig {
                    base_url: base_url.clone(),
                    consumer_token: consumer_token
                        .load(&format!("integration[{i}].consumer_token"))?,
                    employee_token: employee_token
                        .load(&format!("integration[{i}].employee_token"))?,
                    company: company.clone(),
                    session_days: 1,
                };
                Arc::new(
                    TripletexConnector::new(config, http.clone()).with_integration(id.as_str()),
                )
            }
            IntegrationConfig::Unimicro {
                base_url,
                token_url,
                company_key,
                client_id,
                client_secret,
                client_assertion_key,
                certificate_thumbprint,
                scope,
                ..
            } => {
                use crate::connectors::unimicro::assertion::AssertionKey;
                use crate::connectors::unimicro::{UnimicroConfig, UnimicroConnector};
                let assertion = match client_assertion_key {
                    Some(source) => {
                        let key = format!("integration[{i}].client_assertion_key");
                        let pem = source.load(&key)?;
                        let parsed =
                            AssertionKey::from_pem(pem.expose(), certificate_thumbprint.clone())
                                .map_err(|e| format!("{key}: {e}"))?;
                        Some(Arc::new(parsed))
                    }
                    None => None,
                };
                let client_secret = match client_secret {
                    Some(source) => source.load(&format!("integration[{i}].client_secret"))?,
                    None => crate::secret::Secret::new(String::new()),
                };
                let config = UnimicroConfig {
                    base_url: base_url.clone(),
                    token_url: token_url.clone(),
                    company_key: company_key.trim().to_owned(),
                    client_id: client_id.load(&format!("integration[{i}].client_id"))?,
                    client_secret,
                    scope: scope.clone().unwrap_or_else(|| "AppFramework".into()),
                    assertion,
                };
                Arc::new(UnimicroConnector::new(config, http.clone()))
            }
            IntegrationConfig::VismaPayroll {
                base_url,
                token_url,
                tenant_id,
                client_id,
                client_secret,
                scope,
                currency,
                api,
                ..
            } => {
                use crate::connectors::visma::{VismaConfig, VismaConnector};
                let currency = crate::domain::Currency::parse(currency.as_deref().unwrap_or("NOK"))
                    .map_err(|e| format!("integration[{i}].currency: {e}"))?;
                let config = VismaConfig {
                    base_url: base_url.clone(),
                    token_url: token_url.clone(),
                    tenant_id: tenant_id.clone(),
                    client_id: client_id.load(&format!("integration[{i}].client_id"))?,
                    client_secret: client_secret
                        .load(&format!("integration[{i}].client_secret"))?,
                    scope: scope.clone(),
                    currency,
                    api: api.as_ref().clone(),
                };
                Arc::new(VismaConnector::new(config, http.clone()))
            }
        };
        out.insert(id, connector);
    }
    Ok(out)
}
