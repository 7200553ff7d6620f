"""Faults as clients feel them: a stopped replica, a draining pod, a powered-off node, thermal throttling, EFA load."""
from __future__ import annotations

import statistics
import threading
import time


from harness.twin import hardware
from harness.twin.kube.store import resource
from harness.twin.serving import latency
from harness.twin.world import DCGM_FI_DEV_GPU_TEMP
from support.polling import wait_for

PODS = resource("pods")
NODE_A = "ip-10-0-a0.us-east-2.compute.internal"
NODE_B = "ip-10-0-b0.us-east-2.compute.internal"


def _only_az_a(gw) -> None:
    gw.call(lambda: gw.world.target_health.__setitem__(NODE_B, "unhealthy"))


def _in_thread(gw, sse, body: dict) -> tuple[threading.Thread, dict]:
    box: dict = {}
    def run() -> None:
        with gw.client() as c:
            box["res"] = sse(c, "/v1/completions", body)
    t = threading.Thread(target=run)
    t.start()
    return t, box


def _wait_tokens(gw, pod: str, n: int) -> None:
    """Wait until the pod's replica has emitted n tokens (a stream is really in flight)."""
    wait_for(lambda: any(r.pod == pod and r.stats.tokens >= n for r in list(gw.fleet.replicas.values())), 5,
             f"{pod} to emit {n} tokens", interval=0.005)


def test_stop_freezes_streams_and_cont_resumes(gateway, sse):
    gw = gateway(gpus_per_node=1)
    _only_az_a(gw)
    t, box = _in_thread(gw, sse, {"prompt": "stall me", "max_tokens": 20})
    _wait_tokens(gw, "triton-13b-a00", 3)
    assert gw.call(lambda: gw.fleet.freeze("triton-13b-a00", True))
    t2, box2 = _in_thread(gw, sse, {"prompt": "new while stopped", "max_tokens": 3})
    time.sleep(0.5)
    assert gw.call(lambda: gw.fleet.freeze("triton-13b-a00", False))
    t.join(10), t2.join(10)
    res, res2 = box["res"], box2["res"]
    assert res.done and len(res.events) == 20
    assert max(res.gaps) > 0.4                                 # hung mid-stream for the stop
    # a new request hangs before its first token (TTFT is from its send, which its thread may make up to a few
    # hundred ms into the 0.5 s stop on a busy machine; an unfrozen replica answers in tens of ms)
    assert res2.done and res2.ttft > 0.25
    assert gw.call(lambda: gw.fleet.freeze("triton-no-such-pod", True)) is False


def test_stopped_replicas_fail_the_node_health_check(gateway):
    gw = gateway(gpus_per_node=1)
    gw.call(lambda: gw.fleet.freeze("triton-13b-a00", True))
    with gw.client() as c:
        assert c.get(f"/targets/{NODE_A}/v2/health/ready").status_code == 503
        assert c.get(f"/targets/{NODE_B}/v2/health/ready").status_code == 200


def test_draining_pod_finishes_in_flight_and_takes_no_new(gateway, sse):
    gw = gateway(gpus_per_node=1)
    _only_az_a(gw)
    t, box = _in_thread(gw, sse, {"prompt": "finish me", "max_tokens": 25})
    _wait_tokens(gw, "triton-13b-a00", 3)
    gw.call(lambda: gw.world.clusters["g7-use2a"].store.mutate(
        PODS, "inference", "triton-13b-a00",
        lambda p: p["metadata"].__setitem__("deletionTimestamp", "2026-01-01T00:00:00Z")))
    gw.call(lambda: gw.world.target_health.__setitem__(NODE_B, "healthy"))
    with gw.client() as c:
        new = sse(c, "/v1/completions", {"prompt": "elsewhere", "max_tokens": 2})
    t.join(10)
    assert box["res"].done and len(box["res"].events) == 25
    assert new.headers["x-served-by-pod"] == "triton-13b-b00"


