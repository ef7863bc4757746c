//! Connectors: one module per payroll system behind one trait.
//!
//! Architecture Invariant: only this module knows a vendor's JSON, URLs and error codes, and it
//! never touches storage. Every call answers with data or with an `Error` whose `failure()`
//! says whether to retry (and not before when), fail, or wait for a human.

pub mod credential;
pub mod error;
pub mod http;
pub mod rate_budget;
pub mod tripletex;
pub mod unimicro;
pub mod visma;

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
    Conflict {
        record_id: String,
        period: Period,
    },
    /// A conflicting record that is better named by what it is than by a period (Tripletex's
    /// details rows have a date, not a range): `description` says its date and what it holds
    /// (never an amount).
    ConflictDescribed {
        record_id: String,
        /// The day the record is in force from.
        date: chrono::NaiveDate,
        description: String,
    },
}

impl OverlapCheck {
    pub fn is_conflict(&self) -> bool {
        !matches!(self, Self::Clear)
    }

    /// The conflicting record's id and the day it starts; `None` when clear.
    pub fn conflict_start(&self) -> Option<(&str, chrono::NaiveDate)> {
        match self {
            Self::Clear => None,
            Self::Conflict { record_id, period } => Some((record_id, period.start)),
            Self::ConflictDescribed {
                record_id, date, ..
            } => Some((record_id, *date)),
        }
    }
}

/// How a write started: finished at once, or accepted as an asynchronous job to poll
/// (Visma.net Payroll answers 202 with the job's `Location`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteStart {
    Done(WriteReport),
    Job { job: String },
}

/// A polled job's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobPoll {
    /// Still running: poll again later.
    Running,
    /// Succeeded and the change is in payroll.
    Done(WriteReport),
}

/// One payroll system, as the engine drives it: one method per workflow step. Every method
/// may be called again after a crash or a timeout, so each must be safe to repeat.
#[async_trait]
pub trait Connector: Send + Sync {
    fn system(&self) -> PayrollSystem;

    /// True when a delete only clears the record's values and the record stays (Tripletex:
    /// it ends in `manual-delete-required`). Used when an interrupted delete is adopted.
    fn delete_keeps_record(&self) -> bool {
        false
    }

    /// True while the integration's request-rate budget is spent (Tripletex: learned from its
    /// `X-Rate-Limit-*` headers). The engine starts no step of this integration meanwhile, and
    /// a worker gives its instance up before the next step, so the wait holds no worker that
    /// another integration could use. Systems without a budget are never paced.
    fn paced(&self) -> bool {
        false
    }

    /// `pending` step: the payroll employee and the employment whose period covers the
    /// salary period.
    async fn match_position(&self, change: &SalaryChange) -> Result<Position, Error>;

    /// `matched-to-position` step: the payroll system's (company's) currency.
    async fn currency(&self) -> Result<Currency, Error>;

    /// The currency `currency` would answer, when the connector holds it already and no
    /// payroll call is needed (read once and kept, or configured). The engine then commits the
    /// match and the currency check together, in one transaction.
    fn known_currency(&self) -> Option<Currency> {
        None
    }

    /// `currency-validated` step: is there a salary record, other than `owned`, whose period
    /// overlaps the salary's? A delete never conflicts.
    async fn check_overlap(
        &self,
        change: &SalaryChange,
        position: &Position,
        owned: Option<&PayrollRecord>,
    ) -> Result<OverlapCheck, Error>;

    /// `check_overlap`, also given the records salary-sync wrote for the employee's other HR
    /// salaries on the same employment (`siblings`): those are salary-sync's own, not foreign.
    /// The engine asks this only after `check_overlap` found a conflict and siblings exist.
    /// Systems whose records cannot be shared between salaries keep the default.
    async fn check_overlap_among(
        &self,
        change: &SalaryChange,
        position: &Position,
        owned: Option<&PayrollRecord>,
        siblings: &[PayrollRecord],
    ) -> Result<OverlapCheck, Error> {
        let _ = siblings;
        self.check_overlap(change, position, owned).await
    }

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

    /// The engine's write: systems with asynchronous writes override it to return the job;
    /// the others finish the write here.
    async fn start_write(
        &self,
        change: &SalaryChange,
        position: &Position,
        owned: Option<&PayrollRecord>,
    ) -> Result<WriteStart, Error> {
        self.write(change, position, owned)
            .await
            .map(WriteStart::Done)
    }

    /// Polls a job `start_write` returned. Only systems with asynchronous writes have jobs.
    async fn poll_job(
        &self,
        job: &str,
        change: &SalaryChange,
        position: &Position,
    ) -> Result<JobPoll, Error> {
        let _ = (change, position);
        Err(Error::Unexpected(format!(
            "{} has no asynchronous jobs, but job {job} was recorded",
            self.system()
        )))
    }

    /// Reconciliation for asynchronous writes: a job this change started whose URL was never
    /// recorded (a crash between the write and its commit). Looked for before any second write.
    async fn find_job(
        &self,
        change: &SalaryChange,
        position: &Position,
    ) -> Result<Option<String>, Error> {
        let _ = (change, position);
        Ok(None)
    }
}
