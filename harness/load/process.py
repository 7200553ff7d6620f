"""`LoadProcess`: streaming load in child processes, steered by window name, merged exactly at the end.

Why child processes: Locust monkey-patches the standard library through gevent on import, which would
break the harness's own threads and asyncio code; and the load generator must not share a core's event
loop with anything whose lag it would then measure. So this module never imports Locust: it writes a
config, starts `python -m harness.load.child` (one local runner, or a Locust master plus `spec.workers`
workers in Locust's own master/worker mode, and room for `spec.remote_workers` started elsewhere with
`g7chaos load-worker`), and talks to the local runner or the master through small files in the output folder
(see `harness.load.child`). Workers share no file with anyone: they talk to their master over Locust's
messaging only (`harness.load.wire`), and the master writes what they send.

Usage:
    load = LoadProcess()
    load.start(url, spec, out_dir, served_by_headers=["x-served-by"], first_window="warmup")
    load.mark_window("steady"); ...; load.mark_window("fault:ecc-double-bit-error")
    figures = load.live()                  # refreshed by the children every 200 ms
    result = load.stop(timeout_s=20)       # LoadResult: per-window metrics, histograms, canaries
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from pydantic import BaseModel, Field

from harness.jsonl import read_records
from harness.load.recorder import MergedWindow, WindowFigures, merge_snapshots
from harness.load.spec import LoadSpec

CONFIG_ENV = "G7CHAOS_LOAD_CONFIG"    # same name as harness.load.locustfile.CONFIG_ENV (not imported: gevent)
TOKEN_ENV = "G7CHAOS_LOAD_TOKEN"      # same name as harness.load.wire.TOKEN_ENV


class LiveFigures(BaseModel):
    """The current window's figures over all load processes, as of their last report."""

    window: str | None = None
    requests: int = 0
    errors: int = 0
    error_rate: float = 0.0
    ttft_p99_ms: float | None = None
    tbt_p99_ms: float | None = None
    tokens: int = 0
    requests_per_s: float = 0.0
    tokens_per_s: float = 0.0
    users: int = 0
    ramped: bool = Field(False, description="every measuring process reported, with all its users begun")
    processes_reporting: int = 0
    cpu_share_max: float = 0.0
    loop_lag_p99_ms_max: float = 0.0
    degraded: bool = False
    degraded_reason: str | None = None
    age_s: float | None = Field(None, description="seconds since the oldest process's report")


class CanaryAnswer(BaseModel):
    prompt: int
    digest: str
    text: str = ""
    window: str = ""
    t_end: float = 0.0
    served_by: dict[str, str] = Field(default_factory=dict)
    key: str = ""
    worker: int = 0


class CanaryOutcome(BaseModel):
    """Golden answers learned in the learning window, and every later answer that differed from them."""

    learn_window: str
    learned: bool = False
    golden: dict[int, CanaryAnswer] = Field(default_factory=dict)
    checked: int = 0
    mismatches: list[CanaryAnswer] = Field(default_factory=list)
    checked_at: list[float] = Field(default_factory=list)     # when each checked answer ended (wall time)
    errored_at: list[float] = Field(default_factory=list)     # canaries outside the learning window that failed
    learn_disagreements: int = 0


class LoadResult(BaseModel):
    """Everything the load measured. Percentiles are our HDR histograms', never Locust's buckets."""

    out_dir: str
    windows: list[WindowFigures]
    whole: WindowFigures
    histograms: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="window -> histogram name -> base64 HDR encoding (µs)")
    canary: CanaryOutcome
    records_path: str
    dropped_path: str | None = Field(
        None, description="open loop: arrivals dropped at a full queue, one JSON line each (t_arrival, window, "
                          "worker); None for a closed loop, which has no arrivals to drop")
    stats_csv: str | None = None
    degraded: bool = False
    degraded_reason: str | None = None
    processes: int = 1
    complete: bool = True
    problems: list[str] = Field(default_factory=list)
    clocks: list[dict[str, Any]] = Field(
        default_factory=list, description="per worker: process, name, offset_ms, uncertainty_ms (its clock against "
                                          "the master's, as of its last report)")

    def window(self, name: str) -> WindowFigures | None:
        return next((w for w in self.windows if w.window == name), None)


class LoadError(RuntimeError):
    """The load processes could not start or report."""


