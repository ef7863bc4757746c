//! The integration tests: one binary, real processes, real HTTP on loopback, real sled stores.

mod cli;
mod crash;
mod e2e;
mod faults;
mod hostile;
mod support;
mod unimicro;
mod visma;
mod webhook;
