//! Group commit: one thread applies every write. It takes all writes queued at that moment,
//! applies them in one multi-tree sled transaction, flushes, fsyncs the data file once, and
//! only then answers each caller. Many workers' transitions share one fsync; none is
//! answered before it is on disk.

use super::{
    codec, keys, Error, ErrorLogEntry, IngestOutcome, IntegrationSwitch, OwnedRecord,
    QuarantineEntry, Trees,
};
use crate::domain::{
    Effect, Failure, FailureCode, IntegrationId, SalaryChange, State, Transition, Workflow,
    WorkflowId,
};
use chrono::{DateTime, Utc};
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Transactional;
use std::fs::File;
use std::sync::{mpsc, Mutex};
use std::thread::JoinHandle;
use tokio::sync::oneshot;

/// The `events` value's id for a change skipped before activation (never a workflow id).
const SKIPPED_MARK: u64 = u64::MAX;

/// Writes taken in one group at most; bounds the transaction's size.
const GROUP_LEN_MAX: usize = 512;

pub(crate) enum Write {
    Ingest {
        changes: Vec<SalaryChange>,
        now: DateTime<Utc>,
    },
    Transition(Box<Transition>),
    /// Many transitions in one write (bulk tools and benches): each is checked and applied on
    /// its own, as if committed one by one, but they share one transaction and one fsync.
    Transitions(Vec<Transition>),
    Switch {
        integration: IntegrationId,
        enabled: bool,
        from: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    },
    Quarantine {
        id: WorkflowId,
        reason: String,
        now: DateTime<Utc>,
    },
    /// Removes these instances and their history if they are terminal and older than the
    /// cutoff, and error-log lines older than the cutoff.
    Prune {
        ids: Vec<WorkflowId>,
        cutoff: DateTime<Utc>,
    },
}

pub(crate) enum Reply {
    Ingested(Vec<IngestOutcome>),
    Committed,
    /// A transition is durable; here it is back, so the caller need not keep a copy.
    Transitioned(Box<Transition>),
    /// Each transition of a `Transitions` write: Ok, or why it was refused.
    TransitionedMany(Vec<Result<(), Error>>),
    Switched(IntegrationSwitch),
    /// What a prune removed: (integration, state) of each instance, and error-log lines.
    Pruned(Vec<(IntegrationId, State)>, u64),
}

impl Reply {
    pub fn into_ingested(self) -> Result<Vec<IngestOutcome>, Error> {
        match self {
            Self::Ingested(v) => Ok(v),
            _ => Err(Error::Io(
                "committer answered an ingest with something else".into(),
            )),
        }
    }

    pub fn into_transitioned(self) -> Result<Transition, Error> {
        match self {
            Self::Transitioned(t) => Ok(*t),
            _ => Err(Error::Io(
                "committer answered a commit with something else".into(),
            )),
        }
    }

    pub fn into_committed(self) -> Result<(), Error> {
        match self {
            Self::Committed => Ok(()),
            _ => Err(Error::Io(
                "committer answered a commit with something else".into(),
            )),
        }
    }
}

struct Request {
    write: Write,
    /// Workflow ids allocated for an ingest, before the transaction (sled ids are not
    /// transactional).
    ids: Vec<WorkflowId>,
    /// For a quarantine: the `due` and `salary_queue` keys naming the instance, found before
    /// the transaction (a transaction cannot scan, and the unreadable record cannot tell its
    /// wake time or salary). This thread is the only writer, so they are still current.
    index_keys: IndexKeys,
    reply: oneshot::Sender<Result<Reply, Error>>,
}

/// Instances per (integration, state), moved after each durable group.
pub(crate) type Counts = std::sync::Arc<Mutex<CountMap>>;
pub(crate) type CountMap = std::collections::HashMap<(IntegrationId, State), u64>;

const COUNTS_KEY: &[u8] = b"counts";

/// The instance counts as of one group commit, kept in `meta` so an open need not decode
/// every instance (which also pulls every page of a large store into sled's memory).
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredCounts {
    /// The commit they describe: trusted at open only when it is sled's last commit.
    commit: u64,
    counts: Vec<(IntegrationId, State, u64)>,
}

