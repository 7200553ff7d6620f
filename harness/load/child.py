"""Entry point of a load child process: `python -m harness.load.child CONFIG.json --role local|master|worker`.

Uses Locust's library API (Environment + runner) rather than its CLI so that this process owns its
shutdown: it writes its final histograms and Locust's stats CSV however the run ends.

Control channel with the parent (`harness.load.process`) is plain files in the output folder, because
they survive any crash and need no extra port:
- `control.json` (parent writes, atomically): `{"seq": n, "window": "...", "stop": false}`; polled every 50 ms.
- `live-<index>.json` (each local/worker child writes every 200 ms): the current window's counts and
  encoded histograms plus the self-monitor's figures, so the parent can merge live figures exactly.
- `final-<index>.json`: every window's snapshot, written once at the end.
- `stats_*.csv`: Locust's own statistics (local or master role).

A child quits when the parent disappears, when told to stop, or `spec.duration_s` after start.
"""
from __future__ import annotations

# Locust monkey-patches the standard library through gevent: it must be imported first.
import locust  # noqa: F401  isort: skip

import argparse
import gc
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import gevent
from locust import events
from locust.env import Environment
from locust.stats import PERCENTILES_TO_REPORT, StatsCSVFileWriter

from harness.load import locustfile
from harness.load.locustfile import CONFIG_ENV, StreamingLLMUser, state, write_final

CONTROL_POLL_S = 0.05
LIVE_EVERY_S = 0.2
WORKER_WAIT_S = 30.0


def _yield() -> None:
    gevent.sleep(0)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, separators=(",", ":")))
    os.replace(tmp, path)


