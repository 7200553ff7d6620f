"""A revert that fails must stay owed in the journal, so `g7chaos recover` can still finish it."""
import pytest

from harness.faults import FAULTS
from harness.faults.base import RunContext
from harness.journal import Journal, owed_reverts


class Unreachable(Exception):
    pass


@pytest.mark.parametrize("name", ["replica-stall", "ecc-double-bit-error", "node-reboot"])
def test_failed_revert_is_not_struck_from_the_journal(name, tmp_path, monkeypatch):
    cls = FAULTS[name]
    fault = cls.__new__(cls)
    fault.ctx = RunContext(target=object(), journal=Journal(tmp_path / "journal.jsonl"), timeline=None, rng=None)
    fault.params, fault.nodes, fault.extra, fault.pods = None, [], {"template_id": "EXT1"}, []
    fault.revert_id = fault.ctx.journal.register_revert(name, {"anything": 1})
    monkeypatch.setattr(fault, "_revert_args", lambda: {"anything": 1}, raising=False)

    def refuse(target, args):
        raise Unreachable("API down")

    monkeypatch.setattr(cls, "revert_owed", staticmethod(refuse))
    with pytest.raises(Unreachable):
        fault.revert()
    assert [o.fault for o in owed_reverts(tmp_path / "journal.jsonl")] == [name]

    monkeypatch.setattr(cls, "revert_owed", staticmethod(lambda target, args: None))
    fault.revert()
    assert owed_reverts(tmp_path / "journal.jsonl") == []