/// The counts kept at commit `commits`, if the store has them for exactly that commit (a
/// crash between a group's transaction and its counts, a quarantine, or an older store: no).
pub(crate) fn stored_counts(meta: &sled::Tree, commits: u64) -> Option<CountMap> {
    let bytes = meta.get(COUNTS_KEY).ok()??;
    let stored: StoredCounts = super::codec::decode(&bytes).ok()?;
    (stored.commit == commits).then(|| {
        stored
            .counts
            .into_iter()
            .map(|(integration, state, n)| ((integration, state), n))
            .collect()
    })
}

/// `counts` as the record kept for commit `commit`.
fn stored_counts_record(commit: u64, counts: &CountMap) -> Vec<u8> {
    super::codec::encode(&StoredCounts {
        commit,
        counts: counts
            .iter()
            .map(|((integration, state), n)| (integration.clone(), *state, *n))
            .collect(),
    })
}

/// The commit counter: its value in sled, and the file beside sled's that records how many
/// commits were acknowledged.
pub(crate) struct Mark {
    pub commits: u64,
    pub file: File,
}

const COMMITS_KEY: &[u8] = b"commits";

/// The number of group commits sled holds (0 for a store that never counted).
pub(crate) fn commits_in(meta: &sled::Tree) -> Result<u64, Error> {
    Ok(meta
        .get(COMMITS_KEY)?
        .and_then(|v| v.as_ref().try_into().ok())
        .map(u64::from_be_bytes)
        .unwrap_or(0))
}

impl Mark {
    /// Records one more acknowledged commit, after it is durable. A failed write only makes
    /// the check at open weaker, so it is logged, not fatal.
    fn acknowledge(&mut self) {
        use std::io::{Seek, SeekFrom, Write};
        self.commits += 1;
        let bytes = self.commits.to_be_bytes();
        let mut file = &self.file;
        if let Err(e) = file
            .seek(SeekFrom::Start(0))
            .and_then(|_| file.write_all(&bytes))
        {
            tracing::warn!(error = %e, "could not record the acknowledged commit count");
        }
    }
}

