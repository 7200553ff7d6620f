"""Idempotency-Key at the gateway (IETF draft): replay, 409 in flight, 422 on mismatch; off under no-idempotency."""
from __future__ import annotations

import threading
import time


def _executions(c) -> float:
    for line in c.get("/metrics").text.splitlines():
        if line.startswith("g7_gateway_executions_total"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_replay_is_identical_and_marked(gateway, sse):
    gw = gateway()
    body = {"prompt": "pay once", "max_tokens": 5}
    with gw.client() as c:
        first = sse(c, "/v1/completions", body, headers={"Idempotency-Key": "k-1"})
        again = sse(c, "/v1/completions", body, headers={"Idempotency-Key": "k-1"})
        whole1 = c.post("/v1/completions", json={"prompt": "json once", "max_tokens": 3}, headers={"Idempotency-Key": "k-2"})
        whole2 = c.post("/v1/completions", json={"prompt": "json once", "max_tokens": 3}, headers={"Idempotency-Key": "k-2"})
        executions = _executions(c)
        replays = c.get("/metrics").text
    assert first.done and again.done
    assert again.headers.get("idempotent-replayed") == "true"
    assert "idempotent-replayed" not in first.headers
    assert [e["id"] for e in again.events] == [e["id"] for e in first.events]
    assert again.text == first.text
    assert whole2.json() == whole1.json() and whole2.headers["idempotent-replayed"] == "true"
    assert executions == 2
    assert 'g7_gateway_idempotent_replays_total{model="llama-13b-fp8"} 2' in replays


def test_conflict_while_in_flight_and_mismatch(gateway, sse):
    gw = gateway()
    body = {"prompt": "slow one", "max_tokens": 40}
    results = {}
    with gw.client() as c:
        t = threading.Thread(target=lambda: results.setdefault("first", sse(gw.client(), "/v1/completions", body,
                                                                              headers={"Idempotency-Key": "k-3"})))
        t.start()
        deadline = time.monotonic() + 5                  # the first attempt is streaming
        while not any(r.stats.tokens >= 2 for r in list(gw.fleet.replicas.values())) and time.monotonic() < deadline:
            time.sleep(0.005)
        conflict = c.post("/v1/completions", json={**body, "stream": True}, headers={"Idempotency-Key": "k-3"})
        mismatch = c.post("/v1/completions", json={**body, "stream": True, "max_tokens": 41}, headers={"Idempotency-Key": "k-3"})
        t.join(10)
        after = sse(c, "/v1/completions", body, headers={"Idempotency-Key": "k-3"})
    assert conflict.status_code == 409
    assert mismatch.status_code == 422
    assert results["first"].done
    assert after.headers.get("idempotent-replayed") == "true" and after.text == results["first"].text


def test_no_idempotency_executes_every_retry(gateway, sse):
    gw = gateway("no-idempotency")
    body = {"prompt": "pay twice", "max_tokens": 3}
    with gw.client() as c:
        for _ in range(3):
            res = sse(c, "/v1/completions", body, headers={"Idempotency-Key": "same"})
            assert res.done and "idempotent-replayed" not in res.headers
        assert _executions(c) == 3
