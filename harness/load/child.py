"""Entry point of a load child process: `python -m harness.load.child [CONFIG.json] --role local|master|worker`.

Uses Locust's library API (Environment + runner) rather than its CLI so that this process owns its
shutdown: its final histograms and Locust's stats CSV are written however the run ends.

The control channel with the parent (`harness.load.process`) is plain files in the output folder of the local
runner or the master, because they survive any crash and need no extra port:
- `control.json` (parent writes, atomically): `{"seq": n, "window": "...", "stop": false}`; polled every 50 ms.
- `live-<index>.json` (every 200 ms per measuring process): the current window's counts and encoded
  histograms plus the self-monitor's figures, so the parent can merge live figures exactly.
- `final-<index>.json`: every window's snapshot, written once at the end; `records-<index>.jsonl` and
  `dropped-<index>.jsonl`: one line per attempt and per dropped arrival; `members.json`: which worker is which.
- `stats_*.csv`: Locust's own statistics (local or master role).

A worker writes none of these: it has no configuration file and no output folder. It joins its master with the
run's token, gets its configuration in the master's welcome, and sends every figure as a message; the master
writes the files (harness/load/wire.py). Windows switch in every worker at once, on the master's message.

A child quits when the parent disappears, when told to stop, or `spec.duration_s` after start; a worker when
its master tells it to, or MASTER_GONE_S after its master went silent.
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
import socket
import time
from pathlib import Path
from typing import IO, Any

import gevent
import gevent.event
from locust import events
from locust import runners as locust_runners
from locust.runners import STATE_INIT, STATE_SPAWNING
from locust.env import Environment
from locust.rpc import Message
from locust.stats import PERCENTILES_TO_REPORT, StatsCSVFileWriter

from harness.load import locustfile, wire
from harness.load.membership import CLOCK_FIRST, ClockOffset, Gate, Member
from harness.load.locustfile import CONFIG_ENV, StreamingLLMUser, state, write_final

CONTROL_POLL_S = 0.05
LIVE_EVERY_S = 0.2
WORKER_WAIT_S = 30.0
FINAL_WAIT_S = 10.0
# A worker whose master sent no heartbeat for this long leaves (Locust's default, 60 s, would keep load on a
# production endpoint a minute after its run ended).
MASTER_GONE_S = 5.0
CLOCK_EVERY_S = 5.0
# How long a leaving worker's last messages may take to reach the master (milliseconds on any network a load
# worker is worth running on; a master that is gone would otherwise hold the worker up for nothing).
LINGER_S = 1.0


def _yield() -> None:
    gevent.sleep(0)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Replace `path` with `data` as JSON, from a greenlet. The text is made in the event loop (tens of
    microseconds); the write and the rename go to gevent's thread pool. File system calls do not yield to the
    event loop: measured at 100 streams against the paced server, writing a live report held the loop 1.1 ms
    (p50, 2.2 ms at most) five times a second, the longest hold the loop had, and every stream's next token
    waited behind it. In a thread they release the GIL and the streams are read meanwhile."""
    text = json.dumps(data, separators=(",", ":"))
    gevent.get_hub().threadpool.apply(_replace_with_text, (path, text))


