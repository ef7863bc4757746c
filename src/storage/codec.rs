//! The on-disk record format: one format-version byte, then bincode of the record.
//!
//! Stored records are plain structs and externally tagged enums (bincode cannot read
//! `flatten`, untagged enums or `serde_json::Value`), and every `Decimal` is stored as a
//! string. Changing a stored type means a new `FORMAT_VERSION` and an upgrade arm in `decode`.

use serde::{de::DeserializeOwned, Serialize};

/// The record format this code writes.
pub const FORMAT_VERSION: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("empty record")]
    Empty,
    #[error(
        "record format version {0} is not known to this build (it knows up to {FORMAT_VERSION})"
    )]
    UnknownVersion(u8),
    #[error("record does not decode: {0}")]
    Corrupt(String),
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![FORMAT_VERSION];
    // Serializing plain in-memory structs to a Vec cannot fail; keep the error path anyway.
    if let Err(e) = bincode::serialize_into(&mut out, value) {
        tracing::error!(error = %e, "record did not serialize");
    }
    out
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let (&version, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
    match version {
        FORMAT_VERSION => {
            bincode::deserialize(body).map_err(|e| DecodeError::Corrupt(e.to_string()))
        }
        other => Err(DecodeError::UnknownVersion(other)),
    }
}

/// A stable 64-bit fingerprint (FNV-1a) of an encoded record, to tell a replayed event from
/// a different event that reuses an `event_id`.
pub fn fingerprint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
