"""The article profile end to end: faults injected the way the harness injects them on EKS.

DBE by `dcgmi test --inject` over pod exec, spot interruption and AZ network loss and reboots by AWS
FIS through boto3; outcomes read back through the Kubernetes API, CloudWatch, ELBv2 and IMDS.
"""
from __future__ import annotations

import os
import subprocess
import time

import httpx
import pytest

from harness.twin import hardware
from support.polling import wait_for
from twinkit import exec_in, running_twin

A, B = "g7-use2a", "g7-use2b"


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    with running_twin(tmp_path_factory.mktemp("article"), "article") as t:
        yield t


def test_kubectl_exec_runs_dcgmi_in_the_dcgm_pod(twin, tmp_path):
    node = twin.nodes(A, f"{A}-13b")[0].metadata.name
    pod = twin.pod_on(A, "kube-system", "k8s-app=dcgm-server", node).metadata.name
    env = {**os.environ, "HOME": str(tmp_path), "KUBECONFIG": twin.e["kubeconfig"]}
    done = subprocess.run(["kubectl", "--context", A, "-n", "kube-system", "exec", pod, "--", "dcgmi", "discovery", "-l"],
                          env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("8 GPUs found.") and hardware.GPU_MODEL in done.stdout
    bad = subprocess.run(["kubectl", "--context", A, "-n", "kube-system", "exec", pod, "--", "dcgmi", "test", "--inject",
                          "--gpuid", "42", "-f", "319", "-v", "1"], env=env, capture_output=True, text=True, timeout=30)
    assert bad.returncode != 0 and "Unable to inject info" in bad.stdout     # dcgmi prints it on stdout


def test_exec_dispatch_reaches_the_serving_layer_and_one_process_all_reduce_stays_on_its_node(twin):
    tp_node = twin.nodes(A, f"{A}-70b-tp")[0].metadata.name
    tp_pod = twin.pod_on(A, "inference", "app=triton", tp_node).metadata.name
    serving = twin.handle.twin.serving
    # the container's PID 1 is its namespace's init: SIGSTOP from inside is dropped, and kill still exits 0
    assert exec_in(twin, A, tp_pod, "inference", ["kill", "-STOP", "1"])[0] == 0
    assert tp_pod not in serving.stopped_pods
    assert exec_in(twin, A, tp_pod, "inference", ["rm", "-rf", "/"])[0] == 127

    node = twin.world.nodes[tp_node]
    before = ({**node.efa_counters}, {**node.efa_traffic})
    code, out, _ = exec_in(twin, A, tp_pod, "inference", ["all_reduce_perf", "-b", "8", "-e", "1M", "-f", "2", "-g", "8", "-n", "20"])
    assert code == 0 and "Avg bus bandwidth" in out
    # one process moves data between its node's GPUs only: the fabric and its counters stay still
    assert node.efa_load == 0.0 and (node.efa_counters, node.efa_traffic) == before


def test_az_connectivity_loss_and_recovery(twin):
    elbv2 = twin.aws("elbv2")
    tg = elbv2.describe_target_groups(Names=["g7-13b-use2b"])["TargetGroups"][0]["TargetGroupArn"]

    def states() -> set[str]:
        return {d["TargetHealth"]["State"] for d in elbv2.describe_target_health(TargetGroupArn=tg)["TargetHealthDescriptions"]}

    wait_for(lambda: states() == {"healthy"}, 5, "healthy targets before the fault")
    subnets = [f"arn:aws:ec2:us-east-2:123456789012:subnet/{s}" for s in twin.world.subnets["us-east-2b"]]
    experiment = twin.experiment(
        {"az": {"resourceType": "aws:ec2:subnet", "resourceArns": subnets, "selectionMode": "ALL"}},
        {"cut": {"actionId": "aws:network:disrupt-connectivity", "parameters": {"duration": "PT10M", "scope": "all"},
                 "targets": {"Subnets": "az"}}})
    names = [n.metadata.name for n in twin.nodes(B)]
    grace = twin.wall(hardware.NODE_MONITOR_GRACE_S)
    wait_for(lambda: all(twin.condition(B, n, "Ready").status == "Unknown" for n in names), grace + 3, "nodes NotReady")
    for name in names:
        taints = {(t.key, t.effect) for t in twin.node(B, name).spec.taints or []}
        assert ("node.kubernetes.io/unreachable", "NoExecute") in taints
    wait_for(lambda: states() == {"unhealthy"}, 5, "the AZ's targets unhealthy")
    assert all(twin.condition(A, n.metadata.name, "Ready").status == "True" for n in twin.nodes(A)), "the other AZ holds"
    twin.aws("fis").stop_experiment(id=experiment)
    wait_for(lambda: all(twin.condition(B, n, "Ready").status == "True" for n in names), 5, "nodes Ready again")
    assert all(not (twin.node(B, n).spec.taints or []) for n in names)
    wait_for(lambda: states() == {"healthy"}, 5, "targets healthy again")
    assert twin.experiment_status(experiment) == "stopped"


def test_dbe_injected_by_exec_is_detected_alarmed_and_repaired(twin):
    old = twin.nodes(A, f"{A}-13b")[0].metadata.name
    pod = twin.pod_on(A, "kube-system", "k8s-app=dcgm-server", old).metadata.name
    for field in ("319", "311"):        # the DBE policy field, and the volatile total the exporter and alarm read
        code, out, _ = exec_in(twin, A, pod, "kube-system", ["dcgmi", "test", "--inject", "--gpuid", "0", "-f", field,
                                                             "-v", "1", "--offset", "3600"])
        assert (code, out) == (0, "Successfully injected field info.\n")
    injected_at = time.monotonic()
    assert twin.world.nodes[old].gpus[0].double_bit_error and not twin.world.nodes[old].gpus[1].double_bit_error

    exporter = twin.pod_on(A, "kube-system", "app.kubernetes.io/name=dcgm-exporter", old).metadata.name

    def exporter_line() -> str:
        text = twin.core(A).connect_get_namespaced_pod_proxy_with_path(f"{exporter}:9400", "kube-system", "metrics")
        return next(ln for ln in text.splitlines() if ln.startswith('DCGM_FI_DEV_ECC_DBE_VOL_TOTAL{gpu="0"'))
    line = wait_for(lambda: (ln := exporter_line()).endswith(" 1") and ln, twin.wall(hardware.DCGM_EXPORTER_INTERVAL_S) + 2,
                    "the exporter's next collection")
    assert f'Hostname="{old}"' in line

    wait_for(lambda: twin.alarm_state(f"{A}-gpu-ecc-dbe") == "ALARM", twin.wall(3 * hardware.ALARM_PERIOD_S) + 3, "DBE alarm")
    cond = wait_for(lambda: (c := twin.condition(A, old, "AcceleratedHardwareReady")) and c.status == "False" and c,
                    twin.wall(hardware.NODE_MONITOR_DETECT_S) + 3, "the node condition")
    assert cond.reason == "NvidiaDoubleBitError"
    wait_for(lambda: (n := twin.node(A, old)) is None or n.spec.unschedulable, twin.wall(60.0) + 3,
             "cordon after the article's 1 min repair wait")
    repair_budget = twin.wall(hardware.NODE_MONITOR_DETECT_S + 60.0 + 60 + 30
                              + hardware.NODE_BOOT_S + hardware.DRIVER_LOAD_S + hardware.PLUGIN_START_S) + 3
    wait_for(lambda: twin.node(A, old) is None, repair_budget, "the broken node removed")
    assert twin.workload_pods_on(A, old) == []
    new = wait_for(lambda: [n for n in twin.nodes(A, f"{A}-13b") if n.metadata.name != old
                            and n.status.allocatable["nvidia.com/gpu"] == "8"
                            and next(c for c in n.status.conditions if c.type == "Ready").status == "True"],
                   repair_budget, "a replacement node")
    assert time.monotonic() - injected_at < repair_budget
    events = twin.core(A).list_namespaced_event("default", field_selector=f"involvedObject.name={old}").items
    assert {"NvidiaDoubleBitError", "NodeAutoRepair"} <= {e.reason for e in events}
    wait_for(lambda: len([p for p in twin.workload_pods_on(A, new[0].metadata.name)
                          if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions)]) == 8,
             twin.wall(hardware.MODEL_LOAD_NVME_S) + 3, "replicas serving on the replacement")


