"""`dcgmi` as the DCGM pod on a node answers it, acting on that node's GPUs in the World.

Fault injection on a real G7 node goes through `dcgmi test --inject` run by pod exec in the node's
DCGM pod; the twin answers the same command line so a fault module cannot tell the difference, and
the injected value really lands in the GPU's field cache that the exporter, the alarms, the node
monitoring agent and the serving layer all read.

A double-bit ECC error counts in both the volatile (311) and the aggregate (319) counter on real
hardware; an injection into either is treated as such an event, so the CloudWatch alarm on 311 fires
after the article's `-f 319` injection exactly as it would after a real error.
"""
from __future__ import annotations

from dataclasses import dataclass

from harness.twin import hardware
from harness.twin.world import (DCGM_FI_DEV_ECC_DBE_AGG_TOTAL, DCGM_FI_DEV_ECC_DBE_VOL_TOTAL,
                                DCGM_FI_DEV_GPU_TEMP, DCGM_FI_DEV_XID_ERRORS, DCGM_FIELD_NAMES, Node)

DBE_FIELDS = (DCGM_FI_DEV_ECC_DBE_VOL_TOTAL, DCGM_FI_DEV_ECC_DBE_AGG_TOTAL)
XID_DOUBLE_BIT_ECC = 48

USAGE = """Usage: dcgmi <subsystem> [options]
Subsystems supported by the twin:
  discovery -l                                  list the GPUs of this node
  health -c [-g GROUP]                          run a health check
  test --inject --gpuid G -f FIELD -v VALUE     inject a field value into the cache
  dmon -e FIELD[,FIELD...] [-c COUNT]           print field values
"""


@dataclass
class DcgmiResult:
    exit_code: int
    stdout: str
    stderr: str = ""


class DcgmiError(Exception):
    """A command line dcgmi rejects; the message is what it prints."""


def run_dcgmi(node: Node, argv: list[str]) -> DcgmiResult:
    """Run one `dcgmi` command line (argv without the leading `dcgmi`) against `node`."""
    try:
        if not argv or argv[0] in ("-h", "--help"):
            return DcgmiResult(0 if argv else 1, USAGE if argv else "", "" if argv else USAGE)
        sub, rest = argv[0], argv[1:]
        if sub == "discovery":
            return _discovery(node, rest)
        if sub == "health":
            return _health(node, rest)
        if sub == "test":
            return _test(node, rest)
        if sub == "dmon":
            return _dmon(node, rest)
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
    seen, _ = _options(args, {"-l", "--list"}, {})
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


def _health(node: Node, args: list[str]) -> DcgmiResult:
    seen, _ = _options(args, {"-c", "--check"}, {"-g": "group", "--group": "group"})
    if not seen:
        raise DcgmiError("Error: health needs -c (check).")
    problems: list[tuple[int, str]] = []
    for gpu in node.gpus:
        if gpu.double_bit_error or gpu.fields[DCGM_FI_DEV_XID_ERRORS] == XID_DOUBLE_BIT_ECC:
            problems.append((gpu.index, "Memory system: a volatile double-bit ECC error was detected."))
        if gpu.throttled:
            problems.append((gpu.index, f"Thermal: GPU temperature {gpu.fields[DCGM_FI_DEV_GPU_TEMP]:.0f} C "
                                        f"exceeds the slowdown threshold."))
    sep = "+---------------------------+----------------------------------------------------------+"
    overall = "Failure" if problems else "Healthy"
    out = [sep, "| Health Monitor Report                                                                |",
           sep.replace("-", "="), f"| {'Overall Health':<25} | {overall:<56} |"]
    for index, message in problems:
        out += [sep, f"| {'GPU ID: ' + str(index):<25} | {'Failure':<56} |", f"| {'':<25} | {message[:56]:<56} |"]
    out.append(sep)
    return DcgmiResult(0, "\n".join(out) + "\n")


def _test(node: Node, args: list[str]) -> DcgmiResult:
    seen, values = _options(args, {"--inject"}, {"--gpuid": "gpu", "-i": "gpu", "-f": "field", "--field": "field",
                                                 "-v": "value", "--value": "value"})
    if "--inject" not in seen:
        raise DcgmiError("Error: only `dcgmi test --inject` is supported.")
    for required in ("gpu", "field", "value"):
        if required not in values:
            raise DcgmiError(f"Error: --inject needs --gpuid, -f and -v (missing {required}).")
    try:
        gpu_id, field_id, value = int(values["gpu"]), int(values["field"]), float(values["value"])
    except ValueError:
        raise DcgmiError("Error: --gpuid and -f take integers, -v a number.") from None
    gpu = next((g for g in node.gpus if g.index == gpu_id), None)
    if gpu is None:
        raise DcgmiError(f"Error: Invalid GPU ID {gpu_id}. This node has GPUs 0-{len(node.gpus) - 1}.")
    if field_id not in DCGM_FIELD_NAMES:
        raise DcgmiError(f"Error: Unable to inject field {field_id}: field is not supported by this DCGM.")
    targets = DBE_FIELDS if field_id in DBE_FIELDS else (field_id,)
    for fid in targets:
        gpu.fields[fid] = value
    return DcgmiResult(0, "Successfully injected field info.\n")


def _dmon(node: Node, args: list[str]) -> DcgmiResult:
    _, values = _options(args, set(), {"-e": "fields", "-c": "count", "-i": "gpus"})
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
            rows.append(f"GPU {gpu.index:<6}" + "".join(f"{_fmt(gpu.fields.get(f, 0.0)):>12}" for f in fids))
    return DcgmiResult(0, "\n".join(rows) + "\n")


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def pci_bus_id(index: int) -> str:
    """Bus ids as a g7.48xlarge enumerates its eight GPUs."""
    return f"00000000:{0x16 + index * 0x10:02X}:00.0"
