//! `dispecer-bench`: Dispecer measured against the machine's own limits, in one run.
//!
//! Every row is a figure and, where there is one, a limit measured in the same run, with their
//! ratio and the target of issue 8:
//!
//! - end-to-end ingest (below);
//! - persistence alone ([`persistence`]): `Store::record_readings` vs raw `COPY` (TimescaleDB)
//!   or a plain prepared INSERT (SQLite);
//! - report → dashboard latency ([`latency`]): a citizen report's incident frame on a
//!   WebSocket, with 10 000 readings/s behind it, vs the broker's own one-hop latency;
//! - jurisdiction lookup ([`lookup`]): `CityIndex::route` vs a PostGIS `ST_Contains` join, one
//!   core each;
//! - fusion ([`fusion`]): `IncidentIndex` matching with 100 000 open incidents;
//! - WebSocket fan-out ([`fanout`]): frames/s to 200 clients of a running `dispecer`;
//! - memory and start-up ([`memory`]): a `dispecer` with 100 000 open incidents, 1 million
//!   events, 10 000 sensors and a day of their readings stored.
//!
//! End-to-end ingest: SenML packs (count, speed, occupancy) published at full speed, QoS 1,
//! through a broker to the real `dispecer` binary until every reading is durable in its store,
//! as messages/s and readings/s, against the raw QoS 1 publish→subscribe throughput of the same
//! broker with the same payloads, measured in the same run. Rows: SQLite and TimescaleDB on the
//! embedded broker, TimescaleDB on Mosquitto. Target: at least 0.5× the raw figure, nothing
//! lost. Prints one table and writes it as JSON.
//!
//! ```sh
//! cargo build --release -p dispecer && cargo run --release -p dispecer-bench
//! cargo run --release -p dispecer-bench -- --quick   # a few seconds per row (CI: no verdict)
//! cargo run --release -p dispecer-bench -- --row fusion --row lookup
//! ```
//!
//! A benchmark, never a test: only lost data (or a run that fails) makes it exit non-zero.

mod fanout;
mod fusion;
mod ingest;
mod latency;
mod lookup;
mod memory;
mod mqtt;
mod persistence;
mod queries;
mod report;
mod services;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde::Serialize;

use crate::ingest::{RowResult, Setup, ROWS};
use crate::report::{table, thousands, Row, Target};

/// The rows other than end-to-end ingest, in the order they run (`memory` gives the start-up row
/// too: one `dispecer` measures both).
const OTHER_ROWS: [&str; 10] = [
    "persistence-timescaledb",
    "persistence-sqlite",
    "queries-timescaledb",
    "queries-sqlite",
    "latency",
    "lookup-brasov",
    "lookup-polygons",
    "fusion",
    "ws-fanout",
    "memory",
];

/// The rows a `--row` name runs, if it names any: a row, or a group (`persistence`, `lookup`),
/// or `startup` (measured with `memory`).
fn other_rows(name: &str) -> Option<Vec<&'static str>> {
    match name {
        "persistence" => Some(vec![OTHER_ROWS[0], OTHER_ROWS[1]]),
        "lookup" => Some(vec![OTHER_ROWS[5], OTHER_ROWS[6]]),
        "queries" => Some(vec![OTHER_ROWS[2], OTHER_ROWS[3]]),
        "startup" => Some(vec!["memory"]),
        _ => OTHER_ROWS.iter().find(|r| **r == name).map(|r| vec![*r]),
    }
}

