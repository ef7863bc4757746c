//! The domain: salary changes, money, the workflow states and the pure step function.
//!
//! Architecture Invariant: nothing here does I/O, is async, or reads the clock; it knows
//! neither sled nor reqwest nor HTTP. Time and jitter come in as arguments.

pub mod change;
pub mod diagram;
pub mod failure;
pub mod ids;
pub mod money;
pub mod overlap;
pub mod state;
pub mod step;
pub mod workflow;

#[cfg(test)]
mod step_tests;

pub use change::{ChangeKind, Period, PeriodUnit, Salary, SalaryChange, ValidationError};
pub use failure::{Failure, FailureClass, FailureCode};
pub use ids::{EventId, IntegrationId, SalaryId, WorkflowId};
pub use money::{Currency, Money};
pub use state::State;
pub use step::{
    step, Effect, Input, OperatorAction, RetryDelay, RetryPolicy, Transition, WriteReport,
};
pub use workflow::{HistoryEntry, Intent, PayrollRecord, Position, Workflow};
