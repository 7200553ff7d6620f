"""`g7chaos audit [--target NAME]`: a read-only check of a deployment against the article's anti-patterns.

A game day shows what breaks; some prescriptions can be read off the deployment without breaking anything,
and should be before the first fault is injected. Each rule reads through the same clients a run uses
(list nodes and pods, DescribeAlarms, DescribeInstances, DescribePlacementGroups) and never writes:

- `dbe-alarm`: each cluster has a CloudWatch alarm on DCGM_FI_DEV_ECC_DBE_VOL_TOTAL (a double-bit ECC error
  silently corrupts answers; the node must be replaced, and someone must be told);
- `gpu-temperature-alarm`: each cluster has an alarm on DCGM_FI_DEV_GPU_TEMP (thermal slowdown);
- `efa-alarm`: each cluster has an alarm on the target's EFA metric as the CloudWatch agent exports it
  (`alarms.efa_metric`, default `efa_retrans_pkts`, namespace `CWAgent`): a saturated fabric stalls
  all-reduce;
- `placement-group`: every tensor-parallel group (inference pods labelled `tp-group`) spans nodes whose
  instances share one `cluster` placement group (EFA all-reduce across racks is slow);
- `cluster-per-az`: each kube context's nodes sit in one Availability Zone, a different one per context
  (a cluster stretched over zones keeps routing into a dead zone);
- `dcgm-exporter-dbe`: every dcgm-exporter pod exports DCGM_FI_DEV_ECC_DBE_VOL_TOTAL (commented out of its
  default counters) and reads the node's DCGM hostengine (`-r` / DCGM_REMOTE_HOSTENGINE_INFO) that
  `dcgmi test --inject` writes into; otherwise the DBE alarm cannot see an injected fault (nor, without the
  counter, a real one);
- `node-auto-repair`: every GPU nodegroup has EKS node auto repair enabled (`eks:DescribeNodegroup`
  nodeRepairConfig) with a wait for AcceleratedHardwareReady/NvidiaDoubleBitError (10 min unless overridden)
  that fits the ECC scenario's node-drained limit after the agent's detection and the drain.
- `zonal-shift`: the load balancer has ARC zonal shift enabled (`zonal_shift.config.enabled`, off by default):
  without it nobody can shift traffic away from a failing zone, and `az-loss` with `zonal_shift` refuses to run;
- `scenario-alarms`: every alarm the scenarios rely on exists: the alarm each `alarm-fired` check watches (its
  `alarm`, or the target's alarm for its metric in every cluster) and every `alarm:` stop condition.

The inference autoscaling signal (queue depth, not GPU utilisation) is not read here: it lives in the
scaler's configuration, which the Kubernetes API the harness is granted does not show; the `retry-storm`
and `scale-on-saturation` style scenarios judge it by its effect.

The same guardrails as a dry run apply (allowlisted contexts, STS account, region; no production prompt,
since nothing is changed). Exit 0 when every rule passes, 1 when one fails, 2 bad input, 4 unreachable.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from harness.errors import ExitCode, UsageError

ZONE = "topology.kubernetes.io/zone"
TP_LABEL = "tp-group"
DBE_METRIC = "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"
NODEGROUP_LABEL = "eks.amazonaws.com/nodegroup"
ECC_SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "ecc-double-bit-error.yaml"
DETECTION_BOUND_S = 60.0     # DCGM DBE policy -> AcceleratedHardwareReady=False (AWS's own e2e bound)
DRAIN_BOUND_S = 60.0         # the drain under the PDBs, as the ECC scenario allows it
DEFAULT_REPAIR_WAIT_S = 600.0
ALARM_METRICS = {"dbe-alarm": "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "gpu-temperature-alarm": "DCGM_FI_DEV_GPU_TEMP",
                 "efa-alarm": None}    # None: the target's `alarms.efa_metric` (FIDELITY EFA-4)


class Finding(BaseModel):
    """One rule's verdict on the deployment, with what was read to reach it."""

    rule: str
    passed: bool
    detail: str


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", default="twin", help="'twin' (default) or a name from targets.yaml")
    parser.add_argument("--targets-file", type=Path, default=None, help="targets.yaml (default: ./targets.yaml)")
    parser.add_argument("--twin-endpoints", type=Path, default=None,
                        help="twin only: the running twin's endpoints file (default: reports/twin/endpoints.json)")
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    parser.add_argument("--scenarios", nargs="*", default=None,
                        help="scenario files or directories whose alarms must exist (default: ./scenarios)")


