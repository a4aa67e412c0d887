#!/usr/bin/env bash
# Runs every test of Dispecer, as CI does: installs and starts what the tests need (Mosquitto,
# TimescaleDB, Chromium), then the gate: formatting, lints, the dependencies' licences and
# sources (scripts/deny.sh), and all tests, including the
# end-to-end journeys against SQLite and TimescaleDB, the embedded broker and Mosquitto, and the
# browser test; then a quick run of the benchmarks (it asserts nothing about speed) and a brief
# run of every fuzz target (scripts/fuzz.sh).
#
#   scripts/test.sh [extra arguments for `cargo test`]
#
# Idempotent and safe beside a developer's own services: TimescaleDB runs on 127.0.0.1:55432
# (DISPECER_TEST_PG_PORT), every other test service on a free port of its own.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."

echo "== services" >&2
scripts/deps.sh
DISPECER_TEST_PG_URL="$(scripts/timescaledb.sh start)"
export DISPECER_TEST_PG_URL
export DISPECER_MOSQUITTO="${DISPECER_MOSQUITTO:-/usr/sbin/mosquitto}"
export DISPECER_CHROMIUM="${DISPECER_CHROMIUM:-/usr/bin/chromium}"
export DISPECER_CHROMEDRIVER="${DISPECER_CHROMEDRIVER:-/usr/bin/chromedriver}"
# schemathesis (PyPI) in a cached virtualenv, for tests/e2e/tests/it/schemathesis.rs.
scripts/schemathesis.sh >/dev/null
# georeport (PyPI), an outside Open311 client, for tests/e2e/tests/it/open311.rs.
scripts/georeport.sh >/dev/null

echo "== format" >&2
cargo fmt --all --check

echo "== lints" >&2
cargo clippy --workspace --all-targets -- -D warnings

echo "== dependencies (cargo-deny: licences, bans, sources; advisories where a database is at hand)" >&2
scripts/deny.sh

echo "== build (the end-to-end tests start the real binary)" >&2
cargo build --workspace --bins

echo "== tests" >&2
cargo test --workspace "$@"

echo "== benchmark, quick (proves it runs and loses nothing; no verdict on speed)" >&2
cargo build -q --release -p dispecer
cargo run -q --release -p dispecer-bench -- --quick

echo "== fuzz, brief (every parser of outside input, 15 s each; fails on any crash)" >&2
scripts/fuzz.sh 15
