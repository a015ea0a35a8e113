#!/usr/bin/env bash
# Hostile-peer benchmarks on 127.0.0.1 (no namespaces, no root needed), release build; prints
# one table row per target of issue 10 with the figure, the target and whether it was met:
#   A. a peer publishing BENCH_FLOOD="secs,blocks per second,transfers per block" (default
#      20,20,2000) blocks of validly signed transfers, three hours ahead, then (a second node)
#      on side branches with transfers no state could pay for: the node's CPU time and peak
#      RSS growth during the flood, p99 of `status` on its console every 50 ms, and the slowest
#      honest block's way from another node's miner to it;
#   B. one peer keeping as many GetBlocks of 128 hashes open as the node allows on its two
#      connections, never reading the answers, for BENCH_UNREAD="secs,blocks,transfers"
#      (default 15,24,4500: answers of about 2 MiB): peak RSS growth, and a fresh honest
#      node's sync during it;
#   C. BENCH_IDENTITIES (default 1000) throwaway identities connecting and misbehaving, then a
#      --peer peer and a new peer connecting and syncing.
# CPU and memory come from /proc/<pid>/stat and /proc/<pid>/status of the node process.
# Environment: BENCH_FLOOD, BENCH_UNREAD, BENCH_IDENTITIES, BENCH_TIMEOUT (seconds for the
# whole run, default 900), CARGO_TARGET_DIR as usual.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export BENCH_FLOOD=${BENCH_FLOOD-20,20,2000}
export BENCH_UNREAD=${BENCH_UNREAD-15,24,4500}
export BENCH_IDENTITIES=${BENCH_IDENTITIES-1000}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
cargo build --release --tests 2>/dev/null || cargo build --release --tests
timeout "${BENCH_TIMEOUT:-900}" cargo test --release --test bench_hostile -- --ignored \
    --nocapture --test-threads 1 2>/dev/null | grep -a -o 'BENCH | .*' >>"$out" || true
echo "| scenario | figures | target | result |"
echo "| --- | --- | --- | --- |"
sed -e 's/^BENCH | /| /' "$out"
[[ -s $out ]]
