"""Ctrl-C and SIGTERM during a run: they end it through the same path as any other ending (revert, report,
exit 3), and once the reverts have begun a further one is recorded, not obeyed, so a second Ctrl-C cannot
leave a fault behind.

A handler never writes anything itself. Python runs a signal handler in the main thread between two
bytecodes, which may be in the middle of a journal write; a handler that wrote to the journal there would
re-enter the file object (CPython raises "reentrant call") and end the run in an error instead of the
interrupt. So the handlers only note the signal; the run records it in its ordinary flow (`Interrupted`
carries the first signal's name, `Shield.ignored` the ones that arrived during the reverts).

Signal handlers can only be installed from the main thread; a run in another thread (a test's, a matrix
worker's pool) relies on its caller for interrupts.
"""
from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The run was interrupted by `signal_name` (SIGINT or SIGTERM)."""

    def __init__(self, signal_name: str):
        super().__init__(signal_name)
        self.signal_name = signal_name


@contextmanager
def interrupts_end_the_run(interrupted: threading.Event) -> Iterator[None]:
    """The first Ctrl-C or SIGTERM raises `Interrupted` here and sets `interrupted`, which every wait checks (a
    signal handled while another thread is in a wait still ends the run). A second one before the reverts
    begin only sets the flag again: raising it would cut short the handling of the first."""
    def interrupt(signum: int, frame: Any) -> None:
        first = not interrupted.is_set()
        interrupted.set()
        if first:
            raise Interrupted(signal.Signals(signum).name)

    with _handled(interrupt):
        yield


class Shield:
    """The signals that arrived while the reverts ran, by name, in order."""

    def __init__(self) -> None:
        self.ignored: list[str] = []


@contextmanager
def shielded() -> Iterator[Shield]:
    """Reverts run to the end: further Ctrl-C / SIGTERM are noted in the yielded `Shield`, not obeyed."""
    shield = Shield()

    def note(signum: int, frame: Any) -> None:
        shield.ignored.append(signal.Signals(signum).name)

    with _handled(note):
        yield shield


@contextmanager
def _handled(handler: Callable[[int, Any], None]) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield
    finally:
        for s, before in previous.items():
            signal.signal(s, before)
