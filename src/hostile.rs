//! The properties hostile input must keep, one checker per surface that takes bytes from
//! outside: event bodies (one event or a batch), the webhook's signature headers, the config
//! file, and stored records read back from sled.
//!
//! The cargo-fuzz targets in `fuzz/` and the stable proptests in `tests/it/hostile.rs` call
//! these same functions, so CI checks a short version of exactly what the fuzzer checks. A
//! checker returns `Err` describing the broken property; it never panics on its own account,
//! so a panic during a check is always a panic of the code under test (a finding too).

use crate::api::signature;
use crate::config::Config;
use crate::domain::change::parse_batch;
use crate::domain::{
    step, Failure, FailureCode, HistoryEntry, Input, RetryPolicy, SalaryChange, Workflow,
    WorkflowId,
};
use crate::storage::{codec, ErrorLogEntry, IntegrationSwitch, OwnedRecord};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{de::DeserializeOwned, Serialize};
use std::fmt::Debug;

/// A valid event (the SPEC example); the seed of the fuzz corpus and the proptests.
pub const SAMPLE_EVENT: &str = r#"{"event_id":"evt-2f6c","integration_id":"acme-tripletex","kind":"created","occurred_at":"2026-11-25T10:00:00Z","salary":{"id":"sal-123","employee":{"id":"emp-9","payroll_employee_id":"1234","employee_number":"17","email":"kari@example.no"},"amount":"52000.00","currency":"NOK","period_unit":"monthly","start_date":"2026-01-01","end_date":null,"note":"New agreement"}}"#;

/// A request body: it is malformed JSON, or each element is either refused with a named field
/// or accepted as a change that (a) keeps every validation rule, (b) reads back equal from its
/// wire form with the same store fingerprint (a re-sent event is a duplicate, not a conflict),
/// and (c) reads back equal from its stored form. Returns how many events were accepted.
pub fn event_body(body: &[u8]) -> Result<usize, String> {
    let Ok(items) = parse_batch(body) else {
        return Ok(0);
    };
    let mut accepted = 0;
    for item in items {
        match item {
            Err(e) if e.field.is_empty() || e.message.is_empty() => {
                return Err(format!("a refusal without a field or message: {e:?}"))
            }
            Err(_) => {}
            Ok(change) => {
                accepted += 1;
                accepted_change(&change)?;
            }
        }
    }
    Ok(accepted)
}

fn accepted_change(change: &SalaryChange) -> Result<(), String> {
    let s = &change.salary;
    let amount = s.pay.amount;
    if amount < Decimal::ZERO || amount.scale() > 4 || amount > Decimal::from(1_000_000_000) {
        return Err(format!("accepted an amount out of bounds: {amount}"));
    }
    if s.end_date.is_some_and(|end| end < s.start_date) {
        return Err(format!("accepted end before start: {:?}", s.period()));
    }
    if s.employee.payroll_employee_id.is_none()
        && s.employee.employee_number.is_none()
        && s.employee.email.is_none()
    {
        return Err("accepted an employee with no payroll key".into());
    }
    for id in [
        change.event_id.as_str(),
        change.integration_id.as_str(),
        s.id.as_str(),
    ] {
        if id.is_empty() || id.len() > 128 || id.contains('\0') {
            return Err(format!("accepted an unusable id {id:?}"));
        }
    }
    // Every string is bounded (no record reaches sled's blob size) and every key is free of
    // control characters (none can forge a log line).
    let e = &s.employee;
    let keys = [
        Some(e.hr_id.as_str()),
        e.payroll_employee_id.as_deref(),
        e.employee_number.as_deref(),
        e.email.as_deref(),
        Some(change.event_id.as_str()),
        Some(change.integration_id.as_str()),
        Some(s.id.as_str()),
    ];
    for key in keys.into_iter().flatten() {
        if key.len() > 254 || key.chars().any(char::is_control) {
            return Err(format!("accepted an unbounded or unprintable key {key:?}"));
        }
    }
    if let Some(note) = &s.note {
        let bad = |c: char| c.is_control() && !matches!(c, '\n' | '\r' | '\t');
        if note.chars().count() > 1000 || note.chars().any(bad) {
            return Err(format!(
                "accepted a note of {} bytes or with control characters",
                note.len()
            ));
        }
    }
    if codec::encode(change).len() > 16 * 1024 {
        return Err("a stored change above 16 KiB".into());
    }
    let wire = change.to_json();
    match SalaryChange::from_json(&wire) {
        Ok(again) if &again == change => {
            let (a, b) = (codec::encode(change), codec::encode(&again));
            if codec::fingerprint(&a) != codec::fingerprint(&b) {
                return Err(format!(
                    "the wire round trip changed the stored fingerprint of {change:?}"
                ));
            }
        }
        Ok(again) => {
            return Err(format!(
                "wire round trip changed the event: {change:?} became {again:?}"
            ))
        }
        Err(e) => return Err(format!("its own wire form {wire} is refused: {e}")),
    }
    round_trip(change)
}

