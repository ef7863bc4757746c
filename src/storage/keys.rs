//! Key layouts of the sled trees. Big-endian integers so that byte order is numeric order;
//! `\0` separates external ids (which can never hold it, see `domain::ids`).

use crate::domain::{IntegrationId, SalaryId, State, WorkflowId};
use chrono::{DateTime, Utc};

pub fn instance(id: WorkflowId) -> [u8; 8] {
    id.0.to_be_bytes()
}

pub fn history(id: WorkflowId, seq: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&id.0.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

pub fn by_state(state: State, id: WorkflowId) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = state.code();
    k[1..].copy_from_slice(&id.0.to_be_bytes());
    k
}

/// Milliseconds since the epoch, shifted so that negative instants sort first.
pub fn time_ms(at: DateTime<Utc>) -> [u8; 8] {
    ((at.timestamp_millis() as u64) ^ (1 << 63)).to_be_bytes()
}

pub fn time_from_ms(bytes: [u8; 8]) -> Option<DateTime<Utc>> {
    let ms = (u64::from_be_bytes(bytes) ^ (1 << 63)) as i64;
    DateTime::from_timestamp_millis(ms)
}

pub fn due(wake_at: DateTime<Utc>, id: WorkflowId) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&time_ms(wake_at));
    k[8..].copy_from_slice(&id.0.to_be_bytes());
    k
}

/// Splits a `due` key into its wake time and workflow id.
pub fn parse_due(key: &[u8]) -> Option<(DateTime<Utc>, WorkflowId)> {
    let time: [u8; 8] = key.get(..8)?.try_into().ok()?;
    let id: [u8; 8] = key.get(8..16)?.try_into().ok()?;
    Some((time_from_ms(time)?, WorkflowId(u64::from_be_bytes(id))))
}

pub fn workflow_id_suffix(key: &[u8]) -> Option<WorkflowId> {
    let start = key.len().checked_sub(8)?;
    let id: [u8; 8] = key.get(start..)?.try_into().ok()?;
    Some(WorkflowId(u64::from_be_bytes(id)))
}

pub fn event(integration: &IntegrationId, event_id: &str) -> Vec<u8> {
    join(&[integration.as_str(), event_id])
}

/// The prefix shared by every queued change of one salary.
pub fn salary_prefix(integration: &IntegrationId, salary: &SalaryId) -> Vec<u8> {
    let mut k = join(&[integration.as_str(), salary.as_str()]);
    k.push(0);
    k
}

/// Queue position of one change of a salary: ordered by the HR system's change time, then id.
pub fn salary_queue(
    integration: &IntegrationId,
    salary: &SalaryId,
    occurred_at: DateTime<Utc>,
    id: WorkflowId,
) -> Vec<u8> {
    let mut k = salary_prefix(integration, salary);
    k.extend_from_slice(&time_ms(occurred_at));
    k.extend_from_slice(&id.0.to_be_bytes());
    k
}

pub fn record(integration: &IntegrationId, salary: &SalaryId) -> Vec<u8> {
    join(&[integration.as_str(), salary.as_str()])
}

pub fn integration_prefix(integration: &IntegrationId) -> Vec<u8> {
    let mut k = integration.as_str().as_bytes().to_vec();
    k.push(0);
    k
}

pub fn error_log(
    integration: &IntegrationId,
    at: DateTime<Utc>,
    id: WorkflowId,
    seq: u32,
) -> Vec<u8> {
    let mut k = integration_prefix(integration);
    k.extend_from_slice(&time_ms(at));
    k.extend_from_slice(&history(id, seq));
    k
}

fn join(parts: &[&str]) -> Vec<u8> {
    parts.join("\0").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn due_keys_sort_by_time_and_round_trip() {
        let early = Utc
            .with_ymd_and_hms(1960, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or_default();
        let late = Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or_default();
        let a = due(early, WorkflowId(9));
        let b = due(late, WorkflowId(1));
        assert!(a < b);
        assert_eq!(parse_due(&b), Some((late, WorkflowId(1))));
    }
}
