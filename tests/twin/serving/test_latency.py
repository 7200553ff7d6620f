"""At low load the client measures what the latency model states (within 10%), and the article's sanity check holds."""
from __future__ import annotations

import statistics

from harness.twin import hardware
from harness.twin.serving import latency

M13 = hardware.MODEL_13B_FP8


def test_model_constants_match_the_back_of_the_envelope():
    # ~13 GB read per token at 800 GB/s -> ~16 ms per token at batch 1
    assert 15.5e-3 < latency.stated_tbt_s(M13, 1) < 17.5e-3
    # 512-token prefill is compute bound: 2 * 13e9 * 512 / FP8 FLOPS -> tens of ms
    assert 30e-3 < latency.stated_ttft_s(M13, 512) < 50e-3
    # decode grows with batch and KV
    assert latency.stated_tbt_s(M13, 512, batch=32) > latency.stated_tbt_s(M13, 512, batch=1) * 1.3
    # the demo load (~32 streams of 512 tokens on one GPU) stays believable
    assert latency.stated_tbt_s(M13, 512, batch=32) < 50e-3


def test_tensor_parallel_pays_for_efa_and_placement():
    m = hardware.MODEL_70B_FP16
    base = latency.Interconnect(gpus_per_node=8, nodes=2)
    loaded = latency.Interconnect(gpus_per_node=8, nodes=2, efa_load=0.9)
    spread = latency.Interconnect(gpus_per_node=8, nodes=2, placement_group=False)
    t0 = latency.stated_tbt_s(m, 256, link=base)
    assert latency.stated_tbt_s(m, 256, link=loaded) > 2 * t0
    assert latency.stated_tbt_s(m, 256, link=spread) > 1.5 * t0
    assert latency.allreduce_s(m, 1, latency.Interconnect()) == 0.0


def test_low_load_ttft_and_tbt_within_ten_percent_and_article_sanity(gateway, sse):
    gw = gateway(gpus_per_node=1)
    prompt = " ".join(f"w{i}" for i in range(512 - 64))
    ttfts, gaps = [], []
    with gw.client() as c:
        sse(c, "/v1/completions", {"prompt": "warm up", "max_tokens": 2})
        for i in range(4):
            res = sse(c, "/v1/completions", {"prompt": f"{prompt} {i}", "max_tokens": 64})
            assert res.done
            ttfts.append(res.ttft)
            gaps += res.gaps
    prompt_tokens = 512 - 64 + 1
    stated_ttft = latency.stated_ttft_s(M13, prompt_tokens)
    stated_tbt = latency.stated_tbt_s(M13, prompt_tokens + 32)       # mid-sequence context
    assert abs(statistics.median(ttfts) - stated_ttft) / stated_ttft < 0.10, (ttfts, stated_ttft)
    assert abs(statistics.median(gaps) - stated_tbt) / stated_tbt < 0.10, (statistics.median(gaps), stated_tbt)
    p99 = sorted(gaps)[int(0.99 * (len(gaps) - 1))]
    assert p99 < 0.080 and max(ttfts) < 0.080            # the article: 512-token sequences, P99 < 80 ms
