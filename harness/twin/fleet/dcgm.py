"""`dcgmi` as the DCGM pod on a node answers it, acting on that node's GPUs in the World.

Fault injection on a real G7 node goes through `dcgmi test --inject` run by pod exec in the node's
DCGM pod; the twin answers the same command line so a fault module cannot tell the difference, and
the injected value lands in that node's hostengine cache and nowhere else: the node monitoring agent
reads it, dcgm-exporter only when it reads this hostengine (`-r`), and no GPU computes any differently.

Each field is its own sample series (FIDELITY DCGM-1): `-f 319` (DCGM_FI_DEV_ECC_DBE_VOL_DEV) trips the
double-bit policy, `-f 311` (DCGM_FI_DEV_ECC_DBE_VOL_TOTAL) is what the MEM health watch and the article's
alarm read; injecting one never touches the other. An injected sample is stamped `now + --offset`
(default 1 s, scaled by the twin's clock like every deployment duration) and stands only until the first
real sample stamped after it (FIDELITY DCGM-2), which is why a fault that must last re-injects or injects
into the future.
"""
from __future__ import annotations

from dataclasses import dataclass

from harness.twin import hardware
from harness.twin.clock import TwinClock
from harness.twin.world import (DCGM_FI_DEV_ECC_DBE_VOL_TOTAL, DCGM_FI_DEV_GPU_TEMP, DCGM_FI_DEV_XID_ERRORS,
                                DCGM_FIELD_NAMES, Node)

XID_DOUBLE_BIT_ECC = 48
DEFAULT_OFFSET_S = 1          # FIDELITY DCGM-3: `dcgmi test --inject --offset` defaults to 1 s into the future
DEFAULT_GPU_ID = 1            # FIDELITY DCGM-3: `dcgmi test --gpuid` defaults to 1 (CommandLineParser.cpp)

USAGE = """Usage: dcgmi <subsystem> [options]
Subsystems supported by the twin:
  discovery -l                                  list the GPUs of this node
  health -c [-g GROUP]                          run a health check
  test --inject --gpuid G -f FIELD -v VALUE [--offset SEC]
                                                inject a field value into the cache, stamped SEC
                                                seconds into the future (default 1)
  dmon -e FIELD[,FIELD...] [-c COUNT]           print field values
"""


@dataclass
class DcgmiResult:
    exit_code: int
    stdout: str
    stderr: str = ""


class DcgmiError(Exception):
    """A command line dcgmi rejects; the message is what it prints."""


def run_dcgmi(node: Node, argv: list[str], clock: TwinClock | None = None) -> DcgmiResult:
    """Run one `dcgmi` command line (argv without the leading `dcgmi`) against `node`'s hostengine."""
    try:
        if not argv or argv[0] in ("-h", "--help"):
            return DcgmiResult(0 if argv else 1, USAGE if argv else "", "" if argv else USAGE)
        sub, rest = argv[0], argv[1:]
        if sub == "discovery":
            return _discovery(node, rest)
        if sub == "health":
            return _health(node, rest, (clock or TwinClock()).now())
        if sub == "test":
            return _test(node, rest, clock or TwinClock())
        if sub == "dmon":
            return _dmon(node, rest, (clock or TwinClock()).now())
        raise DcgmiError(f"Error: unknown subsystem '{sub}'.\n{USAGE}")
    except DcgmiError as exc:
        return DcgmiResult(1, "", str(exc) if str(exc).endswith("\n") else f"{exc}\n")


def _options(args: list[str], flags: set[str], valued: dict[str, str]) -> tuple[set[str], dict[str, str]]:
    """Parse `args` into present flags and valued options (aliases map to one canonical name)."""
    seen: set[str] = set()
    values: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in flags:
            seen.add(arg)
            i += 1
        elif arg in valued:
            if i + 1 >= len(args):
                raise DcgmiError(f"Error: option {arg} requires a value.")
            values[valued[arg]] = args[i + 1]
            i += 2
        else:
            raise DcgmiError(f"Error: unrecognised argument '{arg}'.")
    return seen, values


def _discovery(node: Node, args: list[str]) -> DcgmiResult:
    seen, _ = _options(args, {"-l", "--list"}, {"--host": "host"})
    if not seen:
        raise DcgmiError("Error: discovery needs -l.")
    line = "+--------+----------------------------------------------------------------------+"
    out = [f"{len(node.gpus)} GPU{'s' if len(node.gpus) != 1 else ''} found.", line,
           "| GPU ID | Device Information                                                   |", line]
    for gpu in node.gpus:
        for i, text in enumerate((f"Name: {hardware.GPU_MODEL}", f"PCI Bus ID: {pci_bus_id(gpu.index)}",
                                  f"Device UUID: {gpu.uuid}")):
            out.append(f"| {str(gpu.index) if i == 0 else '':<6} | {text:<68} |")
        out.append(line)
    return DcgmiResult(0, "\n".join(out) + "\n")


