//! A per-integration request-rate budget learned from the payroll system's
//! `X-Rate-Limit-Limit`, `X-Rate-Limit-Remaining` and `X-Rate-Limit-Reset` answer headers
//! (Tripletex: "the number of allowed requests in the current period", "the number of remaining
//! requests", "the number of seconds left in the current period"; once the limit is hit every
//! request gets 429 until the period ends).
//!
//! [`Budget`] is the pure part: it is told the instant (`now`) of every question and every
//! answer, never reads a clock, and is unit-tested with made-up instants. [`RateBudget`] wraps
//! it for a connector: a mutex that is never held across an await, and the async wait.
//!
//! Invariant: the budget never lets more requests go than it believes the server has left.
//! It counts what it knows as little as possible: the lowest `Remaining` seen in the current
//! period, minus every request sent whose answer has not come back yet. When the period ends
//! by our clock it assumes a full `Limit` again, minus the requests still in flight. Before
//! the first answer with the headers, and for a server that never sends them, nothing is paced.

use reqwest::header::HeaderMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// While the period has ended by our clock but no answer has told us the next reset yet, a
/// request that finds the assumed budget spent looks again after this long.
const UNKNOWN_RESET_POLL: Duration = Duration::from_millis(50);
/// A `Reset` further away than this is taken as this: a garbage header must not stop an
/// integration for years (as `http::retry_not_before` caps `Retry-After`).
const RESET_MAX: Duration = Duration::from_secs(24 * 3600);

/// The three headers of one answer. A field is `None` when its header is missing or unreadable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reading {
    pub limit: Option<u32>,
    pub remaining: Option<u32>,
    /// Seconds left in the current period.
    pub reset_s: Option<u64>,
}

impl Reading {
    /// Reads the headers of an answer. Values that are not whole non-negative numbers are
    /// ignored (a fractional `Reset` is rounded up, as waiting longer is the safe side).
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        let reset_s = text("x-rate-limit-reset").and_then(|v| {
            v.parse::<u64>().ok().or_else(|| {
                let f = v
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite() && *f >= 0.0)?;
                Some(f.ceil().min(RESET_MAX.as_secs() as f64) as u64)
            })
        });
        Self {
            limit: text("x-rate-limit-limit").and_then(|v| v.parse().ok()),
            remaining: text("x-rate-limit-remaining").and_then(|v| v.parse().ok()),
            reset_s,
        }
    }

    /// True when the answer carried none of the three headers.
    pub fn is_empty(&self) -> bool {
        self.limit.is_none() && self.remaining.is_none() && self.reset_s.is_none()
    }
}

/// What the server told us about one period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Period {
    limit: Option<u32>,
    /// The lowest `Remaining` seen in this period (or the assumed full limit after a reset).
    remaining: u32,
    /// When the period ends; `None` after our clock rolled the period over and no answer has
    /// told us the next reset yet.
    reset_at: Option<Instant>,
}

impl Period {
    /// Two views of the same period: the lowest count and the earliest end win.
    fn merge(self, other: Period) -> Period {
        Period {
            limit: other.limit.or(self.limit),
            remaining: self.remaining.min(other.remaining),
            reset_at: match (self.reset_at, other.reset_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        }
    }
}

/// `Reset` has whole-second granularity and answers travel, so answers of one period disagree
/// on its end by up to about a second. An answer whose end is later than the current
/// period's by more than this was counted in the next period.
const SAME_PERIOD_SLACK: Duration = Duration::from_millis(1500);

/// The answer to "may a request go now?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go; the request is counted in flight until `settle` or `release`.
    Go,
    /// The budget is spent: look again at this instant.
    WaitUntil(Instant),
}

/// The pure budget of one integration.
#[derive(Debug, Clone, Default)]
pub struct Budget {
    period: Option<Period>,
    /// Answers that the server counted in the period after the current one (a request sent
    /// just before the period ends by our clock can land after it ends at the server's).
    next: Option<Period>,
    /// Requests sent whose answer has not been read yet.
    in_flight: u32,
}

impl Budget {
    pub fn new() -> Self {
        Self::default()
    }

