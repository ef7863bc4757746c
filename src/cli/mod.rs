//! The command line: parsing and one function per command. Data goes to stdout, messages to
//! stderr. Exit codes: 0 success, 1 failure (message on stderr), 2 usage error.

pub mod backend;
pub mod demo;
pub mod render;
pub mod run;

use crate::api::service::BulkFilter;
use crate::config::Config;
use crate::domain::{diagram, IntegrationId, OperatorAction, WorkflowId};
use anyhow::{Context, Result};
use backend::Backend;
use clap::{Parser, Subcommand, ValueEnum};
use render::Format;
use std::collections::HashSet;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "salary-sync",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("SALARY_SYNC_BUILD_COMMIT"), ")"),
    about = "Carries salary changes from the HR system into payroll, durably."
)]
pub struct Cli {
    /// The configuration file.
    #[arg(
        long,
        short,
        global = true,
        env = "SALARY_SYNC_CONFIG",
        default_value = "salary-sync.toml"
    )]
    pub config: PathBuf,
    /// Log lines as text or as JSON objects (to stderr); the level comes from SALARY_SYNC_LOG.
    #[arg(
        long,
        global = true,
        env = "SALARY_SYNC_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: admin API, workers, scheduler. Stops cleanly on SIGTERM/SIGINT.
    Run,
    /// Ingest the events in FILE (one JSON event or an array), as the webhook would.
    Submit { file: PathBuf },
    /// List workflow instances.
    Dump {
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        integration: Option<String>,
        #[arg(long)]
        salary: Option<String>,
        /// Only instances accepted at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Paging: only instances after this id.
        #[arg(long)]
        after: Option<String>,
        /// Paging: at most this many instances (the next page's `--after` goes to stderr).
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Show one instance with its full history.
    Show {
        id: WorkflowId,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Re-run a failed instance from pending with a fresh retry budget. Without ID: every
    /// failed instance the filters select (at least one filter).
    Retry {
        id: Option<WorkflowId>,
        #[arg(long, default_value = "retried by operator")]
        reason: String,
        #[command(flatten)]
        bulk: BulkFilter,
    },
    /// Confirm that a Tripletex record was deleted by hand. Without ID: every unresolved
    /// manual-delete-required instance the filters select.
    Resolve {
        id: Option<WorkflowId>,
        #[arg(long, default_value = "deleted by hand in payroll")]
        reason: String,
        #[command(flatten)]
        bulk: BulkFilter,
    },
    /// Stop a non-terminal instance: it fails with reason "cancelled by operator". Without ID:
    /// every non-terminal instance the filters select.
    Cancel {
        id: Option<WorkflowId>,
        #[arg(long, default_value = "cancelled by operator")]
        reason: String,
        #[command(flatten)]
        bulk: BulkFilter,
    },
    /// Print the integration error log.
    Errors {
        #[arg(long)]
        integration: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Remove terminal instances, their history and error-log lines older than an age
    /// (salaries are personal data). Event ids are kept so a replay is still a duplicate.
    Prune {
        /// e.g. 90d, 12h, 30m
        #[arg(long)]
        older_than: String,
    },
    /// List integrations, or switch salary sync on or off for one.
    Integrations {
        #[command(subcommand)]
        action: Option<IntegrationsAction>,
    },
    /// Print the workflow state diagram, generated from the transition table.
    Diagram {
        #[arg(long, value_enum, default_value = "mermaid")]
        format: DiagramFormat,
    },
    /// Start simulators and a daemon on a temporary store, send sample changes that reach
    /// every terminal state, and print the dump.
    Demo,
}

#[derive(Debug, Subcommand)]
pub enum IntegrationsAction {
    /// Each configured integration: enabled or not, activation instant, skipped changes.
    List,
    /// Enable salary sync: records the activation instant; changes that occurred earlier are
    /// logged as skipped and not sent.
    Enable {
        id: String,
        /// The activation instant (RFC 3339); default now.
        #[arg(long)]
        from: Option<String>,
    },
    /// Disable salary sync: new changes are refused; running workflows finish.
    Disable { id: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiagramFormat {
    Mermaid,
    Dot,
}

pub async fn main(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run => run::run(&cli.config).await,
        Command::Demo => demo::run().await,
        Command::Diagram { format } => {
            print!(
                "{}",
                match format {
                    DiagramFormat::Mermaid => diagram::mermaid(),
                    DiagramFormat::Dot => diagram::dot(),
                }
            );
            Ok(())
        }
        command => {
            let config = Config::load(&cli.config).map_err(anyhow::Error::msg)?;
            let create = matches!(
                command,
                Command::Submit { .. } | Command::Integrations { .. }
            );
            let backend = connect(&config, create).await?;
            tracing::debug!(mode = backend.mode(), "store reached");
            store_command(&backend, command).await
        }
    }
}

async fn connect(config: &Config, create: bool) -> Result<Backend> {
    let integrations: HashSet<IntegrationId> = config
        .integrations
        .iter()
        .filter_map(|i| IntegrationId::parse(i.id()).ok())
        .collect();
    Backend::connect(&config.store, integrations, config.retry.clone(), create).await
}

async fn store_command(backend: &Backend, command: Command) -> Result<()> {
    match command {
        Command::Submit { file } => {
            let body =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let items = backend.submit(body).await?;
            let mut refused = 0;
            for item in &items {
                let id = item
                    .workflow_id
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "-".into());
                let event = item.event_id.as_deref().unwrap_or("-");
                match &item.error {
                    Some(e) => {
                        refused += usize::from(item.outcome != "duplicate");
                        println!(
                            "#{:<3} {:<20} {:<20} {:<8} {}",
                            item.index, event, item.outcome, id, e
                        );
                    }
                    None => println!(
                        "#{:<3} {:<20} {:<20} {}",
                        item.index, event, item.outcome, id
                    ),
                }
            }
            if refused > 0 {
                anyhow::bail!("{refused} of {} event(s) were not accepted", items.len());
            }
            Ok(())
        }
        Command::Dump {
            state,
            integration,
            salary,
            since,
            after,
            limit,
            format,
        } => {
            let query = crate::api::admin::ListQuery {
                state,
                integration,
                salary,
                since,
                after,
                limit,
            };
            dump(backend, query, format).await
        }
        Command::Show { id, format } => {
            print!("{}", render::shown(&backend.show(id).await?, format));
            Ok(())
        }
        Command::Retry { id, reason, bulk } => {
            operate(backend, id, OperatorAction::Retry { reason }, bulk).await
        }
        Command::Resolve { id, reason, bulk } => {
            operate(backend, id, OperatorAction::Resolve { reason }, bulk).await
        }
        Command::Cancel { id, reason, bulk } => {
            operate(backend, id, OperatorAction::Cancel { reason }, bulk).await
        }
        Command::Errors {
            integration,
            format,
        } => {
            let integration = integration
                .as_deref()
                .map(IntegrationId::parse)
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let entries = backend.errors(integration.as_ref()).await?;
            // Manual deletes waiting for the operator are not errors, but they are work: the
            // error listing names them too, each with its `resolve` command.
            let query = crate::api::admin::ListQuery {
                state: Some(
                    crate::domain::State::ManualDeleteRequired
                        .as_str()
                        .to_owned(),
                ),
                integration: integration.as_ref().map(|i| i.as_str().to_owned()),
                ..Default::default()
            };
            let (waiting, _) = backend.list(&query).await?;
            let waiting: Vec<_> = waiting
                .into_iter()
                .filter(|wf| wf.resolution.is_none())
                .collect();
            print!("{}", render::errors(&entries, &waiting, format));
            Ok(())
        }
        Command::Prune { older_than } => {
            let p = backend.prune(&older_than).await?;
            println!(
                "removed {} terminal instance(s) and {} error-log line(s) last changed before {}",
                p.instances, p.error_log_lines, p.cutoff
            );
            Ok(())
        }
        Command::Integrations { action } => {
            let view = match action.unwrap_or(IntegrationsAction::List) {
                IntegrationsAction::List => backend.integrations().await?,
                IntegrationsAction::Enable { id, from } => {
                    vec![
                        backend
                            .set_integration(
                                IntegrationId::parse(&id).map_err(anyhow::Error::msg)?,
                                true,
                                from,
                            )
                            .await?,
                    ]
                }
                IntegrationsAction::Disable { id } => {
                    vec![
                        backend
                            .set_integration(
                                IntegrationId::parse(&id).map_err(anyhow::Error::msg)?,
                                false,
                                None,
                            )
                            .await?,
                    ]
                }
            };
            print!("{}", render::integrations(&view));
            Ok(())
        }
        Command::Run | Command::Demo | Command::Diagram { .. } => Ok(()),
    }
}

/// Instances per page when `dump` has no `--limit`: it then walks every page and prints each
/// as it comes, so memory holds one page (in this process and in the daemon), not the store.
const DUMP_PAGE_LEN: usize = 1000;

async fn dump(
    backend: &Backend,
    query: crate::api::admin::ListQuery,
    format: Format,
) -> Result<()> {
    use std::io::Write as _;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut printer = render::InstancePrinter::new(format);
    let mut unreadable = 0;
    // The first page carries the quarantine list.
    let mut quarantined = Vec::new();
    let next = if query.limit.is_some() {
        // One page, as asked; the next page's `--after` goes to stderr.
        let page = backend.list_page(&query).await?;
        unreadable += page.unreadable;
        quarantined.extend(page.quarantined);
        out.write_all(printer.page(&page.instances).as_bytes())?;
        page.next_after
    } else {
        let mut query = crate::api::admin::ListQuery {
            limit: Some(DUMP_PAGE_LEN),
            ..query
        };
        loop {
            let page = backend.list_page(&query).await?;
            unreadable += page.unreadable;
            quarantined.extend(page.quarantined);
            out.write_all(printer.page(&page.instances).as_bytes())?;
            match page.next_after {
                Some(after) => query.after = Some(after.to_string()),
                None => break,
            }
        }
        None
    };
    out.write_all(printer.finish().as_bytes())?;
    out.flush()?;
    if unreadable > 0 {
        eprintln!(
            "warning: {unreadable} stored instance(s) could not be read; the daemon quarantines them when it meets them"
        );
    }
    if !quarantined.is_empty() {
        eprintln!(
            "warning: {} unreadable record(s) are in quarantine (kept with their bytes, out of every index; \
             see RELIABILITY.md \"Hostile input\"):",
            quarantined.len()
        );
        for q in &quarantined {
            eprintln!("  {} at {}: {}", q.key, q.at.to_rfc3339(), q.reason);
        }
    }
    if let Some(next) = next {
        eprintln!("more: continue with --after {next}");
    }
    Ok(())
}

async fn operate(
    backend: &Backend,
    id: Option<WorkflowId>,
    action: OperatorAction,
    bulk: BulkFilter,
) -> Result<()> {
    match (id, bulk.is_empty()) {
        (Some(id), true) => {
            let wf = backend.operate(id, action).await?;
            println!("{} is now {}", wf.id, wf.state);
            Ok(())
        }
        (Some(_), false) => anyhow::bail!("give an ID or filters, not both"),
        (None, true) => anyhow::bail!(
            "give an ID, or at least one of --integration, --code, --salary for a bulk action"
        ),
        (None, false) => {
            let results = backend.operate_many(action, bulk).await?;
            let refused = results.iter().filter(|r| r.error.is_some()).count();
            for r in &results {
                match (&r.state, &r.error) {
                    (Some(state), None) => println!("{} is now {state}", r.id),
                    (_, Some(e)) => println!("{} refused: {e}", r.id),
                    (None, None) => {}
                }
            }
            println!(
                "{} instance(s) changed, {refused} refused",
                results.len() - refused
            );
            if refused > 0 {
                anyhow::bail!("{refused} instance(s) could not be changed");
            }
            Ok(())
        }
    }
}
