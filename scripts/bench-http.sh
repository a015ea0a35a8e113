#!/usr/bin/env bash
# HTTP benchmark: transfers POSTed through /api/v1 by a concurrent client, and the explorer's
# first load (the page, its assets and its first API calls) from a node with many blocks.
# Prints a table. Every step is bounded (timeout). Environment:
#   GOSSIPCHAIN_BIN   the node binary (default: target/release/gossipchain, built if missing)
#   LOAD_BIN          the load client (default: target/release/examples/http_load, built if missing)
#   BENCH_TRANSFERS   transfers per round (default 10000, the mempool's capacity)
#   BENCH_THREADS     client connections (default 32)
#   BENCH_BLOCKS      blocks for the page-load node (default 100000)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
transfers=${BENCH_TRANSFERS:-10000}
threads=${BENCH_THREADS:-32}
blocks=${BENCH_BLOCKS:-100000}
target=${CARGO_TARGET_DIR:-$root/target}
bin=${GOSSIPCHAIN_BIN:-$target/release/gossipchain}
load=${LOAD_BIN:-$target/release/examples/http_load}
if [[ ! -x $bin || ! -x $load ]]; then
    (cd "$root" && cargo build --release --bin gossipchain --example http_load)
fi

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# start_node NAME DIFFICULTY: starts a node on a free HTTP port; sets $url.
start_node() {
    local name=$1 difficulty=$2
    mkfifo "$work/$name.in"
    "$bin" --json --data-dir "$work/$name" --listen /ip4/127.0.0.1/tcp/0 --no-mdns \
        --network "bench-$name-$$" --difficulty "$difficulty" --mine-threads 1 \
        --http 127.0.0.1:0 <"$work/$name.in" >"$work/$name.out" 2>"$work/$name.err" &
    pids+=("$!")
    sleep 1000000 >"$work/$name.in" &
    pids+=("$!")
    url=""
    for _ in $(seq 100); do
        url=$(grep -o '"url":"[^"]*"' "$work/$name.out" 2>/dev/null | head -1 | cut -d'"' -f4 || true)
        [[ -n $url ]] && break
        sleep 0.1
    done
    [[ -n $url ]] || { echo "node $name did not announce its HTTP API" >&2; exit 1; }
}

mine() { # mine URL COUNT
    timeout 3600 curl -sf -X POST -H 'Content-Type: application/json' \
        -d "{\"count\":$2}" "$1/api/v1/mine" >/dev/null
}

mempool_count() {
    curl -sf "$1/api/v1/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["mempool"])'
}

# 1. Transfers: fund the node's account (50 coins a block), then rounds of $transfers POSTs,
#    each round mined away before the next (the mempool holds 10,000 transactions).
start_node load 1
load_url=$url
mine "$load_url" $(( (transfers * 2) / 50 + 2 ))
rates=()
for round in 1 2; do
    read -r accepted refused seconds rate < <(timeout 600 "$load" "${load_url#http://}" "$transfers" "$threads")
    rates+=("round $round: $accepted accepted, $refused refused in ${seconds}s = $rate/s")
    pool=$(mempool_count "$load_url")
    # Mine the round away (a block holds a few thousand transfers) before the next one.
    for _ in $(seq 10); do
        [[ $(mempool_count "$load_url") == 0 ]] && break
        mine "$load_url" 1
    done
done

# 2. The explorer's first load from a node with $blocks blocks: the page, its two assets and
#    the four API calls its script makes first, in the order the browser needs them.
start_node page 1
page_url=$url
started=$(date +%s)
# In chunks: one /api/v1/mine request is bounded by 600 s.
left=$blocks
while ((left > 0)); do
    chunk=$((left < 10000 ? left : 10000))
    mine "$page_url" "$chunk"
    left=$((left - chunk))
done
mined_in=$(( $(date +%s) - started ))
height=$(curl -sf "$page_url/api/v1/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["height"])')
from=$(( height >= 9 ? height - 9 : 0 ))
first_load() {
    local t0 t1
    t0=$(date +%s%N)
    curl -sf "$page_url/" -o /dev/null
    curl -sf "$page_url/explorer/app.css" -o /dev/null &
    curl -sf "$page_url/explorer/app.js" -o /dev/null
    wait
    curl -sf "$page_url/api/v1/status" -o /dev/null
    curl -sf "$page_url/api/v1/chain?from=$from&limit=10" -o /dev/null &
    curl -sf "$page_url/api/v1/mempool" -o /dev/null &
    curl -sf "$page_url/api/v1/tree?depth=24" -o /dev/null &
    wait
    t1=$(date +%s%N)
    echo $(( (t1 - t0) / 1000000 ))
}
loads=()
for _ in 1 2 3 4 5; do loads+=("$(first_load)"); done
best=$(printf '%s\n' "${loads[@]}" | sort -n | head -1)
median=$(printf '%s\n' "${loads[@]}" | sort -n | sed -n 3p)

printf '\n| benchmark (%s) | figure |\n| --- | --- |\n' "$(basename "$bin")"
for r in "${rates[@]}"; do
    printf '| POST /api/v1/transactions, %s keep-alive connections, %s |\n' "$threads" "${r/: / | }"
done
printf '| mempool after the last round, before mining it | %s transactions |\n' "$pool"
printf '| chain for the page load | height %s (mined in %s s) |\n' "$height" "$mined_in"
printf '| explorer first load (page, 2 assets, 4 API calls), 5 tries | median %s ms, best %s ms |\n' "$median" "$best"
