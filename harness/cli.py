"""`g7chaos`: the command line. Each subcommand lives in the module that owns it; this file only wires them.

Exit codes (contract, harness.errors.ExitCode): 0 every check passed; 1 a check failed; 2 invalid input or
usage; 3 aborted (stop condition or interrupt; faults reverted); 4 target unreachable or fault not injectable;
5 inconclusive. A subcommand returns its code, or raises a `G7ChaosError`, which is printed without a traceback
and exits with the code the error carries.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from harness.errors import ExitCode, G7ChaosError

# subcommand -> module exposing `add_arguments(parser)` and `run(args) -> int`
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("harness.commands.run", "run scenarios against a target"),
    "gameday": ("harness.commands.gameday", "run every scenario in a folder, one combined report"),
    "matrix": ("harness.commands.matrix", "every scenario against every profile"),
    "validate": ("harness.commands.validate", "validate scenario files"),
    "schema": ("harness.commands.validate", "JSON Schema of scenario files"),
    "list": ("harness.commands.listing", "scenarios, faults, checks and profiles"),
    "twin": ("harness.twin.up", "the embedded G7 EKS twin (twin up)"),
    "audit": ("harness.commands.audit", "read-only check of a deployment against the article's anti-patterns"),
    "recover": ("harness.commands.recover", "revert faults left behind by an interrupted run"),
    "report": ("harness.commands.report", "rebuild the history page (index.html) of a reports folder"),
    "load-worker": ("harness.commands.loadworker", "one worker of a run's load, on any host (--master HOST:PORT)"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Every subcommand, each with its own arguments; with `only`, just that one gets its module imported.

    Why `only`: importing every command's module costs about two seconds of CPU (scenario models, checks,
    report writers, matplotlib), and `g7chaos twin up`, started once per run on the built-in target, needs
    none of them. The other subcommands are still listed, so usage and errors read the same.
    """
    parser = argparse.ArgumentParser(prog="g7chaos", description="Chaos harness for GPU LLM inference on EKS (EC2 G7).")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=help_text)
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("harness"):
                continue   # command not built in this version
            raise
        sub_parser = sub.add_parser(name, help=help_text)
        adder = getattr(module, f"add_{name}_arguments", None) or getattr(module, "add_arguments")
        adder(sub_parser)
        sub_parser.set_defaults(handler=getattr(module, f"run_{name}", None) or getattr(module, "run"))
    return parser


def _chosen(argv: list[str]) -> str | None:
    """The subcommand `argv` names, when its first word is one (no option comes before a subcommand)."""
    return argv[0] if argv and argv[0] in SUBCOMMANDS else None


def twin_profiles() -> dict[str, str]:
    """Profile name -> one-line description: the CLI is the one place outside the twin that may name them."""
    from harness.twin.profiles import PROFILES
    return {name: description for name, (description, _) in PROFILES.items()}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(only=_chosen(argv))
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except G7ChaosError as exc:
        print(f"g7chaos: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        return int(ExitCode.ABORTED)


if __name__ == "__main__":
    sys.exit(main())
