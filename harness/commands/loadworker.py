"""`g7chaos load-worker --master HOST:PORT`: one Locust worker of a run's load, on any host that reaches the
run's load master and the inference URL (another machine, or a pod next to the gateway: deploy/load-workers.yaml).

The worker brings nothing but its token: the run's token (`G7CHAOS_LOAD_TOKEN`, or `--token-file`), which it
proves without sending it; the master answers with the inference URL, headers and load spec, and everything the
worker measures goes back over Locust's own messaging (harness/load/wire.py). It needs no credentials for the
cluster or AWS and writes no file. It leaves when its master tells it to, or within 5 s of its master going
silent, so no load outlives the run that started it.

Exit 0 after taking part in a run; 2 on bad arguments; 4 when it could not take part (the master unreachable,
or it refused this worker: a wrong token, a late or an extra worker).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

TOKEN_ENV = "G7CHAOS_LOAD_TOKEN"      # harness.load.wire.TOKEN_ENV (not imported here: Locust patches on import)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--master", required=True, metavar="HOST:PORT", help="the run's load master")
    parser.add_argument("--token-file", type=Path, default=None,
                        help=f"file holding the run's token (default: the {TOKEN_ENV} environment variable)")
    parser.add_argument("--name", default="", help="this worker's name in the run's result (default: hostname)")


def run(args: argparse.Namespace) -> int:
    token = os.environ.get(TOKEN_ENV, "")
    if args.token_file is not None:
        try:
            token = args.token_file.read_text().strip()
        except OSError as exc:
            print(f"g7chaos: --token-file {args.token_file}: {exc.strerror}", file=sys.stderr)
            return 2
    if not token:
        print(f"g7chaos: load-worker needs the run's token: set {TOKEN_ENV} or pass --token-file", file=sys.stderr)
        return 2
    argv = [sys.executable, "-m", "harness.load.child", "--role", "worker", "--master", args.master]
    if args.name:
        argv += ["--name", args.name]
    env = dict(os.environ, **{TOKEN_ENV: token})
    env.pop("G7CHAOS_LOAD_CONFIG", None)
    sys.stdout.flush()
    # The worker replaces this process: Locust must be imported (and patch the standard library) before
    # anything else, which an already started harness process cannot offer.
    os.execve(sys.executable, argv, env)
    return 4        # not reached