/// Dispecer against the machine's own limits: ingest, persistence, lookup, fusion, fan-out,
/// memory and start-up.
#[derive(Debug, Parser)]
#[command(name = "dispecer-bench", version)]
struct Args {
    /// A few seconds per row, to prove the benchmark works (CI). No verdict on speed.
    #[arg(long)]
    quick: bool,
    /// The `dispecer` binary [default: `dispecer` next to this binary, i.e. target/release].
    #[arg(long)]
    dispecer: Option<PathBuf>,
    /// Where to write the table as JSON [default: target/bench/bench.json; --quick:
    /// target/bench/bench-quick.json].
    #[arg(long)]
    json: Option<PathBuf>,
    /// SenML packs published end to end per row, after a warm-up of 2 000 [default: as many
    /// as take about 8 s at the warm-up's rate; --quick: 1 s, warm-up 200].
    #[arg(long)]
    messages: Option<usize>,
    /// Messages of each raw publish→subscribe measurement, after a warm-up of 2 000 [default:
    /// as many as take about 4 s at the warm-up's rate; --quick: 0.5 s, warm-up 500].
    #[arg(long)]
    raw_messages: Option<usize>,
    /// Only these rows (repeatable): sqlite-embedded, timescaledb-embedded,
    /// timescaledb-mosquitto, persistence (persistence-timescaledb, persistence-sqlite), latency, lookup
    /// (lookup-brasov, lookup-polygons), fusion, ws-fanout, memory (with startup).
    #[arg(long = "row")]
    rows: Vec<String>,
    /// Keep each row's `dispecer` log in this folder (`{row}.log`).
    #[arg(long)]
    logs: Option<PathBuf>,
    /// The city folder.
    #[arg(long, default_value_os_t = repo_root().join("cities/brasov"))]
    city: PathBuf,
    /// A database on the TimescaleDB server (`scripts/timescaledb.sh start` prints it); each
    /// row creates a fresh database there and drops it after.
    #[arg(
        long,
        env = "DISPECER_TEST_PG_URL",
        default_value = "postgres://postgres:dispecer@127.0.0.1:55432/postgres"
    )]
    pg_url: String,
    /// The Mosquitto configuration (its `listener` and `persistence_location` are replaced by
    /// a port and a folder of the run's own).
    #[arg(long, default_value_os_t = repo_root().join("deploy/mosquitto.conf"))]
    mosquitto_conf: PathBuf,
    /// The Mosquitto binary.
    #[arg(
        long,
        env = "DISPECER_MOSQUITTO",
        default_value = "/usr/sbin/mosquitto"
    )]
    mosquitto: PathBuf,
}

/// The repository (for the city and `deploy/mosquitto.conf`).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The target folder this binary runs from (target/release/dispecer-bench → target).
fn target_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .context("cannot tell the target folder from this binary's path")
}

/// The machine the figures come from.
#[derive(Debug, Serialize)]
struct Machine {
    nproc: usize,
    cpu: String,
    memory_gib: f64,
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib: f64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    Machine {
        nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu,
        memory_gib: (kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
    }
}

/// The JSON document.
#[derive(Debug, Serialize)]
struct Report<'a> {
    benchmark: &'static str,
    quick: bool,
    started_at: String,
    machine: &'a Machine,
    command: String,
    rows: &'a [Row],
}

/// How the ingest rows' limit is measured.
const INGEST_LIMIT: &str = "raw QoS 1 publish→subscribe of the same broker process, same \
                            payloads, same run: one publisher (100 in flight, TCP_NODELAY), one \
                            persistent QoS 1 subscriber, messages/s from the first publish to the \
                            last receipt";

/// An ingest row as a table row.
fn ingest_row(r: &RowResult, quick: bool) -> Result<Row> {
    let mut details = serde_json::to_value(r)?;
    details["limit_as"] = INGEST_LIMIT.into();
    details["readings_per_s"] = r.readings_per_s.into();
    Ok(Row::new(
        &r.row,
        "end-to-end ingest",
        r.label.clone(),
        (r.messages_per_s, "msg/s"),
        Some((r.raw_messages_per_s, "raw QoS 1 pub→sub")),
        Target::RatioAtLeast {
            ratio: ingest::TARGET,
        },
        quick,
        details,
    ))
}

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("dispecer-bench: {e:#}");
        std::process::exit(1);
    }
}

