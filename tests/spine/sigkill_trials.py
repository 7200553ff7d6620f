"""SIGKILL mid-fault, then `g7chaos recover`: the twin ends exactly as it was before the run, for every kind of fault.

A SIGKILL gives the harness no chance to revert anything: the journal (each fault registers its revert before it
mutates) is all `recover` has. One twin runs in this process for all trials; every trial writes a short scenario
(fault at 1 s, lasting far longer than the trial) to tmp_path, starts `g7chaos run` against that twin in a new
process group, waits on the run's journal until the fault has landed, SIGKILLs the whole group (the load's worker
processes too), runs `g7chaos recover` on the trial's reports folder (through the command's entry point in this
process: the reverts run from the journal alone either way, and a fresh interpreter per trial costs seconds) and
then waits, against a deadline, until the twin reads as it did before the first trial. Twenty trials cycle over every fault (and over their modes: cgroup freezes
and EBS I/O stalls, reboot and plugin restart, AZ network loss with a zonal shift and AZ power loss).

What the twin is compared on, read through the APIs the harness itself uses (Kubernetes, EC2, FIS, ARC,
CloudWatch and dcgm-exporter through the pod proxy), and what "exactly as before" means:

- every node: cordon, taints, condition statuses, allocatable GPUs; nodegroup and zone. A node may reboot (it
  comes back under its own name, Ready and uncordoned with all its GPUs). Only a spot interruption may replace a
  node: FIS had sent the notice before the kill, and a notice cannot be recalled (EC2 reclaims the instance
  either way), so the node group's replacement is the deployment's doing, not a leftover; the replacement must
  carry exactly the state the reclaimed node had, in the same nodegroup. Any other node that is gone or new is a
  leftover.
- every Deployment and DaemonSet back to all of its replicas Ready (pods themselves may be new: a rebooted or
  replaced node's pods are restarted by their owners);
- no pod the harness created (label app.kubernetes.io/managed-by=g7chaos) in any namespace;
- dcgm-exporter's ECC, XID, temperature and SM-clock fields of every GPU, value for value (utilisation and
  power follow the live load and are not faults' fields);
- no FIS experiment that is not completed/stopped/failed, no experiment template left, no ACTIVE ARC zonal
  shift, every EC2 instance that was running still (or again) running, apart from a reclaimed spot instance;
- every CloudWatch alarm in the state it had (an alarm that fired on an injected field must clear once the
  field is back);
- no replica of the serving layer frozen by the cgroup freezer. The pod of a frozen container stays Running and
  Ready in the API, so this one fact is read from the twin's serving layer itself.

Before `recover`, each trial compares the twin with the fault still in place and requires a difference, so a
comparison blind to a fault cannot pass (a plugin restart is the exception: the new plugin pod may have
registered every GPU again before the run is killed, leaving nothing to see).

The twin runs the `no-dbe-remediation` profile: under `article` auto repair replaces a node with a DBE, and a
DBE the revert left behind would leave with the node unnoticed; here it stays on the GPU for the comparison.

The faults run one at a time: the comparison is of the whole twin, so two faults in place at once could hide
each other's leftovers. The twin's control plane runs at 60x, so a spot notice, a reboot or a zone's power
coming back settles in a few seconds; the pace is set by each run's own minimum before its fault (interpreter
and load start, and the runner's 4 s of steady state), about 6-10 s per trial, 2.5-3.5 minutes for all twenty on a
shared two-core machine.

The file is named so that a session does not collect it: tests/spine/test_sigkill_recover.py runs it in a
pytest of its own, in the background (tests/ahead.py), since its twin lives in the process that runs it.
"""
from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from harness.cli import main as g7chaos_main
from harness.faults import FAULTS
from harness.journal import owed_reverts, read_records
from harness.prometheus import parse_samples
from harness.target.target import Target

ROOT = Path(__file__).resolve().parents[2]
TRIALS = 20
TIME_SCALE = 60.0                    # the twin's control plane: a spot notice or a reboot is over in seconds
LANDED_WITHIN_S = 60.0               # wall seconds from `g7chaos run` to the journal's fault-landed
SETTLE_WITHIN_S = 30.0               # wall seconds from the end of `recover` to the twin reading as before
HARNESS_LABEL = "app.kubernetes.io/managed-by=g7chaos"
DCGM_METRICS = ("DCGM_FI_DEV_ECC_DBE_AGG_TOTAL", "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL",
                "DCGM_FI_DEV_XID_ERRORS", "DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_SM_CLOCK")
