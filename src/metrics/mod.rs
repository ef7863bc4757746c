//! Process-wide metrics in the OpenMetrics text format, kept and encoded by the maintained
//! `prometheus-client` crate.
//!
//! Counters and histograms live in one registry for the process. Gauges that describe the
//! store (instances by state, oldest non-terminal age, held salaries) and the engine
//! (unhealthy integrations, ready) are computed by the caller at scrape time, passed to
//! `render` as [`Gauges`], and encoded from a registry made for that scrape, so a series that
//! no longer exists is not left behind. Every configured integration has a series in each
//! per-integration family, at zero when nothing happened, so a dashboard and an alert see a
//! healthy integration as 0 rather than as missing. Labels never carry an amount, a salary id
//! or a secret.

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

mod process;

/// The content type of `render`'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Step latency buckets, in seconds.
const BUCKETS_S: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Transition commit buckets (a group commit's wait: transaction, flush and fsync), in seconds.
const COMMIT_BUCKETS_S: [f64; 10] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IntegrationLabel {
    integration: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AnswerLabels {
    status: String,
    system: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransitionLabels {
    event: String,
    integration: String,
    to: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    code: String,
    integration: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    integration: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IntegrationStateLabels {
    integration: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    commit: String,
}

type StepFamily = Family<StepLabels, Histogram, fn() -> Histogram>;

/// The process's counters and histograms, and the registry that encodes them.
struct Metrics {
    registry: Registry,
    payroll_answers: Family<AnswerLabels, Counter>,
    transitions: Family<TransitionLabels, Counter>,
    retries: Family<IntegrationLabel, Counter>,
    failures: Family<FailureLabels, Counter>,
    rate_budget_remaining: Family<IntegrationLabel, Gauge>,
    rate_budget_waits: Family<IntegrationLabel, Counter>,
    step_seconds: StepFamily,
    commit_seconds: Histogram,
    /// The commit histogram's count and sum (in nanoseconds), readable without encoding.
    commit_totals: (AtomicU64, AtomicU64),
    webhook_requests: Family<StatusLabel, Counter>,
    events_ingested: Family<OutcomeLabel, Counter>,
}

fn step_histogram() -> Histogram {
    Histogram::new(BUCKETS_S)
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::default();
        let build = Info::new(BuildLabels {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            commit: crate::BUILD_COMMIT.to_owned(),
        });
        registry.register(
            "salary_sync_build",
            "The running build: its version and git commit.",
            build,
        );
        let metrics = Self {
            payroll_answers: Family::default(),
            transitions: Family::default(),
            retries: Family::default(),
            failures: Family::default(),
            rate_budget_remaining: Family::default(),
            rate_budget_waits: Family::default(),
            step_seconds: Family::new_with_constructor(step_histogram as fn() -> Histogram),
            commit_seconds: Histogram::new(COMMIT_BUCKETS_S),
            commit_totals: (AtomicU64::new(0), AtomicU64::new(0)),
            webhook_requests: Family::default(),
            events_ingested: Family::default(),
            registry,
        };
        let mut metrics = metrics;
        let r = &mut metrics.registry;
        r.register(
            "salary_sync_payroll_http_answers",
            "Answers from payroll systems by HTTP status (`network`: no answer).",
            metrics.payroll_answers.clone(),
        );
        r.register(
            "salary_sync_transitions",
            "Committed workflow transitions by integration, target state and event.",
            metrics.transitions.clone(),
        );
        r.register(
            "salary_sync_retries",
            "Retries scheduled after a transient failure.",
            metrics.retries.clone(),
        );
        r.register(
            "salary_sync_failures",
            "Instances that ended failed, by integration and failure code.",
            metrics.failures.clone(),
        );
        r.register(
            "salary_sync_rate_budget_remaining",
            "Requests the integration's rate budget (from X-Rate-Limit-* headers) lets go now.",
            metrics.rate_budget_remaining.clone(),
        );
        r.register(
            "salary_sync_rate_budget_waits",
            "Requests that found the integration's rate budget spent and waited for the reset.",
            metrics.rate_budget_waits.clone(),
        );
        r.register(
            "salary_sync_step_seconds",
            "Duration of one workflow step, connector calls included.",
            metrics.step_seconds.clone(),
        );
        r.register(
            "salary_sync_transition_commit_seconds",
            "How long a worker waited for a transition to be durable (group commit: transaction, flush, fsync).",
            metrics.commit_seconds.clone(),
        );
        r.register(
            "salary_sync_webhook_requests",
            "Webhook requests answered, by HTTP status.",
            metrics.webhook_requests.clone(),
        );
        r.register(
            "salary_sync_events_ingested",
            "Events taken in (webhook and CLI/admin submit), by outcome (no integration label: an event names it, and a label must not take a sender's value).",
            metrics.events_ingested.clone(),
        );
        metrics
    }
}

fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

/// One answer (or transport failure, `status` 0) from a payroll system.
pub fn payroll_answer(system: &'static str, status: u16) {
    let status = if status == 0 {
        "network".to_owned()
    } else {
        status.to_string()
    };
    metrics()
        .payroll_answers
        .get_or_create(&AnswerLabels {
            status,
            system: system.to_owned(),
        })
        .inc();
}

/// One committed transition; `failure` is the failure code when it ended the instance failed.
pub fn transition(integration: &str, to: &str, event: &str, failure: Option<&str>) {
    let m = metrics();
    m.transitions
        .get_or_create(&TransitionLabels {
            event: event.to_owned(),
            integration: integration.to_owned(),
            to: to.to_owned(),
        })
        .inc();
    if event == "retry-scheduled" {
        m.retries
            .get_or_create(&IntegrationLabel {
                integration: integration.to_owned(),
            })
            .inc();
    }
    if let Some(code) = failure.filter(|_| to == "failed") {
        m.failures
            .get_or_create(&FailureLabels {
                code: code.to_owned(),
                integration: integration.to_owned(),
            })
            .inc();
    }
}

/// What an integration's request-rate budget (learned from the payroll system's
/// `X-Rate-Limit-*` headers) lets go now.
pub fn rate_budget_remaining(integration: &str, remaining: u32) {
    metrics()
        .rate_budget_remaining
        .get_or_create(&IntegrationLabel {
            integration: integration.to_owned(),
        })
        .set(i64::from(remaining));
}

/// A request found its integration's rate budget spent and had to wait for the reset.
pub fn rate_budget_wait(integration: &str) {
    metrics()
        .rate_budget_waits
        .get_or_create(&IntegrationLabel {
            integration: integration.to_owned(),
        })
        .inc();
}

/// How long one workflow step (connector calls included) took.
pub fn step_duration(integration: &str, state: &str, seconds: f64) {
    metrics()
        .step_seconds
        .get_or_create(&StepLabels {
            integration: integration.to_owned(),
            state: state.to_owned(),
        })
        .observe(seconds);
}

/// How long a worker waited for one transition to be durable (its group's transaction,
/// flush and fsync, and any group ahead of it).
pub fn transition_commit(seconds: f64) {
    let m = metrics();
    m.commit_seconds.observe(seconds);
    m.commit_totals.0.fetch_add(1, Ordering::Relaxed);
    m.commit_totals
        .1
        .fetch_add((seconds * 1e9) as u64, Ordering::Relaxed);
}

/// Transition commits so far and their summed wait in seconds (for the load bench).
pub fn transition_commit_totals() -> (u64, f64) {
    let (count, nanos) = &metrics().commit_totals;
    (
        count.load(Ordering::Relaxed),
        nanos.load(Ordering::Relaxed) as f64 / 1e9,
    )
}

/// One webhook answer.
pub fn webhook_request(status: u16) {
    metrics()
        .webhook_requests
        .get_or_create(&StatusLabel {
            status: status.to_string(),
        })
        .inc();
}

/// One event taken in, by its outcome (`accepted`, `duplicate`, `invalid`, ...).
pub fn event_ingested(outcome: &str) {
    metrics()
        .events_ingested
        .get_or_create(&OutcomeLabel {
            outcome: outcome.to_owned(),
        })
        .inc();
}

/// Store- and engine-derived gauges, computed by the caller at scrape time.
#[derive(Debug, Default)]
pub struct Gauges {
    /// Every configured integration: each gets a zero series where nothing is counted.
    pub integrations: Vec<String>,
    /// (integration, state) -> instances
    pub instances: Vec<(String, String, u64)>,
    pub oldest_non_terminal_age_s: Option<f64>,
    /// integration -> salaries held by a failed write of unknown outcome
    pub held_salaries: Vec<(String, u64)>,
    pub unhealthy_integrations: Vec<String>,
    pub ready: bool,
}

/// The scrape's own registry: the gauges, with a zero series for every configured
/// integration (and every state of it) that has no value.
fn scrape_registry(gauges: &Gauges) -> Registry {
    let mut registry = Registry::default();
    let instances = Family::<IntegrationStateLabels, Gauge>::default();
    for integration in &gauges.integrations {
        for state in crate::domain::State::ALL {
            drop(instances.get_or_create(&IntegrationStateLabels {
                integration: integration.clone(),
                state: state.as_str().to_owned(),
            }));
        }
    }
    for (integration, state, n) in &gauges.instances {
        instances
            .get_or_create(&IntegrationStateLabels {
                integration: integration.clone(),
                state: state.clone(),
            })
            .set(i64::try_from(*n).unwrap_or(i64::MAX));
    }
    registry.register(
        "salary_sync_instances",
        "Workflow instances by integration and state.",
        instances,
    );
    let oldest = Gauge::<f64, AtomicU64>::default();
    oldest.set(gauges.oldest_non_terminal_age_s.unwrap_or(0.0));
    registry.register(
        "salary_sync_oldest_non_terminal_age_seconds",
        "Age of the oldest instance not yet terminal (0 when there is none).",
        oldest,
    );
    let held = Family::<IntegrationLabel, Gauge>::default();
    let unhealthy = Family::<IntegrationLabel, Gauge>::default();
    for integration in &gauges.integrations {
        let label = IntegrationLabel {
            integration: integration.clone(),
        };
        drop(held.get_or_create(&label));
        drop(unhealthy.get_or_create(&label));
        let m = metrics();
        drop(m.retries.get_or_create(&label));
        drop(m.rate_budget_waits.get_or_create(&label));
    }
    for (integration, n) in &gauges.held_salaries {
        held.get_or_create(&IntegrationLabel {
            integration: integration.clone(),
        })
        .set(i64::try_from(*n).unwrap_or(i64::MAX));
    }
    for integration in &gauges.unhealthy_integrations {
        unhealthy
            .get_or_create(&IntegrationLabel {
                integration: integration.clone(),
            })
            .set(1);
    }
    registry.register(
        "salary_sync_held_salaries",
        "Salaries whose later changes wait for an operator retry: a change failed with its write's outcome unknown.",
        held,
    );
    registry.register(
        "salary_sync_integration_unhealthy",
        "1 while an integration's credentials are refused.",
        unhealthy,
    );
    let ready = Gauge::<i64>::default();
    ready.set(i64::from(gauges.ready));
    registry.register(
        "salary_sync_ready",
        "1 once startup recovery has finished and while the engine runs.",
        ready,
    );
    process::register(&mut registry);
    registry
}

/// The whole exposition: the process's counters and histograms, then the scrape's gauges.
pub fn render(gauges: &Gauges) -> String {
    let scrape = scrape_registry(gauges);
    let mut out = String::new();
    // Writing into a String cannot fail; an encoding error would only cut the text short.
    let _ = encode_registry(&mut out, &metrics().registry);
    let _ = encode_registry(&mut out, &scrape);
    let _ = encode_eof(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_histograms_and_zero_series_render_as_openmetrics_text() {
        payroll_answer("unit-test-system", 503);
        payroll_answer("unit-test-system", 503);
        transition("unit-test-int", "pending", "retry-scheduled", None);
        transition("unit-test-int", "failed", "failed", Some("overlap"));
        step_duration("unit-test-int", "pending", 0.02);
        transition_commit(0.003);
        rate_budget_remaining("unit-test-int", 7);
        rate_budget_wait("unit-test-int");
        webhook_request(202);
        event_ingested("unit-test-outcome");
        let text = render(&Gauges {
            integrations: vec!["unit-test-int".into(), "unit-test-quiet".into()],
            instances: vec![("unit-test-int".into(), "sent".into(), 3)],
            held_salaries: vec![("unit-test-int".into(), 2)],
            ready: true,
            ..Gauges::default()
        });
        for line in [
            "salary_sync_payroll_http_answers_total{status=\"503\",system=\"unit-test-system\"} 2",
            "salary_sync_retries_total{integration=\"unit-test-int\"} 1",
            "salary_sync_failures_total{code=\"overlap\",integration=\"unit-test-int\"} 1",
            "salary_sync_instances{integration=\"unit-test-int\",state=\"sent\"} 3",
            "salary_sync_instances{integration=\"unit-test-int\",state=\"pending\"} 0",
            "salary_sync_instances{integration=\"unit-test-quiet\",state=\"failed\"} 0",
            "salary_sync_step_seconds_bucket{le=\"0.025\",integration=\"unit-test-int\",state=\"pending\"} 1",
            "salary_sync_step_seconds_bucket{le=\"0.01\",integration=\"unit-test-int\",state=\"pending\"} 0",
            "salary_sync_ready 1",
            "salary_sync_held_salaries{integration=\"unit-test-int\"} 2",
            "salary_sync_held_salaries{integration=\"unit-test-quiet\"} 0",
            "salary_sync_integration_unhealthy{integration=\"unit-test-quiet\"} 0",
            "salary_sync_rate_budget_remaining{integration=\"unit-test-int\"} 7",
            "salary_sync_rate_budget_waits_total{integration=\"unit-test-int\"} 1",
            "salary_sync_webhook_requests_total{status=\"202\"} 1",
            "salary_sync_events_ingested_total{outcome=\"unit-test-outcome\"} 1",
            "salary_sync_oldest_non_terminal_age_seconds 0.0",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in\n{text}");
        }
        assert!(text.contains("salary_sync_build_info{version=\""), "{text}");
        assert!(
            text.contains("salary_sync_transition_commit_seconds_bucket{le=\"0.005\"} "),
            "{text}"
        );
        // Every family says what it is.
        for family in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
            let name = family.split(' ').next().unwrap_or_default();
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&format!("# HELP {name} "))),
                "no HELP for {name}"
            );
        }
        assert_eq!(text.matches("# EOF").count(), 1, "one EOF, at the end");
        assert!(text.ends_with("# EOF\n"));
        let (count, sum) = transition_commit_totals();
        assert!(count >= 1 && sum >= 0.003, "{count} {sum}");
    }
}
