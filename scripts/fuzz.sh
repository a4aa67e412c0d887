#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ (cargo fuzz, libFuzzer) for SECONDS each, one after another, and
# fails on the first crash, panic, broken invariant, timeout or out-of-memory. Prints, per target,
# the executions and the coverage libFuzzer reached (cov: edges, ft: features, corp: corpus size).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      (default: 15 seconds, every target)
#   scripts/fuzz.sh --plateau MINUTES SECONDS [TARGET...]
#
# With --plateau, each target runs until MINUTES of fuzzing have passed without a new edge (libFuzzer's
# `cov`), SECONDS at most; the summary says which targets reached that plateau and which ran out
# of time, and how many executions the last window without a new edge held.
#
# Toolchain: nightly with AddressSanitizer when a nightly toolchain is installed; otherwise the
# stable toolchain with RUSTC_BOOTSTRAP=1 and no sanitizer (the code is safe Rust: panics,
# overflows, with debug assertions on, and libFuzzer's own timeout and memory checks still
# apply). DISPECER_FUZZ_TOOLCHAIN=stable|nightly forces one. cargo-fuzz is installed into
# ~/.cargo/bin when missing.
#
# The committed seeds in fuzz/corpus/<target>/ are read, never written: what libFuzzer finds
# goes to fuzz/work/<target>/ (kept between runs, ignored by git), crashes to
# fuzz/artifacts/<target>/. Reproduce one with:
#   RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none <target> fuzz/artifacts/<target>/<file>
set -euo pipefail
cd "$(dirname -- "${BASH_SOURCE[0]}")/.."

usage() {
	echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...] | --plateau MINUTES SECONDS [TARGET...]" >&2
	exit 2
}
plateau=""
if [ "${1:-}" = --plateau ]; then
	plateau="${2:-}"
	shift 2 || usage
	case "$plateau" in '' | *[!0-9]*) usage ;; esac
fi
seconds="${1:-15}"
shift || true
case "$seconds" in
'' | *[!0-9]*) usage ;;
esac

CARGO_FUZZ_VERSION=0.13.2
if ! cargo fuzz --version >/dev/null 2>&1; then
	echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION" >&2
	cargo install --locked --version "$CARGO_FUZZ_VERSION" cargo-fuzz
fi

toolchain="${DISPECER_FUZZ_TOOLCHAIN:-}"
if [ -z "$toolchain" ]; then
	# (Not `rustup … | grep -q`: with pipefail, grep leaving early could fail the pipe.)
	if command -v rustup >/dev/null && grep -q '^nightly' <<<"$(rustup toolchain list)"; then
		toolchain=nightly
	else
		toolchain=stable
	fi
fi
case "$toolchain" in
nightly)
	fuzz=(cargo +nightly fuzz)
	flags=(--sanitizer address --target-dir fuzz/target/nightly-asan)
	;;
stable)
	# cargo fuzz passes a few -Z flags to rustc and cargo; RUSTC_BOOTSTRAP lets stable take them.
	export RUSTC_BOOTSTRAP=1
	fuzz=(cargo fuzz)
	flags=(--sanitizer none --target-dir fuzz/target/stable)
	;;
*)
	echo "DISPECER_FUZZ_TOOLCHAIN must be stable or nightly, not $toolchain" >&2
	exit 2
	;;
esac

if [ "$#" -gt 0 ]; then
	targets=("$@")
else
	mapfile -t targets < <("${fuzz[@]}" list)
fi

dict_for() {
	case "$1" in
	cap) echo fuzz/dict/xml.dict ;;
	citizen_report | utility_event | senml_json | action) echo fuzz/dict/json.dict ;;
	open311_form) echo fuzz/dict/form.dict ;;
	esac
}

started=$(date +%s)
echo "== fuzz: building ${#targets[@]} targets ($toolchain, ${flags[1]})" >&2
# `cargo fuzz build` takes one target or all of them.
if [ "$#" -eq 1 ]; then
	"${fuzz[@]}" build "${flags[@]}" "$1" >&2
