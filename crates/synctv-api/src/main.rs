//! The `synctv` binary: parse the command line, load the configuration once, run.

use anyhow::Context;
use clap::{Parser, Subcommand};
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = Config::load()?;
    let node_id = node::resolve_node_id(&mut config);
    telemetry::init(&config.log, &node_id);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(config)
                .await
                .context("synctv could not start")?;
            shutdown::begin_on_signals(app.shutdown());
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
