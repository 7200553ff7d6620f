"""Realistic run results and load records for the report tests, built the way the runner fills them."""
from __future__ import annotations

from harness.report.model import (CheckResult, FaultRecord, RunMetrics, RunResult, StopRecord, WindowMetrics)

T0 = 1_790_000_000.0   # a fixed Unix time keeps file contents deterministic


def windows() -> list[WindowMetrics]:
    return [
        WindowMetrics(window="steady-state", requests=400, errors=0, error_rate=0.0, ttft_p50_ms=180.0,
                      ttft_p99_ms=310.0, tbt_p50_ms=21.0, tbt_p99_ms=34.0, e2e_p99_ms=4100.0),
        WindowMetrics(window="fault:ecc-double-bit-error", requests=380, errors=4, error_rate=4 / 380,
                      ttft_p50_ms=190.0, ttft_p99_ms=470.0, tbt_p50_ms=22.0, tbt_p99_ms=48.0, e2e_p99_ms=5200.0,
                      degraded=True),
        WindowMetrics(window="recovery", requests=410, errors=0, error_rate=0.0, ttft_p50_ms=182.0,
                      ttft_p99_ms=320.0, tbt_p50_ms=21.0, tbt_p99_ms=35.0, e2e_p99_ms=4150.0),
    ]


def make_run(*, scenario: str = "ecc-double-bit-error", failed: tuple[str, ...] = (), landed: bool | None = True,
             stop: StopRecord | None = None, profile: str = "article", evidence_extra: dict | None = None,
             error: str | None = None) -> RunResult:
    names = ["fault-landed", "node-drained", "no-corrupted-responses", "alarm-fired", "slo"]
    checks = [CheckResult(name=name, passed=name not in failed,
                          reason=(f"{name}: 3 corrupted answers reached clients after 41.2 s" if name in failed
                                  else f"{name}: ok within 41.2 s of 120 s"),
                          evidence={"node": "ip-10-0-1-12.us-east-2.compute.internal", "seconds": 41.2,
                                    **(evidence_extra or {})},
                          duration_s=0.25)
              for name in names]
    fault = FaultRecord(name="ecc-double-bit-error", params={"gpu": 0, "node": {"zone": "us-east-2a"}},
                        target="node ip-10-0-1-12.us-east-2.compute.internal gpu 0 (us-east-2a)",
                        injected_at=T0 + 60, landed=landed, landed_at=(T0 + 61.5) if landed else None,
                        landed_evidence={"DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": 1} if landed else {},
                        reverted_at=T0 + 200)
    return RunResult.build(scenario=scenario, description="One uncorrectable ECC error must drain its node.",
                           target="twin", profile=profile, seed=7, started_at=T0, ended_at=T0 + 240,
                           checks=checks, faults=[fault], stop_condition=stop, error=error,
                           metrics=RunMetrics(requests=1190, errors=4, ttft_p50_ms=184.0, ttft_p99_ms=420.0,
                                              tbt_p50_ms=21.0, tbt_p99_ms=44.0, windows=windows()),
                           measurement_degraded=True, measurement_degraded_reason="load CPU 81% during fault window")


def write_records(path, n: int = 120, start: float = T0 + 10) -> None:
    """Per-request records as the load process writes them (JSONL, one per request)."""
    import json

    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            failed = i % 17 == 0
            fh.write(json.dumps({"key": f"k{i}", "attempt": 1, "status": 503 if failed else 200,
                                 "t_start": start + i * 0.5, "t_end": start + i * 0.5 + 3.0,
                                 "ttft_ms": 200.0, "tokens": 128, "window": "steady-state",
                                 "error": "http 503" if failed else None}) + "\n")
        fh.write('{"key": "torn", "t_sta')   # a crash mid-write leaves a torn last line


