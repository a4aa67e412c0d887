#!/usr/bin/env bash
# Checks Dispecer's dependencies with cargo-deny (deny.toml): licences, banned and duplicated
# crates, and sources (crates.io only), offline. Security advisories are checked too when a copy
# of the RustSec advisory database is at hand (DISPECER_ADVISORY_DB, a directory holding the
# `advisory-db` git checkout, or cargo-deny's own $CARGO_HOME/advisory-dbs); the database lives
# outside the package registries, which is all this workplace's machines reach, so without a copy
# the script says that advisories were not checked (it does not pretend they passed).
#
#   scripts/deny.sh
#
# cargo-deny is installed into ~/.cargo/bin (from crates.io, pinned) when missing.
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."

CARGO_DENY_VERSION=0.20.2
if ! cargo deny --version 2>/dev/null | grep -q "$CARGO_DENY_VERSION"; then
	echo "== installing cargo-deny $CARGO_DENY_VERSION" >&2
	cargo install --locked --version "$CARGO_DENY_VERSION" cargo-deny
fi

cargo deny --offline check licenses bans sources

db="${DISPECER_ADVISORY_DB:-${CARGO_HOME:-$HOME/.cargo}/advisory-dbs}"
if [ -d "$db" ] && [ -n "$(ls -A "$db" 2>/dev/null)" ]; then
	DISPECER_ADVISORY_DB="$db" cargo deny --offline check advisories
else
	echo "deny: advisories NOT checked: no copy of the RustSec advisory database at $db" \
		"(set DISPECER_ADVISORY_DB to one; it cannot be fetched from here)" >&2
fi
