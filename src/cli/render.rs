//! How instances, histories and the error log are printed: a table for people, JSON and
//! NDJSON for programs. Data goes to stdout; messages go to stderr. Amounts never appear in
//! the table (it ends up in tickets and screenshots); `show` and JSON carry the full change.

use crate::api::service::Shown;
use crate::domain::{State, Workflow};
use crate::storage::ErrorLogEntry;
use std::fmt::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Ndjson,
}

pub fn instances(items: &[Workflow], format: Format) -> String {
    match format {
        Format::Json => serde_json::to_string_pretty(items).unwrap_or_default() + "\n",
        Format::Ndjson => items
            .iter()
            .map(|wf| serde_json::to_string(wf).unwrap_or_default() + "\n")
            .collect(),
        Format::Table => table(items),
    }
}

/// Prints a listing page by page, in the same text `instances` gives for the whole list: the
/// table's header once and its counts at the end, one JSON array around every page.
pub struct InstancePrinter {
    format: Format,
    started: bool,
    counts: Vec<(State, usize)>,
    total: usize,
}

impl InstancePrinter {
    pub fn new(format: Format) -> Self {
        Self {
            format,
            started: false,
            counts: State::ALL.iter().map(|s| (*s, 0)).collect(),
            total: 0,
        }
    }

    /// The text for the next page.
    pub fn page(&mut self, items: &[Workflow]) -> String {
        let mut out = String::new();
        for wf in items {
            if let Some(c) = self.counts.iter_mut().find(|(s, _)| *s == wf.state) {
                c.1 += 1;
            }
        }
        match self.format {
            Format::Ndjson => out = instances(items, Format::Ndjson),
            Format::Table => {
                if !self.started {
                    table_header(&mut out);
                }
                table_rows(&mut out, items);
            }
            Format::Json => {
                for wf in items {
                    out.push_str(if self.total == 0 && out.is_empty() {
                        "[\n"
                    } else {
                        ",\n"
                    });
                    // Indented as `to_string_pretty` indents an element of an array.
                    let text = serde_json::to_string_pretty(wf).unwrap_or_default();
                    for (i, line) in text.lines().enumerate() {
                        if i > 0 {
                            out.push('\n');
                        }
                        out.push_str("  ");
                        out.push_str(line);
                    }
                }
            }
        }
        self.started = true;
        self.total += items.len();
        out
    }

    /// The text after the last page.
    pub fn finish(self) -> String {
        let mut out = String::new();
        match self.format {
            Format::Ndjson => {}
            Format::Table => {
                if !self.started {
                    table_header(&mut out);
                }
                table_summary(&mut out, self.total, &self.counts);
            }
            Format::Json if self.total == 0 => out.push_str("[]\n"),
            Format::Json => out.push_str("\n]\n"),
        }
        out
    }
}

fn table(items: &[Workflow]) -> String {
    let mut printer = InstancePrinter::new(Format::Table);
    let mut out = printer.page(items);
    out.push_str(&printer.finish());
    out
}

fn table_header(out: &mut String) {
    let _ = writeln!(
        out,
        "{:<8} {:<22} {:<18} {:<12} {:<8} {:>3} {:<20} DETAIL",
        "ID", "STATE", "INTEGRATION", "SALARY", "KIND", "TRY", "UPDATED"
    );
}

fn table_rows(out: &mut String, items: &[Workflow]) {
    for wf in items {
        let _ = writeln!(
            out,
            "{:<8} {:<22} {:<18} {:<12} {:<8} {:>3} {:<20} {}",
            wf.id.to_string(),
            wf.state.as_str(),
            truncate(wf.change.integration_id.as_str(), 18),
            truncate(wf.change.salary.id.as_str(), 12),
            wf.change.kind.as_str(),
            wf.attempt,
            wf.updated_at.format("%Y-%m-%dT%H:%M:%SZ"),
            detail(wf)
        );
    }
}

fn table_summary(out: &mut String, total: usize, counts: &[(State, usize)]) {
    let summary: Vec<String> = counts
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| format!("{s}: {n}"))
        .collect();
    let _ = writeln!(out, "{total} instance(s); {}", summary.join(", "));
}

/// One line saying why the instance is where it is.
pub fn detail(wf: &Workflow) -> String {
    match (wf.state, &wf.last_failure, &wf.record) {
        (State::Failed, Some(f), _) => format!("[{}] {}", f.code, f.message),
        (State::ManualDeleteRequired, _, Some(r)) => match &wf.resolution {
            Some(res) => format!(
                "record {} deleted by hand (confirmed: {})",
                r.id, res.reason
            ),
            None => format!(
                "delete record {} by hand in payroll, then `salary-sync resolve {}`",
                r.id, wf.id
            ),
        },
        (State::Sent, _, Some(r)) => format!("payroll record {}", r.id),
        (_, Some(f), _) => match wf.wake_at {
            Some(at) => format!(
                "[{}] {}; next attempt {}",
                f.code,
                f.message,
                at.format("%H:%M:%S")
            ),
            None => format!("[{}] {}", f.code, f.message),
        },
        _ => String::new(),
    }
}