    /// Ends the period if its reset instant has passed. The next period starts with what
    /// answers already told us about it, else with the full limit (when we know it), else
    /// unpaced (we never learned the limit).
    fn roll(&mut self, now: Instant) {
        while let Some(p) = self.period {
            match p.reset_at {
                Some(at) if now >= at => {
                    self.period = match self.next.take() {
                        Some(next) => Some(next),
                        None => p.limit.map(|limit| Period {
                            limit: Some(limit),
                            remaining: limit,
                            reset_at: None,
                        }),
                    };
                }
                _ => break,
            }
        }
    }

    /// Requests the budget would let go now (`None`: not paced at all).
    pub fn available(&mut self, now: Instant) -> Option<u32> {
        self.roll(now);
        self.period
            .map(|p| p.remaining.saturating_sub(self.in_flight))
    }

    /// When the budget is spent, the instant to look again; `None` when a request may go.
    pub fn paced_until(&mut self, now: Instant) -> Option<Instant> {
        match self.available(now) {
            Some(0) => Some(
                self.period
                    .and_then(|p| p.reset_at)
                    .unwrap_or(now + UNKNOWN_RESET_POLL),
            ),
            _ => None,
        }
    }

    /// Asks to send one request. `Go` counts it in flight.
    pub fn acquire(&mut self, now: Instant) -> Decision {
        if let Some(at) = self.paced_until(now) {
            return Decision::WaitUntil(at);
        }
        self.in_flight = self.in_flight.saturating_add(1);
        Decision::Go
    }

    /// A request's answer arrived with these headers: it is no longer in flight, and what the
    /// server said about the period is learned.
    pub fn settle(&mut self, now: Instant, reading: Reading) {
        self.release();
        self.observe(now, reading);
    }

    /// A request ended without a readable answer (a network error, a dropped future).
    pub fn release(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Learns from one answer's headers. Answers of one period may arrive out of order, so
    /// within the period the lowest `Remaining` and the earliest reset win. An answer without
    /// `Reset` (Tripletex's 429 may lack it) teaches nothing: a budget spent with no known end
    /// would never let the request go that could tell us the end. That request's own
    /// `Retry-After` or backoff still applies.
    fn observe(&mut self, now: Instant, reading: Reading) {
        let Some(reset_s) = reading.reset_s else {
            return;
        };
        let Some(remaining) = reading.remaining.or(reading.limit) else {
            return;
        };
        self.roll(now);
        let reset_at = now + Duration::from_secs(reset_s).min(RESET_MAX);
        let fresh = Period {
            limit: reading.limit,
            remaining,
            reset_at: Some(reset_at),
        };
        match self.period {
            None => self.period = Some(fresh),
            Some(p) => match p.reset_at {
                Some(end) if reset_at > end + SAME_PERIOD_SLACK => {
                    self.next = Some(self.next.map_or(fresh, |n| n.merge(fresh)));
                }
                _ => self.period = Some(p.merge(fresh)),
            },
        }
    }
}

/// A [`Budget`] shared by every request of one integration, with the async wait.
#[derive(Debug, Default)]
pub struct RateBudget {
    inner: Mutex<Budget>,
    /// The integration named in metrics.
    label: String,
}

/// A request the budget let go. Settle it with the answer's headers; dropped unsettled (an
/// error, a cancelled future), it is released without learning anything.
pub struct Ticket<'a> {
    budget: &'a RateBudget,
    done: bool,
}

impl Ticket<'_> {
    pub fn settle(mut self, headers: &HeaderMap) {
        self.done = true;
        let reading = Reading::from_headers(headers);
        let remaining = {
            let mut b = self.budget.lock();
            b.settle(Instant::now(), reading);
            b.available(Instant::now())
        };
        if let Some(n) = remaining {
            crate::metrics::rate_budget_remaining(&self.budget.label, n);
        }
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.budget.lock().release();
        }
    }
}

