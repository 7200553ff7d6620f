"""idempotent-retries: no Idempotency-Key was executed twice.

A retry carries the key of its first attempt. If two attempts of one key both got a 200 and streamed
tokens and neither was marked as a replay (`Idempotent-Replayed: true`), the deployment ran the request
twice: a double charge, a duplicated side effect. Replays must carry the same text as the original.
"""
from __future__ import annotations

from collections import defaultdict

from harness.checks.base import Check, Evidence, register

REPLAY_HEADER = "idempotent-replayed"


@register
class IdempotentRetries(Check):
    name = "idempotent-retries"

    def evaluate(self, evidence: Evidence):
        attempts: dict[str, list[dict]] = defaultdict(list)
        for record in evidence.records():
            if record.get("key"):
                attempts[record["key"]].append(record)
        retried = {k: v for k, v in attempts.items() if len(v) > 1}
        executed_twice, replay_mismatch = [], []
        for key, tries in retried.items():
            executions = [t for t in tries if t.get("status") == 200 and t.get("tokens")
                          and str((t.get("served_by") or {}).get(REPLAY_HEADER, "")).lower() != "true"]
            if len(executions) > 1:
                executed_twice.append(key)
            originals = {t.get("digest") for t in executions if not t.get("error")}
            for t in tries:
                if str((t.get("served_by") or {}).get(REPLAY_HEADER, "")).lower() == "true" and originals \
                        and t.get("digest") not in originals:
                    replay_mismatch.append(key)
        if executed_twice or replay_mismatch:
            return self.result(False, f"{len(executed_twice)} of {len(retried)} retried key(s) executed more than once; "
                                      f"{len(replay_mismatch)} replay(s) differ from the original",
                               retried_keys=len(retried), executed_twice=executed_twice[:20],
                               replay_mismatch=replay_mismatch[:20])
        return self.result(True, f"{len(retried)} retried key(s), none executed twice", retried_keys=len(retried))