FIS_DONE = ("completed", "stopped", "failed", "cancelled")
GPU = "nvidia.com/gpu"
NODEGROUP = "eks.amazonaws.com/nodegroup"
ZONE = "topology.kubernetes.io/zone"
MODEL = "llama-13b-fp8"

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Case:
    """One fault as a trial injects it: the fault's name and its scenario parameters."""

    fault: str
    params: dict[str, Any]
    replaces_nodes: bool = False      # a spot notice, once sent, ends in a replaced node

    @property
    def label(self) -> str:
        mode = self.params.get("mode") or self.params.get("method")
        return f"{self.fault}{f' ({mode})' if mode else ''}"


CASES: list[Case] = [
    Case("ecc-double-bit-error", {"node": {"zone": "us-east-2a", "model": MODEL}, "gpu": 0}),
    Case("gpu-thermal-throttle", {"node": {"zone": "us-east-2b", "model": MODEL}, "gpu": "all", "temperature": 92}),
    Case("replica-stall", {"model": MODEL, "count": 3, "mode": "before-first-token"}),
    Case("efa-saturation", {"load": 0.75}),
    Case("spot-interruption", {"node": {"zone": "us-east-2b", "model": MODEL}, "notice": "2m"}, replaces_nodes=True),
    Case("device-plugin-race", {"node": {"zone": "us-east-2b", "model": MODEL}, "method": "reboot"}),
    Case("az-loss", {"zone": "us-east-2a", "mode": "network", "zonal_shift": True}),
    Case("node-reboot", {"node": {"zone": "us-east-2a", "model": MODEL}}),
    Case("replica-stall", {"model": MODEL, "count": "all", "mode": "io", "io_latency": "200ms"}),
    Case("ecc-double-bit-error", {"node": {"zone": "us-east-2b", "model": MODEL}, "gpu": 3, "fields": [311]}),
    Case("gpu-thermal-throttle", {"node": {"zone": "us-east-2a", "model": MODEL}, "gpu": 1}),
    Case("replica-stall", {"model": MODEL, "count": "all", "mode": "mid-stream"}),
    Case("efa-saturation", {"load": 0.5}),
    Case("spot-interruption", {"node": {"zone": "us-east-2a", "model": MODEL}, "notice": "2m"}, replaces_nodes=True),
    Case("device-plugin-race", {"node": {"zone": "us-east-2a", "model": MODEL}, "method": "reboot"}),
    Case("az-loss", {"zone": "us-east-2b", "mode": "power"}),
    Case("node-reboot", {"node": {"zone": "us-east-2b", "model": MODEL}}),
    Case("replica-stall", {"model": MODEL, "count": 2, "mode": "io", "io_action": "pause"}),
]


def scenario_file(case: Case, index: int, folder: Path) -> Path:
    """A scenario whose fault lands at once and would stay far longer than the trial lets the run live."""
    step: dict[str, Any] = {"at": "1s", case.fault: case.params}
    if case.fault not in ("ecc-double-bit-error", "spot-interruption", "device-plugin-race", "node-reboot"):
        step["duration"] = "10m"
    scenario = {
        "name": f"sigkill-{index:02d}-{case.fault}",
        "description": f"SIGKILL while {case.label} is in place",
        "target": "twin",
        "duration": "15m",
        "load": {"users": 4, "spawn_rate": 100, "prompt_tokens": 16, "max_tokens": 16, "timeout": "30s"},
        "faults": [step],
        # recovery-time sets how long the run's preflight waits for a steady fleet (a node the trial before
        # rebooted or replaced may still be coming back); the run never lives to judge either check
        "checks": [{"fault-landed": {"within": "10m"}}, {"recovery-time": {"within": "20m"}}],
    }
    path = folder / f"{scenario['name']}.yaml"
    path.write_text(yaml.safe_dump(scenario, sort_keys=False))
    return path


# ------------------------------------------------------------------------------------------------ the snapshot


@dataclass
class Snapshot:
    nodes: dict[tuple[str, str], tuple] = field(default_factory=dict)       # (context, name) -> state
    workloads: dict[tuple, tuple[int, int]] = field(default_factory=dict)   # owner -> (desired, ready)
    harness_pods: list[str] = field(default_factory=list)
    dcgm: dict[tuple[str, str, str], float] = field(default_factory=dict)   # (node, gpu, metric) -> value
    fis_running: list[str] = field(default_factory=list)
    fis_templates: list[str] = field(default_factory=list)
    zonal_shifts: list[str] = field(default_factory=list)
    instances: dict[str, str] = field(default_factory=dict)                 # instance id -> state
    alarms: dict[str, str] = field(default_factory=dict)
    stopped_replicas: list[str] = field(default_factory=list)


