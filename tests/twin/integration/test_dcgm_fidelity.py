"""The twin's DCGM, dcgm-exporter, node monitoring agent and node auto repair obey the real systems' rules
(docs/FIDELITY.md, DCGM/NMA/REPAIR/THERM rows), stepped on a fake clock so every timing is checked exactly."""
from __future__ import annotations

from types import SimpleNamespace

from kubernetes.client import ApiClient

from harness.dcgm_exporter import DEFAULT_COUNTERS, exporter_view
from harness.twin import hardware
from harness.twin.controllers.autorepair import repair_plan
from harness.twin.fleet.dcgm import run_dcgmi
from harness.twin.kube.store import resource
from harness.twin.fleet.exporter import (DEFAULT_COUNTERS_CSV, ExporterConfig, exporter_config, exporter_pod,
                                         exporter_text, parse_counters)
from harness.twin.world import (DCGM_FI_DEV_ECC_DBE_AGG_TOTAL, DCGM_FI_DEV_ECC_DBE_VOL_DEV,
                                DCGM_FI_DEV_ECC_DBE_VOL_TOTAL, DCGM_FI_DEV_GPU_TEMP, DCGM_FI_DEV_SM_CLOCK)
from test_fleet import Rig, cond

SCALE = 30.0


def inject(rig: Rig, node, field: int, value: float = 1, offset: int | None = None, gpu: int = 0):
    argv = ["test", "--inject", "--gpuid", str(gpu), "-f", str(field), "-v", str(value)]
    if offset is not None:
        argv += ["--offset", str(offset)]
    return run_dcgmi(node, argv, rig.clock)


def metric_line(text: str, name: str, gpu: int = 0) -> str | None:
    return next((ln for ln in text.splitlines() if ln.startswith(f'{name}{{gpu="{gpu}"')), None)


def test_319_is_the_policy_field_and_311_the_volatile_total_each_its_own_series():
    rig = Rig()
    node = rig.node13()
    assert (DCGM_FI_DEV_ECC_DBE_VOL_TOTAL, DCGM_FI_DEV_ECC_DBE_AGG_TOTAL, DCGM_FI_DEV_ECC_DBE_VOL_DEV) == (311, 313, 319)
    inject(rig, node, 319, offset=60)
    gpu = node.gpus[0]
    assert gpu.value(319, rig.t) == 1 and gpu.value(311, rig.t) == 0 and gpu.value(313, rig.t) == 0
    assert "Healthy" in run_dcgmi(node, ["health", "-c"], rig.clock).stdout     # the MEM watch reads 311
    inject(rig, node, 311, offset=60)
    assert "Failure" in run_dcgmi(node, ["health", "-c"], rig.clock).stdout


def test_an_injection_stands_until_the_next_real_sample_unless_stamped_ahead():
    rig = Rig()
    node = rig.node13()
    period = hardware.DCGM_SAMPLE_PERIOD_S / SCALE
    inject(rig, node, DCGM_FI_DEV_GPU_TEMP, 95)                 # default --offset 1: one second ahead
    assert node.gpus[0].value(DCGM_FI_DEV_GPU_TEMP, rig.t) == 95
    rig.clock.t += 1 / SCALE + period + 1e-6                    # a real sample newer than it replaced it
    assert node.gpus[0].value(DCGM_FI_DEV_GPU_TEMP, rig.t) == hardware.GPU_IDLE_TEMP_C
    inject(rig, node, DCGM_FI_DEV_GPU_TEMP, 95, offset=60)      # stamped 60 s ahead: no sample can be newer
    rig.clock.t += 30 / SCALE
    assert node.gpus[0].value(DCGM_FI_DEV_GPU_TEMP, rig.t) == 95
    inject(rig, node, DCGM_FI_DEV_GPU_TEMP, 45, offset=1)       # an older stamp than the held one changes nothing
    assert node.gpus[0].value(DCGM_FI_DEV_GPU_TEMP, rig.t) == 95
    inject(rig, node, DCGM_FI_DEV_GPU_TEMP, 45, offset=60)      # the revert's newer stamp supersedes it at once
    assert node.gpus[0].value(DCGM_FI_DEV_GPU_TEMP, rig.t) == 45


def test_dcgmi_inject_parses_its_command_line_as_dcgm_does():
    rig = Rig()
    node = rig.node13()
    ok = run_dcgmi(node, ["test", "--inject", "-f", "319", "-v", "1"], rig.clock)     # --gpuid defaults to 1
    assert ok.stdout == "Successfully injected field info.\n"
    assert node.gpus[1].value(319, rig.t) == 1 and node.gpus[0].value(319, rig.t) == 0
    for argv in (["test", "--inject", "-g", "0", "-f", "319", "-v", "1"],        # injection is per GPU
                 ["test", "--inject", "-f", "319", "-v", "1", "--offset", "-1"],  # no past stamps
                 ["test", "--inject", "-f", "319"],                                # -v is required
                 ["test", "--inject", "-i", "0", "-f", "319", "-v", "1"]):         # no -i alias for --gpuid
        assert run_dcgmi(node, argv, rig.clock).exit_code != 0, argv


