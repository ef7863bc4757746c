//! Stateful fake payroll servers that speak each system's wire format, with fault injection.
//! Used by the tests, the demo and the benches; never by the daemon's production code paths.
//!
//! Architecture Invariant: a simulator binds loopback only and keeps its state in memory; each
//! one is started with a seed and stopped with its handle's `shutdown`, which joins its task.

pub(crate) mod conn;
mod control;
pub mod tripletex;
pub mod unimicro;
pub mod visma;
