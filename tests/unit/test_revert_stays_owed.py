"""A revert that fails must stay owed in the journal, so `g7chaos recover` can still finish it; and the
in-process revert runs from exactly the arguments the journal holds."""
import pytest

from harness.faults import FAULTS
from harness.faults.base import RunContext
from harness.journal import Journal, owed_reverts


class Unreachable(Exception):
    pass


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_failed_revert_is_not_struck_from_the_journal(name, tmp_path, monkeypatch):
    cls = FAULTS[name]
    ctx = RunContext(target=object(), journal=Journal(tmp_path / "journal.jsonl"), timeline=None, rng=None)
    fault = cls(cls.params_model.model_construct(), ctx)     # nothing planned: the revert runs from the journal alone
    fault.owe_revert({"anything": 1})
    seen = []

    def refuse(target, args):
        seen.append(args)
        raise Unreachable("API down")

    monkeypatch.setattr(cls, "revert_owed", staticmethod(refuse))
    with pytest.raises(Unreachable):
        fault.revert()
    assert [o.fault for o in owed_reverts(tmp_path / "journal.jsonl")] == [name]
    assert seen == [owed_reverts(tmp_path / "journal.jsonl")[0].args] == [{"anything": 1}]

    monkeypatch.setattr(cls, "revert_owed", staticmethod(lambda target, args: None))
    fault.revert()
    assert owed_reverts(tmp_path / "journal.jsonl") == []
    fault.revert()      # idempotent: nothing owed, nothing written
    assert sum(1 for _ in open(tmp_path / "journal.jsonl")) == 2


def test_a_fault_that_never_injected_owes_nothing(tmp_path):
    cls = FAULTS["ecc-double-bit-error"]
    fault = cls.__new__(cls)
    fault.ctx = RunContext(target=object(), journal=Journal(tmp_path / "journal.jsonl"), timeline=None, rng=None)
    fault.revert()
    assert (tmp_path / "journal.jsonl").read_text() == ""