pub fn shown(s: &Shown, format: Format) -> String {
    if format != Format::Table {
        return serde_json::to_string_pretty(s).unwrap_or_default() + "\n";
    }
    let wf = &s.workflow;
    let c = &wf.change;
    let mut out = String::new();
    let _ = writeln!(out, "workflow     {}", wf.id);
    let _ = writeln!(
        out,
        "state        {}{}",
        wf.state,
        if wf.resolution.is_some() {
            " (resolved)"
        } else {
            ""
        }
    );
    let _ = writeln!(out, "integration  {}", c.integration_id);
    let _ = writeln!(
        out,
        "event        {} ({}, occurred {})",
        c.event_id, c.kind, c.occurred_at
    );
    let _ = writeln!(
        out,
        "salary       {} of employee {}",
        c.salary.id, c.salary.employee.hr_id
    );
    let _ = writeln!(
        out,
        "amount       {} {}",
        c.salary.pay,
        c.salary.period_unit.as_str()
    );
    let _ = writeln!(out, "period       {}", c.salary.period());
    if let Some(p) = &wf.position {
        let _ = writeln!(
            out,
            "position     employee {} / employment {}",
            p.employee_id, p.employment_id
        );
    }
    if let Some(r) = &wf.record {
        let _ = writeln!(out, "record       {}", r.id);
    }
    if let Some(at) = wf.wake_at {
        let _ = writeln!(out, "next step    {at}");
    }
    if let Some(f) = &wf.last_failure {
        let _ = writeln!(out, "last error   {f}");
        let _ = writeln!(out, "what to do   {}", f.code.runbook());
    }
    let _ = writeln!(out, "history:");
    for h in &s.history {
        let from = h.from.map_or("-", State::as_str);
        let _ = writeln!(
            out,
            "  #{:<3} {} {:>22} -> {:<22} try {:<2} {:<24} {}",
            h.seq,
            h.at.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
            from,
            h.to.as_str(),
            h.attempt,
            h.event,
            h.detail
        );
        if let Some(f) = &h.failure {
            if let Some(vendor) = &f.vendor_message {
                let _ = writeln!(
                    out,
                    "        payroll said: {} (code {}, request {})",
                    vendor,
                    f.vendor_code.as_deref().unwrap_or("-"),
                    f.request_id.as_deref().unwrap_or("-")
                );
            }
        }
    }
    out
}

pub fn errors(entries: &[ErrorLogEntry], format: Format) -> String {
    if format != Format::Table {
        return serde_json::to_string_pretty(entries).unwrap_or_default() + "\n";
    }
    let mut out = String::new();
    for e in entries {
        let _ = writeln!(
            out,
            "{}  {}  {}  salary {}  {}\n    what to do: {}",
            e.at.format("%Y-%m-%dT%H:%M:%SZ"),
            e.integration,
            e.workflow_id
                .map_or_else(|| "-".to_owned(), |id| id.to_string()),
            e.salary_id,
            e.failure,
            e.failure.code.runbook()
        );
    }
    let _ = writeln!(out, "{} error(s)", entries.len());
    out
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        s.chars().take(n.saturating_sub(1)).collect::<String>() + "…"
    }
}

pub fn integrations(list: &[crate::api::service::IntegrationView]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24} {:<8} {:<26} SKIPPED",
        "INTEGRATION", "SYNC", "ACTIVATED"
    );
    for view in list {
        let (sync, activated, skipped) = match &view.switch {
            Some(s) => (
                if s.enabled { "enabled" } else { "disabled" },
                s.activated_at
                    .map_or_else(|| "-".to_owned(), |t| t.to_rfc3339()),
                s.skipped,
            ),
            None => ("off", "never".to_owned(), 0),
        };
        let _ = writeln!(
            out,
            "{:<24} {:<8} {:<26} {}",
            view.id.as_str(),
            sync,
            activated,
            skipped
        );
    }
    out
}

#[cfg(test)]
mod printer_tests {
    use super::*;
    use crate::domain::change::parse_batch;
    use crate::domain::WorkflowId;

    fn workflows(n: u64) -> Vec<Workflow> {
        (1..=n)
            .filter_map(|i| {
                let body = format!(
                    r#"{{"event_id":"e{i}","integration_id":"x","kind":"created","occurred_at":"2026-11-25T10:00:00Z","salary":{{"id":"s{i}","employee":{{"id":"h{i}","payroll_employee_id":"{i}"}},"amount":"1.00","currency":"NOK","period_unit":"monthly","start_date":"2026-01-01"}}}}"#
                );
                let change = parse_batch(body.as_bytes()).ok()?.pop()?.ok()?;
                Some(Workflow::accept(WorkflowId(i), change, chrono::Utc::now()).0)
            })
            .collect()
    }

    #[test]
    fn paged_printing_matches_printing_the_whole_list() {
        for n in [0, 1, 5] {
            let items = workflows(n);
            assert_eq!(items.len() as u64, n);
            for format in [Format::Table, Format::Json, Format::Ndjson] {
                let mut printer = InstancePrinter::new(format);
                let mut paged: String = items.chunks(2).map(|page| printer.page(page)).collect();
                paged.push_str(&printer.finish());
                assert_eq!(paged, instances(&items, format), "{format:?}, {n} items");
            }
        }
    }
}
