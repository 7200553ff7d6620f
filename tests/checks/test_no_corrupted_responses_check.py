"""no-corrupted-responses judges each fault by its own rule: canary answers its node served once the deployment
could know (the landing; for a double-bit error the landing plus one health-check probe), and, for a double-bit
error only, no answer at all from that node after the grace limit."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.checks.no_corrupted_responses import NoCorruptedResponses, NoCorruptedResponsesParams
from harness.faults.base import NodeRef
from harness.load.process import CanaryAnswer, CanaryOutcome
from harness.report.model import CheckLimit
from tests.checks.test_capacity_restored_support import T0, Clock, FakeFault, evidence

ECC_NODE, SPOT_NODE, OTHER = "ip-10-0-16-4", "ip-10-0-48-7", "ip-10-0-32-4"


@dataclass
class CanaryLoad:
    records_path: str
    canary: CanaryOutcome


def _mismatch(at: float, node: str) -> CanaryAnswer:
    return CanaryAnswer(prompt=0, digest="bad", t_end=T0 + at, served_by={"x-served-by-node": node})


def _served(at: float, node: str) -> dict[str, Any]:
    return {"key": f"k{at}-{node}", "t_start": T0 + at - 0.5, "t_end": T0 + at, "tokens": 12,
            "served_by": {"x-served-by-node": node}, "error": None}


EVERY_HALF_SECOND = [T0 + i / 2 for i in range(80)]      # canary answers checked from T0 to T0 + 40 s


def _judge(tmp_path, faults, mismatches, records, limit_s: float = 60.0, limits=None,
           checked_at=EVERY_HALF_SECOND, errored_at=(), **params):
    records = records or [_served(0.5, OTHER)]
    ev = evidence(Clock().timeline, faults, records=records, tmp=tmp_path,
                  limits=limits if limits is not None else [CheckLimit(check="node-drained", within_s=limit_s)])
    ev.load = CanaryLoad(ev.load.records_path, CanaryOutcome(learn_window="steady", learned=True,
                                                             checked=len(checked_at), mismatches=mismatches,
                                                             checked_at=list(checked_at),
                                                             errored_at=list(errored_at)))
    return NoCorruptedResponses(NoCorruptedResponsesParams(**params)).evaluate(ev)


def _faults():
    ecc = FakeFault(name="ecc-double-bit-error", nodes=[NodeRef(context="g7-use2a", name=ECC_NODE)])
    spot = FakeFault(name="spot-interruption", nodes=[NodeRef(context="g7-use2b", name=SPOT_NODE)],
                     injected_at=T0 + 20, landed_at=T0 + 20.1)
    ecc.index, spot.index = 0, 1
    return ecc, spot


def test_composed_faults_keep_their_own_nodes_and_limits(tmp_path):
    """The spot node serves until it is reclaimed: that is no ECC violation, and spot has no node rule."""
    ecc, spot = _faults()
    records = [_served(11, ECC_NODE), _served(22, SPOT_NODE), _served(23.5, SPOT_NODE), _served(24, OTHER)]
    result = _judge(tmp_path, [ecc, spot], [], records)          # limit 60 s deployment = 2 s wall
    assert result.status == "pass", result.reason
    assert [(j.fault, j.status) for j in result.judgements] == [("ecc-double-bit-error", "pass"),
                                                                ("spot-interruption", "pass")]


def test_the_dbe_node_answering_after_the_limit_fails_the_ecc_fault_only(tmp_path):
    ecc, spot = _faults()
    records = [_served(13, ECC_NODE), _served(22, SPOT_NODE)]    # 2.8 s after landing, limit 2 s wall
    result = _judge(tmp_path, [ecc, spot], [], records)
    assert result.failed
    assert [(j.fault, j.status) for j in result.judgements] == [("ecc-double-bit-error", "fail"),
                                                                ("spot-interruption", "pass")]
    assert "1 response(s) started on the faulty node after 2.00 s" in result.reason


def test_a_corrupted_canary_counts_against_the_fault_whose_node_served_it(tmp_path):
    ecc, spot = _faults()
    result = _judge(tmp_path, [ecc, spot], [_mismatch(21, ECC_NODE)], [])
    assert result.failed
    statuses = {j.fault: (j.status, j.evidence["corrupted"]) for j in result.judgements}
    assert statuses == {"ecc-double-bit-error": ("fail", 1), "spot-interruption": ("pass", 0)}


def test_a_corrupted_answer_from_a_healthy_node_goes_to_the_last_fault_before_it(tmp_path):
    ecc, spot = _faults()
    result = _judge(tmp_path, [ecc, spot], [_mismatch(25, OTHER)], [])
    statuses = {j.fault: j.status for j in result.judgements}
    assert statuses == {"ecc-double-bit-error": "pass", "spot-interruption": "fail"}


def test_answers_before_the_fault_landed_are_not_its_corruption(tmp_path):
    ecc, _ = _faults()
    result = _judge(tmp_path, [ecc], [_mismatch(5, ECC_NODE)], [])
    assert result.status == "pass", result.reason


def test_the_grace_is_the_node_drained_limit_of_the_dbe_fault_not_of_another(tmp_path):
    """A composed scenario gives node-drained a limit per fault (3m for the DBE, 2m for the spot notice): the node
    rule of the DBE fault uses the DBE's, so its node answering 5 s after landing is within 6 s wall."""
    ecc, spot = _faults()
    limits = [CheckLimit(check="node-drained", faults=[0], within_s=180.0),
              CheckLimit(check="node-drained", faults=["spot-interruption"], within_s=120.0)]
    result = _judge(tmp_path, [ecc, spot], [], [_served(15, ECC_NODE)], limits=limits)
    assert result.status == "pass", result.reason
    assert result.judgements[0].evidence["grace_s"] == 6.0
    tighter = [CheckLimit(check="node-drained", faults=[0], within_s=90.0),
               CheckLimit(check="node-drained", faults=["spot-interruption"], within_s=180.0)]
    assert _judge(tmp_path, [ecc, spot], [], [_served(15, ECC_NODE)], limits=tighter).failed


