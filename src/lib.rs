//! salary-sync
pub mod domain;
