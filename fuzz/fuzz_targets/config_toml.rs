//! The config file, any text. Asserts `salary_sync::hostile::config_text`: no panic; a
//! refusal has a message; an accepted config builds engine settings and its retry table
//! schedules retries and auth waits without overflow.
#![no_main]

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let now = Utc
        .timestamp_opt(1_800_000_000, 0)
        .single()
        .unwrap_or_default();
    if let Err(e) = salary_sync::hostile::config_text(text, now) {
        panic!("config property broken: {e}");
    }
});
