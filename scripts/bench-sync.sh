#!/usr/bin/env bash
# Sync benchmarks on 127.0.0.1 (no namespaces, no root needed), release build; prints a table.
#   - a fresh node syncing chains of BENCH_BLOCKS blocks (default 20000) from one peer;
#   - two nodes BENCH_FORK blocks apart since genesis (default 10000,12000) converging.
# Difficulty 1, coinbase-only blocks (see README, "Sync benchmark", for what is not yet measured).
# Environment: BENCH_BLOCKS (comma-separated), BENCH_FORK ("short,long", empty to skip),
# CARGO_TARGET_DIR as usual.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export BENCH_BLOCKS=${BENCH_BLOCKS:-20000}
export BENCH_FORK=${BENCH_FORK-10000,12000}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
timeout "${BENCH_TIMEOUT:-1800}" cargo test --release --test bench_sync -- --ignored \
    --nocapture --test-threads 1 2>/dev/null | grep -a -o 'BENCH | .*' >"$out" || true
echo "| benchmark | size | time | rate |"
echo "| --- | --- | --- | --- |"
sed -e 's/^BENCH | /| /' -e 's/$/ |/' "$out"
[[ -s $out ]]
