"""Each anti-pattern profile, at the twin level, changes exactly the behaviour it names.

The article profile's side of each contrast is in test_article.py (repair, all GPUs back after a
reboot, alarms present, placement group, idempotent replay).
"""
from __future__ import annotations

import time

import httpx
import pytest

from harness.twin import hardware
from support.polling import wait_for
from twinkit import exec_in, running_twin

A = "g7-use2a"


def _inject_dbe(twin, context: str, node: str) -> None:
    pod = twin.pod_on(context, "kube-system", "k8s-app=dcgm-server", node).metadata.name
    for field in ("319", "311"):       # the DBE policy field and the alarm's metric, held well past the test
        code, out, _ = exec_in(twin, context, pod, "kube-system", ["dcgmi", "test", "--inject", "--gpuid", "0", "-f",
                                                                   field, "-v", "1", "--offset", "3600"])
        assert code == 0 and "Successfully injected" in out


def test_no_dbe_remediation_alarms_but_never_acts(tmp_path):
    with running_twin(tmp_path, "no-dbe-remediation") as twin:
        node = twin.nodes(A, f"{A}-13b")[0].metadata.name
        _inject_dbe(twin, A, node)
        wait_for(lambda: twin.alarm_state(f"{A}-gpu-ecc-dbe") == "ALARM", twin.wall(3 * hardware.ALARM_PERIOD_S) + 3,
                 "the DBE alarm (still configured)")
        time.sleep(twin.wall(hardware.NODE_MONITOR_DETECT_S + 60.0) + 1.0)     # past the article's 1 min repair wait
        obj = twin.node(A, node)
        assert obj is not None and not obj.spec.unschedulable
        assert next(c for c in obj.status.conditions if c.type == "AcceleratedHardwareReady").status == "True"
        assert len(twin.workload_pods_on(A, node)) == 8
        assert twin.world.nodes[node].gpus[0].double_bit_error


def test_plugin_before_driver_loses_gpus_silently_after_a_reboot(tmp_path):
    with running_twin(tmp_path, "plugin-before-driver") as twin:
        node = twin.nodes(A, f"{A}-13b")[0].metadata.name
        instance = twin.world.nodes[node].instance_id
        twin.experiment({"i": {"resourceType": "aws:ec2:instance", "resourceArns": [twin.instance_arn(instance)],
                               "selectionMode": "ALL"}},
                        {"reboot": {"actionId": "aws:ec2:reboot-instances", "targets": {"Instances": "i"}}})
        wait_for(lambda: twin.condition(A, node, "Ready").status == "False", 3, "NotReady during the reboot")
        boot = twin.wall(hardware.NODE_BOOT_S + hardware.DRIVER_LOAD_S + hardware.PLUGIN_START_S)
        wait_for(lambda: twin.condition(A, node, "Ready").status == "True", boot + 3, "Ready after the boot")
        time.sleep(twin.wall(hardware.DRIVER_LOAD_S + hardware.PLUGIN_START_S) + 0.5)
        obj = twin.node(A, node)
        assert obj.status.allocatable["nvidia.com/gpu"] == "0"
        for cond in obj.status.conditions:
            assert cond.status == ("True" if cond.type in ("Ready", "AcceleratedHardwareReady") else "False"), cond
        events = twin.core(A).list_namespaced_event("default", field_selector=f"involvedObject.name={node}").items
        assert not [e for e in events if e.type == "Warning" and e.reason != "Rebooted"], "nothing in the API says why"
        pending = [p for p in twin.core(A).list_namespaced_pod("inference", label_selector="model=llama-13b-fp8").items
                   if p.status.phase == "Pending"]
        assert len(pending) == 8
        scheduled = next(c for c in pending[0].status.conditions if c.type == "PodScheduled")
        assert scheduled.reason == "Unschedulable" and "Insufficient nvidia.com/gpu" in scheduled.message


COMPOSED = ("single-multi-az-cluster,no-dbe-alarm,no-efa-monitoring,no-placement-group,no-idempotency,"
            "no-kv-offload,gpu-util-autoscaling,cold-start-from-s3,embedded-dcgm-exporter")


@pytest.fixture(scope="module")
def composed(tmp_path_factory):
    """The remaining profiles compose: one twin carries them all, each checked on its own behaviour."""
    with running_twin(tmp_path_factory.mktemp("composed"), COMPOSED) as twin:
        yield twin


def test_single_multi_az_cluster_is_one_cluster_over_both_azs(composed):
    assert composed.e["contexts"] == ["g7-use2"]
    zones = {n.metadata.labels["topology.kubernetes.io/zone"] for n in composed.nodes("g7-use2", "g7-use2-13b")}
    assert zones == {"us-east-2a", "us-east-2b"}


