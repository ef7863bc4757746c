//! The seven workflow states and the table of allowed transitions between them.
//!
//! `TRANSITIONS` is the one source of truth for the diagrams in state-diagrams/; the step
//! function in `step.rs` may only produce edges listed here (a property test holds it to that).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a workflow instance is. Names are kebab-case on every surface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    Pending,
    MatchedToPosition,
    CurrencyValidated,
    OverlapChecked,
    Sent,
    Failed,
    ManualDeleteRequired,
}

impl State {
    pub const ALL: [State; 7] = [
        State::Pending,
        State::MatchedToPosition,
        State::CurrencyValidated,
        State::OverlapChecked,
        State::Sent,
        State::Failed,
        State::ManualDeleteRequired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::MatchedToPosition => "matched-to-position",
            Self::CurrencyValidated => "currency-validated",
            Self::OverlapChecked => "overlap-checked",
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::ManualDeleteRequired => "manual-delete-required",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|s| s.as_str()).collect();
                format!("`{s}` is not a state; states are {}", names.join(", "))
            })
    }

    /// Terminal states take no further step; only an operator moves them.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Sent | Self::Failed | Self::ManualDeleteRequired)
    }

    /// A stable one-byte code, used in storage index keys. Never renumber.
    pub fn code(self) -> u8 {
        match self {
            Self::Pending => 1,
            Self::MatchedToPosition => 2,
            Self::CurrencyValidated => 3,
            Self::OverlapChecked => 4,
            Self::Sent => 5,
            Self::Failed => 6,
            Self::ManualDeleteRequired => 7,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One allowed edge of the state machine, with the reason it is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    pub from: State,
    pub to: State,
    pub label: &'static str,
}

const fn edge(from: State, to: State, label: &'static str) -> Edge {
    Edge { from, to, label }
}

use State::*;

/// Every transition the workflow can take. Self-loops are steps that keep the state
/// (retry scheduled, intent recorded, manual delete confirmed).
pub const TRANSITIONS: &[Edge] = &[
    edge(Pending, MatchedToPosition, "employee and employment found"),
    edge(MatchedToPosition, CurrencyValidated, "currency matches"),
    edge(
        CurrencyValidated,
        OverlapChecked,
        "no foreign record overlaps",
    ),
    edge(
        OverlapChecked,
        OverlapChecked,
        "intent to write recorded / write accepted as a job",
    ),
    edge(OverlapChecked, Sent, "written (or adopted after a crash)"),
    edge(
        OverlapChecked,
        ManualDeleteRequired,
        "Tripletex delete: values cleared",
    ),
    edge(Pending, Pending, "transient error: retry scheduled"),
    edge(
        MatchedToPosition,
        MatchedToPosition,
        "transient error: retry scheduled",
    ),
    edge(
        CurrencyValidated,
        CurrencyValidated,
        "transient error: retry scheduled",
    ),
    edge(
        OverlapChecked,
        OverlapChecked,
        "transient error: retry scheduled",
    ),
    edge(
        Pending,
        Failed,
        "no employment / permanent error / retries exhausted / cancelled",
    ),
    edge(
        MatchedToPosition,
        Failed,
        "currency mismatch / permanent error / retries exhausted / cancelled",
    ),
    edge(
        CurrencyValidated,
        Failed,
        "overlap / permanent error / retries exhausted / cancelled",
    ),
    edge(
        OverlapChecked,
        Failed,
        "payroll rejected the write / retries exhausted / cancelled",
    ),
    edge(Failed, Pending, "operator retry"),
    edge(
        ManualDeleteRequired,
        ManualDeleteRequired,
        "operator confirms the manual delete",
    ),
];

/// True when `from -> to` is an edge of the table.
pub fn is_allowed(from: State, to: State) -> bool {
    TRANSITIONS.iter().any(|e| e.from == from && e.to == to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes_round_trip() {
        for state in State::ALL {
            assert_eq!(State::parse(state.as_str()), Ok(state));
            assert_eq!(State::from_code(state.code()), Some(state));
        }
        assert!(State::parse("done").is_err());
    }

    #[test]
    fn terminal_states_only_leave_through_an_operator() {
        for e in TRANSITIONS {
            if e.from.is_terminal() {
                assert!(e.label.starts_with("operator"), "{e:?}");
            }
        }
    }
}
