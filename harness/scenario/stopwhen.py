"""The `stop_when` grammar: the only expressions a scenario file may contain.

Scenario files come from pull requests, so nothing in them is ever evaluated as code. A stop condition is

    <metric> <op> <value>[%|ms|s] [for <duration>]
    alarm:<name> [for <duration>]

with a fixed metric set (`error_rate`, `ttft_p99`, `tbt_p99`, `alarm:<CloudWatch alarm name>`), the
operators `>`, `>=`, `<`, `<=`, and read by a hand-written tokenizer. Error rates take a percentage
(`20%` or the fraction `0.2`); latencies must carry a unit (`ms` or `s`) because a bare `500` could be
either. An alarm condition holds while that alarm is in state ALARM (`alarm:x == ALARM` is accepted too); the
run resolves the named alarms once before injecting and then reads them by name (`harness.alarmwatch`).
The `for` duration is deployment time, like every other scenario duration.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

from harness.strict.units import parse_duration

MAX_CONDITION_CHARS = 256
NUMERIC_METRICS = ("error_rate", "ttft_p99", "tbt_p99")
Op = Literal[">", ">=", "<", "<="]
_ALARM_NAME_RE = re.compile(r"^[A-Za-z0-9_.\-/#:+=@]{1,255}$")


class StopWhenError(ValueError):
    """A condition that does not parse; `column` is 1-based within the condition text."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(f"{message} (column {column})")
        self.column = column


class StopCondition(BaseModel):
    """One parsed stop condition. `threshold` is a fraction for error_rate and seconds for latencies."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    metric: Literal["error_rate", "ttft_p99", "tbt_p99", "alarm"]
    alarm: str | None = None
    op: Op | None = None
    threshold: float | None = None
    for_s: float = 0.0

    def breached(self, observed: float | bool) -> bool:
        """Does one observation breach the condition? (The `for` window is the evaluator's job.)"""
        if self.metric == "alarm":
            return bool(observed)
        assert self.op is not None and self.threshold is not None
        value = float(observed)
        return {">": value > self.threshold, ">=": value >= self.threshold,
                "<": value < self.threshold, "<=": value <= self.threshold}[self.op]

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class _Token:
    kind: str      # word | number | op | percent | end
    text: str
    column: int    # 1-based


def tokenize(text: str) -> list[_Token]:
    """Split a condition into words, numbers (with an attached unit), operators and `%`."""
    tokens: list[_Token] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in " \t":
            i += 1
            continue
        start = i
        if ch in "<>=!":
            j = i + 1
            if j < len(text) and text[j] == "=":
                j += 1
            tokens.append(_Token("op", text[i:j], start + 1))
            i = j
        elif ch == "%":
            tokens.append(_Token("percent", "%", start + 1))
            i += 1
        elif ch.isdigit() or (ch == "." and i + 1 < len(text) and text[i + 1].isdigit()):
            j = i
            while j < len(text) and (text[j].isdigit() or text[j] == "."):
                j += 1
            while j < len(text) and text[j].isalpha():   # unit glued to the number: 500ms, 30s
                j += 1
            tokens.append(_Token("number", text[i:j], start + 1))
            i = j
        elif ch.isalpha() or ch == "_":
            j = i
            while j < len(text) and not text[j].isspace() and text[j] not in "<>=!%":
                j += 1
            tokens.append(_Token("word", text[i:j], start + 1))
            i = j
        else:
            raise StopWhenError(f"unexpected character {ch!r}", start + 1)
    tokens.append(_Token("end", "", len(text) + 1))
    return tokens


_NUMBER_UNIT_RE = re.compile(r"^(\d+(?:\.\d+)?|\.\d+)([a-z]*)$")


def parse_stop_condition(text: str) -> StopCondition:
    """Parse one condition, or raise StopWhenError naming the column of the problem."""
    if not isinstance(text, str):
        raise StopWhenError("a stop condition is a string such as 'error_rate > 20% for 30s'", 1)
    if len(text) > MAX_CONDITION_CHARS:
        raise StopWhenError(f"condition longer than {MAX_CONDITION_CHARS} characters", MAX_CONDITION_CHARS + 1)
    tokens = tokenize(text)
    pos = 0

    def take() -> _Token:
        nonlocal pos
        token = tokens[pos]
        pos += 1
        return token

    head = take()
    if head.kind != "word":
        raise StopWhenError("expected a metric: error_rate, ttft_p99, tbt_p99 or alarm:<name>", head.column)
    fields: dict = {"text": text.strip()}
    if head.text.startswith("alarm:"):
        name = head.text[len("alarm:"):]
        if not _ALARM_NAME_RE.match(name):
            raise StopWhenError("expected an alarm name after 'alarm:'", head.column + len("alarm:"))
        fields.update(metric="alarm", alarm=name)
        if tokens[pos].kind == "op":
            op = take()
            state = take()
            if op.text not in ("==", "=") or state.text != "ALARM":
                raise StopWhenError("an alarm condition is 'alarm:<name>' or 'alarm:<name> == ALARM'", op.column)
    elif head.text in NUMERIC_METRICS:
        fields["metric"] = head.text
        op = take()
        if op.kind != "op" or op.text not in (">", ">=", "<", "<="):
            raise StopWhenError("expected an operator: >, >=, <, <=", op.column)
        fields["op"] = op.text
        value = take()
        if value.kind != "number":
            raise StopWhenError("expected a number", value.column)
        match = _NUMBER_UNIT_RE.match(value.text)
        if not match:
            raise StopWhenError(f"invalid number {value.text!r}", value.column)
        number, unit = float(match.group(1)), match.group(2)
        percent = tokens[pos].kind == "percent"
        if percent:
            take()
        if head.text == "error_rate":
            if unit:
                raise StopWhenError("an error rate takes a percentage (20%) or a fraction (0.2), not a unit",
                                    value.column)
            threshold = number / 100.0 if percent else number
            if threshold > 1:
                raise StopWhenError(f"{value.text} is more than 100%; write {value.text}% or a fraction",
                                    value.column)
        else:
            if percent or unit not in ("ms", "s"):
                raise StopWhenError(f"{head.text} needs a unit: ms or s (e.g. 800ms)", value.column)
            threshold = number / 1000.0 if unit == "ms" else number
        fields["threshold"] = threshold
    else:
        raise StopWhenError(f"unknown metric {head.text!r}; allowed: error_rate, ttft_p99, tbt_p99, alarm:<name>",
                            head.column)
    nxt = take()
    if nxt.kind == "word" and nxt.text == "for":
        span = take()
        if span.kind != "number":
            raise StopWhenError("expected a duration after 'for' (e.g. 30s)", span.column)
        try:
            fields["for_s"] = parse_duration(span.text)
        except ValueError as exc:
            raise StopWhenError(str(exc), span.column) from None
        nxt = take()
    if nxt.kind != "end":
        raise StopWhenError(f"unexpected {nxt.text!r}; a condition ends after its optional 'for <duration>'",
                            nxt.column)
    return StopCondition(**fields)


def coerce_stop_condition(value: object) -> StopCondition:
    """Pydantic before-validator: strings are parsed, parsed conditions pass through."""
    if isinstance(value, StopCondition):
        return value
    if not isinstance(value, str):
        raise ValueError("a stop condition is a string such as 'error_rate > 20% for 30s'")
    try:
        return parse_stop_condition(value)
    except StopWhenError as exc:
        raise ValueError(str(exc)) from None