def _free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class LoadProcess:
    """Owns the load child processes of one run; every wait is bounded by a deadline."""

    def __init__(self, python: str | None = None) -> None:
        self.python = python or sys.executable
        self.procs: list[subprocess.Popen[bytes]] = []
        self.names: list[str] = []
        self.out_dir: Path | None = None
        self.spec: LoadSpec | None = None
        self.seq = 0
        self.window_name: str | None = None
        self.measuring = 0
        self.master_address: str | None = None     # HOST:PORT the master binds, when there is one
        self._result: LoadResult | None = None

    # ---- lifecycle -------------------------------------------------------------------------------
    def start(self, url: str, spec: LoadSpec, out_dir: str | Path, served_by_headers: list[str] | None = None,
              first_window: str = "warmup", master: tuple[str, int] | None = None) -> None:
        """Start the load: one local process, or a Locust master (bound to `master`, default a free loopback
        port) with `spec.workers` local workers and room for `spec.remote_workers` more. Workers join with the
        run's token: `G7CHAOS_LOAD_TOKEN` when set (a game day that starts remote workers itself), else a new
        random one, written to `<out_dir>/load-token` (owner-only) for whoever starts the remote workers."""
        if self.procs:
            raise RuntimeError("load already started")
        out = Path(out_dir).resolve()
        out.mkdir(parents=True, exist_ok=True)
        for pattern in ("live-*.json", "final-*.json", "records-*.jsonl", "dropped-*.jsonl", "members.json"):
            for stale in out.glob(pattern):
                stale.unlink()
        self.out_dir, self.spec, self.window_name = out, spec, first_window
        self._write_control(first_window, stop=False)
        base = {"url": url.rstrip("/"), "spec": spec.model_dump(mode="json"), "out_dir": str(out),
                "served_by_headers": list(served_by_headers or []), "first_window": first_window,
                "processes": spec.workers}
        if spec.workers == 1 and not spec.remote_workers:
            self.measuring = 1
            self._spawn("local", dict(base, process_index=0))
            return
        host, port = master or ("127.0.0.1", 0)
        port = port or _free_port(host)
        self.master_address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.measuring = spec.workers + spec.remote_workers
        token = os.environ.get(TOKEN_ENV) or secrets.token_urlsafe(24)
        token_file = out / "load-token"
        token_file.touch(mode=0o600)
        token_file.write_text(token)
        self._spawn("master", dict(base, processes=self.measuring),
                    ["--master", self.master_address, "--expect-workers", str(self.measuring)], token=token)
        for i in range(spec.workers):
            self._spawn("worker", None, ["--master", self.master_address, "--name", f"worker-{i}"],
                        name=f"worker-{i}", token=token)

    def _spawn(self, role: str, config: dict[str, Any] | None, extra: list[str] | None = None,
               name: str | None = None, token: str | None = None) -> None:
        """One load child; a worker gets no configuration file (its master sends what it needs)."""
        assert self.out_dir is not None
        name = name or role
        env = dict(os.environ)
        env.pop("LOCUST_LOCUSTFILE", None)
        env.pop(CONFIG_ENV, None)
        cmd = [self.python, "-m", "harness.load.child"]
        if config is not None:
            cfg = self.out_dir / f"config-{name}.json"
            cfg.write_text(json.dumps(config, indent=1))
            env[CONFIG_ENV] = str(cfg)
            cmd.append(str(cfg))
        if token is not None:
            env[TOKEN_ENV] = token
        cmd += ["--role", role, *(extra or [])]
        log = (self.out_dir / f"{name}.log").open("wb")
        self.procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL, cwd=str(Path(__file__).resolve().parents[2])))
        log.close()
        self.names.append(name)

    def __enter__(self) -> "LoadProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.procs and self._result is None:
            self.stop()

    # ---- control ---------------------------------------------------------------------------------
    def _write_control(self, window: str, stop: bool) -> None:
        assert self.out_dir is not None
        self.seq += 1
        path = self.out_dir / "control.json"
        tmp = path.with_name("control.json.tmp")
        tmp.write_text(json.dumps({"seq": self.seq, "window": window, "stop": stop, "t": time.time()}))
        os.replace(tmp, path)

    def mark_window(self, name: str) -> None:
        """From now on samples go to window `name` (children pick it up within 50 ms)."""
        self.window_name = name
        self._write_control(name, stop=False)

    def wait_started(self, timeout_s: float = 30.0) -> LiveFigures:
        """Block until every measuring process reports live figures with all its users spawned; raise
        `LoadError` if one dies first.

        A Locust child takes about a second to import, and then `users / spawn_rate` seconds to spawn its users:
        a runner waits here before it starts the steady-state clock, so that the steady state is judged at the
        full load, and the ramp (greenlets and connections being made, the event loop busy with it) is measured
        in no judged window. The deadline is `timeout_s` plus the spawn time.
        """
        assert self.out_dir is not None and self.spec is not None
        wait_s = timeout_s + self.spec.users / self.spec.spawn_rate
        deadline = time.monotonic() + wait_s
        while True:
            dead = [p for p in self.procs if p.poll() is not None]
            if dead:
                raise LoadError(f"load process exited with {dead[0].returncode} before it started: "
                                f"{self._log_tail()}")
            if (live := self.live()).ramped:      # ramped: every measuring process has reported
                return live
            if time.monotonic() > deadline:
                raise LoadError(f"load processes did not report with their users spawned within {wait_s:g} s: "
                                f"{self._log_tail()}")
            try:   # wake at once if the child dies, else re-read its status file shortly
                self.procs[0].wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                pass

    def _log_tail(self, chars: int = 600) -> str:
        assert self.out_dir is not None
        tails = []
        for log in sorted(self.out_dir.glob("*.log")):
            text = log.read_text(errors="replace").strip()
            if text:
                tails.append(f"[{log.name}] {text[-chars:]}")
        return " ".join(tails) or "no output"

    def alive(self) -> bool:
        return bool(self.procs) and all(p.poll() is None for p in self.procs)

    def live(self) -> LiveFigures:
        """Merge the children's latest live reports (current window only)."""
        assert self.out_dir is not None
        reports = [r for r in (_read_json(p) for p in sorted(self.out_dir.glob("live-*.json"))) if r]
        if not reports:
            return LiveFigures(window=self.window_name)
        current = [r for r in reports if r["window"]["name"] == self.window_name] or reports
        merged = MergedWindow(current[0]["window"]["name"])
        for r in current:
            merged.add(r["window"])
        m = merged.metrics()
        reasons = [r["degraded"] for r in reports if r.get("degraded")]
        now = time.time()
        return LiveFigures(
            window=m.window, requests=m.requests, errors=m.errors, error_rate=m.error_rate,
            ttft_p99_ms=m.ttft_p99_ms, tbt_p99_ms=m.tbt_p99_ms, tokens=m.tokens,
            requests_per_s=round(m.requests / span, 2) if (span := m.last_wall - m.first_wall) > 0 else 0.0,
            tokens_per_s=round(m.tokens / span, 1) if span > 0 else 0.0,
            users=sum(int(r.get("users", 0)) for r in reports), processes_reporting=len(current),
            ramped=len(reports) >= self.measuring and all(r.get("ramped") for r in reports),
            cpu_share_max=max(float(r.get("cpu_share", 0)) for r in reports),
            loop_lag_p99_ms_max=max(float(r.get("loop_lag_p99_ms", 0)) for r in reports),
            degraded=bool(reasons), degraded_reason=reasons[0] if reasons else None,
            age_s=round(now - min(float(r.get("t", now)) for r in reports), 3))

    def stop(self, timeout_s: float = 20.0) -> LoadResult:
        """Ask the children to stop, wait until `timeout_s`, then terminate/kill; merge what they wrote."""
        if self._result is not None:
            return self._result
        assert self.out_dir is not None and self.spec is not None
        problems: list[str] = []
        self._write_control(self.window_name or "warmup", stop=True)
        deadline = time.monotonic() + timeout_s
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                problems.append(f"load child {proc.pid} did not stop within {timeout_s:g} s: terminated")
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=3.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=3.0)
        self._result = self._collect(problems)
        return self._result

    # ---- results ---------------------------------------------------------------------------------
    def _collect(self, problems: list[str]) -> LoadResult:
        assert self.out_dir is not None and self.spec is not None
        out = self.out_dir
        snapshots: list[dict[str, Any]] = []
        degraded_reasons: list[str] = []
        members = {int(m["index"]): m["name"] for m in (_read_json(out / "members.json") or {}).get("members", [])}
        clocks = []
        for i in range(self.measuring):
            live = _read_json(out / f"live-{i}.json")
            clock = (live or {}).get("clock")
            if clock is not None and i in members:
                clocks.append({"process": i, "name": members[i], "offset_ms": clock["offset_ms"],
                               "uncertainty_ms": clock["uncertainty_ms"]})
            final = _read_json(out / f"final-{i}.json")
            if final is None:
                who = f"load worker {members[i]} (process {i})" if i in members else f"load process {i}"
                if live:
                    snapshots.append({"windows": [live["window"]]})
                    lost_at = datetime.fromtimestamp(float(live.get("t", 0)), timezone.utc).isoformat(timespec="milliseconds")
                    lost = (f"{who} lost at {lost_at} with {int(live.get('users', 0))} users: it left no final "
                            "figures, and its last live report (200 ms at most before) is used")
                    problems.append(lost)
                    degraded_reasons.append(lost)
                else:
                    problems.append(f"{who} left no figures at all")
                continue
            snapshots.append(final)
        merged = merge_snapshots(snapshots)
        for name, window in merged.items():
            degraded_reasons.extend(f"{name}: {reason}" for reason in window.degraded)
        whole = MergedWindow("whole")
        for snap in snapshots:
            for win in snap.get("windows", []):
                whole.add(win)
        records = self._merge_parts("records")
        dropped = self._merge_parts("dropped") if self.spec.arrival == "poisson" else None
        stats_csv = out / "stats_stats.csv"
        for name, proc in zip(self.names, self.procs):
            if proc.returncode not in (0, None):
                problems.append(f"load {name} process exited with {proc.returncode} (see {name}.log)")
        return LoadResult(
            out_dir=str(out), windows=[m.metrics() for m in merged.values()], whole=whole.metrics(),
            histograms={name: m.encoded() for name, m in merged.items()},
            canary=analyse_canaries(records, self.spec.canary.learn_window),
            records_path=str(records), dropped_path=str(dropped) if dropped is not None else None,
            stats_csv=str(stats_csv) if stats_csv.exists() else None,
            degraded=bool(degraded_reasons), degraded_reason="; ".join(dict.fromkeys(degraded_reasons)) or None,
            processes=self.measuring, complete=not problems, problems=problems, clocks=clocks)

    def _merge_parts(self, name: str) -> Path:
        """`<name>.jsonl`: the measuring processes' `<name>-<index>.jsonl` files one after the other (a process
        that wrote none adds nothing), so every reader sees one file however many workers ran. A part cut
        mid-line (its process killed mid-write) is ended with a newline: its torn last line must not swallow the
        next part's first one."""
        assert self.out_dir is not None
        merged = self.out_dir / f"{name}.jsonl"
        with merged.open("wb") as sink:
            for i in range(self.measuring):
                part = self.out_dir / f"{name}-{i}.jsonl"
                if part.exists():
                    data = part.read_bytes()
                    sink.write(data)
                    if data and not data.endswith(b"\n"):
                        sink.write(b"\n")
        return merged


