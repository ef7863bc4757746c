//! Operations on the store that the admin API and the CLI's direct mode share: submit, list,
//! show, operator actions, error log. One implementation, two transports.

use crate::clock::Clock;
use crate::domain::change::parse_batch;
use crate::domain::{
    HistoryEntry, IntegrationId, OperatorAction, RetryPolicy, Workflow, WorkflowId,
};
use crate::engine::operator;
use crate::storage::{self, ErrorLogEntry, Filter, IngestOutcome, IntegrationSwitch, Store};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// What happened to each event of a submitted body, in body order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubmitItem {
    pub index: usize,
    pub event_id: Option<String>,
    /// `accepted`, `duplicate`, `conflict`, `invalid` or `unknown-integration`.
    pub outcome: String,
    pub workflow_id: Option<WorkflowId>,
    pub error: Option<String>,
    /// For an `invalid` event: the field at fault (`salary.amount`), for machines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("{0}")]
    Malformed(String),
    #[error(transparent)]
    Storage(#[from] storage::Error),
}

/// Validates and durably stores every valid event of `body`; invalid ones are reported, not
/// stored. Returns once the accepted ones are on disk.
pub async fn submit(
    store: &Store,
    integrations: &HashSet<IntegrationId>,
    body: &[u8],
    clock: &dyn Clock,
) -> Result<Vec<SubmitItem>, SubmitError> {
    let parsed = parse_batch(body).map_err(|e| SubmitError::Malformed(e.to_string()))?;
    let mut items = Vec::with_capacity(parsed.len());
    let mut to_store = Vec::new();
    let mut slots = Vec::new();
    for (index, result) in parsed.into_iter().enumerate() {
        match result {
            Err(e) => items.push(SubmitItem {
                index,
                event_id: None,
                outcome: "invalid".into(),
                workflow_id: None,
                error: Some(e.to_string()),
                field: Some(e.field),
            }),
            Ok(change) if !integrations.contains(&change.integration_id) => {
                items.push(SubmitItem {
                    index,
                    event_id: Some(change.event_id.to_string()),
                    outcome: "unknown-integration".into(),
                    workflow_id: None,
                    error: Some(format!(
                        "integration {} is not configured",
                        change.integration_id
                    )),
                    field: None,
                })
            }
            Ok(change) => {
                items.push(SubmitItem {
                    index,
                    event_id: Some(change.event_id.to_string()),
                    outcome: String::new(),
                    workflow_id: None,
                    error: None,
                    field: None,
                });
                slots.push(items.len() - 1);
                to_store.push(change);
            }
        }
    }
    if !to_store.is_empty() {
        let outcomes = store.ingest(to_store, clock.now()).await?;
        for (slot, outcome) in slots.into_iter().zip(outcomes) {
            let item = &mut items[slot];
            let (name, id, error) = match outcome {
                IngestOutcome::Accepted(id) => ("accepted", Some(id), None),
                IngestOutcome::Duplicate(id) => ("duplicate", Some(id), None),
                IngestOutcome::Conflict(id) => (
                    "conflict",
                    Some(id),
                    Some(format!(
                        "event id was already used by {id} with a different body; nothing stored"
                    )),
                ),
                IngestOutcome::NotEnabled => (
                    "not-enabled",
                    None,
                    Some("salary sync is not enabled for this integration (salary-sync integrations enable ID)".to_owned()),
                ),
                IngestOutcome::Skipped => (
                    "skipped",
                    None,
                    Some("occurred before salary sync was activated; logged, not sent".to_owned()),
                ),
            };
            item.outcome = name.into();
            item.workflow_id = id;
            item.error = error;
        }
    }
    for item in &items {
        crate::metrics::event_ingested(&item.outcome);
    }
    Ok(items)
}

/// Every instance the filter selects; unreadable ones are counted, not fatal.
pub fn list(store: &Store, filter: &Filter) -> Result<(Vec<Workflow>, usize), storage::Error> {
    let page = list_page(store, filter, None, None)?;
    Ok((page.instances, page.unreadable))
}

