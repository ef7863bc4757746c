//! Process-wide counters and histograms, rendered in the Prometheus text format.
//!
//! Counters are plain data behind one mutex (a few increments per HTTP call or transition, far
//! below the cost of the fsync each transition pays). Gauges that describe the store
//! (instances by state, oldest non-terminal age) are computed at scrape time by the caller and
//! passed to `render`. Labels never carry an amount, a salary id or a secret.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, OnceLock};

/// Step latency buckets, in seconds.
const BUCKETS_S: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Transition commit buckets (a group commit's wait: transaction, flush and fsync), in seconds.
const COMMIT_BUCKETS_S: [f64; 10] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Label pairs, sorted by name.
type Labels = Vec<(&'static str, String)>;

/// A histogram's bucket counts, sum and count.
type Histogram = (Vec<u64>, f64, u64);

#[derive(Default)]
struct Registry {
    /// (metric name, labels) -> value
    counters: BTreeMap<(&'static str, Labels), u64>,
    step_seconds: BTreeMap<Labels, Histogram>,
    /// How long a worker waited for its transition to be durable.
    commit_seconds: Option<Histogram>,
    /// integration -> requests its rate budget lets go now
    rate_budget_remaining: BTreeMap<String, u32>,
}

fn registry() -> &'static Mutex<Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default)
}

fn add(name: &'static str, labels: Labels, n: u64) {
    if let Ok(mut r) = registry().lock() {
        *r.counters.entry((name, labels)).or_default() += n;
    }
}

/// One answer (or transport failure, `status` 0) from a payroll system.
pub fn payroll_answer(system: &'static str, status: u16) {
    let status = if status == 0 {
        "network".to_owned()
    } else {
        status.to_string()
    };
    add(
        "salary_sync_payroll_http_answers_total",
        vec![("status", status), ("system", system.to_owned())],
        1,
    );
}

/// One committed transition.
pub fn transition(integration: &str, to: &str, event: &str) {
    add(
        "salary_sync_transitions_total",
        vec![
            ("event", event.to_owned()),
            ("integration", integration.to_owned()),
            ("to", to.to_owned()),
        ],
        1,
    );
    if event == "retry-scheduled" {
        add(
            "salary_sync_retries_total",
            vec![("integration", integration.to_owned())],
            1,
        );
    }
}

/// What an integration's request-rate budget (learned from the payroll system's
/// `X-Rate-Limit-*` headers) lets go now.
pub fn rate_budget_remaining(integration: &str, remaining: u32) {
    if let Ok(mut r) = registry().lock() {
        r.rate_budget_remaining
            .insert(integration.to_owned(), remaining);
    }
}

/// A request found its integration's rate budget spent and had to wait for the reset.
pub fn rate_budget_wait(integration: &str) {
    add(
        "salary_sync_rate_budget_waits_total",
        vec![("integration", integration.to_owned())],
        1,
    );
}

/// How long one workflow step (connector calls included) took.
pub fn step_duration(integration: &str, state: &str, seconds: f64) {
    if let Ok(mut r) = registry().lock() {
        let labels = vec![
            ("integration", integration.to_owned()),
            ("state", state.to_owned()),
        ];
        let entry = r
            .step_seconds
            .entry(labels)
            .or_insert_with(|| (vec![0; BUCKETS_S.len()], 0.0, 0));
        observe(entry, &BUCKETS_S, seconds);
    }
}

/// How long a worker waited for one transition to be durable (its group's transaction,
/// flush and fsync, and any group ahead of it).
pub fn transition_commit(seconds: f64) {
    if let Ok(mut r) = registry().lock() {
        let entry = r
            .commit_seconds
            .get_or_insert_with(|| (vec![0; COMMIT_BUCKETS_S.len()], 0.0, 0));
        observe(entry, &COMMIT_BUCKETS_S, seconds);
    }
}

/// Transition commits so far and their summed wait in seconds (for the load bench).
pub fn transition_commit_totals() -> (u64, f64) {
    registry()
        .lock()
        .ok()
        .and_then(|r| r.commit_seconds.as_ref().map(|h| (h.2, h.1)))
        .unwrap_or((0, 0.0))
}

fn observe(histogram: &mut Histogram, bounds: &[f64], seconds: f64) {
    for (i, bound) in bounds.iter().enumerate() {
        if seconds <= *bound {
            histogram.0[i] += 1;
        }
    }
    histogram.1 += seconds;
    histogram.2 += 1;
}

/// Store-derived gauges, computed by the caller at scrape time.
#[derive(Debug, Default)]
pub struct Gauges {
    /// (integration, state) -> instances
    pub instances: Vec<(String, String, u64)>,
    pub oldest_non_terminal_age_s: Option<f64>,
    /// integration -> salaries held by a failed write of unknown outcome
    pub held_salaries: Vec<(String, u64)>,
    pub unhealthy_integrations: Vec<String>,
    pub ready: bool,
}

fn labels_text(labels: &[(&'static str, String)]) -> String {
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The whole exposition.
pub fn render(gauges: &Gauges) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP salary_sync_instances Workflow instances by integration and state."
    );
    let _ = writeln!(out, "# TYPE salary_sync_instances gauge");
    for (integration, state, n) in &gauges.instances {
        let _ = writeln!(
            out,
            "salary_sync_instances{{integration=\"{}\",state=\"{}\"}} {n}",
            escape(integration),
            escape(state)
        );
    }
    let _ = writeln!(out, "# HELP salary_sync_oldest_non_terminal_age_seconds Age of the oldest instance not yet terminal.");
    let _ = writeln!(
        out,
        "# TYPE salary_sync_oldest_non_terminal_age_seconds gauge"
    );
    let _ = writeln!(
        out,
        "salary_sync_oldest_non_terminal_age_seconds {}",
        gauges.oldest_non_terminal_age_s.unwrap_or(0.0)
    );
    let _ = writeln!(out, "# HELP salary_sync_held_salaries Salaries whose later changes wait for an operator retry: a change failed with its write's outcome unknown.");
    let _ = writeln!(out, "# TYPE salary_sync_held_salaries gauge");
    for (integration, n) in &gauges.held_salaries {
        let _ = writeln!(
            out,
            "salary_sync_held_salaries{{integration=\"{}\"}} {n}",
            escape(integration)
        );
    }
    let _ = writeln!(
        out,
        "# HELP salary_sync_ready 1 once startup recovery has finished."
    );
    let _ = writeln!(out, "# TYPE salary_sync_ready gauge");
    let _ = writeln!(out, "salary_sync_ready {}", u8::from(gauges.ready));
    let _ = writeln!(out, "# HELP salary_sync_integration_unhealthy 1 while an integration's credentials are refused.");
    let _ = writeln!(out, "# TYPE salary_sync_integration_unhealthy gauge");
    for integration in &gauges.unhealthy_integrations {
        let _ = writeln!(
            out,
            "salary_sync_integration_unhealthy{{integration=\"{}\"}} 1",
            escape(integration)
        );
    }
    let Ok(r) = registry().lock() else {
        return out;
    };
    if !r.rate_budget_remaining.is_empty() {
        let _ = writeln!(out, "# HELP salary_sync_rate_budget_remaining Requests the integration's rate budget (from X-Rate-Limit-* headers) lets go now.");
        let _ = writeln!(out, "# TYPE salary_sync_rate_budget_remaining gauge");
        for (integration, n) in &r.rate_budget_remaining {
            let _ = writeln!(
                out,
                "salary_sync_rate_budget_remaining{{integration=\"{}\"}} {n}",
                escape(integration)
            );
        }
    }
    let mut last = "";
    for ((name, labels), value) in &r.counters {
        if *name != last {
            let _ = writeln!(out, "# TYPE {name} counter");
            last = name;
        }
        let _ = writeln!(out, "{name}{} {value}", labels_text(labels));
    }
    let _ = writeln!(
        out,
        "# HELP salary_sync_step_seconds Duration of one workflow step, connector calls included."
    );
    let _ = writeln!(out, "# TYPE salary_sync_step_seconds histogram");
    for (labels, histogram) in &r.step_seconds {
        render_histogram(
            &mut out,
            "salary_sync_step_seconds",
            &labels_text(labels),
            &BUCKETS_S,
            histogram,
        );
    }
    if let Some(histogram) = &r.commit_seconds {
        let _ = writeln!(
            out,
            "# HELP salary_sync_transition_commit_seconds How long a worker waited for a transition to be durable (group commit: transaction, flush, fsync)."
        );
        let _ = writeln!(
            out,
            "# TYPE salary_sync_transition_commit_seconds histogram"
        );
        render_histogram(
            &mut out,
            "salary_sync_transition_commit_seconds",
            "{}",
            &COMMIT_BUCKETS_S,
            histogram,
        );
    }
    out
}

/// One histogram's lines; `labels` is its label set in braces (`{}` for none).
fn render_histogram(
    out: &mut String,
    name: &str,
    labels: &str,
    bounds: &[f64],
    (buckets, sum, count): &Histogram,
) {
    let inner = labels.trim_start_matches('{').trim_end_matches('}');
    let with = |le: &str| {
        if inner.is_empty() {
            format!("{{le=\"{le}\"}}")
        } else {
            format!("{{{inner},le=\"{le}\"}}")
        }
    };
    let plain = if inner.is_empty() {
        String::new()
    } else {
        format!("{{{inner}}}")
    };
    for (bound, n) in bounds.iter().zip(buckets) {
        let _ = writeln!(out, "{name}_bucket{} {n}", with(&bound.to_string()));
    }
    let _ = writeln!(out, "{name}_bucket{} {count}", with("+Inf"));
    let _ = writeln!(out, "{name}_sum{plain} {sum}");
    let _ = writeln!(out, "{name}_count{plain} {count}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_render_as_prometheus_text() {
        payroll_answer("unit-test-system", 503);
        payroll_answer("unit-test-system", 503);
        transition("unit-test-int", "pending", "retry-scheduled");
        step_duration("unit-test-int", "pending", 0.02);
        transition_commit(0.003);
        rate_budget_remaining("unit-test-int", 7);
        rate_budget_wait("unit-test-int");
        let text = render(&Gauges {
            instances: vec![("unit-test-int".into(), "sent".into(), 3)],
            held_salaries: vec![("unit-test-int".into(), 2)],
            ready: true,
            ..Gauges::default()
        });
        assert!(text.contains("salary_sync_payroll_http_answers_total{status=\"503\",system=\"unit-test-system\"} 2"), "{text}");
        assert!(
            text.contains("salary_sync_retries_total{integration=\"unit-test-int\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("salary_sync_instances{integration=\"unit-test-int\",state=\"sent\"} 3")
        );
        assert!(text.contains("salary_sync_step_seconds_bucket{integration=\"unit-test-int\",state=\"pending\",le=\"0.025\"} 1"), "{text}");
        assert!(text.contains("salary_sync_step_seconds_bucket{integration=\"unit-test-int\",state=\"pending\",le=\"0.01\"} 0"), "{text}");
        assert!(text.contains("salary_sync_ready 1"));
        assert!(
            text.contains("salary_sync_held_salaries{integration=\"unit-test-int\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("salary_sync_transition_commit_seconds_bucket{le=\"0.005\"} "),
            "{text}"
        );
        assert!(
            text.contains("salary_sync_transition_commit_seconds_bucket{le=\"0.002\"} "),
            "{text}"
        );
        let (count, sum) = transition_commit_totals();
        assert!(count >= 1 && sum >= 0.003, "{count} {sum}");
        assert!(
            text.contains("salary_sync_rate_budget_remaining{integration=\"unit-test-int\"} 7"),
            "{text}"
        );
        assert!(
            text.contains("salary_sync_rate_budget_waits_total{integration=\"unit-test-int\"} 1"),
            "{text}"
        );
    }
}
