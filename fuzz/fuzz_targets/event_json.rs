//! Event bodies as the webhook and `submit` read them: one event or a batch, any bytes.
//! Asserts `salary_sync::hostile::event_body`: no panic; each element refused with a named
//! field or accepted as a change that keeps every rule and round-trips through its wire form
//! and its stored form.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Err(e) = salary_sync::hostile::event_body(body) {
        panic!("event body property broken: {e}");
    }
});
