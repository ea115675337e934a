//! The `synctv` binary: parse the command line, load the configuration once, run.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::process::ExitCode;
use synctv_api::startup::{connect_database, Application};
use synctv_api::{node, shutdown, telemetry};
use synctv_core::Config;

/// synctv: a clustered real-time room sync service (watch together).
///
/// Configuration comes from `synctv.toml` (or the file in SYNCTV_CONFIG) overlaid by
/// SYNCTV__SECTION__KEY environment variables.
#[derive(Parser)]
#[command(name = "synctv", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default when no subcommand is given).
    Serve,
    /// Apply pending database migrations, then exit.
    Migrate,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => return fail(&anyhow::Error::from(e)),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// Prints the error and its causes on one line (no backtrace: this is a user's error
/// message, such as a configuration key with a bad value).
fn fail(error: &anyhow::Error) -> ExitCode {
    let mut message = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        // Errors that wrap another often repeat its text; say it once.
        if !message.contains(&text) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&text);
        }
    }
    eprintln!("synctv: {message}");
    ExitCode::FAILURE
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = Config::load()?;
    let node_id = node::resolve_node_id(&mut config);
    telemetry::init(&config.log, &node_id);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(config)
                .await
                .context("synctv could not start")?;
            shutdown::begin_on_signals(app.shutdown())
                .context("cannot listen for SIGTERM and SIGINT")?;
            app.run_until_stopped().await?;
        }
        Command::Migrate => {
            let db = connect_database(&config).await?;
            db.migrate().await.context("migration failed")?;
            tracing::info!(backend = ?db.backend(), "migrations applied");
            db.close().await;
        }
    }
    Ok(())
}
