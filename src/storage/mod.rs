//! The store: workflow instances, their history and indexes, in embedded sled.
//!
//! Architecture Invariant: this is the only module that imports sled. Every write goes through
//! one committer thread (`committer.rs`) that applies a group of writes in one multi-tree
//! transaction, flushes, and fsyncs sled's data file before it answers: when `commit` or
//! `ingest` returns Ok, the write survives kill -9 and power loss. Reads go straight to sled.
//!
//! Trees: `instances` (id -> Workflow), `history` (id,seq -> HistoryEntry), `by_state`
//! (state,id), `due` (wake_at,id -> integration: every non-terminal instance; stores written
//! before the integration was kept there hold an empty value), `events` (integration,event_id
//! -> id + fingerprint), `salary_queue` (integration,salary,occurred_at,id: non-terminal changes
//! of a salary in HR order, and failed ones whose write's outcome is unknown), `records`
//! (integration,salary -> OwnedRecord), `errors`
//! (integration,at,id,seq -> ErrorLogEntry), `quarantine` (unreadable records, kept for a human),
//! `integrations` (integration -> IntegrationSwitch: enabled, activation instant, skipped count),
//! `meta` (the group-commit counter, checked at open against `acknowledged-commits`, and the
//! instance counts by integration and state as of that commit, so an open need not decode
//! every instance).

pub mod codec;
mod committer;
mod error;
pub mod keys;

pub use error::Error;

use crate::domain::{
    Failure, HistoryEntry, IntegrationId, PayrollRecord, SalaryChange, SalaryId, State, Transition,
    Workflow, WorkflowId,
};
use chrono::{DateTime, Utc};
use committer::{Committer, Write};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// sled's page cache, unless the configuration says otherwise (`store_cache_mb`).
pub const CACHE_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;

/// What ingest did with one change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", content = "workflow_id", rename_all = "kebab-case")]
pub enum IngestOutcome {
    /// A new workflow instance, durably stored.
    Accepted(WorkflowId),
    /// The same event was accepted before; this is its instance.
    Duplicate(WorkflowId),
    /// The `event_id` was accepted before with a different body; nothing was stored.
    Conflict(WorkflowId),
    /// Salary sync is not enabled for the integration; nothing was stored.
    NotEnabled,
    /// The change occurred before salary sync was activated: logged and counted, not sent.
    Skipped,
}

/// One entry of the `due` index: an instance whose wake time has come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueEntry {
    pub id: WorkflowId,
    /// The instance's integration as the index keeps it; `None` in entries written before the
    /// index kept it (the instance must then be read to know).
    pub integration: Option<IntegrationId>,
}

/// The per-integration switch "Create salaries in integration when added in HR".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrationSwitch {
    pub enabled: bool,
    /// Changes that occurred before this instant are not sent.
    pub activated_at: Option<DateTime<Utc>>,
    pub changed_at: DateTime<Utc>,
    /// Changes skipped because they occurred before activation.
    pub skipped: u64,
}

/// The payroll record an HR salary owns, and the HR time of the last change applied to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnedRecord {
    /// `None` after a delete that removed the record.
    pub record: Option<PayrollRecord>,
    pub applied_occurred_at: DateTime<Utc>,
}

/// One line of an integration's error log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorLogEntry {
    pub at: DateTime<Utc>,
    pub integration: IntegrationId,
    /// `None` for a change that never became an instance (skipped before activation).
    pub workflow_id: Option<WorkflowId>,
    pub salary_id: SalaryId,
    pub failure: Failure,
}

/// An unreadable record moved aside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineEntry {
    pub key: String,
    pub reason: String,
    pub at: DateTime<Utc>,
    pub bytes_len: u64,
}

/// Which instances a listing returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    pub state: Option<State>,
    pub integration: Option<IntegrationId>,
    pub salary: Option<SalaryId>,
    pub since: Option<DateTime<Utc>>,
}

impl Filter {
    pub fn matches(&self, wf: &Workflow) -> bool {
        self.state.is_none_or(|s| wf.state == s)
            && self
                .integration
                .as_ref()
                .is_none_or(|i| &wf.change.integration_id == i)
            && self
                .salary
                .as_ref()
                .is_none_or(|s| &wf.change.salary.id == s)
            && self.since.is_none_or(|t| wf.accepted_at >= t)
    }
}

