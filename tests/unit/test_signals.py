"""The run's signal handlers note a signal and never write: the first Ctrl-C / SIGTERM ends the run with the
signal's name, later ones are kept for the journal (harness/run/signals.py)."""
from __future__ import annotations

import json
import os
import signal
import threading

import pytest

from harness.journal import Journal
from harness.run.signals import Interrupted, interrupts_end_the_run, shielded


def test_the_first_signal_raises_with_its_name_and_a_second_only_sets_the_flag() -> None:
    interrupted = threading.Event()
    with pytest.raises(Interrupted) as caught, interrupts_end_the_run(interrupted):
        os.kill(os.getpid(), signal.SIGTERM)
        threading.Event().wait(1.0)            # the handler runs at the next bytecode; never reached
    assert caught.value.signal_name == "SIGTERM" and interrupted.is_set()
    with interrupts_end_the_run(interrupted):  # the flag already set: this one is the second
        os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_signals_during_the_shield_are_noted_in_order_not_obeyed() -> None:
    with shielded() as shield:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
    assert shield.ignored == ["SIGINT", "SIGTERM"]


def test_an_interrupt_inside_a_journal_write_loses_no_line_and_breaks_no_later_one(tmp_path) -> None:
    """The failure this layout prevents: a handler that wrote to the journal while the main thread was inside
    a write ended the run with 'reentrant call' instead of exit 3. Here signals hit the main thread while it
    writes as fast as it can; every line that was written is whole, and the journal goes on taking lines."""
    journal = Journal(tmp_path / "journal.jsonl")
    interrupted = threading.Event()
    caught = 0
    stop = threading.Event()

    def sender() -> None:
        for _ in range(50):
            if stop.wait(0.002):
                return
            os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=sender)
    thread.start()
    try:
        for i in range(20_000):
            interrupted.clear()
            try:
                with interrupts_end_the_run(interrupted):
                    journal.write("tick", i=i, pad="x" * 200)
            except Interrupted:
                caught += 1
            if not thread.is_alive():
                break
    finally:
        stop.set()
        thread.join()
    journal.write("after")
    journal.close()
    lines = (tmp_path / "journal.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]           # every line parses: none was cut in half
    assert records[-1]["event"] == "after"
    assert caught > 0, "no signal ever landed during the writes"
