//! Runs one workflow instance forward: call the connector for the current state's step, feed
//! the answer to the pure step function, commit, repeat until the instance is terminal or
//! must wait. Commit first, then act: the intent is durable before the payroll write starts.

use super::Shared;
use crate::connectors::{Connector, JobPoll, OverlapCheck, WriteStart};
use crate::domain::{
    step, Failure, FailureCode, Input, Intent, State, Transition, Workflow, WriteReport,
};
use crate::storage;
use std::sync::Arc;
use tracing::{debug, info, warn};

/// Steps `wf` until it is terminal, must wait, or the engine is stopping. Returns the last
/// committed copy.
pub(super) async fn drive(shared: &Shared, mut wf: Workflow) -> Result<Workflow, storage::Error> {
    loop {
        if wf.is_terminal() || shared.stopping() {
            return Ok(wf);
        }
        if wf.wake_at.is_some_and(|at| at > shared.clock.now()) {
            return Ok(wf);
        }
        // The integration's rate budget is spent: give the worker up; the instance stays due
        // and the scheduler starts it again after the reset.
        if shared
            .connector(&wf.change.integration_id)
            .is_some_and(|c| c.paced())
        {
            return Ok(wf);
        }
        match step_once(shared, &wf).await? {
            Some(next) => wf = next,
            None => return Ok(wf),
        }
    }
}

/// One step of `wf`: the connector call for its state and the commit of the result. A commit
/// refused as stale (an operator acted in between) yields the operator's copy; `None` when the
/// instance is gone.
pub(super) async fn step_once(
    shared: &Shared,
    wf: &Workflow,
) -> Result<Option<Workflow>, storage::Error> {
    let started = std::time::Instant::now();
    let result = one_step(shared, wf).await;
    crate::metrics::step_duration(
        wf.change.integration_id.as_str(),
        wf.state.as_str(),
        started.elapsed().as_secs_f64(),
    );
    match result {
        Ok(next) => Ok(Some(next)),
        // An operator changed the instance under us (cancel, retry): take theirs.
        Err(storage::Error::Stale { .. }) => shared.store.get(wf.id),
        Err(e) => Err(e),
    }
}

async fn one_step(shared: &Shared, wf: &Workflow) -> Result<Workflow, storage::Error> {
    let integration = &wf.change.integration_id;
    let Some(connector) = shared.connector(integration) else {
        let f = Failure::new(
            FailureCode::IntegrationMissing,
            crate::domain::FailureClass::Auth,
            format!("integration {integration} is not in the daemon's configuration; add it and restart"),
        );
        return commit(shared, wf, Input::StepFailed(f)).await;
    };
    let input = match wf.state {
        State::Pending => {
            if let Some(newer) = newer_change_applied(shared, wf)? {
                return commit(shared, wf, Input::StepFailed(newer)).await;
            }
            match connector.match_position(&wf.change).await {
                // The currency needs no payroll call: both steps in one commit.
                Ok(position) => match connector.known_currency() {
                    Some(currency) => {
                        return commit_two(
                            shared,
                            wf,
                            Input::Matched(position),
                            Input::CurrencyFound(currency),
                        )
                        .await
                    }
                    None => Ok(Input::Matched(position)),
                },
                Err(e) => Err(e),
            }
        }
        State::MatchedToPosition => connector.currency().await.map(Input::CurrencyFound),
        State::CurrencyValidated => check_overlap(shared, connector.as_ref(), wf).await?,
        State::OverlapChecked => return write(shared, connector, wf).await,
        State::Sent | State::Failed | State::ManualDeleteRequired => return Ok(wf.clone()),
    };
    let input = match input {
        Ok(input) => input,
        Err(e) => match failed(&e) {
            Some(input) => input,
            None => return Ok(wf.clone()),
        },
    };
    commit(shared, wf, input).await
}

