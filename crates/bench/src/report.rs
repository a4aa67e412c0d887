//! One row of the table, whatever it measures: the figure, the limit it is compared with (measured
//! in the same run), their ratio, the target and the verdict; and the table itself.

use serde::Serialize;

/// What a row must reach.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// `measured / limit` at least this.
    RatioAtLeast {
        /// The least ratio.
        ratio: f64,
    },
    /// The measured figure at least this (in the row's unit).
    AtLeast {
        /// The least figure.
        value: f64,
    },
    /// The measured figure at most this (in the row's unit).
    AtMost {
        /// The largest figure.
        value: f64,
    },
    /// The measured figure at most `value` (in the row's unit) and at most `ratio` × the limit.
    AtMostAndRatioAtMost {
        /// The largest figure.
        value: f64,
        /// The largest ratio to the limit.
        ratio: f64,
    },
    /// No target: the figure is reported.
    Report,
}

/// One row of the table, as printed and as written to JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The `--row` name that runs it.
    pub row: String,
    /// What is measured ("persistence alone", …).
    pub what: String,
    /// Backend, broker, data set.
    pub setup: String,
    /// The figure.
    pub measured: f64,
    /// Its unit ("rows/s", "MB", …).
    pub unit: String,
    /// The limit it is compared with, measured in the same run (same unit), if any.
    pub limit: Option<f64>,
    /// How the limit was measured.
    pub limit_what: String,
    /// `measured / limit`.
    pub ratio: Option<f64>,
    /// The target.
    pub target: Target,
    /// Whether the target is met (`None` in quick mode, or with nothing to meet).
    pub pass: Option<bool>,
    /// The row's own figures (sizes, counts, times).
    pub details: serde_json::Value,
}

impl Row {
    /// A row, its ratio and verdict computed (no verdict when `quick`).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        row: &str,
        what: &str,
        setup: impl Into<String>,
        (measured, unit): (f64, &str),
        limit: Option<(f64, &str)>,
        target: Target,
        quick: bool,
        details: serde_json::Value,
    ) -> Row {
        let ratio = limit.map(|(l, _)| measured / l);
        let pass = match target {
            Target::RatioAtLeast { ratio: t } => ratio.map(|r| r >= t),
            Target::AtLeast { value } => Some(measured >= value),
            Target::AtMost { value } => Some(measured <= value),
            Target::AtMostAndRatioAtMost { value, ratio: t } => {
                ratio.map(|r| measured <= value && r <= t)
            }
            Target::Report => None,
        }
        .filter(|_| !quick);
        Row {
            row: row.to_owned(),
            what: what.to_owned(),
            setup: setup.into(),
            measured,
            unit: unit.to_owned(),
            limit: limit.map(|(l, _)| l),
            limit_what: limit.map(|(_, w)| w.to_owned()).unwrap_or_default(),
            ratio,
            target,
            pass,
            details,
        }
    }

    fn target_text(&self) -> String {
        match self.target {
            Target::RatioAtLeast { ratio } => format!("≥ {ratio}×"),
            Target::AtLeast { value } => format!("≥ {} {}", figure(value), self.unit),
            Target::AtMost { value } => format!("≤ {} {}", figure(value), self.unit),
            Target::AtMostAndRatioAtMost { value, ratio } => {
                format!("≤ {} {} and ≤ {ratio}×", figure(value), self.unit)
            }
            Target::Report => "report it".to_owned(),
        }
    }
}

/// `12345.6` → `12 346`; figures below 100 keep some decimals.
pub fn figure(x: f64) -> String {
    if x.abs() < 10.0 {
        return format!("{x:.2}");
    }
    if x.abs() < 100.0 {
        return format!("{x:.1}");
    }
    thousands(x)
}

/// `12345.6` → `12 346`.
pub fn thousands(x: f64) -> String {
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

/// The table: row, what, setup, measured, limit, ratio, target, verdict.
pub fn table(rows: &[Row], quick: bool) -> String {
    let header = [
        "row", "what", "setup", "measured", "limit", "ratio", "target", "verdict",
    ]
    .map(str::to_owned);
    let mut lines = vec![header];
    for r in rows {
        lines.push([
            r.row.clone(),
            r.what.clone(),
            r.setup.clone(),
            format!("{} {}", figure(r.measured), r.unit),
            match r.limit {
                Some(l) => format!("{} {} ({})", figure(l), r.unit, r.limit_what),
                None => "—".to_owned(),
            },
            r.ratio.map_or("—".to_owned(), |x| format!("{x:.3}")),
            r.target_text(),
            match (r.pass, quick) {
                (_, true) => "(quick: no verdict)".to_owned(),
                (Some(true), _) => "pass".to_owned(),
                (Some(false), _) => "MISS".to_owned(),
                (None, _) => "—".to_owned(),
            },
        ]);
    }
    let widths: Vec<usize> = (0..8)
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

/// Seconds task `path` (`/proc/thread-self` or `/proc/{pid}`) has spent on a CPU, from its
/// `schedstat` (nanoseconds): per-core figures on a shared machine count the CPU a task got, not
/// the wall-clock time it waited for one.
pub fn cpu_seconds(path: &str) -> anyhow::Result<f64> {
    use anyhow::Context as _;
    let text = std::fs::read_to_string(format!("{path}/schedstat"))
        .with_context(|| format!("cannot read {path}/schedstat"))?;
    let ns: u64 = text
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("{path}/schedstat has no run time"))?;
    Ok(ns as f64 / 1e9)
}
