//! salary-sync
pub mod clock;
pub mod connectors;
pub mod domain;
pub mod engine;
pub mod storage;
pub mod api;
pub mod config;
pub mod secret;
pub mod daemon;
pub mod cli;
