"""What travels between a load master and its workers, over Locust's own messaging (ZeroMQ), and who may join.

Why messages and not files: a worker may run on another host, or in the cluster next to the gateway, and share
no folder with the master. Everything the harness reads from a worker reaches the master as a custom message
(https://docs.locust.io/en/stable/running-distributed.html, "Communicating across nodes"), and the master alone
writes the files the harness reads (`live-<i>.json`, `records-<i>.jsonl`, `dropped-<i>.jsonl`, `final-<i>.json`):

- master -> worker: `g7_welcome` (its index, the process count, the inference URL, headers and load spec: nothing
  else reaches a worker), `g7_control` (window switches and stop, to every worker at once), `g7_clock` (the
  master's time, answering a worker's probe), `g7_refused` (why it may not join, before Locust's `quit`);
- worker -> master: `g7_live` (every 200 ms: the current window's counts and encoded HDR histograms, the load
  generator's own lag and CPU), `g7_records` (request records and dropped arrivals, as JSON lines),
  `g7_final` (every window's snapshot, once, before the worker leaves), `g7_clock` (a probe).

Who may join: a worker proves it holds the run's token (a random secret per run, passed out of band) in the
very `client_ready` message Locust sends on connecting, as an HMAC of its own client id, so the token never
travels and no user is assigned before the proof is checked. The master refuses a wrong or missing proof, a
worker beyond the expected count, and any worker once the load has started (Locust would otherwise rebalance
users onto it).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from locust import __version__ as LOCUST_VERSION
from locust.rpc import Message
from locust.runners import MasterRunner, WorkerRunner

from harness.load.membership import Gate, Member, proof

log = logging.getLogger(__name__)

TOKEN_ENV = "G7CHAOS_LOAD_TOKEN"

WELCOME, CONTROL, CLOCK, REFUSED = "g7_welcome", "g7_control", "g7_clock", "g7_refused"
LIVE, RECORDS, FINAL = "g7_live", "g7_records", "g7_final"


class GatedMaster(MasterRunner):
    """Locust's master, admitting only workers that pass the `Gate`, welcoming each with its configuration."""

    def __init__(self, environment: Any, host: str, port: int, gate: Gate,
                 welcome: Callable[[Member], dict[str, Any]]) -> None:
        self.gate = gate
        self._welcome = welcome
        super().__init__(environment, host, port)

    def handle_message(self, client_id: str, msg: Message) -> None:
        if msg.type == "client_ready":
            data = msg.data if isinstance(msg.data, dict) else {"version": msg.data}
            ready = Message("client_ready", data.get("version"), client_id)   # what Locust's master expects
            if client_id in self.gate.members:          # ready again after a stop: the proof was checked on joining
                super().handle_message(client_id, ready)
                return
            name = str(data.get("name") or client_id)
            why = self.gate.admit(client_id, data.get("proof"), name)
            if why is not None:
                log.warning("refused load worker %s (%s): %s", name, client_id, why)
                self.server.send_to_client(Message(REFUSED, {"reason": why}, client_id))
                self.server.send_to_client(Message("quit", None, client_id))
                return
            super().handle_message(client_id, ready)
            self.server.send_to_client(Message(WELCOME, self._welcome(self.gate.members[client_id]), client_id))
            return
        if client_id not in self.gate.members and msg.type != "quit":
            return          # a refused worker's heartbeat or stats: it is on its way out
        super().handle_message(client_id, msg)


class _Proving:
    """A worker's RPC client that adds the token's proof (and the worker's name) to `client_ready`."""

    def __init__(self, client: Any, token: str, client_id: str, name: str) -> None:
        self._client = client
        self._data = {"version": LOCUST_VERSION, "proof": proof(token, client_id), "name": name}

    def send(self, msg: Message) -> None:
        if msg.type == "client_ready":
            msg = Message("client_ready", self._data, msg.node_id)
        self._client.send(msg)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class ProvingWorker(WorkerRunner):
    """Locust's worker, showing the run token's proof when it connects (and again after a reconnect)."""

    def __init__(self, environment: Any, host: str, port: int, token: str, name: str,
                 handlers: dict[str, Callable[..., None]]) -> None:
        self._token, self._name, self._handlers = token, name, handlers
        super().__init__(environment, host, port)

    def _prove(self) -> None:
        if not isinstance(self.client, _Proving):
            self.client = _Proving(self.client, self._token, self.client_id, self._name)

    def connect_to_master(self) -> None:
        # Locust connects from the constructor, and the master's welcome follows its ack at once: the handlers
        # must be there before the first message is read, not registered after the constructor returns.
        for kind, handler in self._handlers.items():
            if kind not in self.custom_messages:
                self.register_message(kind, self._refused(handler) if kind == REFUSED else handler)
        self._prove()
        super().connect_to_master()

    def _refused(self, handler: Callable[..., None]) -> Callable[..., None]:
        """A refusal ends the wait for the master's ack (Locust would retry connecting for minutes)."""
        def refused(**kw: Any) -> None:
            handler(**kw)
            self.connection_event.set()
        return refused

    def reset_connection(self) -> None:
        super().reset_connection()
        self._prove()
