"""`python -m bench._fake_workers HOST:PORT COUNT SECONDS STREAMS`: COUNT simulated load workers for one master.

Each joins the master as a real worker does (Locust's `client_ready` carrying the token's proof, then Locust's
heartbeats), and then sends what a real worker holding STREAMS streams sends: a live report every 200 ms with the
current window's encoded HDR histograms, and that window's request records (one JSON line per finished request,
at 100-token streams 20 ms apart: STREAMS / 2.05 requests a second). No HTTP, no users: the master's side of
the messaging is what is measured (harness/load/wire.py). The token comes in G7CHAOS_LOAD_TOKEN.

Prints one JSON line: how many joined, were refused, and messages and bytes sent.
"""
from __future__ import annotations

import locust  # noqa: F401  isort: skip  (gevent's patches first, as in every load process)

import json
import os
import random
import socket
import sys
import time
import uuid

import gevent
import gevent.event
from locust import __version__ as LOCUST_VERSION
from locust.rpc import Message, rpc

from harness.load.membership import proof
from harness.load.recorder import Recorder

LIVE_EVERY_S = 0.2
REQUEST_S = 0.05 + 100 * 0.02 / 1.0        # TTFT + 100 tokens 20 ms apart


def record(worker: int, window: str) -> dict:
    now = time.time()
    return {"key": str(uuid.uuid4()), "attempt": 1, "status": 200,
            "served_by": {"x-served-by-pod": "triton-13b-0", "x-served-by-node": "ip-10-0-16-4", "x-served-by-az": "us-east-2a"},
            "ttft_ms": round(random.uniform(40, 60), 3), "tokens": 100, "tbt_max_ms": round(random.uniform(20, 24), 3),
            "digest": uuid.uuid4().hex[:16], "window": window, "t_start": now - REQUEST_S, "t_end": now, "error": None,
            "detail": None, "canary": None, "worker": worker, "session": None, "turn": None}


def worker(master: tuple[str, int], token: str, index: int, seconds: float, streams: int, sent: dict) -> None:
    client_id = f"{socket.gethostname()}_{uuid.uuid4().hex}"
    client = rpc.Client(master[0], master[1], client_id)
    client.send(Message("client_ready", {"version": LOCUST_VERSION, "proof": proof(token, client_id),
                                         "name": f"sim-{index}"}, client_id))
    answered = gevent.event.AsyncResult()          # the master's answer: "ack" or "g7_refused"

    def listen() -> None:
        while True:
            msg = client.recv()
            if msg.type in ("ack", "g7_refused"):
                answered.set(msg.type)
                if msg.type == "g7_refused":
                    return

    gevent.spawn(listen)
    answer = answered.get(timeout=30) if answered.wait(30) else None
    if answer != "ack":
        sent["refused" if answer else "unanswered"] += 1
        return
    sent["joined"] += 1
    recorder = Recorder("steady")
    rate = streams / REQUEST_S
    end = time.monotonic() + seconds
    next_beat = 0.0
    while time.monotonic() < end:
        t0 = time.monotonic()
        lines = []
        for _ in range(max(1, round(rate * LIVE_EVERY_S))):
            recorder.current.ttft.record_value(random.randint(40_000, 60_000))
            for _ in range(20):                                    # a sample of the stream's token gaps
                recorder.current.tbt.record_value(random.randint(19_000, 24_000))
            recorder.current.requests += 1
            lines.append(json.dumps(record(index, "steady"), separators=(",", ":")) + "\n")
        snap = recorder.current.snapshot()
        live = {"window": snap, "seq": 1, "degraded": None, "cpu_share": 0.3, "loop_lag_p99_ms": 1.0,
                "users": streams, "t": time.time(), "clock": {"offset_ms": 0.0, "uncertainty_ms": 0.1, "probes": 8}}
        for kind, data in (("g7_records", {"records": "".join(lines), "dropped": ""}), ("g7_live", live)):
            payload = Message(kind, data, client_id)
            client.send(payload)
            sent["messages"] += 1
            sent["bytes"] += len(payload.serialize())
        if t0 >= next_beat:
            client.send(Message("heartbeat", {"state": "running", "current_cpu_usage": 30.0,
                                              "current_memory_usage": 100_000_000}, client_id))
            next_beat = t0 + 1.0
        gevent.sleep(max(0.0, LIVE_EVERY_S - (time.monotonic() - t0)))


def main() -> int:
    host, _, port = sys.argv[1].rpartition(":")
    count, seconds, streams = int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    token = os.environ["G7CHAOS_LOAD_TOKEN"]
    sent = {"joined": 0, "refused": 0, "unanswered": 0, "messages": 0, "bytes": 0}
    gevent.joinall([gevent.spawn(worker, (host, int(port)), token, i, seconds, streams, sent) for i in range(count)],
                   timeout=seconds + 60)
    print(json.dumps(sent), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
