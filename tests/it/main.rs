//! The integration tests: one binary, real processes, real HTTP on loopback, real sled stores.

mod bounds;
mod cli;
mod crash;
mod e2e;
mod edge;
mod faults;
mod hostile;
mod lifecycle;
mod logs;
mod probes;
mod rate_limit;
mod reload;
mod sim_payroll;
mod simulation;
mod storage_faults;
mod support;
mod unimicro;
mod visma;
mod webhook;