def _replace_with_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(text)
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
    """One load process: `local` (measures alone), `master` (admits and steers workers, measures nothing, writes
    what they ship) or `worker` (measures, ships everything to its master; may run on another host)."""

    def __init__(self, role: str, config: dict[str, Any], master: tuple[str, int] | None = None,
                 expect_workers: int = 0, token: str = "", name: str = "") -> None:
        self.role = role
        self.config = config
        self.spec = locustfile.SPEC
        self.parent = os.getppid()
        self.started = time.monotonic()
        self.control_seq = -1
        self.control_key: tuple[int, int, int] | None = None
        self.stopping = False
        self.users_frozen = False     # users frozen out of the collector once all have begun (send_live)
        self.welcomed = gevent.event.Event()
        self.refused: str | None = None
        locustfile.EMBEDDED = True
        url = config.get("url", "http://127.0.0.1")
        self.env = Environment(user_classes=[StreamingLLMUser], host=url, events=events)
        StreamingLLMUser.host = url
        self.gate: Gate | None = None
        self.finals: set[int] = set()
        self.sinks: dict[tuple[str, int], IO[str]] = {}     # the master's open records-/dropped-<i>.jsonl
        self.clock = ClockOffset()          # a worker's view of its master's clock
        if role == "master":
            assert master is not None
            self.out_dir = Path(config["out_dir"])
            self.gate = Gate(token=token, expected=expect_workers)
            self.runner = self.env._create_runner(wire.GatedMaster, master[0], master[1], self.gate, self._welcome)
            for kind, handler in ((wire.LIVE, self._got_live), (wire.RECORDS, self._got_records),
                                  (wire.FINAL, self._got_final), (wire.CLOCK, self._got_clock)):
                self.runner.register_message(kind, handler)
        elif role == "worker":
            assert master is not None
            self.runner = self.env._create_runner(
                wire.ProvingWorker, master[0], master[1], token, name or socket.gethostname(),
                {wire.WELCOME: self._on_welcome, wire.CONTROL: self._on_control, wire.REFUSED: self._on_refused,
                 wire.CLOCK: self._on_clock})
        else:
            self.out_dir = Path(config["out_dir"])
            self.runner = self.env.create_local_runner()
        self.env.events.init.fire(environment=self.env, runner=self.runner, web_ui=None)
        if role == "local":
            locustfile.begin()
            self.welcomed.set()

    @property
    def measures(self) -> bool:
        return self.role != "master"

    def should_quit(self) -> str | None:
        if os.getppid() != self.parent:
            return "parent gone"
        bound = self.spec.duration_s + 5.0 if self.welcomed.is_set() else WORKER_WAIT_S
        if time.monotonic() - self.started > bound:
            return "duration bound" if self.welcomed.is_set() else "no welcome from the master"
        return None

    # ---- the master's side --------------------------------------------------------------------------------
    def _welcome(self, member: Member) -> dict[str, Any]:
        """What a worker gets on joining: its index, the process count, the URL, headers and load spec. The
        members file says which worker each index is, for whoever reads a lost worker's figures."""
        assert self.gate is not None
        write_json_atomic(self.out_dir / "members.json", {"members": [
            {"index": m.index, "name": m.name, "client_id": m.client_id, "joined_at": m.joined_at}
            for m in self.gate.members.values()]})
        keep = ("url", "spec", "served_by_headers", "first_window")
        config = {k: self.config[k] for k in keep if k in self.config}
        window = read_control(self.out_dir / "control.json").get("window") or config.get("first_window")
        return {"config": dict(config, process_index=member.index, processes=self.gate.expected,
                               first_window=window), "t": time.time()}

    def _index(self, msg: Any) -> int | None:
        return self.gate.index(msg.node_id) if self.gate is not None else None

    def _got_live(self, environment: Any, msg: Any) -> None:
        if (i := self._index(msg)) is not None:
            write_json_atomic(self.out_dir / f"live-{i}.json", msg.data)

    def _got_records(self, environment: Any, msg: Any) -> None:
        if (i := self._index(msg)) is None:
            return
        for kind in ("records", "dropped"):
            if text := msg.data.get(kind):
                sink = self.sinks.get((kind, i))
                if sink is None:
                    sink = self.sinks[(kind, i)] = (self.out_dir / f"{kind}-{i}.jsonl").open("a")
                sink.write(text)
                sink.flush()            # whole lines on disk as they come: a killed master leaves what it had

    def _got_final(self, environment: Any, msg: Any) -> None:
        if (i := self._index(msg)) is not None:
            write_json_atomic(self.out_dir / f"final-{i}.json", msg.data)
            self.finals.add(i)

    def _quit_when_finals_are_in(self) -> None:
        """After a stop: Locust's `quit` to the workers once each has shipped its final figures or is gone
        (missing heartbeats, or quit), within FINAL_WAIT_S; a worker leaves only when told, so nothing it sent
        is lost in a closing socket."""
        assert self.gate is not None
        deadline = time.monotonic() + FINAL_WAIT_S
        while time.monotonic() < deadline:
            present = {c.id for c in self.runner.clients.all if c.state != "missing"}
            if all(m.index in self.finals or m.client_id not in present for m in self.gate.members.values()):
                break
            gevent.sleep(0.02)
        self.runner.quit()

    def _got_clock(self, environment: Any, msg: Any) -> None:
        self.runner.send_message(wire.CLOCK, {"t0": msg.data.get("t0"), "t_master": time.time()},
                                 client_id=msg.node_id)

    def _broadcast(self, ctl: dict[str, Any]) -> None:
        assert self.gate is not None
        for client_id in list(self.gate.members):
            self.runner.send_message(wire.CONTROL, ctl, client_id=client_id)

    # ---- a worker's side ------------------------------------------------------------------------------------
    def _on_welcome(self, environment: Any, msg: Any) -> None:
        if self.welcomed.is_set():
            return
        config = msg.data["config"]
        locustfile.configure(config)
        self.spec = locustfile.SPEC
        self.env.host = StreamingLLMUser.host = config["url"]     # the inference URL: known only now
        locustfile.begin(ship=lambda kind, data: self.runner.send_message(kind, data))
        state().clock_offset = self.clock.offset_s
        self.welcomed.set()
        gevent.spawn(self._clock_probes)

    def _on_control(self, environment: Any, msg: Any) -> None:
        self.apply(msg.data)

    def _clock_probes(self) -> None:
        """Probes of the master's clock: CLOCK_FIRST at once, then one every CLOCK_EVERY_S (a clock drifts)."""
        sent = 0
        while not self.stopping:
            self.runner.send_message(wire.CLOCK, {"t0": time.time()})
            sent += 1
            gevent.sleep(CLOCK_EVERY_S if sent >= CLOCK_FIRST else 0.05)

    def _on_clock(self, environment: Any, msg: Any) -> None:
        self.clock.add(float(msg.data["t0"]), float(msg.data["t_master"]), time.time())
        if self.welcomed.is_set():
            state().clock_offset = self.clock.offset_s

    def _on_refused(self, environment: Any, msg: Any) -> None:
        self.refused = str(msg.data.get("reason", "refused"))
        logging.error("the load master refused this worker: %s", self.refused)

    def _ship_final(self) -> None:
        """A worker's records and final figures to its master (once)."""
        if self.welcomed.is_set() and self.refused is None:
            st = state()
            st.running = False
            write_final(st)

    # ---- both -----------------------------------------------------------------------------------------------
    def control_changed(self) -> bool:
        """Whether control.json was replaced since the last look: a `stat` instead of open, read and parse
        20 times a second (the parent replaces the file atomically, so a new file is a new inode/mtime)."""
        try:
            st = os.stat(self.out_dir / "control.json")
        except OSError:
            return self.control_key is not None
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key == self.control_key:
            return False
        self.control_key = key
        return True

    def apply(self, ctl: dict[str, Any]) -> bool:
        """A window switch or a stop, from the parent's control.json or the master's message; True when it
        stops this process."""
        seq = int(ctl.get("seq", -1))
        if seq == self.control_seq:
            return False
        self.control_seq = seq
        if self.role == "master":
            self._broadcast(ctl)
        if self.measures and ctl.get("window") and self.welcomed.is_set():
            state().recorder.switch(str(ctl["window"]))
        if ctl.get("stop"):
            if self.role == "worker":        # final figures out now; the master says when to leave
                self.stopping = True
                if self.welcomed.is_set():
                    state().recorder.discard_from_now()
                self._ship_final()
                self.runner.stop()
            else:
                self.quit("stop requested")
            return True
        return False

    def control_loop(self) -> None:
        """Window switches and stop requests from the parent (a worker's come as messages); live figures out."""
        last_live = 0.0
        while not self.stopping:
            if self.role != "worker" and self.control_changed():
                if self.apply(read_control(self.out_dir / "control.json")):
                    return
            why = self.should_quit()
            if why:
                self.quit(why)
                return
            now = time.monotonic()
            if self.measures and self.welcomed.is_set() and now - last_live >= LIVE_EVERY_S:
                last_live = now
                self.send_live()
            gevent.sleep(CONTROL_POLL_S)

    def send_live(self) -> None:
        st = state()
        ramped = self.runner.state not in (STATE_INIT, STATE_SPAWNING) and st.ramped
        if ramped and not self.users_frozen:
            # The users, their greenlets, sessions and connections live for the whole run too: frozen with the
            # rest once all have begun (before the first report that says so, so before any judged window). At
            # 150 streams, full collections during the ramp held the loop 20-97 ms; every one after it would
            # have walked all of them again.
            self.users_frozen = True
            gc.collect()
            gc.freeze()
        st.flush()
        snap = st.recorder.current.snapshot(pause=_yield)   # in slices: streams read in between
        snap["last_wall"] = time.time()
        live = {"window": snap, "seq": self.control_seq, "degraded": st.monitor.degraded,
                "cpu_share": round(st.monitor.cpu_share, 3), "loop_lag_p99_ms": round(st.monitor.lag_p99_ms, 3),
                "users": self.runner.user_count, "ramped": ramped,
                "t": time.time()}
        if st.ship is not None:
            locustfile.on_master_clock(live, st.clock_offset)
            live["clock"] = self.clock.figures()
            st.ship(wire.LIVE, live)
        else:
            write_json_atomic(self.out_dir / f"live-{st.index}.json", live)

    def quit(self, why: str) -> None:
        if self.stopping:
            return
        self.stopping = True
        logging.info("load child %s quitting: %s", self.role, why)
        if self.measures and self.welcomed.is_set():
            state().running = False
            state().recorder.discard_from_now()
        if self.role == "master":
            self._broadcast({"seq": self.control_seq + 1, "stop": True})
            gevent.spawn(self._quit_when_finals_are_in)
            return
        if self.role == "worker":          # leaving on its own (duration, SIGTERM): ship, then say so
            self._ship_final()
            self.runner.client.send(Message("quit", None, self.runner.client_id))
        self.runner.quit()

    def run(self) -> int:
        # SIGTERM (the parent's second resort, or a pod being deleted) still ends with final figures written
        if self.refused is not None:            # a worker the master would not take: nothing to run
            return self._leave()
        gevent.signal_handler(signal.SIGTERM, self.quit, "SIGTERM")
        gevent.spawn(self.control_loop)
        if self.role == "master":
            assert self.gate is not None
            wait_s = self.spec.join_timeout_s
            deadline = time.monotonic() + wait_s
            while len(self.gate.members) < self.gate.expected or len(self.runner.clients.ready) < self.gate.expected:
                if time.monotonic() > deadline or self.should_quit():
                    joined = ", ".join(m.name for m in self.gate.members.values()) or "none"
                    logging.error("only %d of %d load workers joined within %g s (joined: %s)",
                                  len(self.gate.members), self.gate.expected, wait_s, joined)
                    self.runner.quit()
                    return 4
                gevent.sleep(0.05)
            self.gate.started = True
        # Everything imported and built so far lives for the whole run: frozen, a full collection no longer walks
        # it. Measured against the paced server at 300 streams, full collections held the event loop 30-60 ms
        # before, 15-20 ms after: a stall every stream in flight sees as token lag.
        gc.collect()
        gc.freeze()
        if self.role in ("local", "master"):
            self.runner.start(self.spec.users, spawn_rate=self.spec.spawn_rate)
        self.runner.greenlet.join()
        if self.role == "worker":
            return self._leave()
        self.finish()
        return 0

    def _leave(self) -> int:
        """A worker's end: its figures shipped (when it ended on its own: users exhausted), the connection
        closed once they are delivered (or LINGER_S passed), and 4 when it never took part."""
        if self.refused is not None or not self.welcomed.is_set():
            why = self.refused or "no welcome from the master"
            print(f"load worker: not part of the run: {why}", file=sys.stderr, flush=True)
            code = 4
        else:
            if not state().finalized:
                self._ship_final()
                self.runner.client.send(Message("quit", None, self.runner.client_id))
            code = 0
        self.runner.greenlet.kill(block=False)
        sock = self.runner.client.socket
        sock.close(linger=int(LINGER_S * 1000))
        sock.context.term()
        return code

    def finish(self) -> None:
        for sink in self.sinks.values():
            sink.close()
        if self.role == "local":
            write_final(state())
            self.send_live()
        if self.role in ("local", "master"):
            write_stats_csv(self.env, self.out_dir / "stats")


