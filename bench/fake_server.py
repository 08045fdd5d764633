"""Runs the Cartesia fake (``testkit/cartesia_server.py``) in its own process for the bench.

Its own process so the server's threads do not share the GIL with the Dagster run being
measured. Prints one JSON line ``{"base_url": ...}`` once listening on 127.0.0.1, then answers
commands read from stdin, one per line, with one JSON line each:
``stats`` (max requests in flight, statuses), ``reset``, ``quit``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter

from bench.common import PROJECT_ROOT


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency", type=float, default=0.3)
    ap.add_argument("--cap", type=int, default=3)
    ap.add_argument("--key", default="bench-key")
    args = ap.parse_args(argv)
    if str(PROJECT_ROOT) not in sys.path:
        sys.path.insert(0, str(PROJECT_ROOT))
    from testkit.cartesia_server import FakeCartesia

    fake = FakeCartesia(api_key=args.key, latency_s=args.latency, concurrency_cap=args.cap).start()
    try:
        print(json.dumps({"base_url": fake.base_url}), flush=True)
        for line in sys.stdin:
            cmd = line.strip()
            if cmd == "stats":
                reqs = fake.tts_requests
                statuses = Counter(str(r.status) for r in reqs)
                print(json.dumps({"max_in_flight": fake.max_in_flight, "tts_requests": len(reqs), "statuses": dict(statuses)}), flush=True)
            elif cmd == "reset":
                fake.reset()
                print(json.dumps({"ok": True}), flush=True)
            elif cmd == "quit":
                print(json.dumps({"ok": True}), flush=True)
                break
            else:
                print(json.dumps({"error": f"unknown command {cmd!r}"}), flush=True)
    finally:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