else
	"${fuzz[@]}" build "${flags[@]}" >&2
fi

summary=()
unfinished=()
for target in "${targets[@]}"; do
	mkdir -p "fuzz/work/$target" "fuzz/corpus/$target"
	log="fuzz/work/$target.log"
	args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
	dict="$(dict_for "$target")"
	[ -n "$dict" ] && args+=(-dict="$dict")
	echo "== fuzz: $target, ${seconds} s${plateau:+ at most, until $plateau min without a new edge}" >&2
	# Its own process group, so that a plateau can interrupt libFuzzer under cargo.
	setsid "${fuzz[@]}" run "${flags[@]}" "$target" "fuzz/work/$target" "fuzz/corpus/$target" \
		-- "${args[@]}" >"$log" 2>&1 &
	pid=$!
	# A new session is a new scheduler autogroup, where `nice` no longer yields to the rest of
	# the machine: give the group this script's niceness.
	sleep 1 # (setsid has made the new session by then)
	if [ -w "/proc/$pid/autogroup" ]; then
		echo "$(nice)" >"/proc/$pid/autogroup" 2>/dev/null || true
	fi
	reached=""
	if [ -n "$plateau" ]; then
		best=-1
		rose=$(date +%s)
		rose_execs=0
		while kill -0 "$pid" 2>/dev/null; do
			sleep 10
			last="$(grep -a -E '^#[0-9]+' "$log" | tail -n 1 || true)"
			cov="$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")"
			execs_now="$(sed -n 's/^#\([0-9]*\).*/\1/p' <<<"$last")"
			[ -n "$cov" ] || continue
			if [ "$cov" -gt "$best" ]; then
				best=$cov
				rose=$(date +%s)
				rose_execs=${execs_now:-0}
			elif [ $(($(date +%s) - rose)) -ge $((plateau * 60)) ]; then
				reached="plateau: no new edge in the last ${plateau} min ($((${execs_now:-0} - rose_execs)) executions)"
				kill -INT -- "-$pid" 2>/dev/null || true
				break
			fi
		done
	fi
	rc=0
	wait "$pid" || rc=$?
	# An interrupt at the plateau ends libFuzzer with its own exit code, after its statistics.
	if [ "$rc" -ne 0 ] && ! { [ -n "$reached" ] && grep -a -q "run interrupted" "$log"; }; then
		# The panic or sanitizer report and how to reproduce it (not the input's bytes).
		grep -a -E -A4 "panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer|SUMMARY:|Reproduce with:" "$log" |
			cut -c1-300 | head -n 40 >&2 || tail -n 20 "$log" | cut -c1-300 >&2
		echo "FAILED: fuzz target $target (log: $log; input: fuzz/artifacts/$target/)" >&2
		exit 1
	fi
	done_line="$(grep -a -E '^#[0-9]+[[:space:]]+(DONE|NEW|REDUCE|pulse|RELOAD)' "$log" | tail -n 1 || true)"
	if [ -n "$plateau" ]; then
		echo "   $target: ${reached:-no plateau: still finding new edges after ${seconds} s}" >&2
		[ -n "$reached" ] || unfinished+=("$target")
	fi
	execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
	cov="$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$done_line")"
	ft="$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$done_line")"
	corp="$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$done_line")"
	summary+=("$(printf '%-16s %12s %8s %8s %14s' "$target" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}")")
done

echo "== fuzz: no crash ($toolchain, ${seconds} s per target, $(($(date +%s) - started)) s in all)" >&2
printf '%-16s %12s %8s %8s %14s\n' target executions cov ft corpus >&2
printf '%s\n' "${summary[@]}" >&2
if [ -n "$plateau" ]; then
	if [ "${#unfinished[@]}" -eq 0 ]; then
		echo "== fuzz: every target reached its plateau ($plateau min without a new edge)" >&2
	else
		echo "== fuzz: no plateau within ${seconds} s: ${unfinished[*]}" >&2
	fi
fi
