"""A plain HTTP client streams from the gateway: SSE to [DONE], deterministic text, attribution, stamps."""
from __future__ import annotations

import time


def test_stream_ends_with_done_and_is_deterministic(gateway, sse):
    gw = gateway()
    with gw.client() as c:
        body = {"model": "llama-13b-fp8", "prompt": "Explain spot interruptions in two lines", "max_tokens": 12}
        first = sse(c, "/v1/completions", body)
        second = sse(c, "/v1/completions", body)
        other = sse(c, "/v1/completions", {**body, "prompt": "Something else entirely"})
    assert first.status == 200 and first.done and first.error is None
    assert len(first.events) == 12
    assert first.events[-1]["choices"][0]["finish_reason"] == "length"
    assert first.text == second.text
    assert other.text != first.text
    assert first.headers["x-served-by-pod"].startswith("triton-13b-")
    assert first.headers["x-served-by-node"].startswith("ip-10-0-")
    assert first.headers["x-served-by-az"] in ("us-east-2a", "us-east-2b")


def test_chat_and_non_streaming_agree(gateway, sse):
    gw = gateway()
    with gw.client() as c:
        msgs = [{"role": "user", "content": "hello there"}]
        streamed = sse(c, "/v1/chat/completions", {"messages": msgs, "max_tokens": 6})
        whole = c.post("/v1/chat/completions", json={"messages": msgs, "max_tokens": 6})
        models = c.get("/v1/models").json()
        ready = c.get("/health/ready")
    assert streamed.done
    assert streamed.events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert whole.status_code == 200
    data = whole.json()
    assert data["choices"][0]["message"]["content"] == streamed.text
    assert data["usage"]["completion_tokens"] == 6
    assert {m["id"] for m in models["data"]} == {"llama-13b-fp8"}
    assert ready.status_code == 200


def test_unknown_model_is_404_and_bad_body_400(gateway):
    gw = gateway()
    with gw.client() as c:
        assert c.post("/v1/completions", json={"model": "gpt-9", "prompt": "x"}).status_code == 404
        assert c.post("/v1/completions", content=b"{not json").status_code == 400


def test_stamp_header_carries_server_send_time(gateway, sse):
    gw = gateway()
    with gw.client() as c:
        before = time.time()
        res = sse(c, "/v1/completions", {"prompt": "stamp me", "max_tokens": 5}, headers={"x-g7-stamp": "1"})
        plain = sse(c, "/v1/completions", {"prompt": "stamp me", "max_tokens": 5})
    stamps = [e["server_send_ts"] for e in res.events]
    assert all(before <= s <= time.time() for s in stamps)
    assert stamps == sorted(stamps)
    added = sorted(e["server_send_ts"] - e["server_due_ts"] for e in res.events)
    assert -0.002 < added[len(added) // 2] < 0.005            # tokens leave on their due time
    assert "server_send_ts" not in plain.events[0]


def test_metrics_use_triton_names(gateway, sse):
    gw = gateway()
    with gw.client() as c:
        sse(c, "/v1/completions", {"prompt": "count me", "max_tokens": 3})
        text = c.get("/metrics").text
    assert 'nv_inference_request_success{model="llama-13b-fp8",version="1"} 1' in text
    assert 'nv_inference_count{model="llama-13b-fp8",version="1"} 1' in text
    assert "nv_inference_queue_duration_us" in text
    assert 'g7_gateway_executions_total{model="llama-13b-fp8"} 1' in text
    assert "nv_inference_first_response_histogram_ms_bucket" in text