pub(crate) struct Committer {
    sender: Mutex<Option<mpsc::Sender<Request>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Committer {
    pub fn start(
        db: sled::Db,
        trees: Trees,
        data_file: File,
        counts: Counts,
        mark: Mark,
        blobs: BlobSync,
    ) -> Result<Self, Error> {
        let (sender, receiver) = mpsc::channel::<Request>();
        let thread = std::thread::Builder::new()
            .name("store-committer".into())
            .spawn(move || run(db, trees, data_file, receiver, counts, mark, blobs))?;
        Ok(Self {
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
        })
    }

    pub async fn submit(&self, write: Write) -> Result<Reply, Error> {
        let (reply, answer) = oneshot::channel();
        let request = Request {
            write,
            ids: Vec::new(),
            index_keys: IndexKeys::default(),
            reply,
        };
        {
            let guard = self.sender.lock().map_err(|_| Error::Closed)?;
            let sender = guard.as_ref().ok_or(Error::Closed)?;
            sender.send(request).map_err(|_| Error::Closed)?;
        }
        answer.await.map_err(|_| Error::Closed)?
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        if let Ok(mut sender) = self.sender.lock() {
            sender.take();
        }
        if let Ok(mut thread) = self.thread.lock() {
            if let Some(handle) = thread.take() {
                let _ = handle.join();
            }
        }
    }
}

fn run(
    db: sled::Db,
    trees: Trees,
    data_file: File,
    receiver: mpsc::Receiver<Request>,
    counts: Counts,
    mut mark: Mark,
    blobs: BlobSync,
) {
    while let Ok(first) = receiver.recv() {
        let mut group = vec![first];
        while group.len() < GROUP_LEN_MAX {
            match receiver.try_recv() {
                Ok(r) => group.push(r),
                Err(_) => break,
            }
        }
        for request in &mut group {
            if let Write::Ingest { changes, .. } = &request.write {
                request.ids = (0..changes.len())
                    .map(|_| db.generate_id().map(|n| WorkflowId(n + 1)))
                    .collect::<Result<_, _>>()
                    .unwrap_or_default();
            }
            if let Write::Quarantine { id, .. } = &request.write {
                request.index_keys = IndexKeys::naming(&trees, *id);
            }
        }
        let errors_pruned = prune_error_log(&trees, &group);
        let base = counts.lock().map(|m| m.clone()).unwrap_or_default();
        let applied = apply_group(&trees, &group, mark.commits + 1, &base);
        let (results, counted) = match applied {
            Ok((mut results, counted)) => {
                for result in &mut results {
                    if let Ok(Reply::Pruned(_, n)) = result {
                        *n = errors_pruned;
                    }
                }
                (Ok(results), Some(counted))
            }
            Err(e) => (Err(e), None),
        };
        let durable = db
            .flush()
            .map_err(Error::from)
            .and_then(|_| data_file.sync_data().map_err(Error::from))
            .and_then(|_| blobs.sync_new());
        match (results, durable) {
            (Ok(results), Ok(())) => {
                mark.acknowledge();
                if let (Some(map), Ok(mut live)) = (counted, counts.lock()) {
                    *live = map;
                }
                for (request, result) in group.into_iter().zip(results) {
                    let _ = request.reply.send(hand_back(request.write, result));
                }
            }
            (Err(e), _) | (Ok(_), Err(e)) => {
                tracing::error!(error = %e, writes = group.len(), "store write failed; nothing in this group is acknowledged");
                for request in group {
                    let answer = match &e {
                        Error::DiskFull(m) => Error::DiskFull(m.clone()),
                        e => Error::Io(e.to_string()),
                    };
                    let _ = request.reply.send(Err(answer));
                }
            }
        }
    }
    // Last flush on the way out; every answered write was already synced.
    let _ = db.flush();
}

/// sled writes a value above its blob threshold (a quarter of a 512 KiB segment, about
/// 128 KiB) to its own file under `blobs/` and never fsyncs it; `flush` makes it written, not
/// durable. After each group's data-file fsync the committer fsyncs every blob file it has not
/// synced yet, and the `blobs` directory when there was one, before it answers. Without blobs
/// this costs one read of an empty directory per group.
pub(crate) struct BlobSync {
    pub dir: std::path::PathBuf,
    /// The names already synced (shared with the store, for tests).
    pub synced: std::sync::Arc<Mutex<std::collections::HashSet<String>>>,
}

impl BlobSync {
    fn sync_new(&self) -> Result<(), Error> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let mut synced = self
            .synced
            .lock()
            .map_err(|_| Error::Io("blob sync list poisoned".into()))?;
        let mut new = 0;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if synced.contains(&name) {
                continue;
            }
            match File::open(entry.path()) {
                Ok(file) => file.sync_all()?,
                // sled removed it meanwhile (a rewritten or deleted value).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            }
            synced.insert(name);
            new += 1;
        }
        if new > 0 {
            File::open(&self.dir)?.sync_all()?;
        }
        Ok(())
    }
}

/// A committed transition goes back to its caller by value (no copy kept for the reply).
fn hand_back(write: Write, result: Result<Reply, Error>) -> Result<Reply, Error> {
    match (write, result) {
        (Write::Transition(t), Ok(Reply::Committed)) => Ok(Reply::Transitioned(t)),
        (_, result) => result,
    }
}

type Tx<'a> = (
    &'a TransactionalTree,
    &'a TransactionalTree,
    &'a TransactionalTree,
    &'a TransactionalTree,
    &'a TransactionalTree,
    &'a TransactionalTree,
    &'a TransactionalTree,
    &'a TransactionalTree,
    &'a TransactionalTree,
    &'a TransactionalTree,
    &'a TransactionalTree,
);

