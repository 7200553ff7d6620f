"""The fleet's physics and controllers on the World and the object stores, stepped by hand.

These drive the same hooks the AWS side calls (launched, reboot, notices, connectivity) and step the
controllers with an explicit clock, so the state machines are checked exactly and fast; the
end-to-end tests in this folder check the same behaviour through the real APIs.
"""
from __future__ import annotations

import json

import pytest
from kubernetes.client import ApiClient

from harness.twin import hardware
from harness.twin.controllers.manager import build_manager
from harness.twin.fleet import kobjects as ko
from harness.twin.fleet.dcgm import run_dcgmi
from harness.twin.fleet.exporter import exporter_config, exporter_pod, exporter_text
from harness.twin.fleet.runtime import NODES, PODS, Fleet, FleetHooks
from harness.twin.kube.store import resource
from harness.twin.profiles import parse_profile
from harness.twin.topology import build_world
from harness.twin.world import (DCGM_FI_DEV_ECC_DBE_VOL_DEV, DCGM_FI_DEV_ECC_DBE_VOL_TOTAL, DCGM_FI_DEV_GPU_TEMP,
                                DCGM_FI_DEV_SM_CLOCK)
from twinkit import ManualClock


class Rig:
    """A seeded fleet whose controllers run on a fake clock."""

    def __init__(self, profile: str = "article", nodes_per_az: int = 1):
        self.world = build_world(parse_profile(profile), nodes_per_az, 30.0)
        self.clock = ManualClock(30.0)
        self.world.clock = self.clock  # type: ignore[assignment]
        self.fleet = Fleet(self.world)
        self.hooks = self.fleet.hooks = FleetHooks(self.fleet)
        self.manager = build_manager(self.fleet)
        self._next = 0
        for group in self.world.nodegroups.values():
            for n in range(group.desired):
                self.launch(group.name, group.azs[n % len(group.azs)])
        self.manager.settle()
        self.fleet.instant = False

    def launch(self, nodegroup: str, az: str) -> str:
        self._next += 1
        instance = f"i-{self._next:017x}"
        group = self.world.nodegroups[nodegroup]
        self.hooks.launched(instance, nodegroup, az, f"subnet-{az}", f"10.0.{self._next}.{10 + self._next}",
                            group.capacity_type, group.placement_group)
        return instance

    @property
    def t(self) -> float:
        return self.clock.t

    def run(self, seconds: float, step: float = 0.05) -> None:
        end = self.clock.t + seconds
        while self.clock.t < end:
            self.clock.t += step
            self.manager.step(self.clock.t)

    def store(self, cluster: str = "g7-use2a"):
        return self.world.clusters[cluster].store

    def node_obj(self, name: str, cluster: str = "g7-use2a"):
        return self.store(cluster).get(NODES, None, name)

    def node13(self, cluster: str = "g7-use2a"):
        return next(n for n in self.world.nodes.values() if n.cluster == cluster and n.role == "13b")

    def pods(self, cluster: str = "g7-use2a", **labels):
        return [p for p in self.store(cluster).list(PODS)[0]
                if all(p["metadata"]["labels"].get(k) == v for k, v in labels.items())]


def cond(obj, type_):
    return ko.get_condition(obj, type_)