def _alarms(target: Any) -> list[dict[str, Any]]:
    alarms: list[dict[str, Any]] = []
    for page in target.aws("cloudwatch").get_paginator("describe_alarms").paginate(AlarmTypes=["MetricAlarm"]):
        alarms.extend(page.get("MetricAlarms", []))
    return alarms


def alarm_findings(target: Any) -> list[Finding]:
    """Per metric: every cluster has an alarm on it (by its ClusterName dimension or its configured name)."""
    alarms = _alarms(target)
    findings = []
    for rule, metric in ALARM_METRICS.items():
        namespace = None
        if metric is None:
            metric, namespace = target.spec.alarms.efa_metric, target.spec.alarms.efa_namespace
        missing = []
        for cluster in target.contexts:
            named = target.spec.alarms.for_metric(metric, cluster)
            if not any(alarm.get("MetricName") == metric and namespace in (None, alarm.get("Namespace")) and (
                    alarm.get("AlarmName") == named
                    or {"Name": "ClusterName", "Value": cluster} in (alarm.get("Dimensions") or []))
                       for alarm in alarms):
                missing.append(cluster)
        findings.append(Finding(rule=rule, passed=not missing, detail=(
            f"no CloudWatch alarm on {metric} for {', '.join(missing)}" if missing
            else f"alarm on {metric} in every cluster ({', '.join(target.contexts)})")))
    return findings


def _nodes(target: Any) -> dict[str, list[Any]]:
    from kubernetes import client
    return {context: client.CoreV1Api(target.kube(context)).list_node().items for context in target.contexts}


def cluster_per_az_finding(nodes: dict[str, list[Any]]) -> Finding:
    zones = {context: sorted({(n.metadata.labels or {}).get(ZONE, "?") for n in items}) for context, items in nodes.items()}
    stretched = {c: z for c, z in zones.items() if len(z) > 1}
    shared = len({z[0] for z in zones.values() if len(z) == 1}) < len([z for z in zones.values() if len(z) == 1])
    if stretched:
        detail = "; ".join(f"cluster {c} spans {', '.join(z)}" for c, z in sorted(stretched.items()))
    elif shared:
        detail = "two clusters in the same zone: " + ", ".join(f"{c}={z[0]}" for c, z in sorted(zones.items()))
    else:
        detail = "one cluster per zone: " + ", ".join(f"{c}={z[0] if z else 'no nodes'}" for c, z in sorted(zones.items()))
    return Finding(rule="cluster-per-az", passed=not stretched and not shared, detail=detail)


def placement_finding(target: Any, nodes: dict[str, list[Any]]) -> Finding:
    """Every tensor-parallel group's instances share one `cluster` placement group."""
    from kubernetes import client
    inference = target.spec.selectors.inference
    instance_of = {(context, n.metadata.name): (n.spec.provider_id or "").rsplit("/", 1)[-1]
                   for context, items in nodes.items() for n in items}
    groups: dict[tuple[str, str], set[str]] = {}
    for context in target.contexts:
        pods = client.CoreV1Api(target.kube(context)).list_namespaced_pod(
            inference.namespace, label_selector=f"{inference.label_selector},{TP_LABEL}").items
        for pod in pods:
            group = (pod.metadata.labels or {}).get(TP_LABEL)
            if group and pod.spec.node_name:
                groups.setdefault((context, group), set()).add(pod.spec.node_name)
    multi_node = {key: names for key, names in groups.items() if len(names) > 1}
    if not multi_node:
        return Finding(rule="placement-group", passed=True,
                       detail=f"no tensor-parallel group spans nodes (pods labelled {TP_LABEL})")
    ids = sorted({instance_of.get((context, name), "") for (context, _), names in multi_node.items() for name in names} - {""})
    ec2 = target.aws("ec2")
    placement: dict[str, str | None] = {}
    for page in ec2.get_paginator("describe_instances").paginate(InstanceIds=ids):
        for reservation in page.get("Reservations", []):
            for instance in reservation.get("Instances", []):
                placement[instance["InstanceId"]] = (instance.get("Placement") or {}).get("GroupName") or None
    named = sorted({g for g in placement.values() if g})
    strategies = {g["GroupName"]: g.get("Strategy") for g in
                  (ec2.describe_placement_groups(GroupNames=named).get("PlacementGroups", []) if named else [])}
    problems, fine = [], []
    for (context, group), names in sorted(multi_node.items()):
        used = {placement.get(instance_of.get((context, name), "")) for name in names}
        if len(used) != 1 or None in used:
            problems.append(f"{group} ({context}) runs on {len(names)} nodes outside one placement group "
                            f"({', '.join(sorted(str(u) for u in used))})")
        elif strategies.get(next(iter(used))) != "cluster":
            problems.append(f"{group} ({context}) placement group {next(iter(used))} has strategy "
                            f"{strategies.get(next(iter(used)))}, not cluster")
        else:
            fine.append(f"{group} in cluster placement group {next(iter(used))}")
    return Finding(rule="placement-group", passed=not problems, detail="; ".join(problems or fine))