#[derive(Clone)]
pub(crate) struct Trees {
    pub instances: sled::Tree,
    pub history: sled::Tree,
    pub by_state: sled::Tree,
    pub due: sled::Tree,
    pub events: sled::Tree,
    pub salary_queue: sled::Tree,
    pub records: sled::Tree,
    pub errors: sled::Tree,
    pub quarantine: sled::Tree,
    pub integrations: sled::Tree,
    /// `commits` -> the number of group commits applied (u64, big-endian), written in every
    /// group's transaction; checked at open against `ACKED_FILE`.
    pub meta: sled::Tree,
}

/// The durable store. Cheap to share behind an `Arc`; dropping it stops the committer after
/// the writes already queued.
pub struct Store {
    db: sled::Db,
    trees: Trees,
    counts: committer::Counts,
    path: PathBuf,
    /// Blob files the committer has fsynced (`committer::BlobSync`).
    blobs_synced: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    committer: Committer,
}

impl Store {
    /// Opens (or creates) the store in directory `path` with the default page cache. Fails
    /// with `Error::Locked` when another process holds it.
    pub fn open(path: &Path) -> Result<Self, Error> {
        Self::open_with_cache(path, CACHE_BYTES_DEFAULT)
    }

    /// `open`, with sled's page cache bounded to `cache_bytes` (sled's own default is 1 GiB,
    /// which a large store fills: the daemon's resident memory grows with the store).
    pub fn open_with_cache(path: &Path, cache_bytes: u64) -> Result<Self, Error> {
        owner_only_dir(path)?;
        // An open must never make a store worse: a snapshot sled was writing when the process
        // died or the disk filled is set aside before sled looks for its newest snapshot
        // (sled would take it and call the store corrupt), and again after a failed open.
        set_aside_incomplete_snapshots(path)?;
        let db = match sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .open()
        {
            Ok(db) => db,
            Err(e) => {
                set_aside_incomplete_snapshots(path)?;
                return Err(open_error(path, e));
            }
        };
        let tree = |name: &str| db.open_tree(name);
        let trees = Trees {
            instances: tree("instances")?,
            history: tree("history")?,
            by_state: tree("by_state")?,
            due: tree("due")?,
            events: tree("events")?,
            salary_queue: tree("salary_queue")?,
            records: tree("records")?,
            errors: tree("errors")?,
            quarantine: tree("quarantine")?,
            integrations: tree("integrations")?,
            meta: tree("meta")?,
        };
        // sled recovers a truncated or damaged log silently to an earlier point (measured:
        // RELIABILITY.md, Hostile input). The number of commits acknowledged is also kept in
        // a small file beside sled's; if sled has fewer, acknowledged writes are gone.
        let found = committer::commits_in(&trees.meta)?;
        let acked_path = path.join(ACKED_FILE);
        let acknowledged = read_acknowledged(&acked_path)?;
        if acknowledged > found {
            return Err(Error::Lost {
                path: path.display().to_string(),
                acknowledged,
                found,
            });
        }
        let mut acked_options = std::fs::OpenOptions::new();
        acked_options.create(true).truncate(false).write(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut acked_options, 0o600);
        let acked_file = acked_options.open(&acked_path)?;
        // sled creates its own files with the process umask: narrow them to the owner.
        owner_only_tree(path)?;
        // sled's flush does not fsync (spacejam/sled#1452); the committer fsyncs this file.
        let data_file = std::fs::File::open(path.join("db"))?;
        sync_dir(path)?;
        // The counts kept at the last commit, or (older store, crash before they were kept,
        // a quarantine since) a pass over every instance.
        let counts = match committer::stored_counts(&trees.meta, found) {
            Some(map) => committer::Counts::new(std::sync::Mutex::new(map)),
            None => {
                let counts = committer::Counts::default();
                count_instances(&trees, &counts);
                counts
            }
        };
        let blobs_synced = std::sync::Arc::default();
        let committer = Committer::start(
            db.clone(),
            trees.clone(),
            data_file,
            counts.clone(),
            committer::Mark {
                commits: found,
                file: acked_file,
            },
            committer::BlobSync {
                dir: path.join("blobs"),
                synced: std::sync::Arc::clone(&blobs_synced),
            },
        )?;
        Ok(Self {
            db,
            trees,
            counts,
            path: path.to_owned(),
            blobs_synced,
            committer,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stores each new change as a `pending` instance; durable when this returns.
    pub async fn ingest(
        &self,
        changes: Vec<SalaryChange>,
        now: DateTime<Utc>,
    ) -> Result<Vec<IngestOutcome>, Error> {
        self.committer
            .submit(Write::Ingest { changes, now })
            .await?
            .into_ingested()
    }

    /// Commits one transition (instance, history entry, indexes, effects) atomically and
    /// durably, and hands it back (so the caller keeps no copy while it waits). Refuses a
    /// transition computed from a stale copy of the instance.
    pub async fn commit(&self, transition: Transition) -> Result<Transition, Error> {
        self.committer
            .submit(Write::Transition(Box::new(transition)))
            .await?
            .into_transitioned()
    }

    /// Commits many transitions in one write: one transaction and one fsync for all of them.
    /// Each is checked as `commit` checks it; the answer says, per transition, whether it was
    /// applied. Transitions of one instance may follow each other in one call (each sees the one
    /// before it): a worker commits a match and a currency check that needed no payroll call
    /// together. Bulk tools and benches that fill a store use it too.
    pub async fn commit_many(
        &self,
        transitions: Vec<Transition>,
    ) -> Result<Vec<Result<(), Error>>, Error> {
        match self
            .committer
            .submit(Write::Transitions(transitions))
            .await?
        {
            committer::Reply::TransitionedMany(each) => Ok(each),
            _ => Err(Error::Io(
                "committer answered a batched commit with something else".into(),
            )),
        }
    }

    /// Moves an unreadable instance aside, out of every index, keeping its bytes.
    pub async fn quarantine(
        &self,
        id: WorkflowId,
        reason: String,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.committer
            .submit(Write::Quarantine { id, reason, now })
            .await?
            .into_committed()
    }

    /// Enables or disables salary sync for an integration. Enabling records the activation
    /// instant (`from`, default now); changes that occurred before it are skipped.
    pub async fn set_integration(
        &self,
        integration: IntegrationId,
        enabled: bool,
        from: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<IntegrationSwitch, Error> {
        match self
            .committer
            .submit(Write::Switch {
                integration,
                enabled,
                from,
                now,
            })
            .await?
        {
            committer::Reply::Switched(s) => Ok(s),
            _ => Err(Error::Io(
                "committer answered a switch with something else".into(),
            )),
        }
    }

    pub fn integration(
        &self,
        integration: &IntegrationId,
    ) -> Result<Option<IntegrationSwitch>, Error> {
        match self
            .trees
            .integrations
            .get(integration.as_str().as_bytes())?
        {
            None => Ok(None),
            Some(bytes) => codec::decode(&bytes).map(Some).map_err(|e| Error::Corrupt {
                key: format!("integration {integration}"),
                reason: e.to_string(),
            }),
        }
    }

    /// Removes terminal instances last changed before `cutoff`, with their history, and
    /// error-log lines older than it; returns (instances, error-log lines) removed. The
    /// event-id keys stay, so a replayed old event is still a duplicate, never a second write;
    /// the salary -> record mapping stays, so later changes still update the right record.
    pub async fn prune(&self, cutoff: DateTime<Utc>) -> Result<(u64, u64), Error> {
        const CHUNK: usize = 512;
        let mut candidates = Vec::new();
        for state in State::ALL.into_iter().filter(|s| s.is_terminal()) {
            for key in self.trees.by_state.scan_prefix([state.code()]).keys() {
                if let Some(id) = keys::workflow_id_suffix(&key?) {
                    candidates.push(id);
                }
            }
        }
        let (mut instances, mut lines) = (0, 0);
        let mut chunks: Vec<Vec<WorkflowId>> = candidates
            .chunks(CHUNK)
            .map(<[WorkflowId]>::to_vec)
            .collect();
        if chunks.is_empty() {
            chunks.push(Vec::new()); // still prune the error log
        }
        for ids in chunks {
            match self.committer.submit(Write::Prune { ids, cutoff }).await? {
                committer::Reply::Pruned(removed, n) => {
                    instances += removed.len() as u64;
                    lines += n;
                }
                _ => {
                    return Err(Error::Io(
                        "committer answered a prune with something else".into(),
                    ))
                }
            }
        }
        Ok((instances, lines))
    }

    pub fn get(&self, id: WorkflowId) -> Result<Option<Workflow>, Error> {
        match self.trees.instances.get(keys::instance(id))? {
            None => Ok(None),
            Some(bytes) => codec::decode(&bytes).map(Some).map_err(|e| Error::Corrupt {
                key: id.to_string(),
                reason: e.to_string(),
            }),
        }
    }

    pub fn history(&self, id: WorkflowId) -> Result<Vec<HistoryEntry>, Error> {
        self.trees
            .history
            .scan_prefix(keys::instance(id))
            .map(|kv| {
                let (k, v) = kv?;
                codec::decode(&v).map_err(|e| Error::Corrupt {
                    key: format!("{id} history {:?}", k.get(8..)),
                    reason: e.to_string(),
                })
            })
            .collect()
    }

    /// Instances whose wake time is at or before `now`, earliest first.
    pub fn due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<WorkflowId>, Error> {
        self.due_iter(now).take(limit).collect()
    }

    /// `due`, read lazily: a caller that stops early reads no further keys.
    pub fn due_iter(
        &self,
        now: DateTime<Utc>,
    ) -> impl Iterator<Item = Result<WorkflowId, Error>> + Send + '_ {
        self.due_entries(now).map(|e| e.map(|e| e.id))
    }

    /// `due_iter` with each instance's integration as the index keeps it, so the scheduler can
    /// pass over an integration at its limit without decoding the instance.
    pub fn due_entries(
        &self,
        now: DateTime<Utc>,
    ) -> impl Iterator<Item = Result<DueEntry, Error>> + Send + '_ {
        self.trees
            .due
            .range(..keys::due(now, WorkflowId(u64::MAX)))
            .filter_map(|entry| match entry {
                Ok((k, v)) => keys::parse_due(&k).map(|(_, id)| {
                    Ok(DueEntry {
                        id,
                        integration: std::str::from_utf8(&v)
                            .ok()
                            .and_then(|s| IntegrationId::parse(s).ok()),
                    })
                }),
                Err(e) => Some(Err(Error::from(e))),
            })
    }

    /// The earliest wake time of any non-terminal instance.
    pub fn next_wake(&self) -> Result<Option<DateTime<Utc>>, Error> {
        Ok(self
            .trees
            .due
            .first()?
            .and_then(|(k, _)| keys::parse_due(&k))
            .map(|(at, _)| at))
    }

    /// The non-terminal change of this salary that must run next: one that has already left
    /// `pending` (or holds a write intent) if there is one, else the oldest in HR order.
    ///
    /// An older change that arrives while a newer one is part way through must wait for it:
    /// taking the queue's head alone let the older change start beside the newer one, and
    /// write while the newer one's write was outstanding (found by the simulation). The older
    /// change then runs and, if the newer one was applied, is superseded.
    pub fn salary_head(
        &self,
        integration: &IntegrationId,
        salary: &SalaryId,
    ) -> Result<Option<WorkflowId>, Error> {
        self.head_of(integration, salary, None)
    }

    /// `salary_head` of `wf`'s salary, using `wf` (a copy just read) instead of reading it
    /// again: a salary with one change in flight costs no decode.
    pub fn salary_head_of(&self, wf: &Workflow) -> Result<Option<WorkflowId>, Error> {
        self.head_of(&wf.change.integration_id, &wf.change.salary.id, Some(wf))
    }

    fn head_of(
        &self,
        integration: &IntegrationId,
        salary: &SalaryId,
        known: Option<&Workflow>,
    ) -> Result<Option<WorkflowId>, Error> {
        let prefix = keys::salary_prefix(integration, salary);
        let mut queue = Vec::new();
        for key in self.trees.salary_queue.scan_prefix(prefix).keys() {
            if let Some(id) = keys::workflow_id_suffix(&key?) {
                queue.push(id);
            }
        }
        if queue.len() <= 1 {
            return Ok(queue.first().copied());
        }
        let started = |wf: &Workflow| wf.state != State::Pending || wf.intent.is_some();
        for &id in &queue {
            let is_started = match known.filter(|wf| wf.id == id) {
                Some(wf) => started(wf),
                None => match self.get(id) {
                    Ok(Some(wf)) => started(&wf),
                    // An unreadable one is quarantined when the scheduler meets it.
                    Ok(None) | Err(Error::Corrupt { .. }) => false,
                    Err(e) => return Err(e),
                },
            };
            if is_started {
                return Ok(Some(id));
            }
        }
        Ok(queue.first().copied())
    }

    /// The payroll record this HR salary owns (wrote earlier), if any.
    pub fn owned_record(
        &self,
        integration: &IntegrationId,
        salary: &SalaryId,
    ) -> Result<Option<PayrollRecord>, Error> {
        Ok(self.applied(integration, salary)?.and_then(|o| o.record))
    }

    /// The payroll records salary-sync wrote for the integration's other HR salaries (not
    /// `except`) on one employment: rows of the same employee that are salary-sync's own.
    /// Read-only and derived from the `records` tree (no state of its own); it reads the
    /// integration's whole mapping, so callers ask only when they need it (a conflict).
    pub fn records_on_employment(
        &self,
        integration: &IntegrationId,
        employment_id: &str,
        except: &SalaryId,
    ) -> Result<Vec<PayrollRecord>, Error> {
        let skip = keys::record(integration, except);
        let mut found = Vec::new();
        for item in self
            .trees
            .records
            .scan_prefix(keys::integration_prefix(integration))
        {
            let (key, bytes) = item?;
            if key.as_ref() == skip.as_slice() {
                continue;
            }
            let owned: OwnedRecord = codec::decode(&bytes).map_err(|e| Error::Corrupt {
                key: format!("record mapping of {integration}"),
                reason: e.to_string(),
            })?;
            if let Some(record) = owned.record.filter(|r| r.employment_id == employment_id) {
                found.push(record);
            }
        }
        Ok(found)
    }

    /// The integration's non-terminal instances for other HR salaries (not `except`) on one
    /// employment whose payroll write is outstanding (an intent recorded, its outcome not yet
    /// committed): a record such a write made is salary-sync's own but not yet in `records`.
    /// Scans every non-terminal instance, so callers ask only when they need it (a conflict).
    pub fn writes_in_flight_on_employment(
        &self,
        integration: &IntegrationId,
        employment_id: &str,
        except: &SalaryId,
    ) -> Result<Vec<Workflow>, Error> {
        let mut found = Vec::new();
        for item in self.trees.due.iter() {
            let (key, value) = item?;
            if value.as_ref() != integration.as_str().as_bytes() {
                continue;
            }
            let Some((_, id)) = keys::parse_due(&key) else {
                continue;
            };
            let Some(wf) = self.get(id)? else {
                continue;
            };
            let on_employment = wf
                .position
                .as_ref()
                .is_some_and(|p| p.employment_id == employment_id);
            if on_employment && wf.intent.is_some() && &wf.change.salary.id != except {
                found.push(wf);
            }
        }
        Ok(found)
    }

    /// What the last change applied to payroll for this HR salary left behind.
    pub fn applied(
        &self,
        integration: &IntegrationId,
        salary: &SalaryId,
    ) -> Result<Option<OwnedRecord>, Error> {
        match self.trees.records.get(keys::record(integration, salary))? {
            None => Ok(None),
            Some(bytes) => codec::decode(&bytes).map(Some).map_err(|e| Error::Corrupt {
                key: format!("record of {integration}/{salary}"),
                reason: e.to_string(),
            }),
        }
    }

    /// Streams the instances the filter selects, in id order, without loading them all.
    /// An unreadable record yields an `Error::Corrupt` item and the stream goes on.
    pub fn list<'a>(
        &'a self,
        filter: &'a Filter,
    ) -> Box<dyn Iterator<Item = Result<Workflow, Error>> + 'a> {
        self.list_after(filter, None)
    }

