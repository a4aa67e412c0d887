//! `dispecer-sim`: simulated city traffic for demos, training, tests and load.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use chrono::Utc;
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use tokio_util::sync::CancellationToken;

use dispecer_sim::live::{self, LiveOptions};
use dispecer_sim::load::{self, Kind};
use dispecer_sim::mqtt::{Broker, Publisher};
use dispecer_sim::record::{self, Pace};
use dispecer_sim::scenario;

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

/// The broker to talk to.
#[derive(Debug, Args)]
struct BrokerArgs {
    /// Broker host.
    #[arg(long = "mqtt-host", alias = "host", default_value = "127.0.0.1")]
    host: String,
    /// Broker port.
    #[arg(long = "mqtt-port", alias = "port", default_value_t = 1883)]
    port: u16,
    /// MQTT user name, when the broker asks for one (Dispecer's embedded broker: an operator
    /// id, with the operator's API token as password).
    #[arg(long, requires = "password")]
    username: Option<String>,
    /// MQTT password (a Dispecer API token).
    #[arg(long, env = "DISPECER_SIM_PASSWORD", requires = "username")]
    password: Option<String>,
}

impl BrokerArgs {
    fn broker(self) -> Broker {
        Broker {
            host: self.host,
            port: self.port,
            login: self.username.zip(self.password),
        }
    }
}

/// How fast to publish timed messages.
#[derive(Debug, Args)]
struct PaceArgs {
    /// Divide the original spacing by N (1 = real time).
    #[arg(long, default_value_t = 1.0, conflicts_with = "fast")]
    speed: f64,
    /// As fast as the broker takes them.
    #[arg(long)]
    fast: bool,
}