def exporter_dbe_finding(target: Any) -> Finding:
    """Every dcgm-exporter pod exports the DBE counter and reads the hostengine dcgmi injects into."""
    from harness.dcgm_exporter import exporter_views
    problems, seen = [], 0
    for context in target.contexts:
        views = exporter_views(target, context)
        if not views:
            problems.append(f"{context}: no dcgm-exporter pod ({target.spec.selectors.dcgm_exporter.label_selector})")
        seen += len(views)
        problems.extend(f"{context}: {view.why_not(DBE_METRIC)}" for view in views if not view.shows(DBE_METRIC))
    return Finding(rule="dcgm-exporter-dbe", passed=not problems, detail="; ".join(sorted(set(problems))) or (
        f"{seen} dcgm-exporter pod(s) export {DBE_METRIC} from the node's DCGM hostengine"))


def repair_wait_limit_s(scenario_path: Path = ECC_SCENARIO) -> float:
    """The longest repair wait the ECC scenario's node-drained limit leaves after detection and the drain."""
    from harness.scenario.loader import load_scenario
    within = 180.0
    if scenario_path.exists():
        scenario = load_scenario(scenario_path)
        within = next((float(c.params.within) for c in scenario.checks if c.check == "node-drained"), within)
    return within - DETECTION_BOUND_S - DRAIN_BOUND_S


def repair_wait_s(config: dict[str, Any] | None, reason: str = "NvidiaDoubleBitError") -> float | None:
    """The nodegroup's wait before repairing AcceleratedHardwareReady for `reason`, None when it never repairs."""
    if not config or not config.get("enabled"):
        return None
    for override in config.get("nodeRepairConfigOverrides") or []:
        if override.get("nodeMonitoringCondition") == "AcceleratedHardwareReady" \
                and override.get("nodeUnhealthyReason") == reason:
            if override.get("repairAction") == "NoAction":
                return None
            return float(override.get("minRepairWaitTimeMins", 10)) * 60.0
    return DEFAULT_REPAIR_WAIT_S


def node_repair_finding(target: Any, nodes: dict[str, list[Any]], limit_s: float | None = None) -> Finding:
    """Every GPU nodegroup repairs a double-bit error, soon enough for the scenario's limit."""
    limit = repair_wait_limit_s() if limit_s is None else limit_s
    wanted = sorted({(n.metadata.labels or {}).get(NODEGROUP_LABEL) for items in nodes.values() for n in items
                     if int((n.status.capacity or {}).get("nvidia.com/gpu", "0") or 0) > 0} - {None})
    eks = target.aws("eks")
    found: dict[str, tuple[str, dict | None]] = {}
    for page in eks.get_paginator("list_clusters").paginate():
        for cluster in page.get("clusters", []):
            for group_page in eks.get_paginator("list_nodegroups").paginate(clusterName=cluster):
                for group in group_page.get("nodegroups", []):
                    if group in wanted:
                        described = eks.describe_nodegroup(clusterName=cluster, nodegroupName=group)["nodegroup"]
                        found[group] = (cluster, described.get("nodeRepairConfig"))
    problems, fine = [], []
    for group in wanted:
        if group not in found:
            problems.append(f"{group}: not an EKS managed nodegroup of this account (no auto repair)")
            continue
        wait = repair_wait_s(found[group][1])
        if wait is None:
            problems.append(f"{group}: node auto repair does not replace a node with NvidiaDoubleBitError "
                            f"(nodeRepairConfig {found[group][1]})")
        elif wait > limit:
            problems.append(f"{group}: repairs a double-bit error after {wait:.0f} s, more than the {limit:.0f} s "
                            f"the ECC scenario's node-drained limit leaves after detection and drain")
        else:
            fine.append(f"{group} repairs after {wait:.0f} s")
    if not wanted:
        problems.append("no GPU node carries the label " + NODEGROUP_LABEL)
    return Finding(rule="node-auto-repair", passed=not problems, detail="; ".join(problems or fine))


