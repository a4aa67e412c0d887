#!/usr/bin/env bash
# Provision everything the Dispecer test suite needs and print its settings.
#
#   eval "$(scripts/test-services.sh)"
#
# 1. scripts/deps.sh           Debian packages (mosquitto, chromium, ...)
# 2. scripts/timescaledb.sh    PostgreSQL 17 + TimescaleDB on 127.0.0.1
#
# stdout carries only `export NAME=value` lines (shell-quoted), so it can be
# eval'ed; every diagnostic goes to stderr. Exits non-zero, printing nothing
# on stdout, if any step fails, so `eval "$(...)"` then exports nothing
# (check the exit status with `out=$(scripts/test-services.sh) && eval "$out"`).
#
# The tests start their own mosquitto brokers, chromium and chromedriver from
# the paths exported here; only PostgreSQL runs as a shared server.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)

log() { printf 'test-services.sh: %s\n' "$*" >&2; }
die() { printf 'test-services.sh: ERROR: %s\n' "$*" >&2; exit 1; }

MOSQUITTO=/usr/sbin/mosquitto
CHROMIUM=/usr/bin/chromium
CHROMEDRIVER=/usr/bin/chromedriver

# deps.sh writes only to stderr, but make sure nothing it runs can end up in
# the eval'ed stdout.
"$SCRIPT_DIR/deps.sh" >&2 || die "scripts/deps.sh failed"

for bin in "$MOSQUITTO" "$CHROMIUM" "$CHROMEDRIVER"; do
  [[ -x $bin ]] || die "$bin is missing after scripts/deps.sh"
done

pg_url=$("$SCRIPT_DIR/timescaledb.sh" start) || die "scripts/timescaledb.sh start failed"
[[ $pg_url == postgres://* ]] || die "unexpected output from timescaledb.sh start: '$pg_url'"

log "services ready; PostgreSQL at $pg_url"
printf 'export DISPECER_TEST_PG_URL=%q\n' "$pg_url"
printf 'export DISPECER_MOSQUITTO=%q\n' "$MOSQUITTO"
printf 'export DISPECER_CHROMIUM=%q\n' "$CHROMIUM"
printf 'export DISPECER_CHROMEDRIVER=%q\n' "$CHROMEDRIVER"