impl RateBudget {
    /// A budget whose metrics carry `label` (the integration id).
    pub fn new(label: impl Into<String>) -> Self {
        Self {
            inner: Mutex::new(Budget::new()),
            label: label.into(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Budget> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// When the budget is spent, the instant it may have room again.
    pub fn paced_until(&self) -> Option<Instant> {
        self.lock().paced_until(Instant::now())
    }

    /// A ticket for one request, waiting (an async sleep, which holds no thread) while the
    /// budget is spent, as long as the wait ends within `wait_max`. A longer wait is not taken:
    /// `Err(instant)` says when to come back, so the caller can give its worker up meanwhile.
    pub async fn acquire(&self, wait_max: Duration) -> Result<Ticket<'_>, Instant> {
        let mut counted = false;
        loop {
            let now = Instant::now();
            let decision = self.lock().acquire(now);
            match decision {
                Decision::Go => {
                    return Ok(Ticket {
                        budget: self,
                        done: false,
                    })
                }
                Decision::WaitUntil(at) => {
                    if !counted {
                        counted = true;
                        crate::metrics::rate_budget_wait(&self.label);
                    }
                    if at.saturating_duration_since(now) > wait_max {
                        return Err(at);
                    }
                    tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    fn reading(limit: u32, remaining: u32, reset_s: u64) -> Reading {
        Reading {
            limit: Some(limit),
            remaining: Some(remaining),
            reset_s: Some(reset_s),
        }
    }

    fn go(b: &mut Budget, now: Instant) {
        assert_eq!(b.acquire(now), Decision::Go);
    }

    #[test]
    fn without_headers_nothing_is_paced() {
        let t0 = Instant::now();
        let mut b = Budget::new();
        for i in 0..10_000 {
            go(&mut b, t0 + Duration::from_millis(i));
        }
        b.settle(t0, Reading::default());
        assert_eq!(b.available(t0), None);
        assert_eq!(b.paced_until(t0), None);
    }

    #[test]
    fn a_spent_budget_waits_for_the_reset_then_has_the_full_limit() {
        let t0 = Instant::now();
        let mut b = Budget::new();
        go(&mut b, t0);
        b.settle(t0, reading(3, 2, 10));
        go(&mut b, t0);
        go(&mut b, t0);
        // Two in flight, two remaining: the third waits for the reset, 10 s on.
        let reset = t0 + Duration::from_secs(10);
        assert_eq!(b.acquire(t0), Decision::WaitUntil(reset));
        b.settle(t0 + Duration::from_secs(1), reading(3, 1, 9));
        b.settle(t0 + Duration::from_secs(1), reading(3, 0, 9));
        assert_eq!(
            b.acquire(t0 + Duration::from_secs(2)),
            Decision::WaitUntil(reset)
        );
        // At the reset, a new period with the whole limit.
        go(&mut b, reset);
        go(&mut b, reset);
        go(&mut b, reset);
        assert_eq!(
            b.acquire(reset),
            Decision::WaitUntil(reset + UNKNOWN_RESET_POLL)
        );
        // The first answer of the new period tells the next reset.
        b.settle(reset, reading(3, 2, 10));
        assert_eq!(
            b.acquire(reset),
            Decision::WaitUntil(reset + Duration::from_secs(10))
        );
    }

    #[test]
    fn requests_in_flight_count_against_the_remaining() {
        let t0 = Instant::now();
        let mut b = Budget::new();
        go(&mut b, t0);
        b.settle(t0, reading(100, 5, 60));
        for _ in 0..5 {
            go(&mut b, t0);
        }
        assert!(matches!(b.acquire(t0), Decision::WaitUntil(_)));
        // One request failed without an answer: its slot is free again.
        b.release();
        go(&mut b, t0);
        assert_eq!(b.available(t0), Some(0));
    }

    #[test]
    fn late_answers_of_the_same_period_never_raise_the_remaining() {
        let t0 = Instant::now();
        let mut b = Budget::new();
        go(&mut b, t0);
        go(&mut b, t0);
        b.settle(t0, reading(10, 3, 30));
        // An answer the server wrote earlier (more remaining) arrives later.
        b.settle(t0 + Duration::from_secs(1), reading(10, 7, 29));
        assert_eq!(b.available(t0 + Duration::from_secs(1)), Some(3));
        // The reset is the earliest the answers allow: t0 + 30 from both.
        assert!(b
            .period
            .is_some_and(|p| p.reset_at == Some(t0 + Duration::from_secs(30))));
        go(&mut b, t0 + Duration::from_secs(2));
        b.settle(t0 + Duration::from_secs(2), Reading::default());
        assert_eq!(
            b.paced_until(t0 + Duration::from_secs(2)),
            None,
            "an answer without headers changes nothing"
        );
    }

    #[test]
    fn a_429_with_reset_pauses_until_the_reset_and_without_reset_teaches_nothing() {
        let t0 = Instant::now();
        let mut b = Budget::new();
        go(&mut b, t0);
        b.settle(t0, reading(50, 0, 7));
        assert_eq!(b.paced_until(t0), Some(t0 + Duration::from_secs(7)));
        // A 429 with only Remaining: 0 and no Reset: pausing would have no end, so the
        // budget stays unpaced (the request's own Retry-After or backoff applies).
        let mut c = Budget::new();
        go(&mut c, t0);
        let no_reset = Reading {
            limit: Some(50),
            remaining: Some(0),
            reset_s: None,
        };
        c.settle(t0, no_reset);
        assert_eq!(c.paced_until(t0), None);
        // Within a known period it does not lower the count either.
        go(&mut b, t0 + Duration::from_secs(7));
        b.settle(t0 + Duration::from_secs(7), reading(50, 40, 60));
        b.settle(t0 + Duration::from_secs(8), no_reset);
        assert_eq!(b.available(t0 + Duration::from_secs(8)), Some(40));
    }

    #[test]
    fn a_period_without_a_known_limit_is_unpaced_after_its_reset() {
        let t0 = Instant::now();
        let mut b = Budget::new();
        go(&mut b, t0);
        b.settle(
            t0,
            Reading {
                remaining: Some(0),
                reset_s: Some(5),
                limit: None,
            },
        );
        assert!(b.paced_until(t0).is_some());
        assert_eq!(b.paced_until(t0 + Duration::from_secs(5)), None);
        assert_eq!(b.available(t0 + Duration::from_secs(5)), None);
    }

    #[test]
    fn an_answer_counted_in_the_next_period_is_remembered_for_it() {
        let t0 = Instant::now();
        let mut b = Budget::new();
        go(&mut b, t0);
        go(&mut b, t0);
        b.settle(t0, reading(10, 0, 3));
        let reset = t0 + Duration::from_secs(3);
        // Our clock says the period ends at t0 + 3 s, but the server's period ended a little
        // earlier: an answer that arrives before our reset already belongs to the next period.
        b.settle(t0 + Duration::from_millis(2900), reading(10, 9, 3));
        assert_eq!(b.paced_until(t0 + Duration::from_millis(2950)), Some(reset));
        // After the reset the next period starts with 9 left, not the full 10.
        assert_eq!(b.available(reset), Some(9));
    }

    #[test]
    fn headers_are_read_leniently() {
        let mut h = HeaderMap::new();
        let mut put = |k: &'static str, v: &'static str| {
            h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        };
        put("x-rate-limit-limit", "100");
        put("x-rate-limit-remaining", " 42 ");
        put("x-rate-limit-reset", "2.3");
        assert_eq!(Reading::from_headers(&h), reading(100, 42, 3));
        let mut bad = HeaderMap::new();
        bad.insert(
            HeaderName::from_static("x-rate-limit-remaining"),
            HeaderValue::from_static("-1"),
        );
        bad.insert(
            HeaderName::from_static("x-rate-limit-reset"),
            HeaderValue::from_static("soon"),
        );
        assert!(Reading::from_headers(&bad).is_empty());
        assert!(Reading::from_headers(&HeaderMap::new()).is_empty());
    }

    #[tokio::test]
    async fn the_wrapper_waits_short_and_refuses_long_waits() {
        let budget = RateBudget::new("unit-test");
        let ticket = budget
            .acquire(Duration::ZERO)
            .await
            .unwrap_or_else(|_| panic!("an unknown budget lets a request go"));
        let mut h = HeaderMap::new();
        h.insert("x-rate-limit-limit", HeaderValue::from_static("1"));
        h.insert("x-rate-limit-remaining", HeaderValue::from_static("0"));
        h.insert("x-rate-limit-reset", HeaderValue::from_static("3600"));
        ticket.settle(&h);
        assert!(budget.paced_until().is_some());
        assert!(
            budget.acquire(Duration::from_secs(5)).await.is_err(),
            "an hour's wait is handed back to the caller"
        );
        // A dropped ticket is released: the in-flight count does not leak.
        let free = RateBudget::new("unit-test");
        drop(free.acquire(Duration::ZERO).await);
        assert_eq!(free.lock().in_flight, 0);
    }
}
