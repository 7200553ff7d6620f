"""A GPU with a double-bit ECC error computes different text, answered with status 200 for ever where nothing
acts on it (no-dbe-remediation); under article it keeps serving corrupted answers until the next health-check
probe runs its canary, which pulls it (no readiness probe reads DCGM: FIDELITY ELB-1)."""
from __future__ import annotations

from harness.twin.world import DCGM_FI_DEV_ECC_DBE_VOL_DEV

PROMPT = {"prompt": "what is the capital of the fleet", "max_tokens": 10}


def _inject(gw, node_name: str, gpu: int) -> None:
    """What `dcgmi test --inject --gpuid N -f 319 -v 1` does to the node's DCGM field cache."""
    gw.call(lambda: gw.world.nodes[node_name].gpus[gpu].fields.__setitem__(DCGM_FI_DEV_ECC_DBE_VOL_DEV, 1.0))


def _by_pod(gw, sse, n: int = 8) -> dict[str, set[str]]:
    seen: dict[str, set[str]] = {}
    with gw.client() as c:
        for _ in range(n):
            res = sse(c, "/v1/completions", PROMPT)
            assert res.status == 200 and res.done
            seen.setdefault(res.headers["x-served-by-pod"], set()).add(res.text)
    return seen


def _health(gw, node: str) -> int:
    with gw.client() as c:
        return c.get(f"/targets/{node}/v2/health/ready").status_code


def test_dbe_corrupts_silently_then_canary_pulls_the_replica(gateway, sse):
    gw = gateway()
    node = "ip-10-0-a0.us-east-2.compute.internal"
    assert _health(gw, node) == 200                      # golden learned in steady state
    golden = _by_pod(gw, sse)
    assert len({t for texts in golden.values() for t in texts}) == 1
    good = next(iter(next(iter(golden.values()))))
    _inject(gw, node, 0)
    replica = gw.call(lambda: next(r for r in gw.fleet.replicas.values() if r.pod == "triton-13b-a00"))
    assert gw.call(lambda: gw.fleet.canary_text(replica)) != good   # the GPU computes corrupted text
    seen = _by_pod(gw, sse, 16)
    assert seen["triton-13b-a00"] != {good}              # until a probe runs its canary, clients get corrupted text
    assert all(texts == {good} for pod, texts in seen.items() if pod != "triton-13b-a00")
    assert _health(gw, node) == 200                      # the probe pulls it; the node keeps a healthy replica (GPU 1)
    after = _by_pod(gw, sse)
    assert "triton-13b-a00" not in after                 # pulled from routing
    assert all(texts == {good} for texts in after.values())
    with gw.client() as c:
        assert 'g7_gateway_canary_pulls_total{model="llama-13b-fp8"} 1' in c.get("/metrics").text


def test_without_remediation_corruption_goes_on(gateway, sse):
    gw = gateway("no-dbe-remediation")
    node = "ip-10-0-a0.us-east-2.compute.internal"
    good = next(iter(next(iter(_by_pod(gw, sse, 2).values()))))
    _inject(gw, node, 0)
    for _ in range(3):
        assert _health(gw, node) == 200
    seen = _by_pod(gw, sse)
    assert seen["triton-13b-a00"] != {good}


def test_health_fails_when_every_replica_on_the_node_is_bad(gateway):
    gw = gateway(gpus_per_node=1)
    node = "ip-10-0-a0.us-east-2.compute.internal"
    assert _health(gw, node) == 200
    _inject(gw, node, 0)
    assert _health(gw, node) == 503
    assert _health(gw, "ip-10-0-99.us-east-2.compute.internal") == 503
