//! The daemon's HTTP surfaces: the loopback admin API the CLI talks to while the daemon runs,
//! and the operations both it and the CLI's direct mode share.

pub mod admin;
pub mod listener;
pub mod probes;
pub mod proof;
pub mod service;
pub mod signature;
pub mod webhook;
