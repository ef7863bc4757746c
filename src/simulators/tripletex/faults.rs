//! Fault injection: extra latency and a queue of armed one-shot faults.
//!
//! Each armed [`Fault`] fires for the next `times` requests it matches, then disarms itself.
//! Faults that answer instead of the API ([`FaultKind::is_before`]) are taken when the request
//! arrives; faults that act after a write ([`FaultKind::ApplyThenDrop`],
//! [`FaultKind::ApplyThenHang`]) are taken only when a write to employment details has been
//! applied, so a write refused with 4xx does not use one up.

use serde::{Deserialize, Serialize};

/// What an armed fault does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer 500 with Tripletex's envelope (code 1000), without touching the state.
    ServerError,
    /// Answer 503 (code 1000), as a load balancer in front of Tripletex would, without touching
    /// the state.
    Unavailable,
    /// Answer 429. `reset_s: Some(n)` sends `X-Rate-Limit-Reset: n`; `None` sends no Reset
    /// header (Tripletex's 429 may lack it).
    RateLimited {
        /// Seconds in `X-Rate-Limit-Reset`, or no header.
        reset_s: Option<u64>,
    },
    /// Handle the request normally, but send the answer slowly: the head at once, then the body
    /// in 16-byte chunks `chunk_delay_ms` apart; the connection closes after the answer. Tests
    /// a client's read timeout.
    SlowBody {
        /// Pause between body chunks.
        chunk_delay_ms: u64,
    },
    /// Close the connection without answering and without touching the state.
    Drop,
    /// Only for POST/PUT of employment details: apply the write, then close the connection
    /// without answering. The client cannot know whether its write landed.
    ApplyThenDrop,
    /// Only for POST/PUT of employment details: apply the write, then hold the answer for
    /// `hang_ms` before sending it (a crash test kills the client meanwhile). Shutting the
    /// simulator down ends the hang by closing the connection.
    ApplyThenHang {
        /// How long the answer is held.
        hang_ms: u64,
    },
}

impl FaultKind {
    /// True for faults that answer instead of the API, false for faults that act after a write.
    pub fn is_before(&self) -> bool {
        !matches!(self, Self::ApplyThenDrop | Self::ApplyThenHang { .. })
    }
}

/// One armed fault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// What it does.
    #[serde(flatten)]
    pub kind: FaultKind,
    /// How many matching requests it fires for.
    #[serde(default = "one")]
    pub times: u32,
    /// Only requests with this method (case-insensitive), e.g. `"POST"`.
    #[serde(default)]
    pub method: Option<String>,
    /// Only requests whose path, without the `/v2` prefix and after percent-decoding, starts
    /// with this, e.g. `"/employee/employment/details"`.
    #[serde(default)]
    pub path_prefix: Option<String>,
}

fn one() -> u32 {
    1
}

impl Fault {
    /// A fault of `kind` for the next `times` requests, any method, any path.
    pub fn new(kind: FaultKind, times: u32) -> Self {
        Self {
            kind,
            times,
            method: None,
            path_prefix: None,
        }
    }

    /// Restricts the fault to one method.
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_string());
        self
    }

    /// Restricts the fault to paths starting with `prefix` (written without `/v2`).
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
    /// Added before every Tripletex answer (not the `/_sim/` control API).
    #[serde(default)]
    pub latency_ms: u64,
    /// Armed faults, first match wins.
    #[serde(default)]
    pub armed: Vec<Fault>,
}

impl Faults {
    /// Takes one shot of the first armed fault that matches: a before-fault when `before`,
    /// else an after-write fault.
    pub(crate) fn take(&mut self, before: bool, method: &str, path: &str) -> Option<FaultKind> {
        let index = self
            .armed
            .iter()
            .position(|f| f.kind.is_before() == before && f.matches(method, path))?;
        let fault = &mut self.armed[index];
        fault.times -= 1;
        let kind = fault.kind.clone();
        if fault.times == 0 {
            self.armed.remove(index);
        }
        Some(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_fire_the_armed_number_of_times_for_matching_requests() {
        let mut f = Faults {
            latency_ms: 0,
            armed: vec![
                Fault::new(FaultKind::ServerError, 2)
                    .method("GET")
                    .path_prefix("/employee"),
                Fault::new(FaultKind::ApplyThenDrop, 1),
            ],
        };
        assert_eq!(f.take(true, "POST", "/employee"), None);
        assert_eq!(f.take(true, "GET", "/company/1"), None);
        assert_eq!(
            f.take(true, "get", "/employee/1"),
            Some(FaultKind::ServerError)
        );
        assert_eq!(
            f.take(true, "GET", "/employee"),
            Some(FaultKind::ServerError)
        );
        assert_eq!(f.take(true, "GET", "/employee"), None);
        assert_eq!(f.take(false, "PUT", "/x"), Some(FaultKind::ApplyThenDrop));
        assert!(f.armed.is_empty());
    }

    #[test]
    fn faults_read_from_json() {
        let f: Faults = serde_json::from_str(
            r#"{"latency_ms":5,"armed":[{"kind":"rate_limited","reset_s":null,"times":3},
               {"kind":"apply_then_hang","hang_ms":60000,"method":"POST"}]}"#,
        )
        .unwrap();
        assert_eq!(f.armed[0].kind, FaultKind::RateLimited { reset_s: None });
        assert_eq!(f.armed[1].times, 1);
    }
}
