"""The usual ways to measure token streams with Locust, in a process of their own, for comparison.

`python -m bench._locust_client '<json>'` with `kind`:
- `iter_lines`: what Locust's documentation and most load tests do: `client.iter_lines(...)`, one request
  event per token (its TBT as response time). `iter_lines` reads 1024-byte chunks and waits for them to fill.
- `readline`: the same, but reading the body line by line from the response underneath, so each event is
  seen when it arrives.

Both parse each event's JSON (as such tests do) and keep `receive time - server_send_ts` of every token that
arrives inside the measurement window. Prints one JSON line: tokens/s, lag p50/p99, CPU share of a core.
"""
# Locust monkey-patches the standard library through gevent: it must be imported first.
import locust  # noqa: F401  isort: skip

import json
import os
import sys
import time

import gevent
from locust import events, task
from locust.contrib.fasthttp import FastHttpUser
from locust.env import Environment

from bench._client_common import Window, body_for

CFG = json.loads(sys.argv[1]) if len(sys.argv) > 1 and __name__ == "__main__" else {}
WINDOW = Window(CFG.get("warmup_s", 1.0), CFG.get("measure_s", 1.0))
BODY = body_for(CFG.get("tokens", 10))
HEADERS = {"Content-Type": "application/json", "Accept": "text/event-stream"}


def _token(line: bytes, last: list[float]) -> None:
    payload = json.loads(line[6:])
    now = time.time()
    gap_ms = (now - last[0]) * 1000.0
    last[0] = now
    WINDOW.token(now, now - payload["server_send_ts"])
    events.request.fire(request_type="TOKEN", name="token", response_time=gap_ms, response_length=len(line),
                        exception=None, context={})


class IterLinesUser(FastHttpUser):
    """The usual approach: Locust's own `iter_lines`."""

    network_timeout = 30.0
    max_retries = 0

    @task
    def stream(self) -> None:
        last = [time.time()]
        for line in self.client.iter_lines("/v1/completions", method="POST", data=BODY, headers=HEADERS):
            if isinstance(line, str):
                line = line.encode()
            if line.startswith(b"data: {"):
                _token(line, last)


class ReadlineUser(FastHttpUser):
    """Line reads on the response underneath: every event seen as it arrives."""

    network_timeout = 30.0
    max_retries = 0

    @task
    def stream(self) -> None:
        last = [time.time()]
        with self.client.request("POST", "/v1/completions", data=BODY, headers=HEADERS, stream=True,
                                 catch_response=True) as resp:
            raw = resp._response
            while True:
                line = raw.readline(b"\n")
                if not line:
                    break
                if line.startswith(b"data: {"):
                    _token(line, last)
                elif line.startswith(b"data: [DONE]"):
                    break
            resp.success()


def main() -> int:
    user = {"iter_lines": IterLinesUser, "readline": ReadlineUser}[CFG["kind"]]
    user.host = CFG["url"]
    env = Environment(user_classes=[user], host=CFG["url"], events=events)
    runner = env.create_local_runner()
    streams = int(CFG["streams"])
    runner.start(streams, spawn_rate=streams / max(0.05, CFG.get("spawn_s", 1.0)))
    gevent.spawn(WINDOW.watch)
    deadline = WINDOW.t_end + 0.05
    while time.time() < deadline:
        gevent.sleep(0.05)
    runner.quit()
    print(json.dumps(WINDOW.result(streams=streams, errors=int(env.stats.total.num_failures))), flush=True)
    os._exit(0)      # do not wait for half-read streams to drain


if __name__ == "__main__":
    sys.exit(main())