def zonal_shift_finding(target: Any) -> Finding:
    """The load balancer opted in to ARC zonal shift (elbv2 attribute `zonal_shift.config.enabled`)."""
    from harness.faults.az_loss import ZONAL_SHIFT_ATTRIBUTE, zonal_shift_enabled
    name = target.spec.load_balancer.name
    elbv2 = target.aws("elbv2")
    try:
        arn = elbv2.describe_load_balancers(Names=[name])["LoadBalancers"][0]["LoadBalancerArn"]
    except Exception as exc:
        if "LoadBalancerNotFound" not in str(exc):
            raise
        return Finding(rule="zonal-shift", passed=False, detail=f"load balancer {name!r} not found")
    attributes = elbv2.describe_load_balancer_attributes(LoadBalancerArn=arn)["Attributes"]
    if zonal_shift_enabled(attributes):
        return Finding(rule="zonal-shift", passed=True, detail=f"zonal shift enabled on load balancer {name}")
    return Finding(rule="zonal-shift", passed=False, detail=(
        f"zonal shift is not enabled on load balancer {name}: ARC cannot move traffic away from a failing zone "
        f"(set {ZONAL_SHIFT_ATTRIBUTE}=true)"))


def scenario_alarms_finding(target: Any, scenario_paths: list[str]) -> Finding:
    """Every alarm the scenarios' alarm-fired checks and `alarm:` stop conditions watch exists in CloudWatch,
    resolved the way the run resolves it."""
    from harness.alarmwatch import alarm_names, describe_by_name
    from harness.checks.alarm_fired import resolve_alarm_names
    from harness.scenario.loader import load_scenario, scenario_files
    cloudwatch = target.aws("cloudwatch")
    wanted: dict[str, list[str]] = {}          # alarm name -> scenarios naming it
    unwatched: list[str] = []
    files = scenario_files(scenario_paths)
    for path in files:
        scenario = load_scenario(path)
        for step in scenario.checks:
            if step.check == "alarm-fired":
                names, _ = resolve_alarm_names(target, cloudwatch, step.params.metric, step.params.alarm)
                if not names:
                    unwatched.append(f"{scenario.name} (metric {step.params.metric})")
                for name in names:
                    wanted.setdefault(name, []).append(scenario.name)
        for name in alarm_names(scenario.stop_when):
            wanted.setdefault(name, []).append(scenario.name)
    existing = {a["AlarmName"] for a in describe_by_name(cloudwatch, sorted(wanted))}
    missing = [f"{name} ({', '.join(sorted(set(users)))})" for name, users in sorted(wanted.items())
               if name not in existing]
    problems = missing + [f"no alarm at all on {u}" for u in unwatched]
    if problems:
        return Finding(rule="scenario-alarms", passed=False,
                       detail="alarms the scenarios rely on do not exist: " + "; ".join(problems))
    return Finding(rule="scenario-alarms", passed=True,
                   detail=f"{len(wanted)} alarm(s) named by {len(files)} scenario(s) exist")


def audit_target(target: Any, scenario_paths: list[str] | None = None) -> list[Finding]:
    nodes = _nodes(target)
    findings = [*alarm_findings(target), placement_finding(target, nodes), cluster_per_az_finding(nodes),
                exporter_dbe_finding(target), node_repair_finding(target, nodes), zonal_shift_finding(target)]
    if scenario_paths is None:
        scenario_paths = ["scenarios"] if Path("scenarios").is_dir() else []
    if scenario_paths:
        findings.append(scenario_alarms_finding(target, scenario_paths))
    return findings


def run(args: argparse.Namespace, out: Callable[[str], None] = print) -> int:
    from harness.session import SessionOptions, TargetStartError, open_session
    from harness.target.endpoints import DEFAULT_ENDPOINTS_PATH
    # read-only: every allowlist check, no production prompt; the twin is the one already running, never started
    options = SessionOptions(targets_file=args.targets_file, dry_run=True,
                             twin_endpoints=args.twin_endpoints or DEFAULT_ENDPOINTS_PATH)
    try:
        with open_session(args.target, options) as session:
            target = session.target
            findings = audit_target(target, getattr(args, "scenarios", None))
    except TargetStartError as exc:
        print(f"g7chaos audit: target unreachable: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:
        if isinstance(exc, UsageError):
            raise
        print(f"g7chaos audit: could not read the deployment: {type(exc).__name__}: {target_redact(exc)}",
              file=sys.stderr)
        return ExitCode.TARGET_ERROR
    if args.json:
        out(json.dumps({"target": target.name, "findings": [f.model_dump() for f in findings]}, indent=2))
    else:
        out(f"audit of target {target.name} (read-only)")
        for finding in findings:
            out(f"  {'PASS' if finding.passed else 'FAIL'}  {finding.rule:<22} {finding.detail}")
    return 0 if all(f.passed for f in findings) else 1


def target_redact(exc: Exception) -> str:
    from harness.redact import redact
    return str(redact(str(exc)))
