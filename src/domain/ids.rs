//! Identifiers: workflow instances, integrations, HR salaries and HR events.
//!
//! Ids that come from outside (integration, salary, event) are validated once at the edge
//! so the rest of the code can rely on them being short, printable and free of the `\0`
//! byte that storage uses as a key separator.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The longest external id accepted, in bytes.
pub const EXTERNAL_ID_LEN_MAX: usize = 128;

/// A workflow instance id, allocated by the store. Shown as `wf-42`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WorkflowId(pub u64);

impl fmt::Display for WorkflowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "wf-{}", self.0)
    }
}

impl FromStr for WorkflowId {
    type Err = String;

    /// Accepts `wf-42` and `42`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.strip_prefix("wf-").unwrap_or(s);
        digits
            .parse::<u64>()
            .map(WorkflowId)
            .map_err(|_| format!("`{s}` is not a workflow id (expected wf-<number>)"))
    }
}

macro_rules! external_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(String);

        impl $name {
            /// Checks that `s` is a usable id: 1..=128 bytes, printable, no control characters.
            pub fn parse(s: &str) -> Result<Self, String> {
                check_external_id(s).map(|()| Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

external_id!(
    /// The id of one configured integration (one customer's payroll system).
    IntegrationId
);
external_id!(
    /// The HR system's id of a salary; all changes to one salary share it.
    SalaryId
);
external_id!(
    /// The HR system's id of one change event; the idempotency key of ingest.
    EventId
);

fn check_external_id(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > EXTERNAL_ID_LEN_MAX {
        return Err(format!("must be at most {EXTERNAL_ID_LEN_MAX} bytes"));
    }
    if s.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_id_round_trips_through_its_display_form() {
        let id = WorkflowId(42);
        assert_eq!(id.to_string(), "wf-42");
        assert_eq!("wf-42".parse::<WorkflowId>(), Ok(id));
        assert_eq!("42".parse::<WorkflowId>(), Ok(id));
        assert!("wf-x".parse::<WorkflowId>().is_err());
    }

    #[test]
    fn external_ids_refuse_empty_long_and_control_characters() {
        assert!(SalaryId::parse("sal-1").is_ok());
        assert!(SalaryId::parse("").is_err());
        assert!(SalaryId::parse(&"x".repeat(129)).is_err());
        assert!(SalaryId::parse("a\0b").is_err());
    }
}
