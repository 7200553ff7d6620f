"""`python -m bench [--tiny] [--only NAME]`: every benchmark, one table, reports/bench/latest.json."""
from __future__ import annotations

import argparse
import json
import platform
import os
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

import importlib
import pkgutil

import bench


def _discover() -> dict:
    """Every module in bench/ with `NAME`, `ORDER`, `run(tiny)` and `rows(result)` is a benchmark: adding one is
    adding a file."""
    found = []
    for info in pkgutil.iter_modules(bench.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"bench.{info.name}")
        if all(hasattr(module, attr) for attr in ("NAME", "run", "rows")):
            found.append(module)
    return {m.NAME: m for m in sorted(found, key=lambda m: (getattr(m, "ORDER", 100), m.NAME))}


BENCHMARKS = _discover()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--tiny", action="store_true", help="each benchmark once at a tiny size (proves it works)")
    parser.add_argument("--only", choices=sorted(BENCHMARKS), action="append")
    parser.add_argument("--out", type=Path, default=Path("reports/bench/latest.json"))
    args = parser.parse_args()
    started = time.time()
    results = {}
    table = Table(title="g7chaos benchmarks" + (" (tiny)" if args.tiny else ""))
    for column in ("what", "figures", "verdict"):
        table.add_column(column)
    took: dict[str, float] = {}
    for name in args.only or BENCHMARKS:
        module = BENCHMARKS[name]
        began = time.time()
        results[name] = module.run(tiny=args.tiny)
        took[name] = round(time.time() - began, 1)
        for row in module.rows(results[name]):
            table.add_row(*row)
    Console().print(table)
    print("seconds per benchmark: " + ", ".join(f"{name} {seconds:g}" for name, seconds in took.items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                                "platform": platform.platform()},
                                    "tiny": args.tiny, "seconds": round(time.time() - started, 1),
                                    "seconds_per_benchmark": took,
                                    "benchmarks": results}, indent=2, default=str))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