def test_seeded_fleet_is_steady_and_every_object_deserialises():
    rig = Rig(nodes_per_az=2)
    api = ApiClient()
    models = {"pods": "V1Pod", "nodes": "V1Node", "daemonsets.apps": "V1DaemonSet", "replicasets.apps": "V1ReplicaSet",
              "deployments.apps": "V1Deployment", "poddisruptionbudgets.policy": "V1PodDisruptionBudget",
              "events": "CoreV1Event", "namespaces": "V1Namespace"}
    for cluster in rig.world.clusters.values():
        for plural, model in models.items():
            for obj in cluster.store.list(resource(plural))[0]:
                api.deserialize(json.dumps(obj), model, "application/json")
    a13 = rig.pods(app="triton", model="llama-13b-fp8")
    assert len(a13) == 16 and all(ko.is_ready(p) for p in a13)
    assert sorted({p["metadata"]["annotations"][ko.GPUS_ANNOTATION] for p in a13}) == [str(i) for i in range(8)]
    tp = rig.pods(app="triton", model="llama-70b-fp16")
    assert len(tp) == 2 and {p["metadata"]["annotations"][ko.GPUS_ANNOTATION] for p in tp} == {"0,1,2,3,4,5,6,7"}
    assert len({p["spec"]["nodeName"] for p in tp}) == 2 and all(p["metadata"]["labels"]["tp-group"] for p in tp)
    assert len(rig.pods("g7-use2b", app="triton")) == 16
    dcgm = rig.pods(**{"k8s-app": "dcgm-server"})
    assert len(dcgm) == 4 and all(p["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet" for p in dcgm)
    for node in rig.store().list(NODES)[0]:
        assert node["status"]["allocatable"][ko.GPU] == "8" and ko.is_ready(node)
    rv = rig.store().resource_version
    rig.run(1.0)
    assert rig.store().resource_version == rv, "a steady fleet writes nothing"


def test_dcgmi_inject_sets_only_its_field_and_the_configured_exporter_shows_it():
    rig = Rig()
    node = rig.node13()
    inject = ["test", "--inject", "--gpuid", "0", "-v", "1", "--offset", "60"]
    result = run_dcgmi(node, [*inject, "-f", "319"], rig.clock)
    assert (result.exit_code, result.stdout) == (0, "Successfully injected field info.\n")
    gpu = node.gpus[0]
    assert gpu.value(DCGM_FI_DEV_ECC_DBE_VOL_DEV, rig.t) == 1 and gpu.value(DCGM_FI_DEV_ECC_DBE_VOL_TOTAL, rig.t) == 0
    assert gpu.fields[DCGM_FI_DEV_ECC_DBE_VOL_DEV] == 0, "an injection is a cache sample, not the hardware"
    assert "Failure" not in run_dcgmi(node, ["health", "-c"], rig.clock).stdout   # the MEM watch reads 311 only
    run_dcgmi(node, [*inject, "-f", "311"], rig.clock)
    config = exporter_config(rig.store(), exporter_pod(rig.store(), node.name))
    assert config.remote and DCGM_FI_DEV_ECC_DBE_VOL_TOTAL in config.counters
    rig.clock.t += 1.0     # the exporter's next collection (30 s, scaled)
    text = exporter_text(node, config=config, now=rig.t)
    assert "# TYPE DCGM_FI_DEV_ECC_DBE_VOL_TOTAL counter" in text
    line = next(line for line in text.splitlines() if line.startswith("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL{gpu=\"0\""))
    assert line.endswith(" 1") and f'Hostname="{node.name}"' in line and 'modelName="' in line
    assert "Failure" in run_dcgmi(node, ["health", "-c"], rig.clock).stdout
    assert run_dcgmi(node, ["discovery", "-l"]).stdout.startswith("8 GPUs found.")
    for bad in (["test", "--inject", "--gpuid", "9", "-f", "319", "-v", "1"], ["test", "--inject", "-f", "319"],
                ["test", "--inject", "--gpuid", "0", "-f", "99999", "-v", "1"], ["test", "--inject", "-g", "0",
                "-f", "319", "-v", "1"], ["test", "--inject", "-f", "319", "-v", "1", "--offset", "-5"],
                ["frobnicate"], []):
        res = run_dcgmi(node, bad)
        assert res.exit_code != 0 and (res.stderr or res.stdout).startswith(("Error", "Usage")), bad


def test_dbe_under_article_conditions_cordons_drains_and_replaces():
    rig = Rig(nodes_per_az=2)
    node = rig.node13()
    run_dcgmi(node, ["test", "--inject", "--gpuid", "0", "-f", "319", "-v", "1"], rig.clock)
    rig.run(hardware.NODE_MONITOR_PUSH_S / 30 + 0.2)
    c = cond(rig.node_obj(node.name), "AcceleratedHardwareReady")
    assert (c["status"], c["reason"]) == ("False", "NvidiaDoubleBitError")
    events = [e for e in rig.store().list(resource("events"))[0] if e["reason"] == "NvidiaDoubleBitError"]
    assert events and events[0]["type"] == "Warning" and events[0]["involvedObject"]["name"] == node.name
    rig.run(60.0 / 30 + 0.2)        # the article's override: minRepairWaitTimeMins 1 for NvidiaDoubleBitError
    assert rig.node_obj(node.name)["spec"].get("unschedulable") is True
    rig.run(3.0)
    assert node.name not in rig.world.nodes and rig.node_obj(node.name) is None, "auto repair terminates the node"
    assert len([p for p in rig.pods(app="triton", model="llama-13b-fp8") if ko.is_ready(p)]) == 8
    pending = [p for p in rig.pods(app="triton", model="llama-13b-fp8") if not p["spec"].get("nodeName")]
    assert len(pending) == 8
    msg = cond(pending[0], "PodScheduled")["message"]
    assert "1 Insufficient nvidia.com/gpu" in msg and msg.startswith("0/3 nodes are available:")
    rig.launch(node.nodegroup, node.az)     # what the Auto Scaling group does next
    rig.run(hardware.NODE_BOOT_S / 30 + hardware.DRIVER_LOAD_S / 30 + hardware.PLUGIN_START_S / 30
            + hardware.MODEL_LOAD_NVME_S / 30 + 0.5)
    ready = [p for p in rig.pods(app="triton", model="llama-13b-fp8") if ko.is_ready(p)]
    assert len(ready) == 16


def test_no_dbe_remediation_leaves_the_node_in_service():
    rig = Rig("no-dbe-remediation")
    node = rig.node13()
    run_dcgmi(node, ["test", "--inject", "--gpuid", "0", "-f", "319", "-v", "1"], rig.clock)
    rig.run(3.0)
    obj = rig.node_obj(node.name)
    assert cond(obj, "AcceleratedHardwareReady")["status"] == "True" and not obj["spec"].get("unschedulable")
    assert node.name in rig.world.nodes


@pytest.mark.parametrize("profile,expected", [("article", "8"), ("plugin-before-driver", "0")])
def test_reboot_and_the_device_plugin_race(profile, expected):
    rig = Rig(profile)
    node = rig.node13()
    rig.hooks.rebooted(node.instance_id)
    rig.run(0.2)
    assert cond(rig.node_obj(node.name), "Ready")["status"] == "False"
    rig.run(hardware.NODE_BOOT_S / 30 + hardware.DRIVER_LOAD_S / 30 + hardware.PLUGIN_START_S / 30 + 0.3)
    obj = rig.node_obj(node.name)
    assert obj["status"]["allocatable"][ko.GPU] == expected
    assert all(c["status"] == ("True" if c["type"] in ("Ready", "AcceleratedHardwareReady") else "False")
               for c in obj["status"]["conditions"]), "no error condition either way"
    warnings = [e for e in rig.store().list(resource("events"))[0]
                if e["type"] == "Warning" and e["involvedObject"]["kind"] == "Node" and e["reason"] != "Rebooted"]
    assert warnings == []
    rig.run(1.0)
    ready = [p for p in rig.pods(app="triton", model="llama-13b-fp8") if ko.is_ready(p)]
    assert len(ready) == int(expected)


def test_spot_notice_drains_before_termination():
    rig = Rig()
    node = rig.node13()
    terminate_at = rig.t + hardware.SPOT_NOTICE_S / 30
    rig.hooks.spot_notice(node.instance_id, terminate_at)
    rig.run(0.1)
    assert rig.node_obj(node.name)["spec"]["unschedulable"] is True and node.spot_notice_at is not None
    rig.run(terminate_at - rig.t - 0.3)
    assert [p for p in rig.fleet.pods_on(rig.store(), node.name) if ko.owner_kind(p) != "DaemonSet"] == []


def test_connectivity_loss_goes_unknown_after_grace_and_recovers():
    rig = Rig()
    node = rig.node13()
    rig.hooks.connectivity({node.subnet_id}, True)
    rig.run(0.5)
    assert cond(rig.node_obj(node.name), "Ready")["status"] == "True", "within the grace period nothing changes"
    rig.run(hardware.NODE_MONITOR_GRACE_S / 30)
    obj = rig.node_obj(node.name)
    assert cond(obj, "Ready")["status"] == "Unknown"
    assert {(t["key"], t["effect"]) for t in obj["spec"]["taints"]} == {
        ("node.kubernetes.io/unreachable", "NoSchedule"), ("node.kubernetes.io/unreachable", "NoExecute")}
    assert not any(ko.is_ready(p) for p in rig.fleet.pods_on(rig.store(), node.name))
    rig.hooks.connectivity({node.subnet_id}, False)
    rig.run(0.3)
    obj = rig.node_obj(node.name)
    assert cond(obj, "Ready")["status"] == "True" and obj["spec"]["taints"] == []
    assert all(ko.is_ready(p) for p in rig.fleet.pods_on(rig.store(), node.name))


def test_thermal_throttle_drops_the_sm_clock_and_restores_it():
    rig = Rig()
    gpu = rig.node13().gpus[3]
    gpu.fields[DCGM_FI_DEV_GPU_TEMP] = 90
    rig.run(0.1)
    assert gpu.fields[DCGM_FI_DEV_SM_CLOCK] == hardware.GPU_SM_CLOCK_THROTTLED_MHZ
    gpu.fields[DCGM_FI_DEV_GPU_TEMP] = 60
    rig.run(0.1)
    assert gpu.fields[DCGM_FI_DEV_SM_CLOCK] == hardware.GPU_SM_CLOCK_MHZ


def test_cold_start_from_s3_keeps_replacements_unready_for_minutes():
    rig = Rig("cold-start-from-s3")
    node = rig.node13()
    rig.hooks.rebooted(node.instance_id)
    rig.run(hardware.NODE_BOOT_S / 30 + hardware.DRIVER_LOAD_S / 30 + hardware.PLUGIN_START_S / 30
            + hardware.MODEL_LOAD_NVME_S / 30 + 0.5)
    pods = rig.pods(app="triton", model="llama-13b-fp8")
    assert pods and all(p["spec"].get("nodeName") for p in pods) and not any(ko.is_ready(p) for p in pods)


def test_single_multi_az_cluster_topology():
    world = build_world(parse_profile("single-multi-az-cluster"), 2, 30.0)
    assert list(world.clusters) == ["g7-use2"]
    assert world.nodegroups["g7-use2-13b"].azs == ["us-east-2a", "us-east-2b"]
    assert world.nodegroups["g7-use2-13b"].desired == 4
    dep = world.clusters["g7-use2"].store.get(resource("deployments.apps"), "inference", "triton-13b")
    assert dep["spec"]["replicas"] == 32


def test_no_placement_group_profile_drops_the_group():
    assert build_world(parse_profile("article")).nodegroups["g7-use2a-70b-tp"].placement_group == "g7-tp-70b"
    assert build_world(parse_profile("no-placement-group")).nodegroups["g7-use2a-70b-tp"].placement_group is None


def test_efa_congestion_counts_errors_only_above_the_congestion_point():
    rig = Rig()
    node = rig.node13()
    node.efa_load = 0.5
    rig.run(0.5)
    assert sum(node.efa_counters.values()) == 0
    node.efa_load = 0.95
    rig.run(0.5)
    assert node.efa_counters["retrans_pkts"] > node.efa_counters["rx_drops"] > 0


def test_stopped_node_goes_not_ready_and_boots_again_when_started():
    rig = Rig()
    node = rig.node13()
    rig.hooks.stopped(node.instance_id)
    rig.run(0.2)
    obj = rig.node_obj(node.name)
    assert ko.get_condition(obj, "Ready")["status"] == "False" and obj["status"]["allocatable"][ko.GPU] == "0"
    assert [p for p in rig.fleet.pods_on(rig.store(), node.name) if ko.owner_kind(p) != "DaemonSet"] == []
    rig.run(5.0)
    assert ko.get_condition(rig.node_obj(node.name), "Ready")["status"] == "False", "a stopped instance stays down"
    rig.hooks.started(node.instance_id)
    rig.run(hardware.NODE_BOOT_S / 30 + hardware.DRIVER_LOAD_S / 30 + hardware.PLUGIN_START_S / 30 + 0.3)
    obj = rig.node_obj(node.name)
    assert ko.get_condition(obj, "Ready")["status"] == "True" and obj["status"]["allocatable"][ko.GPU] == "8"


class BusyReplica:
    def __init__(self, pod: str):
        self.pods, self.load = [pod], 1


def test_a_terminating_replica_finishes_in_flight_work_within_its_grace():
    rig = Rig()
    pod = rig.pods(app="triton", model="llama-13b-fp8")[0]
    name = pod["metadata"]["name"]
    busy = BusyReplica(name)
    rig.fleet.serving = type("Serving", (), {"replicas": {"r": busy}})()
    rig.fleet.mark_terminating(rig.store(), pod, actor="test")
    rig.run(0.5)
    assert rig.store().get(PODS, "inference", name) is not None, "still finishing its streams"
    busy.load = 0
    rig.run(0.1)
    assert rig.store().get(PODS, "inference", name) is None


def test_deleting_the_device_plugin_pod_drops_gpus_until_its_replacement_registers():
    rig = Rig()
    node = rig.node13()
    plugin = next(p for p in rig.fleet.pods_on(rig.store(), node.name)
                  if p["metadata"]["labels"].get("name") == "nvidia-device-plugin-ds")
    rig.fleet.delete_pod(rig.store(), plugin, actor="test")
    rig.run(0.05)
    assert rig.node_obj(node.name)["status"]["allocatable"][ko.GPU] == "0"
    rig.run(hardware.PLUGIN_START_S / 30 + 0.3)
    assert rig.node_obj(node.name)["status"]["allocatable"][ko.GPU] == "8"
    replacement = [p for p in rig.fleet.pods_on(rig.store(), node.name)
                   if p["metadata"]["labels"].get("name") == "nvidia-device-plugin-ds"]
    assert len(replacement) == 1 and replacement[0]["metadata"]["name"] != plugin["metadata"]["name"]