def test_exporter_serves_its_last_collection_every_30_s():
    rig = Rig()
    node = rig.node13()
    config = exporter_config(rig.store(), exporter_pod(rig.store(), node.name))
    assert config.interval_s == hardware.DCGM_EXPORTER_INTERVAL_S == 30.0
    interval = config.interval_s / SCALE
    rig.clock.t = (int(rig.t / interval) + 1) * interval + 1e-6       # just after a collection
    inject(rig, node, 311, offset=60)
    before = exporter_text(node, config=config, scale=SCALE, now=rig.t)
    assert metric_line(before, "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL").endswith(" 0")   # not collected yet
    after = exporter_text(node, config=config, scale=SCALE, now=rig.t + interval)
    assert metric_line(after, "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL").endswith(" 1")
    rig.clock.t += interval + interval / 2                  # a holder re-injects after that collection ...
    inject(rig, node, 311, offset=60)
    held = exporter_text(node, config=config, scale=SCALE, now=rig.t)
    assert metric_line(held, "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL").endswith(" 1"), "... which still saw the held value"


def test_default_counters_leave_every_ecc_counter_out():
    twin_default = {name for name, _, _ in parse_counters(DEFAULT_COUNTERS_CSV).values()}
    assert "DCGM_FI_DEV_GPU_TEMP" in twin_default and not any("ECC" in n for n in twin_default)
    assert "DCGM_FI_DEV_GPU_TEMP" in DEFAULT_COUNTERS and not any("ECC" in n for n in DEFAULT_COUNTERS)
    rig = Rig()
    node = rig.node13()
    inject(rig, node, 311, offset=60)
    text = exporter_text(node, config=ExporterConfig(parse_counters(DEFAULT_COUNTERS_CSV), remote=True),
                         now=rig.t + 2)
    assert "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL" not in text and "DCGM_FI_DEV_GPU_TEMP" in text


