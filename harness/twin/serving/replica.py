"""A Triton-like replica: one GPU (or a tensor-parallel group) running continuous batching.

Why an engine loop per replica rather than a sleep per stream: in a real server every running sequence
shares each forward pass, so one long prompt admitted into the batch delays every other stream's next
token, and a batch of 40 is slower per token than a batch of 1. One task per replica steps the whole
batch; each step's duration comes from harness/twin/serving/latency.py and the GPU's live state (clock,
ECC, EFA load) read from the World at every step.

A request first reads from its node's EBS volume (prompt cache, request log); that costs nothing until FIS
slows or pauses the volume (Physics.io_latency_s). Then the reads go one at a time ahead of admission: the
queue (nv_inference_pending_request_count) grows while the GPU has nothing to step, which is what an I/O stall
looks like to DCGM's utilisation counter. Steps are counted as busy time (EngineStats.busy_s) for that counter.

Timing is scheduled on absolute deadlines (the end of the previous step plus this step's duration), so
event-loop jitter never accumulates: a late wake-up shortens the next sleep instead of shifting every
later token. Events are handed to the HTTP layer with the step's due time so benchmarks can measure
exactly what the server adds.
"""
from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from harness.twin.hardware import ModelSpec
from harness.twin.serving import latency
from harness.twin.serving.textgen import WordStream

# Wake this much before a deadline: epoll rounds timeouts up to whole milliseconds, so waking early by
# half of that centres the emission error on zero instead of making every token up to 1 ms late.
EARLY_WAKE_S = 0.0005
# The GPU runs its steps back to back whatever the host does, so a step that starts late keeps the absolute
# schedule: its tokens go out late and the next ones catch up. A twin process that waits for a CPU (a loaded
# test machine) would otherwise add every wait to the timeline for good: less work per second, longer queues,
# bigger batches, and a modelled TBT p99 that moved from 20 ms to 53 ms on a loaded 2-core machine. Only a
# step later than this (longer than the 190 ms the worst starvation measured there lasted) starts a new
# timeline. Idle, frozen and I/O-waiting replicas start one anyway: there the GPU really had nothing to do.
RESYNC_S = 0.25
# While a node's volume is paused, how often a replica looks whether the pause has ended.
IO_POLL_S = 0.05

EventKind = Literal["tok", "last", "cut"]   # queue items: (kind, token text or cut reason, due wall time)
_ids = itertools.count(1)


class Channel:
    """A one-consumer queue cheaper than asyncio.Queue: one deque append and at most one future per token."""

    __slots__ = ("items", "_waiter")

    def __init__(self) -> None:
        self.items: deque[tuple[str, str, float]] = deque()
        self._waiter: asyncio.Future | None = None

    def put_nowait(self, item: tuple[str, str, float]) -> None:
        self.items.append(item)
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def get(self) -> tuple[str, str, float]:
        while not self.items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self.items.popleft()


@dataclass(eq=False)
class Sequence:
    """One request inside a replica's batch."""

    prompt: str
    prefill_tokens: int                 # tokens this request must prefill (a cached prefix is skipped)
    context_tokens: int                 # tokens whose KV the sequence holds (grows by one per token)
    max_tokens: int
    stream: WordStream
    restore_s: float = 0.0              # extra time to restore offloaded KV before the prefill
    id: int = field(default_factory=lambda: next(_ids))
    queue: Channel = field(default_factory=Channel)
    generated: int = 0
    cancelled: bool = False
    enqueued_at: float = 0.0
    admitted_at: float = 0.0


@dataclass
class Physics:
    """What the World says about this replica's GPUs right now."""

    clock_factor: float = 1.0
    corrupted_by: str | None = None
    link: latency.Interconnect = field(default_factory=latency.Interconnect)
    io_latency_s: float = 0.0           # added latency of the node's EBS volume (inf while its I/O is paused)


@dataclass
class EngineStats:
    steps: int = 0
    tokens: int = 0
    queue_us: float = 0.0
    admitted: int = 0
    busy_s: float = 0.0                 # time the GPU spent in engine steps (what DCGM's GPU_UTIL samples)


