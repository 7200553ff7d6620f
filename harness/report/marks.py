"""What the harness saw the cluster (and AWS) do during a run, as labelled marks on one time axis.

The run writes them to `cluster.jsonl` in its report folder (harness/run/clustermarks.py derives them from the
watches, the faults and the checks' own probes); the report reads them back to draw the cluster lane and to
compute each fault's milestones (harness/report/timeline.py). So a report can be rebuilt from the folder alone,
long after the cluster it describes has changed.

A mark is a change, not a state: "node X cordoned", "pod Y evicted", "GpuDbeError True on node X (reason)",
"alarm Z in ALARM". `node` names the node the mark is about (the pod's node for a pod), so a fault's milestones
can pick the marks on its own nodes; `zone` is that node's availability zone when known.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Literal

from pydantic import BaseModel, ConfigDict

from harness.jsonl import iter_records

CLUSTER_JSONL = "cluster.jsonl"

MarkKind = Literal[
    "fault-injected", "fault-landed", "fault-reverted", "fault-moment",   # the harness's own actions and facts
    "node-joined", "node-ready", "node-not-ready", "node-deleted", "node-condition", "cordon", "uncordon",
    "pod-placed", "pod-evicted", "pod-deleted", "pod-not-ready", "pod-ready",
    "event", "alarm", "zonal-shift", "stop-condition"]

# what each lane calls a detection and an isolation (harness/report/timeline.py picks milestones by these)
DETECT_KINDS = frozenset({"node-condition", "node-not-ready", "event", "alarm"})
ISOLATE_KINDS = frozenset({"cordon", "pod-not-ready", "zonal-shift"})


class ClusterMark(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    at: float                 # wall time, Unix seconds (when the harness saw it)
    kind: MarkKind
    subject: str              # node, pod, alarm, experiment or fault name
    label: str                # short text for the axis: "cordoned ip-10-0-1-12"
    node: str | None = None   # the node it is about (a pod's node)
    zone: str | None = None
    detail: str = ""          # reason and message, as the source gave them
    fault: int | None = None  # for the harness's own marks: the fault's index in the scenario


def write_marks(path: str | Path, marks: Iterable[ClusterMark]) -> Path:
    """All marks in time order, one JSON object a line, written whole then renamed into place."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for mark in sorted(marks, key=lambda m: m.at):
            fh.write(json.dumps(mark.model_dump(mode="json", exclude_defaults=True), separators=(",", ":")) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def read_marks(path: str | Path) -> list[ClusterMark]:
    """The marks of a run folder's cluster.jsonl (none when the run wrote none: an older or crashed run)."""
    path = Path(path)
    if not path.exists():
        return []
    return sorted((ClusterMark.model_validate(record) for record in iter_records(path)), key=lambda m: m.at)
