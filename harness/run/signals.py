"""Ctrl-C and SIGTERM during a run: they end it through the same path as any other ending (revert, report,
exit 3), and once the reverts have begun a further one is recorded, not obeyed, so a second Ctrl-C cannot
leave a fault behind.

Signal handlers can only be installed from the main thread; a run in another thread (a test's, a matrix
worker's pool) relies on its caller for interrupts.
"""
from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from harness.run.events import RunEvents

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def interrupts_end_the_run(events: RunEvents, interrupted: threading.Event) -> Iterator[None]:
    """Ctrl-C and SIGTERM raise KeyboardInterrupt here and set `interrupted`, which every wait checks (a signal
    handled while another thread is in a wait still ends the run)."""
    def interrupt(signum: int, frame: Any) -> None:
        events.signal_received.fire(signal.Signals(signum).name)
        interrupted.set()
        raise KeyboardInterrupt

    with _handled(interrupt):
        yield


@contextmanager
def shielded(events: RunEvents) -> Iterator[None]:
    """Reverts run to the end: further Ctrl-C / SIGTERM are recorded, not obeyed."""
    def note(signum: int, frame: Any) -> None:
        events.signal_ignored.fire(signal.Signals(signum).name)

    with _handled(note):
        yield


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