class Replica:
    """Identity (pods, nodes, GPUs) plus the batching engine; the fleet decides whether it gets traffic."""

    def __init__(self, key: str, model: ModelSpec, cluster: str, pods: list[str], nodes: list[str],
                 gpus: list[tuple[str, int]]):
        self.key = key
        self.model = model
        self.cluster = cluster
        self.pods = pods
        self.nodes = nodes
        self.gpus = gpus
        self.phys = Physics()               # the World's view of its GPUs, refreshed by the fleet's sweep
        self.az = ""
        self.ready = True
        self.draining = False
        self.pulled = False                 # taken out of routing by the canary
        self.dead = False
        self.active: list[Sequence] = []
        self.waiting: list[Sequence] = []
        self.stats = EngineStats()
        self._wake: asyncio.Event | None = None
        self._thawed: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._stopped = False
        self._io_free_at: float | None = None    # when the read for the head of the queue returns

    # -- identity ------------------------------------------------------------------------------------
    @property
    def pod(self) -> str:
        return self.pods[0]

    @property
    def node(self) -> str:
        return self.nodes[0]

    @property
    def load(self) -> int:
        return len(self.active) + len(self.waiting)

    # -- control -------------------------------------------------------------------------------------
    def _events(self) -> None:
        if self._wake is None:
            self._wake = asyncio.Event()
            self._thawed = asyncio.Event()
            if not self._stopped:
                self._thawed.set()

    def set_stopped(self, stopped: bool) -> None:
        """The Triton container frozen / thawed (cgroup freezer): the batch stops mid-step and resumes where it was."""
        self._stopped = stopped
        if self._thawed is not None:
            (self._thawed.clear if stopped else self._thawed.set)()

    @property
    def stopped(self) -> bool:
        return self._stopped

    def submit(self, seq: Sequence) -> None:
        self._events()
        seq.enqueued_at = asyncio.get_running_loop().time()
        self.waiting.append(seq)
        assert self._wake is not None
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"replica:{self.key}")

    def cut_inflight(self, reason: str) -> int:
        """Close every stream in flight (the connection dies with the node or its network)."""
        seqs = self.active + self.waiting
        self.active, self.waiting = [], []
        for s in seqs:
            s.queue.put_nowait(("cut", reason, 0.0))
        return len(seqs)

    def kill(self, reason: str) -> None:
        """The process is gone (pod deleted, node powered off): cut everything and stop stepping."""
        self.dead = True
        self.cut_inflight(reason)
        if self._task is not None:
            self._task.cancel()

    # -- the engine ----------------------------------------------------------------------------------
    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wake is not None and self._thawed is not None
        due: float | None = None
        cap = latency.MAX_BATCH.get(self.model.name, 64)
        while not self.dead:
            self.active = [s for s in self.active if not s.cancelled]
            self.waiting = [s for s in self.waiting if not s.cancelled]
            if not self.active and not self.waiting:
                self._wake.clear()
                await self._wake.wait()
                due = None
                continue
            if not self._thawed.is_set():
                await self._thawed.wait()
                due = None
            now = loop.time()
            room = max(0, cap - len(self.active))
            io = self.phys.io_latency_s
            if io <= 0 or not self.waiting:
                self._io_free_at = None
            else:
                # each request's prompt-cache read on the node's volume comes first, one read at a time; the
                # GPU has nothing to do for it meanwhile (a paused volume never returns the read)
                if self._io_free_at is None and not math.isinf(io):
                    self._io_free_at = now + io
                if self._io_free_at is None or now < self._io_free_at:
                    room = 0
                    if not self.active:
                        wake = now + IO_POLL_S if self._io_free_at is None else self._io_free_at
                        await asyncio.sleep(max(0.0, wake - now))
                        due = None
                        continue
                elif room > 0:
                    room = 1
                    self._io_free_at = now + io if len(self.waiting) > 1 else None
            admitted, self.waiting = self.waiting[:room], self.waiting[room:]
            for s in admitted:
                s.admitted_at = now
                self.stats.queue_us += (now - s.enqueued_at) * 1e6
            self.stats.admitted += len(admitted)
            decode = len(self.active)
            self.active.extend(admitted)
            phys = self.phys
            step = latency.step_s(self.model, decode_seqs=decode,
                                  kv_tokens=sum(s.context_tokens for s in self.active),
                                  prefill_tokens=sum(s.prefill_tokens for s in admitted),
                                  clock_factor=phys.clock_factor, link=phys.link)
            step += sum(s.restore_s for s in admitted)
            self.stats.busy_s += step
            start = now if due is None or now - due > RESYNC_S else due
            due = start + step
            delay = due - EARLY_WAKE_S - loop.time()
            # catching up, the step is already due; yielding still lets the streams send what came before it
            await asyncio.sleep(max(0.0, delay))
            if not self._thawed.is_set():          # frozen mid-step: the step completes after the thaw
                await self._thawed.wait()
                due = loop.time()
            if self.dead:
                return
            wall_due = due + (time.time() - loop.time())
            corrupted = self.phys.corrupted_by
            self.stats.steps += 1
            still: list[Sequence] = []
            for s in self.active:
                if s.cancelled:
                    continue
                s.generated += 1
                s.context_tokens += 1
                self.stats.tokens += 1
                last = s.generated >= s.max_tokens
                s.queue.put_nowait(("last" if last else "tok", s.stream.next(corrupted), wall_due))
                if not last:
                    still.append(s)
            self.active = still
