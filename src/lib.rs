//! salary-sync
