//! Operator actions (retry, resolve, cancel) on stored instances, through the same pure step
//! function and the same commit as the workers.

use crate::clock::Clock;
use crate::domain::{step, Input, OperatorAction, RetryPolicy, Workflow, WorkflowId};
use crate::storage::{self, Store};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Storage(#[from] storage::Error),
    #[error("workflow {0} does not exist")]
    NotFound(WorkflowId),
    #[error("{0}")]
    Refused(String),
}

/// Applies `action` to instance `id`. A worker may commit between our read and our write; we
/// then read again and retry, a bounded number of times.
pub async fn apply(
    store: &Store,
    id: WorkflowId,
    action: OperatorAction,
    clock: &dyn Clock,
    policy: &dyn RetryPolicy,
) -> Result<Workflow, Error> {
    const TRIES_MAX: usize = 5;
    let mut last = None;
    for _ in 0..TRIES_MAX {
        let wf = store.get(id)?.ok_or(Error::NotFound(id))?;
        let t = step(&wf, Input::Operator(action.clone()), clock.now(), policy).map_err(|e| {
            Error::Refused(format!(
                "cannot {} {id}: it is {} ({})",
                action.verb(),
                wf.state,
                e.why
            ))
        })?;
        match store.commit(t).await {
            Ok(t) => return Ok(t.workflow),
            Err(e @ storage::Error::Stale { .. }) => last = Some(e),
            Err(e) => return Err(e.into()),
        }
    }
    Err(last.map_or_else(|| Error::Refused("gave up".into()), Error::Storage))
}
