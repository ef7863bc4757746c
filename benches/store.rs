//! The durable write path: one transition committed and fsynced at a time, against many
//! transitions sharing one group commit; and the raw sled limit on the same disk (insert +
//! flush + fsync, single and batched) for the ratio. Then the read path of `salary-sync dump`
//! on a large store: every page (`service::list_page`, `DUMP_PAGE_LEN` a page, seeking with
//! `after`) printed as NDJSON by the CLI's page printer into a sink. The dump store holds
//! `DUMP_N` instances (`DUMP_N_SMOKE` when run without `--bench`, as `cargo test` does).

use chrono::Utc;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use salary_sync::domain::change::parse_batch;
use salary_sync::domain::{step, Input, Period, Position, SalaryChange, Transition, WorkflowId};
use salary_sync::engine::RetrySettings;
use salary_sync::storage::{IngestOutcome, Store};
use std::sync::Arc;

const GROUP: usize = 64;
const DUMP_N: usize = 50_000;
const DUMP_N_SMOKE: usize = 500;
const DUMP_PAGE_LEN: usize = 1000;

fn change(i: usize) -> Option<SalaryChange> {
    let body = format!(
        r#"{{"event_id":"e{i}","integration_id":"bench","kind":"created","occurred_at":"2026-11-25T10:00:00Z","salary":{{"id":"s{i}","employee":{{"id":"h{i}","payroll_employee_id":"{i}"}},"amount":"52000.00","currency":"NOK","period_unit":"monthly","start_date":"2026-01-01"}}}}"#
    );
    parse_batch(body.as_bytes()).ok()?.pop()?.ok()
}

/// Ingests `n` changes and returns each one's first transition, ready to commit.
fn prepared(
    rt: &tokio::runtime::Runtime,
    store: &Store,
    offset: usize,
    n: usize,
) -> Vec<Transition> {
    let changes: Vec<_> = (offset..offset + n).filter_map(change).collect();
    let now = Utc::now();
    let outcomes = rt.block_on(store.ingest(changes, now)).unwrap_or_default();
    let policy = RetrySettings::default();
    outcomes
        .into_iter()
        .filter_map(|o| match o {
            IngestOutcome::Accepted(id) => Some(id),
            _ => None,
        })
        .filter_map(|id: WorkflowId| store.get(id).ok().flatten())
        .filter_map(|wf| {
            let position = Position {
                employee_id: "1".into(),
                employment_id: "2".into(),
                period: Period {
                    start: now.date_naive(),
                    end: None,
                },
            };
            step(&wf, Input::Matched(position), now, &policy).ok()
        })
        .collect()
}

fn benches(c: &mut Criterion) {
    let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    else {
        return;
    };
    let Ok(dir) = tempfile::tempdir() else { return };
    let Ok(store) = Store::open(&dir.path().join("store")) else {
        return;
    };
    let Ok(bench) = salary_sync::domain::IntegrationId::parse("bench") else {
        return;
    };
    if rt
        .block_on(store.set_integration(
            bench,
            true,
            chrono::DateTime::from_timestamp(0, 0),
            Utc::now(),
        ))
        .is_err()
    {
        return;
    }
    let store = Arc::new(store);
    let mut offset = 0;
    let mut group = c.benchmark_group("store transition");
    group.throughput(Throughput::Elements(GROUP as u64));
    group.sample_size(20);
    group.bench_function("fsync per transition (64 in a row)", |b| {
        b.iter_batched(
            || {
                offset += GROUP;
                prepared(&rt, &store, offset, GROUP)
            },
            |transitions| {
                rt.block_on(async {
                    for t in transitions {
                        let _ = store.commit(t).await;
                    }
                })
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("group commit (64 concurrent)", |b| {
        b.iter_batched(
            || {
                offset += GROUP;
                prepared(&rt, &store, offset, GROUP)
            },
            |transitions| {
                rt.block_on(async {
                    let tasks: Vec<_> = transitions
                        .into_iter()
                        .map(|t| {
                            let store = Arc::clone(&store);
                            tokio::spawn(async move { store.commit(t).await })
                        })
                        .collect();
                    for t in tasks {
                        let _ = t.await;
                    }
                })
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();

    let Ok(raw_dir) = tempfile::tempdir() else {
        return;
    };
    let Ok(db) = sled::open(raw_dir.path()) else {
        return;
    };
    let Ok(data) = std::fs::File::open(raw_dir.path().join("db")) else {
        return;
    };
    let value = vec![7u8; 300];
    let mut key = 0u64;
    let mut raw = c.benchmark_group("raw sled limit");
    raw.throughput(Throughput::Elements(GROUP as u64));
    raw.sample_size(20);
    raw.bench_function("insert + flush + fsync each (64)", |b| {
        b.iter(|| {
            for _ in 0..GROUP {
                key += 1;
                let _ = db.insert(key.to_be_bytes(), value.as_slice());
                let _ = db.flush();
                let _ = data.sync_data();
            }
        })
    });
    raw.bench_function("64 inserts, one flush + fsync", |b| {
        b.iter(|| {
            for _ in 0..GROUP {
                key += 1;
                let _ = db.insert(key.to_be_bytes(), value.as_slice());
            }
            let _ = db.flush();
            let _ = data.sync_data();
        })
    });
    raw.finish();
}

/// Every page of the store, as `salary-sync dump --format ndjson` prints it; returns the
/// bytes printed.
fn dump_all(store: &Store) -> usize {
    use salary_sync::api::service::list_page;
    use salary_sync::cli::render::{Format, InstancePrinter};
    use std::io::Write;
    let mut sink = std::io::sink();
    let mut printer = InstancePrinter::new(Format::Ndjson);
    let (mut after, mut bytes) = (None, 0);
    loop {
        let Ok(page) = list_page(store, &Default::default(), after, Some(DUMP_PAGE_LEN)) else {
            return bytes;
        };
        let text = printer.page(&page.instances);
        bytes += text.len();
        let _ = sink.write_all(text.as_bytes());
        match page.next_after {
            Some(next) => after = Some(next),
            None => return bytes,
        }
    }
}

fn dump_benches(c: &mut Criterion) {
    let n = if std::env::args().any(|a| a == "--bench") {
        DUMP_N
    } else {
        DUMP_N_SMOKE
    };
    let Ok(rt) = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    else {
        return;
    };
    let Ok(dir) = tempfile::tempdir() else { return };
    let Ok(store) = Store::open(&dir.path().join("store")) else {
        return;
    };
    let Ok(bench) = salary_sync::domain::IntegrationId::parse("bench") else {
        return;
    };
    let filled = rt.block_on(async {
        store
            .set_integration(
                bench,
                true,
                chrono::DateTime::from_timestamp(0, 0),
                Utc::now(),
            )
            .await
            .ok()?;
        let mut stored = 0;
        for start in (0..n).step_by(5_000) {
            let changes: Vec<_> = (start..(start + 5_000).min(n)).filter_map(change).collect();
            stored += store.ingest(changes, Utc::now()).await.ok()?.len();
        }
        Some(stored)
    });
    if filled != Some(n) {
        eprintln!("dump bench: the store was not filled ({filled:?} of {n})");
        return;
    }
    let mut group = c.benchmark_group("dump");
    group.throughput(Throughput::Elements(n as u64));
    group.sample_size(10);
    group.bench_function(
        format!("{n} instances, ndjson, {DUMP_PAGE_LEN} a page"),
        |b| b.iter(|| dump_all(&store)),
    );
    group.finish();
}

criterion_group!(store_benches, benches, dump_benches);
criterion_main!(store_benches);
