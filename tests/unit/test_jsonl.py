"""The one JSONL reader: every whole object of a file, in order, whatever a crash left in the middle or at the end."""
from __future__ import annotations

from harness.jsonl import iter_records, read_records


def test_torn_undecodable_and_non_object_lines_are_skipped(tmp_path):
    path = tmp_path / "records-0.jsonl"
    path.write_bytes(b'{"key": "a", "attempt": 1}\n'
                     b'\n'
                     b'[1, 2]\n'                                   # JSON, but not a record
                     b'{"key": "b", "text": "\xff\xfe"}\n'         # bytes that are not UTF-8 inside a whole line
                     b'{"key": "c", "attempt": 1}\n'
                     b'{"key": "d", "att')                         # a crash mid-write
    assert [r["key"] for r in read_records(path)] == ["a", "b", "c"]
    assert list(iter_records(path)) == read_records(path)