/// Applies the whole group in one transaction; per-write refusals (stale, not found) are
/// answers, not aborts.
fn apply_group(
    trees: &Trees,
    group: &[Request],
    commits: u64,
    counts: &CountMap,
) -> Result<(Vec<Result<Reply, Error>>, CountMap), Error> {
    let t = trees;
    let outcome = (
        &t.instances,
        &t.history,
        &t.by_state,
        &t.due,
        &t.events,
        &t.salary_queue,
        &t.records,
        &t.errors,
        &t.quarantine,
        &t.integrations,
        &t.meta,
    )
        .transaction(|(i, h, s, d, e, q, r, l, z, g, m)| {
            m.insert(COMMITS_KEY, &commits.to_be_bytes())?;
            let tx: Tx = (i, h, s, d, e, q, r, l, z, g, m);
            let mut results = Vec::with_capacity(group.len());
            for request in group {
                let result = match &request.write {
                    Write::Ingest { changes, now } => {
                        ingest(&tx, changes, &request.ids, *now).map(Reply::Ingested)
                    }
                    // The reply hands the transition back; it is moved out of the request
                    // once the group is durable (`hand_back`).
                    Write::Transition(t) => transition(&tx, t).map(|()| Reply::Committed),
                    Write::Transitions(ts) => transitions(&tx, ts).map(Reply::TransitionedMany),
                    Write::Switch {
                        integration,
                        enabled,
                        from,
                        now,
                    } => switch(&tx, integration, *enabled, *from, *now).map(Reply::Switched),
                    Write::Quarantine { id, reason, now } => {
                        quarantine(&tx, *id, &request.index_keys, reason, *now)
                            .map(|()| Reply::Committed)
                    }
                    Write::Prune { ids, cutoff } => {
                        prune(&tx, ids, *cutoff).map(|removed| Reply::Pruned(removed, 0))
                    }
                };
                match result {
                    Ok(reply) => results.push(Ok(reply)),
                    Err(Abortable::Refused(e)) => results.push(Err(e)),
                    Err(Abortable::Sled(e)) => return Err(e),
                }
            }
            // The counts after this group, in the same transaction. A quarantined
            // instance's state is unknown, so such a group drops them instead.
            let mut counted = counts.clone();
            count(&mut counted, group, &results);
            if group
                .iter()
                .any(|r| matches!(r.write, Write::Quarantine { .. }))
            {
                m.remove(COUNTS_KEY)?;
            } else {
                m.insert(COUNTS_KEY, stored_counts_record(commits, &counted))?;
            }
            Ok((results, counted))
        });
    outcome.map_err(|e: TransactionError<Error>| match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => Error::from(e),
    })
}

/// A write refused on its own (the group goes on), or a sled failure that aborts the group.
enum Abortable {
    Refused(Error),
    Sled(ConflictableTransactionError<Error>),
}

impl From<sled::transaction::UnabortableTransactionError> for Abortable {
    fn from(e: sled::transaction::UnabortableTransactionError) -> Self {
        Self::Sled(e.into())
    }
}

fn ingest(
    tx: &Tx,
    changes: &[SalaryChange],
    ids: &[WorkflowId],
    now: DateTime<Utc>,
) -> Result<Vec<IngestOutcome>, Abortable> {
    let (instances, history, by_state, due, events, salary_queue, _, errors, _, integrations, _) =
        *tx;
    if ids.len() != changes.len() {
        return Err(Abortable::Refused(Error::Io(
            "could not allocate workflow ids".into(),
        )));
    }
    let mut outcomes = Vec::with_capacity(changes.len());
    for (change, &id) in changes.iter().zip(ids) {
        let event_key = keys::event(&change.integration_id, change.event_id.as_str());
        let fingerprint = codec::fingerprint(&codec::encode(change));
        if let Some(existing) = events.get(&event_key)? {
            let known_id = existing
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            let known_fp = existing
                .get(8..16)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_be_bytes);
            if known_id == SKIPPED_MARK {
                outcomes.push(IngestOutcome::Skipped);
                continue;
            }
            let known_id = WorkflowId(known_id);
            outcomes.push(if known_fp == Some(fingerprint) {
                IngestOutcome::Duplicate(known_id)
            } else {
                IngestOutcome::Conflict(known_id)
            });
            continue;
        }
        let switch_key = change.integration_id.as_str().as_bytes();
        let switch: Option<IntegrationSwitch> = match integrations.get(switch_key)? {
            Some(bytes) => codec::decode(&bytes).ok(),
            None => None,
        };
        let Some(mut switch) = switch.filter(|s| s.enabled) else {
            outcomes.push(IngestOutcome::NotEnabled);
            continue;
        };
        if switch
            .activated_at
            .is_some_and(|at| change.occurred_at < at)
        {
            let mut event_value = SKIPPED_MARK.to_be_bytes().to_vec();
            event_value.extend_from_slice(&fingerprint.to_be_bytes());
            events.insert(event_key, event_value)?;
            switch.skipped += 1;
            integrations.insert(switch_key, codec::encode(&switch))?;
            let failure = Failure::permanent(
                FailureCode::BeforeActivation,
                format!(
                    "{} of salary {} (event {}) occurred {} before salary sync was activated at {}; not sent",
                    change.kind,
                    change.salary.id,
                    change.event_id,
                    change.occurred_at,
                    switch.activated_at.map(|t| t.to_rfc3339()).unwrap_or_default()
                ),
            );
            let entry = ErrorLogEntry {
                at: now,
                integration: change.integration_id.clone(),
                workflow_id: None,
                salary_id: change.salary.id.clone(),
                failure,
            };
            errors.insert(
                keys::error_log(
                    &change.integration_id,
                    now,
                    WorkflowId(u64::MAX),
                    switch.skipped as u32,
                ),
                codec::encode(&entry),
            )?;
            outcomes.push(IngestOutcome::Skipped);
            continue;
        }
        let (wf, entry) = Workflow::accept(id, change.clone(), now);
        instances.insert(&keys::instance(id), codec::encode(&wf))?;
        history.insert(&keys::history(id, entry.seq), codec::encode(&entry))?;
        by_state.insert(&keys::by_state(wf.state, id), &[])?;
        if let Some(wake) = wf.wake_at {
            due.insert(
                &keys::due(wake, id),
                change.integration_id.as_str().as_bytes(),
            )?;
        }
        let mut event_value = id.0.to_be_bytes().to_vec();
        event_value.extend_from_slice(&fingerprint.to_be_bytes());
        events.insert(event_key, event_value)?;
        salary_queue.insert(
            keys::salary_queue(
                &change.integration_id,
                &change.salary.id,
                change.occurred_at,
                id,
            ),
            &[],
        )?;
        outcomes.push(IngestOutcome::Accepted(id));
    }
    Ok(outcomes)
}

