//! The webhook's signature and timestamp headers, as raw header bytes, with any secret and
//! body. Asserts `salary_sync::hostile::webhook_signature`: no panic; a request passes only
//! with the canonical signature of that exact body inside the replay window; a genuine
//! signature always passes.
#![no_main]

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Layout: [window byte] then secret, timestamp, signature, body separated by 0xff.
    let Some((&window, rest)) = data.split_first() else {
        return;
    };
    let mut parts = rest.splitn(4, |b| *b == 0xff);
    let secret = parts.next().unwrap_or_default();
    let timestamp = parts.next().unwrap_or_default();
    let signature = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();
    let now = Utc
        .timestamp_opt(1_800_000_000, 0)
        .single()
        .unwrap_or_default();
    if let Err(e) = salary_sync::hostile::webhook_signature(
        secret,
        timestamp,
        signature,
        body,
        now,
        i64::from(window) * 16,
    ) {
        panic!("signature property broken: {e}");
    }
});
