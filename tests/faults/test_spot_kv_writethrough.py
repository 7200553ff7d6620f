"""KV offload on a spot notice covers turns that finish on the node after the notice, not only the caches
that were there when it arrived: the offloader runs until the instance goes. Without it a conversation
whose turn was in flight at the notice lost its cache when the node was drained."""
from __future__ import annotations

from harness.twin import hardware
from harness.twin.serving.sessions import SessionStore


def test_turn_finishing_after_the_notice_is_offloaded_too():
    store = SessionStore()
    store.commit("early", "r1", "node-a", 1000)
    assert store.offload_node("node-a") == 1
    store.commit("in-flight", "r1", "node-a", 1500)       # finished after the notice, on the same node
    store.commit("elsewhere", "r2", "node-b", 800)
    assert store.sessions["in-flight"].where == "nvme"
    assert store.sessions["elsewhere"].where == "gpu"
    store.replica_gone("r1")
    plan = store.plan("in-flight", "r3", 1600, hardware.MODEL_13B_FP8)
    assert plan.source == "nvme" and plan.prefill_tokens == 100 and plan.restore_s > 0


def test_without_a_notice_a_drained_replica_takes_the_cache_with_it():
    store = SessionStore()
    store.commit("c", "r1", "node-a", 1500)
    store.replica_gone("r1")
    plan = store.plan("c", "r3", 1600, hardware.MODEL_13B_FP8)
    assert plan.source == "lost" and plan.prefill_tokens == 1600