def test_no_dbe_alarm_and_no_efa_monitoring_leave_only_the_temperature_alarm(composed):
    names = {a["AlarmName"] for a in composed.aws("cloudwatch").describe_alarms()["MetricAlarms"]}
    assert names == {"g7-use2-gpu-temperature"}


def test_no_placement_group_launches_the_tp_pair_outside_any_group(composed):
    reservations = composed.aws("ec2").describe_instances(
        Filters=[{"Name": "tag:eks:nodegroup-name", "Values": ["g7-use2-70b-tp"]}])["Reservations"]
    instances = [i for r in reservations for i in r["Instances"]]
    assert len(instances) == 2 and all(not i.get("Placement", {}).get("GroupName") for i in instances)
    assert composed.aws("ec2").describe_placement_groups()["PlacementGroups"] == []


def test_no_idempotency_executes_every_retry(composed):
    url = composed.e["inference_url"] + "/v1/completions"
    body = {"model": "llama-13b-fp8", "prompt": "idempotency", "max_tokens": 4}
    first = httpx.post(url, json=body, headers={"Idempotency-Key": "k-1"}, timeout=10)
    second = httpx.post(url, json=body, headers={"Idempotency-Key": "k-1"}, timeout=10)
    assert first.status_code == second.status_code == 200
    assert second.headers.get("idempotent-replayed") != "true"


def test_serving_side_profiles_reach_the_serving_layer(composed):
    behaviour = composed.handle.twin.serving.world.behaviour
    assert (behaviour.kv_offload, behaviour.autoscale_metric, behaviour.idempotency) == (False, "gpu-util", False)


def test_cold_start_from_s3_keeps_a_replacement_loading_for_minutes(composed):
    core = composed.core("g7-use2")
    victim = core.list_namespaced_pod("inference", label_selector="model=llama-13b-fp8").items[0]
    core.delete_namespaced_pod(victim.metadata.name, "inference")
    nvme = composed.wall(hardware.MODEL_LOAD_NVME_S)

    def replacement():
        pods = [p for p in core.list_namespaced_pod("inference", label_selector="model=llama-13b-fp8").items
                if p.metadata.name != victim.metadata.name and p.status.phase == "Running"
                and not any(c.type == "Ready" and c.status == "True" for c in p.status.conditions)]
        return pods
    wait_for(replacement, 3, "a replacement running")
    time.sleep(nvme * 3)
    assert replacement(), "an NVMe load would be done by now; S3 takes minutes"


def test_embedded_dcgm_exporter_cannot_show_an_injection_and_the_harness_reads_why(composed):
    """The exporter runs without DCGM_REMOTE_HOSTENGINE_INFO: a DBE injected into the node's DCGM never reaches its
    counter, and the harness, reading the same DaemonSet pod through the API, says so (FIDELITY DCGM-6)."""
    from pathlib import Path

    from harness.dcgm_exporter import blind_spots
    from harness.target.target import Target

    context = composed.e["contexts"][0]
    node = composed.nodes(context, f"{context}-13b")[0].metadata.name
    exporter = composed.pod_on(context, "kube-system", "app.kubernetes.io/name=dcgm-exporter", node)
    assert "DCGM_REMOTE_HOSTENGINE_INFO" not in {e.name for e in exporter.spec.containers[0].env or []}
    target = Target.from_twin_endpoints(Path(composed.handle.twin.out_dir) / "endpoints.json")
    views, blind = blind_spots(target, context, node, "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL")
    assert len(views) == 1 and len(blind) == 1 and "embedded hostengine" in blind[0], blind
    dcgm = composed.pod_on(context, "kube-system", "k8s-app=dcgm-server", node).metadata.name
    code, out, _ = exec_in(composed, context, dcgm, "kube-system", ["dcgmi", "test", "--inject", "--gpuid", "0", "-f",
                                                                    "311", "-v", "1", "--offset", "3600"])
    assert code == 0, out

    def counter() -> str:
        text = composed.core(context).connect_get_namespaced_pod_proxy_with_path(
            f"{exporter.metadata.name}:9400", "kube-system", "metrics")
        return next(ln for ln in text.splitlines() if ln.startswith('DCGM_FI_DEV_ECC_DBE_VOL_TOTAL{gpu="0"'))
    # two collections later the embedded hostengine still reads the hardware's 0
    collected = wait_for(lambda: counter(), composed.wall(hardware.DCGM_EXPORTER_INTERVAL_S) + 2, "an exporter line")
    time.sleep(2 * composed.wall(hardware.DCGM_EXPORTER_INTERVAL_S))
    assert collected.endswith(" 0") and counter().endswith(" 0")
    exec_in(composed, context, dcgm, "kube-system", ["dcgmi", "test", "--inject", "--gpuid", "0", "-f", "311", "-v",
                                                     "0", "--offset", "3600"])