def read_control(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def write_stats_csv(env: Environment, base: Path) -> None:
    """Locust's raw statistics, once, at the end (for dashboards; SLOs are judged on our histograms)."""
    writer = StatsCSVFileWriter(env, PERCENTILES_TO_REPORT, str(base))
    writer.requests_csv_writer.writerow(writer.requests_csv_columns)
    writer._requests_data_rows(writer.requests_csv_writer)
    writer.failures_csv_writer.writerow(writer.failures_columns)
    writer._failures_data_rows(writer.failures_csv_writer)
    writer.exceptions_csv_writer.writerow(writer.exceptions_columns)
    writer._exceptions_data_rows(writer.exceptions_csv_writer)
    writer.stats_history_csv_writer.writerow(writer.stats_history_csv_columns)
    writer.close_files()


class Child:
    def __init__(self, role: str, config: dict[str, Any], master_port: int, expect_workers: int) -> None:
        self.role = role
        self.config = config
        self.out_dir = Path(config["out_dir"])
        self.control_path = self.out_dir / "control.json"
        self.spec = locustfile.SPEC
        self.master_port = master_port
        self.expect_workers = expect_workers
        self.parent = os.getppid()
        self.started = time.monotonic()
        self.control_seq = -1
        self.control_key: tuple[int, int, int] | None = None
        self.stopping = False
        self.env = Environment(user_classes=[StreamingLLMUser], host=config["url"], events=events)
        StreamingLLMUser.host = config["url"]
        if role == "master":
            self.runner = self.env.create_master_runner("127.0.0.1", master_port)
        elif role == "worker":
            self.runner = self.env.create_worker_runner("127.0.0.1", master_port)
        else:
            self.runner = self.env.create_local_runner()
        self.env.events.init.fire(environment=self.env, runner=self.runner, web_ui=None)

    @property
    def measures(self) -> bool:
        return self.role != "master"

    def should_quit(self) -> str | None:
        if os.getppid() != self.parent:
            return "parent gone"
        if time.monotonic() - self.started > self.spec.duration_s + 5.0:
            return "duration bound"
        return None

    def control_changed(self) -> bool:
        """Whether control.json was replaced since the last look: a `stat` instead of open, read and parse
        20 times a second (the parent replaces the file atomically, so a new file is a new inode/mtime)."""
        try:
            st = os.stat(self.control_path)
        except OSError:
            return self.control_key is not None
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key == self.control_key:
            return False
        self.control_key = key
        return True

    def control_loop(self) -> None:
        """Window switches and stop requests from the parent; live figures back to it."""
        last_live = 0.0
        while True:
            ctl = read_control(self.control_path) if self.control_changed() else {"seq": self.control_seq}
            seq = int(ctl.get("seq", -1))
            if seq != self.control_seq:
                self.control_seq = seq
                if self.measures and ctl.get("window"):
                    state().recorder.switch(str(ctl["window"]))
                if ctl.get("stop"):
                    self.quit("stop requested")
                    return
            why = self.should_quit()
            if why:
                self.quit(why)
                return
            now = time.monotonic()
            if self.measures and now - last_live >= LIVE_EVERY_S:
                last_live = now
                self.write_live()
            gevent.sleep(CONTROL_POLL_S)

    def write_live(self) -> None:
        st = state()
        st.flush()
        snap = st.recorder.current.snapshot(pause=_yield)   # in slices: streams read in between
        snap["last_wall"] = time.time()
        write_json_atomic(self.out_dir / f"live-{st.index}.json", {
            "window": snap, "seq": self.control_seq, "degraded": st.monitor.degraded,
            "cpu_share": round(st.monitor.cpu_share, 3), "loop_lag_p99_ms": round(st.monitor.lag_p99_ms, 3),
            "users": self.runner.user_count, "t": time.time()})

    def quit(self, why: str) -> None:
        if self.stopping:
            return
        self.stopping = True
        logging.info("load child %s quitting: %s", self.role, why)
        if self.measures:
            state().running = False
            state().recorder.discard_from_now()
        self.runner.quit()

    def run(self) -> int:
        # SIGTERM (the parent's second resort, or a pod being deleted) still ends with final figures written
        gevent.signal_handler(signal.SIGTERM, self.quit, "SIGTERM")
        gevent.spawn(self.control_loop)
        if self.role == "master":
            deadline = time.monotonic() + WORKER_WAIT_S
            while len(self.runner.clients.ready) < self.expect_workers:
                if time.monotonic() > deadline or self.should_quit():
                    logging.error("only %d of %d workers connected", len(self.runner.clients.ready),
                                  self.expect_workers)
                    self.runner.quit()
                    return 4
                gevent.sleep(0.05)
        # Everything imported and built so far lives for the whole run: frozen, a full collection no longer walks
        # it. Measured against the paced server at 300 streams, full collections held the event loop 30-60 ms
        # before, 15-20 ms after: a stall every stream in flight sees as token lag.
        gc.collect()
        gc.freeze()
        if self.role in ("local", "master"):
            self.runner.start(self.spec.users, spawn_rate=self.spec.spawn_rate)
        self.runner.greenlet.join()
        self.finish()
        return 0

    def finish(self) -> None:
        if self.measures:
            write_final(state())
            self.write_live()
        if self.role in ("local", "master"):
            write_stats_csv(self.env, self.out_dir / "stats")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness.load.child")
    parser.add_argument("config")
    parser.add_argument("--role", choices=("local", "master", "worker"), default="local")
    parser.add_argument("--master-port", type=int, default=0)
    parser.add_argument("--expect-workers", type=int, default=0)
    args = parser.parse_args(argv)
    if os.environ.get(CONFIG_ENV) != args.config:
        print(f"{CONFIG_ENV} must name the config file before Python starts", file=sys.stderr)
        return 2
    config = json.loads(Path(args.config).read_text())
    logging.basicConfig(level=logging.WARNING, format=f"%(asctime)s {args.role} %(levelname)s %(message)s")
    return Child(args.role, config, args.master_port, args.expect_workers).run()


if __name__ == "__main__":
    sys.exit(main())
