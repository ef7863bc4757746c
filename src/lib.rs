//! salary-sync
pub mod connectors;
pub mod domain;
pub mod secret;
pub mod simulators;