/// A stored value: decoding its encoding gives it back, and the encoding is stable.
fn round_trip<T>(value: &T) -> Result<(), String>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let bytes = codec::encode(value);
    match codec::decode::<T>(&bytes) {
        Ok(back) if &back == value => {
            if codec::encode(&back) != bytes {
                return Err(format!("encoding of {value:?} is not stable"));
            }
            Ok(())
        }
        Ok(back) => Err(format!("stored {value:?}, read back {back:?}")),
        Err(e) => Err(format!("stored {value:?}, cannot read it back: {e}")),
    }
}

/// Arbitrary stored bytes, read as every type the store keeps: a record is accepted only with
/// the current format version and without trailing bytes, and one that decodes re-encodes to
/// a record that decodes to the same value (nothing read from disk changes when written back).
pub fn stored_record(bytes: &[u8]) -> Result<usize, String> {
    let mut decoded = 0;
    decoded += stored_as::<Workflow>(bytes)?;
    decoded += stored_as::<HistoryEntry>(bytes)?;
    decoded += stored_as::<OwnedRecord>(bytes)?;
    decoded += stored_as::<ErrorLogEntry>(bytes)?;
    decoded += stored_as::<IntegrationSwitch>(bytes)?;
    decoded += stored_as::<SalaryChange>(bytes)?;
    Ok(decoded)
}

fn stored_as<T>(bytes: &[u8]) -> Result<usize, String>
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let name = std::any::type_name::<T>();
    match codec::decode::<T>(bytes) {
        Err(codec::DecodeError::Empty) if !bytes.is_empty() => {
            Err(format!("{name}: {} bytes called empty", bytes.len()))
        }
        Err(codec::DecodeError::UnknownVersion(v)) if v == codec::FORMAT_VERSION => {
            Err(format!("{name}: the current version {v} called unknown"))
        }
        Err(_) => Ok(0),
        Ok(_) if bytes.first() != Some(&codec::FORMAT_VERSION) => Err(format!(
            "{name}: decoded a record of version {:?}",
            bytes.first()
        )),
        Ok(value) => {
            round_trip(&value).map_err(|e| format!("{name}: {e}"))?;
            let mut longer = bytes.to_vec();
            longer.push(0);
            if codec::decode::<T>(&longer).is_ok() {
                return Err(format!(
                    "{name}: a record with a trailing byte was accepted"
                ));
            }
            Ok(1)
        }
    }
}