def test_an_embedded_exporter_never_sees_an_injection_and_the_harness_can_tell():
    rig = Rig()
    node = rig.node13()
    pod = exporter_pod(rig.store(), node.name)
    remote = exporter_config(rig.store(), pod)
    embedded = ExporterConfig(remote.counters, remote=False)
    inject(rig, node, 311, offset=60)
    assert metric_line(exporter_text(node, config=remote, now=rig.t + 2), "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL").endswith(" 1")
    assert metric_line(exporter_text(node, config=embedded, now=rig.t + 2), "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL").endswith(" 0")
    # the harness reads the same pod and ConfigMap through the API objects and comes to the same answers
    api = ApiClient()
    v1pod = api._ApiClient__deserialize(pod, "V1Pod")
    store = rig.store()
    core = SimpleNamespace(read_namespaced_config_map=lambda name, ns: api._ApiClient__deserialize(
        store.get(resource("configmaps"), ns, name), "V1ConfigMap"))
    view = exporter_view(core, v1pod)
    assert view.shows("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"), view
    v1pod.spec.containers[0].env = [e for e in v1pod.spec.containers[0].env if e.name != "DCGM_REMOTE_HOSTENGINE_INFO"]
    blind = exporter_view(core, v1pod)
    assert not blind.shows("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL") and "embedded hostengine" in blind.why_not(
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL")


def test_a_policy_event_reaches_the_node_at_the_agents_next_push():
    rig = Rig()
    node = rig.node13()
    inject(rig, node, 319)                                   # one-shot: the policy fires on the injected sample
    rig.run(hardware.NODE_MONITOR_PUSH_S / SCALE + 0.1)      # within one 15 s push
    c = cond(rig.node_obj(node.name), "AcceleratedHardwareReady")
    assert (c["status"], c["reason"]) == ("False", "NvidiaDoubleBitError")


def test_a_healthy_nvidia_node_reads_nvidia_gpu_is_ready():
    rig = Rig()
    c = cond(rig.node_obj(rig.node13().name), "AcceleratedHardwareReady")
    assert (c["status"], c["reason"]) == ("True", "NvidiaGPUIsReady")


def test_a_fatal_finding_is_held_after_the_injection_is_reverted():
    rig = Rig()
    node = rig.node13()
    inject(rig, node, 319, offset=60)
    rig.run(hardware.NODE_MONITOR_PUSH_S / SCALE + 0.1)
    inject(rig, node, 319, 0, offset=60)                     # the revert
    rig.run(0.5)
    assert cond(rig.node_obj(node.name), "AcceleratedHardwareReady")["reason"] == "NvidiaDoubleBitError"


def test_311_alone_is_a_health_check_finding_that_repair_leaves_alone():
    rig = Rig()
    node = rig.node13()
    inject(rig, node, 311, offset=600)
    rig.run(hardware.NODE_MONITOR_PUSH_S / SCALE + 0.2)
    assert cond(rig.node_obj(node.name), "AcceleratedHardwareReady")["status"] == "True"   # no policy on 311
    rig.run(hardware.NODE_MONITOR_HEALTH_S / SCALE + hardware.NODE_MONITOR_PUSH_S / SCALE + 0.2)
    c = cond(rig.node_obj(node.name), "AcceleratedHardwareReady")
    assert (c["status"], c["reason"]) == ("False", "DCGMHealthCode4")
    rig.run(hardware.AUTO_REPAIR_DELAY_S / SCALE + 1)
    assert node.name in rig.world.nodes and not rig.node_obj(node.name)["spec"].get("unschedulable")


def test_repair_waits_ten_minutes_unless_the_nodegroup_overrides_it():
    enabled = {"enabled": True}
    assert repair_plan(enabled, "NvidiaDoubleBitError") == (hardware.AUTO_REPAIR_DELAY_S, "Replace") == (600.0, "Replace")
    override = {"enabled": True, "nodeRepairConfigOverrides": [{
        "nodeMonitoringCondition": "AcceleratedHardwareReady", "nodeUnhealthyReason": "NvidiaDoubleBitError",
        "minRepairWaitTimeMins": 3, "repairAction": "Reboot"}]}
    assert repair_plan(override, "NvidiaDoubleBitError") == (180.0, "Reboot")
    assert repair_plan(override, "DCGMHealthCode4") is None and repair_plan({"enabled": False}, "NvidiaDoubleBitError") is None
    rig = Rig()
    node = rig.node13()
    rig.world.nodegroups[node.nodegroup].repair_config = enabled       # the documented default wait
    inject(rig, node, 319)
    rig.run(hardware.NODE_MONITOR_PUSH_S / SCALE + 0.1)
    rig.run(60 / SCALE + 0.5)                                           # the article's 1 min would repair by now
    assert not rig.node_obj(node.name)["spec"].get("unschedulable")
    rig.run((600 - 60) / SCALE)
    assert rig.node_obj(node.name)["spec"].get("unschedulable") is True


def test_repair_pauses_during_a_zonal_shift_and_with_too_many_unhealthy_nodes():
    rig = Rig()
    node = rig.node13()
    rig.world.zonal_shift_away.add(node.az)
    inject(rig, node, 319)
    rig.run((hardware.NODE_MONITOR_PUSH_S + 60) / SCALE + 1)
    assert not rig.node_obj(node.name)["spec"].get("unschedulable"), "no repair while a zonal shift is active"
    rig.world.zonal_shift_away.clear()
    rig.run(0.3)
    assert rig.node_obj(node.name)["spec"].get("unschedulable") is True
    repair = rig.manager.get("node-auto-repair")
    group = [SimpleNamespace(name=f"n{i}", nodegroup="big", power="running") for i in range(10)]
    saved = rig.world.nodes
    rig.world.nodes = {n.name: n for n in group}
    rig.world.clusters["g7-use2a"].azs = ["us-east-2a"]
    repair.configs["big"] = {"enabled": True}
    for n in group[:3]:
        rig.fleet.dbe_detected[n.name] = rig.t
    probe = SimpleNamespace(nodegroup="big", cluster="g7-use2a")
    assert repair._paused(probe), "3 of 10 unhealthy is above 20 %"
    del rig.fleet.dbe_detected["n2"]
    assert not repair._paused(probe), "2 of 10 is not"
    rig.world.nodes = saved


def test_an_injected_temperature_moves_metrics_not_the_gpu():
    rig = Rig()
    node = rig.node13()
    inject(rig, node, DCGM_FI_DEV_GPU_TEMP, 95, offset=600)
    inject(rig, node, DCGM_FI_DEV_SM_CLOCK, 1100, offset=600)
    rig.run(2.0)
    gpu = node.gpus[0]
    assert gpu.value(DCGM_FI_DEV_GPU_TEMP, rig.t) == 95 and gpu.value(DCGM_FI_DEV_SM_CLOCK, rig.t) == 1100
    assert not gpu.throttled and gpu.clock_factor == 1.0, "serving reads the hardware clock: full speed"
    config = exporter_config(rig.store(), exporter_pod(rig.store(), node.name))
    assert metric_line(exporter_text(node, config=config, now=rig.t), "DCGM_FI_DEV_GPU_TEMP").endswith(" 95")
