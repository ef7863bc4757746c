//! CPU cost of the pure parts: the step function and event decoding + validation (one event,
//! and a batch of `BATCH_LEN` as one webhook body).

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use salary_sync::domain::change::parse_batch;
use salary_sync::domain::{step, Currency, Input, Period, Position, Workflow, WorkflowId};
use salary_sync::engine::RetrySettings;
use std::hint::black_box;

const EVENT: &str = r#"{"event_id":"evt-2f6c","integration_id":"acme-tripletex","kind":"created","occurred_at":"2026-11-25T10:00:00Z","salary":{"id":"sal-123","employee":{"id":"emp-9","payroll_employee_id":"1234","employee_number":"17","email":"kari@example.no"},"amount":"52000.00","currency":"NOK","period_unit":"monthly","start_date":"2026-01-01","end_date":null,"note":"New agreement"}}"#;

/// Events in the batch body.
const BATCH_LEN: usize = 100;

fn benches(c: &mut Criterion) {
    let mut decode = c.benchmark_group("event decode + validate");
    decode.throughput(Throughput::Elements(1));
    decode.bench_function("one event", |b| {
        b.iter(|| parse_batch(black_box(EVENT.as_bytes())))
    });
    // A JSON array of distinct events, as one webhook body may carry them.
    let batch = format!(
        "[{}]",
        (0..BATCH_LEN)
            .map(|i| EVENT
                .replace("evt-2f6c", &format!("evt-{i}"))
                .replace("sal-123", &format!("sal-{i}")))
            .collect::<Vec<_>>()
            .join(",")
    );
    decode.throughput(Throughput::Elements(BATCH_LEN as u64));
    decode.bench_function("batch of 100 events", |b| {
        b.iter(|| parse_batch(black_box(batch.as_bytes())))
    });
    decode.finish();
    let change = match parse_batch(EVENT.as_bytes())
        .ok()
        .and_then(|mut v| v.pop())
        .and_then(Result::ok)
    {
        Some(c) => c,
        None => return,
    };
    let now = Utc
        .with_ymd_and_hms(2026, 11, 27, 3, 0, 0)
        .single()
        .unwrap_or_default();
    let (wf, _) = Workflow::accept(WorkflowId(1), change, now);
    let policy = RetrySettings::default();
    let position = Position {
        employee_id: "1".into(),
        employment_id: "2".into(),
        period: Period {
            start: now.date_naive(),
            end: None,
        },
    };
    c.bench_function("step: pending -> matched-to-position", |b| {
        b.iter(|| {
            step(
                black_box(&wf),
                Input::Matched(position.clone()),
                now,
                &policy,
            )
        })
    });
    let Ok(matched) = step(&wf, Input::Matched(position.clone()), now, &policy) else {
        return;
    };
    let nok = Currency::parse("NOK").unwrap_or_else(|_| unreachable!());
    c.bench_function("step: currency check", |b| {
        b.iter(|| {
            step(
                black_box(&matched.workflow),
                Input::CurrencyFound(nok),
                now,
                &policy,
            )
        })
    });
}

criterion_group!(step_benches, benches);
criterion_main!(step_benches);
