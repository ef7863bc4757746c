//! `storage::Error`: the disk, the lock, or a record that cannot be read. Kept apart from
//! connector errors on purpose: a storage error never becomes a workflow failure.

use crate::domain::WorkflowId;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the store at {path} is in use by another process (is the daemon running?)")]
    Locked { path: String },

    #[error("store I/O error: {0}")]
    Io(String),

    /// ENOSPC: the filesystem holding the store is full. The store is not damaged.
    #[error(
        "the disk holding the store is full (ENOSPC): {0}. The store is not damaged: free space \
         on that filesystem, then start again"
    )]
    DiskFull(String),

    #[error("stored record {key} is unreadable: {reason}; the rest of the store is not affected")]
    Corrupt { key: String, reason: String },

    #[error("workflow {0} does not exist")]
    NotFound(WorkflowId),

    #[error("workflow {id} was changed by someone else (expected history entry {expected}, store has {found})")]
    Stale {
        id: WorkflowId,
        expected: u32,
        found: u32,
    },

    #[error(
        "the store at {path} has lost acknowledged writes: its data file holds {found} group \
         commits but {acknowledged} were acknowledged (the file was truncated, damaged or \
         replaced). Refusing to start, so that no accepted change is silently dropped. Stop, \
         restore the directory {path} from a backup, then start again. To accept the loss \
         instead, delete {path}/acknowledged-commits and have the HR system re-send the changes \
         of the lost period (duplicates are recognised by event_id)"
    )]
    Lost {
        path: String,
        acknowledged: u64,
        found: u64,
    },

    #[error("the store is closed (shutting down)")]
    Closed,
}

impl From<sled::Error> for Error {
    fn from(e: sled::Error) -> Self {
        match e {
            sled::Error::Io(io) => Self::from(io),
            e => Self::Io(e.to_string()),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        if is_disk_full(&e) {
            Self::DiskFull(e.to_string())
        } else {
            Self::Io(e.to_string())
        }
    }
}

/// True for ENOSPC (and EDQUOT, a quota reached: the same remedy).
pub(crate) fn is_disk_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}
