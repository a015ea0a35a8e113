#!/usr/bin/env python3
"""Times the Flask seed's sync in the seed's own workflow, for scripts/bench-sync.sh.

The seed (dvf/blockchain's blockchain.py, "the simple blockchain API" tutorial) is not part of
this repository: pass the path of a copy. Two seed nodes run as separate processes on
127.0.0.1: a source holding a chain of BLOCKS blocks of TRANSFERS transfers each, and a fresh
one. The fresh node registers the source (POST /nodes/register) and GET /nodes/resolve is timed:
it downloads the whole chain in one GET, checks each block's hash link and proof, and adopts it.

The seed's proof check is one SHA-256 per block; only its target is lowered (one leading hex
zero instead of four) so that building 20,000 blocks takes seconds instead of hours. Its
output (it prints every block it validates) goes to /dev/null.

Usage: seed_sync.py SEED_PY BLOCKS TRANSFERS
Prints: BENCH | seed fresh sync | <blocks> blocks x <transfers> transfers | <s> s | <rate>
"""

import hashlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request


def load_seed(path):
    spec = importlib.util.spec_from_file_location("seed_blockchain", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def valid_proof(last_proof, proof, last_hash):
        guess = f"{last_proof}{proof}{last_hash}".encode()
        return hashlib.sha256(guess).hexdigest()[:1] == "0"

    module.Blockchain.valid_proof = staticmethod(valid_proof)
    return module


def serve(path, port, blocks, transfers):
    """Runs one seed node holding `blocks` mined blocks (genesis included in the seed's count)."""
    seed = load_seed(path)
    chain = seed.blockchain
    for i in range(blocks):
        for t in range(transfers):
            chain.new_transaction(sender="bench", recipient=f"r{i}-{t}", amount=1)
        proof = chain.proof_of_work(chain.last_block)
        chain.new_transaction(sender="0", recipient=seed.node_identifier, amount=1)
        chain.new_block(proof)
    seed.app.run(host="127.0.0.1", port=port, threaded=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url, body=None, timeout=600):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


def wait_up(url, deadline):
    while time.time() < deadline:
        try:
            return request(url + "/chain", timeout=30)
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"seed node at {url} did not come up")


def main():
    if len(sys.argv) == 6 and sys.argv[1] == "--serve":
        serve(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
        return
    if len(sys.argv) != 4:
        raise SystemExit("usage: seed_sync.py SEED_PY BLOCKS TRANSFERS")
    path, blocks, transfers = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    ports = free_port(), free_port()
    procs = []
    try:
        for port, n in zip(ports, (blocks, 0)):
            procs.append(
                subprocess.Popen(
                    [sys.executable, __file__, "--serve", path, str(port), str(n), str(transfers)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        source, fresh = (f"http://127.0.0.1:{p}" for p in ports)
        deadline = time.time() + 600
        length = wait_up(source, deadline)["length"]
        wait_up(fresh, deadline)
        request(fresh + "/nodes/register", {"nodes": [source]})
        started = time.perf_counter()
        reply = request(fresh + "/nodes/resolve")
        secs = time.perf_counter() - started
        if reply.get("message") != "Our chain was replaced" or len(reply["new_chain"]) != length:
            raise SystemExit(f"the seed did not adopt the chain: {reply.get('message')}")
        print(
            f"BENCH | seed fresh sync | {length} blocks x {transfers} transfers | {secs:.2f} s | "
            f"{length / secs:.0f} blocks/s, {length * transfers / secs:.0f} transfers/s"
        )
    finally:
        for p in procs:
            p.kill()
            p.wait()


if __name__ == "__main__":
    main()
