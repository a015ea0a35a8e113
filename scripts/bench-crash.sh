#!/usr/bin/env bash
# SIGKILL benchmark on 127.0.0.1 (no root needed): runs tests/crash.rs with CRASH_KILLS kills
# (default 50) in each situation (mining, a fresh node syncing, a reorg) and prints a table:
# kills, verify passes, and kills after which a block the node had reported as accepted was
# missing from its store. Debug build, like `cargo test`; BENCH_TIMEOUT (default 900 s) bounds
# the run. Exit status 1 if any kill broke the store or lost an accepted block.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export CRASH_KILLS=${CRASH_KILLS:-50}
out=$(mktemp)
log=$(mktemp)
trap 'rm -f "$out" "$log"' EXIT
cargo build --tests 2>/dev/null || cargo build --tests
status=0
timeout "${BENCH_TIMEOUT:-900}" cargo test --test crash -- --nocapture --test-threads 1 \
  >"$log" 2>&1 || status=$?
grep -a -o 'CRASH | .*' "$log" >"$out" || true
echo "| situation | kills | verify ok | lost accepted | notes |"
echo "| --- | --- | --- | --- | --- |"
sed -e 's/^CRASH | /| /' -e 's/$/ |/' "$out"
if ((status != 0)); then
  echo "the crash test failed (exit $status); its failures:" >&2
  grep -a -A12 'panicked' "$log" | head -60 >&2 || true
  exit 1
fi
