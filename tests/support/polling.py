"""Waiting on observable state: poll a condition against a deadline, never sleep a guessed time.

A test that sleeps "long enough" is either slow or flaky on a busy machine; one that polls ends as soon as the
state it waits for is there and says, when it is not, what it waited for and for how long. tenacity does the
polling (it is what the harness itself retries with).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryError, Retrying, retry_if_result, stop_after_delay, wait_fixed

T = TypeVar("T")

INTERVAL_S = 0.05


def wait_for(cond: Callable[[], T], timeout: float, what: str, interval: float = INTERVAL_S) -> T:
    """Poll `cond()` every `interval` seconds until it returns a truthy value, and return that value.

    After `timeout` wall seconds without one: an AssertionError naming `what` and the deadline. An exception
    raised by `cond` is not retried: it ends the wait as it is."""
    try:
        return Retrying(stop=stop_after_delay(timeout), wait=wait_fixed(interval),
                        retry=retry_if_result(lambda value: not value))(cond)
    except RetryError:
        raise AssertionError(f"timed out after {timeout:g} s waiting for {what}") from None


def stays(cond: Callable[[], object], seconds: float, what: str, interval: float = INTERVAL_S) -> None:
    """Assert `cond()` holds at every poll for `seconds` (a deadline-bounded check that nothing happens)."""
    def held() -> bool:
        assert cond(), f"{what} stopped holding"
        return True

    try:
        Retrying(stop=stop_after_delay(seconds), wait=wait_fixed(interval), retry=retry_if_result(bool))(held)
    except RetryError:      # it held at every poll until the end
        pass