def host_port(text: str) -> tuple[str, int]:
    """`HOST:PORT` (an IPv6 host in brackets: `[::1]:5557`)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness.load.child")
    parser.add_argument("config", nargs="?", help="the run's load configuration (local and master; a worker "
                                                  "gets it from its master)")
    parser.add_argument("--role", choices=("local", "master", "worker"), default="local")
    parser.add_argument("--master", type=host_port, default=None,
                        help="master: the address to bind; worker: the master to join (HOST:PORT)")
    parser.add_argument("--expect-workers", type=int, default=0)
    parser.add_argument("--name", default="", help="a worker's name in the master's log and the run's result")
    args = parser.parse_args(argv)
    if args.role != "worker" and (args.config is None or os.environ.get(CONFIG_ENV) != args.config):
        print(f"{CONFIG_ENV} must name the config file before Python starts", file=sys.stderr)
        return 2
    if args.role != "local" and args.master is None:
        print(f"--role {args.role} needs --master HOST:PORT", file=sys.stderr)
        return 2
    token = os.environ.get(wire.TOKEN_ENV, "")
    if args.role != "local" and not token:
        print(f"--role {args.role} needs the run's token in {wire.TOKEN_ENV}", file=sys.stderr)
        return 2
    config = json.loads(Path(args.config).read_text()) if args.config else {}
    logging.basicConfig(level=logging.WARNING, format=f"%(asctime)s {args.role} %(levelname)s %(message)s")
    if args.role == "worker":
        locust_runners.MASTER_HEARTBEAT_TIMEOUT = MASTER_GONE_S
    return Child(args.role, config, args.master, args.expect_workers, token, args.name).run()


if __name__ == "__main__":
    sys.exit(main())