def node_state(node: Any) -> tuple:
    labels = node.metadata.labels or {}
    taints = tuple(sorted((t.key, t.value or "", t.effect) for t in node.spec.taints or []))
    conditions = tuple(sorted((c.type, c.status) for c in node.status.conditions or []))
    gpus = (node.status.allocatable or {}).get(GPU, "0")
    return (labels.get(NODEGROUP), labels.get(ZONE), bool(node.spec.unschedulable), taints, conditions, gpus)


def take_snapshot(target: Target, twin: Any) -> Snapshot:
    snap = Snapshot()
    exporter = target.spec.selectors.dcgm_exporter
    for context in target.contexts:
        api = target.kube(context)
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        for node in core.list_node().items:
            snap.nodes[(context, node.metadata.name)] = node_state(node)
        for d in apps.list_deployment_for_all_namespaces().items:
            snap.workloads[(context, "Deployment", d.metadata.namespace, d.metadata.name)] = (
                d.spec.replicas or 0, d.status.ready_replicas or 0)
        for ds in apps.list_daemon_set_for_all_namespaces().items:
            snap.workloads[(context, "DaemonSet", ds.metadata.namespace, ds.metadata.name)] = (
                ds.status.desired_number_scheduled or 0, ds.status.number_ready or 0)
        snap.harness_pods += [f"{context}/{p.metadata.namespace}/{p.metadata.name}"
                              for p in core.list_pod_for_all_namespaces(label_selector=HARNESS_LABEL).items]
        for pod in core.list_namespaced_pod(exporter.namespace, label_selector=exporter.label_selector).items:
            if pod.status.phase != "Running":
                continue
            try:
                text = core.connect_get_namespaced_pod_proxy_with_path(
                    f"{pod.metadata.name}:{target.spec.selectors.dcgm_exporter_port}", exporter.namespace, "metrics")
            except client.ApiException as exc:   # a node that is down: its fields are judged once it is back
                snap.dcgm[(pod.spec.node_name, "*", f"unreachable {exc.status}")] = -1
                continue
            for sample in parse_samples(text):
                if sample.name in DCGM_METRICS:
                    snap.dcgm[(pod.spec.node_name, sample.labels.get("gpu", "?"), sample.name)] = sample.value
    fis = target.aws("fis")
    snap.fis_running = sorted(e["id"] for e in fis.list_experiments()["experiments"]
                              if e["state"]["status"] not in FIS_DONE)
    snap.fis_templates = sorted(t["id"] for t in fis.list_experiment_templates()["experimentTemplates"])
    snap.zonal_shifts = sorted(s["zonalShiftId"] for s in
                               target.aws("arc-zonal-shift").list_zonal_shifts(status="ACTIVE").get("items", []))
    for reservation in target.aws("ec2").describe_instances()["Reservations"]:
        for instance in reservation["Instances"]:
            snap.instances[instance["InstanceId"]] = instance["State"]["Name"]
    for page in target.aws("cloudwatch").get_paginator("describe_alarms").paginate():
        snap.alarms.update({a["AlarmName"]: a["StateValue"] for a in page["MetricAlarms"]})
    snap.stopped_replicas = sorted(twin.call(lambda: set(twin.twin.serving.stopped_pods)))
    return snap


