//! `dispecer`: the integrated technical dispatch center's server.
//!
//! Boundary: the only place that reads configuration and environment, installs tracing and
//! handles signals; everything else is wired from here.

mod app;
mod broker;
mod cluster_tls;
mod clustered;
mod config;
mod rebuild;
mod tls;
mod users;

use std::process::ExitCode;

use clap::Parser;

use config::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dispecer: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Run(opts) => app::run(opts, None).await,
            Command::Demo(demo) => app::run(demo.run, Some(demo.sim)).await,
            Command::Migrate(m) => app::migrate(&m.database_url).await,
            Command::CheckCity(c) => app::check_city(&c.city),
            Command::Token(t) => app::token(t).await,
            Command::User(u) => users::run(u).await,
            Command::Gdpr(g) => app::gdpr(g).await,
            Command::Rebuild(r) => crate::rebuild::run(r).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("dispecer: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::filter::{filter_fn, FilterExt};
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::EnvFilter;
    let (filter, chosen) = match EnvFilter::try_from_env("DISPECER_LOG") {
        Ok(filter) => (filter, true),
        Err(_) => (
            EnvFilter::new("info,rumqttd=warn,rumqttc=warn,sqlx=warn,tower_http=warn"),
            false,
        ),
    };
    // By default, none of the embedded broker's spans: its router opens an error-level span for
    // every message published, with the topic formatted into it, which cost the broker's thread a
    // few per cent of its time in ingest and is never read (its warnings and errors are still
    // logged). A `DISPECER_LOG` chosen by hand gets them all.
    let broker_spans =
        filter_fn(move |meta| chosen || !(meta.is_span() && meta.target().starts_with("rumqttd")));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(filter.and(broker_spans)),
        )
        .init();
}
