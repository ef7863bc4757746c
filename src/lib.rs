//! salary-sync: carries salary changes from an HR system into a payroll system, durably.
//!
//! Code map (see ARCHITECTURE.md for the invariants):
//! - [`domain`]: the salary change event, money, the workflow states, the transition table and
//!   the pure step function. No I/O.
//! - [`storage`]: the sled store; the only module that imports sled. Group commit with fsync.
//! - [`connectors`]: one module per payroll system behind the `Connector` trait.
//! - [`simulators`]: stateful fake payroll servers with fault injection (tests, demo, benches).
//! - [`engine`]: scheduler, workers, retry policy, operator actions.
//! - [`api`]: the admin API and the operations it shares with the CLI's direct mode.
//! - [`daemon`]: store + engine + admin API under one stop signal.
//! - [`cli`]: the commands; `main.rs` is a thin shell over it.
//! - [`config`], [`secret`], [`clock`], [`metrics`]: the TOML config, redacted credentials, the
//!   wall clock, Prometheus counters.
//! - `hostile`: the properties hostile input must keep, shared by the fuzz targets (`fuzz/`)
//!   and the proptests of `tests/it/hostile.rs`.

/// The git commit this binary was built from (`unknown` outside a git checkout).
pub const BUILD_COMMIT: &str = env!("SALARY_SYNC_BUILD_COMMIT");

pub mod api;
pub mod cli;
pub mod clock;
pub mod config;
pub mod connectors;
pub mod daemon;
pub mod domain;
pub mod engine;
#[doc(hidden)]
pub mod hostile;
pub mod metrics;
pub mod secret;
pub mod simulators;
pub mod storage;
