//! `dispecer-bench`: Dispecer measured against the machine's own limits, in one run.
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
//! ```
//!
//! A benchmark, never a test: only a lost reading (or a run that fails) makes it exit non-zero.

mod ingest;
mod mqtt;
mod services;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde::Serialize;

use crate::ingest::{RowResult, Setup, ROWS};

/// End-to-end ingest throughput of Dispecer against the raw throughput of its broker.
#[derive(Debug, Parser)]
#[command(name = "dispecer-bench", version)]
struct Args {
    /// A few seconds per row, to prove the benchmark works (CI). No verdict on speed.
    #[arg(long)]
    quick: bool,
    /// The `dispecer` binary [default: `dispecer` next to this binary, i.e. target/release].
    #[arg(long)]
    dispecer: Option<PathBuf>,
    /// Where to write the table as JSON [default: target/bench/ingest.json; --quick:
    /// target/bench/ingest-quick.json].
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
    /// timescaledb-mosquitto.
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
    /// How the raw limit is measured.
    limit: &'static str,
    rows: &'a [RowResult],
}

const LIMIT: &str = "raw QoS 1 publish→subscribe of the same broker process, same payloads, \
                     same run: one publisher (100 in flight, TCP_NODELAY), one persistent QoS 1 \
                     subscriber, messages/s from the first publish to the last receipt";

/// `12345.6` → `12 346`.
fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// The table: row, backend + broker, measured, limit, ratio, target.
fn table(rows: &[RowResult]) -> String {
    let header = [
        "row",
        "backend + broker",
        "measured",
        "limit (raw QoS 1 pub→sub)",
        "ratio",
        "target",
    ]
    .map(str::to_owned);
    let mut lines = vec![header];
    for r in rows {
        lines.push([
            "end-to-end ingest".to_owned(),
            r.label.clone(),
            format!(
                "{} msg/s = {} readings/s",
                thousands(r.messages_per_s),
                thousands(r.readings_per_s)
            ),
            format!("{} msg/s", thousands(r.raw_messages_per_s)),
            format!("{:.3}", r.ratio),
            format!(
                "≥ {:.2} {}",
                r.target,
                match r.pass {
                    Some(true) => "pass",
                    Some(false) => "MISS",
                    None => "(quick: no verdict)",
                }
            ),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        let cells: Vec<String> = l
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell}{}", " ".repeat(w - cell.chars().count())))
            .collect();
        out.push_str(cells.join(" | ").trim_end());
        out.push('\n');
        if i == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            out.push_str(&rule.join("-|-"));
            out.push('\n');
        }
    }
    out
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
    let dispecer = match &args.dispecer {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("no folder of this binary")?
            .join("dispecer"),
    };
    if !dispecer.is_file() {
        bail!(
            "the dispecer binary is missing at {}: build it first with \
             `cargo build --release -p dispecer` (or pass --dispecer PATH)",
            dispecer.display()
        );
    }
    let specs: Vec<_> = if args.rows.is_empty() {
        ROWS.to_vec()
    } else {
        let mut specs = Vec::new();
        for name in &args.rows {
            match ROWS.iter().find(|r| r.id == name) {
                Some(r) => specs.push(*r),
                None => bail!(
                    "no row {name:?}; the rows are {}",
                    ROWS.map(|r| r.id).join(", ")
                ),
            }
        }
        specs
    };
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
            "bench/ingest-quick.json"
        } else {
            "bench/ingest.json"
        }),
    };
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let m = machine();
    let command = std::iter::once("dispecer-bench".to_owned())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    println!(
        "dispecer-bench{}: end-to-end ingest vs raw broker throughput ({started_at})",
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
    for spec in specs {
        let r = ingest::run_row(spec, &setup)
            .await
            .with_context(|| format!("row {}", spec.id))?;
        eprintln!(
            "  {}: {} packs in {:.1} s end to end ({} msg/s); raw {} messages at {} msg/s; ratio {:.3}; {} readings stored",
            r.row,
            r.messages,
            r.seconds,
            thousands(r.messages_per_s),
            r.raw_messages,
            thousands(r.raw_messages_per_s),
            r.ratio,
            r.stored_readings
        );
        results.push(r);
    }

    print!("\n{}", table(&results));
    let report = Report {
        benchmark: "ingest",
        quick: args.quick,
        started_at,
        machine: &m,
        command,
        limit: LIMIT,
        rows: &results,
    };
    if let Some(dir) = json.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&json, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("cannot write {}", json.display()))?;
    println!("written to {}", json.display());

    let lost: Vec<String> = results
        .iter()
        .filter(|r| r.lost_readings != 0)
        .map(|r| {
            format!(
                "{}: {} of {} readings missing",
                r.row, r.lost_readings, r.readings
            )
        })
        .collect();
    if !lost.is_empty() {
        bail!("readings lost: {}", lost.join("; "));
    }
    println!("nothing lost: every published reading is in the readings table");
    Ok(())
}
