//! Fault injection: extra latency and a queue of armed one-shot faults.
//!
//! Each armed [`Fault`] fires for the next `times` requests it matches, then disarms itself.
//! Faults are taken in one of three phases ([`Phase`]): `Before` faults answer instead of the
//! API when a request arrives; `AfterWrite` faults ([`FaultKind::ApplyThenDrop`],
//! [`FaultKind::ApplyThenHang`]) act only once a position PUT has been accepted as a job, so a
//! PUT refused with 4xx does not use one up; `Job` faults ([`FaultKind::JobFailsLate`],
//! [`FaultKind::SalaryNotPerformed`]) decide how the next accepted job ends.

use serde::{Deserialize, Serialize};

/// What an armed fault does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer 500 with the assumed error body, without touching the state.
    ServerError,
    /// Answer 503, as a load balancer would, without touching the state.
    Unavailable,
    /// Answer 429. `retry_after_s: Some(n)` sends `Retry-After: n`; `None` sends none.
    RateLimited {
        /// Seconds in `Retry-After`, or no header.
        retry_after_s: Option<u64>,
    },
    /// Handle the request normally, but send the answer's body in 16-byte chunks
    /// `chunk_delay_ms` apart; the connection closes after the answer.
    SlowBody {
        /// Pause between body chunks.
        chunk_delay_ms: u64,
    },
    /// Close the connection without answering and without touching the state.
    Drop,
    /// Someone edits the position in Visma just before this request is handled: the
    /// position's ETag moves (its salary stays), so a PUT with the ETag read before gets 412.
    EditedConcurrently,
    /// Only for position PUTs: accept the write (the job is queued), then close the
    /// connection without answering. The client cannot know whether its write landed.
    ApplyThenDrop,
    /// Only for position PUTs: accept the write, then hold the 202 for `hang_ms` (a crash test
    /// kills the client meanwhile). Shutting the simulator down ends the hang.
    ApplyThenHang {
        /// How long the answer is held.
        hang_ms: u64,
    },
    /// The next accepted job runs, then fails with a validation result (nothing applied).
    JobFailsLate,
    /// The next accepted job succeeds with the warning "Salary update was not performed"
    /// and leaves the salary timeline as it was.
    SalaryNotPerformed,
}

/// When a fault is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Before,
    AfterWrite,
    Job,
}

impl FaultKind {
    pub(crate) fn phase(&self) -> Phase {
        match self {
            Self::ApplyThenDrop | Self::ApplyThenHang { .. } => Phase::AfterWrite,
            Self::JobFailsLate | Self::SalaryNotPerformed => Phase::Job,
            _ => Phase::Before,
        }
    }
}

/// How an accepted job will end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobFate {
    Normal,
    FailLate,
    SalaryNotPerformed,
}

/// One armed fault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    #[serde(flatten)]
    pub kind: FaultKind,
    /// How many matching requests it fires for.
    #[serde(default = "one")]
    pub times: u32,
    /// Only requests with this method (case-insensitive), e.g. `"PUT"`.
    #[serde(default)]
    pub method: Option<String>,
    /// Only requests whose path, without the `/v2` prefix, starts with this, e.g.
    /// `"/employees"`. The token endpoint's path is `/connect/token`.
    #[serde(default)]
    pub path_prefix: Option<String>,
}

fn one() -> u32 {
    1
}

impl Fault {
    pub fn new(kind: FaultKind, times: u32) -> Self {
        Self {
            kind,
            times,
            method: None,
            path_prefix: None,
        }
    }

    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_string());
        self
    }

    pub fn path_prefix(mut self, prefix: &str) -> Self {
        self.path_prefix = Some(prefix.to_string());
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.times > 0
            && self
                .method
                .as_ref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self
                .path_prefix
                .as_ref()
                .is_none_or(|p| path.starts_with(p.as_str()))
    }
}

/// All fault settings. `GET /_sim/faults` shows them, `PUT /_sim/faults` replaces them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Faults {
    /// Added before every API answer (not the `/_sim/` control API).
    #[serde(default)]
    pub latency_ms: u64,
    /// Armed faults, first match wins.
    #[serde(default)]
    pub armed: Vec<Fault>,
}

impl Faults {
    /// Takes one shot of the first armed fault of `phase` that matches.
    pub(crate) fn take(&mut self, phase: Phase, method: &str, path: &str) -> Option<FaultKind> {
        let index = self
            .armed
            .iter()
            .position(|f| f.kind.phase() == phase && f.matches(method, path))?;
        let fault = &mut self.armed[index];
        fault.times -= 1;
        let kind = fault.kind.clone();
        if fault.times == 0 {
            self.armed.remove(index);
        }
        Some(kind)
    }

    /// The fate of a job accepted now (takes a `Job` fault if one is armed).
    pub(crate) fn job_fate(&mut self, path: &str) -> JobFate {
        match self.take(Phase::Job, "PUT", path) {
            Some(FaultKind::JobFailsLate) => JobFate::FailLate,
            Some(FaultKind::SalaryNotPerformed) => JobFate::SalaryNotPerformed,
            _ => JobFate::Normal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_fire_in_their_phase_the_armed_number_of_times() {
        let mut f = Faults {
            latency_ms: 0,
            armed: vec![
                Fault::new(FaultKind::ServerError, 2)
                    .method("GET")
                    .path_prefix("/employees"),
                Fault::new(FaultKind::ApplyThenDrop, 1),
                Fault::new(FaultKind::JobFailsLate, 1),
            ],
        };
        assert_eq!(f.take(Phase::Before, "PUT", "/employees"), None);
        assert_eq!(
            f.take(Phase::Before, "get", "/employees/x"),
            Some(FaultKind::ServerError)
        );
        assert_eq!(
            f.take(Phase::Before, "GET", "/employees"),
            Some(FaultKind::ServerError)
        );
        assert_eq!(f.take(Phase::Before, "GET", "/employees"), None);
        assert_eq!(
            f.take(Phase::AfterWrite, "PUT", "/x"),
            Some(FaultKind::ApplyThenDrop)
        );
        assert_eq!(f.job_fate("/employees/e/positions/p"), JobFate::FailLate);
        assert_eq!(f.job_fate("/employees/e/positions/p"), JobFate::Normal);
        assert!(f.armed.is_empty());
    }

    #[test]
    fn faults_read_from_json() {
        let f: Faults = serde_json::from_str(
            r#"{"latency_ms":5,"armed":[{"kind":"rate_limited","retry_after_s":null,"times":3},
               {"kind":"apply_then_hang","hang_ms":60000,"method":"PUT"},{"kind":"salary_not_performed"}]}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            f.armed[0].kind,
            FaultKind::RateLimited {
                retry_after_s: None
            }
        );
        assert_eq!(f.armed[1].times, 1);
        assert_eq!(f.armed[2].kind.phase(), Phase::Job);
    }
}
