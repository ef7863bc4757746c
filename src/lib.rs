//! salary-sync

pub mod simulators;