def test_spot_interruption_drains_before_the_notice_ends(twin):
    experiment = twin.experiment(
        {"spot": {"resourceType": "aws:ec2:spot-instance", "selectionMode": "COUNT(1)",
                  "resourceTags": {"eks:nodegroup-name": f"{B}-13b"}, "filters": [{"path": "State.Name", "values": ["running"]}]}},
        {"interrupt": {"actionId": "aws:ec2:send-spot-instance-interruptions",
                       "parameters": {"durationBeforeInterruption": "PT2M"}, "targets": {"SpotInstances": "spot"}}})
    node = wait_for(lambda: twin.handle.call(lambda: next((n for n in twin.world.nodes.values() if n.spot_notice_at), None)),
                    3, "the notice")
    imds = twin.e["imds_url_template"].format(node=node.name)
    token = httpx.put(f"{imds}/latest/api/token", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}).text
    action = httpx.get(f"{imds}/latest/meta-data/spot/instance-action", headers={"X-aws-ec2-metadata-token": token})
    assert action.status_code == 200 and action.json()["action"] == "terminate"
    notice = twin.wall(hardware.SPOT_NOTICE_S)
    wait_for(lambda: twin.workload_pods_on(B, node.name) == [], notice, "drained before the notice ends")
    # the notice's own end, as FIS set it (wall time): FIS's start-up before the notice is not the handler's time
    assert time.time() < twin.handle.call(lambda: twin.world.nodes[node.name].spot_terminate_at)
    assert twin.node(B, node.name).spec.unschedulable is True
    ec2 = twin.aws("ec2")
    wait_for(lambda: ec2.describe_instances(InstanceIds=[node.instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]
             in ("terminated", "shutting-down"), notice + 3, "the instance terminated")
    boot = twin.wall(30 + hardware.NODE_BOOT_S + hardware.DRIVER_LOAD_S + hardware.PLUGIN_START_S) + 4
    wait_for(lambda: [n for n in twin.nodes(B, f"{B}-13b") if n.metadata.name != node.name
                      and n.status.allocatable["nvidia.com/gpu"] == "8"], boot, "a replacement node")
    wait_for(lambda: twin.experiment_status(experiment) in ("completed", "stopped"), 5, "experiment done")


def test_idempotent_retry_is_replayed(twin):
    url = twin.e["inference_url"] + "/v1/completions"
    body = {"model": "llama-13b-fp8", "prompt": "idempotency", "max_tokens": 4}
    first = httpx.post(url, json=body, headers={"Idempotency-Key": "k-1"}, timeout=10)
    second = httpx.post(url, json=body, headers={"Idempotency-Key": "k-1"}, timeout=10)
    assert first.status_code == second.status_code == 200
    assert second.headers.get("idempotent-replayed") == "true" and second.json() == first.json()


def test_alarms_and_placement_group_of_the_article(twin):
    names = {a["AlarmName"] for a in twin.aws("cloudwatch").describe_alarms()["MetricAlarms"]}
    assert {f"{c}-{a}" for c in (A, B) for a in ("gpu-ecc-dbe", "gpu-temperature", "efa-errors")} <= names
    reservations = twin.aws("ec2").describe_instances(
        Filters=[{"Name": "tag:eks:nodegroup-name", "Values": [f"{A}-70b-tp"]}])["Reservations"]
    assert {i["Placement"].get("GroupName") for r in reservations for i in r["Instances"]} == {"g7-tp-70b"}


def test_reboot_under_article_returns_all_gpus(twin):
    node = twin.nodes(A, f"{A}-70b-tp")[0].metadata.name
    instance = twin.world.nodes[node].instance_id
    twin.experiment({"i": {"resourceType": "aws:ec2:instance", "resourceArns": [twin.instance_arn(instance)],
                           "selectionMode": "ALL"}},
                    {"reboot": {"actionId": "aws:ec2:reboot-instances", "targets": {"Instances": "i"}}})
    wait_for(lambda: twin.condition(A, node, "Ready").status == "False", 3, "NotReady during the reboot")
    boot = twin.wall(hardware.NODE_BOOT_S + hardware.DRIVER_LOAD_S + hardware.PLUGIN_START_S) + 3
    wait_for(lambda: twin.node(A, node).status.allocatable["nvidia.com/gpu"] == "8"
             and twin.condition(A, node, "Ready").status == "True", boot, "all 8 GPUs back")


def test_kubectl_drain_is_paced_by_the_disruption_budget(twin, tmp_path):
    node = twin.nodes(A, f"{A}-13b")[0].metadata.name
    wait_for(lambda: len([p for p in twin.workload_pods_on(A, node)
                          if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions)]) == 8, 5,
             "all replicas of the node serving")
    others = {p.metadata.name for p in twin.core(A).list_namespaced_pod("inference").items if p.spec.node_name != node}
    env = {**os.environ, "HOME": str(tmp_path), "KUBECONFIG": twin.e["kubeconfig"]}
    done = subprocess.run(["kubectl", "--context", A, "drain", node, "--ignore-daemonsets", "--delete-emptydir-data",
                           "--timeout=3s"], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode != 0, "no spare GPUs: the budget must hold the rest of the node"
    assert "disruption budget" in done.stderr
    left = twin.workload_pods_on(A, node)
    assert len([p for p in left if not p.metadata.deletion_timestamp]) == 8 - 4      # maxUnavailable 4
    assert others <= {p.metadata.name for p in twin.core(A).list_namespaced_pod("inference").items}
    subprocess.run(["kubectl", "--context", A, "uncordon", node], env=env, capture_output=True, timeout=30, check=True)