    /// `list`, starting after instance `after`: the scan seeks to it (sled's range), so the
    /// n-th page of a listing costs one page, not every page before it.
    pub fn list_after<'a>(
        &'a self,
        filter: &'a Filter,
        after: Option<WorkflowId>,
    ) -> Box<dyn Iterator<Item = Result<Workflow, Error>> + 'a> {
        let decode = move |id: WorkflowId, bytes: &[u8]| {
            codec::decode::<Workflow>(bytes).map_err(|e| Error::Corrupt {
                key: id.to_string(),
                reason: e.to_string(),
            })
        };
        // The first id to read; past the last id there is nothing to read.
        let first = match after {
            None => Some(WorkflowId(0)),
            Some(WorkflowId(id)) => id.checked_add(1).map(WorkflowId),
        };
        let Some(first) = first else {
            return Box::new(std::iter::empty());
        };
        match filter.state {
            Some(state) => Box::new(
                self.trees
                    .by_state
                    .range(keys::by_state(state, first)..)
                    .keys()
                    .take_while(move |k| {
                        k.as_ref()
                            .map_or(true, |k| k.first() == Some(&state.code()))
                    })
                    .filter_map(move |k| {
                        let id = match k {
                            Ok(k) => keys::workflow_id_suffix(&k)?,
                            Err(e) => return Some(Err(Error::from(e))),
                        };
                        match self.trees.instances.get(keys::instance(id)) {
                            Ok(Some(bytes)) => Some(decode(id, &bytes)),
                            Ok(None) => None,
                            Err(e) => Some(Err(Error::from(e))),
                        }
                    })
                    .filter(move |r| r.as_ref().map_or(true, |wf| filter.matches(wf))),
            ),
            None => Box::new(
                self.trees
                    .instances
                    .range(keys::instance(first)..)
                    .map(move |kv| {
                        let (k, v) = kv?;
                        let id = keys::workflow_id_suffix(&k).unwrap_or(WorkflowId(0));
                        decode(id, &v)
                    })
                    .filter(move |r| r.as_ref().map_or(true, |wf| filter.matches(wf))),
            ),
        }
    }

    /// Instances per (integration, state), kept in memory: counted once at open, then moved
    /// by every commit. (A quarantined record leaves its count behind until the next start.)
    pub fn counts_by_integration(&self) -> Vec<(IntegrationId, State, u64)> {
        let Ok(map) = self.counts.lock() else {
            return Vec::new();
        };
        let mut out: Vec<_> = map.iter().map(|((i, s), n)| (i.clone(), *s, *n)).collect();
        out.sort_by(|a, b| (a.0.as_str(), a.1).cmp(&(b.0.as_str(), b.1)));
        out
    }

    /// When the oldest instance that is not yet terminal was accepted. Ids grow with accept
    /// time, so the smallest id in the non-terminal state indexes is the oldest.
    /// Salaries held by a failed change whose write's outcome is unknown (retries ran out, or
    /// it was cancelled, mid-write), per integration: their later changes wait until an
    /// operator retries it. Reads the `failed` instances only.
    pub fn held_salaries(&self) -> Result<Vec<(IntegrationId, u64)>, Error> {
        let mut held: std::collections::BTreeMap<IntegrationId, u64> = Default::default();
        for key in self
            .trees
            .by_state
            .scan_prefix([State::Failed.code()])
            .keys()
        {
            let Some(id) = keys::workflow_id_suffix(&key?) else {
                continue;
            };
            // An unreadable instance is reported where the scheduler meets it.
            if let Ok(Some(wf)) = self.get(id) {
                if committer::queued(&wf) {
                    *held.entry(wf.change.integration_id).or_default() += 1;
                }
            }
        }
        Ok(held.into_iter().collect())
    }

    pub fn oldest_non_terminal(&self) -> Result<Option<DateTime<Utc>>, Error> {
        let mut oldest: Option<WorkflowId> = None;
        for state in State::ALL.into_iter().filter(|s| !s.is_terminal()) {
            if let Some(k) = self
                .trees
                .by_state
                .scan_prefix([state.code()])
                .keys()
                .next()
                .transpose()?
            {
                if let Some(id) = keys::workflow_id_suffix(&k) {
                    oldest = Some(oldest.map_or(id, |o| o.min(id)));
                }
            }
        }
        match oldest {
            Some(id) => Ok(self.get(id)?.map(|wf| wf.accepted_at)),
            None => Ok(None),
        }
    }

    /// Instance counts per state, from the state index (no decoding).
    pub fn count_by_state(&self) -> Result<Vec<(State, u64)>, Error> {
        let mut out = Vec::new();
        for state in State::ALL {
            let n = self.trees.by_state.scan_prefix([state.code()]).count() as u64;
            out.push((state, n));
        }
        Ok(out)
    }

    /// The error log, newest last; one integration or all.
    pub fn errors(&self, integration: Option<&IntegrationId>) -> Result<Vec<ErrorLogEntry>, Error> {
        let iter = match integration {
            Some(i) => self.trees.errors.scan_prefix(keys::integration_prefix(i)),
            None => self.trees.errors.iter(),
        };
        let mut out = Vec::new();
        for kv in iter {
            let (_, v) = kv?;
            match codec::decode(&v) {
                Ok(entry) => out.push(entry),
                Err(e) => tracing::warn!(error = %e, "unreadable error-log entry skipped"),
            }
        }
        out.sort_by_key(|e: &ErrorLogEntry| e.at);
        Ok(out)
    }

    pub fn quarantined(&self) -> Result<Vec<QuarantineEntry>, Error> {
        let mut out = Vec::new();
        for kv in self.trees.quarantine.iter() {
            let (_, v) = kv?;
            if let Ok(entry) = serde_json::from_slice::<QuarantineEntry>(&v) {
                out.push(entry);
            }
        }
        Ok(out)
    }

    /// A consistency check of the indexes against the instances, for tests and the
    /// simulation: every instance has exactly its state in `by_state`; `due` holds exactly the
    /// wake time of every non-terminal instance; `salary_queue` holds exactly the non-terminal
    /// instances and the terminal ones with a write intent outstanding. Returns one line per disagreement (empty: consistent).
    #[doc(hidden)]
    pub fn index_problems(&self) -> Result<Vec<String>, Error> {
        use std::collections::BTreeSet;
        let mut problems = Vec::new();
        let (mut by_state, mut due, mut queue) =
            (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        for kv in self.trees.instances.iter() {
            let (k, v) = kv?;
            let id = keys::workflow_id_suffix(&k).unwrap_or(WorkflowId(0));
            let wf: Workflow = match codec::decode(&v) {
                Ok(wf) => wf,
                Err(e) => {
                    problems.push(format!("{id}: unreadable: {e}"));
                    continue;
                }
            };
            by_state.insert(keys::by_state(wf.state, id).to_vec());
            match (wf.state.is_terminal(), wf.wake_at) {
                (false, Some(wake)) => {
                    due.insert(keys::due(wake, id).to_vec());
                }
                (false, None) => problems.push(format!("{id}: {} without a wake time", wf.state)),
                (true, Some(_)) => problems.push(format!("{id}: {} with a wake time", wf.state)),
                (true, None) => {}
            }
            if committer::queued(&wf) {
                let c = &wf.change;
                queue.insert(keys::salary_queue(
                    &c.integration_id,
                    &c.salary.id,
                    c.occurred_at,
                    id,
                ));
            }
        }
        let mut compare = |name: &str, tree: &sled::Tree, want: BTreeSet<Vec<u8>>| {
            let mut have = BTreeSet::new();
            for k in tree.iter().keys() {
                match k {
                    Ok(k) => {
                        have.insert(k.to_vec());
                    }
                    Err(e) => problems.push(format!("{name}: unreadable key: {e}")),
                }
            }
            for k in have.difference(&want) {
                problems.push(format!("{name}: entry {k:?} names no such instance state"));
            }
            for k in want.difference(&have) {
                problems.push(format!("{name}: entry {k:?} missing"));
            }
        };
        compare("by_state", &self.trees.by_state, by_state);
        compare("due", &self.trees.due, due);
        compare("salary_queue", &self.trees.salary_queue, queue);
        Ok(problems)
    }

    /// The blob files (under `blobs/`) the committer has fsynced, for tests.
    #[doc(hidden)]
    pub fn synced_blob_files(&self) -> Vec<String> {
        self.blobs_synced
            .lock()
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Writes raw bytes under an instance key, bypassing the codec. For tests of the
    /// quarantine path only.
    #[doc(hidden)]
    pub fn corrupt_for_test(&self, id: WorkflowId, bytes: &[u8]) -> Result<(), Error> {
        self.trees.instances.insert(keys::instance(id), bytes)?;
        self.db.flush()?;
        Ok(())
    }
}

/// The file beside sled's, in the store directory, holding how many group commits were
/// acknowledged (u64, big-endian). Written after each group's fsync, itself not fsynced: it
/// can only lag behind sled (after a power loss), never run ahead of what sled made durable.
pub const ACKED_FILE: &str = "acknowledged-commits";

fn read_acknowledged(path: &Path) -> Result<u64, Error> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(bytes
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(Error::Io(format!("cannot read {}: {e}", path.display()))),
    }
}