def leftovers(before: Snapshot, now: Snapshot, *, may_replace: bool) -> list[str]:
    """What differs from `before`, one phrase each; empty when the twin is exactly as it was."""
    out: list[str] = []
    gone = sorted(set(before.nodes) - set(now.nodes))
    new = sorted(set(now.nodes) - set(before.nodes))
    for key in sorted(set(before.nodes) & set(now.nodes)):
        if before.nodes[key] != now.nodes[key]:
            out.append(f"node {key[0]}/{key[1]}: {now.nodes[key]} (was {before.nodes[key]})")
    if gone or new:
        if not may_replace:
            out += [f"node {c}/{n} gone" for c, n in gone] + [f"node {c}/{n} new" for c, n in new]
        elif sorted(before.nodes[k] for k in gone) != sorted(now.nodes[k] for k in new):
            out.append(f"replaced nodes {gone} -> {new} differ: {[before.nodes[k] for k in gone]} -> "
                       f"{[now.nodes[k] for k in new]}")
    for key, (desired, ready) in sorted(now.workloads.items()):
        if ready != desired or before.workloads.get(key) != (desired, ready):
            out.append(f"{'/'.join(key)}: {ready}/{desired} ready (was {before.workloads.get(key)})")
    out += [f"workload {'/'.join(k)} gone" for k in sorted(set(before.workloads) - set(now.workloads))]
    out += [f"harness pod {p}" for p in now.harness_pods if p not in before.harness_pods]
    replaced_nodes = {n for _, n in gone}
    for key in sorted(set(before.dcgm) | set(now.dcgm)):
        if key[0] in replaced_nodes or any(key[0] == n for _, n in new):
            continue          # a replacement's fields are a new GPU's; its state is judged with the node
        if before.dcgm.get(key) != now.dcgm.get(key):
            out.append(f"dcgm {key[0]} gpu {key[1]} {key[2]}: {now.dcgm.get(key)} (was {before.dcgm.get(key)})")
    out += [f"FIS experiment {e} still running" for e in now.fis_running if e not in before.fis_running]
    out += [f"FIS template {t} left" for t in now.fis_templates if t not in before.fis_templates]
    out += [f"ARC zonal shift {s} active" for s in now.zonal_shifts if s not in before.zonal_shifts]
    for instance, state in sorted(before.instances.items()):
        after = now.instances.get(instance)
        if after != state and not (may_replace and state == "running" and after == "terminated"):
            out.append(f"instance {instance} {after} (was {state})")
    out += [f"instance {i} new ({s})" for i, s in sorted(now.instances.items())
            if i not in before.instances and (s != "running" or not may_replace)]
    for alarm, state in sorted(before.alarms.items()):
        if now.alarms.get(alarm) != state:
            out.append(f"alarm {alarm} {now.alarms.get(alarm)} (was {state})")
    out += [f"replica pod {p} still frozen" for p in now.stopped_replicas if p not in before.stopped_replicas]
    return out


# -------------------------------------------------------------------------------------------------- one trial


@dataclass
class Trial:
    index: int
    case: Case
    reports: Path
    proc: subprocess.Popen | None = None
    started: float = 0.0
    landed_s: float = 0.0
    settled_s: float = 0.0
    owed: int = 0
    nodes: list[str] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)       # how the fault showed before recover
    left: list[str] = field(default_factory=list)

    def journal(self) -> Path | None:
        found = sorted(self.reports.glob("*/journal.jsonl"))
        return found[0] if found else None


