//! The `salary-sync` binary: parse the command line, set up logging, hand over to the library.

use clap::Parser;
use std::io::IsTerminal;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = salary_sync::cli::Cli::parse();
    // The demo prints its own story; its logs stay quiet unless asked for.
    let default_filter = match cli.command {
        salary_sync::cli::Command::Demo => "warn",
        _ => "info",
    };
    let filter = EnvFilter::try_from_env("SALARY_SYNC_LOG")
        .unwrap_or_else(|_| EnvFilter::new(default_filter));
    // Colour only for a person at a terminal: journald and Loki get plain lines.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let json = matches!(cli.log_format, salary_sync::cli::LogFormat::Json);
    if json {
        // One flat object a line: `message` and the event's fields beside `level` and
        // `timestamp`, not nested under `fields`, so a log pipeline indexes them as they are.
        logs.json().flatten_event(true).init();
    } else {
        logs.init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(salary_sync::cli::main(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if json {
                // A fatal error is a log line like any other under `--log-format json`.
                tracing::error!(error = %format!("{e:#}"), "salary-sync stopped");
            } else {
                eprintln!("error: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}
