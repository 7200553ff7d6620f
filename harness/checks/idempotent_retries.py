"""idempotent-retries: no Idempotency-Key was executed twice.

A retry carries the key of its first attempt. Two kinds of evidence:

- Client side: if two attempts of one key both completed (200, a full stream) and neither was marked as a
  replay (`Idempotent-Replayed: true`), the deployment ran the request twice: a double charge, a
  duplicated side effect. Replays must carry the same text as the original.
- Server side, where the inference endpoint serves Triton's metrics: a client that timed out on a hung
  replica never sees that replica finish the abandoned attempt after it resumes, yet the work was done.
  `nv_inference_request_success` counts every completed execution; every one the clients did not receive
  (completions minus delivered, non-replayed answers) while keys were being retried is an execution
  of a key whose retry ran it again.

The server figures are sampled from the start of the run (before any load) and compared at a moment
while the load was still running, so requests the load generator abandons when it stops are not counted.
"""
from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Any

import httpx
from pydantic import Field

from harness.checks.base import Check, Evidence, register
from harness.prometheus import parse_samples
from harness.strict.params import CheckParams

REPLAY_HEADER = "idempotent-replayed"
SUCCESS_METRIC = "nv_inference_request_success"
POLL_S = 0.25
EXPOSE_WAIT_S = 5.0   # how long the first reads may fail before the endpoint counts as not exposing Triton's counters
# completions the server counted a moment before the client recorded them (in flight at the sample)
SKEW_TOLERANCE = 2
SETTLE_S = 1.0      # compare at least this long before the last request ended


def _replayed(record: dict[str, Any]) -> bool:
    return str((record.get("served_by") or {}).get(REPLAY_HEADER, "")).lower() == "true"


def _delivered(record: dict[str, Any]) -> bool:
    return record.get("status") == 200 and not record.get("error") and bool(record.get("tokens"))


class IdempotentRetriesParams(CheckParams):
    """No Idempotency-Key executed twice; replays identical.

    `min_retried_keys`: fewer retried keys than this and the check is inconclusive, not a pass (a run in which
    nothing was retried proves nothing about retries); 0 lets a scenario where retries are incidental pass."""

    min_retried_keys: int = Field(1, ge=0, le=1_000_000)


@register
class IdempotentRetries(Check):
    name = "idempotent-retries"
    params_model = IdempotentRetriesParams
    params: IdempotentRetriesParams

    def start(self, ctx: Any) -> None:
        self.samples: list[tuple[float, float]] = []
        self.exposed: bool | None = None        # None: not known yet; False: the endpoint has no Triton counters
        self.failed_reads = 0
        self.url = (getattr(ctx.target, "inference_url", None) or "").rstrip("/")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self.url:
            self._thread = threading.Thread(target=self._poll, daemon=True, name="idempotent-retries")
            self._thread.start()

    def _read(self, http: httpx.Client) -> float | None:
        response = http.get(f"{self.url}/metrics")
        if response.status_code != 200:
            return None
        samples = list(parse_samples(response.text))
        values = [s.value for s in samples if s.name == SUCCESS_METRIC]
        if values:
            return float(sum(values))
        # Triton exposes its per-model counters once a model is loaded; before any request has completed
        # a deployment may not print the success counter yet, which means zero
        return 0.0 if any(s.name.startswith("nv_inference_") for s in samples) else None

    def _poll(self) -> None:
        """Sample the success counter until the run stops. One failed read is not the end of the evidence: reads
        that fail are counted and the poll goes on; only an endpoint that never showed Triton's counters in its
        first EXPOSE_WAIT_S is taken as not exposing them (client evidence only)."""
        started = time.time()
        with httpx.Client(timeout=2.0) as http:
            while not self._stop.is_set():
                try:
                    value = self._read(http)
                except (httpx.HTTPError, ValueError):
                    value = None
                if value is not None:
                    self.exposed = True
                    self.samples.append((time.time(), value))
                else:
                    self.failed_reads += 1
                    if not self.samples and time.time() - started > EXPOSE_WAIT_S:
                        self.exposed = False
                        return          # the endpoint does not expose Triton's counters: client evidence only
                self._stop.wait(POLL_S)

    def stop(self) -> None:
        if getattr(self, "_stop", None) is not None:
            self._stop.set()
        if getattr(self, "_thread", None) is not None:
            self._thread.join(timeout=5)

    def _server_orphans(self, records: list[dict[str, Any]]) -> dict[str, Any] | None:
        samples = getattr(self, "samples", [])
        if len(samples) < 2 or not records:
            return None
        cut = max(r.get("t_end") or 0.0 for r in records) - SETTLE_S
        base_t, base = samples[0]
        upto = [s for s in samples if s[0] <= cut]
        if not upto or upto[-1][0] <= base_t:
            return None
        at, value = upto[-1]
        completed = value - base
        delivered = sum(1 for r in records if _delivered(r) and not _replayed(r) and base_t <= (r.get("t_end") or 0) <= at)
        return {"server_completed": int(completed), "client_delivered": delivered,
                "not_received": int(completed) - delivered, "compared_at": round(at, 3)}

    def evaluate(self, evidence: Evidence):
        records = evidence.records()
        attempts: dict[str, list[dict]] = defaultdict(list)
        for record in records:
            if record.get("key"):
                attempts[record["key"]].append(record)
        retried = {k: v for k, v in attempts.items() if len(v) > 1}
        executed_twice, replay_mismatch = [], []
        for key, tries in retried.items():
            executions = [t for t in tries if _delivered(t) and not _replayed(t)]
            if len(executions) > 1:
                executed_twice.append(key)
            originals = {t.get("digest") for t in executions}
            for t in tries:
                if _replayed(t) and originals and t.get("digest") not in originals:
                    replay_mismatch.append(key)
        server = self._server_orphans(records)
        unseen = server["not_received"] if server else 0
        duplicated_on_server = bool(retried) and unseen > SKEW_TOLERANCE
        figures = {"retried_keys": len(retried), "executed_twice": executed_twice[:20],
                   "replay_mismatch": replay_mismatch[:20], "server": server,
                   "min_retried_keys": self.params.min_retried_keys,
                   "server_reads_failed": getattr(self, "failed_reads", 0)}
        if executed_twice or replay_mismatch or duplicated_on_server:
            parts = [f"{len(executed_twice)} of {len(retried)} retried key(s) answered twice",
                     f"{len(replay_mismatch)} replay(s) differ from the original"]
            if server:
                parts.append(f"the server completed {server['server_completed']} requests but clients received "
                             f"{server['client_delivered']}: {unseen} execution(s) of retried keys ran again")
            return self.result(False, "; ".join(parts), **figures)
        if len(retried) < self.params.min_retried_keys:
            return self.inconclusive(f"{len(retried)} retried key(s), fewer than the {self.params.min_retried_keys} "
                                     f"this check needs: nothing shows how retries were executed", **figures)
        if getattr(self, "exposed", None) and server is None:
            return self.inconclusive(f"the server's {SUCCESS_METRIC} was sampled {len(self.samples)} time(s) "
                                     f"({self.failed_reads} read(s) failed): too few to see a retried key executed "
                                     f"again on a replica the client gave up on", **figures)
        seen = (f"; server completed {server['server_completed']}, clients received {server['client_delivered']}"
                if server else "; client evidence only (the endpoint exposes no Triton counters)")
        return self.result(True, f"{len(retried)} retried key(s), none executed twice{seen}", **figures)