fn transition(tx: &Tx, t: &Transition) -> Result<(), Abortable> {
    let (instances, history, by_state, due, _events, salary_queue, records, errors, _, _, _) = *tx;
    let new = &t.workflow;
    let id = new.id;
    let old_bytes = instances
        .get(keys::instance(id))?
        .ok_or(Abortable::Refused(Error::NotFound(id)))?;
    let old: Workflow = codec::decode(&old_bytes).map_err(|e| {
        Abortable::Refused(Error::Corrupt {
            key: id.to_string(),
            reason: e.to_string(),
        })
    })?;
    if old.history_len != t.entry.seq {
        return Err(Abortable::Refused(Error::Stale {
            id,
            expected: t.entry.seq,
            found: old.history_len,
        }));
    }
    instances.insert(&keys::instance(id), codec::encode(new))?;
    history.insert(&keys::history(id, t.entry.seq), codec::encode(&t.entry))?;
    if old.state != new.state {
        by_state.remove(&keys::by_state(old.state, id))?;
        by_state.insert(&keys::by_state(new.state, id), &[])?;
    }
    if old.wake_at != new.wake_at {
        if let Some(wake) = old.wake_at {
            due.remove(&keys::due(wake, id))?;
        }
    }
    if let Some(wake) = new.wake_at.filter(|_| old.wake_at != new.wake_at) {
        due.insert(
            &keys::due(wake, id),
            new.change.integration_id.as_str().as_bytes(),
        )?;
    }
    let change = &new.change;
    let queue_key = keys::salary_queue(
        &change.integration_id,
        &change.salary.id,
        change.occurred_at,
        id,
    );
    // A terminal instance leaves its salary's queue, unless its write's outcome is unknown (an
    // intent outstanding: retries ran out, or it was cancelled, mid-write). Then it keeps the
    // salary: a later change must not write beside a record that may already be there (it
    // would write a second one). An operator retry reconciles and adopts it, and the salary
    // moves on (found by the simulation).
    if queued(new) {
        if !queued(&old) {
            salary_queue.insert(queue_key, &[])?;
        }
    } else {
        salary_queue.remove(queue_key)?;
    }
    for effect in &t.effects {
        match effect {
            Effect::RememberRecord(record) => {
                let owned = OwnedRecord {
                    record: Some(record.clone()),
                    applied_occurred_at: change.occurred_at,
                };
                records.insert(
                    keys::record(&change.integration_id, &change.salary.id),
                    codec::encode(&owned),
                )?;
            }
            Effect::ForgetRecord => {
                // The record is gone, but the time of the change that removed it stays: an
                // older change arriving later must not bring the salary back.
                let owned = OwnedRecord {
                    record: None,
                    applied_occurred_at: change.occurred_at,
                };
                records.insert(
                    keys::record(&change.integration_id, &change.salary.id),
                    codec::encode(&owned),
                )?;
            }
            Effect::LogError(failure) | Effect::IntegrationUnhealthy(failure) => {
                let entry = ErrorLogEntry {
                    at: t.entry.at,
                    integration: change.integration_id.clone(),
                    workflow_id: Some(id),
                    salary_id: change.salary.id.clone(),
                    failure: failure.clone(),
                };
                errors.insert(
                    keys::error_log(&change.integration_id, t.entry.at, id, t.entry.seq),
                    codec::encode(&entry),
                )?;
            }
        }
    }
    Ok(())
}

