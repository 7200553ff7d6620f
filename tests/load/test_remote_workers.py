"""Load workers that share nothing with their master but Locust's messaging (harness/load/wire.py).

Each remote worker is `g7chaos load-worker` in a process of its own, in a folder of its own, with the run's token
in its environment and nothing else of the run: it must get the URL and the load from its master, send every
figure back as messages, and leave its folder empty. A wrong token, a late worker and a killed worker are each
run for real.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.load.process import LoadError, LoadProcess, read_records
from harness.load.recorder import decode_histogram, new_histogram
from harness.load.spec import LoadSpec

from support.polling import wait_for

from .sse_server import SSEServer

SERVED_BY = ["x-served-by"]


def spec(**kw) -> LoadSpec:
    base = dict(users=6, spawn_rate=1000, prompt_tokens=8, max_tokens=10, stall_timeout_s=0.4, timeout_s=5,
                canary={"every_s": None}, duration_s=40)
    base.update(kw)
    return LoadSpec.model_validate(base)


def token_of(out: Path) -> str:
    return (out / "load-token").read_text()


def load_worker(master: str, token: str, home: Path, name: str, netns: str | None = None) -> subprocess.Popen:
    """`g7chaos load-worker` as an operator starts it on another host: its own folder, only the token."""
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("G7CHAOS_")}
    env["G7CHAOS_LOAD_TOKEN"] = token
    argv = [sys.executable, "-m", "harness", "load-worker", "--master", master, "--name", name]
    if netns is not None:
        argv = ["ip", "netns", "exec", netns, *argv]
    return subprocess.Popen(argv, cwd=home, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def one_remote(server: SSEServer, tmp_path: Path, name: str) -> tuple[LoadProcess, subprocess.Popen]:
    """A load of one local worker and one remote worker, the remote one joining as `name`."""
    out = tmp_path / "master"
    load = LoadProcess()
    load.start(server.url, spec(workers=1, remote_workers=1), out, SERVED_BY, first_window="steady")
    return load, load_worker(load.master_address, token_of(out), tmp_path / name, name)


def in_window(load: LoadProcess, window: str, processes: int, requests: int) -> bool:
    """Whether `processes` load processes report `window` with `requests` finished requests in it."""
    live = load.live()
    return live.window == window and live.processes_reporting >= processes and live.requests >= requests


def ended(proc: subprocess.Popen, timeout: float = 30.0) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def test_remote_workers_share_no_file_and_their_histograms_merge_exactly(server: SSEServer, tmp_path: Path) -> None:
    out = tmp_path / "master"
    load = LoadProcess()
    load.start(server.url, spec(workers=1, remote_workers=2), out, SERVED_BY, first_window="steady")
    homes = [tmp_path / f"host-{i}" for i in range(2)]
    workers = [load_worker(load.master_address, token_of(out), home, f"remote-{i}") for i, home in enumerate(homes)]
    try:
        load.wait_started(timeout_s=40)
        wait_for(lambda: load.live().requests >= 30, 30, "30 finished requests")
        load.mark_window("second")
        wait_for(lambda: in_window(load, "second", 3, 10), 30, "10 requests in the second window, from all three")
    finally:
        result = load.stop()
        codes = [ended(w) for w in workers]
    assert result.complete, result.problems
    assert [code for code, _ in codes] == [0, 0], codes
    assert result.processes == 3
    for home in homes:
        assert list(home.iterdir()) == [], f"a worker wrote into its folder: {list(home.iterdir())}"
    finals = [json.loads((out / f"final-{i}.json").read_text()) for i in range(3)]
    per_worker = [sum(w["requests"] for w in f["windows"]) for f in finals]
    assert all(n > 0 for n in per_worker), per_worker
    assert result.whole.requests == sum(per_worker)
    for name in ("steady", "second"):
        for kind in ("ttft", "tbt"):
            merged = decode_histogram(result.histograms[name][kind])
            union = new_histogram()
            for f in finals:
                for w in f["windows"]:
                    if w["name"] == name:
                        union.add(decode_histogram(w["hist"][kind]))
            assert merged.get_total_count() == union.get_total_count() > 0, (name, kind, [[(w["name"], w["requests"]) for w in f["windows"]] for f in finals])
            assert [merged.get_value_at_percentile(q) for q in (50, 90, 99, 100)] == \
                   [union.get_value_at_percentile(q) for q in (50, 90, 99, 100)]
    records = read_records(result.records_path)
    assert {r["worker"] for r in records} == {0, 1, 2}
    # one host, one clock: each worker's measured offset to its master is zero within its own uncertainty
    assert sorted(c["name"] for c in result.clocks) == ["remote-0", "remote-1", "worker-0"]
    assert all(abs(c["offset_ms"]) <= c["uncertainty_ms"] + 0.5 for c in result.clocks), result.clocks
    served = {s.key for s in server.served}
    assert all(r["key"] in served for r in records if r.get("status") == 200)


def test_a_wrong_token_and_a_late_worker_are_refused(server: SSEServer, tmp_path: Path) -> None:
    out = tmp_path / "master"
    load = LoadProcess()
    load.start(server.url, spec(workers=1, remote_workers=1), out, SERVED_BY, first_window="steady")
    intruder = load_worker(load.master_address, "not-the-run-token", tmp_path / "intruder", "intruder")
    code, said = ended(intruder)
    assert code == 4 and "wrong or missing run token" in said, said
    good = load_worker(load.master_address, token_of(out), tmp_path / "good", "good")
    late = None
    try:
        load.wait_started(timeout_s=40)
        wait_for(lambda: load.live().requests >= 10, 30, "10 finished requests")
        late = load_worker(load.master_address, token_of(out), tmp_path / "late", "late")
        code, said = ended(late)
        assert code == 4 and "already started" in said, said
    finally:
        result = load.stop()
        ended(good)
    assert result.complete and result.processes == 2, result.problems
    assert not any(r.get("worker") not in (0, 1) for r in read_records(result.records_path))


def test_a_worker_that_never_comes_fails_the_start_naming_who_joined(server: SSEServer, tmp_path: Path) -> None:
    load = LoadProcess()
    load.start(server.url, spec(workers=1, remote_workers=1, join_timeout_s=3), tmp_path, SERVED_BY,
               first_window="steady")
    try:
        with pytest.raises(LoadError) as failed:
            load.wait_started(timeout_s=30)
    finally:
        load.stop()
    assert "only 1 of 2 load workers joined" in str(failed.value) and "worker-0" in str(failed.value)


def test_a_killed_remote_worker_is_named_with_when_and_how_much_load_was_lost(server: SSEServer,
                                                                              tmp_path: Path) -> None:
    load, victim = one_remote(server, tmp_path, "victim")
    try:
        load.wait_started(timeout_s=40)
        wait_for(lambda: load.live().requests >= 20, 30, "20 finished requests")
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        load.mark_window("after")
        wait_for(lambda: in_window(load, "after", 1, 5), 30, "5 requests after the kill")
    finally:
        result = load.stop()
    assert not result.complete
    lost = [p for p in result.problems if "victim" in p]
    assert lost and "users" in lost[0] and "lost at" in lost[0], result.problems


NETNS = "g7w-" + uuid.uuid4().hex[:6]


@pytest.fixture
def worker_netns() -> Iterator[tuple[str, str]]:
    """A network namespace of this test's own, joined to this host by one veth pair: 10.77.<n>.1 here, .2 there;
    inside, no loopback and no other route, so the worker reaches the master and the server over that link only."""
    if shutil.which("ip") is None or os.geteuid() != 0:
        pytest.fail("needs `ip` (iproute2) and root to create a network namespace")   # a missing resource, named
    n = 77 + os.getpid() % 100
    host_if, ns_if = f"g7h{os.getpid() % 10000}", f"g7n{os.getpid() % 10000}"
    host_ip, ns_ip = f"10.{n}.0.1", f"10.{n}.0.2"
    steps = [["ip", "netns", "add", NETNS],
             ["ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if],
             ["ip", "link", "set", ns_if, "netns", NETNS],
             ["ip", "addr", "add", f"{host_ip}/30", "dev", host_if],
             ["ip", "link", "set", host_if, "up"],
             ["ip", "netns", "exec", NETNS, "ip", "addr", "add", f"{ns_ip}/30", "dev", ns_if],
             ["ip", "netns", "exec", NETNS, "ip", "link", "set", ns_if, "up"]]
    try:
        for step in steps:
            subprocess.run(step, check=True, capture_output=True, timeout=10)
        yield NETNS, host_ip
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", NETNS], capture_output=True, timeout=10)


def test_a_worker_in_its_own_network_namespace_takes_part_over_its_link(worker_netns: tuple[str, str],
                                                                        tmp_path: Path) -> None:
    netns, host_ip = worker_netns
    server = SSEServer(tokens=10, gap_s=0.02, ttft_s=0.05, host=host_ip).start()
    out = tmp_path / "master"
    load = LoadProcess()
    try:
        load.start(server.url, spec(workers=1, remote_workers=1), out, SERVED_BY, first_window="steady",
                   master=(host_ip, 0))
        cut_off = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c",
                                  "import socket; socket.create_connection(('127.0.0.1', 1), timeout=1)"],
                                 capture_output=True, text=True, timeout=30)
        assert cut_off.returncode != 0     # nothing but the link: not even a loopback inside
        worker = load_worker(load.master_address, token_of(out), tmp_path / "ns-host", "in-netns", netns=netns)
        try:
            load.wait_started(timeout_s=40)
            wait_for(lambda: load.live().requests >= 20, 30, "20 finished requests")
        finally:
            result = load.stop()
            code, said = ended(worker)
    finally:
        server.stop()
    assert code == 0, said
    assert result.complete, result.problems
    records = read_records(result.records_path)
    assert {r["worker"] for r in records} == {0, 1}
    assert sum(1 for r in records if r["worker"] == 1 and r.get("status") == 200) > 0
    assert list((tmp_path / "ns-host").iterdir()) == []


def test_a_worker_leaves_when_its_master_disappears(server: SSEServer, tmp_path: Path) -> None:
    """No load outlives its run: a worker whose master was SIGKILLed stops sending within seconds."""
    load, orphan = one_remote(server, tmp_path, "orphan")
    try:
        load.wait_started(timeout_s=40)
        wait_for(lambda: load.live().requests >= 10, 30, "10 finished requests")
        load.procs[0].send_signal(signal.SIGKILL)             # the master, gone without a word
        gone_at = time.monotonic()
        orphan.wait(timeout=30)
        left_after = time.monotonic() - gone_at
    finally:
        if orphan.poll() is None:
            orphan.kill()
        load.stop()
    # the master's heartbeats stop; MASTER_GONE_S later the worker stops its users and leaves
    assert left_after < 20 and orphan.returncode == 0, (left_after, orphan.returncode)
