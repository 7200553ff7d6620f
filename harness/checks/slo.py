"""slo: TTFT and time-between-tokens p99 and the error rate, judged on the harness's own HDR histograms per
window. A window where the load generator itself was saturated is reported as degraded, never blamed on
the deployment."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.checks.base import Check, Evidence, register
from harness.strict.params import ARTICLE_TBT_P99_S, ARTICLE_TTFT_P99_S, CheckParams
from harness.strict.units import Duration, Percentage


Window = Literal["whole", "steady", "fault", "recovery", "each"]


class SloParams(CheckParams):
    """TTFT/TBT p99 and error rate judged on a window: whole run, steady state, during faults, recovery, or each."""

    ttft_p99: Duration = Field(ARTICLE_TTFT_P99_S, gt=0)
    tbt_p99: Duration = Field(ARTICLE_TBT_P99_S, gt=0)
    error_rate: Percentage = 0.01
    window: Window = "whole"


@register
class Slo(Check):
    name = "slo"
    params_model = SloParams
    params: SloParams

    def _windows(self, evidence: Evidence):
        load = evidence.load
        choice = self.params.window
        if choice == "whole":
            return [load.whole]
        if choice == "each":
            return [w for w in load.windows if w.requests]
        return [w for w in load.windows if w.window == choice or w.window.startswith(f"{choice}:")]

    def _own_lag(self, w, evidence: Evidence) -> float:
        """The load generator's lag p99 that may have inflated window `w`'s figures. For the whole run, the
        largest of its windows' own: the whole is the union of the windows, and the p99 of a union is at most
        the largest p99 of its parts, so a tail each window may owe to its own lag is, over the whole, owed to
        at most the largest lag (the whole's merged lag p99 would dilute a saturated window's lag into the quiet
        ones: 12 ms over a run whose steady window lagged 43 ms)."""
        lag = getattr(w, "loop_lag_p99_ms", None) or 0.0
        if self.params.window == "whole":
            lag = max([lag, *((getattr(part, "loop_lag_p99_ms", None) or 0.0)
                              for part in evidence.load.windows if part.degraded)])
        return lag

    def evaluate(self, evidence: Evidence):
        limits = {"ttft_p99_ms": self.params.ttft_p99 * 1000, "tbt_p99_ms": self.params.tbt_p99 * 1000,
                  "error_rate": self.params.error_rate}
        windows = self._windows(evidence)
        if not windows or not any(w.requests for w in windows):
            return self.result(False, f"no requests in window {self.params.window!r}", limits=limits)
        breaches, figures, excused = [], {}, []
        for w in windows:
            # A saturated load generator inflates latencies by up to its own event-loop lag: only what exceeds
            # the limit by more than that lag can be the deployment's.
            own_lag = self._own_lag(w, evidence) if w.degraded else 0.0
            got = {"ttft_p99_ms": w.ttft_p99_ms, "tbt_p99_ms": w.tbt_p99_ms, "error_rate": w.error_rate,
                   "requests": w.requests, "degraded": w.degraded, "load_generator_lag_p99_ms": own_lag}
            figures[w.window] = got
            for key, limit in limits.items():
                value = got[key]
                if value is None or value <= limit:
                    continue
                if key == "error_rate":
                    breaches.append(f"{w.window} error_rate {100 * value:.2f}% > {100 * limit:g}%")
                elif value > limit + own_lag:
                    lag_note = f" (beyond the load generator's own lag {own_lag:.1f} ms)" if own_lag else ""
                    breaches.append(f"{w.window} {key.replace('_ms', '')} {value:.1f} ms > {limit:g} ms{lag_note}")
                else:
                    excused.append(f"{w.window} {key.replace('_ms', '')} {value:.1f} ms is within {limit:g} ms plus "
                                   f"the load generator's own lag {own_lag:.1f} ms")
        degraded = [w.window for w in windows if w.degraded]
        note = f" (load generator degraded in {', '.join(degraded)})" if degraded else ""
        if breaches:
            return self.result(False, "; ".join(breaches) + note, windows=figures, limits=limits)
        w = windows[0]
        if excused:
            note = f"; not judged against the deployment: {'; '.join(excused)}"
        return self.result(True, f"{self.params.window}: TTFT p99 {w.ttft_p99_ms or 0:.1f} ms, TBT p99 "
                                 f"{w.tbt_p99_ms or 0:.1f} ms, errors {100 * w.error_rate:.2f}% over {w.requests} "
                                 f"requests{note}", windows=figures, limits=limits, excused=excused)