def start_run(trial: Trial, endpoints: Path, folder: Path) -> None:
    """`g7chaos run` of the trial's scenario against the twin, in a process group of its own."""
    scenario = scenario_file(trial.case, trial.index, folder)
    trial.started = time.time()
    trial.proc = subprocess.Popen([sys.executable, "-m", "harness", "run", str(scenario), "--twin-endpoints",
                                   str(endpoints), "--report-dir", str(trial.reports)], cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def kill_once_landed(trial: Trial) -> Path:
    """SIGKILL the run's whole process group as soon as its journal says the fault landed."""
    proc = trial.proc
    assert proc is not None
    tick = threading.Event()
    journal, landed = None, None
    try:
        deadline = trial.started + LANDED_WITHIN_S
        while time.time() < deadline and proc.poll() is None and landed is None:
            journal = journal or trial.journal()
            if journal is not None:
                for record in read_records(journal):
                    if record.get("event") in ("fault-not-landed", "run-ended"):
                        raise AssertionError(f"trial {trial.index} {trial.case.label}: {record}")
                    if record.get("event") == "fault-injected":
                        trial.nodes = record.get("nodes", [])
                    if record.get("event") == "fault-landed":
                        landed = record
            if landed is None:
                tick.wait(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    stderr = proc.stderr.read().decode(errors="replace")[-2000:] if proc.stderr else ""
    assert landed is not None and journal is not None, \
        f"trial {trial.index} {trial.case.label}: the fault never landed (exit {proc.returncode}): {stderr}"
    assert proc.returncode == -signal.SIGKILL, f"the run ended on its own (exit {proc.returncode}): {stderr}"
    trial.landed_s = time.time() - trial.started
    assert_group_gone(proc.pid)
    return journal


def assert_group_gone(pgid: int, within_s: float = 10.0) -> None:
    """No process of the killed run's group (its load workers included) lives on to keep acting on the twin."""
    deadline, tick = time.time() + within_s, threading.Event()
    while True:
        alive = [pid for pid in map(int, filter(str.isdigit, os.listdir("/proc"))) if _group_of(pid) == pgid]
        if not alive:
            return
        assert time.time() < deadline, f"processes {alive} of the killed run's group still run"
        tick.wait(0.05)


def _group_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return None if fields[0] == "Z" else int(fields[2])    # a zombie acts on nothing


def recover(reports: Path) -> str:
    """`g7chaos recover` on the trial's reports folder, through the command's own entry point."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = g7chaos_main(["recover", "--reports", str(reports)])
    assert code == 0, out.getvalue()
    return out.getvalue()


def settle(target: Target, twin: Any, before: Snapshot, trial: Trial) -> Snapshot:
    """Wait until the twin reads as before (controllers restart what a revert leaves restarting); the twin as
    it then reads, or as it still differs at the deadline (`trial.left` says how)."""
    started, tick = time.time(), threading.Event()
    while True:
        now = take_snapshot(target, twin)
        trial.left = leftovers(before, now, may_replace=trial.case.replaces_nodes)
        if not trial.left:
            trial.settled_s = time.time() - started
            return now
        if time.time() - started > SETTLE_WITHIN_S:
            return now
        tick.wait(0.1)


def changed_before(trial: Trial, moment: float) -> list[dict[str, Any]]:
    """Records of the trial's run that put something on the twin (a registered revert) before `moment`."""
    journal = trial.journal()
    return [r for r in read_records(journal) if r.get("event") == "revert-registered" and r["ts"] < moment] \
        if journal else []


def test_sigkill_mid_fault_then_recover_leaves_the_twin_as_it_was(twin_pool, tmp_path: Path) -> None:
    """Each run is started as soon as the one before it is killed and the fault it left is seen: a run spends its
    first seconds starting up, waiting for a steady fleet and measuring steady state, with nothing of its own on
    the twin. The comparison of the trial before must be over before the new run registers its first revert,
    which is checked."""
    twin = twin_pool.get("no-dbe-remediation", nodes_per_az=1, time_scale=TIME_SCALE, leaves_marks=True)
    endpoints = Path(twin.twin.out_dir) / "endpoints.json"
    target = Target.from_twin_endpoints(endpoints)
    before = take_snapshot(target, twin)
    assert not leftovers(before, before, may_replace=False)
    assert before.fis_running == [] and before.harness_pods == [] and before.stopped_replicas == []
    assert all(ready == desired for desired, ready in before.workloads.values()), before.workloads

    started = time.time()
    trials = [Trial(index=i, case=CASES[i % len(CASES)], reports=tmp_path / f"trial-{i:02d}") for i in range(TRIALS)]
    start_run(trials[0], endpoints, tmp_path)
    try:
        for trial, following in zip(trials, trials[1:] + [None]):
            case = trial.case
            journal = kill_once_landed(trial)
            # seen first: a DCGM injection a killed run no longer re-injects stands only until its future
            # timestamp passes (60 s of deployment time, one second here), so nothing may run before this look
            trial.seen = leftovers(before, take_snapshot(target, twin), may_replace=False)
            if following is not None:
                start_run(following, endpoints, tmp_path)
            owed = owed_reverts(journal)
            trial.owed = len(owed)
            assert owed and {o.fault for o in owed} == {case.fault}, (case.label, owed)
            assert trial.seen, \
                f"trial {trial.index} {case.label}: the fault in place does not show in the comparison"
            said = recover(trial.reports)
            assert owed_reverts(journal) == [] and f"reverted {case.fault}" in said, said
            assert "nothing owed" in recover(trial.reports)      # a second recover finds nothing left to do
            settled = settle(target, twin, before, trial)
            compared_at = time.time()
            print(f"trial {trial.index:2d} {case.label:36s} landed {trial.landed_s:5.1f} s, owed {trial.owed}, "
                  f"settled {trial.settled_s:5.1f} s, leftovers {len(trial.left)}; seen before recover: "
                  f"{'; '.join(trial.seen)[:160]}")
            assert not trial.left, f"trial {trial.index} {case.label} on {trial.nodes}: leftovers {trial.left}"
            if following is not None:
                overlap = changed_before(following, compared_at)
                assert not overlap, f"trial {following.index} changed the twin before trial {trial.index} was judged"
            if case.replaces_nodes:
                before = settled      # the reclaimed node's replacement is the fleet from now on
    finally:
        for trial in trials:
            if trial.proc is not None and trial.proc.poll() is None:
                os.killpg(trial.proc.pid, signal.SIGKILL)
                trial.proc.wait(timeout=10)
                recover(trial.reports)
    wall = time.time() - started
    print(f"{TRIALS} trials over {len({t.case.fault for t in trials})} faults in {wall:.1f} s: "
          f"{sum(len(t.left) for t in trials)} leftovers")
    untried = set(FAULTS) - {t.case.fault for t in trials}
    assert not untried, f"no trial of {sorted(untried)}: every registered fault is SIGKILLed and recovered"
