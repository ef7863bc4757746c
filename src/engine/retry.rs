//! The real retry policy: exponential backoff with jitter from the `backoff` crate.
//!
//! Architecture Invariant: this is the only file that imports `backoff` (RustSec lists it as
//! unmaintained); moving to `backon` touches this file alone. backoff's `ExponentialBackoff`
//! holds an `Instant`, which cannot be stored, so the workflow persists the interval reached
//! and the policy is rebuilt from it for each delay.

use crate::domain::{RetryDelay, RetryPolicy};
use backoff::backoff::Backoff;
use backoff::ExponentialBackoff;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Retry settings, as written in the config file's `[retry]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrySettings {
    /// Attempts at one step before the workflow fails.
    pub attempts_max: u32,
    pub initial_delay_ms: u64,
    pub delay_ms_max: u64,
    pub multiplier: f64,
    /// Jitter: each delay is drawn from interval × [1 - r, 1 + r].
    pub randomization: f64,
    /// The wait while an integration's credentials are refused.
    pub auth_wait_ms: u64,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            attempts_max: 8,
            initial_delay_ms: 1_000,
            delay_ms_max: 300_000,
            multiplier: 2.0,
            randomization: 0.3,
            auth_wait_ms: 300_000,
        }
    }
}

impl RetrySettings {
    /// Checks the settings, naming the bad key.
    pub fn validate(&self) -> Result<(), String> {
        if self.attempts_max == 0 {
            return Err("retry.attempts_max must be at least 1".into());
        }
        if self.initial_delay_ms == 0 || self.initial_delay_ms > self.delay_ms_max {
            return Err("retry.initial_delay_ms must be between 1 and retry.delay_ms_max".into());
        }
        // Longer waits are no retry policy, and near `u64::MAX` they overflowed the wake
        // time (found by the config fuzz property).
        const WAIT_MS_MAX: u64 = 30 * 24 * 3600 * 1000;
        if self.delay_ms_max > WAIT_MS_MAX {
            return Err(format!(
                "retry.delay_ms_max must be at most {WAIT_MS_MAX} (30 days)"
            ));
        }
        if self.auth_wait_ms > WAIT_MS_MAX {
            return Err(format!(
                "retry.auth_wait_ms must be at most {WAIT_MS_MAX} (30 days)"
            ));
        }
        if !(1.0..=10.0).contains(&self.multiplier) {
            return Err("retry.multiplier must be between 1.0 and 10.0".into());
        }
        if !(0.0..1.0).contains(&self.randomization) {
            return Err("retry.randomization must be in [0.0, 1.0)".into());
        }
        Ok(())
    }
}

impl RetryPolicy for RetrySettings {
    fn attempts_max(&self) -> u32 {
        self.attempts_max
    }

    fn next_delay(&self, previous_interval_ms: u64) -> RetryDelay {
        let current = if previous_interval_ms == 0 {
            self.initial_delay_ms
        } else {
            ((previous_interval_ms as f64) * self.multiplier).min(self.delay_ms_max as f64) as u64
        };
        let mut policy = ExponentialBackoff {
            current_interval: Duration::from_millis(current),
            initial_interval: Duration::from_millis(self.initial_delay_ms),
            randomization_factor: self.randomization,
            multiplier: 1.0,
            max_interval: Duration::from_millis(self.delay_ms_max),
            max_elapsed_time: None,
            ..ExponentialBackoff::default()
        };
        let delay = policy
            .next_backoff()
            .unwrap_or(Duration::from_millis(current));
        RetryDelay {
            delay_ms: delay.as_millis() as u64,
            interval_ms: current,
        }
    }

    fn auth_wait_ms(&self) -> u64 {
        self.auth_wait_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_stay_within_jitter_and_cap() {
        let s = RetrySettings {
            initial_delay_ms: 1000,
            delay_ms_max: 8000,
            ..RetrySettings::default()
        };
        let mut interval = 0;
        let mut intervals = Vec::new();
        for _ in 0..6 {
            let d = s.next_delay(interval);
            let lo = (d.interval_ms as f64 * 0.7) as u64;
            let hi = (d.interval_ms as f64 * 1.3) as u64 + 1;
            assert!((lo..=hi).contains(&d.delay_ms), "{d:?}");
            interval = d.interval_ms;
            intervals.push(interval);
        }
        assert_eq!(intervals, vec![1000, 2000, 4000, 8000, 8000, 8000]);
    }

    #[test]
    fn bad_settings_name_their_key() {
        let bad = RetrySettings {
            attempts_max: 0,
            ..RetrySettings::default()
        };
        assert!(bad.validate().unwrap_err().contains("retry.attempts_max"));
        assert!(RetrySettings::default().validate().is_ok());
    }
}
