"""GPU physics: thermal slowdown. Above 83 C a GPU drops its SM clock; below, the clock comes back.

This is the hardware: it acts on the temperature the GPU really has (`Gpu.fields`), never on a value
`dcgmi test --inject` put into DCGM's cache, which heats nothing and slows nothing (FIDELITY THERM-2).
The serving layer reads the hardware clock (decode slows with it).
"""
from __future__ import annotations

from harness.twin import hardware
from harness.twin.controllers.base import Controller
from harness.twin.world import DCGM_FI_DEV_SM_CLOCK


class GpuPhysics(Controller):
    name = "gpu-physics"

    def reconcile(self, now: float) -> None:
        for node in list(self.world.nodes.values()):
            for gpu in node.gpus:
                clock = gpu.fields[DCGM_FI_DEV_SM_CLOCK]
                if gpu.throttled:
                    if clock > hardware.GPU_SM_CLOCK_THROTTLED_MHZ:
                        gpu.fields[DCGM_FI_DEV_SM_CLOCK] = hardware.GPU_SM_CLOCK_THROTTLED_MHZ
                elif clock == hardware.GPU_SM_CLOCK_THROTTLED_MHZ:
                    gpu.fields[DCGM_FI_DEV_SM_CLOCK] = hardware.GPU_SM_CLOCK_MHZ
