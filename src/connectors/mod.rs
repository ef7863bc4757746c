//! Connectors: one module per payroll system behind one trait.
//!
//! Architecture Invariant: only this module knows a vendor's JSON, URLs and error codes, and it
//! never touches storage. Every call answers with data or with an `Error` whose `failure()`
//! says whether to retry (and not before when), fail, or wait for a human.

pub mod error;
pub mod http;
pub mod tripletex;

pub use error::Error;

use crate::domain::{Currency, PayrollRecord, Period, Position, SalaryChange, WriteReport};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The payroll systems salary-sync writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PayrollSystem {
    Tripletex,
    VismaPayroll,
    Unimicro,
}

impl PayrollSystem {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tripletex => "tripletex",
            Self::VismaPayroll => "visma-payroll",
            Self::Unimicro => "unimicro",
        }
    }
}

impl fmt::Display for PayrollSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The result of the overlap step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OverlapCheck {
    Clear,
    Conflict { record_id: String, period: Period },
}

/// One payroll system, as the engine drives it: one method per workflow step. Every method
/// may be called again after a crash or a timeout, so each must be safe to repeat.
#[async_trait]
pub trait Connector: Send + Sync {
    fn system(&self) -> PayrollSystem;

    /// `pending` step: the payroll employee and the employment whose period covers the
    /// salary period.
    async fn match_position(&self, change: &SalaryChange) -> Result<Position, Error>;

    /// `matched-to-position` step: the payroll system's (company's) currency.
    async fn currency(&self) -> Result<Currency, Error>;

    /// `currency-validated` step: is there a salary record, other than `owned`, whose period
    /// overlaps the salary's? A delete never conflicts.
    async fn check_overlap(
        &self,
        change: &SalaryChange,
        position: &Position,
        owned: Option<&PayrollRecord>,
    ) -> Result<OverlapCheck, Error>;

    /// Reconciliation after an interrupted write: the record, if payroll already holds exactly
    /// what `write` would produce for this change. Called before any second write.
    async fn find_written(
        &self,
        change: &SalaryChange,
        position: &Position,
        owned: Option<&PayrollRecord>,
    ) -> Result<Option<PayrollRecord>, Error>;

    /// `overlap-checked` step: create the record, update `owned`, or delete (clear) it.
    async fn write(
        &self,
        change: &SalaryChange,
        position: &Position,
        owned: Option<&PayrollRecord>,
    ) -> Result<WriteReport, Error>;
}
