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
    if let (State::ManualDeleteRequired, None, Some(r)) = (wf.state, &wf.resolution, &wf.record) {
        let _ = writeln!(
            out,
            "to resolve   delete record {} by hand in payroll, then run:\n    salary-sync resolve {}",
            r.id, wf.id
        );
    }
    out
}

/// The error log, then the manual deletes waiting for the operator (`waiting`: unresolved
/// `manual-delete-required` instances), each with the command that resolves it. The JSON
/// forms print the error log only, as before.
pub fn errors(entries: &[ErrorLogEntry], waiting: &[Workflow], format: Format) -> String {
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
    for wf in waiting {
        let _ = writeln!(
            out,
            "{}  {}  {}  salary {}  [manual-delete-required] {}",
            wf.updated_at.format("%Y-%m-%dT%H:%M:%SZ"),
            wf.change.integration_id,
            wf.id,
            wf.change.salary.id,
            detail(wf)
        );
    }
    let _ = writeln!(
        out,
        "{} error(s), {} manual delete(s) waiting",
        entries.len(),
        waiting.len()
    );
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
                // RFC 3339 to whole seconds: 25 characters, inside the column (with the
                // nanoseconds an enable through the API records, it overflowed).
                s.activated_at.map_or_else(
                    || "-".to_owned(),
                    |t| t.format("%Y-%m-%dT%H:%M:%S%:z").to_string(),
                ),
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

#[cfg(test)]
mod operator_tests {
    //! Issue 11, points 6 and 8: what waits for the operator is listed with its command, and
    //! the integrations table keeps its columns.
    use super::*;
    use crate::domain::change::parse_batch;
    use crate::domain::{IntegrationId, PayrollRecord, WorkflowId};
    use crate::storage::IntegrationSwitch;

    fn waiting_delete() -> Option<Workflow> {
        let body = r#"{"event_id":"e1","integration_id":"acme","kind":"deleted","occurred_at":"2026-11-25T10:00:00Z","salary":{"id":"s1","employee":{"id":"h1","payroll_employee_id":"1"},"amount":"1.00","currency":"NOK","period_unit":"monthly","start_date":"2026-01-01"}}"#;
        let change = parse_batch(body.as_bytes()).ok()?.pop()?.ok()?;
        let mut wf = Workflow::accept(WorkflowId(7), change, chrono::Utc::now()).0;
        wf.state = State::ManualDeleteRequired;
        wf.record = Some(PayrollRecord {
            id: "902".into(),
            employment_id: "206".into(),
        });
        Some(wf)
    }

    #[test]
    fn errors_list_the_manual_deletes_waiting_with_their_resolve_command() {
        let wf = waiting_delete().unwrap_or_else(|| panic!("test event invalid"));
        let text = errors(&[], std::slice::from_ref(&wf), Format::Table);
        assert!(
            text.contains("0 error(s), 1 manual delete(s) waiting"),
            "{text}"
        );
        assert!(
            text.contains(&format!("salary-sync resolve {}", wf.id)),
            "{text}"
        );
        let shown_text = shown(
            &Shown {
                workflow: wf.clone(),
                history: Vec::new(),
            },
            Format::Table,
        );
        let last = shown_text.lines().last().unwrap_or_default();
        assert_eq!(last.trim(), format!("salary-sync resolve {}", wf.id));
    }

    #[test]
    fn the_activated_column_holds_its_timestamp() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-01T00:00:00.123456789Z")
            .map(|t| t.to_utc())
            .ok();
        let view = crate::api::service::IntegrationView {
            id: IntegrationId::parse("acme-tripletex").unwrap_or_else(|e| panic!("{e}")),
            switch: Some(IntegrationSwitch {
                enabled: true,
                activated_at: at,
                changed_at: chrono::Utc::now(),
                skipped: 3,
            }),
        };
        let text = integrations(&[view]);
        let lines: Vec<&str> = text.lines().collect();
        let header_skipped = lines[0].find("SKIPPED");
        let row_skipped = lines[1].rfind('3');
        assert_eq!(header_skipped, row_skipped, "{text}");
        assert!(lines[1].contains("2026-11-01T00:00:00+00:00 "), "{text}");
    }
}