/// True when the instance holds a place in its salary's queue: not terminal, or terminal with
/// a write whose outcome is unknown.
pub(crate) fn queued(wf: &Workflow) -> bool {
    !wf.state.is_terminal() || wf.intent.is_some()
}

/// Each transition on its own: a refusal is that transition's answer, a sled failure aborts.
fn transitions(tx: &Tx, ts: &[Transition]) -> Result<Vec<Result<(), Error>>, Abortable> {
    let mut each = Vec::with_capacity(ts.len());
    for t in ts {
        match transition(tx, t) {
            Ok(()) => each.push(Ok(())),
            Err(Abortable::Refused(e)) => each.push(Err(e)),
            Err(e @ Abortable::Sled(_)) => return Err(e),
        }
    }
    Ok(each)
}

/// The index keys that end in one workflow id, outside a transaction.
#[derive(Debug, Default)]
struct IndexKeys {
    due: Vec<sled::IVec>,
    salary_queue: Vec<sled::IVec>,
}

impl IndexKeys {
    /// Scans `due` and `salary_queue` (quarantines are rare; both trees hold only
    /// non-terminal instances). A key that cannot be read is logged and left behind.
    fn naming(trees: &Trees, id: WorkflowId) -> Self {
        let keys_of = |tree: &sled::Tree, names: &dyn Fn(&[u8]) -> bool| {
            tree.iter()
                .keys()
                .filter_map(|k| {
                    k.map_err(
                        |e| tracing::warn!(error = %e, "index key unreadable during quarantine"),
                    )
                    .ok()
                })
                .filter(|k| names(k))
                .collect()
        };
        Self {
            due: keys_of(&trees.due, &|k| {
                keys::parse_due(k).is_some_and(|(_, due)| due == id)
            }),
            salary_queue: keys_of(&trees.salary_queue, &|k| {
                keys::workflow_id_suffix(k) == Some(id)
            }),
        }
    }
}

fn quarantine(
    tx: &Tx,
    id: WorkflowId,
    index_keys: &IndexKeys,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), Abortable> {
    let (instances, _, by_state, due, _, salary_queue, ..) = *tx;
    let quarantine_tree = tx.8;
    let Some(bytes) = instances.remove(&keys::instance(id))? else {
        return Ok(());
    };
    for state in State::ALL {
        by_state.remove(&keys::by_state(state, id))?;
    }
    // Left behind, a wake time would make the scheduler spin on an instance that is gone, and
    // a queue entry would hold every later change to the salary behind it forever.
    for key in &index_keys.due {
        due.remove(key)?;
    }
    for key in &index_keys.salary_queue {
        salary_queue.remove(key)?;
    }
    let entry = QuarantineEntry {
        key: id.to_string(),
        reason: reason.to_owned(),
        at: now,
        bytes_len: bytes.len() as u64,
    };
    let mut key = b"instance\0".to_vec();
    key.extend_from_slice(&keys::instance(id));
    quarantine_tree.insert(key.clone(), serde_json::to_vec(&entry).unwrap_or_default())?;
    key.extend_from_slice(b"\0raw");
    quarantine_tree.insert(key, bytes)?;
    Ok(())
}