impl PaceArgs {
    fn pace(&self) -> anyhow::Result<Pace> {
        if self.fast {
            return Ok(Pace::Fast);
        }
        if !(self.speed.is_finite() && self.speed > 0.0) {
            bail!("--speed must be a positive number, not {}", self.speed);
        }
        Ok(Pace::Speed(self.speed))
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum KindArg {
    Traffic,
    Citizen,
    Utility,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A living city: citizen reports and utility events in real time over MQTT.
    Live {
        /// The city folder.
        #[arg(long, default_value = "cities/brasov")]
        city: PathBuf,
        #[command(flatten)]
        broker: BrokerArgs,
        /// Seed: the same seed gives the same stream.
        #[arg(long, default_value_t = 2026)]
        seed: u64,
        /// Citizen reports per minute.
        #[arg(long, default_value_t = 20.0)]
        reports_per_minute: f64,
        /// Utility events per minute.
        #[arg(long, default_value_t = 2.0)]
        utility_events_per_minute: f64,
        /// Seconds between two SenML packs of every traffic counter of the city (0: none).
        #[arg(long, default_value_t = 60.0)]
        traffic_every_s: f64,
        /// Send the utilities' events over HTTP (`POST /api/v1/events`) to this Dispecer
        /// (`http://host:port`) instead of MQTT; needs --utility-token for each operator.
        #[arg(long)]
        utilities_http: Option<String>,
        /// `OPERATOR=TOKEN` (repeatable): an operator's API token for --utilities-http.
        #[arg(long = "utility-token", value_parser = parse_token)]
        utility_tokens: Vec<(String, String)>,
    },
    /// Scenarios: timed messages with a known outcome (format: simulators/README.md).
    Scenario {
        #[command(subcommand)]
        command: ScenarioCommand,
    },
    /// Record what arrives on the broker to newline-delimited JSON.
    Record {
        /// The file to write (appended to).
        #[arg(long)]
        out: PathBuf,
        /// Topic filter to subscribe to (repeatable).
        #[arg(long = "topic", default_value = "dispecer/v1/in/#")]
        topics: Vec<String>,
        /// Stop after this many messages (default: until Ctrl-C).
        #[arg(long)]
        count: Option<u64>,
        #[command(flatten)]
        broker: BrokerArgs,
    },
    /// Publish a recording again, at real time, N× or as fast as possible.
    Replay {
        /// A file written by `record`.
        file: PathBuf,
        #[command(flatten)]
        pace: PaceArgs,
        /// Start again at the end, until Ctrl-C.
        #[arg(long = "loop")]
        looping: bool,
        #[command(flatten)]
        broker: BrokerArgs,
    },
    /// Publish N valid messages per second per kind for S seconds; report the achieved rate and
    /// the errors.
    Load {
        /// The source kinds (repeatable, or comma-separated).
        #[arg(long = "kind", value_enum, value_delimiter = ',', required = true)]
        kinds: Vec<KindArg>,
        /// Messages per second, per kind.
        #[arg(long)]
        rate: f64,
        /// For how long, in seconds.
        #[arg(long)]
        seconds: f64,
        /// Seed (default: the current time, so that runs do not repeat report ids).
        #[arg(long)]
        seed: Option<u64>,
        /// The city folder.
        #[arg(long, default_value = "cities/brasov")]
        city: PathBuf,
        #[command(flatten)]
        broker: BrokerArgs,
    },
}

#[derive(Debug, Subcommand)]
enum ScenarioCommand {
    /// Check scenario files against the city; print a summary of each.
    Check {
        /// Scenario files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The city folder.
        #[arg(long, default_value = "cities/brasov")]
        city: PathBuf,
    },
    /// Publish a scenario to a broker, its compact steps stamped from now.
    Run {
        /// The scenario file.
        file: PathBuf,
        #[command(flatten)]
        pace: PaceArgs,
        /// Stamp steps from the file's `start` instead of now (Dispecer refuses reports stamped
        /// more than 5 minutes in its future).
        #[arg(long)]
        file_start: bool,
        /// The city folder.
        #[arg(long, default_value = "cities/brasov")]
        city: PathBuf,
        #[command(flatten)]
        broker: BrokerArgs,
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
    runtime.block_on(run(cli.command))
}

/// Cancelled on Ctrl-C.
fn ctrl_c() -> CancellationToken {
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
    });
    shutdown
}

fn client_id(what: &str) -> String {
    format!("dispecer-sim-{what}-{}", std::process::id())
}

fn progress(len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} messages, {elapsed_precise} ({per_sec})")
    {
        bar.set_style(style);
    }
    bar
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Live {
            city,
            broker,
            seed,
            reports_per_minute,
            utility_events_per_minute,
            traffic_every_s,
            utilities_http,
            utility_tokens,
        } => {
            let city = Arc::new(city::load(&city)?);
            let broker = broker.broker();
            if utilities_http.is_some() && utility_tokens.is_empty() {
                anyhow::bail!("--utilities-http needs at least one --utility-token OPERATOR=TOKEN");
            }
            let options = LiveOptions {
                seed,
                reports_per_minute,
                utility_events_per_minute,
                host: broker.host,
                port: broker.port,
                client_id: format!("dispecer-sim-{seed}"),
                login: broker.login,
                traffic_every_s,
                utilities_http: utilities_http
                    .map(|url| (url, utility_tokens.into_iter().collect())),
            };
            live::run(city, options, ctrl_c()).await;
            Ok(())
        }
        Command::Scenario {
            command: ScenarioCommand::Check { files, city },
        } => {
            let city = city::load(&city)?;
            let mut failed = 0;
            for file in &files {
                match scenario::load(file, &city) {
                    Ok(s) => println!(
                        "{}: ok — {} ({} steps over {} s; expects {} incidents, {} duplicates, {} refused)",
                        file.display(),
                        s.name,
                        s.steps.len(),
                        s.steps.last().map_or(0.0, |st| st.at),
                        s.expect.incidents.len(),
                        s.expect.duplicates.len(),
                        s.expect.refused.len()
                    ),
                    Err(e) => {
                        eprintln!("{e}");
                        failed += 1;
                    }
                }
            }
            if failed > 0 {
                bail!("{failed} of {} scenarios refused", files.len());
            }
            Ok(())
        }
        Command::Scenario {
            command:
                ScenarioCommand::Run {
                    file,
                    pace,
                    file_start,
                    city,
                    broker,
                },
        } => {
            let city = city::load(&city)?;
            let s = scenario::load(&file, &city)?;
            let pace = pace.pace()?;
            // Faster than real time, the story is placed so that it ends now: its steps keep
            // their spacing in story time (what fusion windows see) and none is stamped in
            // Dispecer's future, which it would refuse.
            let story = s.steps.last().map_or(0.0, |st| st.at);
            let start = match (s.start, &pace) {
                (Some(start), _) if file_start => start,
                (_, Pace::Speed(x)) if *x <= 1.0 => Utc::now(),
                _ => {
                    Utc::now()
                        - chrono::Duration::milliseconds((story * 1000.0).ceil() as i64)
                        - chrono::Duration::seconds(1)
                }
            };
            let messages: Vec<record::Recorded> = s
                .messages(start)
                .into_iter()
                .map(|m| record::Recorded {
                    t: m.received_at(start),
                    topic: m.topic,
                    payload: m.payload,
                })
                .collect();
            publish_timed(&messages, broker.broker(), pace, false, "scenario").await
        }
        Command::Record {
            out,
            topics,
            count,
            broker,
        } => {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&out)
                .with_context(|| format!("{}", out.display()))?;
            let written = record::record(
                &broker.broker(),
                &client_id("record"),
                &topics,
                &mut file,
                &out,
                count,
                None,
                ctrl_c(),
            )
            .await?;
            eprintln!("recorded {written} messages to {}", out.display());
            Ok(())
        }
        Command::Replay {
            file,
            pace,
            looping,
            broker,
        } => {
            let messages = record::read_file(&file)?;
            if messages.is_empty() {
                bail!("{}: no messages", file.display());
            }
            publish_timed(&messages, broker.broker(), pace.pace()?, looping, "replay").await
        }
        Command::Load {
            kinds,
            rate,
            seconds,
            seed,
            city,
            broker,
        } => {
            if !(rate.is_finite() && rate > 0.0 && seconds.is_finite() && seconds > 0.0) {
                bail!("--rate and --seconds must be positive numbers");
            }
            let city = city::load(&city)?;
            let seed = seed.unwrap_or_else(|| Utc::now().timestamp_micros().unsigned_abs());
            let kinds: Vec<Kind> = kinds
                .into_iter()
                .map(|k| match k {
                    KindArg::Traffic => Kind::Traffic,
                    KindArg::Citizen => Kind::Citizen,
                    KindArg::Utility => Kind::Utility,
                })
                .collect();
            let publisher = Publisher::connect(
                &broker.broker(),
                &client_id("load"),
                Duration::from_secs(10),
            )
            .await?;
            eprintln!("load: seed {seed}, {rate}/s per kind for {seconds} s");
            let summary =
                load::run(&city, publisher, &kinds, rate, seconds, seed, ctrl_c()).await?;
            for (kind, n) in &summary.per_kind {
                println!("{kind}: {n} messages");
            }
            println!(
                "published {} messages in {:.2} s: {:.1} messages/s (asked {:.1}/s); acknowledged {}, errors {} (missing PUBACKs), connection errors {}",
                summary.delivery.sent,
                summary.seconds,
                summary.rate(),
                rate * kinds.len() as f64,
                summary.delivery.acked,
                summary.delivery.missing(),
                summary.delivery.connection_errors
            );
            if summary.delivery.missing() > 0 {
                bail!(
                    "{} messages were not acknowledged",
                    summary.delivery.missing()
                );
            }
            Ok(())
        }
    }
}

/// Publishes timed messages with a progress bar and prints the summary.
async fn publish_timed(
    messages: &[record::Recorded],
    broker: Broker,
    pace: Pace,
    looping: bool,
    what: &str,
) -> anyhow::Result<()> {
    let publisher = Publisher::connect(&broker, &client_id(what), Duration::from_secs(10)).await?;
    let bar = progress(messages.len() as u64);
    let summary = record::replay(messages, publisher, pace, looping, &bar, ctrl_c()).await?;
    bar.finish_and_clear();
    println!(
        "{} messages in {:.2} s ({:.1} messages/s); acknowledged {}, errors {} (missing PUBACKs), connection errors {}",
        summary.messages,
        summary.seconds,
        summary.rate(),
        summary.delivery.acked,
        summary.errors(),
        summary.delivery.connection_errors
    );
    if summary.errors() > 0 {
        bail!("{} messages were not acknowledged", summary.errors());
    }
    Ok(())
}

/// `OPERATOR=TOKEN`.
fn parse_token(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((op, token)) if !op.is_empty() && !token.is_empty() => {
            Ok((op.to_owned(), token.to_owned()))
        }
        _ => Err(format!("{text:?} is not OPERATOR=TOKEN")),
    }
}