/// Why sled could not open the store at `path`, in words an operator can act on.
fn open_error(path: &Path, e: sled::Error) -> Error {
    let text = e.to_string();
    if let sled::Error::Io(io) = &e {
        if error::is_disk_full(io) {
            return Error::DiskFull(format!("cannot open the store at {}", path.display()));
        }
    }
    if text.contains("could not acquire lock") {
        Error::Locked {
            path: path.display().to_string(),
        }
    } else if text.contains("corrupt") {
        // sled found its own files damaged (e.g. the data file gone, a snapshot left).
        Error::Io(format!(
            "cannot open the store at {p}: {text}. Its files are damaged. Stop, restore the \
             directory {p} from a backup, then start again",
            p = path.display()
        ))
    } else {
        Error::Io(format!(
            "cannot open the store at {}: {text}",
            path.display()
        ))
    }
}

/// sled writes a snapshot as `snap.<lsn>.generating`, fsyncs it and only then renames it to
/// `snap.<lsn>`; until the rename the previous snapshot and the log are what counts. A
/// `.generating` file left by a kill or a full disk is therefore never part of the store, but
/// sled's next open takes it as the newest snapshot and reports corruption. An empty one is
/// removed; one with bytes is renamed out of sled's `snap.` names (kept for a human).
/// Returns how many were set aside.
pub(crate) fn set_aside_incomplete_snapshots(path: &Path) -> Result<usize, Error> {
    let entries = match std::fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let mut set_aside = 0;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !(name.starts_with("snap.") && name.ends_with(".generating")) {
            continue;
        }
        let len = entry.metadata()?.len();
        if len == 0 {
            std::fs::remove_file(entry.path())?;
        } else {
            std::fs::rename(entry.path(), path.join(format!("incomplete-{name}")))?;
        }
        tracing::warn!(
            file = name,
            bytes = len,
            "incomplete sled snapshot set aside (left by a kill or a full disk); the previous snapshot and the log are used"
        );
        set_aside += 1;
    }
    if set_aside > 0 {
        sync_dir(path)?;
    }
    Ok(set_aside)
}

