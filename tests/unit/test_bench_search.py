"""The benchmarks' search for the most streams a client holds within the lag limit (bench/_trials.py)."""
from __future__ import annotations

from typing import Any

from bench import _trials as trials

LIMIT = 2.5


def scripted(lags: dict[tuple[str, int], list[float]]):
    """A trial that returns the next scripted held lag p99 for (client, streams), and logs every call."""
    calls: list[tuple[str, int]] = []

    def trial(kind: str, streams: int) -> dict[str, Any]:
        calls.append((kind, streams))
        return {"streams": streams, "lag_p99_held_ms": lags[(kind, streams)].pop(0)}
    return trial, calls


def test_a_level_failed_once_by_chance_holds_on_its_second_trial() -> None:
    trial, calls = scripted({("a", 50): [1.0], ("a", 100): [3.1, 1.6], ("a", 200): [9.0, 8.0],
                             ("a", 150): [2.0], ("a", 175): [4.0, 3.5]})
    state = trials.search(["a"], trial, limit_ms=LIMIT, start=50, ceiling=1600, bisect_steps=2, floor=12)
    assert trials.best(state["a"])["streams"] == 150
    assert calls == [("a", 50), ("a", 100), ("a", 100), ("a", 200), ("a", 200), ("a", 150), ("a", 175), ("a", 175)]
    second = [t for t in state["a"]["trials"] if t.get("second_chance")]
    assert [(t["streams"], t["held"]) for t in second] == [(100, True), (200, False), (175, False)]


def test_without_a_second_chance_one_failed_trial_decides() -> None:
    trial, calls = scripted({("a", 50): [1.0], ("a", 100): [3.1], ("a", 75): [2.0], ("a", 87): [2.2]})
    state = trials.search(["a"], trial, limit_ms=LIMIT, start=50, ceiling=1600, bisect_steps=2, floor=12,
                          second_chance=False)
    assert trials.best(state["a"])["streams"] == 87
    assert calls == [("a", 50), ("a", 100), ("a", 75), ("a", 87)]


def test_clients_take_turns_and_errors_fail_a_trial() -> None:
    trial, calls = scripted({("a", 50): [1.0], ("c", 50): [1.0], ("a", 100): [9.0, 9.0], ("c", 100): [1.0],
                             ("c", 200): [9.0, 9.0], ("a", 75): [1.0], ("c", 150): [1.0]})
    state = trials.search(["a", "c"], trial, limit_ms=LIMIT, start=50, ceiling=1600, bisect_steps=1, floor=12)
    assert calls[:2] == [("a", 50), ("c", 50)] and calls[2:5] == [("a", 100), ("a", 100), ("c", 100)]
    assert trials.best(state["a"])["streams"] == 75 and trials.best(state["c"])["streams"] == 150

    def failing(kind: str, streams: int) -> dict[str, Any]:
        return {"streams": streams, "lag_p99_held_ms": 0.5, "errors": 3}
    state = trials.search(["a"], failing, limit_ms=LIMIT, start=50, ceiling=1600, bisect_steps=1, floor=12)
    assert trials.best(state["a"]) is None and len(state["a"]["trials"]) == 4      # 50 twice, then 12 twice


def test_cpu_per_token_is_compared_at_the_highest_load_every_client_held() -> None:
    from bench.loadgen_efficiency import reference_level

    def held(*levels: int, failed: tuple[int, ...] = ()) -> dict[str, Any]:
        return {"trials": [{"streams": n, "held": True} for n in levels]
                + [{"streams": n, "held": False} for n in failed]}
    state = {"a": held(50, 100, 200, 150, failed=(400,)), "b": held(failed=(50, 12)),
             "c": held(50, 100, 125, failed=(200, 150)), "d": held(50, 100, 150, failed=(200,))}
    assert reference_level(state, 50) == 100           # b held nothing: not judged; c failed 200
    state["c"] = held(50, 100, 200, failed=(400,))
    state["d"] = held(50, 100, 200, failed=(400,))
    assert reference_level(state, 50) == 200
    assert reference_level({"b": held(failed=(50,))}, 50) == 50     # nobody held anything: the start