/// One page of a listing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Page {
    pub instances: Vec<Workflow>,
    /// Unreadable records met on the way (reported, not fatal).
    pub unreadable: usize,
    /// Records moved aside as unreadable (first page only), so a listing always says so.
    #[serde(default)]
    pub quarantined: Vec<storage::QuarantineEntry>,
    /// Pass as `after` for the next page; `None` on the last page.
    pub next_after: Option<WorkflowId>,
}

/// Instances the filter selects with an id above `after`, at most `limit`, in id order. Streams
/// the store: memory holds one page, not the whole store.
pub fn list_page(
    store: &Store,
    filter: &Filter,
    after: Option<WorkflowId>,
    limit: Option<usize>,
) -> Result<Page, storage::Error> {
    let mut page = Page {
        instances: Vec::new(),
        unreadable: 0,
        quarantined: if after.is_none() {
            store.quarantined()?
        } else {
            Vec::new()
        },
        next_after: None,
    };
    for item in store.list_after(filter, after) {
        match item {
            Ok(wf) => {
                if limit.is_some_and(|n| page.instances.len() >= n) {
                    page.next_after = page.instances.last().map(|w| w.id);
                    break;
                }
                page.instances.push(wf);
            }
            Err(storage::Error::Corrupt { .. }) => page.unreadable += 1,
            Err(e) => return Err(e),
        }
    }
    Ok(page)
}

/// One instance with its full history.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Shown {
    pub workflow: Workflow,
    pub history: Vec<HistoryEntry>,
}

pub fn show(store: &Store, id: WorkflowId) -> Result<Option<Shown>, storage::Error> {
    match store.get(id)? {
        None => Ok(None),
        Some(workflow) => Ok(Some(Shown {
            history: store.history(id)?,
            workflow,
        })),
    }
}

pub async fn operate(
    store: &Store,
    id: WorkflowId,
    action: OperatorAction,
    clock: &dyn Clock,
    policy: &dyn RetryPolicy,
) -> Result<Workflow, operator::Error> {
    operator::apply(store, id, action, clock, policy).await
}

pub fn errors(
    store: &Store,
    integration: Option<&IntegrationId>,
) -> Result<Vec<ErrorLogEntry>, storage::Error> {
    store.errors(integration)
}

/// One configured integration and its salary-sync switch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IntegrationView {
    pub id: IntegrationId,
    /// `None` until it was first enabled: salary sync is off.
    pub switch: Option<IntegrationSwitch>,
}