async fn run() -> Result<()> {
    let args = Args::parse();
    let (specs, others) = if args.rows.is_empty() {
        (ROWS.to_vec(), OTHER_ROWS.to_vec())
    } else {
        let (mut specs, mut others) = (Vec::new(), Vec::new());
        for name in &args.rows {
            if let Some(r) = ROWS.iter().find(|r| r.id == name) {
                specs.push(*r);
            } else if let Some(rows) = other_rows(name) {
                others.extend(rows);
            } else {
                bail!(
                    "no row {name:?}; the rows are {}, {} (and the groups persistence, queries, \
                     lookup; startup runs with memory)",
                    ROWS.map(|r| r.id).join(", "),
                    OTHER_ROWS.join(", ")
                );
            }
        }
        // In the canonical order, once each.
        others.sort_by_key(|r| OTHER_ROWS.iter().position(|o| o == r));
        others.dedup();
        (specs, others)
    };
    let dispecer = match &args.dispecer {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no folder of this binary")?
            .join("dispecer"),
    };
    let needs_dispecer = !specs.is_empty()
        || ["ws-fanout", "memory", "latency"]
            .iter()
            .any(|r| others.contains(r));
    if needs_dispecer && !dispecer.is_file() {
        bail!(
            "the dispecer binary is missing at {}: build it first with \
             `cargo build --release -p dispecer` (or pass --dispecer PATH)",
            dispecer.display()
        );
    }
    let setup = Setup {
        dispecer: dispecer.clone(),
        city: args.city.clone(),
        mosquitto_conf: args.mosquitto_conf.clone(),
        mosquitto: args.mosquitto.clone(),
        pg_url: args.pg_url.clone(),
        messages: args.messages.map(|n| n.max(1)),
        raw_messages: args.raw_messages.map(|n| n.max(1)),
        seconds: if args.quick { 1.0 } else { 8.0 },
        quick: args.quick,
        logs: args.logs.clone(),
    };
    if let Some(dir) = &setup.logs {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let json = match &args.json {
        Some(p) => p.clone(),
        None => target_dir()?.join(if args.quick {
            "bench/bench-quick.json"
        } else {
            "bench/bench.json"
        }),
    };
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let m = machine();
    let command = std::iter::once("dispecer-bench".to_owned())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    println!(
        "dispecer-bench{}: Dispecer against the machine's own limits ({started_at})",
        if args.quick { " --quick" } else { "" }
    );
    println!(
        "machine: {} CPUs ({}), {:.1} GiB memory; dispecer: {}",
        m.nproc,
        m.cpu,
        m.memory_gib,
        dispecer.display()
    );

    let mut results = Vec::new();
    let mut lost = Vec::new();
    for spec in specs {
        let r = ingest::run_row(spec, &setup)
            .await
            .with_context(|| format!("row {}", spec.id))?;
        eprintln!(
            "  {}: {} messages in {:.1} s end to end ({} msg/s); raw {} messages at {} msg/s; ratio {:.3}; {} rows stored",
            r.row,
            r.messages,
            r.seconds,
            thousands(r.messages_per_s),
            r.raw_messages,
            thousands(r.raw_messages_per_s),
            r.ratio,
            r.stored_readings
        );
        if r.lost_readings != 0 {
            lost.push(format!(
                "{}: {} of {} readings missing",
                r.row, r.lost_readings, r.readings
            ));
        }
        results.push(ingest_row(&r, args.quick)?);
    }
    let city = if others.iter().any(|r| {
        r.starts_with("lookup")
            || r.starts_with("queries")
            || ["fusion", "ws-fanout", "memory", "latency"].contains(r)
    }) {
        Some(
            city::load(&args.city)
                .with_context(|| format!("cannot load the city {}", args.city.display()))?,
        )
    } else {
        None
    };
    for name in others {
        let started = std::time::Instant::now();
        let rows: Vec<Row> = match (name, &city) {
            ("persistence-timescaledb", _) => {
                vec![persistence::timescaledb(&args.pg_url, args.quick).await?]
            }
            ("persistence-sqlite", _) => vec![persistence::sqlite(args.quick).await?],
            ("queries-timescaledb", Some(city)) => {
                queries::timescaledb(&args.pg_url, city, args.quick).await?
            }
            ("queries-sqlite", Some(city)) => queries::sqlite(city, args.quick).await?,
            ("lookup-brasov", Some(city)) => {
                vec![lookup::brasov(city, &args.pg_url, args.quick).await?]
            }
            ("lookup-polygons", Some(city)) => {
                vec![lookup::polygons(city, &args.pg_url, args.quick).await?]
            }
            ("fusion", Some(city)) => {
                let city = city.clone();
                let quick = args.quick;
                vec![tokio::task::spawn_blocking(move || fusion::run(&city, quick)).await??]
            }
            ("ws-fanout", Some(city)) => vec![fanout::run(&setup, city).await?],
            ("latency", Some(city)) => vec![latency::run(&setup, city).await?],
            ("memory", Some(city)) => memory::run(&setup, city).await?,
            _ => bail!("row {name} has no runner"),
        };
        for r in &rows {
            eprintln!(
                "  {}: {} {}{} ({:.1} s)",
                r.row,
                report::figure(r.measured),
                r.unit,
                r.limit
                    .map(|l| format!(
                        " vs {} {}: ratio {:.3}",
                        report::figure(l),
                        r.limit_what,
                        r.measured / l
                    ))
                    .unwrap_or_default(),
                started.elapsed().as_secs_f64()
            );
        }
        results.extend(rows);
    }

    print!("\n{}", table(&results, args.quick));
    let report = Report {
        benchmark: "dispecer-bench",
        quick: args.quick,
        started_at,
        machine: &m,
        command,
        rows: &results,
    };
    if let Some(dir) = json.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&json, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("cannot write {}", json.display()))?;
    println!("written to {}", json.display());

    if !lost.is_empty() {
        bail!("readings lost: {}", lost.join("; "));
    }
    println!("nothing lost");
    Ok(())
}