/// The input a connector error makes, or `None` when the integration's request-rate budget
/// deferred the call (`Error::Paced`): then nothing is committed, no attempt is spent, and the
/// step runs again after the reset (every step is safe to repeat).
fn failed(e: &crate::connectors::Error) -> Option<Input> {
    match e {
        crate::connectors::Error::Paced { .. } => None,
        e => Some(Input::StepFailed(e.failure())),
    }
}

async fn check_overlap(
    shared: &Shared,
    connector: &dyn Connector,
    wf: &Workflow,
) -> Result<Result<Input, crate::connectors::Error>, storage::Error> {
    let Some(position) = &wf.position else {
        return Ok(Ok(missing_position()));
    };
    let change = &wf.change;
    let mut owned = shared
        .store
        .owned_record(&change.integration_id, &change.salary.id)?;
    if wf.intent.is_some() {
        // An earlier write's outcome is unknown (retried after a failure): a record it made is
        // ours, not a foreign overlap.
        match connector
            .find_written(change, position, owned.as_ref())
            .await
        {
            Ok(Some(found)) => owned = Some(found),
            Ok(None) => {}
            Err(e) => return Ok(Err(e)),
        }
    }
    let mut check = connector
        .check_overlap(change, position, owned.as_ref())
        .await;
    if check.as_ref().is_ok_and(OverlapCheck::is_conflict) {
        // Rows salary-sync wrote for the employee's other HR salaries are its own, not
        // foreign. Looked up only when there is a conflict: the lookup reads the integration's
        // record mappings. The writes still outstanding are read first: a sibling that
        // commits its record between the two reads is then found in one or the other.
        let in_flight = shared.store.writes_in_flight_on_employment(
            &change.integration_id,
            &position.employment_id,
            &change.salary.id,
        )?;
        let siblings = shared.store.records_on_employment(
            &change.integration_id,
            &position.employment_id,
            &change.salary.id,
        )?;
        if !siblings.is_empty() {
            check = connector
                .check_overlap_among(change, position, owned.as_ref(), &siblings)
                .await;
        }
        if let Some(sibling) = check
            .as_ref()
            .ok()
            .and_then(|c| c.conflict_start())
            .and_then(|conflict| in_flight.iter().find(|s| may_have_written(s, conflict)))
        {
            // The row may be that sibling's write, made but not yet recorded (in flight, or
            // its answer lost in a crash): wait for it to be recorded rather than fail.
            return Ok(Ok(Input::StepFailed(Failure::transient(
                FailureCode::SiblingWriteInFlight,
                format!(
                    "the conflicting record may be the write of {} (salary {}) for the same \
                     employment, still outstanding; checked again once it is recorded",
                    sibling.id, sibling.change.salary.id
                ),
            ))));
        }
    }
    Ok(check.map(|c| match c {
        OverlapCheck::Clear => Input::OverlapClear,
        OverlapCheck::Conflict { record_id, period } => Input::OverlapFound {
            record_id,
            record: period.to_string(),
        },
        OverlapCheck::ConflictDescribed {
            record_id,
            description,
            ..
        } => Input::OverlapFound {
            record_id,
            record: description,
        },
    }))
}

/// Whether `sibling`'s outstanding write could have made the conflicting record (`id`, in
/// force from `start`): it updates that record, or it creates one dated its own start.
fn may_have_written(sibling: &Workflow, (id, start): (&str, chrono::NaiveDate)) -> bool {
    let updates_it = sibling
        .intent
        .as_ref()
        .and_then(|i| i.updates.as_ref())
        .is_some_and(|r| r.id == id);
    updates_it || sibling.change.salary.start_date == start
}

