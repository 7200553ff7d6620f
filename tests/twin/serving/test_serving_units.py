"""The pure parts: deterministic words, the ledger's rules, the session planner, the Prometheus text."""
from __future__ import annotations

from harness.twin import hardware
from harness.twin.profiles import parse_profile
from harness.twin.serving import latency, textgen
from harness.twin.serving.idempotency import Ledger, StoredResponse, fingerprint
from harness.twin.serving.metrics import Metrics
from harness.twin.serving.sessions import SessionStore

M13 = hardware.MODEL_13B_FP8


def test_words_are_a_function_of_model_and_prompt():
    a = textgen.generate("llama-13b-fp8", "p", 20)
    assert a == textgen.generate("llama-13b-fp8", "p", 20)
    assert a != textgen.generate("llama-70b-fp16", "p", 20)
    assert a != textgen.generate("llama-13b-fp8", "q", 20)
    assert len(a.split()) == 20
    bad = textgen.generate("llama-13b-fp8", "p", 20, corrupted_by="node/GPU-0")
    assert bad != a and len(bad.split()) == 20
    hot = textgen.WordStream("llama-13b-fp8", "p", temperature=1.0)
    assert "".join(hot.next() for _ in range(20)) != a


def test_ledger_follows_the_draft():
    ledger = Ledger()
    fp = fingerprint({"a": 1, "b": [1, 2]})
    assert fp == fingerprint({"b": [1, 2], "a": 1})
    assert ledger.begin("k", fp)[0] == "execute"
    assert ledger.begin("k", fp)[0] == "conflict"
    assert ledger.begin("k", fingerprint({"a": 2}))[0] == "mismatch"
    ledger.complete("k", StoredResponse(200, {}, "application/json", [b"{}"]))
    verdict, entry = ledger.begin("k", fp)
    assert verdict == "replay" and entry is not None and entry.response is not None
    assert ledger.begin("cut", fp)[0] == "execute"
    ledger.abandon("cut")
    assert ledger.begin("cut", fp)[0] == "execute"        # a failed first attempt leaves no record


def test_ledger_is_bounded_by_bytes():
    ledger = Ledger()
    ledger.MAX_BYTES = 250
    for i in range(5):
        assert ledger.begin(f"k{i}", "fp")[0] == "execute"
        ledger.complete(f"k{i}", StoredResponse(200, {}, "text/event-stream", [b"x" * 100]))
    assert ledger.begin("k0", "fp")[0] == "execute"          # the oldest were forgotten
    assert ledger.begin("k4", "fp")[0] == "replay"


def test_session_plans():
    s = SessionStore()
    assert s.plan("c", "r1", 100, M13).source == "fresh"
    s.commit("c", "r1", "n1", 120)
    same = s.plan("c", "r1", 130, M13)
    assert (same.source, same.prefill_tokens, same.restore_s) == ("gpu", 10, 0.0)
    assert s.plan("c", "r2", 130, M13).prefill_tokens == 130          # another GPU has no cache
    s.offload_node("n1")
    s.replica_gone("r1")
    moved = s.plan("c", "r2", 130, M13)
    assert moved.source == "nvme" and moved.prefill_tokens == 10
    assert moved.restore_s == latency.kv_restore_s(M13, 120)
    s.commit("d", "r3", "n3", 50)
    s.replica_gone("r3")
    assert s.plan("d", "r4", 60, M13).source == "lost"
    assert s.affinity("d") is None and s.affinity("c") == "r1"


def test_prometheus_text():
    m = Metrics()
    m.inc("nv_inference_request_failure", model="m", version="1", reason="BACKEND")
    m.observe_first_response(30.0, model="m", version="1")
    text = m.render([("nv_inference_pending_request_count", (("model", "m"),), 2)])
    assert "# TYPE nv_inference_request_failure counter" in text
    assert 'nv_inference_request_failure{model="m",reason="BACKEND",version="1"} 1' in text
    assert 'nv_inference_first_response_histogram_ms_bucket{model="m",version="1",le="50"} 1' in text
    assert 'nv_inference_first_response_histogram_ms_bucket{model="m",version="1",le="20"} 0' in text
    assert 'nv_inference_pending_request_count{model="m"} 2' in text


def test_cold_start_follows_the_model_source():
    article = latency.cold_start_s(parse_profile("article"), hardware.MODEL_70B_FP16)
    s3 = latency.cold_start_s(parse_profile("cold-start-from-s3"), hardware.MODEL_70B_FP16)
    assert article == hardware.MODEL_LOAD_NVME_S and s3 == hardware.MODEL_LOAD_S3_S