def test_pod_deleted_or_node_powered_off_cuts_streams(gateway, sse):
    gw = gateway(gpus_per_node=1)
    _only_az_a(gw)
    t, box = _in_thread(gw, sse, {"prompt": "power cut", "max_tokens": 40})
    whole: dict = {}
    def plain() -> None:
        with gw.client() as c:
            whole["resp"] = c.post("/v1/completions", json={"prompt": "plain", "max_tokens": 40})
    t2 = threading.Thread(target=plain)
    t2.start()
    # both requests decoding on the one replica before the power goes (a thread that started late on a busy
    # machine would otherwise send after the cut and meet a 503, not a cut stream)
    wait_for(lambda: gw.call(lambda: any(r.pod == "triton-13b-a00" and len(r.active) == 2 and r.stats.tokens >= 6
                                         for r in list(gw.fleet.replicas.values()))),
             5, "both streams decoding on triton-13b-a00", interval=0.005)
    gw.call(lambda: setattr(gw.world.nodes[NODE_A], "power", "stopped"))
    t.join(10), t2.join(10)
    res = box["res"]
    assert res.status == 200 and not res.done and 0 < len(res.events) < 40
    assert whole["resp"].status_code == 502            # the gateway's upstream died mid-request
    with gw.client() as c:
        assert c.post("/v1/completions", json={"prompt": "x", "max_tokens": 1}).status_code == 503
        assert 'g7_gateway_streams_cut_total{model="llama-13b-fp8"} 2' in c.get("/metrics").text


def _median_gap(gw, sse, body: dict) -> float:
    with gw.client() as c:
        return statistics.median(sse(c, "/v1/completions", body).gaps)


def test_thermal_throttle_slows_decode(gateway, sse):
    gw = gateway(gpus_per_node=1)
    _only_az_a(gw)
    body = {"prompt": "hot", "max_tokens": 15}
    cool = _median_gap(gw, sse, body)
    gw.call(lambda: gw.world.nodes[NODE_A].gpus[0].fields.__setitem__(DCGM_FI_DEV_GPU_TEMP, 91.0))
    hot = _median_gap(gw, sse, body)
    expected = hardware.GPU_SM_CLOCK_MHZ / hardware.GPU_SM_CLOCK_THROTTLED_MHZ
    assert abs(hot / cool - expected) / expected < 0.1, (cool, hot)


def test_an_injected_temperature_does_not_slow_decode(gateway, sse):
    """`dcgmi test --inject` of 95 C writes DCGM's cache only: the GPU keeps its clock, the streams their pace."""
    import time
    gw = gateway(gpus_per_node=1)
    _only_az_a(gw)
    body = {"prompt": "warm", "max_tokens": 15}
    cool = _median_gap(gw, sse, body)
    gw.call(lambda: gw.world.nodes[NODE_A].gpus[0].inject(DCGM_FI_DEV_GPU_TEMP, 95.0, time.time() + 3600))
    assert gw.call(lambda: gw.world.nodes[NODE_A].gpus[0].value(DCGM_FI_DEV_GPU_TEMP)) == 95.0
    injected = _median_gap(gw, sse, body)
    assert abs(injected / cool - 1.0) < 0.1, (cool, injected)


def _tp_gap(profile: str, gateway, sse, efa_load: float = 0.0) -> float:
    gw = gateway(profile, gpus_per_node=1, tp70b=True)
    for k in range(2):
        gw.call(lambda k=k: setattr(gw.world.nodes[f"ip-10-0-7{k}.us-east-2.compute.internal"], "efa_load", efa_load))
    with gw.client() as c:
        res = sse(c, "/v1/completions", {"model": "llama-70b-fp16", "prompt": "tp", "max_tokens": 10})
    assert res.done and res.headers["x-served-by-pod"] == "triton-70b-0"
    return statistics.median(res.gaps)


def test_tensor_parallel_over_efa_slows_with_load_and_without_placement_group(gateway, sse):
    m = hardware.MODEL_70B_FP16
    calm = _tp_gap("article", gateway, sse)
    stated = latency.stated_tbt_s(m, 12, link=latency.Interconnect(gpus_per_node=8, nodes=2))
    assert abs(calm - stated) / stated < 0.1
    loaded = _tp_gap("article", gateway, sse, efa_load=0.9)
    spread = _tp_gap("no-placement-group", gateway, sse)
    assert loaded > 2 * calm
    assert spread > 1.5 * calm


def test_client_that_leaves_frees_its_batch_slot(gateway):
    gw = gateway(gpus_per_node=1)
    _only_az_a(gw)
    with gw.client() as c:
        with c.stream("POST", "/v1/completions", json={"prompt": "bye", "max_tokens": 200, "stream": True}) as resp:
            lines = resp.iter_lines()
            assert next(line for line in lines if line.startswith("data: "))
    replica = next(r for r in gw.fleet.replicas.values() if r.pod == "triton-13b-a00")
    wait_for(lambda: replica.load == 0, 2, "the replica to let go of the abandoned stream", interval=0.02)
    assert replica.stats.tokens < 50