async fn write(
    shared: &Shared,
    connector: Arc<dyn Connector>,
    wf: &Workflow,
) -> Result<Workflow, storage::Error> {
    let Some(position) = wf.position.clone() else {
        return commit(shared, wf, missing_position()).await;
    };
    let change = &wf.change;
    let owned = shared
        .store
        .owned_record(&change.integration_id, &change.salary.id)?;
    let wf = match &wf.intent {
        // A job is running in payroll: poll it, never write again.
        Some(Intent { job: Some(job), .. }) => {
            let input = match connector.poll_job(job, change, &position).await {
                Ok(JobPoll::Done(report)) => Input::Written(report),
                Ok(JobPoll::Running) => Input::StepFailed(Failure::transient(
                    FailureCode::JobRunning,
                    format!("payroll job {job} is still running"),
                )),
                Err(e) => match failed(&e) {
                    Some(input) => input,
                    None => return Ok(wf.clone()),
                },
            };
            return commit(shared, wf, input).await;
        }
        // Resumed with a write outstanding (crash, timeout, dropped connection): look before
        // writing again, for the record and then for a job that write may have started.
        Some(Intent { job: None, .. }) => {
            match connector
                .find_written(change, &position, owned.as_ref())
                .await
            {
                Ok(Some(record)) => {
                    info!(workflow_id = %wf.id, record = %record.id, "interrupted write found in payroll; adopting it");
                    let report = WriteReport {
                        record,
                        adopted: true,
                        dropped_fields: Vec::new(),
                        record_remains_after_delete: connector.delete_keeps_record(),
                    };
                    return commit(shared, wf, Input::Written(report)).await;
                }
                Ok(None) => {}
                Err(e) => match failed(&e) {
                    Some(input) => return commit(shared, wf, input).await,
                    None => return Ok(wf.clone()),
                },
            }
            match connector.find_job(change, &position).await {
                Ok(Some(job)) => {
                    info!(workflow_id = %wf.id, %job, "interrupted write found as a running job; polling it");
                    return commit(shared, wf, Input::JobAccepted { job }).await;
                }
                Ok(None) => {
                    debug!(workflow_id = %wf.id, "interrupted write left nothing in payroll; writing")
                }
                Err(e) => match failed(&e) {
                    Some(input) => return commit(shared, wf, input).await,
                    None => return Ok(wf.clone()),
                },
            }
            wf.clone()
        }
        None => {
            let wf = commit(
                shared,
                wf,
                Input::IntentRecorded {
                    updates: owned.clone(),
                },
            )
            .await?;
            if shared.stopping() {
                return Ok(wf);
            }
            wf
        }
    };
    let input = match connector
        .start_write(change, &position, owned.as_ref())
        .await
    {
        Ok(WriteStart::Done(report)) => Input::Written(report),
        Ok(WriteStart::Job { job }) => Input::JobAccepted { job },
        Err(e) => match failed(&e) {
            Some(input) => input,
            // The intent stays recorded: the next attempt looks for the record before
            // writing, as after a crash.
            None => return Ok(wf),
        },
    };
    commit(shared, &wf, input).await
}

/// An older change arriving (or retried) after a newer change to the same salary was applied
/// must not overwrite the newer values.
fn newer_change_applied(shared: &Shared, wf: &Workflow) -> Result<Option<Failure>, storage::Error> {
    let change = &wf.change;
    let applied = shared
        .store
        .applied(&change.integration_id, &change.salary.id)?;
    Ok(applied
        .filter(|a| a.applied_occurred_at > change.occurred_at)
        .map(|a| {
            Failure::permanent(
                FailureCode::Superseded,
                format!(
                    "a newer change to salary {} (occurred {}) is already in payroll; this change (occurred {}) is not sent",
                    change.salary.id, a.applied_occurred_at, change.occurred_at
                ),
            )
        }))
}

fn missing_position() -> Input {
    Input::StepFailed(Failure::permanent(
        FailureCode::UnexpectedAnswer,
        "internal: the instance has no matched position; retry it to match again",
    ))
}

async fn commit(shared: &Shared, wf: &Workflow, input: Input) -> Result<Workflow, storage::Error> {
    let transition = transition_for(shared, wf, input)?;
    commit_one(shared, transition).await
}

