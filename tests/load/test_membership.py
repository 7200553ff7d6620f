"""The rules a load master applies to workers (harness/load/membership.py): the token's proof, the expected
count, no late joiner; and a worker's estimate of the master's clock."""
from __future__ import annotations

from harness.load.membership import CLOCK_KEEP, ClockOffset, Gate, proof


def test_only_a_worker_proving_the_token_joins_and_only_as_many_as_expected_before_the_start():
    gate = Gate(token="run-secret", expected=2)
    assert gate.admit("a", proof("other-secret", "a"), "a") == "wrong or missing run token"
    assert gate.admit("a", None, "a") == "wrong or missing run token"
    assert gate.admit("a", proof("run-secret", "b"), "a") == "wrong or missing run token"    # another's proof
    assert gate.admit("a", proof("run-secret", "a"), "a") is None
    assert gate.admit("b", proof("run-secret", "b"), "b") is None
    assert [gate.index("a"), gate.index("b"), gate.index("c")] == [0, 1, None]
    assert "all 2 expected workers have joined" in gate.admit("c", proof("run-secret", "c"), "c")
    gate = Gate(token="run-secret", expected=3, started=True)
    assert "already started" in gate.admit("d", proof("run-secret", "d"), "d")
    assert len(gate.refused) == 1 and gate.members == {}


def test_the_clock_offset_comes_from_the_probe_with_the_shortest_round_trip():
    clock = ClockOffset()
    assert clock.offset_s == 0.0 and clock.uncertainty_s is None
    behind = 2.5                                       # the worker's clock is 2.5 s behind the master's
    # (worker send time, one-way delay out, one-way delay back): queued probes are slow and lopsided
    for t0, out, back in ((100.0, 0.050, 0.001), (101.0, 0.0004, 0.0006), (102.0, 0.001, 0.090)):
        clock.add(t0, t0 + out + behind, t0 + out + back)
    assert abs(clock.offset_s - behind) <= clock.uncertainty_s + 1e-9
    assert abs(clock.uncertainty_s - (0.0004 + 0.0006) / 2) < 1e-9
    for i in range(CLOCK_KEEP):                      # the good probe ages out: the best of the latest counts
        clock.add(200.0 + i, 200.0 + i + 0.01 + behind, 200.0 + i + 0.02)
    assert abs(clock.uncertainty_s - 0.01) < 1e-9
    assert clock.figures()["probes"] == CLOCK_KEEP
    clock.add(300.0, 299.0, 299.5)                   # an answer before its question: a broken probe, ignored
    assert clock.figures()["probes"] == CLOCK_KEEP and abs(clock.uncertainty_s - 0.01) < 1e-9