pub fn integrations(
    store: &Store,
    configured: &HashSet<IntegrationId>,
) -> Result<Vec<IntegrationView>, storage::Error> {
    let mut ids: Vec<_> = configured.iter().cloned().collect();
    ids.sort();
    ids.into_iter()
        .map(|id| {
            Ok(IntegrationView {
                switch: store.integration(&id)?,
                id,
            })
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum SwitchError {
    #[error("integration {0} is not in the configuration")]
    Unknown(IntegrationId),
    #[error(transparent)]
    Storage(#[from] storage::Error),
}

/// Enables (recording the activation instant, `from` or now) or disables salary sync.
pub async fn set_integration(
    store: &Store,
    configured: &HashSet<IntegrationId>,
    id: IntegrationId,
    enabled: bool,
    from: Option<chrono::DateTime<chrono::Utc>>,
    clock: &dyn Clock,
) -> Result<IntegrationView, SwitchError> {
    if !configured.contains(&id) {
        return Err(SwitchError::Unknown(id));
    }
    let switch = store
        .set_integration(id.clone(), enabled, from, clock.now())
        .await?;
    Ok(IntegrationView {
        id,
        switch: Some(switch),
    })
}

/// What `prune` removed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pruned {
    pub instances: u64,
    pub error_log_lines: u64,
    pub cutoff: chrono::DateTime<chrono::Utc>,
}

/// Removes terminal instances (and their history and error-log lines) older than `older_than`.
pub async fn prune(
    store: &Store,
    older_than: std::time::Duration,
    clock: &dyn Clock,
) -> Result<Pruned, storage::Error> {
    let age = chrono::Duration::from_std(older_than).unwrap_or(chrono::Duration::MAX);
    let cutoff = clock
        .now()
        .checked_sub_signed(age)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
    let (instances, error_log_lines) = store.prune(cutoff).await?;
    Ok(Pruned {
        instances,
        error_log_lines,
        cutoff,
    })
}

/// Parses `90d`, `12h`, `30m`, `45s`.
pub fn parse_age(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is not an age such as 90d, 12h, 30m"))?;
    let seconds = match unit {
        "d" => n.checked_mul(86_400),
        "h" => n.checked_mul(3_600),
        "m" => n.checked_mul(60),
        "s" | "" => Some(n),
        _ => None,
    }
    .ok_or_else(|| format!("`{s}` is not an age such as 90d, 12h, 30m"))?;
    Ok(std::time::Duration::from_secs(seconds))
}

/// Which instances a bulk operator action touches (also the CLI's flags for it).
#[derive(Debug, Clone, Default, clap::Args, serde::Serialize, serde::Deserialize)]
pub struct BulkFilter {
    /// Only this integration's instances.
    #[arg(long)]
    pub integration: Option<String>,
    /// Only instances whose last failure has this code (e.g. overlap, auth-rejected).
    #[arg(long)]
    pub code: Option<String>,
    /// Only this HR salary's instances.
    #[arg(long)]
    pub salary: Option<String>,
}

impl BulkFilter {
    pub fn is_empty(&self) -> bool {
        self.integration.is_none() && self.code.is_none() && self.salary.is_none()
    }
}

/// One instance's result in a bulk operator action.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BulkResult {
    pub id: WorkflowId,
    pub state: Option<crate::domain::State>,
    pub error: Option<String>,
}

/// Applies `action` (with its reason, kept in each history) to every instance the filter
/// selects, restricted to the states the action applies to.
pub async fn operate_many(
    store: &Store,
    action: OperatorAction,
    filter: &BulkFilter,
    clock: &dyn Clock,
    policy: &dyn RetryPolicy,
) -> Result<Vec<BulkResult>, String> {
    use crate::domain::State;
    let code = filter
        .code
        .as_deref()
        .map(|c| {
            crate::domain::FailureCode::ALL
                .into_iter()
                .find(|k| k.as_str() == c)
                .ok_or_else(|| format!("--code: `{c}` is not a failure code (see docs/runbook.md)"))
        })
        .transpose()?;
    let base = Filter {
        state: None,
        integration: filter
            .integration
            .as_deref()
            .map(IntegrationId::parse)
            .transpose()?,
        salary: filter
            .salary
            .as_deref()
            .map(crate::domain::SalaryId::parse)
            .transpose()?,
        since: None,
    };
    let wanted = |wf: &Workflow| {
        let state_ok = match &action {
            OperatorAction::Retry { .. } => wf.state == State::Failed,
            OperatorAction::Resolve { .. } => {
                wf.state == State::ManualDeleteRequired && wf.resolution.is_none()
            }
            OperatorAction::Cancel { .. } => !wf.state.is_terminal(),
        };
        state_ok && code.is_none_or(|c| wf.last_failure.as_ref().is_some_and(|f| f.code == c))
    };
    let (all, _) = list(store, &base).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for wf in all.into_iter().filter(|wf| wanted(wf)) {
        let result = operate(store, wf.id, action.clone(), clock, policy).await;
        out.push(match result {
            Ok(after) => BulkResult {
                id: wf.id,
                state: Some(after.state),
                error: None,
            },
            Err(e) => BulkResult {
                id: wf.id,
                state: None,
                error: Some(e.to_string()),
            },
        });
    }
    Ok(out)
}