/// Logs `transition`, waits until it is durable, counts it; the committed copy of the instance.
async fn commit_one(shared: &Shared, transition: Transition) -> Result<Workflow, storage::Error> {
    log_transition(&transition);
    let waited = std::time::Instant::now();
    // The committer hands the transition back once it is durable: no copy is kept meanwhile.
    let transition = shared.store.commit(transition).await?;
    crate::metrics::transition_commit(waited.elapsed().as_secs_f64());
    counted(&transition);
    Ok(transition.workflow)
}

/// Two steps in one commit (one transaction, one fsync): `first` on `wf`, then `second` on
/// what it makes, when the second needed no payroll call. Both history entries are kept, and
/// nothing reaches payroll between them, so the rule "durable before the next payroll call"
/// holds. When the second input does not belong to the first's outcome (the first failed),
/// only the first is committed.
async fn commit_two(
    shared: &Shared,
    wf: &Workflow,
    first: Input,
    second: Input,
) -> Result<Workflow, storage::Error> {
    let first = transition_for(shared, wf, first)?;
    let Ok(second) = step(&first.workflow, second, shared.clock.now(), &shared.retry) else {
        return commit_one(shared, first).await;
    };
    log_transition(&first);
    log_transition(&second);
    apply_effects(shared, &second);
    let last = second.workflow.clone();
    let labels = [&first, &second].map(|t| {
        let code = t.entry.failure.as_ref().map(|f| f.code.as_str());
        (t.workflow.state, t.entry.event.clone(), code)
    });
    let waited = std::time::Instant::now();
    let results = shared.store.commit_many(vec![first, second]).await?;
    crate::metrics::transition_commit(waited.elapsed().as_secs_f64());
    for result in results {
        result?;
    }
    for (state, event, code) in labels {
        crate::metrics::transition(
            wf.change.integration_id.as_str(),
            state.as_str(),
            &event,
            code,
        );
    }
    Ok(last)
}

fn counted(t: &Transition) {
    crate::metrics::transition(
        t.workflow.change.integration_id.as_str(),
        t.workflow.state.as_str(),
        &t.entry.event,
        t.entry.failure.as_ref().map(|f| f.code.as_str()),
    );
}

/// The transition `input` makes of `wf` (an input the step refuses parks the instance), with
/// its effects on the engine's health map applied.
fn transition_for(
    shared: &Shared,
    wf: &Workflow,
    input: Input,
) -> Result<Transition, storage::Error> {
    let now = shared.clock.now();
    let transition: Transition = match step(wf, input, now, &shared.retry) {
        Ok(t) => t,
        Err(illegal) => {
            warn!(workflow_id = %wf.id, error = %illegal, "step refused; parking the instance");
            let f = Failure::permanent(
                FailureCode::UnexpectedAnswer,
                format!("internal: {illegal}"),
            );
            step(wf, Input::StepFailed(f), now, &shared.retry)
                .map_err(|e| storage::Error::Io(format!("cannot park {}: {e}", wf.id)))?
        }
    };
    apply_effects(shared, &transition);
    Ok(transition)
}

/// The engine's side of a transition's effects: an integration whose credentials were refused
/// is marked unhealthy.
fn apply_effects(shared: &Shared, t: &Transition) {
    for effect in &t.effects {
        if let crate::domain::Effect::IntegrationUnhealthy(f) = effect {
            shared.mark_unhealthy(&t.workflow.change.integration_id, f);
        }
    }
}

fn log_transition(t: &Transition) {
    let wf = &t.workflow;
    let from = t.entry.from.map_or("new", State::as_str);
    match &t.entry.failure {
        Some(f) => info!(
            workflow_id = %wf.id, integration = %wf.change.integration_id, salary = %wf.change.salary.id,
            from, state = %wf.state, event = %t.entry.event, code = %f.code, error = %f, "transition"
        ),
        None => info!(
            workflow_id = %wf.id, integration = %wf.change.integration_id, salary = %wf.change.salary.id,
            from, state = %wf.state, event = %t.entry.event, "transition"
        ),
    }
}
