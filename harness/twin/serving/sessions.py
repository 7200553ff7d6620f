"""Conversations and their KV caches: why a follow-up turn is cheap, and what a spot interruption costs.

A replica that served a conversation keeps its KV cache, so the next turn prefills only the new tokens.
When the replica's node gets a spot notice, the article prescribes offloading KV caches to the node's
NVMe so whichever replica takes the conversation over restores them (a short copy) instead of
re-prefilling the whole history; without the offload the cache dies with the node and the next turn's
TTFT grows with the length of the conversation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from harness.twin.hardware import ModelSpec
from harness.twin.serving import latency

Where = Literal["gpu", "nvme", "lost"]


@dataclass
class Session:
    replica: str            # key of the replica whose GPU holds the cache
    node: str
    tokens: int             # tokens whose KV is cached (history so far, prompt + answers)
    where: Where = "gpu"


@dataclass(frozen=True)
class Plan:
    prefill_tokens: int
    restore_s: float
    source: Literal["fresh", "gpu", "nvme", "lost", "elsewhere"]


class SessionStore:
    MAX_SESSIONS = 100_000

    def __init__(self) -> None:
        self.sessions: dict[str, Session] = {}
        self.offloading: set[str] = set()   # nodes under a spot notice whose caches are written through to NVMe

    def affinity(self, conversation: str | None) -> str | None:
        """The replica that should get this conversation if it can (its KV lives there)."""
        s = self.sessions.get(conversation) if conversation else None
        return s.replica if s is not None and s.where != "lost" else None

    def plan(self, conversation: str | None, replica: str, prompt_tokens: int, model: ModelSpec) -> Plan:
        s = self.sessions.get(conversation) if conversation else None
        if s is None:
            return Plan(prompt_tokens, 0.0, "fresh")
        cached = min(s.tokens, prompt_tokens)
        new = max(1, prompt_tokens - cached)
        if s.replica == replica and s.where in ("gpu", "nvme"):
            return Plan(new, 0.0, "gpu")
        if s.where == "nvme":
            return Plan(new, latency.kv_restore_s(model, cached), "nvme")
        return Plan(prompt_tokens, 0.0, "lost" if s.where == "lost" else "elsewhere")

    def commit(self, conversation: str | None, replica: str, node: str, tokens: int) -> None:
        if not conversation:
            return
        if len(self.sessions) >= self.MAX_SESSIONS and conversation not in self.sessions:
            self.sessions.pop(next(iter(self.sessions)))
        # a turn that finishes on a node under notice is offloaded too: the offloader runs until the instance goes
        self.sessions[conversation] = Session(replica, node, tokens, "nvme" if node in self.offloading else "gpu")

    def offload_node(self, node: str) -> int:
        """Spot notice with KV offload: every cache on the node is copied to its NVMe, and so is every
        later turn that finishes there before the instance goes."""
        self.offloading.add(node)
        moved = 0
        for s in self.sessions.values():
            if s.node == node and s.where == "gpu":
                s.where = "nvme"
                moved += 1
        return moved

    def replica_gone(self, replica: str) -> None:
        """The replica's GPU memory is gone: caches that were not offloaded are lost."""
        for s in self.sessions.values():
            if s.replica == replica and s.where == "gpu":
                s.where = "lost"
