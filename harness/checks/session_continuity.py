"""session-continuity: conversations that straddle the fault keep their context, so a follow-up turn served
by another replica does not pay a full re-prefill of the history.

The evidence is client-side only, as on any real deployment: the load generator's per-request records
(`session`, `turn`, `ttft_ms`, start time and the served-by headers). A conversation straddles the fault
when a turn of it was served by a node the fault touched and a later follow-up, started after the fault
landed, was served by another node. Its first such follow-up is compared with the follow-ups served before
the fault: restoring an offloaded KV cache costs milliseconds, re-prefilling thousands of tokens of history
costs a large multiple of a cached turn's TTFT. Only follow-ups with at least MIN_HISTORY_TURNS finished
turns behind them are judged, because a short history re-prefills about as fast as it restores.

The reference is the slower of two medians that paid no re-prefill: the follow-ups before the fault, and the
follow-ups of conversations that did not move, served while the moved ones were (at least MIN_CONCURRENT of
them). The second one keeps what slows every request alike after the fault (a fleet one node smaller, a busy
load generator) from reading as lost context, while a re-prefill still shows as a multiple of both.
"""
from __future__ import annotations

import statistics
from typing import Any

from pydantic import Field

from harness.checks.base import Check, Evidence, register
from harness.strict.params import CheckParams

MIN_HISTORY_TURNS = 2      # a follow-up with fewer finished turns has too little history to tell
MIN_CONCURRENT = 3         # follow-ups that stayed put, alongside the moved ones, for a median worth comparing


def _ok(record: dict[str, Any]) -> bool:
    return record.get("error") is None and record.get("ttft_ms") is not None and record.get("canary") is None


def _served_on(record: dict[str, Any], nodes: set[str]) -> bool:
    return any(value in nodes for value in (record.get("served_by") or {}).values())


def moved_follow_ups(records: list[dict[str, Any]], nodes: set[str], landed: float) -> list[dict[str, Any]]:
    """Per straddling conversation, its first follow-up after `landed` served away from `nodes`."""
    by_session: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        if r.get("session") and _ok(r):
            by_session.setdefault(r["session"], []).append(r)
    moved = []
    for turns in by_session.values():
        turns.sort(key=lambda r: (r.get("turn", 0), r.get("t_start", 0.0)))
        was_on_node = False
        for r in turns:
            if _served_on(r, nodes):
                was_on_node = True
            elif was_on_node and r.get("t_start", 0.0) >= landed and r.get("turn", 0) >= 1:
                moved.append(r)
                break
    return moved


def concurrent_follow_ups(records: list[dict[str, Any]], nodes: set[str], judged: list[dict[str, Any]],
                          moved: list[dict[str, Any]]) -> list[float]:
    """TTFTs of follow-ups served away from `nodes`, by conversations that did not move (`moved`: every first
    follow-up that did, judged or not), while the `judged` ones were served."""
    if not judged:
        return []
    start = min(r["t_start"] for r in judged)
    end = max(r.get("t_end", r["t_start"]) for r in judged)
    moved_sessions = {r["session"] for r in moved}
    return [r["ttft_ms"] for r in records
            if _ok(r) and r.get("session") and r["session"] not in moved_sessions and r.get("turn", 0) >= 1
            and start <= r.get("t_start", 0.0) <= end and not _served_on(r, nodes)]


def _reference(entry: dict[str, Any]) -> str:
    concurrent = entry.get("ttft_concurrent_median_ms")
    if concurrent is not None and concurrent > entry["ttft_before_median_ms"]:
        return f"(of {entry['concurrent_follow_ups']} unmoved follow-ups meanwhile)"
    return "before"


class SessionContinuityParams(CheckParams):
    """Follow-up turns after the fault do not pay a full re-prefill: TTFT ratio vs before stays below the cap."""

    max_ttft_ratio: float = Field(2.0, gt=0, le=1000)


@register
class SessionContinuity(Check):
    """Judges spot interruptions only: the article prescribes KV-cache offload for a notice that leaves two
    minutes to move conversations. After a double-bit error the KV cache on that GPU cannot be trusted and a
    full re-prefill is the right behaviour, so the check has no rule for it (not applicable)."""

    name = "session-continuity"
    params_model = SessionContinuityParams
    params: SessionContinuityParams
    applies_to = frozenset({"spot-interruption"})

    def evaluate(self, evidence: Evidence):
        return self.judge_each(evidence)

    def judge(self, fault: Any, index: int, evidence: Evidence):
        cap = self.params.max_ttft_ratio
        records = evidence.records()
        if not any(r.get("session") for r in records):
            return self.missing(fault, index, "no conversations in the load: set load.conversations so sessions "
                                              "can straddle the fault")
        landed = fault.landed_at or fault.injected_at
        if landed is None or not fault.nodes:
            return self.missing(fault, index, "the fault touched no node: no conversation could straddle it")
        nodes = {n.name for n in fault.nodes}
        before = [r["ttft_ms"] for r in records if _ok(r) and r.get("session") and r.get("turn", 0) >= 1
                  and r.get("t_end", 0.0) <= fault.injected_at]
        moved = moved_follow_ups(records, nodes, landed)
        deep = [r for r in moved if r.get("turn", 0) >= MIN_HISTORY_TURNS]
        entry: dict[str, Any] = {"follow_ups_before": len(before), "moved": len(moved), "judged": len(deep),
                                 "max_ttft_ratio": cap}
        if not before:
            return self.missing(fault, index, "no follow-up turn finished before the fault (no baseline)", **entry)
        if not deep:
            return self.missing(fault, index,
                                f"no conversation with {MIN_HISTORY_TURNS}+ turns of history moved off "
                                f"{', '.join(sorted(nodes))} after the fault ({len(moved)} shorter ones; the target's "
                                f"served_by_headers must name the serving node)", **entry)
        before_median = statistics.median(before)
        concurrent = concurrent_follow_ups(records, nodes, deep, moved)
        concurrent_median = statistics.median(concurrent) if len(concurrent) >= MIN_CONCURRENT else None
        base = max(before_median, concurrent_median or 0.0)
        after = statistics.median(r["ttft_ms"] for r in deep)
        ratio = after / base if base > 0 else float("inf")
        entry.update({"ttft_before_median_ms": round(before_median, 2),
                      "ttft_concurrent_median_ms": None if concurrent_median is None else round(concurrent_median, 2),
                      "concurrent_follow_ups": len(concurrent), "ttft_reference_ms": round(base, 2),
                      "ttft_moved_median_ms": round(after, 2), "ratio": round(ratio, 3),
                      "moved_ttft_ms": [round(r["ttft_ms"], 1) for r in deep][:50]})
        if ratio > cap:
            return self.verdict(fault, index, False,
                                f"{len(deep)} moved follow-up(s) TTFT median {after:.1f} ms vs {base:.1f} ms "
                                f"{_reference(entry)} = {ratio:.2f}x > {cap:g}x (full re-prefill of the history)",
                                **entry)
        return self.verdict(fault, index, True,
                            f"{len(deep)} conversation(s) moved off the faulty node(s); follow-up TTFT median "
                            f"{after:.1f} ms vs {base:.1f} ms {_reference(entry)} = {ratio:.2f}x (cap {cap:g}x)",
                            **entry)