fn switch(
    tx: &Tx,
    integration: &IntegrationId,
    enabled: bool,
    from: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<IntegrationSwitch, Abortable> {
    let integrations = tx.9;
    let key = integration.as_str().as_bytes();
    let old: Option<IntegrationSwitch> = match integrations.get(key)? {
        Some(bytes) => codec::decode(&bytes).ok(),
        None => None,
    };
    let skipped = old.as_ref().map_or(0, |s| s.skipped);
    let switch = if enabled {
        // Enabling an enabled integration keeps its activation instant unless a new one is given.
        let kept = old
            .as_ref()
            .filter(|s| s.enabled)
            .and_then(|s| s.activated_at);
        IntegrationSwitch {
            enabled: true,
            activated_at: from.or(kept).or(Some(now)),
            changed_at: now,
            skipped,
        }
    } else {
        IntegrationSwitch {
            enabled: false,
            activated_at: old.and_then(|s| s.activated_at),
            changed_at: now,
            skipped,
        }
    };
    integrations.insert(key, codec::encode(&switch))?;
    Ok(switch)
}

/// Moves the instance counts by what a group did.
fn count(map: &mut CountMap, group: &[Request], results: &[Result<Reply, Error>]) {
    for (request, result) in group.iter().zip(results) {
        match (&request.write, result) {
            (Write::Ingest { changes, .. }, Ok(Reply::Ingested(outcomes))) => {
                for (change, outcome) in changes.iter().zip(outcomes) {
                    if let IngestOutcome::Accepted(_) = outcome {
                        *map.entry((change.integration_id.clone(), State::Pending))
                            .or_default() += 1;
                    }
                }
            }
            (Write::Transition(t), Ok(_)) => move_count(map, t),
            (Write::Transitions(ts), Ok(Reply::TransitionedMany(each))) => {
                for (t, ok) in ts.iter().zip(each) {
                    if ok.is_ok() {
                        move_count(map, t);
                    }
                }
            }
            (Write::Prune { .. }, Ok(Reply::Pruned(removed, _))) => {
                for key in removed {
                    if let Some(n) = map.get_mut(key) {
                        *n = n.saturating_sub(1);
                    }
                }
            }
            _ => {}
        }
    }
}

fn move_count(map: &mut CountMap, t: &Transition) {
    let integration = &t.workflow.change.integration_id;
    if let Some(from) = t.entry.from.filter(|from| *from != t.workflow.state) {
        if let Some(n) = map.get_mut(&(integration.clone(), from)) {
            *n = n.saturating_sub(1);
        }
        *map.entry((integration.clone(), t.workflow.state))
            .or_default() += 1;
    }
}

/// Error-log lines older than a prune's cutoff go too (they name salaries: personal data).
/// sled transactions cannot scan, so this runs on the tree directly, in this thread, before
/// the group's transaction; the group's fsync covers it.
fn prune_error_log(trees: &Trees, group: &[Request]) -> u64 {
    let Some(cutoff) = group
        .iter()
        .filter_map(|r| match &r.write {
            Write::Prune { cutoff, .. } => Some(*cutoff),
            _ => None,
        })
        .max()
    else {
        return 0;
    };
    let mut removed = 0;
    for (key, value) in trees.errors.iter().flatten() {
        let old = codec::decode::<ErrorLogEntry>(&value).map_or(true, |e| e.at < cutoff);
        if old && trees.errors.remove(key).is_ok() {
            removed += 1;
        }
    }
    removed
}

fn prune(
    tx: &Tx,
    ids: &[WorkflowId],
    cutoff: DateTime<Utc>,
) -> Result<Vec<(IntegrationId, State)>, Abortable> {
    let (instances, history, by_state, ..) = *tx;
    let mut removed = Vec::new();
    for &id in ids {
        let Some(bytes) = instances.get(keys::instance(id))? else {
            continue;
        };
        let Ok(wf) = codec::decode::<Workflow>(&bytes) else {
            continue; // unreadable records are for quarantine, not prune
        };
        if queued(&wf) || wf.updated_at >= cutoff {
            continue;
        }
        instances.remove(&keys::instance(id))?;
        for seq in 0..wf.history_len {
            history.remove(&keys::history(id, seq))?;
        }
        by_state.remove(&keys::by_state(wf.state, id))?;
        removed.push((wf.change.integration_id, wf.state));
    }
    Ok(removed)
}
