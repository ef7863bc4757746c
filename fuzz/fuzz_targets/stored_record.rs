//! Stored records, any bytes, decoded as every type the store keeps (instance, history entry,
//! owned record, error-log line, integration switch, change). Asserts
//! `salary_sync::hostile::stored_record`: no panic or runaway allocation; only the current
//! format version decodes; no trailing bytes; what decodes re-encodes to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Err(e) = salary_sync::hostile::stored_record(bytes) {
        panic!("stored record property broken: {e}");
    }
});