def analyse_canaries(records: str | Path | Iterable[dict[str, Any]], learn_window: str) -> CanaryOutcome:
    """Golden answer per prompt = the most common successful answer in `learn_window`; every successful
    canary answer outside it that differs is a mismatch (with time, window and served-by).

    Golden answers come from `learn_window` only: learning them from a later window (the fault's) would take
    the corrupted answer as the truth. No canary answered there: nothing is learned, and the check says so.
    Canaries that failed outside it are kept (`errored_at`), so a check can tell "no wrong answer" from "no
    answer at all".
    """
    source = read_records(records) if isinstance(records, (str, Path)) else records
    all_canaries = [r for r in source if r.get("canary") is not None]
    canaries = [r for r in all_canaries if r.get("error") is None and r.get("digest")]
    outcome = CanaryOutcome(learn_window=learn_window)
    outcome.errored_at = sorted(float(r.get("t_end", 0.0)) for r in all_canaries
                                if (r.get("error") is not None or not r.get("digest")) and r.get("window") != learn_window)
    learning: dict[int, list[dict[str, Any]]] = {}
    for r in canaries:
        if r.get("window") == learn_window:
            learning.setdefault(int(r["canary"]), []).append(r)
    for prompt, rs in learning.items():
        counts = Counter(r["digest"] for r in rs)
        digest, _ = counts.most_common(1)[0]
        first = next(r for r in rs if r["digest"] == digest)
        outcome.golden[prompt] = _answer(first)
        outcome.learn_disagreements += sum(n for d, n in counts.items() if d != digest)
    outcome.learned = bool(outcome.golden)
    for r in canaries:
        if r.get("window") == learn_window:
            continue
        golden = outcome.golden.get(int(r["canary"]))
        if golden is None:
            continue
        outcome.checked += 1
        outcome.checked_at.append(float(r.get("t_end", 0.0)))
        if r["digest"] != golden.digest:
            outcome.mismatches.append(_answer(r))
    outcome.mismatches.sort(key=lambda a: a.t_end)
    outcome.checked_at.sort()
    return outcome


def _answer(r: dict[str, Any]) -> CanaryAnswer:
    return CanaryAnswer(prompt=int(r["canary"]), digest=r["digest"], text=r.get("text", ""),
                        window=r.get("window", ""), t_end=float(r.get("t_end", 0.0)),
                        served_by=r.get("served_by") or {}, key=r.get("key", ""), worker=int(r.get("worker", 0)))
