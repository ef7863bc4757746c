//! `salary-sync run`: the daemon, until SIGTERM or SIGINT.

use crate::clock::SystemClock;
use crate::config::Config;
use crate::daemon::{self, DaemonSettings, WebhookSettings};
use anyhow::{Context, Result};
use std::path::Path;
use std::sync::Arc;
use tracing::info;

pub async fn run(config_path: &Path) -> Result<()> {
    let config = Config::load(config_path).map_err(anyhow::Error::msg)?;
    let connectors = crate::daemon::connectors_from_config(&config).map_err(anyhow::Error::msg)?;
    let webhook = match &config.webhook {
        None => None,
        Some(w) => Some(WebhookSettings {
            listen: w.listen,
            secret: w
                .secret
                .load("webhook.secret")
                .map_err(anyhow::Error::msg)?,
            replay_window_s: w.replay_window_s,
            body_len_max: w.body_len_max,
            body_timeout: std::time::Duration::from_secs(w.body_timeout_s),
            occurred_at_future_max_s: w.occurred_at_future_max_s,
            limits: crate::api::listener::Limits {
                head_timeout: std::time::Duration::from_secs(w.head_timeout_s),
                connections_max: w.connections_max,
            },
        }),
    };
    let settings = DaemonSettings {
        store: config.store.clone(),
        admin_listen: config.admin_listen,
        health_listen: config.health_listen,
        engine: config.engine_settings(),
        webhook,
        retention: config.retention(),
        retention_sweep_every: config.retention_sweep_every(),
        store_cache_bytes: config.store_cache_mb.saturating_mul(1024 * 1024),
        store_lock_wait: std::time::Duration::from_secs(config.store_lock_wait_s),
    };
    let running = daemon::start(settings, connectors, Arc::new(SystemClock))
        .await
        .context("the daemon could not start")?;
    let webhook = match running.webhook_addr {
        Some(addr) => format!("webhook on {addr}"),
        None => "no [webhook] configured".to_owned(),
    };
    let health = match running.health_addr {
        Some(addr) => format!("health and metrics on {addr}"),
        None => "health and metrics on the admin API".to_owned(),
    };
    println!(
        "salary-sync running; {webhook}; admin API on {}; {health}",
        running.admin_addr
    );
    let stop = wait_for_stop_signal();
    tokio::pin!(stop);
    let mut hangups = Hangups::listen();
    loop {
        tokio::select! {
            _ = &mut stop => {
                info!("stop signal received; finishing in-flight steps");
                break;
            }
            _ = running.engine_stopped() => {
                tracing::error!(
                    "the engine stopped after a storage failure; the daemon stops and exits non-zero so a supervisor restarts it"
                );
                break;
            }
            _ = hangups.next() => reload_credentials(config_path, &running.engine),
        }
    }
    running.stop().await?;
    Ok(())
}

/// SIGHUP: read the configuration's credentials again (a rotated token file) and put
/// connectors built from them in place of the running ones. Anything else in the file that
/// changed needs a restart; a credential that cannot be read keeps the running ones.
fn reload_credentials(config_path: &Path, engine: &crate::engine::Engine) {
    let fresh =
        Config::load(config_path).and_then(|config| crate::daemon::connectors_from_config(&config));
    match fresh {
        Ok(fresh) => {
            let (replaced, refused) = engine.replace_connectors(fresh);
            let names = |ids: &[crate::domain::IntegrationId]| {
                ids.iter()
                    .map(|i| i.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            info!(
                replaced = %names(&replaced),
                "SIGHUP: credentials re-read; the next step of each instance uses them"
            );
            if !refused.is_empty() {
                tracing::warn!(
                    integrations = %names(&refused),
                    "SIGHUP: integrations the daemon did not start with are not added; restart to add them"
                );
            }
        }
        Err(e) => tracing::error!(
            error = %e,
            "SIGHUP: the credentials could not be re-read; the running ones are kept"
        ),
    }
}

/// SIGHUP as a stream; never yields where there is no such signal.
struct Hangups {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangups {
    fn listen() -> Self {
        #[cfg(unix)]
        {
            let signal =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            Self { signal }
        }
        #[cfg(not(unix))]
        Self {}
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        if let Some(signal) = self.signal.as_mut() {
            if signal.recv().await.is_some() {
                return;
            }
        }
        std::future::pending::<()>().await
    }
}

#[cfg(unix)]
async fn wait_for_stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_stop_signal() {
    let _ = tokio::signal::ctrl_c().await;
}
