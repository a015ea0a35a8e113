#!/usr/bin/env bash
# Store benchmark (bounded, no root): one node on 127.0.0.1 mines BENCH_BLOCKS coinbase-only
# blocks at difficulty 8 on one thread (blocks/s, one store commit per block), quits, and is
# started again BENCH_RESTARTS times: the time from process start to its first `status` reply
# (a serving console) and its RSS then. Prints a table.
#
#   GOSSIPCHAIN_BIN=target/release/gossipchain bash scripts/bench-store.sh
#
# BENCH_BLOCKS (default 100000) and BENCH_RESTARTS (default 3) change the sizes.
set -euo pipefail

BIN=${GOSSIPCHAIN_BIN:-target/release/gossipchain}
BLOCKS=${BENCH_BLOCKS:-100000}
RESTARTS=${BENCH_RESTARTS:-3}
[[ -x $BIN ]] || { echo "no binary at $BIN (cargo build --release)" >&2; exit 1; }
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT

python3 - "$BIN" "$BLOCKS" "$RESTARTS" "$DIR" <<'PY'
import json
import subprocess
import sys
import time

binary, blocks, restarts, data_dir = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]


def start():
    began = time.monotonic()
    node = subprocess.Popen(
        [binary, "--json", "--data-dir", data_dir, "--network", "bench-store",
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


node, _ = start()
ask(node, "status")
empty_rss = rss_mb(node)
began = time.monotonic()
left = blocks
while left > 0:
    step = min(left, 100000)
    ask(node, f"mine {step}")
    left -= step
mining = time.monotonic() - began
height = ask(node, "status")["height"]
mined_rss = rss_mb(node)
stop(node)

rows = []
for _ in range(restarts):
    node, began = start()
    status = ask(node, "status")
    rows.append((time.monotonic() - began, rss_mb(node), status["height"]))
    stop(node)

print(f"| measure | figure |")
print(f"| --- | --- |")
print(f"| mining {blocks} coinbase-only blocks, difficulty 8, 1 thread | {mining:.1f} s = {blocks / mining:,.0f} blocks/s |")
print(f"| RSS empty node / after mining (height {height}) | {empty_rss:.0f} MB / {mined_rss:.0f} MB |")
for i, (seconds, rss, h) in enumerate(rows, 1):
    print(f"| restart {i} to a `status` reply at height {h} | {seconds:.3f} s, RSS {rss:.0f} MB |")
PY
