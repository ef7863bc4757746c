//! How a CLI command reaches the store: through the running daemon's admin API when there is
//! one, else by opening the store directly. The user never has to know which.
//!
//! `admin.json` may be stale (the daemon was killed) and its port taken by another process, so
//! the daemon must prove it holds the file's token (`api::proof`) before the CLI sends it the
//! token or any data; if it cannot, the CLI opens the store directly or says why it cannot.

use crate::api::admin::{ActionBody, BulkBody, Discovery, ListQuery, PruneBody, SwitchBody};
use crate::api::service::{self, BulkResult, IntegrationView, Pruned, Shown, SubmitItem};
use crate::clock::SystemClock;
use crate::domain::{IntegrationId, OperatorAction, Workflow, WorkflowId};
use crate::engine::RetrySettings;
use crate::storage::{self, ErrorLogEntry, Filter, Store};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

pub enum Backend {
    Direct {
        store: Box<Store>,
        integrations: HashSet<IntegrationId>,
        retry: RetrySettings,
    },
    Remote {
        client: reqwest::Client,
        base: String,
        token: String,
    },
}

impl Backend {
    /// Finds the daemon for `store_path`, or opens the store. `create` makes a missing store
    /// (for `submit`); otherwise a missing store is an error.
    pub async fn connect(
        store_path: &Path,
        integrations: HashSet<IntegrationId>,
        retry: RetrySettings,
        create: bool,
    ) -> Result<Self> {
        if let Some(d) = Discovery::read(store_path) {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?;
            let base = format!("http://{}", d.addr);
            if is_our_daemon(&client, &base, &d.token).await {
                return Ok(Self::Remote {
                    client,
                    base,
                    token: d.token,
                });
            }
        }
        if create {
            std::fs::create_dir_all(store_path).with_context(|| {
                format!("cannot create the store directory {}", store_path.display())
            })?;
        } else if !store_path.exists() {
            bail!(
                "no store at {} (has the daemon ever run with this config?)",
                store_path.display()
            );
        }
        match Store::open(store_path) {
            Ok(store) => Ok(Self::Direct { store: Box::new(store), integrations, retry }),
            Err(storage::Error::Locked { path }) => Err(anyhow!(
                "the store at {path} is held by another process, but no daemon answers on its admin API; if a daemon is starting, wait and try again"
            )),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn submit(&self, body: Vec<u8>) -> Result<Vec<SubmitItem>> {
        match self {
            Self::Direct {
                store,
                integrations,
                ..
            } => Ok(service::submit(store, integrations, &body, &SystemClock).await?),
            Self::Remote {
                client,
                base,
                token,
            } => {
                let r = client
                    .post(format!("{base}/admin/v1/events"))
                    .bearer_auth(token)
                    .body(body)
                    .send()
                    .await?;
                decode(r).await
            }
        }
    }

    pub async fn list(&self, query: &ListQuery) -> Result<(Vec<Workflow>, usize)> {
        let page = self.list_page(query).await?;
        Ok((page.instances, page.unreadable))
    }

    pub async fn list_page(&self, query: &ListQuery) -> Result<service::Page> {
        match self {
            Self::Direct { store, .. } => {
                let filter: Filter = query.to_filter().map_err(|e| anyhow!(e))?;
                let after = query.after_id().map_err(|e| anyhow!(e))?;
                Ok(service::list_page(store, &filter, after, query.limit)?)
            }
            Self::Remote {
                client,
                base,
                token,
            } => {
                let r = client
                    .get(format!("{base}/admin/v1/instances"))
                    .bearer_auth(token)
                    .query(query)
                    .send()
                    .await?;
                decode(r).await
            }
        }
    }

    pub async fn show(&self, id: WorkflowId) -> Result<Shown> {
        match self {
            Self::Direct { store, .. } => {
                service::show(store, id)?.ok_or_else(|| anyhow!("workflow {id} does not exist"))
            }
            Self::Remote {
                client,
                base,
                token,
            } => {
                let r = client
                    .get(format!("{base}/admin/v1/instances/{id}"))
                    .bearer_auth(token)
                    .send()
                    .await?;
                decode(r).await
            }
        }
    }

    pub async fn operate(&self, id: WorkflowId, action: OperatorAction) -> Result<Workflow> {
        match self {
            Self::Direct { store, retry, .. } => {
                Ok(service::operate(store, id, action, &SystemClock, retry).await?)
            }
            Self::Remote {
                client,
                base,
                token,
            } => {
                let (verb, reason) = (action.verb(), action.reason().to_owned());
                let r = client
                    .post(format!("{base}/admin/v1/instances/{id}/{verb}"))
                    .bearer_auth(token)
                    .json(&ActionBody {
                        reason: Some(reason),
                    })
                    .send()
                    .await?;
                decode(r).await
            }
        }
    }

    pub async fn errors(&self, integration: Option<&IntegrationId>) -> Result<Vec<ErrorLogEntry>> {
        match self {
            Self::Direct { store, .. } => Ok(service::errors(store, integration)?),
            Self::Remote {
                client,
                base,
                token,
            } => {
                let mut req = client
                    .get(format!("{base}/admin/v1/errors"))
                    .bearer_auth(token);
                if let Some(i) = integration {
                    req = req.query(&[("integration", i.as_str())]);
                }
                decode(req.send().await?).await
            }
        }
    }

    pub async fn integrations(&self) -> Result<Vec<IntegrationView>> {
        match self {
            Self::Direct {
                store,
                integrations,
                ..
            } => Ok(service::integrations(store, integrations)?),
            Self::Remote {
                client,
                base,
                token,
            } => {
                let r = client
                    .get(format!("{base}/admin/v1/integrations"))
                    .bearer_auth(token)
                    .send()
                    .await?;
                decode(r).await
            }
        }
    }

    pub async fn set_integration(
        &self,
        id: IntegrationId,
        enabled: bool,
        from: Option<String>,
    ) -> Result<IntegrationView> {
        match self {
            Self::Direct {
                store,
                integrations,
                ..
            } => {
                let from = crate::api::admin::parse_instant("--from", from.as_deref())
                    .map_err(|e| anyhow!(e))?;
                Ok(
                    service::set_integration(store, integrations, id, enabled, from, &SystemClock)
                        .await?,
                )
            }
            Self::Remote {
                client,
                base,
                token,
            } => {
                let verb = if enabled { "enable" } else { "disable" };
                let r = client
                    .post(format!("{base}/admin/v1/integrations/{id}/{verb}"))
                    .bearer_auth(token)
                    .json(&SwitchBody { from })
                    .send()
                    .await?;
                decode(r).await
            }
        }
    }

    pub async fn prune(&self, older_than: &str) -> Result<Pruned> {
        match self {
            Self::Direct { store, .. } => {
                let age = service::parse_age(older_than).map_err(|e| anyhow!(e))?;
                Ok(service::prune(store, age, &SystemClock).await?)
            }
            Self::Remote {
                client,
                base,
                token,
            } => {
                let r = client
                    .post(format!("{base}/admin/v1/prune"))
                    .bearer_auth(token)
                    .json(&PruneBody {
                        older_than: older_than.to_owned(),
                    })
                    .send()
                    .await?;
                decode(r).await
            }
        }
    }

    pub async fn operate_many(
        &self,
        action: OperatorAction,
        filter: crate::api::service::BulkFilter,
    ) -> Result<Vec<BulkResult>> {
        match self {
            Self::Direct { store, retry, .. } => {
                service::operate_many(store, action, &filter, &SystemClock, retry)
                    .await
                    .map_err(|e| anyhow!(e))
            }
            Self::Remote {
                client,
                base,
                token,
            } => {
                let (verb, reason) = (action.verb(), action.reason().to_owned());
                let r = client
                    .post(format!("{base}/admin/v1/bulk/{verb}"))
                    .bearer_auth(token)
                    .json(&BulkBody {
                        reason: Some(reason),
                        filter,
                    })
                    .send()
                    .await?;
                decode(r).await
            }
        }
    }

    pub fn mode(&self) -> &'static str {
        match self {
            Self::Direct { .. } => "store opened directly (daemon not running)",
            Self::Remote { .. } => "through the running daemon",
        }
    }
}

/// True when whoever answers at `base` proves it holds `token`. Nothing secret is sent: only
/// a fresh nonce. A listener that is not the daemon (a stale `admin.json` whose port another
/// process took) fails here and is told nothing more.
async fn is_our_daemon(client: &reqwest::Client, base: &str, token: &str) -> bool {
    use crate::api::proof::{self, ProofAnswer, ProofQuery};
    let nonce = proof::nonce();
    let answer = client
        .get(format!("{base}{}", proof::PATH))
        .query(&ProofQuery {
            nonce: nonce.clone(),
        })
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    let Ok(answer) = answer else {
        return false; // nobody listens: the daemon is not running
    };
    let proven = match answer.json::<ProofAnswer>().await {
        Ok(a) => proof::verify(token, &nonce, &a.proof),
        Err(_) => false,
    };
    if !proven {
        tracing::warn!(
            admin = base,
            "admin.json names this address, but what answers there is not this store's daemon \
             (it cannot prove it holds the token); nothing was sent to it"
        );
    }
    proven
}

async fn decode<T: serde::de::DeserializeOwned>(r: reqwest::Response) -> Result<T> {
    let status = r.status();
    let bytes = r.bytes().await.context("reading the daemon's answer")?;
    if !status.is_success() {
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        bail!("{message}");
    }
    serde_json::from_slice(&bytes).context("the daemon's answer does not decode")
}
