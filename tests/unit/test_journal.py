from harness.journal import Journal, owed_reverts


def test_revert_registered_before_change_is_owed_until_confirmed(tmp_path):
    journal = Journal(tmp_path / "run" / "journal.jsonl")
    first = journal.register_revert("ecc-double-bit-error", {"node": "n1", "gpu": 0})
    second = journal.register_revert("spot-interruption", {"experiment": "EXP1"})
    journal.reverted(first)
    journal.close()
    owed = owed_reverts(tmp_path / "run" / "journal.jsonl")
    assert [o.revert_id for o in owed] == [second]
    assert owed[0].args == {"experiment": "EXP1"}


def test_torn_last_line_is_skipped(tmp_path):
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    rid = journal.register_revert("node-reboot", {"instance": "i-1"})
    journal.close()
    with open(path, "a") as fh:
        fh.write('{"event": "reverted", "revert_id": "')   # crash mid-write
    assert [o.revert_id for o in owed_reverts(path)] == [rid]
