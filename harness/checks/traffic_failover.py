"""traffic-failover: when a zone is lost, clients stop being sent there within the load balancer's detection
time, the error budget holds meanwhile, and traffic comes back once the zone does.

Judged on the load's per-attempt records (start time, served-by AZ header, error), so it measures what clients
saw, not what the control plane claims. The clock starts when the zone may have gone dark (the fault's
`times.lost_at`, else its injection), because that is when a real NLB's detection time starts too, and the zone
may serve again from the moment the revert began (`times.revert_started_at`, else `reverted_at`).

- Failover: no attempt that started more than `within` after the loss was served by the lost zone, and none
  hung without an answer (a request sent to a dead zone gets no byte back: that is what "sent there" looks like
  from a client). The figure reported is when the last such attempt started.
- Error budget: of the logical requests that started during the failover window (`within` after the loss),
  the share that failed after all retries stays within `error_budget`.
- Return: after the fault was reverted, the zone serves again before the run ends (judged only when the run
  went on for at least `within` after the revert).

Minimum evidence: requests that began in the failover window, and attempts after it while the zone was still
lost. Without either the fault is inconclusive: no request is no 0 % error rate.
"""
from __future__ import annotations

from typing import Any

from pydantic import Field

from harness.checks.base import Check, Evidence, register
from harness.strict.params import CheckParams
from harness.strict.units import Duration, Percentage

HUNG_ERRORS = ("timeout", "connect", "stall")


def _zone_header(evidence: Evidence) -> str:
    for header in getattr(evidence.target, "served_by_headers", []) or []:
        if "az" in header.lower() or "zone" in header.lower():
            return header.lower()
    return "x-served-by-az"


def _served_zone(record: dict[str, Any], header: str) -> str | None:
    served = {k.lower(): v for k, v in (record.get("served_by") or {}).items()}
    return served.get(header)


def _hung(record: dict[str, Any], header: str) -> bool:
    return bool(record.get("error")) and record.get("status") in (0, None) and _served_zone(record, header) is None \
        and any(word in str(record.get("error")) for word in HUNG_ERRORS)


class TrafficFailoverParams(CheckParams):
    """Share of requests served by the lost AZ falls to 0 within the limit; error budget holds meanwhile."""

    within: Duration = Field(60.0, gt=0)
    error_budget: Percentage = 0.05


@register
class TrafficFailover(Check):
    """Judges the faults that take a zone away (az-loss)."""

    name = "traffic-failover"
    params_model = TrafficFailoverParams
    params: TrafficFailoverParams
    applies_to = frozenset({"az-loss"})

    def evaluate(self, evidence: Evidence):
        self._records: list[dict[str, Any]] | None = None
        return self.judge_each(evidence)

    def judge(self, fault: Any, index: int, evidence: Evidence):
        limit = evidence.wall(self.params.within)
        budget = self.params.error_budget
        zone = fault.params.zone
        if not zone or fault.injected_at is None:
            return self.verdict(fault, index, False, "the fault took no zone away: nothing to fail over from")
        header = _zone_header(evidence)
        if self._records is None:
            self._records = sorted(evidence.records(), key=lambda r: r.get("t_start", 0.0))
        records = self._records
        if not records:
            return self.verdict(fault, index, False, "no request records: the load recorded nothing to judge")
        end = evidence.run_ended or max(r.get("t_end", 0.0) for r in records)
        failures = []
        loss = fault.times.lost_at or fault.injected_at
        reverted = fault.times.revert_started_at or fault.reverted_at
        back = reverted or end
        during = [r for r in records if loss <= r.get("t_start", 0.0) < back]

        def sent_there(r: dict[str, Any]) -> bool:
            # an answer from the zone counts when the whole exchange fell inside the loss (one that began just
            # before the revert may have been routed just after it); a hung attempt counts by its start
            return (_served_zone(r, header) == zone and r.get("t_end", back) < back) or _hung(r, header)

        to_zone = [r for r in during if sent_there(r)]
        last = max((r["t_start"] - loss for r in to_zone), default=None)
        after_limit = [r for r in during if r["t_start"] >= loss + limit]
        late = [r for r in after_limit if sent_there(r)]
        share = len(late) / len(after_limit) if after_limit else 0.0
        # logical requests (by idempotency key) that began in the failover window, judged by their last attempt
        by_key: dict[str, list[dict[str, Any]]] = {}
        for r in records:
            by_key.setdefault(r.get("key") or id(r), []).append(r)
        window = []
        for attempts in by_key.values():
            first = min(attempts, key=lambda a: a.get("attempt", 1))
            if loss <= first.get("t_start", 0.0) < loss + limit:
                window.append(max(attempts, key=lambda a: a.get("attempt", 1)))
        errors = sum(1 for r in window if r.get("error"))
        error_rate = errors / len(window) if window else 0.0
        after = [r for r in records if reverted and r.get("t_start", 0.0) >= back]
        returned_at = min((r["t_start"] - back for r in after if _served_zone(r, header) == zone), default=None)
        judged_return = reverted is not None and end - back >= limit
        figures = {"last_sent_after_s": None if last is None else round(last, 3),
                   "late_attempts": len(late), "attempts_after_limit": len(after_limit),
                   "late_share": round(share, 4), "failover_requests": len(window),
                   "failover_errors": errors, "failover_error_rate": round(error_rate, 4),
                   "returned_after_s": None if returned_at is None else round(returned_at, 3),
                   "return_judged": judged_return}
        figures_all = {"zones": {zone: figures}, "limit_s": limit, "error_budget": budget, "header": header}
        if late:
            failures.append(f"{zone} still sent {len(late)}/{len(after_limit)} attempt(s) "
                            f"({100 * share:.1f}%) more than {limit:.2f} s after the loss, the last "
                            f"{last:.2f} s after")
        if error_rate > budget:
            failures.append(f"{errors}/{len(window)} requests ({100 * error_rate:.1f}%) failed during failover, "
                            f"budget {100 * budget:g}%")
        if judged_return and returned_at is None:
            failures.append(f"no traffic back to {zone} in {end - back:.2f} s after the revert")
        if failures:
            return self.verdict(fault, index, False, "; ".join(failures), **figures_all)
        if not window or not after_limit:
            # no request in the failover window: its error rate is no 0 %; none after the limit: nothing shows
            # where traffic went once the zone was gone
            return self.missing(fault, index, f"{len(window)} request(s) began in the {limit:.2f} s after the loss "
                                              f"and {len(after_limit)} after it, while the zone was lost: too few to "
                                              f"judge a failover", **figures_all)
        left = "at once" if figures["last_sent_after_s"] is None else f"after {figures['last_sent_after_s']:.2f} s"
        back_text = (f", back {figures['returned_after_s']:.2f} s after revert"
                     if figures["returned_after_s"] is not None else "")
        return self.verdict(fault, index, True, f"traffic left {zone} {left} (limit {limit:.2f} s), "
                                                f"{errors}/{len(window)} failed during failover (budget "
                                                f"{100 * budget:g}%){back_text}", **figures_all)
