"""The DCGM-injected faults honour `node.count`: a scenario asking for two nodes gets two, every node's fields
are owed in one journal entry before the first is set, the fault has landed only once every node shows it,
and the revert (from the journal alone, as `g7chaos recover` runs it) puts every node back.

On `no-dbe-remediation`, so the DBE nodes stay where they are for the test to look at."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from faultkit import run_context
from support.polling import wait_for

from harness.faults import FAULTS
from harness.faults.ecc_double_bit_error import EccDoubleBitErrorParams
from harness.faults.gpu_thermal_throttle import GpuThermalThrottleParams
from harness.journal import owed_reverts
from harness.strict.params import NodeSelector
from harness.target.target import Target
from harness.twin.world import DCGM_FI_DEV_ECC_DBE_VOL_DEV, DCGM_FI_DEV_ECC_DBE_VOL_TOTAL, DCGM_FI_DEV_GPU_TEMP

pytestmark = pytest.mark.slow
TWO_NODES = NodeSelector(model="llama-13b-fp8", count=2)     # one per zone with one 13b node per zone


TWIN_PROFILE = "no-dbe-remediation"     # nothing repairs the node, so the injected fields stay to be read
TWIN_LEAVES_MARKS = True


def _recover(target: Target, journal: Path) -> None:
    for owed in owed_reverts(journal):
        FAULTS[owed.fault].revert_owed(target, owed.args)


def test_ecc_on_two_nodes_lands_on_both_and_recover_clears_both(target: Target, twin, tmp_path: Path):
    ctx = run_context(target, tmp_path, seed=4)
    fault = FAULTS["ecc-double-bit-error"](EccDoubleBitErrorParams(node=TWO_NODES, gpu=2), ctx)
    plan = fault.plan()
    names = [n.name for n in fault.nodes]
    assert len(set(names)) == 2 and all(name in plan for name in names), plan
    fault.inject()
    evidence = fault.await_landed(time.time() + 10)
    assert evidence and set(evidence["nodes"]) == set(names), evidence
    for name in names:
        gpu = twin.world.nodes[name].gpus[2]
        assert gpu.value(DCGM_FI_DEV_ECC_DBE_VOL_DEV) > 0 and gpu.value(DCGM_FI_DEV_ECC_DBE_VOL_TOTAL) > 0, name
    (owed,) = owed_reverts(ctx.journal.path)
    assert [g["node"] for g in owed.args["gpus"]] == names
    fault.before_revert()       # the holder stops, as the runner's revert does first

    _recover(target, ctx.journal.path)
    for name in names:
        wait_for(lambda: twin.world.nodes[name].gpus[2].value(DCGM_FI_DEV_ECC_DBE_VOL_DEV) == 0
                 and twin.world.nodes[name].gpus[2].value(DCGM_FI_DEV_ECC_DBE_VOL_TOTAL) == 0, 5,
                 f"the DBE field cleared on {name}")


def test_thermal_on_two_nodes_heats_both_and_recover_cools_both(target: Target, twin, tmp_path: Path):
    ctx = run_context(target, tmp_path, seed=4)
    params = GpuThermalThrottleParams(node=TWO_NODES, gpu=5, temperature=92, sm_clock_mhz=1150)
    fault = FAULTS["gpu-thermal-throttle"](params, ctx)
    fault.plan()
    names = [n.name for n in fault.nodes]
    before = {name: twin.world.nodes[name].gpus[5].value(DCGM_FI_DEV_GPU_TEMP) for name in names}
    assert len(before) == 2
    fault.inject()
    evidence = fault.await_landed(time.time() + 10)
    assert evidence and {n: e["temperature"] for n, e in evidence["nodes"].items()} == {n: 92 for n in names}
    (owed,) = owed_reverts(ctx.journal.path)
    assert [n["node"] for n in owed.args["nodes"]] == names
    fault.before_revert()

    _recover(target, ctx.journal.path)
    for name in names:
        wait_for(lambda: twin.world.nodes[name].gpus[5].value(DCGM_FI_DEV_GPU_TEMP) == before[name], 5,
                 f"GPU 5 of {name} back at {before[name]} °C")