def _health(node: Node, args: list[str], now: float) -> DcgmiResult:
    seen, _ = _options(args, {"-c", "--check"}, {"-g": "group", "--group": "group", "--host": "host"})
    if not seen:
        raise DcgmiError("Error: health needs -c (check).")
    problems: list[tuple[int, str]] = []
    for gpu in node.gpus:
        # the MEM watch reads the newest sample of 311 (DCGM_FR_VOLATILE_DBE_DETECTED); the thermal watch the cache
        if gpu.value(DCGM_FI_DEV_ECC_DBE_VOL_TOTAL, now) > 0 or gpu.value(DCGM_FI_DEV_XID_ERRORS, now) == XID_DOUBLE_BIT_ECC:
            problems.append((gpu.index, "Memory system: a volatile double-bit ECC error was detected."))
        if gpu.value(DCGM_FI_DEV_GPU_TEMP, now) > hardware.GPU_THERMAL_LIMIT_C:
            problems.append((gpu.index, f"Thermal: GPU temperature {gpu.value(DCGM_FI_DEV_GPU_TEMP, now):.0f} C "
                                        f"exceeds the slowdown threshold."))
    sep = "+---------------------------+----------------------------------------------------------+"
    overall = "Failure" if problems else "Healthy"
    out = [sep, "| Health Monitor Report                                                                |",
           sep.replace("-", "="), f"| {'Overall Health':<25} | {overall:<56} |"]
    for index, message in problems:
        out += [sep, f"| {'GPU ID: ' + str(index):<25} | {'Failure':<56} |", f"| {'':<25} | {message[:56]:<56} |"]
    out.append(sep)
    return DcgmiResult(0, "\n".join(out) + "\n")


def _test(node: Node, args: list[str], clock: TwinClock) -> DcgmiResult:
    """`dcgmi test --inject` as CommandLineParser.cpp parses it: --gpuid (default 1), -f, -v, --offset (default 1,
    seconds into the future, not negative), --host; -g/--group is refused for injection."""
    seen, values = _options(args, {"--inject"}, {"--gpuid": "gpu", "-f": "field", "--field": "field",
                                                 "-v": "value", "--value": "value", "--offset": "offset",
                                                 "-g": "group", "--group": "group", "--host": "host"})
    if "--inject" not in seen:
        raise DcgmiError("Error: only `dcgmi test --inject` is supported.")
    if "group" in values:
        raise DcgmiError("Error: Injection can only be specified for a single GPU.")
    if "field" not in values:
        raise DcgmiError("Error: The --field argument is required for --inject and --introspect.")
    if "value" not in values:
        raise DcgmiError("Error: The -v/--value argument is required for --inject.")
    try:
        gpu_id = int(values.get("gpu", DEFAULT_GPU_ID))
        field_id, value = int(values["field"]), float(values["value"])
        offset = int(values.get("offset", DEFAULT_OFFSET_S))
    except ValueError:
        raise DcgmiError("Error: --gpuid, -f and --offset take integers, -v a number.") from None
    if offset < 0 or gpu_id < 0:
        raise DcgmiError("Error: Positive value expected, negative value found.")
    gpu = next((g for g in node.gpus if g.index == gpu_id), None)
    if gpu is None:
        return DcgmiResult(1, "Error: Unable to inject info. Return: Invalid GPU ID\n")
    if field_id not in DCGM_FIELD_NAMES:
        return DcgmiResult(1, "Error: Unable to inject info. Return: Field is not supported by this DCGM\n")
    now = clock.now()
    gpu.inject(field_id, value, now + clock.wall(float(offset)), now)
    node.dcgm_events.append((gpu.index, field_id, value, now))     # the cache broadcasts the new value (policy)
    return DcgmiResult(0, "Successfully injected field info.\n")


def _dmon(node: Node, args: list[str], now: float) -> DcgmiResult:
    _, values = _options(args, set(), {"-e": "fields", "-c": "count", "-i": "gpus", "--host": "host"})
    if "fields" not in values:
        raise DcgmiError("Error: dmon needs -e FIELD[,FIELD...].")
    try:
        fids = [int(f) for f in values["fields"].split(",")]
        count = int(values.get("count", "1"))
    except ValueError:
        raise DcgmiError("Error: -e takes comma-separated integers, -c an integer.") from None
    unknown = [f for f in fids if f not in DCGM_FIELD_NAMES]
    if unknown:
        raise DcgmiError(f"Error: unknown field id {unknown[0]}.")
    header = "#Entity   " + "".join(f"{DCGM_FIELD_NAMES[f][-10:]:>12}" for f in fids)
    rows = [header]
    for _ in range(max(1, min(count, 10))):
        for gpu in node.gpus:
            rows.append(f"GPU {gpu.index:<6}" + "".join(f"{_fmt(gpu.value(f, now)):>12}" for f in fids))
    return DcgmiResult(0, "\n".join(rows) + "\n")


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def pci_bus_id(index: int) -> str:
    """Bus ids as a g7.48xlarge enumerates its eight GPUs."""
    return f"00000000:{0x16 + index * 0x10:02X}:00.0"