/// Creates the store directory if needed and makes it owner-only (0700), whatever the umask.
fn owner_only_dir(path: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(path)
        .map_err(|e| Error::Io(format!("cannot create {}: {e}", path.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Every directory under the store 0700 and every file 0600: sled creates its files with the
/// process umask. Files sled creates later (blobs, snapshots) sit inside these directories,
/// which no other user can enter.
#[cfg(unix)]
fn owner_only_tree(path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o700))?;
            owner_only_tree(&entry.path())?;
        } else if kind.is_file() {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn owner_only_tree(_path: &Path) -> Result<(), Error> {
    Ok(())
}

/// Counts every readable instance by (integration, state); unreadable ones are skipped here
/// and reported when they are met.
fn count_instances(trees: &Trees, counts: &committer::Counts) {
    let Ok(mut map) = counts.lock() else {
        return;
    };
    for (_, bytes) in trees.instances.iter().flatten() {
        if let Ok(wf) = codec::decode::<Workflow>(&bytes) {
            *map.entry((wf.change.integration_id, wf.state)).or_default() += 1;
        }
    }
}

#[cfg(unix)]
fn sync_dir(path: &Path) -> Result<(), Error> {
    std::fs::File::open(path)?.sync_all()?;
    Ok(())
}

#[cfg(not(unix))]
fn sync_dir(_path: &Path) -> Result<(), Error> {
    Ok(())
}

#[cfg(test)]
mod tests;
