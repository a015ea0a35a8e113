#!/usr/bin/env python3
"""JSON helper for the gossipchain scripts (Python 3 standard library only).

The node's `--json` console writes one JSON object per line on stdout; the shell scripts
append that to a log file and use this helper to find replies and read fields, so that they
need no jq.

  gcjson.py wait-reply FILE OFFSET WORD TIMEOUT [PID]
      Print the first complete line after byte OFFSET of FILE that is a JSON object whose
      "reply" is WORD. Exit 0 if its "ok" is true, 1 if false, 2 on timeout, 3 if PID died.
  gcjson.py get PATH...            (JSON object on stdin)
      Print each PATH on its own line: `a.b`, `list[].field` (list items joined by spaces),
      `list#` (length). Missing values print as an empty line; strings print bare.
  gcjson.py count-events FILE EVENT [OFFSET]
      Count lines of FILE (after byte OFFSET) whose "event" is EVENT.
  gcjson.py events FILE EVENT [OFFSET]
      Print those lines.
  gcjson.py follow FILE [PID]
      Print the event lines (not the replies) appended to FILE from now on, until PID exits
      (or forever); an interactive console prints its own replies.
"""

import json
import os
import sys
import time


def lines_after(path, offset):
    """Complete lines (ending in a newline) of `path` after byte `offset`, and the new offset."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except OSError:
        return [], offset
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    chunk = data[: end + 1]
    return chunk.decode("utf-8", "replace").splitlines(), offset + end + 1


def parse(line):
    """The line as a JSON object, or None."""
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def alive(pid):
    """Whether process `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    # The state follows the command name, which is in parentheses and may hold spaces.
    state = stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3]
    return state not in (b"Z", b"X", b"")


def wait_reply(path, offset, word, timeout, pid):
    deadline = time.monotonic() + timeout
    pos = offset
    while True:
        lines, pos = lines_after(path, pos)
        for line in lines:
            obj = parse(line)
            if obj is not None and obj.get("reply") == word:
                print(line, flush=True)
                return 0 if obj.get("ok") is True else 1
        if pid and not alive(pid):
            # One last look: the reply may have been written just before the exit.
            lines, pos = lines_after(path, pos)
            for line in lines:
                obj = parse(line)
                if obj is not None and obj.get("reply") == word:
                    print(line, flush=True)
                    return 0 if obj.get("ok") is True else 1
            return 3
        if time.monotonic() >= deadline:
            return 2
        time.sleep(0.05)


def follow(path, pid):
    try:
        pos = os.path.getsize(path)
    except OSError:
        pos = 0
    while not pid or alive(pid):
        lines, pos = lines_after(path, pos)
        for line in lines:
            obj = parse(line)
            if obj is None or "reply" not in obj:
                print("  * " + line, flush=True)
        time.sleep(0.1)
    return 0


def lookup(value, path):
    """Follow `path` (dot separated; `name[]` maps over a list; `name#` is a length)."""
    if path == "":
        return value
    head, _, rest = path.partition(".")
    if head.endswith("#"):
        item = value.get(head[:-1]) if isinstance(value, dict) else None
        return len(item) if isinstance(item, (list, dict, str)) else None
    if head.endswith("[]"):
        items = value.get(head[:-2]) if isinstance(value, dict) else None
        if not isinstance(items, list):
            return None
        out = []
        for item in items:
            sub = lookup(item, rest)
            if isinstance(sub, list):
                out.extend(sub)
            elif sub is not None:
                out.append(sub)
        return out
    item = value.get(head) if isinstance(value, dict) else None
    if item is None:
        return None
    return lookup(item, rest) if rest else item


def show(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return " ".join(show(v) for v in value)
    if isinstance(value, (dict,)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 64
    cmd = argv[1]
    if cmd == "wait-reply" and len(argv) in (6, 7):
        pid = int(argv[6]) if len(argv) == 7 and argv[6] else 0
        return wait_reply(argv[2], int(argv[3]), argv[4], float(argv[5]), pid)
    if cmd == "follow" and len(argv) in (3, 4):
        return follow(argv[2], int(argv[3]) if len(argv) == 4 else 0)
    if cmd == "get":
        text = sys.stdin.read().strip().splitlines()
        obj = (parse(text[0]) if text else None) or {}
        for path in argv[2:]:
            print(show(lookup(obj, path)))
        return 0
    if cmd in ("count-events", "events") and len(argv) in (4, 5):
        offset = int(argv[4]) if len(argv) == 5 else 0
        lines, _ = lines_after(argv[2], offset)
        hits = [l for l in lines if (parse(l) or {}).get("event") == argv[3]]
        if cmd == "count-events":
            print(len(hits))
        else:
            for line in hits:
                print(line)
        return 0
    print(__doc__, file=sys.stderr)
    return 64


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