/// The webhook's signature check on raw header bytes, as `api::webhook` reads them: it passes
/// only for the exact signature of this body at this timestamp (canonical form: `sha256=` and
/// 64 hex digits, the timestamp as plain decimal digits), within the replay window. And the
/// signature a sender computes for the same inputs always passes, for any secret and body.
pub fn webhook_signature(
    secret: &[u8],
    timestamp: &[u8],
    signature_header: &[u8],
    body: &[u8],
    now: DateTime<Utc>,
    window_s: i64,
) -> Result<bool, String> {
    let header = |bytes: &[u8]| {
        axum::http::HeaderValue::from_bytes(bytes)
            .ok()
            .and_then(|v| v.to_str().ok().map(str::to_owned))
    };
    let (ts, sig) = (header(timestamp), header(signature_header));
    let verdict = signature::verify(secret, ts.as_deref(), sig.as_deref(), body, now, window_s);
    if verdict.is_ok() {
        let ts = ts.unwrap_or_default();
        let t: i64 = ts
            .trim()
            .parse()
            .map_err(|_| format!("passed with a timestamp {ts:?} that is no number"))?;
        if ts.trim() != t.to_string() {
            return Err(format!("passed with a non-canonical timestamp {ts:?}"));
        }
        if now.timestamp().abs_diff(t) > window_s.unsigned_abs() {
            return Err(format!("passed outside the replay window: {t}"));
        }
        let expected = signature::sign(secret, t, body);
        let given = sig.unwrap_or_default();
        if given.trim().to_ascii_lowercase() != expected {
            return Err(format!(
                "passed with {given:?}, the signature is {expected}"
            ));
        }
    }
    // Completeness: what a sender signs now passes, and any other body does not.
    let t = now.timestamp();
    let good = signature::sign(secret, t, body);
    let ts = t.to_string();
    if let Err(e) = signature::verify(secret, Some(&ts), Some(&good), body, now, window_s.max(0)) {
        return Err(format!("a genuine signature was refused: {e}"));
    }
    let mut other = body.to_vec();
    other.push(b' ');
    if signature::verify(secret, Some(&ts), Some(&good), &other, now, window_s.max(0)).is_ok() {
        return Err("a signature passed for another body".into());
    }
    Ok(verdict.is_ok())
}

/// A config file: refused with a message, or accepted with settings the daemon can run on:
/// the engine settings build, and a retry or an auth wait computed with its `[retry]` table
/// schedules a wake time after now without overflow, the delay within the configured bounds.
pub fn config_text(text: &str, now: DateTime<Utc>) -> Result<bool, String> {
    let config = match Config::parse(text) {
        Ok(c) => c,
        Err(e) if e.trim().is_empty() => return Err("a config refused without a message".into()),
        Err(_) => return Ok(false),
    };
    let _ = config.engine_settings();
    let retry = &config.retry;
    let mut interval = 0;
    for _ in 0..retry.attempts_max().min(64) {
        let delay = retry.next_delay(interval);
        if delay.interval_ms > retry.delay_ms_max.max(retry.initial_delay_ms) {
            return Err(format!(
                "interval {} ms above delay_ms_max {}",
                delay.interval_ms, retry.delay_ms_max
            ));
        }
        interval = delay.interval_ms;
    }
    let change = SalaryChange::from_json(
        &serde_json::from_str(SAMPLE_EVENT).map_err(|e| format!("sample: {e}"))?,
    )
    .map_err(|e| format!("sample: {e}"))?;
    let (wf, _) = Workflow::accept(WorkflowId(1), change, now);
    for failure in [
        Failure::transient(FailureCode::Unavailable, "503"),
        Failure::new(
            FailureCode::AuthRejected,
            crate::domain::FailureClass::Auth,
            "401",
        ),
    ] {
        let t = step(&wf, Input::StepFailed(failure), now, retry)
            .map_err(|e| format!("step refused a failure: {e}"))?;
        if !t.workflow.is_terminal() && t.workflow.wake_at.is_none_or(|at| at < now) {
            return Err(format!(
                "a retry scheduled no wake time after now: {:?}",
                t.workflow.wake_at
            ));
        }
    }
    Ok(true)
}
