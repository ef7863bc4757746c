//! What the harness-less benches (`load.rs`, `scale.rs`) share: reading a size from the
//! environment, and turning a run's result into an exit code with the error printed.

use anyhow::{Context, Result};
use std::process::ExitCode;

/// `name` as a whole number (underscores allowed: `LOAD_N=100_000`), or `default` when unset.
pub fn env_usize(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .replace('_', "")
            .parse()
            .with_context(|| format!("{name}={v} is not a whole number")),
        Err(_) => Ok(default),
    }
}

/// Success, or the error with its causes after `bench: ` and a failing exit code.
pub fn exit(bench: &str, result: Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{bench}: {e:#}");
            ExitCode::FAILURE
        }
    }
}
