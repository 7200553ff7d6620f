"""The DCGM faults hold their injections for as long as they last, as a real hostengine needs: an ECC fault held
for 3 minutes of deployment time is still what the exporter shows at its end, where a one-shot injection is gone
at the next sample; `gpu: all` heats every GPU the node advertises; the revert supersedes the held values.

On `no-dbe-remediation`, so nothing replaces the node while the test looks at it."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from faultkit import run_context
from support.polling import wait_for

from harness.faults import FAULTS
from harness.faults.dcgmi import HOLD_S
from harness.faults.ecc_double_bit_error import EccDoubleBitError, EccDoubleBitErrorParams
from harness.faults.gpu_thermal_throttle import GpuThermalThrottleParams
from harness.faults.podexec import pod_exec
from harness.prometheus import parse_samples
from harness.strict.params import NodeSelector
from harness.target.target import Target
from harness.twin.world import DCGM_FI_DEV_ECC_DBE_VOL_TOTAL, DCGM_FI_DEV_GPU_TEMP

pytestmark = pytest.mark.slow
ONE_NODE = NodeSelector(zone="us-east-2b", model="llama-13b-fp8")


TWIN_PROFILE = "no-dbe-remediation"     # nothing repairs the node, so the injected fields stay to be read
TWIN_LEAVES_MARKS = True


def exporter_dbe(fault: EccDoubleBitError, gpu: int) -> float:
    from kubernetes import client
    node = fault.nodes[0]
    core = client.CoreV1Api(fault.ctx.target.kube(node.context))
    pod = core.list_namespaced_pod("kube-system", label_selector="app.kubernetes.io/name=dcgm-exporter",
                                   field_selector=f"spec.nodeName={node.name}").items[0]
    text = core.connect_get_namespaced_pod_proxy_with_path(f"{pod.metadata.name}:9400", "kube-system", "metrics")
    return next(s.value for s in parse_samples(text)
                if s.name == "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL" and s.labels.get("gpu") == str(gpu))


def test_an_ecc_fault_held_for_3_minutes_is_still_visible_at_its_end(target: Target, twin, tmp_path: Path):
    ctx = run_context(target, tmp_path, seed=5)
    fault = FAULTS["ecc-double-bit-error"](EccDoubleBitErrorParams(node=ONE_NODE, gpu=4), ctx)
    plan = fault.plan()
    assert "-f 319/311" in plan and f"--offset {HOLD_S}" in plan, plan
    assert not fault.unobservable, fault.unobservable          # the article's exporter reads the hostengine
    fault.inject()
    assert fault.await_landed(time.time() + 5)
    gpu = twin.world.nodes[fault.nodes[0].name].gpus[4]
    time.sleep(target.wall_seconds(180))                            # 3 minutes of deployment time
    assert gpu.value(DCGM_FI_DEV_ECC_DBE_VOL_TOTAL) == 1 and exporter_dbe(fault, 4) == 1, "still held at the end"
    fault.revert()
    wait_for(lambda: exporter_dbe(fault, 4) == 0, 5, "the exporter shows the revert")
    assert fault.holder.failures == 0


def test_a_one_shot_injection_is_gone_at_the_next_sample(target: Target, twin, tmp_path: Path):
    ctx = run_context(target, tmp_path, seed=5)
    fault = FAULTS["ecc-double-bit-error"](EccDoubleBitErrorParams(node=ONE_NODE, gpu=5), ctx)
    fault.plan()
    pod = fault.dcgm_pods[fault.nodes[0].name]
    out = pod_exec(target.kube(fault.nodes[0].context), pod.metadata.namespace, pod.metadata.name,
                   ["dcgmi", "test", "--inject", "--gpuid", "5", "-f", "311", "-v", "1"])   # no --offset, no hold
    assert out.exit_code == 0
    gpu = twin.world.nodes[fault.nodes[0].name].gpus[5]
    wait_for(lambda: gpu.value(DCGM_FI_DEV_ECC_DBE_VOL_TOTAL) == 0, target.wall_seconds(30),
             "a real sample replaced the one-shot injection")


def test_thermal_gpu_all_heats_every_gpu_the_node_advertises(target: Target, twin, tmp_path: Path):
    from kubernetes import client
    ctx = run_context(target, tmp_path, seed=5)
    fault = FAULTS["gpu-thermal-throttle"](GpuThermalThrottleParams(node=ONE_NODE, gpu="all", temperature=91), ctx)
    fault.plan()
    node = fault.nodes[0]
    capacity = int(client.CoreV1Api(target.kube(node.context)).read_node(node.name).status.capacity["nvidia.com/gpu"])
    assert node.gpus == list(range(capacity)) and capacity == len(twin.world.nodes[node.name].gpus)
    fault.inject()
    try:
        assert fault.await_landed(time.time() + 5)
        time.sleep(target.wall_seconds(90))
        assert all(g.value(DCGM_FI_DEV_GPU_TEMP) == 91 for g in twin.world.nodes[node.name].gpus), "held"
    finally:
        fault.revert()
    wait_for(lambda: all(g.value(DCGM_FI_DEV_GPU_TEMP) < 83 for g in twin.world.nodes[node.name].gpus), 5, "cooled")
