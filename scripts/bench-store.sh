#!/usr/bin/env bash
# Store benchmark (bounded, no root), release build; prints a table.
#   - mining: one node on 127.0.0.1 mines BENCH_BLOCKS coinbase-only blocks (default 20000) at
#     difficulty 8 on one thread, through its console (blocks/s);
#   - long chains: tests/bench_store.rs writes coinbase-only chains straight into a data
#     directory (through the ledger and the store, as a node would), growing it to each of
#     BENCH_SIZES (default 100000,200000,1000000); at each size a node is started on it
#     BENCH_RESTARTS times (default 3): the time from process start to its first `status` reply
#     (a serving console), its RSS then, and the bytes per block over an empty node's RSS.
#
#   bash scripts/bench-store.sh
#
# GOSSIPCHAIN_BIN (default target/release/gossipchain), BENCH_BLOCKS, BENCH_SIZES (empty to
# skip), BENCH_RESTARTS and CARGO_TARGET_DIR as usual.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BIN=${GOSSIPCHAIN_BIN:-target/release/gossipchain}
BLOCKS=${BENCH_BLOCKS:-20000}
SIZES=${BENCH_SIZES-100000,200000,1000000}
RESTARTS=${BENCH_RESTARTS:-3}
cargo build --release --bin gossipchain --tests 2>/dev/null || cargo build --release --bin gossipchain --tests
[[ -x $BIN ]] || { echo "no binary at $BIN" >&2; exit 1; }
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT

python3 - "$BIN" "$BLOCKS" "$SIZES" "$RESTARTS" "$DIR" <<'PY'
import json
import os
import subprocess
import sys
import time

binary, blocks, sizes, restarts, work = sys.argv[1:6]
blocks, restarts = int(blocks), int(restarts)
sizes = [int(s) for s in sizes.split(",") if s.strip()]
NETWORK = "bench-store"


def start(data_dir):
    began = time.monotonic()
    node = subprocess.Popen(
        [binary, "--json", "--data-dir", data_dir, "--network", NETWORK,
         "--difficulty", "8", "--mine-threads", "1", "--no-mdns", "--no-http",
         "--listen", "/ip4/127.0.0.1/tcp/0"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True, bufsize=1)
    return node, began


def ask(node, line):
    node.stdin.write(line + "\n")
    node.stdin.flush()
    for out in node.stdout:
        value = json.loads(out)
        if "reply" in value:
            if not value.get("ok"):
                sys.exit(f"{line}: {value}")
            return value
    sys.exit(f"the node exited before answering {line}")


def rss_mb(node):
    with open(f"/proc/{node.pid}/status") as status:
        for row in status:
            if row.startswith("VmRSS:"):
                return int(row.split()[1]) / 1024
    return 0.0


def stop(node):
    node.stdin.write("quit\n")
    node.stdin.flush()
    node.wait(timeout=60)


def restart(data_dir):
    node, began = start(data_dir)
    status = ask(node, "status")
    row = (time.monotonic() - began, rss_mb(node), status["height"])
    stop(node)
    return row


rows = []
mined_dir = os.path.join(work, "mined")
node, _ = start(mined_dir)
ask(node, "status")
empty_rss = rss_mb(node)
began = time.monotonic()
left = blocks
while left > 0:
    step = min(left, 100000)
    ask(node, f"mine {step}")
    left -= step
mining = time.monotonic() - began
stop(node)
rows.append(f"| mining {blocks} coinbase-only blocks, difficulty 8, 1 thread | "
            f"{mining:.1f} s = {blocks / mining:,.0f} blocks/s |")
rows.append(f"| RSS of an empty node | {empty_rss:.1f} MB |")

long_dir = os.path.join(work, "long")
written = 0
for size in sizes:
    env = dict(os.environ, BENCH_STORE_DIR=long_dir,
               BENCH_STORE_BLOCKS=str(size - written), BENCH_STORE_NETWORK=NETWORK)
    began = time.monotonic()
    subprocess.run(
        ["cargo", "test", "--release", "--test", "bench_store", "--", "--ignored",
         "--nocapture"], env=env, check=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    writing = time.monotonic() - began
    written = size
    file_mb = os.path.getsize(os.path.join(long_dir, "chain.redb")) / 2**20
    rows.append(f"| chain of {size:,} blocks written straight into the store "
                f"(+{writing:.0f} s) | file {file_mb:.0f} MB |")
    for i in range(restarts):
        seconds, rss, height = restart(long_dir)
        per_block = (rss - empty_rss) * 2**20 / max(height, 1)
        rows.append(f"| restart {i + 1} at height {height:,}: to a `status` reply / RSS | "
                    f"{seconds:.3f} s / {rss:.1f} MB = {per_block:.0f} bytes per block over empty |")

print("| measure | figure |")
print("| --- | --- |")
for row in rows:
    print(row)
PY