def test_no_canary_answered_after_the_fault_is_inconclusive_not_a_pass(tmp_path):
    """Canaries that all errored once the fault landed: no wrong answer, but no right one either."""
    ecc, _ = _faults()
    before = [t for t in EVERY_HALF_SECOND if t < T0 + 10]
    result = _judge(tmp_path, [ecc], [], [], checked_at=before, errored_at=[T0 + 11, T0 + 12])
    assert result.status == "inconclusive"
    assert "0 canary answer(s) checked after the landing (2 errored)" in result.reason


def test_without_a_node_header_the_dbe_node_rule_is_inconclusive(tmp_path):
    ecc, _ = _faults()
    unlabelled = [{"key": "k", "t_start": T0 + 1, "t_end": T0 + 2, "tokens": 5, "served_by": {}, "error": None}]
    result = _judge(tmp_path, [ecc], [], unlabelled)
    assert result.status == "inconclusive" and "x-served-by-node header" in result.reason


def test_canaries_never_learned_is_inconclusive(tmp_path):
    ecc, _ = _faults()
    ev = evidence(Clock().timeline, [ecc], records=[_served(1, OTHER)], tmp=tmp_path)
    ev.load = CanaryLoad(ev.load.records_path, CanaryOutcome(learn_window="steady", learned=False))
    result = NoCorruptedResponses(NoCorruptedResponsesParams()).evaluate(ev)
    assert result.status == "inconclusive" and "never learned in steady state" in result.reason


def test_corruption_before_the_deployment_could_know_is_reported_not_failed(tmp_path):
    """Landed at 10.2 s; a 60 s probe is 2 s wall at the twin's scale, so the deployment could know at 12.2 s."""
    ecc, _ = _faults()
    early = [_mismatch(10.5, ECC_NODE), _mismatch(11.9, ECC_NODE)]
    result = _judge(tmp_path, [ecc], early, [], probe_interval=60.0)
    assert result.status == "pass", result.reason
    figures = result.judgements[0].evidence
    assert (figures["corrupted"], figures["corrupted_before_knowing"]) == (0, 2)
    assert (figures["probe_interval_s"], figures["knows_after_landing_s"]) == (60.0, 2.0)
    assert figures["probe_interval_source"] == "the check's probe_interval"
    assert "2 reached clients before that" in result.reason and "one 60 s probe" in result.reason


def test_corruption_after_the_probe_fails_and_counts_both_sides(tmp_path):
    ecc, _ = _faults()
    result = _judge(tmp_path, [ecc], [_mismatch(11, ECC_NODE), _mismatch(12.5, ECC_NODE)], [], probe_interval=60.0)
    assert result.failed
    figures = result.judgements[0].evidence
    assert (figures["corrupted"], figures["corrupted_before_knowing"]) == (1, 1)
    assert "1 corrupted canary answer(s)" in result.reason and "1 reached clients before that" in result.reason


def test_an_unreadable_probe_interval_judges_from_the_landing(tmp_path):
    """The stub target has no load balancer to read: the strict reading, and the evidence says so."""
    ecc, _ = _faults()
    result = _judge(tmp_path, [ecc], [_mismatch(10.5, ECC_NODE)], [])
    assert result.failed
    figures = result.judgements[0].evidence
    assert figures["probe_interval_s"] == 0.0 and figures["probe_interval_source"].startswith("unknown")


def test_a_probe_interval_gives_no_window_to_a_fault_that_corrupts_nothing(tmp_path):
    """A spot notice corrupts no answer: one corrupted half a second after it landed fails it, probe or not."""
    ecc, spot = _faults()
    result = _judge(tmp_path, [ecc, spot], [_mismatch(20.6, SPOT_NODE)], [], probe_interval=60.0)
    statuses = {j.fault: j.status for j in result.judgements}
    assert statuses == {"ecc-double-bit-error": "pass", "spot-interruption": "fail"}
    assert result.judgements[1].evidence["probe_interval_s"] == 0.0


def test_canaries_must_be_checked_after_the_deployment_could_know(tmp_path):
    """Answers checked only inside the window say nothing of what followed it."""
    ecc, _ = _faults()
    inside = [T0 + 10.5, T0 + 11, T0 + 12]
    result = _judge(tmp_path, [ecc], [], [], probe_interval=60.0, checked_at=inside)
    assert result.status == "inconclusive"
    assert "0 canary answer(s) checked after the landing + one 60 s probe" in result.reason
