"""A plain asyncio client (aiohttp), reading each stream line by line: the non-Locust baseline.

`python -m bench._aiohttp_client '<json>'`: closed-loop streams, JSON parsed per event, lag of every token
inside the measurement window. Prints one JSON line like `bench._locust_client`.
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import aiohttp

from bench._client_common import Window, body_for


async def run(cfg: dict) -> dict:
    window = Window(cfg.get("warmup_s", 1.0), cfg.get("measure_s", 1.0))
    body = body_for(cfg.get("tokens", 10)).encode()
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    url = cfg["url"] + "/v1/completions"
    streams = int(cfg["streams"])
    errors = 0

    async def user(delay: float) -> None:
        nonlocal errors
        await asyncio.sleep(delay)
        while time.time() < window.t_end:
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    async for line in resp.content:
                        if line.startswith(b"data: {"):
                            payload = json.loads(line[6:])
                            now = time.time()
                            window.token(now, now - payload["server_send_ts"])
                        elif line.startswith(b"data: [DONE]"):
                            break
            except (aiohttp.ClientError, asyncio.TimeoutError):
                errors += 1

    async def watch() -> None:
        for mark in (window.t_start, window.t_end):
            await asyncio.sleep(max(0.0, mark - time.time()))
            window.cpu.append((os.times().user + os.times().system, time.time()))

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        spawn = cfg.get("spawn_s", 1.0)
        tasks = [asyncio.create_task(user(spawn * i / streams)) for i in range(streams)]
        await watch()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return window.result(streams=streams, errors=errors)


def main() -> int:
    result = asyncio.run(run(json.loads(sys.argv[1])))
    print(json.dumps(result), flush=True)
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
