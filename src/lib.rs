//! salary-sync
pub mod clock;
pub mod connectors;
pub mod domain;
pub mod engine;
pub mod storage;
