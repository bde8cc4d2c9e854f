#!/usr/bin/env bash
# Runs every fuzz target for a bounded time: fuzz/run.sh [seconds-per-target] [target…]
# Needs the nightly toolchain and cargo-fuzz (cargo install cargo-fuzz). Exits non-zero
# when a target crashes, hangs or exceeds the memory limit; libFuzzer then writes the
# input to fuzz/artifacts/<target>/ (commit it once fixed: the corpus test replays it).
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

cargo +nightly fuzz build

failed=()
for t in "${targets[@]}"; do
  echo "== $t: ${seconds}s"
  # New inputs go to a scratch corpus so the committed seeds stay small; -timeout flags one
  # input taking over 10 s as a hang, -rss_limit_mb and -malloc_limit_mb a memory blow-up.
  scratch="$(mktemp -d)"
  if ! cargo +nightly fuzz run "$t" "$scratch" "corpus/$t" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 \
      -max_len=65536 -print_final_stats=1 >"$scratch.log" 2>&1; then
    failed+=("$t")
    tail -n 40 "$scratch.log"
  fi
  grep -E '^#[0-9]+ +DONE|^stat::(number_of_executed_units|peak_rss_mb)' "$scratch.log" || true
  rm -rf "$scratch" "$scratch.log"
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "all targets ran ${seconds}s without a crash: ${targets[*]}"
