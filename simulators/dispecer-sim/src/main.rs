//! `dispecer-sim`: simulated city traffic for demos, training and tests.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use dispecer_sim::live::{self, LiveOptions};

#[derive(Debug, Parser)]
#[command(
    name = "dispecer-sim",
    version,
    about = "Simulated city traffic for Dispecer"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A living city: citizen reports and utility events in real time over MQTT.
    Live {
        /// The city folder.
        #[arg(long, default_value = "cities/brasov")]
        city: PathBuf,
        /// Broker host.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Broker port.
        #[arg(long, default_value_t = 1883)]
        port: u16,
        /// MQTT user name, when the broker asks for one (Dispecer's embedded broker: an operator
        /// id, with the operator's API token as password).
        #[arg(long, requires = "password")]
        username: Option<String>,
        /// MQTT password (a Dispecer API token).
        #[arg(long, env = "DISPECER_SIM_PASSWORD", requires = "username")]
        password: Option<String>,
        /// Seed: the same seed gives the same stream.
        #[arg(long, default_value_t = 2026)]
        seed: u64,
        /// Citizen reports per minute.
        #[arg(long, default_value_t = 20.0)]
        reports_per_minute: f64,
        /// Utility events per minute.
        #[arg(long, default_value_t = 2.0)]
        utility_events_per_minute: f64,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DISPECER_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().context("async runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Live {
                city,
                host,
                port,
                username,
                password,
                seed,
                reports_per_minute,
                utility_events_per_minute,
            } => {
                let city = Arc::new(city::load(&city)?);
                let shutdown = CancellationToken::new();
                let stop = shutdown.clone();
                tokio::spawn(async move {
                    let _ = tokio::signal::ctrl_c().await;
                    stop.cancel();
                });
                let options = LiveOptions {
                    seed,
                    reports_per_minute,
                    utility_events_per_minute,
                    host,
                    port,
                    client_id: format!("dispecer-sim-{seed}"),
                    login: username.zip(password),
                };
                live::run(city, options, shutdown).await;
                Ok(())
            }
        }
    })
}
