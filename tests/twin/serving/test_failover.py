"""Losing an AZ: in-flight streams there are cut; the article's NLB fails over, a stretched cluster keeps hanging."""
from __future__ import annotations

import threading
import time

import httpx


def _lose_az(gw, az: str) -> None:
    def run() -> None:
        for node in gw.world.nodes_in(az):
            node.network_reachable = False
    gw.call(run)


def _nlb_detects(gw) -> None:
    """What the NLB model does after NLB_UNHEALTHY_THRESHOLD failed probes of each target."""
    with gw.client(timeout=2) as c:
        for name in list(gw.world.nodes):
            ok = c.get(f"/targets/{name}/v2/health/ready").status_code == 200
            gw.call(lambda name=name, ok=ok: gw.world.target_health.__setitem__(name, "healthy" if ok else "unhealthy"))


def _attempts(gw, n: int, timeout: float) -> list[str]:
    """Send n short requests with a client timeout; return the AZ that served each, or 'timeout'."""
    out = []
    with gw.client(timeout=timeout) as c:
        for i in range(n):
            try:
                r = c.post("/v1/completions", json={"prompt": f"after loss {i}", "max_tokens": 2})
                out.append(r.headers.get("x-served-by-az", str(r.status_code)))
            except httpx.TimeoutException:
                out.append("timeout")
    return out


def _streams_during_loss(gw, sse) -> list:
    results: list = []
    def one(i: int) -> None:
        with gw.client() as c:
            results.append(sse(c, "/v1/completions", {"prompt": f"long {i}", "max_tokens": 60}))
    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5                      # every replica has a stream in flight
    while not all(r.stats.tokens >= 2 for r in list(gw.fleet.replicas.values())) and time.monotonic() < deadline:
        time.sleep(0.005)
    _lose_az(gw, "us-east-2a")
    for t in threads:
        t.join(10)
    return results


def test_article_fails_over_after_detection(gateway, sse):
    gw = gateway()
    results = _streams_during_loss(gw, sse)
    by_az = {r.headers["x-served-by-az"]: r for r in results}
    cut = [r for r in results if r.headers["x-served-by-az"] == "us-east-2a"]
    assert cut and all(not r.done for r in cut)              # closed without [DONE]
    assert all(r.done for r in results if r.headers["x-served-by-az"] == "us-east-2b")
    assert "us-east-2b" in by_az
    _nlb_detects(gw)
    assert gw.world.target_health["ip-10-0-a0.us-east-2.compute.internal"] == "unhealthy"
    assert _attempts(gw, 6, timeout=2.0) == ["us-east-2b"] * 6


def test_single_multi_az_cluster_keeps_sending_to_the_lost_az(gateway, sse):
    gw = gateway("single-multi-az-cluster")
    _streams_during_loss(gw, sse)
    _nlb_detects(gw)
    outcomes = _attempts(gw, 6, timeout=0.5)
    assert "timeout" in outcomes
    assert "us-east-2b" in outcomes


def test_zonal_shift_routes_away(gateway):
    gw = gateway()
    gw.call(lambda: gw.world.zonal_shift_away.add("us-east-2a"))
    assert _attempts(gw, 4, timeout=2.0) == ["us-east-2b"] * 4
