#!/usr/bin/env bash
# Sync benchmarks on 127.0.0.1 (no namespaces, no root needed), release build; prints a table.
#   - a fresh node syncing chains of BENCH_BLOCKS coinbase-only blocks (default 20000);
#   - a fresh node syncing chains of signed transfers, BENCH_SIGNED shapes
#     (blocks x transfers per block, default "20000x1,1000x1000"), fully validated;
#   - two nodes BENCH_FORK blocks apart since genesis (default 10000,12000) converging;
#   - with SEED_PY set to a copy of the Flask seed's blockchain.py (dvf/blockchain, not part of
#     this repository) and SEED_PYTHON to a python with flask and requests (default python3),
#     the seed's own /nodes/resolve on the same BENCH_SIGNED shapes, in the same run.
# Sync times run from the dial (the seed: from the GET /nodes/resolve) to the adopted tip.
# Environment: BENCH_BLOCKS, BENCH_SIGNED, BENCH_FORK (empty to skip each), SEED_PY,
# SEED_PYTHON, CARGO_TARGET_DIR as usual.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export BENCH_BLOCKS=${BENCH_BLOCKS-20000}
export BENCH_SIGNED=${BENCH_SIGNED-20000x1,1000x1000}
export BENCH_FORK=${BENCH_FORK-10000,12000}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
cargo build --release --tests 2>/dev/null || cargo build --release --tests
if [[ -n ${SEED_PY:-} ]]; then
  IFS=, read -ra shapes <<<"$BENCH_SIGNED"
  for shape in "${shapes[@]}"; do
    "${SEED_PYTHON:-python3}" scripts/lib/seed_sync.py "$SEED_PY" "${shape%x*}" "${shape#*x}" \
      | grep -a -o 'BENCH | .*' >>"$out" || echo "seed run failed for $shape" >&2
  done
fi
timeout "${BENCH_TIMEOUT:-1800}" cargo test --release --test bench_sync -- --ignored \
    --nocapture --test-threads 1 2>/dev/null | grep -a -o 'BENCH | .*' >>"$out" || true
echo "| benchmark | size | time | rate |"
echo "| --- | --- | --- | --- |"
sed -e 's/^BENCH | /| /' -e 's/$/ |/' "$out"
[[ -s $out ]]
